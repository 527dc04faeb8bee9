//! `/v1/flows`: deploy, list and inspect flows, start runs.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use crate::config::Scope;
use crate::error::ApiError;
use crate::extract::{ApiState, Caller, RawBody, utf8};
use junction_runtime::trace::TraceContext;

pub(crate) async fn deploy_flow(
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

pub(crate) async fn list_flows(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(json!({"flows": state.flows.list().await?})))
}

pub(crate) async fn flow_detail(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<junction_flows::FlowDetail>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(state.flows.get(&name).await?))
}

pub(crate) async fn start_run(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
    trace: Option<Extension<TraceContext>>,
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
    let id = state
        .flows
        .start_run(&name, trigger, trace.as_ref().map(|t| &t.0))
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"run": id}))).into_response())
}
