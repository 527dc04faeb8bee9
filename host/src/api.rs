//! The HTTP API, versioned under `/v1`.
//!
//! Every error has one shape, `{"error":{"code","message"}}`, with the
//! status that says what the client should do. Admin endpoints need a
//! bearer token whose scope covers them; webhooks are authenticated by their
//! signature instead.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{
    DefaultBodyLimit, FromRequest, FromRequestParts, OriginalUri, Path, Request, State,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::audit::{Outcome, Record};
use crate::bindings::PluginError;
use crate::config::{Config, Scope};
use crate::flows::idempotency::{self, Claim};
use crate::flows::{FlowError, Flows};
use crate::inbound::{InboundWebhook, WebhookError};
use crate::lifecycle::LifecycleError;
use crate::plugins::Conflict;
use crate::runtime::{CallError, CallOptions, ConnectionError, ConnectionSpec, LoadError, Runtime};
use crate::store::Connection;
use junction_registry::Refusal;

/// An API error: a status, a stable machine-readable code and a message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after_secs = Some(secs.max(1));
        self
    }

    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, code = self.code, message = %self.message, "request failed");
        }
        let body = Json(json!({"error": {"code": self.code, "message": self.message}}));
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        // Webhooks are refused with 401 too, but no bearer token would help them.
        if self.status == StatusCode::UNAUTHORIZED && self.code == "unauthorized" {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"junction\""),
            );
        }
        response
    }
}

impl From<CallError> for ApiError {
    fn from(err: CallError) -> ApiError {
        use StatusCode as S;
        let message = err.to_string();
        match err {
            CallError::UnknownConnection(_)
            | CallError::UnknownPlugin(_)
            | CallError::UnknownOperation { .. } => ApiError::not_found(message),
            CallError::WrongWorld { .. } => {
                ApiError::new(S::BAD_REQUEST, "wrong_plugin_kind", message)
            }
            CallError::InvalidJson(_) => ApiError::new(S::BAD_REQUEST, "invalid_json", message),
            CallError::Plugin(e) => match e {
                PluginError::InvalidInput(_) => {
                    ApiError::new(S::UNPROCESSABLE_ENTITY, "invalid_input", message)
                }
                PluginError::Unauthorized(_) => {
                    ApiError::new(S::BAD_GATEWAY, "upstream_unauthorized", message)
                }
                PluginError::NotFound(_) => {
                    ApiError::new(S::NOT_FOUND, "upstream_not_found", message)
                }
                PluginError::Conflict(_) => ApiError::new(S::CONFLICT, "conflict", message),
                PluginError::RateLimited(ms) => {
                    ApiError::new(S::TOO_MANY_REQUESTS, "rate_limited", message)
                        .retry_after(ms.div_ceil(1000))
                }
                PluginError::Unavailable(_) => {
                    ApiError::new(S::SERVICE_UNAVAILABLE, "upstream_unavailable", message)
                        .retry_after(1)
                }
                PluginError::Internal(_) => ApiError::new(S::BAD_GATEWAY, "plugin_error", message),
            },
            CallError::Timeout { .. } => {
                ApiError::new(S::GATEWAY_TIMEOUT, "plugin_timeout", message)
            }
            CallError::LimitExceeded { .. } => {
                ApiError::new(S::BAD_GATEWAY, "plugin_limit_exceeded", message)
            }
            CallError::Trap(_) => ApiError::new(S::BAD_GATEWAY, "plugin_trapped", message),
            CallError::OutputTooLarge { .. } => {
                ApiError::new(S::BAD_GATEWAY, "plugin_output_too_large", message)
            }
            CallError::BadOutput(_) => ApiError::new(S::BAD_GATEWAY, "plugin_bad_output", message),
            CallError::Busy { retry_after_ms, .. } => {
                ApiError::new(S::SERVICE_UNAVAILABLE, "plugin_busy", message)
                    .retry_after(retry_after_ms.div_ceil(1000))
            }
            CallError::Internal(detail) => {
                tracing::error!(%detail, "internal error during a plugin call");
                ApiError::new(S::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

impl From<ConnectionError> for ApiError {
    fn from(err: ConnectionError) -> ApiError {
        match err {
            ConnectionError::Invalid(message) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_connection",
                message,
            ),
            ConnectionError::Store(e) => {
                tracing::error!(error = %e, "store failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

impl From<LifecycleError> for ApiError {
    fn from(err: LifecycleError) -> ApiError {
        use StatusCode as S;
        let message = err.to_string();
        let conflict = |c: &Conflict| match c {
            Conflict::DigestMismatch { .. } | Conflict::InUse(_) => S::CONFLICT,
            Conflict::NotLoaded(_) => S::NOT_FOUND,
        };
        match &err {
            LifecycleError::Load(LoadError::Refused(refusal)) => match refusal {
                Refusal::TooLarge { .. } => {
                    ApiError::new(S::PAYLOAD_TOO_LARGE, "payload_too_large", message)
                }
                Refusal::Unsigned
                | Refusal::UntrustedSigner { .. }
                | Refusal::BadSignature { .. } => {
                    ApiError::new(S::FORBIDDEN, "untrusted_package", message)
                }
                Refusal::UnknownWorld { .. }
                | Refusal::ForbiddenImports { .. }
                | Refusal::WorldMismatch { .. }
                | Refusal::ManifestMismatch { .. } => {
                    ApiError::new(S::UNPROCESSABLE_ENTITY, "invalid_plugin", message)
                }
                _ => ApiError::new(S::BAD_REQUEST, "invalid_package", message),
            },
            LifecycleError::Load(LoadError::Invalid(_)) => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, "invalid_plugin", message)
            }
            LifecycleError::Load(LoadError::Conflict(c)) | LifecycleError::Conflict(c) => {
                let status = conflict(c);
                ApiError::new(
                    status,
                    if status == S::NOT_FOUND {
                        "not_found"
                    } else {
                        "conflict"
                    },
                    message,
                )
            }
            LifecycleError::Store(e) => {
                tracing::error!(error = %e, "store failed");
                ApiError::new(S::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

impl From<WebhookError> for ApiError {
    fn from(err: WebhookError) -> ApiError {
        match err {
            WebhookError::NotConfigured(_) => ApiError::new(
                StatusCode::CONFLICT,
                "webhook_not_configured",
                err.to_string(),
            ),
            WebhookError::Refused(reason) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_signature",
                format!("webhook signature refused: {reason}"),
            ),
            WebhookError::Call(err) => err.into(),
        }
    }
}

/// A JSON body; malformed JSON is a 400, an oversized body a 413, both in the error shape.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = RawBody::from_request(req, state).await?.0;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("invalid request body: {e}"),
            )
        })
    }
}

/// The raw body; an oversized body is a 413 in the error shape.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|rejection| {
                let status = rejection.status();
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        status,
                        "payload_too_large",
                        "the request body is larger than the host accepts",
                    )
                } else {
                    ApiError::new(status, "bad_request", rejection.body_text())
                }
            })
    }
}

/// Token digests and what they may do.
struct Tokens(Vec<(String, [u8; 32], Scope)>);

impl Tokens {
    fn find(&self, presented: &str) -> Option<(&str, Scope)> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Compare digests, not secrets, and every entry, so timing says nothing useful.
        let mut found = None;
        for (name, expected, scope) in &self.0 {
            let same = expected
                .iter()
                .zip(digest.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
            if same {
                found = Some((name.as_str(), *scope));
            }
        }
        found
    }
}

/// The shared state of the API.
#[derive(Clone)]
pub struct ApiState {
    runtime: Arc<Runtime>,
    flows: Arc<Flows>,
    tokens: Arc<Tokens>,
    /// Where senders reach the host, without a trailing `/`.
    public_url: Arc<str>,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Token name from the configuration.
    pub name: String,
    /// Its scope.
    pub scope: Scope,
}

impl Caller {
    fn require(&self, needed: Scope) -> Result<(), ApiError> {
        if self.scope >= needed {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "token `{}` has scope `{}`; this needs `{}`",
                    self.name,
                    self.scope.as_str(),
                    needed.as_str()
                ),
            ))
        }
    }
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("missing `Authorization: Bearer <token>` header"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
        let (name, scope) = state
            .tokens
            .find(token.trim())
            .ok_or_else(|| unauthorized("unknown token"))?;
        Ok(Caller {
            name: name.to_string(),
            scope,
        })
    }
}

/// The API router over `runtime`, with the tokens, body limit and flow
/// settings of `config`. Starts the flow workers when called inside a Tokio
/// runtime; they stop when the router is dropped.
pub fn router(runtime: Arc<Runtime>, config: &Config) -> Router {
    let flows = Flows::new(runtime.clone(), config.flows.options());
    if tokio::runtime::Handle::try_current().is_ok() {
        flows.spawn_workers();
    }
    router_with_flows(flows, config)
}

/// The API router over `flows` (and its runtime), whose workers the caller runs.
pub fn router_with_flows(flows: Arc<Flows>, config: &Config) -> Router {
    let runtime = flows.runtime().clone();
    let tokens = config
        .tokens
        .iter()
        .map(|(name, t)| {
            (
                name.clone(),
                Sha256::digest(t.token.as_bytes()).into(),
                t.scope,
            )
        })
        .collect();
    let state = ApiState {
        runtime,
        flows,
        tokens: Arc::new(Tokens(tokens)),
        public_url: config.public_url().into(),
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            "/v1/plugins",
            get(list_plugins)
                .post(upload_plugin)
                .layer(DefaultBodyLimit::max(
                    config.max_component_bytes.saturating_add(1024 * 1024),
                )),
        )
        .route("/v1/plugins/{name}", get(plugin_detail))
        .route(
            "/v1/plugins/{name}/versions/{version}/activate",
            post(activate_plugin),
        )
        .route(
            "/v1/plugins/{name}/versions/{version}",
            delete(delete_plugin_version),
        )
        .route("/v1/plugins/{name}/rollback", post(rollback_plugin))
        .route("/v1/audit", get(audit_log))
        .route("/v1/connections", get(list_connections))
        .route("/v1/connections/{name}", put(put_connection))
        .route("/v1/connections/{name}/check", post(check_connection))
        .route("/v1/connections/{name}/operations/{op}", post(invoke))
        .route("/v1/transforms/{plugin}/apply", post(apply))
        .route("/v1/webhooks/{connection}", post(webhook))
        .route("/v1/flows", get(list_flows))
        .route("/v1/flows/{name}", get(flow_detail).put(deploy_flow))
        .route("/v1/flows/{name}/runs", post(start_run))
        .route("/v1/runs", get(list_runs))
        .route("/v1/runs/{id}", get(run_detail))
        .route("/v1/dead-letters", get(list_dead_letters))
        .route("/v1/dead-letters/replay", post(replay_flow_dead_letters))
        .route("/v1/dead-letters/{id}", delete(discard_dead_letter))
        .route("/v1/dead-letters/{id}/replay", post(replay_dead_letter))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this endpoint",
            )
        })
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .with_state(state)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<ApiState>) -> Result<Json<serde_json::Value>, ApiError> {
    let store_ok = state.runtime.store().ping().await.is_ok();
    if store_ok && state.runtime.healthy() {
        Ok(Json(json!({"status": "ready"})))
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the store or the engine is not ready",
        )
        .retry_after(1))
    }
}

async fn list_plugins(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(json!({"plugins": state.runtime.plugins()})))
}

/// A connection as the API shows it: credentials reduced to their kind.
#[derive(Serialize)]
struct ConnectionView {
    name: String,
    plugin: String,
    version: Option<String>,
    config: std::collections::BTreeMap<String, String>,
    auth: Option<serde_json::Value>,
    allowed_hosts: Vec<String>,
    private_hosts: Vec<String>,
    rate_limit: Option<crate::store::RateLimit>,
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

async fn list_connections(
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

async fn put_connection(
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
        outcome: if result.is_ok() {
            Outcome::Ok
        } else {
            Outcome::Refused
        },
        detail: &match &result {
            Ok(_) => format!("plugin {plugin}"),
            Err(e) => e.to_string(),
        },
    };
    if let Err(e) = state.runtime.store().audit(record).await {
        tracing::error!(error = %e, "could not write the audit log");
    }
    let (connection, created) = result?;
    tracing::info!(connection = %name, by = %caller.name, created, "connection saved");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(ConnectionView::from(connection))).into_response())
}

async fn check_connection(
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

fn call_options(headers: &HeaderMap) -> CallOptions {
    CallOptions {
        idempotency_key: headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        ..CallOptions::default()
    }
}

async fn invoke(
    caller: Caller,
    State(state): State<ApiState>,
    Path((name, op)): Path<(String, String)>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(Scope::Invoker)?;
    let input = utf8(&body)?;
    let input = if input.trim().is_empty() { "{}" } else { input };
    let options = call_options(&headers);
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
fn operation_answer(json: String, version: &str, replayed: bool) -> Response {
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

/// A JSON body must be UTF-8 before it is anything else.
fn utf8(body: &Bytes) -> Result<&str, ApiError> {
    std::str::from_utf8(body).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "the body is not UTF-8",
        )
    })
}

async fn apply(
    caller: Caller,
    State(state): State<ApiState>,
    Path(plugin): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(Scope::Invoker)?;
    let input = utf8(&body)?;
    let (outputs, plugin) = state.runtime.apply(&plugin, input).await?;
    let outputs: Vec<serde_json::Value> = outputs
        .iter()
        .map(|o| serde_json::from_str(o))
        .collect::<Result<_, _>>()
        .map_err(|e| ApiError::from(CallError::BadOutput(e.to_string())))?;
    Ok(Json(json!({
        "plugin": plugin.name(),
        "version": plugin.version().to_string(),
        "outputs": outputs,
    }))
    .into_response())
}

/// An inbound webhook: no bearer token, the signature authenticates it.
async fn webhook(
    State(state): State<ApiState>,
    Path(connection): Path<String>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
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
    let (events, plugin) = state
        .runtime
        .handle_webhook(&connection, request, std::time::SystemTime::now())
        .await?;
    // Committed before the answer: a sender that gets a 2xx never has to resend.
    let runs = state
        .flows
        .start_runs_for_events(&connection, &events)
        .await?;
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

async fn upload_plugin(
    caller: Caller,
    State(state): State<ApiState>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(Scope::Operator)?;
    let uploaded = state.runtime.upload_package(&body, &caller.name).await?;
    let status = if uploaded.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(uploaded)).into_response())
}

async fn plugin_detail(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Read)?;
    let detail = state.runtime.plugin_detail(&name).await?;
    Ok(Json(serde_json::to_value(detail).unwrap_or_default()))
}

async fn activate_plugin(
    caller: Caller,
    State(state): State<ApiState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Operator)?;
    let plugin = state
        .runtime
        .activate(&name, &version, &caller.name)
        .await?;
    Ok(Json(
        json!({"name": name, "active": plugin.version().to_string(), "digest": plugin.digest().to_string()}),
    ))
}

async fn rollback_plugin(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Operator)?;
    let plugin = state.runtime.rollback(&name, &caller.name).await?;
    Ok(Json(
        json!({"name": name, "active": plugin.version().to_string(), "digest": plugin.digest().to_string()}),
    ))
}

async fn delete_plugin_version(
    caller: Caller,
    State(state): State<ApiState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::Operator)?;
    state
        .runtime
        .delete_version(&name, &version, &caller.name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize)]
struct AuditQuery {
    action: Option<String>,
    limit: Option<u32>,
}

async fn audit_log(
    caller: Caller,
    State(state): State<ApiState>,
    axum::extract::Query(query): axum::extract::Query<AuditQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Admin)?;
    let limit = query.limit.unwrap_or(100).min(1000);
    let entries = state
        .runtime
        .store()
        .audit_entries(query.action.as_deref(), limit)
        .await
        .map_err(ConnectionError::from)?;
    Ok(Json(json!({"entries": entries})))
}

impl From<FlowError> for ApiError {
    fn from(err: FlowError) -> ApiError {
        match err {
            FlowError::Invalid(message) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_flow", message)
            }
            FlowError::NotFound(message) => ApiError::not_found(message),
            FlowError::Conflict(message) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            FlowError::Store(e) => {
                tracing::error!(error = %e, "store failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

async fn deploy_flow(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(Scope::Operator)?;
    let source = std::str::from_utf8(&body).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the flow file is not UTF-8",
        )
    })?;
    let deployed = state.flows.deploy(&name, source, &caller.name).await?;
    let status = if deployed.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(deployed)).into_response())
}

async fn list_flows(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(json!({"flows": state.flows.list().await?})))
}

async fn flow_detail(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<crate::flows::FlowDetail>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(state.flows.get(&name).await?))
}

async fn start_run(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(Scope::Invoker)?;
    let text = utf8(&body)?;
    let trigger = if text.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str(text).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("invalid request body: {e}"),
            )
        })?
    };
    let id = state.flows.start_run(&name, trigger).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"run": id}))).into_response())
}

#[derive(serde::Deserialize)]
struct RunsQuery {
    flow: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
}

const RUN_STATUSES: [&str; 6] = [
    "pending",
    "running",
    "compensating",
    "completed",
    "compensated",
    "failed",
];

async fn list_runs(
    caller: Caller,
    State(state): State<ApiState>,
    axum::extract::Query(query): axum::extract::Query<RunsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Read)?;
    if let Some(status) = &query.status
        && !RUN_STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!(
                "status `{status}` is not one of {}",
                RUN_STATUSES.join(", ")
            ),
        ));
    }
    let limit = query.limit.unwrap_or(100).min(1000);
    let runs = state
        .flows
        .runs(query.flow.as_deref(), query.status.as_deref(), limit)
        .await?;
    Ok(Json(json!({"runs": runs})))
}

async fn run_detail(
    caller: Caller,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<crate::flows::RunView>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(state.flows.run(&id).await?))
}

#[derive(serde::Deserialize)]
struct DeadLetterQuery {
    flow: Option<String>,
}

async fn list_dead_letters(
    caller: Caller,
    State(state): State<ApiState>,
    axum::extract::Query(query): axum::extract::Query<DeadLetterQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Read)?;
    let letters = state.flows.dead_letters(query.flow.as_deref()).await?;
    Ok(Json(json!({"dead_letters": letters})))
}

/// The optional body of a replay: a corrected input for the failed step.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    #[serde(default)]
    input: Option<serde_json::Value>,
}

async fn replay_dead_letter(
    caller: Caller,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(Scope::Operator)?;
    let text = utf8(&body)?;
    let replay: ReplayBody = if text.trim().is_empty() {
        ReplayBody::default()
    } else {
        serde_json::from_str(text).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("invalid request body: {e}"),
            )
        })?
    };
    let run = state.flows.replay(&id, replay.input, &caller.name).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"run": run}))).into_response())
}

async fn discard_dead_letter(
    caller: Caller,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::Operator)?;
    state.flows.discard(&id, &caller.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize)]
struct BulkReplayQuery {
    flow: Option<String>,
}

async fn replay_flow_dead_letters(
    caller: Caller,
    State(state): State<ApiState>,
    axum::extract::Query(query): axum::extract::Query<BulkReplayQuery>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Operator)?;
    let flow = query.flow.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "bulk replay needs `?flow=<name>`",
        )
    })?;
    let runs = state.flows.replay_flow(&flow, &caller.name).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"runs": runs}))).into_response())
}
