//! `GET /metrics`: the host's metrics in the Prometheus text format, for a
//! token of the read scope or the scrape token (`metrics_token`).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::config::Scope;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{ApiState, bearer, same_digest, unauthorized};

/// The scrape.
/// The host's metrics in the Prometheus text format (version 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "host",
    security(("bearer" = ["read"]), ("scrape_token" = [])),
    responses(
        (status = 200, description = "The scrape", content_type = "text/plain; version=0.0.4", body = String),
        (status = 401, description = "No token, or neither a read token nor the scrape token", body = crate::error::ErrorBody),
        (status = 500, description = "The metrics could not be read", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn metrics(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let text = scrape_text(&state).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(junction_runtime::metrics::CONTENT_TYPE),
        )],
        text,
    )
        .into_response())
}

/// Everything a scrape returns. Families of other parts of the host are
/// appended here, each a complete block of `# HELP`, `# TYPE` and samples.
pub(crate) async fn scrape_text(state: &ApiState) -> Result<String, ApiError> {
    let mut text = state.runtime.metrics_text().await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            format!("reading the metrics failed: {e}"),
        )
    })?;
    // The business KPIs of the last 24 hours, computed from the store.
    let until = junction_store::now_ms();
    let since = until.saturating_sub(junction_flows::kpi::DEFAULT_WINDOW_MS);
    state
        .flows
        .kpis(since, until)
        .await?
        .encode_prometheus(&mut text);
    Ok(text)
}

/// A token of the read scope (or above), or the scrape token.
fn authorize(state: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = bearer(headers)?;
    if let Some(expected) = &state.metrics_token {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if same_digest(expected, &digest) {
            return Ok(());
        }
    }
    match state.tokens().find(token) {
        Some((_, scope)) if scope >= Scope::Read => Ok(()),
        _ => Err(unauthorized("unknown token")),
    }
}
