//! `/v1/connections`: list, create or replace, check, and invoke operations.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::json;

use crate::config::Scope;
use crate::error::ApiError;
use crate::extract::{ApiState, Caller, JsonBody, RawBody, utf8};
use junction_runtime::runtime::{CallOptions, ConnectionError, ConnectionSpec};
use junction_runtime::trace::TraceContext;
use junction_store::Connection;
use junction_store::audit::{Outcome, Record};
use junction_store::idempotency::{self, Claim};

/// A connection as the API shows it: credentials reduced to their kind.
#[derive(Serialize)]
pub(crate) struct ConnectionView {
    name: String,
    plugin: String,
    version: Option<String>,
    config: std::collections::BTreeMap<String, String>,
    auth: Option<serde_json::Value>,
    allowed_hosts: Vec<String>,
    private_hosts: Vec<String>,
    rate_limit: Option<junction_store::RateLimit>,
    webhook: Option<serde_json::Value>,
    created_at: String,
    updated_at: String,
}

impl From<Connection> for ConnectionView {
    fn from(c: Connection) -> Self {
        ConnectionView {
            auth: c.auth.as_ref().map(|a| json!({"type": a.kind()})),
            name: c.name,
            plugin: c.plugin,
            version: c.version,
            config: c.config,
            allowed_hosts: c.allowed_hosts,
            private_hosts: c.private_hosts,
            rate_limit: c.rate_limit,
            webhook: c.webhook.as_ref().map(|w| json!({"scheme": w.scheme})),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

pub(crate) async fn list_connections(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Read)?;
    let connections = state
        .runtime
        .store()
        .connections()
        .await
        .map_err(ConnectionError::from)?;
    let views: Vec<ConnectionView> = connections.into_iter().map(Into::into).collect();
    Ok(Json(json!({"connections": views})))
}

pub(crate) async fn put_connection(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
    JsonBody(spec): JsonBody<ConnectionSpec>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Operator)?;
    let plugin = spec.plugin.clone();
    let result = state.runtime.put_connection(&name, spec).await;
    let record = Record {
        actor: &caller.name,
        action: "connection.put",
        target: &name,
        digest: None,
        outcome: Outcome::of(&result),
        detail: &match &result {
            Ok(_) => format!("plugin {plugin}"),
            Err(e) => e.to_string(),
        },
    };
    state.runtime.store().audit_or_log(record).await;
    let (connection, created) = result?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(ConnectionView::from(connection))).into_response())
}

pub(crate) async fn check_connection(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Invoker)?;
    let plugin = state.runtime.check(&name).await?;
    Ok(Json(
        json!({"status": "ok", "plugin": plugin.name(), "version": plugin.version().to_string()}),
    ))
}

/// The options of a call made for a request: its `Idempotency-Key` and its
/// trace, so the plugin and the systems it calls see the request's trace id.
pub(crate) fn call_options(headers: &HeaderMap, trace: Option<TraceContext>) -> CallOptions {
    CallOptions {
        idempotency_key: headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        trace,
        ..CallOptions::default()
    }
}

pub(crate) async fn invoke(
    caller: Caller,
    State(state): State<ApiState>,
    Path((name, op)): Path<(String, String)>,
    headers: HeaderMap,
    trace: Option<Extension<TraceContext>>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(Scope::Invoker)?;
    let input = utf8(&body)?;
    let input = if input.trim().is_empty() { "{}" } else { input };
    let options = call_options(&headers, trace.map(|t| t.0));
    let store = state.runtime.store();
    let claimed = match &options.idempotency_key {
        Some(key) => {
            if key.is_empty() || key.len() > 255 {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "the Idempotency-Key header must be 1-255 characters",
                ));
            }
            let request = idempotency::request_digest(&name, &op, input);
            // A first request that never finished (its host died) is given up after this.
            let stale = state.runtime.limits().deadline() * 2 + std::time::Duration::from_secs(60);
            match store
                .claim_idempotent(&caller.name, key, &request, stale)
                .await
                .map_err(ConnectionError::from)?
            {
                Claim::Run => Some(key.clone()),
                Claim::Replay { response, plugin } => {
                    return Ok(operation_answer(response, &plugin, true));
                }
                Claim::Mismatch => {
                    return Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "idempotency_key_reused",
                        format!("Idempotency-Key `{key}` was used for another request"),
                    ));
                }
                Claim::InFlight => {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "idempotency_key_in_flight",
                        format!("a request with Idempotency-Key `{key}` is still running"),
                    )
                    .retry_after(1));
                }
            }
        }
        None => None,
    };
    let result = state.runtime.invoke(&name, &op, input, options).await;
    match (&result, &claimed) {
        (Ok(output), Some(key)) => {
            let version = format!("{}@{}", output.plugin.name(), output.plugin.version());
            if let Err(e) = store
                .finish_idempotent(&caller.name, key, &output.json, &version)
                .await
            {
                tracing::error!(error = %e, "could not store an idempotent answer");
            }
        }
        (Err(_), Some(key)) => {
            if let Err(e) = store.release_idempotent(&caller.name, key).await {
                tracing::error!(error = %e, "could not release an idempotency key");
            }
        }
        (_, None) => {}
    }
    let output = result?;
    let version = format!("{}@{}", output.plugin.name(), output.plugin.version());
    Ok(operation_answer(output.json, &version, false))
}

/// An operation's output, with the plugin version that produced it.
pub(crate) fn operation_answer(json: String, version: &str, replayed: bool) -> Response {
    let mut response = (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::HeaderName::from_static("junction-plugin"),
                HeaderValue::from_str(version).unwrap_or(HeaderValue::from_static("unknown")),
            ),
        ],
        json,
    )
        .into_response();
    if replayed {
        response.headers_mut().insert(
            header::HeaderName::from_static("idempotent-replayed"),
            HeaderValue::from_static("true"),
        );
    }
    response
}
