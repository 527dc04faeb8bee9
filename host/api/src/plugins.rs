//! `/v1/plugins`: list, upload, detail, activate, roll back and delete plugin versions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::config::Scope;
use crate::error::ApiError;
use crate::extract::{ApiState, Caller, RawBody};

pub(crate) async fn list_plugins(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(json!({"plugins": state.runtime.plugins()})))
}

pub(crate) async fn upload_plugin(
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

pub(crate) async fn plugin_detail(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Read)?;
    let detail = state.runtime.plugin_detail(&name).await?;
    Ok(Json(serde_json::to_value(detail).unwrap_or_default()))
}

pub(crate) async fn activate_plugin(
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

pub(crate) async fn rollback_plugin(
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

pub(crate) async fn delete_plugin_version(
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
