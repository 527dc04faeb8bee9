//! The HTTP API, versioned under `/v1`.
//!
//! Every error has one shape, `{"error":{"code","message"}}`, with the
//! status that says what the client should do. Admin endpoints need a
//! bearer token whose scope covers them; webhooks are authenticated by their
//! signature instead. `/metrics` takes a read token or the scrape token.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::{Json, Router};
use serde::Serialize;
use sha2::{Digest, Sha256};

use junction_flows::{FlowOptions, Flows};
use junction_runtime::Runtime;

mod audit;
mod circuits;
pub mod config;
mod connections;
mod console;
mod dead_letters;
mod error;
mod events;
mod extract;
mod flows;
mod governance;
mod kpis;
mod metrics;
mod openapi;
mod plugins;
mod reload;
mod runs;
mod streams;
mod trace;
mod transforms;
mod webhooks;

pub use config::{ApiConfig, Scope, Token};
pub use error::{ApiError, ErrorBody, ErrorCode};
pub use extract::{ApiState, Caller, JsonBody, RawBody};
pub use openapi::document as openapi_document;
pub use reload::{ReloadSource, Reloaded, Reloader};

use extract::Tokens;

/// The API router over `runtime`, with the tokens, body limit and flow
/// settings of `config`. Starts the flow workers when called inside a Tokio
/// runtime; they stop when the router is dropped.
pub fn router(runtime: Arc<Runtime>, config: &ApiConfig, flows: FlowOptions) -> Router {
    let flows = Flows::new(runtime, flows);
    if tokio::runtime::Handle::try_current().is_ok() {
        flows.spawn_workers();
    }
    build(flows, config, None).0
}

/// The API router over `flows` (whose workers the caller runs), with what
/// `POST /v1/admin/reload` reads the configuration from (`None`: the
/// endpoint says the host has nothing to reload), and the [`Reloader`] for
/// the same reload on a signal.
pub fn router_with_reload(
    flows: Arc<Flows>,
    config: &ApiConfig,
    source: Option<ReloadSource>,
) -> (Router, Reloader) {
    build(flows, config, source)
}

/// The API router over `flows` (and its runtime), whose workers the caller runs.
pub fn router_with_flows(flows: Arc<Flows>, config: &ApiConfig) -> Router {
    build(flows, config, None).0
}

fn build(
    flows: Arc<Flows>,
    config: &ApiConfig,
    source: Option<ReloadSource>,
) -> (Router, Reloader) {
    let runtime = flows.runtime().clone();
    let tokens = Arc::new(std::sync::RwLock::new(Arc::new(Tokens::of(config))));
    let reloader = Reloader::new(runtime.clone(), tokens.clone(), source);
    let upload_limit = runtime.max_component_bytes().saturating_add(1024 * 1024);
    let state = ApiState {
        runtime,
        flows,
        tokens,
        reloader: reloader.clone(),
        public_url: config.public_url().into(),
        metrics_token: config
            .metrics_token
            .as_ref()
            .map(|t| Sha256::digest(t.as_bytes()).into()),
    };
    let (router, _) = openapi::routes(upload_limit).split_for_parts();
    let router = router
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                "method not allowed on this endpoint",
            )
        })
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(axum::middleware::from_fn(trace::traced))
        .with_state(state);
    (router, reloader)
}

/// A health or readiness answer.
#[derive(Serialize, utoipa::ToSchema)]
struct Status {
    /// `ok` or `ready`.
    status: &'static str,
}

/// The process is up (liveness).
#[utoipa::path(get, path = "/healthz", tag = "host",
    responses((status = 200, description = "Up", body = Status)))]
async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// The store answers and the engine runs (readiness).
#[utoipa::path(get, path = "/readyz", tag = "host",
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "Not ready (`not_ready`); retry after `Retry-After`", body = ErrorBody),
    ))]
async fn readyz(State(state): State<ApiState>) -> Result<Json<Status>, ApiError> {
    let store_ok = state.runtime.store().ping().await.is_ok();
    if store_ok && state.runtime.healthy() {
        Ok(Json(Status { status: "ready" }))
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NotReady,
            "the store or the engine is not ready",
        )
        .retry_after(1))
    }
}
