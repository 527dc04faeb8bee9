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
//! use junction_host::webhooks::{Scheme, SignatureError, WebhookRequest};
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
use serde::{Deserialize, Serialize};
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

/// How a connection's inbound webhooks are signed (set in the connection's
/// configuration, e.g. `"stripe"` or `{ generic_hmac = { header = "x-sig",
/// encoding = "hex" } }`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// HubSpot signature v3: `X-HubSpot-Signature-v3` is
    /// `base64(HMAC(secret, method + uri + body + timestamp))`, where `uri`
    /// is the full URL with HubSpot's listed percent-escapes decoded and
    /// `timestamp` is `X-HubSpot-Request-Timestamp` (Unix milliseconds).
    HubspotV3,
    /// Stripe: `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`
    /// over `"{t}.{body}"`; any one matching `v1` is enough (during secret
    /// rotation Stripe signs with both secrets).
    Stripe,
    /// GitHub: `X-Hub-Signature-256: sha256=<hex>` over the body. No
    /// timestamp, so no replay window.
    Github,
    /// Slack: `X-Slack-Signature: v0=<hex>` over
    /// `"v0:{X-Slack-Request-Timestamp}:{body}"`.
    Slack,
    /// Any provider that sends an HMAC-SHA256 of the raw body in one header.
    GenericHmac {
        /// The header carrying the signature (matched case-insensitively).
        header: String,
        /// A prefix the header value must start with, such as `sha256=`;
        /// `None` if the value is the bare signature.
        #[serde(default)]
        prefix: Option<String>,
        /// How the signature bytes are written.
        encoding: Encoding,
    },
}

/// How a [`Scheme::GenericHmac`] signature is written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Hexadecimal, either case.
    Hex,
    /// Standard base64 with padding.
    Base64,
}

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

impl Scheme {
    /// Checks `request`'s signature under this scheme with `secret`, and for
    /// timestamped schemes that the signed time is within
    /// [`TIMESTAMP_TOLERANCE`] of `now`.
    ///
    /// The signature is checked before the timestamp, so `Stale` is only
    /// ever reported for a correctly signed (replayed or delayed) request.
    pub fn verify(
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

/// Checks `request` under `scheme`; see [`Scheme::verify`].
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
mod tests {
    use super::*;

    /// A fixed "now": 2024-01-01T00:00:00Z.
    const NOW_SECS: u64 = 1_704_067_200;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW_SECS)
    }

    /// HMAC-SHA256 computed directly with the `hmac` crate, independent of
    /// the code under test.
    fn hmac_of(secret: &[u8], message: &[u8]) -> Vec<u8> {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap();
        Mac::update(&mut m, message);
        m.finalize().into_bytes().to_vec()
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn req<'a>(
        uri: &'a str,
        headers: &'a [(String, String)],
        body: &'a [u8],
    ) -> WebhookRequest<'a> {
        WebhookRequest {
            method: "POST",
            uri,
            headers,
            body,
        }
    }

    const URI: &str = "https://junction.example.com/v1/webhooks/conn";

    // ---- GitHub ----

    #[test]
    fn github_documented_example_vector() {
        // From GitHub's "Validating webhook deliveries" documentation.
        let h = headers(&[(
            "x-hub-signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        )]);
        let r = req(URI, &h, b"Hello, World!");
        assert_eq!(
            Scheme::Github.verify(&r, now(), b"It's a Secret to Everybody"),
            Ok(())
        );
        // The test's own HMAC agrees with the published vector.
        assert_eq!(
            hex::encode(hmac_of(b"It's a Secret to Everybody", b"Hello, World!")),
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn github_tampered_wrong_secret_missing_malformed() {
        let sig = format!("sha256={}", hex::encode(hmac_of(b"s3cret", b"payload")));
        let h = headers(&[("X-Hub-Signature-256", &sig)]);
        assert_eq!(
            Scheme::Github.verify(&req(URI, &h, b"payload"), now(), b"s3cret"),
            Ok(())
        );
        assert_eq!(
            Scheme::Github.verify(&req(URI, &h, b"payloaD"), now(), b"s3cret"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            Scheme::Github.verify(&req(URI, &h, b"payload"), now(), b"other"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            Scheme::Github.verify(&req(URI, &[], b"payload"), now(), b"s3cret"),
            Err(SignatureError::Missing {
                header: "x-hub-signature-256".into()
            })
        );
        let bad = headers(&[("x-hub-signature-256", "sha1=abcd")]);
        assert!(matches!(
            Scheme::Github.verify(&req(URI, &bad, b"payload"), now(), b"s3cret"),
            Err(SignatureError::Malformed { .. })
        ));
        let bad = headers(&[("x-hub-signature-256", "sha256=zz")]);
        assert!(matches!(
            Scheme::Github.verify(&req(URI, &bad, b"payload"), now(), b"s3cret"),
            Err(SignatureError::Malformed { .. })
        ));
    }

    #[test]
    fn empty_secret_never_verifies() {
        let sig = format!("sha256={}", hex::encode(hmac_of(b"", b"payload")));
        let h = headers(&[("x-hub-signature-256", &sig)]);
        assert_eq!(
            Scheme::Github.verify(&req(URI, &h, b"payload"), now(), b""),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn duplicate_signature_header_is_malformed() {
        let sig = format!("sha256={}", hex::encode(hmac_of(b"k", b"x")));
        let h = headers(&[("x-hub-signature-256", &sig), ("X-Hub-Signature-256", &sig)]);
        assert!(matches!(
            Scheme::Github.verify(&req(URI, &h, b"x"), now(), b"k"),
            Err(SignatureError::Malformed { .. })
        ));
    }

    // ---- Stripe ----

    fn stripe_sig(secret: &[u8], t: u64, body: &[u8]) -> String {
        let mut payload = format!("{t}.").into_bytes();
        payload.extend_from_slice(body);
        hex::encode(hmac_of(secret, &payload))
    }

    #[test]
    fn stripe_valid_and_rotated_keys() {
        let body = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
        let t = NOW_SECS - 10;
        let good = stripe_sig(b"whsec_new", t, body);
        let h = headers(&[("stripe-signature", &format!("t={t},v1={good}"))]);
        assert_eq!(
            Scheme::Stripe.verify(&req(URI, &h, body), now(), b"whsec_new"),
            Ok(())
        );

        // Rotation: two v1 entries, only the second made with our secret, plus
        // a legacy v0 entry that must be ignored.
        let other = stripe_sig(b"whsec_old", t, body);
        let value = format!("t={t},v1={other},v1={good},v0=deadbeef");
        let h = headers(&[("Stripe-Signature", &value)]);
        assert_eq!(
            Scheme::Stripe.verify(&req(URI, &h, body), now(), b"whsec_new"),
            Ok(())
        );
        assert_eq!(
            Scheme::Stripe.verify(&req(URI, &h, body), now(), b"whsec_old"),
            Ok(())
        );
        assert_eq!(
            Scheme::Stripe.verify(&req(URI, &h, body), now(), b"whsec_wrong"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            Scheme::Stripe.verify(&req(URI, &h, b"{}"), now(), b"whsec_new"),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn stripe_timestamp_is_signed() {
        // Moving t forward to dodge the window breaks the signature.
        let body = b"{}";
        let t = NOW_SECS - 3600;
        let sig = stripe_sig(b"k", t, body);
        let h = headers(&[("stripe-signature", &format!("t={NOW_SECS},v1={sig}"))]);
        assert_eq!(
            Scheme::Stripe.verify(&req(URI, &h, body), now(), b"k"),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn stripe_stale_and_future() {
        let body = b"{}";
        for (t, skew) in [(NOW_SECS - 301, 301), (NOW_SECS + 301, -301)] {
            let sig = stripe_sig(b"k", t, body);
            let h = headers(&[("stripe-signature", &format!("t={t},v1={sig}"))]);
            assert_eq!(
                Scheme::Stripe.verify(&req(URI, &h, body), now(), b"k"),
                Err(SignatureError::Stale {
                    skew_secs: skew,
                    tolerance_secs: 300
                })
            );
        }
        // Exactly at the edge is still accepted.
        let t = NOW_SECS - 300;
        let sig = stripe_sig(b"k", t, body);
        let h = headers(&[("stripe-signature", &format!("t={t},v1={sig}"))]);
        assert_eq!(
            Scheme::Stripe.verify(&req(URI, &h, body), now(), b"k"),
            Ok(())
        );
    }

    #[test]
    fn stripe_malformed_headers() {
        let sig = stripe_sig(b"k", NOW_SECS, b"{}");
        for value in [
            format!("v1={sig}"),
            format!("t=abc,v1={sig}"),
            format!("t=-5,v1={sig}"),
            format!("t={NOW_SECS}"),
            format!("t={NOW_SECS},v0={sig}"),
            "garbage".to_string(),
            format!("t={NOW_SECS},t={NOW_SECS},v1={sig}"),
        ] {
            let h = headers(&[("stripe-signature", &value)]);
            assert!(
                matches!(
                    Scheme::Stripe.verify(&req(URI, &h, b"{}"), now(), b"k"),
                    Err(SignatureError::Malformed { .. })
                ),
                "{value}"
            );
        }
        assert_eq!(
            Scheme::Stripe.verify(&req(URI, &[], b"{}"), now(), b"k"),
            Err(SignatureError::Missing {
                header: "stripe-signature".into()
            })
        );
    }

    // ---- Slack ----

    fn slack_headers(secret: &[u8], ts: u64, body: &[u8]) -> Vec<(String, String)> {
        let mut base = format!("v0:{ts}:").into_bytes();
        base.extend_from_slice(body);
        let sig = format!("v0={}", hex::encode(hmac_of(secret, &base)));
        headers(&[
            ("x-slack-signature", &sig),
            ("x-slack-request-timestamp", &ts.to_string()),
        ])
    }

    #[test]
    fn slack_valid_tampered_stale_future() {
        let body = b"token=x&team_id=T1&command=%2Fweather";
        let h = slack_headers(b"8f742231b10e8888abcd99yyyzzz85a5", NOW_SECS - 60, body);
        let secret = b"8f742231b10e8888abcd99yyyzzz85a5";
        assert_eq!(
            Scheme::Slack.verify(&req(URI, &h, body), now(), secret),
            Ok(())
        );
        assert_eq!(
            Scheme::Slack.verify(&req(URI, &h, b"token=y"), now(), secret),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            Scheme::Slack.verify(&req(URI, &h, body), now(), b"wrong"),
            Err(SignatureError::Mismatch)
        );
        let stale = slack_headers(secret, NOW_SECS - 600, body);
        assert!(matches!(
            Scheme::Slack.verify(&req(URI, &stale, body), now(), secret),
            Err(SignatureError::Stale { skew_secs: 600, .. })
        ));
        let future = slack_headers(secret, NOW_SECS + 600, body);
        assert!(matches!(
            Scheme::Slack.verify(&req(URI, &future, body), now(), secret),
            Err(SignatureError::Stale {
                skew_secs: -600,
                ..
            })
        ));
        let only_sig = vec![h[0].clone()];
        assert_eq!(
            Scheme::Slack.verify(&req(URI, &only_sig, body), now(), secret),
            Err(SignatureError::Missing {
                header: "x-slack-request-timestamp".into()
            })
        );
    }

    // ---- HubSpot v3 ----

    fn hubspot_headers(
        secret: &[u8],
        method: &str,
        signed_uri: &str,
        body: &[u8],
        ts_ms: u64,
    ) -> Vec<(String, String)> {
        let mut s = format!("{method}{signed_uri}").into_bytes();
        s.extend_from_slice(body);
        s.extend_from_slice(ts_ms.to_string().as_bytes());
        let sig = BASE64.encode(hmac_of(secret, &s));
        headers(&[
            ("x-hubspot-signature-v3", &sig),
            ("x-hubspot-request-timestamp", &ts_ms.to_string()),
        ])
    }

    #[test]
    fn hubspot_v3_valid_with_decoded_uri() {
        let secret = b"yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
        let body = br#"[{"eventId":1,"subscriptionType":"contact.creation"}]"#;
        let ts = NOW_SECS * 1000 - 1_500;
        // HubSpot signs the URL with these escapes decoded; %20 stays.
        let received = "https://junction.example.com/v1/webhooks/hs?state=a%3Ab%2Fc%40d%2cx%20y";
        let signed = "https://junction.example.com/v1/webhooks/hs?state=a:b/c@d,x%20y";
        let h = hubspot_headers(secret, "POST", signed, body, ts);
        assert_eq!(
            Scheme::HubspotV3.verify(&req(received, &h, body), now(), secret),
            Ok(())
        );
        // Other method, other URI, other body, other secret: all mismatches.
        let mut r = req(received, &h, body);
        r.method = "PUT";
        assert_eq!(
            Scheme::HubspotV3.verify(&r, now(), secret),
            Err(SignatureError::Mismatch)
        );
        let other_uri = "https://junction.example.com/v1/webhooks/other";
        assert_eq!(
            Scheme::HubspotV3.verify(&req(other_uri, &h, body), now(), secret),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            Scheme::HubspotV3.verify(&req(received, &h, b"[]"), now(), secret),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            Scheme::HubspotV3.verify(&req(received, &h, body), now(), b"nope"),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn hubspot_v3_timestamp_in_milliseconds() {
        let secret = b"k";
        let stale = hubspot_headers(secret, "POST", URI, b"{}", (NOW_SECS - 301) * 1000);
        assert!(matches!(
            Scheme::HubspotV3.verify(&req(URI, &stale, b"{}"), now(), secret),
            Err(SignatureError::Stale { skew_secs: 301, .. })
        ));
        let future = hubspot_headers(secret, "POST", URI, b"{}", (NOW_SECS + 3600) * 1000);
        assert!(matches!(
            Scheme::HubspotV3.verify(&req(URI, &future, b"{}"), now(), secret),
            Err(SignatureError::Stale {
                skew_secs: -3600,
                ..
            })
        ));
        let fresh = hubspot_headers(secret, "POST", URI, b"{}", NOW_SECS * 1000 + 999);
        assert_eq!(
            Scheme::HubspotV3.verify(&req(URI, &fresh, b"{}"), now(), secret),
            Ok(())
        );
        let no_ts = vec![fresh[0].clone()];
        assert_eq!(
            Scheme::HubspotV3.verify(&req(URI, &no_ts, b"{}"), now(), secret),
            Err(SignatureError::Missing {
                header: "x-hubspot-request-timestamp".into()
            })
        );
        let bad = headers(&[
            ("x-hubspot-signature-v3", "not base64!"),
            ("x-hubspot-request-timestamp", "1"),
        ]);
        assert!(matches!(
            Scheme::HubspotV3.verify(&req(URI, &bad, b"{}"), now(), secret),
            Err(SignatureError::Malformed { .. })
        ));
    }

    #[test]
    fn hubspot_uri_decoding_table() {
        assert_eq!(
            hubspot_decode_uri("%3A%2F%3F%40%21%24%27%28%29%2A%2C%3B"),
            ":/?@!$'()*,;"
        );
        assert_eq!(hubspot_decode_uri("%3a%2f"), ":/");
        // Not on the list, incomplete or invalid escapes are kept verbatim,
        // and decoding is one pass (no double decoding).
        assert_eq!(hubspot_decode_uri("%20%26%3D%25%2F"), "%20%26%3D%25/");
        assert_eq!(hubspot_decode_uri("a%253A"), "a%253A");
        assert_eq!(hubspot_decode_uri("%"), "%");
        assert_eq!(hubspot_decode_uri("x%3"), "x%3");
        assert_eq!(hubspot_decode_uri("%zz%3A"), "%zz:");
        assert_eq!(hubspot_decode_uri("é%2Fü"), "é/ü");
        assert_eq!(hubspot_decode_uri("%E9%3A"), "%E9:");
    }

    // ---- Generic ----

    #[test]
    fn generic_hex_and_base64() {
        let body = b"{\"a\":1}";
        let mac = hmac_of(b"gk", body);
        let hex_scheme = Scheme::GenericHmac {
            header: "X-Signature".into(),
            prefix: Some("sha256=".into()),
            encoding: Encoding::Hex,
        };
        let h = headers(&[("x-signature", &format!("sha256={}", hex::encode(&mac)))]);
        assert_eq!(hex_scheme.verify(&req(URI, &h, body), now(), b"gk"), Ok(()));
        let upper = headers(&[(
            "x-signature",
            &format!("sha256={}", hex::encode_upper(&mac)),
        )]);
        assert_eq!(
            hex_scheme.verify(&req(URI, &upper, body), now(), b"gk"),
            Ok(())
        );
        let no_prefix = headers(&[("x-signature", &hex::encode(&mac))]);
        assert!(matches!(
            hex_scheme.verify(&req(URI, &no_prefix, body), now(), b"gk"),
            Err(SignatureError::Malformed { .. })
        ));
        assert_eq!(
            hex_scheme.verify(&req(URI, &[], body), now(), b"gk"),
            Err(SignatureError::Missing {
                header: "x-signature".into()
            })
        );

        let b64_scheme = Scheme::GenericHmac {
            header: "x-webhook-signature".into(),
            prefix: None,
            encoding: Encoding::Base64,
        };
        let h = headers(&[("x-webhook-signature", &BASE64.encode(&mac))]);
        assert_eq!(b64_scheme.verify(&req(URI, &h, body), now(), b"gk"), Ok(()));
        assert_eq!(
            b64_scheme.verify(&req(URI, &h, b"{\"a\":2}"), now(), b"gk"),
            Err(SignatureError::Mismatch)
        );
        // A truncated signature is a mismatch, never a prefix match.
        let short = headers(&[("x-webhook-signature", &BASE64.encode(&mac[..16]))]);
        assert_eq!(
            b64_scheme.verify(&req(URI, &short, body), now(), b"gk"),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn scheme_config_shape() {
        let s: Scheme = serde_json::from_str(r#""hubspot_v3""#).unwrap();
        assert_eq!(s, Scheme::HubspotV3);
        let s: Scheme =
            serde_json::from_str(r#"{"generic_hmac":{"header":"x-sig","encoding":"base64"}}"#)
                .unwrap();
        assert_eq!(
            s,
            Scheme::GenericHmac {
                header: "x-sig".into(),
                prefix: None,
                encoding: Encoding::Base64
            }
        );
        assert_eq!(
            serde_json::to_string(&Scheme::Stripe).unwrap(),
            r#""stripe""#
        );
    }

    #[test]
    fn error_messages_do_not_leak_expected_signature() {
        let secret = b"super-secret-value";
        let expected = hex::encode(hmac_of(secret, b"body"));
        let h = headers(&[(
            "x-hub-signature-256",
            &format!("sha256={}", "00".repeat(32)),
        )]);
        let err = Scheme::Github
            .verify(&req(URI, &h, b"body"), now(), secret)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "signature does not match");
        assert!(!err.contains(&expected) && !err.contains("super-secret"));
        let stale = SignatureError::Stale {
            skew_secs: -400,
            tolerance_secs: 300,
        };
        assert_eq!(
            stale.to_string(),
            "stale request: signed timestamp is 400s ahead of the host clock (tolerance 300s)"
        );
    }
}
