//! `/v1/webhooks/{connection}`: inbound webhooks, verified then parsed by the plugin.

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{ApiState, RawBody};
use junction_runtime::inbound::InboundWebhook;
use junction_runtime::trace::TraceContext;

/// An inbound webhook: no bearer token, the signature authenticates it.
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
        Json(if runs.is_empty() {
            json!({ "events": events })
        } else {
            json!({ "events": events, "runs": runs })
        }),
    )
        .into_response())
}
