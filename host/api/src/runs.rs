//! `/v1/runs`: list and inspect runs.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::json;

use crate::config::Scope;
use crate::error::ApiError;
use crate::extract::{ApiState, Caller};

#[derive(serde::Deserialize)]
pub(crate) struct RunsQuery {
    flow: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
}

const RUN_STATUSES: [&str; 6] = [
    "pending",
    "running",
    "compensating",
    "completed",
    "compensated",
    "failed",
];

pub(crate) async fn list_runs(
    caller: Caller,
    State(state): State<ApiState>,
    axum::extract::Query(query): axum::extract::Query<RunsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Read)?;
    if let Some(status) = &query.status
        && !RUN_STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
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
    Ok(Json(json!({"runs": runs})))
}

pub(crate) async fn run_detail(
    caller: Caller,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<junction_flows::RunView>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(state.flows.run(&id).await?))
}
