//! `/v1/runs`: list and inspect runs.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;

use crate::config::Scope;
use crate::error::{ApiError, ErrorBody, ErrorCode, Refused};
use crate::extract::{ApiState, Caller};
use junction_flows::RunView;

/// Which runs to list.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunsQuery {
    /// Only this flow's runs.
    flow: Option<String>,
    /// Only runs in this status: `pending`, `running`, `compensating`,
    /// `completed`, `compensated` or `failed`.
    status: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    limit: Option<u32>,
}

/// Runs, newest first, without their steps.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RunList {
    /// The runs.
    runs: Vec<RunView>,
}

const RUN_STATUSES: [&str; 6] = [
    "pending",
    "running",
    "compensating",
    "completed",
    "compensated",
    "failed",
];

/// Lists runs, newest first.
#[utoipa::path(get, path = "/v1/runs", tag = "runs",
    security(("bearer" = ["read"])),
    params(RunsQuery),
    responses(Refused,
        (status = 200, description = "The runs", body = RunList),
        (status = 400, description = "An unknown status or a malformed parameter", body = ErrorBody),
    ))]
pub(crate) async fn list_runs(
    caller: Caller,
    State(state): State<ApiState>,
    axum::extract::Query(query): axum::extract::Query<RunsQuery>,
) -> Result<Json<RunList>, ApiError> {
    caller.require(Scope::Read)?;
    if let Some(status) = &query.status
        && !RUN_STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
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
    Ok(Json(RunList { runs }))
}

/// A run with its steps: attempts, errors, inputs and outputs, idempotency keys, trace id.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs",
    security(("bearer" = ["read"])),
    params(("id" = String, Path, description = "Run id")),
    responses(Refused,
        (status = 200, description = "The run", body = RunView),
        (status = 404, description = "No such run", body = ErrorBody),
    ))]
pub(crate) async fn run_detail(
    caller: Caller,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(state.flows.run(&id).await?))
}
