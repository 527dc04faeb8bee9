//! How a connection's inbound webhooks are signed: the stored form, checked by
//! the runtime's webhook verification.

use serde::{Deserialize, Serialize};

/// How a connection's inbound webhooks are signed (set in the connection's
/// configuration, e.g. `"stripe"` or `{ generic_hmac = { header = "x-sig",
/// encoding = "hex" } }`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Hexadecimal, either case.
    Hex,
    /// Standard base64 with padding.
    Base64,
}
