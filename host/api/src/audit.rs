//! `/v1/audit`: the audit log.

use axum::Json;
use axum::extract::State;
use serde_json::json;

use crate::config::Scope;
use crate::error::ApiError;
use crate::extract::{ApiState, Caller};
use junction_runtime::runtime::ConnectionError;

#[derive(serde::Deserialize)]
pub(crate) struct AuditQuery {
    action: Option<String>,
    limit: Option<u32>,
}

pub(crate) async fn audit_log(
    caller: Caller,
    State(state): State<ApiState>,
    axum::extract::Query(query): axum::extract::Query<AuditQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Admin)?;
    let limit = query.limit.unwrap_or(100).min(1000);
    let entries = state
        .runtime
        .store()
        .audit_entries(query.action.as_deref(), limit)
        .await
        .map_err(ConnectionError::from)?;
    Ok(Json(json!({"entries": entries})))
}
