//! `/v1/flows`: deploy, list and inspect flows, start runs.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::json;

use crate::config::Scope;
use crate::error::{ApiError, ErrorBody, ErrorCode, Refused};
use crate::extract::{ApiState, Caller, RawBody, utf8};
use junction_flows::{Deployed, FlowDetail, FlowSummary, FlowVersionSource};
use junction_runtime::trace::TraceContext;

/// Every deployed flow.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct FlowList {
    /// Sorted by name.
    flows: Vec<FlowSummary>,
}

/// A run that was started.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Started {
    /// The run id: follow it at `/v1/runs/{id}`.
    run: String,
}

/// Deploys a flow file (TOML): validated against the loaded plugins, stored
/// as a new version when its source changed, audited.
#[utoipa::path(put, path = "/v1/flows/{name}", tag = "flows",
    security(("bearer" = ["operator"])),
    params(("name" = String, Path, description = "Flow name; must match the file's `name`")),
    request_body(content = String, content_type = "application/toml", description = "The flow file"),
    responses(Refused,
        (status = 201, description = "A new flow", body = Deployed),
        (status = 200, description = "A new version, or unchanged (`changed: false`)", body = Deployed),
        (status = 400, description = "The file is not UTF-8", body = ErrorBody),
        (status = 409, description = "Deployed concurrently with another version", body = ErrorBody),
        (status = 422, description = "The file is refused; the message names the field and the fix", body = ErrorBody),
    ))]
pub(crate) async fn deploy_flow(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(Scope::Operator)?;
    let source = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the flow file is not UTF-8"))?;
    let deployed = state.flows.deploy(&name, source, &caller.name).await?;
    let status = if deployed.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(deployed)).into_response())
}

/// Lists the deployed flows.
#[utoipa::path(get, path = "/v1/flows", tag = "flows",
    security(("bearer" = ["read"])),
    responses(Refused, (status = 200, description = "The flows", body = FlowList)))]
pub(crate) async fn list_flows(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Json<FlowList>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(FlowList {
        flows: state.flows.list().await?,
    }))
}

/// A flow with its current source and every version.
#[utoipa::path(get, path = "/v1/flows/{name}", tag = "flows",
    security(("bearer" = ["read"])),
    params(("name" = String, Path, description = "Flow name")),
    responses(Refused,
        (status = 200, description = "The flow", body = FlowDetail),
        (status = 404, description = "No such flow", body = ErrorBody),
    ))]
pub(crate) async fn flow_detail(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<FlowDetail>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(state.flows.get(&name).await?))
}

/// One version of a flow, with its source (to compare two versions).
#[utoipa::path(get, path = "/v1/flows/{name}/versions/{version}", tag = "flows",
    security(("bearer" = ["read"])),
    params(
        ("name" = String, Path, description = "Flow name"),
        ("version" = i64, Path, description = "Version number"),
    ),
    responses(Refused,
        (status = 200, description = "The version", body = FlowVersionSource),
        (status = 400, description = "The version is not a number", body = ErrorBody),
        (status = 404, description = "No such flow or version", body = ErrorBody),
    ))]
pub(crate) async fn flow_version(
    caller: Caller,
    State(state): State<ApiState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<FlowVersionSource>, ApiError> {
    caller.require(Scope::Read)?;
    let version: i64 = version.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "version `{version}` is not a number; versions are 1, 2, ..."
        ))
    })?;
    Ok(Json(state.flows.version(&name, version).await?))
}

/// Starts a run of a flow with the JSON body as its trigger event.
#[utoipa::path(post, path = "/v1/flows/{name}/runs", tag = "flows",
    security(("bearer" = ["invoker"])),
    params(
        ("name" = String, Path, description = "Flow name"),
        ("traceparent" = Option<String>, Header, description = "W3C trace context: the run's business transaction joins this trace"),
    ),
    request_body(content = serde_json::Value, description = "The trigger event; empty means `{}`"),
    responses(Refused,
        (status = 202, description = "Started", body = Started),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 404, description = "No such flow", body = ErrorBody),
        (status = 422, description = "The flow cannot start from this trigger", body = ErrorBody),
    ))]
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
                ErrorCode::InvalidJson,
                format!("invalid request body: {e}"),
            )
        })?
    };
    let id = state
        .flows
        .start_run(&name, trigger, trace.as_ref().map(|t| &t.0))
        .await?;
    Ok((StatusCode::ACCEPTED, Json(Started { run: id })).into_response())
}
