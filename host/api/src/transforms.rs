//! `/v1/transforms/{plugin}/apply`: run a transform plugin.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::config::Scope;
use crate::error::ApiError;
use crate::extract::{ApiState, Caller, RawBody, utf8};
use junction_runtime::runtime::CallError;

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
    Ok(Json(json!({
        "plugin": plugin.name(),
        "version": plugin.version().to_string(),
        "outputs": outputs,
    }))
    .into_response())
}
