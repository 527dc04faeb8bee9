//! `/v1/audit`: the audit log.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::config::Scope;
use crate::error::{ApiError, Refused};
use crate::extract::{ApiState, Caller};
use junction_runtime::runtime::ConnectionError;
use junction_store::audit::Entry;

/// Which audit entries.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// Only this action, e.g. `plugin.activate`, `connection.put`, `flow.deploy`.
    action: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    limit: Option<u32>,
}

/// Audit entries, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct AuditLog {
    /// The entries.
    entries: Vec<Entry>,
}

/// The audit log: every lifecycle action, who did it, to what, with which digest.
#[utoipa::path(get, path = "/v1/audit", tag = "audit",
    security(("bearer" = ["admin"])),
    params(AuditQuery),
    responses(Refused, (status = 200, description = "The entries", body = AuditLog)))]

pub(crate) async fn audit_log(
    caller: Caller,
    State(state): State<ApiState>,
    axum::extract::Query(query): axum::extract::Query<AuditQuery>,
) -> Result<Json<AuditLog>, ApiError> {
    caller.require(Scope::Admin)?;
    let limit = query.limit.unwrap_or(100).min(1000);
    let entries = state
        .runtime
        .store()
        .audit_entries(query.action.as_deref(), limit)
        .await
        .map_err(ConnectionError::from)?;
    Ok(Json(AuditLog { entries }))
}
