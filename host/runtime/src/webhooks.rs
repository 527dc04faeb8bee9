//! Webhook signature verification, done by the host before any plugin sees
//! the request.
//!
//! Every scheme is HMAC-SHA256 keyed with the connection's webhook secret; they
//! differ in what is signed, where the signature travels and how it is
//! encoded. Comparison is constant-time ([`Mac::verify_slice`]). Schemes that
//! carry a timestamp are checked against a window of
//! [`TIMESTAMP_TOLERANCE`] in both directions, so a captured request cannot be
//! replayed later and a forged far-future timestamp does not extend its life.
//!
//! The functions here are pure: the caller passes the request as received
//! and the current time.
//!
//! ```
//! use std::time::SystemTime;
//! use junction_runtime::webhooks::{Scheme, SignatureError, Verify as _, WebhookRequest};
//!
//! let headers = vec![("x-hub-signature-256".to_string(), "sha256=00".to_string())];
//! let request = WebhookRequest {
//!     method: "POST",
//!     uri: "https://junction.example.com/v1/webhooks/github",
//!     headers: &headers,
//!     body: b"{}",
//! };
//! let result = Scheme::Github.verify(&request, SystemTime::now(), b"secret");
//! assert_eq!(result, Err(SignatureError::Mismatch));
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
pub use junction_store::{Encoding, Scheme};
use sha2_011::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How far a signed timestamp may lie from the host's clock, in either
/// direction (HubSpot, Stripe and Slack all document five minutes).
pub const TIMESTAMP_TOLERANCE: Duration = Duration::from_secs(5 * 60);

const HUBSPOT_SIGNATURE: &str = "x-hubspot-signature-v3";
const HUBSPOT_TIMESTAMP: &str = "x-hubspot-request-timestamp";
const STRIPE_SIGNATURE: &str = "stripe-signature";
const GITHUB_SIGNATURE: &str = "x-hub-signature-256";
const SLACK_SIGNATURE: &str = "x-slack-signature";
const SLACK_TIMESTAMP: &str = "x-slack-request-timestamp";

/// Why a webhook was refused. The messages are safe to send back to the
/// caller: they name headers and the clock skew, never the secret or the
/// signature the host expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A header the scheme needs is absent.
    #[error("missing {header} header")]
    Missing {
        /// The header, lower-case.
        header: String,
    },
    /// A header is present but cannot be parsed (or appears more than once).
    #[error("malformed {header} header: {reason}")]
    Malformed {
        /// The header, lower-case.
        header: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The signed timestamp is outside the tolerance window.
    #[error(
        "stale request: signed timestamp is {secs}s {direction} the host clock \
         (tolerance {tolerance_secs}s)",
        secs = .skew_secs.unsigned_abs(),
        direction = if *.skew_secs < 0 { "ahead of" } else { "behind" }
    )]
    Stale {
        /// Host clock minus the signed timestamp, in seconds: positive for a
        /// request signed in the past, negative for one dated in the future.
        skew_secs: i64,
        /// The tolerance, in seconds.
        tolerance_secs: u64,
    },
    /// The signature does not match the request (wrong secret, altered body
    /// or URI, or forged). Also returned when the configured secret is empty,
    /// since anyone can compute an HMAC under an empty key.
    #[error("signature does not match")]
    Mismatch,
}

/// An inbound webhook request as the host received it.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    /// The HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// The full URI as the sender addressed it, scheme and host included
    /// (`https://junction.example.com/v1/webhooks/hubspot?x=1`); only
    /// [`Scheme::HubspotV3`] signs it.
    pub uri: &'a str,
    /// Header names and values; names are matched case-insensitively.
    pub headers: &'a [(String, String)],
    /// The raw body, exactly as received.
    pub body: &'a [u8],
}

impl WebhookRequest<'_> {
    /// The one value of header `name`: `Ok(None)` if absent, `Malformed` if
    /// repeated (two signatures would make the check ambiguous).
    fn header(&self, name: &str) -> Result<Option<&str>, SignatureError> {
        let mut values = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim());
        let first = values.next();
        if values.next().is_some() {
            return Err(malformed(name, "header appears more than once"));
        }
        Ok(first)
    }

    fn required(&self, name: &str) -> Result<&str, SignatureError> {
        self.header(name)?.ok_or_else(|| SignatureError::Missing {
            header: name.to_ascii_lowercase(),
        })
    }
}

/// Signature checking for a stored [`Scheme`].
pub trait Verify {
    /// Checks `request`'s signature under this scheme with `secret`, and for
    /// timestamped schemes that the signed time is within
    /// [`TIMESTAMP_TOLERANCE`] of `now`.
    fn verify(
        &self,
        request: &WebhookRequest<'_>,
        now: SystemTime,
        secret: &[u8],
    ) -> Result<(), SignatureError>;
}

impl Verify for Scheme {
    /// Checks `request`'s signature under this scheme with `secret`, and for
    /// timestamped schemes that the signed time is within
    /// [`TIMESTAMP_TOLERANCE`] of `now`.
    ///
    /// The signature is checked before the timestamp, so `Stale` is only
    /// ever reported for a correctly signed (replayed or delayed) request.
    fn verify(
        &self,
        request: &WebhookRequest<'_>,
        now: SystemTime,
        secret: &[u8],
    ) -> Result<(), SignatureError> {
        match self {
            Scheme::HubspotV3 => verify_hubspot_v3(request, now, secret),
            Scheme::Stripe => verify_stripe(request, now, secret),
            Scheme::Github => verify_github(request, secret),
            Scheme::Slack => verify_slack(request, now, secret),
            Scheme::GenericHmac {
                header,
                prefix,
                encoding,
            } => verify_generic(request, secret, header, prefix.as_deref(), *encoding),
        }
    }
}

/// Checks `request` under `scheme`; see [`Verify::verify`].
pub fn verify(
    scheme: &Scheme,
    request: &WebhookRequest<'_>,
    now: SystemTime,
    secret: &[u8],
) -> Result<(), SignatureError> {
    scheme.verify(request, now, secret)
}

fn malformed(header: &str, reason: &'static str) -> SignatureError {
    SignatureError::Malformed {
        header: header.to_ascii_lowercase(),
        reason,
    }
}

fn mac(secret: &[u8]) -> Result<HmacSha256, SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::Mismatch);
    }
    // HMAC takes keys of any length, so this cannot fail for a non-empty key.
    HmacSha256::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)
}

fn check(mac: HmacSha256, signature: &[u8]) -> Result<(), SignatureError> {
    mac.verify_slice(signature)
        .map_err(|_| SignatureError::Mismatch)
}

fn decode_hex(header: &str, value: &str) -> Result<Vec<u8>, SignatureError> {
    hex::decode(value).map_err(|_| malformed(header, "signature is not hexadecimal"))
}

/// Parses an unsigned decimal timestamp (no sign, no spaces).
fn parse_timestamp(header: &str, value: &str) -> Result<i64, SignatureError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(header, "timestamp is not a decimal integer"));
    }
    value
        .parse()
        .map_err(|_| malformed(header, "timestamp is out of range"))
}

/// Refuses `signed_ms` (Unix milliseconds) if it is further than the
/// tolerance from `now` in either direction.
fn check_window(signed_ms: i64, now: SystemTime) -> Result<(), SignatureError> {
    let now_ms = now
        .duration_since(UNIX_EPOCH)
        .map(|d| i128::try_from(d.as_millis()).unwrap_or(i128::MAX))
        .unwrap_or(0);
    let skew_ms = now_ms - i128::from(signed_ms);
    let tolerance_ms = i128::try_from(TIMESTAMP_TOLERANCE.as_millis()).unwrap_or(i128::MAX);
    if skew_ms.abs() > tolerance_ms {
        return Err(SignatureError::Stale {
            skew_secs: i64::try_from(skew_ms / 1000).unwrap_or(i64::MAX),
            tolerance_secs: TIMESTAMP_TOLERANCE.as_secs(),
        });
    }
    Ok(())
}

fn seconds_to_ms(seconds: i64) -> i64 {
    seconds.saturating_mul(1000)
}

fn verify_hubspot_v3(
    request: &WebhookRequest<'_>,
    now: SystemTime,
    secret: &[u8],
) -> Result<(), SignatureError> {
    let signature = request.required(HUBSPOT_SIGNATURE)?;
    let timestamp = request.required(HUBSPOT_TIMESTAMP)?;
    let signature = BASE64
        .decode(signature)
        .map_err(|_| malformed(HUBSPOT_SIGNATURE, "signature is not base64"))?;
    let signed_ms = parse_timestamp(HUBSPOT_TIMESTAMP, timestamp)?;
    let mac = mac(secret)?
        .chain_update(request.method.as_bytes())
        .chain_update(hubspot_decode_uri(request.uri).as_bytes())
        .chain_update(request.body)
        .chain_update(timestamp.as_bytes());
    check(mac, &signature)?;
    check_window(signed_ms, now)
}

/// Decodes the percent-escapes HubSpot's v3 documentation lists
/// (`%3A : %2F / %3F ? %40 @ %21 ! %24 $ %27 ' %28 ( %29 ) %2A * %2C , %3B ;`),
/// either hex case, in one pass; every other escape is left as sent.
pub fn hubspot_decode_uri(uri: &str) -> String {
    let bytes = uri.as_bytes();
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    let mut i = 0;
    while let Some(pos) = rest.find('%') {
        out.push_str(&rest[..pos]);
        let at = i + pos;
        let decoded = bytes
            .get(at + 1..at + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .map(char::from)
            .filter(|c| ":/?@!$'()*,;".contains(*c));
        match decoded {
            Some(c) => {
                out.push(c);
                i = at + 3;
            }
            None => {
                out.push('%');
                i = at + 1;
            }
        }
        rest = &uri[i..];
    }
    out.push_str(rest);
    out
}

fn verify_stripe(
    request: &WebhookRequest<'_>,
    now: SystemTime,
    secret: &[u8],
) -> Result<(), SignatureError> {
    let header = request.required(STRIPE_SIGNATURE)?;
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for item in header.split(',') {
        let Some((key, value)) = item.trim().split_once('=') else {
            return Err(malformed(
                STRIPE_SIGNATURE,
                "expected comma-separated key=value pairs",
            ));
        };
        match key {
            "t" if timestamp.is_some() => {
                return Err(malformed(STRIPE_SIGNATURE, "more than one timestamp"));
            }
            "t" => timestamp = Some(value),
            // A v1 entry that is not hex can never match; other entries stay
            // candidates (Stripe sends one per active secret).
            "v1" => candidates.extend(hex::decode(value).ok()),
            // v0 (test-mode legacy) and unknown schemes are ignored, as
            // Stripe's own libraries do.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or_else(|| malformed(STRIPE_SIGNATURE, "no t= timestamp"))?;
    let signed_secs = parse_timestamp(STRIPE_SIGNATURE, timestamp)?;
    if candidates.is_empty() {
        return Err(malformed(STRIPE_SIGNATURE, "no v1 signature"));
    }
    let mac = mac(secret)?
        .chain_update(timestamp.as_bytes())
        .chain_update(b".")
        .chain_update(request.body);
    // Check every candidate, so the time taken does not depend on which one
    // matched.
    let matched = candidates
        .iter()
        .fold(false, |ok, sig| mac.clone().verify_slice(sig).is_ok() | ok);
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    check_window(seconds_to_ms(signed_secs), now)
}

fn verify_github(request: &WebhookRequest<'_>, secret: &[u8]) -> Result<(), SignatureError> {
    let header = request.required(GITHUB_SIGNATURE)?;
    let hex_sig = header
        .strip_prefix("sha256=")
        .ok_or_else(|| malformed(GITHUB_SIGNATURE, "expected sha256=<hex>"))?;
    let signature = decode_hex(GITHUB_SIGNATURE, hex_sig)?;
    check(mac(secret)?.chain_update(request.body), &signature)
}

fn verify_slack(
    request: &WebhookRequest<'_>,
    now: SystemTime,
    secret: &[u8],
) -> Result<(), SignatureError> {
    let header = request.required(SLACK_SIGNATURE)?;
    let timestamp = request.required(SLACK_TIMESTAMP)?;
    let hex_sig = header
        .strip_prefix("v0=")
        .ok_or_else(|| malformed(SLACK_SIGNATURE, "expected v0=<hex>"))?;
    let signature = decode_hex(SLACK_SIGNATURE, hex_sig)?;
    let signed_secs = parse_timestamp(SLACK_TIMESTAMP, timestamp)?;
    let mac = mac(secret)?
        .chain_update(b"v0:")
        .chain_update(timestamp.as_bytes())
        .chain_update(b":")
        .chain_update(request.body);
    check(mac, &signature)?;
    check_window(seconds_to_ms(signed_secs), now)
}

fn verify_generic(
    request: &WebhookRequest<'_>,
    secret: &[u8],
    header: &str,
    prefix: Option<&str>,
    encoding: Encoding,
) -> Result<(), SignatureError> {
    let value = request.required(header)?;
    let value = match prefix {
        Some(prefix) => value
            .strip_prefix(prefix)
            .ok_or_else(|| malformed(header, "signature lacks the configured prefix"))?,
        None => value,
    };
    let signature = match encoding {
        Encoding::Hex => decode_hex(header, value)?,
        Encoding::Base64 => BASE64
            .decode(value)
            .map_err(|_| malformed(header, "signature is not base64"))?,
    };
    check(mac(secret)?.chain_update(request.body), &signature)
}

#[cfg(test)]
mod tests;
