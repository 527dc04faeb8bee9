//! Inbound webhooks: the host checks the sender's signature with the
//! connection's webhook secret, then the connector's `handle-webhook` export
//! parses the request into events.
//!
//! A request whose signature is missing, wrong or stale never reaches the
//! plugin. The events are returned to the caller; committing them durably
//! before answering (and de-duplicating them) is the event intake's job,
//! which comes later.

use std::sync::Arc;
use std::time::SystemTime;

use junction_registry::World;

use crate::bindings::junction::plugin::types::{Event, WebhookRequest as WitWebhookRequest};
use crate::plugins::{Plugin, Pre};
use crate::runtime::{
    CallError, CallOptions, Runtime, admit, check_output, conclude, run_with_deadline, settle,
};
use crate::webhooks::{SignatureError, Verify as _, WebhookRequest};
use junction_store::Connection;

/// A webhook as the host received it.
#[derive(Debug, Clone, Copy)]
pub struct InboundWebhook<'a> {
    /// The HTTP method, upper case.
    pub method: &'a str,
    /// The full URL the sender addressed: the host's public URL followed by
    /// `path` (HubSpot v3 signs it).
    pub url: &'a str,
    /// Path and query as received.
    pub path: &'a str,
    /// Header names and values as received.
    pub headers: &'a [(String, String)],
    /// The raw body.
    pub body: &'a [u8],
}

/// An event a plugin parsed from a webhook: a CloudEvent 1.0, passed on
/// to the outbox as it is.
pub type WebhookEvent = junction_store::CloudEvent;

/// Why a webhook was not handled.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The connection has no webhook settings, so nothing can verify it.
    #[error(
        "connection `{0}` does not accept webhooks: it has no webhook settings (set `webhook` \
         with a scheme and secret on the connection)"
    )]
    NotConfigured(String),
    /// The signature is missing, malformed, wrong or stale.
    #[error("webhook refused: {0}")]
    Refused(#[from] SignatureError),
    /// The connection is unknown, or the plugin failed.
    #[error(transparent)]
    Call(#[from] CallError),
}

impl Runtime {
    /// Verifies `request`'s signature with the webhook settings of
    /// `connection`, then has the connection's plugin parse it into events.
    /// `now` is the time signed timestamps are checked against.
    ///
    /// The plugin is called only for a request whose signature verifies.
    pub async fn handle_webhook(
        &self,
        connection: &str,
        request: InboundWebhook<'_>,
        now: SystemTime,
    ) -> Result<(Vec<WebhookEvent>, Arc<Plugin>), WebhookError> {
        let result = self.verified_call(connection, request, now).await;
        if let Err(err) = &result {
            match err {
                WebhookError::NotConfigured(_)
                | WebhookError::Refused(_)
                | WebhookError::Call(CallError::UnknownConnection(_)) => {
                    tracing::warn!(connection, reason = %err, "webhook refused");
                }
                WebhookError::Call(_) => {
                    tracing::warn!(connection, error = %err, "webhook failed");
                }
            }
        }
        result
    }

    async fn verified_call(
        &self,
        connection: &str,
        request: InboundWebhook<'_>,
        now: SystemTime,
    ) -> Result<(Vec<WebhookEvent>, Arc<Plugin>), WebhookError> {
        // Verify before saying anything about the plugin: a missing plugin is
        // only reported to a sender who signed correctly.
        let (conn, plugin) = match self.connector_for(connection).await {
            Ok((conn, plugin)) => (conn, Ok(plugin)),
            Err(CallError::UnknownPlugin(name)) => {
                let conn = self
                    .store()
                    .connection(connection)
                    .await
                    .map_err(CallError::from)?
                    .ok_or_else(|| CallError::UnknownConnection(connection.to_string()))?;
                (Arc::new(conn), Err(CallError::UnknownPlugin(name)))
            }
            Err(err) => return Err(err.into()),
        };
        verify(&conn, &request, now)?;
        let plugin = plugin?;
        let span = crate::call::call_span("handle-webhook", &conn.name, "handle-webhook");
        let events = crate::call::traced(span, async {
            crate::call::record_plugin(&plugin);
            self.call_handle_webhook(&conn, &plugin, &request).await
        })
        .await?;
        tracing::debug!(connection, events = events.len(), "webhook handled");
        Ok((events, plugin))
    }

    /// Has the connection's plugin parse `request` into events without
    /// checking a signature: for `junction plugin test`, which tests a
    /// plugin's parsing (the host's verification is tested with the host).
    /// No endpoint of the API calls it.
    pub async fn parse_webhook_unverified(
        &self,
        connection: &str,
        request: InboundWebhook<'_>,
    ) -> Result<(Vec<WebhookEvent>, Arc<Plugin>), CallError> {
        let (conn, plugin) = self.connector_for(connection).await?;
        let events = self.call_handle_webhook(&conn, &plugin, &request).await?;
        Ok((events, plugin))
    }

    async fn call_handle_webhook(
        &self,
        conn: &Connection,
        plugin: &Arc<Plugin>,
        request: &InboundWebhook<'_>,
    ) -> Result<Vec<WebhookEvent>, CallError> {
        let Pre::Connector(pre) = &plugin.pre else {
            return Err(CallError::WrongWorld {
                plugin: plugin.name().to_string(),
                expected: World::Connector,
                actual: plugin.world(),
            });
        };
        let wit_request = WitWebhookRequest {
            method: request.method.to_string(),
            path: request.path.to_string(),
            headers: request
                .headers
                .iter()
                .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
                .collect(),
            body: request.body.to_vec(),
        };
        let _admitted = admit(plugin, &self.pool).await?;
        let (mut store, ctx) = self.connector_store(conn, plugin, CallOptions::default())?;
        let result = run_with_deadline(&mut store, plugin.limits.deadline(), async |store| {
            pre.instantiate_async(&mut *store)
                .await?
                .call_handle_webhook(&mut *store, &ctx, &wit_request)
                .await
        })
        .await;
        let events = conclude(settle(result, &store, plugin.limits.deadline_ms), &store)?;
        events_from_plugin(plugin, events)
    }
}

/// Checks the request against the connection's webhook settings.
fn verify(
    conn: &Connection,
    request: &InboundWebhook<'_>,
    now: SystemTime,
) -> Result<(), WebhookError> {
    let settings = conn
        .webhook
        .as_ref()
        .ok_or_else(|| WebhookError::NotConfigured(conn.name.clone()))?;
    let signed = WebhookRequest {
        method: request.method,
        uri: request.url,
        headers: request.headers,
        body: request.body,
    };
    settings
        .scheme
        .verify(&signed, now, settings.secret.as_bytes())?;
    Ok(())
}

/// Checks the events a plugin returned (within its output cap, with an id,
/// type and source, JSON data) and parses their data.
fn events_from_plugin(plugin: &Plugin, events: Vec<Event>) -> Result<Vec<WebhookEvent>, CallError> {
    let size: usize = events
        .iter()
        .map(|e| {
            e.id.len()
                + e.event_type.len()
                + e.source.len()
                + e.subject.as_deref().map_or(0, str::len)
                + e.time.len()
                + e.data.len()
        })
        .sum();
    let limit = plugin.limits.output_bytes;
    if u64::try_from(size).unwrap_or(u64::MAX) > limit {
        return Err(CallError::OutputTooLarge { size, limit });
    }
    check_output(&plugin.limits, events.iter().map(|e| e.data.as_str()))?;
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            for (field, value) in [
                ("id", &e.id),
                ("type", &e.event_type),
                ("source", &e.source),
            ] {
                if value.is_empty() {
                    return Err(CallError::BadOutput(format!(
                        "event {i} has an empty `{field}`"
                    )));
                }
            }
            let data = serde_json::from_str(&e.data)
                .map_err(|err| CallError::BadOutput(format!("event {i} data: {err}")))?;
            Ok(WebhookEvent::new(
                e.id,
                e.source,
                e.event_type,
                e.subject,
                e.time,
                data,
            ))
        })
        .collect()
}
