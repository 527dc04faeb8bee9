//! The HTTP API, versioned under `/v1`.
//!
//! Every error has one shape, `{"error":{"code","message"}}`, with the
//! status that says what the client should do. Admin endpoints need a
//! bearer token whose scope covers them; webhooks are authenticated by their
//! signature instead. `/metrics` takes a read token or the scrape token.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde_json::json;
use sha2::{Digest, Sha256};

use junction_flows::{FlowOptions, Flows};
use junction_runtime::Runtime;

mod audit;
pub mod config;
mod connections;
mod dead_letters;
mod error;
mod extract;
mod flows;
mod kpis;
mod metrics;
mod plugins;
mod runs;
mod trace;
mod transforms;
mod webhooks;

pub use config::{ApiConfig, Scope, Token};
pub use error::ApiError;
pub use extract::{ApiState, Caller, JsonBody, RawBody};

use audit::audit_log;
use connections::{check_connection, invoke, list_connections, put_connection};
use dead_letters::{
    discard_dead_letter, list_dead_letters, replay_dead_letter, replay_flow_dead_letters,
};
use extract::Tokens;
use flows::{deploy_flow, flow_detail, list_flows, start_run};
use plugins::{
    activate_plugin, delete_plugin_version, list_plugins, plugin_detail, rollback_plugin,
    upload_plugin,
};
use runs::{list_runs, run_detail};
use transforms::apply;
use webhooks::webhook;

/// The API router over `runtime`, with the tokens, body limit and flow
/// settings of `config`. Starts the flow workers when called inside a Tokio
/// runtime; they stop when the router is dropped.
pub fn router(runtime: Arc<Runtime>, config: &ApiConfig, flows: FlowOptions) -> Router {
    let flows = Flows::new(runtime.clone(), flows);
    if tokio::runtime::Handle::try_current().is_ok() {
        flows.spawn_workers();
    }
    router_with_flows(flows, config)
}

/// The API router over `flows` (and its runtime), whose workers the caller runs.
pub fn router_with_flows(flows: Arc<Flows>, config: &ApiConfig) -> Router {
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
    let upload_limit = runtime.max_component_bytes().saturating_add(1024 * 1024);
    let state = ApiState {
        runtime,
        flows,
        tokens: Arc::new(Tokens(tokens)),
        public_url: config.public_url().into(),
        metrics_token: config
            .metrics_token
            .as_ref()
            .map(|t| Sha256::digest(t.as_bytes()).into()),
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::metrics))
        .route(
            "/v1/plugins",
            get(list_plugins)
                .post(upload_plugin)
                .layer(DefaultBodyLimit::max(upload_limit)),
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
        .route("/v1/kpis", get(kpis::kpis))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this endpoint",
            )
        })
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(axum::middleware::from_fn(trace::traced))
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
