//! `/v1/webhooks/{connection}`: inbound webhooks, verified then parsed by the plugin.

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;

use crate::error::{ApiError, CallRefused};
use crate::extract::{ApiState, RawBody};
use junction_flows::EventRun;
use junction_runtime::inbound::InboundWebhook;
use junction_runtime::inbound::WebhookEvent;
use junction_runtime::trace::TraceContext;

/// An inbound webhook: no bearer token, the signature authenticates it.
/// What a webhook delivery became.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Delivered {
    /// The events the connector parsed from it.
    events: Vec<WebhookEvent>,
    /// The runs they started (or had started, for a repeated delivery);
    /// absent when no flow listens.
    #[serde(skip_serializing_if = "Option::is_none")]
    runs: Option<Vec<EventRun>>,
}

/// A webhook from a remote system, for the connection's plugin to parse into
/// events, which start the flows that listen for them. No bearer token: the
/// request is authenticated by its signature under the connection's scheme,
/// each in its own headers (`generic_hmac` in the header the connection names).
#[utoipa::path(post, path = "/v1/webhooks/{connection}", tag = "webhooks",
    security(()),
    params(
        ("connection" = String, Path, description = "The connection whose webhook settings verify the signature"),
        ("X-HubSpot-Signature-v3" = Option<String>, Header, description = "Scheme `hubspot_v3`: base64 HMAC-SHA256 of method, URL, body and timestamp"),
        ("X-HubSpot-Request-Timestamp" = Option<String>, Header, description = "Scheme `hubspot_v3`: Unix milliseconds; a stale timestamp is refused"),
        ("Stripe-Signature" = Option<String>, Header, description = "Scheme `stripe`: `t=<unix seconds>,v1=<hex>`"),
        ("X-Hub-Signature-256" = Option<String>, Header, description = "Scheme `github`: `sha256=<hex>` over the body"),
        ("X-Slack-Signature" = Option<String>, Header, description = "Scheme `slack`: `v0=<hex>`"),
        ("X-Slack-Request-Timestamp" = Option<String>, Header, description = "Scheme `slack`: Unix seconds"),
        ("traceparent" = Option<String>, Header, description = "W3C trace context: the runs started join this trace"),
    ),
    request_body(content = serde_json::Value, content_type = "application/json", description = "The sender's payload as it sent it (verified byte for byte, so any content type is accepted)"),
    responses(CallRefused,
        (status = 200, description = "Verified and parsed", body = Delivered,
            headers(("Junction-Plugin" = String, description = "`<plugin>@<version>` that parsed it"))),
        (status = 401, description = "The signature is missing, wrong or stale (`invalid_signature`)", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn webhook(
    State(state): State<ApiState>,
    Path(connection): Path<String>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    trace: Option<Extension<TraceContext>>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path(), |p| p.as_str());
    let url = format!("{}{path}", state.public_url);
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let request = InboundWebhook {
        method: method.as_str(),
        url: &url,
        path,
        headers: &headers,
        body: &body,
    };
    let metrics = state.runtime.metrics();
    let handled = state
        .runtime
        .handle_webhook(&connection, request, std::time::SystemTime::now())
        .await;
    if let Err(err) = &handled {
        metrics.record_webhook_refused(&connection, err);
    }
    let (events, plugin) = handled?;
    // Committed before the answer: a sender that gets a 2xx never has to resend.
    let started = state
        .flows
        .start_runs_for_events(&connection, &events, trace.as_ref().map(|t| &t.0))
        .await;
    match &started {
        Ok(runs) => {
            let duplicate = !runs.is_empty() && runs.iter().all(|r| r.duplicate);
            metrics.record_webhook_accepted(&connection, duplicate);
        }
        Err(_) => metrics.record_webhook_failed(&connection),
    }
    let runs = started?;
    let version = format!("{}@{}", plugin.name(), plugin.version());
    Ok((
        [(
            header::HeaderName::from_static("junction-plugin"),
            HeaderValue::from_str(&version).unwrap_or(HeaderValue::from_static("unknown")),
        )],
        Json(Delivered {
            events,
            runs: (!runs.is_empty()).then_some(runs),
        }),
    )
        .into_response())
}
