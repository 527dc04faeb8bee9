//! `/v1/dead-letters`: list, replay and discard dead letters.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::config::Scope;
use crate::error::{ApiError, ErrorBody, ErrorCode, Refused};
use crate::extract::{ApiState, Caller, RawBody, utf8};
use junction_flows::{DeadLetter, InputSchemaView};

/// Which dead letters.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeadLetterQuery {
    /// Only this flow's.
    flow: Option<String>,
}

/// Open dead letters, oldest first.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct DeadLetterList {
    /// The dead letters.
    dead_letters: Vec<DeadLetter>,
}

/// The run a replay resumed.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Replayed {
    /// The run, resumed from the failed step.
    run: String,
}

/// The runs a bulk replay resumed.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ReplayedRuns {
    /// One per dead letter of the flow.
    runs: Vec<String>,
}

/// Lists the open dead letters: runs whose step failed for good, with every error and the failed input.
#[utoipa::path(get, path = "/v1/dead-letters", tag = "dead-letters",
    security(("bearer" = ["read"])),
    params(DeadLetterQuery),
    responses(Refused, (status = 200, description = "The dead letters", body = DeadLetterList)))]
pub(crate) async fn list_dead_letters(
    caller: Caller,
    State(state): State<ApiState>,
    axum::extract::Query(query): axum::extract::Query<DeadLetterQuery>,
) -> Result<Json<DeadLetterList>, ApiError> {
    caller.require(Scope::Read)?;
    let dead_letters = state.flows.dead_letters(query.flow.as_deref()).await?;
    Ok(Json(DeadLetterList { dead_letters }))
}

/// The optional body of a replay: a corrected input for the failed step.
/// How to replay a dead letter.
#[derive(serde::Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayBody {
    /// A corrected input for the failed step; absent retries the input that failed.
    #[serde(default)]
    input: Option<serde_json::Value>,
}

/// Resumes the dead letter's run from the failed step, with a corrected input if given.
#[utoipa::path(post, path = "/v1/dead-letters/{id}/replay", tag = "dead-letters",
    security(("bearer" = ["operator"])),
    params(("id" = String, Path, description = "Dead letter id")),
    request_body(content = Option<ReplayBody>, description = "Empty, or a corrected input"),
    responses(Refused,
        (status = 202, description = "Resumed", body = Replayed),
        (status = 400, description = "The body is not JSON or has an unknown field", body = ErrorBody),
        (status = 404, description = "No such dead letter", body = ErrorBody),
        (status = 409, description = "Replayed or discarded already", body = ErrorBody),
    ))]
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
                ErrorCode::InvalidJson,
                format!("invalid request body: {e}"),
            )
        })?
    };
    let run = state.flows.replay(&id, replay.input, &caller.name).await?;
    Ok((StatusCode::ACCEPTED, Json(Replayed { run })).into_response())
}

/// Discards a dead letter: its run stays failed, and the discard is audited.
#[utoipa::path(delete, path = "/v1/dead-letters/{id}", tag = "dead-letters",
    security(("bearer" = ["operator"])),
    params(("id" = String, Path, description = "Dead letter id")),
    responses(Refused,
        (status = 204, description = "Discarded"),
        (status = 404, description = "No such dead letter", body = ErrorBody),
        (status = 409, description = "Replayed or discarded already", body = ErrorBody),
    ))]
pub(crate) async fn discard_dead_letter(
    caller: Caller,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::Operator)?;
    state.flows.discard(&id, &caller.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which flow's dead letters to replay.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct BulkReplayQuery {
    /// The flow (required).
    flow: Option<String>,
}

/// Replays every open dead letter of a flow.
#[utoipa::path(post, path = "/v1/dead-letters/replay", tag = "dead-letters",
    security(("bearer" = ["operator"])),
    params(BulkReplayQuery),
    responses(Refused,
        (status = 202, description = "Resumed", body = ReplayedRuns),
        (status = 400, description = "No `flow` parameter", body = ErrorBody),
        (status = 404, description = "No such flow", body = ErrorBody),
    ))]
pub(crate) async fn replay_flow_dead_letters(
    caller: Caller,
    State(state): State<ApiState>,
    axum::extract::Query(query): axum::extract::Query<BulkReplayQuery>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Operator)?;
    let flow = query
        .flow
        .ok_or_else(|| ApiError::bad_request("bulk replay needs `?flow=<name>`"))?;
    let runs = state.flows.replay_flow(&flow, &caller.name).await?;
    Ok((StatusCode::ACCEPTED, Json(ReplayedRuns { runs })).into_response())
}

/// The input schema a corrected input of the dead letter must satisfy: the
/// operation's, in the plugin version a replay would call.
#[utoipa::path(get, path = "/v1/dead-letters/{id}/input-schema", tag = "dead-letters",
    security(("bearer" = ["read"])),
    params(("id" = String, Path, description = "Dead letter id")),
    responses(Refused,
        (status = 200, description = "The schema (absent when the failed step calls no operation)", body = InputSchemaView),
        (status = 404, description = "No such dead letter", body = ErrorBody),
        (status = 409, description = "The step's connection or plugin is gone", body = ErrorBody),
    ))]
pub(crate) async fn dead_letter_input_schema(
    caller: Caller,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<InputSchemaView>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(state.flows.dead_letter_input_schema(&id).await?))
}
