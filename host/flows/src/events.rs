//! Events out: the outbox's CloudEvents published to NATS JetStream
//! (`[events]` in `junction.toml`).
//!
//! The store writes every event in the transaction of the state change it
//! describes ([`junction_store::events`]). The [`Publisher`] reads the rows
//! JetStream has not acknowledged, publishes each in the CloudEvents
//! structured JSON format on a subject per type under `subject_prefix`,
//! waits for JetStream's acknowledgements and only then marks the rows. A
//! host killed between the acknowledgement and the mark publishes those
//! rows again when it starts; each carries its CloudEvent id as
//! `Nats-Msg-Id`, so JetStream drops the copy within its duplicate window.
//! Without `nats_url` the events stay readable as the feed
//! `GET /v1/events?after=<cursor>`.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use serde::{Deserialize, Serialize};

use junction_runtime::metrics::Metrics;
use junction_store::{EventRow, Store, now_ms};

/// Where events go (`[events]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct EventSettings {
    /// The NATS server to publish to, e.g. `nats://127.0.0.1:4222`; none:
    /// events are only kept for the feed.
    pub nats_url: Option<String>,
    /// Subjects are `<prefix>.<type>`: `junction.run.completed`, and
    /// `junction.webhook.<type>` for events a webhook delivered.
    pub subject_prefix: String,
    /// The JetStream stream, created over `<prefix>.>` when it does not exist.
    pub stream: String,
    /// How long the outbox keeps an event, in hours (published ones only,
    /// when NATS is configured).
    pub retain_hours: u64,
    /// How often the publisher looks for other hosts' events, in ms (this
    /// host's own wake it at once).
    pub poll_ms: u64,
}

impl Default for EventSettings {
    fn default() -> Self {
        EventSettings {
            nats_url: None,
            subject_prefix: "junction".into(),
            stream: "JUNCTION_EVENTS".into(),
            retain_hours: 24 * 7,
            poll_ms: 1000,
        }
    }
}

impl EventSettings {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        let token_ok = |t: &str| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !self.subject_prefix.split('.').all(token_ok) {
            return Err(format!(
                "events.subject_prefix `{}` is not a NATS subject: use dot-separated tokens of \
                 letters, digits, `_` and `-` (e.g. `junction` or `acme.junction`)",
                self.subject_prefix
            ));
        }
        if !token_ok(&self.stream) {
            return Err(format!(
                "events.stream `{}` is not a JetStream stream name: use letters, digits, `_` \
                 and `-` (e.g. `JUNCTION_EVENTS`)",
                self.stream
            ));
        }
        if self.retain_hours == 0 || self.poll_ms == 0 {
            return Err("events.retain_hours and events.poll_ms must be above zero".into());
        }
        Ok(())
    }
}

/// The subject `event_type` is published on: the host's own types
/// (`dev.junction.run.completed`) under the prefix without their namespace,
/// every other type under `<prefix>.webhook.`, with each character NATS
/// does not allow in a token replaced by `_`.
pub fn subject(prefix: &str, event_type: &str) -> String {
    let (group, rest) = match event_type.strip_prefix("dev.junction.") {
        Some(own) => ("", own),
        None => ("webhook.", event_type),
    };
    let tokens: Vec<String> = rest
        .split('.')
        .map(|t| {
            let clean: String = t
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            if clean.is_empty() { "_".into() } else { clean }
        })
        .collect();
    format!("{prefix}.{group}{}", tokens.join("."))
}

/// The `Nats-Msg-Id` of an event: its CloudEvent id. CloudEvents ids are
/// unique per source only, so an event a webhook delivered (a type outside
/// the host's `dev.junction.`) has its source, a space, then the id.
pub fn message_id(event: &junction_store::CloudEvent) -> String {
    if event.event_type.starts_with("dev.junction.") {
        event.id.clone()
    } else {
        format!("{} {}", event.source, event.id)
    }
}

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// NATS could not be reached or refused the stream.
    #[error("NATS at {url}: {message}")]
    Nats {
        /// The server (without credentials).
        url: String,
        /// What failed.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] junction_store::Error),
}

/// Publishes the outbox to one JetStream stream.
#[derive(Clone)]
pub struct Publisher {
    store: Store,
    settings: EventSettings,
    url: String,
    js: jetstream::Context,
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("url", &self.url)
            .field("stream", &self.settings.stream)
            .finish_non_exhaustive()
    }
}

/// The most events published per round.
const ROUND: u32 = 256;

impl Publisher {
    /// Connects to `url` and makes sure the stream exists (over
    /// `<prefix>.>`, with JetStream's default two-minute duplicate window).
    pub async fn connect(
        store: Store,
        settings: EventSettings,
        url: &str,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Publisher, PublishError> {
        let shown = junction_store::redact_url(url);
        let failed = |message: String| PublishError::Nats {
            url: shown.clone(),
            message,
        };
        let client = async_nats::ConnectOptions::new()
            .name("junction")
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| failed(format!("cannot connect: {e}")))?;
        let js = jetstream::new(client);
        let config = jetstream::stream::Config {
            name: settings.stream.clone(),
            subjects: vec![format!("{}.>", settings.subject_prefix)],
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        js.get_or_create_stream(config).await.map_err(|e| {
            failed(format!(
                "cannot use JetStream stream `{}`: {e} (is JetStream enabled, `nats-server -js`?)",
                settings.stream
            ))
        })?;
        Ok(Publisher {
            store,
            settings,
            url: shown,
            js,
            metrics,
        })
    }

    /// Publishes `rows` and waits for JetStream's acknowledgements.
    /// Returns the rows acknowledged, in order, stopping at the first that
    /// was not; nothing is marked (see [`Publisher::publish_pending`]).
    pub async fn publish(&self, rows: &[EventRow]) -> Result<Vec<i64>, PublishError> {
        let failed = |message: String| PublishError::Nats {
            url: self.url.clone(),
            message,
        };
        let mut pending = Vec::with_capacity(rows.len());
        for row in rows {
            let event = &row.event;
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(async_nats::header::NATS_MESSAGE_ID, message_id(event));
            headers.insert("Content-Type", "application/cloudevents+json");
            let payload = serde_json::to_vec(event).map_err(|e| failed(e.to_string()))?;
            let subject = subject(&self.settings.subject_prefix, &event.event_type);
            match self
                .js
                .publish_with_headers(subject, headers, payload.into())
                .await
            {
                Ok(ack) => pending.push((row.seq(), ack)),
                Err(e) => {
                    tracing::warn!(error = %e, "publishing an event failed");
                    break;
                }
            }
        }
        let mut acked = Vec::with_capacity(pending.len());
        for (seq, ack) in pending {
            match ack.await {
                Ok(_) => acked.push(seq),
                Err(e) => {
                    tracing::warn!(error = %e, "JetStream did not acknowledge an event");
                    break;
                }
            }
        }
        if acked.is_empty() && !rows.is_empty() {
            return Err(failed("JetStream acknowledged none of the events".into()));
        }
        Ok(acked)
    }

    /// One round: publishes up to 256 unacknowledged events and marks those
    /// JetStream acknowledged. Returns how many it marked.
    pub async fn publish_pending(&self) -> Result<usize, PublishError> {
        let rows = self.store.unpublished_events(ROUND).await?;
        if let Some(m) = &self.metrics {
            m.set_events_unpublished(rows.len());
        }
        if rows.is_empty() {
            return Ok(0);
        }
        let acked = self.publish(&rows).await?;
        self.store.mark_published(&acked, now_ms()).await?;
        if let Some(m) = &self.metrics {
            m.record_events_published(acked.len() as u64);
        }
        Ok(acked.len())
    }

    /// Publishes until `shutdown` resolves: every round that fills up is
    /// followed by another at once; otherwise it waits for this host's next
    /// events or `poll_ms`. A failed round is logged and retried with a
    /// backoff up to 30 s; the events wait in the outbox meanwhile.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let written = self.store.events_written();
        let poll = Duration::from_millis(self.settings.poll_ms);
        let mut backoff = Duration::from_millis(200);
        let mut last_prune = 0_i64;
        loop {
            let wait = match self.publish_pending().await {
                Ok(n) if n >= ROUND as usize => Duration::ZERO,
                Ok(_) => {
                    backoff = Duration::from_millis(200);
                    poll
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "the event publisher failed a round; events wait in the outbox");
                    if let Some(m) = &self.metrics {
                        m.record_event_publish_failure();
                    }
                    let wait = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    wait
                }
            };
            let now = now_ms();
            if now - last_prune > 60_000 {
                last_prune = now;
                prune(&self.store, &self.settings, true).await;
            }
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = written.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Starts what `settings` asks for on the current Tokio runtime: with a
/// `nats_url`, a publisher (connecting again with a backoff up to 30 s
/// while NATS is unreachable, the events waiting in the outbox); without
/// one, the pruning of the feed. It runs until the process ends.
pub fn spawn(
    store: Store,
    settings: EventSettings,
    metrics: Option<Arc<Metrics>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(url) = settings.nats_url.clone() else {
            return prune_loop(store, settings, std::future::pending()).await;
        };
        let mut backoff = Duration::from_millis(500);
        loop {
            match Publisher::connect(store.clone(), settings.clone(), &url, metrics.clone()).await {
                Ok(publisher) => {
                    tracing::info!(url = %publisher.url, stream = %settings.stream, "publishing events to NATS JetStream");
                    return publisher.run(std::future::pending()).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "the event publisher cannot start; events wait in the outbox");
                    if let Some(m) = &metrics {
                        m.record_event_publish_failure();
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    })
}

/// Deletes events older than `retain_hours` (only published ones when
/// `published_only`), logging what it did.
pub async fn prune(store: &Store, settings: &EventSettings, published_only: bool) {
    let retain_ms =
        i64::try_from(settings.retain_hours.saturating_mul(3_600_000)).unwrap_or(i64::MAX);
    match store
        .prune_events(now_ms().saturating_sub(retain_ms), published_only)
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, "pruned old events from the outbox"),
        Err(e) => tracing::warn!(error = %e, "pruning the outbox failed"),
    }
}

/// Keeps the outbox within `retain_hours` on a host without NATS, until
/// `shutdown` resolves.
pub async fn prune_loop(
    store: Store,
    settings: EventSettings,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        prune(&store, &settings, false).await;
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(Duration::from_secs(600)) => {}
        }
    }
}
