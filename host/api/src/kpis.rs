//! `GET /v1/kpis?since=&until=`: the business KPIs of a window.

use axum::Json;
use axum::extract::{Query, State};

use junction_flows::KpiReport;
use junction_flows::kpi::{DEFAULT_WINDOW_MS, parse_time};

use crate::config::Scope;
use crate::error::{ApiError, ErrorBody, Refused};
use crate::extract::{ApiState, Caller};

/// The window: RFC 3339 times; `until` defaults to now, `since` to 24
/// hours before `until`.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct KpiQuery {
    /// Start of the window (RFC 3339); default 24 hours before `until`.
    since: Option<String>,
    /// End of the window (RFC 3339); default now.
    until: Option<String>,
}

/// The business KPIs of a window, computed from the store: duration KPIs
/// (p50/p90), blocked runs, failed-sync rates per flow and connection,
/// manual touches, dead-letter age.
#[utoipa::path(get, path = "/v1/kpis", tag = "kpis",
    security(("bearer" = ["read"])),
    params(KpiQuery),
    responses(Refused,
        (status = 200, description = "The KPIs", body = KpiReport),
        (status = 400, description = "A time that is not RFC 3339, or `since` not before `until`", body = ErrorBody),
    ))]

pub(crate) async fn kpis(
    caller: Caller,
    State(state): State<ApiState>,
    Query(query): Query<KpiQuery>,
) -> Result<Json<KpiReport>, ApiError> {
    caller.require(Scope::Read)?;
    let until = match &query.until {
        Some(text) => time("until", text)?,
        None => junction_store::now_ms(),
    };
    let since = match &query.since {
        Some(text) => time("since", text)?,
        None => until.saturating_sub(DEFAULT_WINDOW_MS),
    };
    if since >= until {
        return Err(ApiError::bad_request(format!(
            "`since` ({}) must be before `until` ({})",
            query.since.as_deref().unwrap_or("24 hours before `until`"),
            query.until.as_deref().unwrap_or("now")
        )));
    }
    Ok(Json(state.flows.kpis(since, until).await?))
}

fn time(name: &str, text: &str) -> Result<i64, ApiError> {
    parse_time(text).ok_or_else(|| {
        ApiError::bad_request(format!(
            "`{name}` is `{text}`, not an RFC 3339 time; use e.g. `2026-01-05T09:00:00Z`"
        ))
    })
}
