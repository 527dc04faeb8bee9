//! Outbound webhooks: HMAC-SHA256 signing, subscriptions, and background delivery with retries and
//! back-off.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2_011::Sha256;

use super::*;

/// HMAC-SHA256 of `message` keyed with `key`.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length, so `new_from_slice` cannot fail; an empty MAC (which no
    // receiver accepts) is the fallback should that ever change.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac.chain_update(message).finalize().into_bytes().to_vec(),
        Err(_) => Vec::new(),
    }
}

/// How many times an outbound webhook is tried before it is given up.
pub const WEBHOOK_ATTEMPTS: u32 = 3;

/// The pause after a failed webhook attempt, doubled after each further failure.
const WEBHOOK_FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// How long a webhook receiver has to answer one attempt.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// One attempt at delivering an outbound webhook, as a stand-in made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookAttempt {
    /// The event type, e.g. `proposal.accepted`.
    pub event: String,
    /// The URL the event was POSTed to.
    pub url: String,
    /// 1 for the first attempt, up to [`WEBHOOK_ATTEMPTS`].
    pub attempt: u32,
    /// The headers sent, signature included, by lower-case name.
    pub headers: BTreeMap<String, String>,
    /// The exact body sent, the bytes the signature covers.
    pub body: String,
    /// The receiver's status code, or `None` when it did not answer.
    pub status: Option<u16>,
    /// Why there was no answer (connection refused, timeout), or `None` when there was one.
    pub error: Option<String>,
}

impl WebhookAttempt {
    /// Whether the receiver took the event (answered 2xx).
    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// The value of header `name` (any case), or `None` when it was not sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The body parsed as JSON (`null` if it is not JSON, which a stand-in never sends).
    pub fn body_json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// Where a stand-in sends its webhooks, and the secret it signs them with.
pub(super) struct Subscription {
    pub(super) url: String,
    pub(super) secret: String,
}

/// One event waiting to be delivered.
pub(super) struct Outgoing {
    pub(super) event: String,
    pub(super) url: String,
    pub(super) body: String,
    pub(super) headers: BTreeMap<String, String>,
}

/// A stand-in's outbound webhooks: one subscription, a background worker that POSTs events in
/// the order they happened and retries each up to [`WEBHOOK_ATTEMPTS`] times (any answer but
/// 2xx, or none, is a failure), and the log of every attempt.
///
/// Signing is the stand-in's: [`Webhooks::send`] takes the headers to add, computed from the
/// secret and the exact body.
pub(crate) struct Webhooks {
    pub(super) subscription: Mutex<Option<Subscription>>,
    pub(super) queue: tokio::sync::mpsc::UnboundedSender<Outgoing>,
    pub(super) attempts: Arc<Mutex<Vec<WebhookAttempt>>>,
}

impl Webhooks {
    /// Starts the delivery worker on the current Tokio runtime; it ends when this is dropped.
    pub(crate) fn start(standin: &'static str) -> anyhow::Result<Webhooks> {
        let client = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| anyhow::anyhow!("building the {standin} webhook client: {e}"))?;
        let (queue, mut outgoing) = tokio::sync::mpsc::unbounded_channel::<Outgoing>();
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let log = attempts.clone();
        tokio::spawn(async move {
            while let Some(event) = outgoing.recv().await {
                deliver(standin, &client, &event, &log).await;
            }
        });
        Ok(Webhooks {
            subscription: Mutex::new(None),
            queue,
            attempts,
        })
    }

    /// Sends later events to `url`, signed with `secret`; replaces an earlier subscription.
    pub(crate) fn subscribe(&self, url: &str, secret: &str) {
        *lock(&self.subscription) = Some(Subscription {
            url: url.to_owned(),
            secret: secret.to_owned(),
        });
    }

    /// Queues `body` as event `event` for the subscriber, with `Content-Type: application/json`
    /// and the headers `sign(secret, body)` returns. Does nothing without a subscription.
    pub(crate) fn send(
        &self,
        event: &str,
        body: String,
        sign: impl FnOnce(&str, &[u8]) -> Vec<(&'static str, String)>,
    ) {
        let subscription = lock(&self.subscription);
        let Some(subscription) = subscription.as_ref() else {
            tracing::debug!(event, "no webhook subscription; event not sent");
            return;
        };
        let mut headers =
            BTreeMap::from([("content-type".to_owned(), "application/json".to_owned())]);
        for (name, value) in sign(&subscription.secret, body.as_bytes()) {
            headers.insert(name.to_ascii_lowercase(), value);
        }
        let outgoing = Outgoing {
            event: event.to_owned(),
            url: subscription.url.clone(),
            body,
            headers,
        };
        if self.queue.send(outgoing).is_err() {
            tracing::warn!(event, "the webhook worker has stopped; event not sent");
        }
    }

    /// Every attempt so far, in the order they were made.
    pub(crate) fn attempts(&self) -> Vec<WebhookAttempt> {
        lock(&self.attempts).clone()
    }
}

async fn deliver(
    standin: &'static str,
    client: &reqwest::Client,
    event: &Outgoing,
    log: &Mutex<Vec<WebhookAttempt>>,
) {
    let mut backoff = WEBHOOK_FIRST_BACKOFF;
    for attempt in 1..=WEBHOOK_ATTEMPTS {
        let mut request = client.post(&event.url).body(event.body.clone());
        for (name, value) in &event.headers {
            request = request.header(name, value);
        }
        let (status, error) = match request.send().await {
            Ok(response) => (Some(response.status().as_u16()), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let record = WebhookAttempt {
            event: event.event.clone(),
            url: event.url.clone(),
            attempt,
            headers: event.headers.clone(),
            body: event.body.clone(),
            status,
            error,
        };
        let delivered = record.delivered();
        tracing::debug!(standin, event = %event.event, attempt, ?status, "webhook attempt");
        lock(log).push(record);
        if delivered {
            return;
        }
        if attempt < WEBHOOK_ATTEMPTS {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
    tracing::warn!(standin, event = %event.event, url = %event.url, "webhook given up");
}
