//! Signed webhook deliveries as HubSpot sends them: property-change events and the v3 signature.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2_011::Sha256;

use super::*;

/// One webhook event of a property change, as HubSpot sends in a delivery's JSON array, e.g.
/// `property_change_event("deal", 9876543201, "dealstage", "closedwon")`.
///
/// `object` is the object type's singular name (`deal`, `company`, `contact`); the event's
/// `subscriptionType` is `{object}.propertyChange`.
pub fn property_change_event(object: &str, object_id: u64, property: &str, value: &str) -> Value {
    static EVENT_ID: AtomicU64 = AtomicU64::new(100);
    let occurred_at = crate::server::unix_millis(SystemTime::now());
    json!({
        "eventId": EVENT_ID.fetch_add(1, Ordering::Relaxed),
        "subscriptionId": 2_473_812,
        "portalId": PORTAL_ID,
        "appId": 1_160_452,
        "occurredAt": occurred_at,
        "subscriptionType": format!("{object}.propertyChange"),
        "attemptNumber": 0,
        "objectId": object_id,
        "propertyName": property,
        "propertyValue": value,
        "changeSource": "CRM",
        "sourceId": "userId:1234567",
    })
}

/// A webhook delivery ready to POST: the body and the headers HubSpot signs it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// Always `POST`.
    pub method: String,
    /// The full URI the delivery is signed for and must be sent to.
    pub uri: String,
    /// The JSON array of events.
    pub body: String,
    /// `X-HubSpot-Request-Timestamp`: Unix milliseconds when it was signed.
    pub timestamp_ms: u64,
    /// `X-HubSpot-Signature-v3`: the base64 HMAC-SHA256.
    pub signature: String,
}

impl WebhookDelivery {
    /// The headers to send: content type, signature and timestamp.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            ("Content-Type", "application/json".to_owned()),
            (SIGNATURE_HEADER, self.signature.clone()),
            (TIMESTAMP_HEADER, self.timestamp_ms.to_string()),
        ]
    }
}

/// Builds a delivery of `events` to `uri` (the subscriber's full URL, query included), signed
/// now with the app's `client_secret`.
pub fn webhook_delivery(client_secret: &str, uri: &str, events: &[Value]) -> WebhookDelivery {
    let timestamp_ms = crate::server::unix_millis(SystemTime::now());
    webhook_delivery_at(client_secret, uri, events, timestamp_ms)
}

/// [`webhook_delivery`] signed at `timestamp_ms` (Unix milliseconds), e.g. one too old for the
/// receiver's replay window.
pub fn webhook_delivery_at(
    client_secret: &str,
    uri: &str,
    events: &[Value],
    timestamp_ms: u64,
) -> WebhookDelivery {
    let body = Value::Array(events.to_vec()).to_string();
    let timestamp = timestamp_ms.to_string();
    let signature = sign_v3(client_secret, "POST", uri, body.as_bytes(), &timestamp);
    WebhookDelivery {
        method: "POST".into(),
        uri: uri.to_owned(),
        body,
        timestamp_ms,
        signature,
    }
}

/// HubSpot's signature v3: base64 of HMAC-SHA256, keyed with the app's client secret, over
/// `method + uri + body + timestamp`, where `uri` has the percent-escapes HubSpot lists decoded.
pub fn sign_v3(
    client_secret: &str,
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp: &str,
) -> String {
    // HMAC takes a key of any length, so `new_from_slice` cannot fail; fall back to an empty
    // signature rather than panic should that ever change.
    let Ok(mac) = Hmac::<Sha256>::new_from_slice(client_secret.as_bytes()) else {
        return String::new();
    };
    let mac = mac
        .chain_update(method.as_bytes())
        .chain_update(decode_listed_escapes(uri).as_bytes())
        .chain_update(body)
        .chain_update(timestamp.as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

/// Decodes the escapes HubSpot's v3 documentation says to decode before signing
/// (`%3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B`, either case); others stay as sent.
fn decode_listed_escapes(uri: &str) -> String {
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let decoded = rest
            .get(at + 1..at + 3)
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .map(char::from)
            .filter(|c| ":/?@!$'()*,;".contains(*c));
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[at + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_only_the_listed_escapes() {
        assert_eq!(
            decode_listed_escapes("https://h/p%3Fa%3db%2Cc%2fd%20e%"),
            "https://h/p?a%3db,c/d%20e%"
        );
        assert_eq!(decode_listed_escapes("plain"), "plain");
        assert_eq!(decode_listed_escapes("%4"), "%4");
    }
}
