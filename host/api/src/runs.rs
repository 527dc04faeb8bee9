//! `/v1/runs`: list and inspect runs.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;

use crate::config::Scope;
use crate::error::{ApiError, ErrorBody, Refused};
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
    /// Only runs created at or after this RFC 3339 time.
    since: Option<String>,
    /// Only runs created before this RFC 3339 time.
    until: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    limit: Option<u32>,
}

/// A time parameter in ms since the epoch.
fn instant(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp_millis())
                .map_err(|e| {
                    ApiError::bad_request(format!(
                        "`{name}` must be an RFC 3339 time such as 2026-12-08T09:30:00Z, not `{v}`: {e}"
                    ))
                })
        })
        .transpose()
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
        return Err(ApiError::bad_request(format!(
            "status `{status}` is not one of {}",
            RUN_STATUSES.join(", ")
        )));
    }
    let limit = query.limit.unwrap_or(100).min(1000);
    let since = instant("since", query.since.as_deref())?;
    let until = instant("until", query.until.as_deref())?;
    let runs = state
        .flows
        .runs_created(
            query.flow.as_deref(),
            query.status.as_deref(),
            since,
            until,
            limit,
        )
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

/// A signal to a waiting run.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignalBody {
    /// What was decided.
    decision: Decision,
    /// Free text, kept with the decision.
    #[serde(default)]
    comment: Option<String>,
    /// Data for the steps after the wait (`.steps.<id>.data`).
    #[serde(default)]
    data: Option<serde_json::Value>,
}

/// A decision.
#[derive(serde::Deserialize, utoipa::ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Decision {
    /// Go on.
    Approve,
    /// Take the reject path (or fail, as the step says).
    Reject,
}

impl Decision {
    fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        }
    }
}

/// Sends a signal to a run that waits for it (an approval step): the
/// decision, the caller's token name and the time are recorded with the run
/// and in the audit log (`run.signal`), and the run goes on.
#[utoipa::path(post, path = "/v1/runs/{id}/signals/{name}", tag = "runs",
    security(("bearer" = ["invoker"])),
    params(("id" = String, Path, description = "Run id"),
        ("name" = String, Path, description = "The signal the run waits for (its wait step's `signal`)")),
    request_body = SignalBody,
    responses(Refused,
        (status = 202, description = "Recorded; the run goes on", body = junction_flows::SignalView),
        (status = 400, description = "Malformed JSON or an unknown decision", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run does not wait for this signal now (`conflict`); the message says what it waits for", body = ErrorBody),
    ))]
pub(crate) async fn signal_run(
    caller: Caller,
    State(state): State<ApiState>,
    Path((id, name)): Path<(String, String)>,
    crate::extract::JsonBody(body): crate::extract::JsonBody<SignalBody>,
) -> Result<(StatusCode, Json<junction_flows::SignalView>), ApiError> {
    caller.require(Scope::Invoker)?;
    let decision = body.decision.as_str();
    let result = state
        .flows
        .signal(
            &id,
            &name,
            decision,
            body.comment.as_deref(),
            body.data.as_ref(),
            &caller.name,
        )
        .await;
    let detail = match &result {
        Ok(_) => format!("signal {name}: {decision}"),
        Err(e) => format!("signal {name}: {decision}: {e}"),
    };
    state
        .runtime
        .store()
        .audit_or_log(junction_store::audit::Record {
            actor: &caller.name,
            action: "run.signal",
            target: &id,
            digest: None,
            outcome: junction_store::audit::Outcome::of(&result),
            detail: &detail,
        })
        .await;
    Ok((StatusCode::ACCEPTED, Json(result?)))
}
