//! `/v1/dead-letters`: list, replay and discard dead letters.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::config::Scope;
use crate::error::ApiError;
use crate::extract::{ApiState, Caller, RawBody, utf8};

#[derive(serde::Deserialize)]
pub(crate) struct DeadLetterQuery {
    flow: Option<String>,
}

pub(crate) async fn list_dead_letters(
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
pub(crate) struct ReplayBody {
    #[serde(default)]
    input: Option<serde_json::Value>,
}

pub(crate) async fn replay_dead_letter(
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

pub(crate) async fn discard_dead_letter(
    caller: Caller,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::Operator)?;
    state.flows.discard(&id, &caller.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize)]
pub(crate) struct BulkReplayQuery {
    flow: Option<String>,
}

pub(crate) async fn replay_flow_dead_letters(
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
