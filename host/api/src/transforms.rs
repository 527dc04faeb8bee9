//! `/v1/transforms/{plugin}/apply`: run a transform plugin.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::config::Scope;
use crate::error::{ApiError, CallRefused, Refused};
use crate::extract::{ApiState, Caller, RawBody, utf8};
use junction_runtime::runtime::CallError;

/// What a transform made of its input.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Applied {
    /// The transform plugin.
    plugin: String,
    /// The version that ran.
    version: String,
    /// Zero or more output records.
    outputs: Vec<serde_json::Value>,
}

/// Runs a transform plugin's `apply` over the JSON body.
#[utoipa::path(post, path = "/v1/transforms/{plugin}/apply", tag = "transforms",
    security(("bearer" = ["invoker"])),
    params(("plugin" = String, Path, description = "Transform plugin name")),
    request_body(content = serde_json::Value, description = "One input record"),
    responses(Refused, CallRefused, (status = 200, description = "The outputs", body = Applied)))]
pub(crate) async fn apply(
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
    Ok(Json(Applied {
        plugin: plugin.name().to_string(),
        version: plugin.version().to_string(),
        outputs,
    })
    .into_response())
}
