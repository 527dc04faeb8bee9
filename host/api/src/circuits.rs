//! `/v1/connections/{name}/circuit`: a connection's circuit breaker, and
//! opening or closing it by hand.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

use crate::config::Scope;
use crate::error::{ApiError, ErrorBody, Refused};
use crate::extract::{ApiState, Caller, JsonBody};
use junction_flows::CircuitView;

/// The state to put a circuit in.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CircuitChange {
    /// `open`: steps on the connection are parked until it is closed by
    /// hand (no probes); `closed`: parked runs resume in arrival order.
    state: CircuitState,
}

/// A state an operator may set.
#[derive(Deserialize, utoipa::ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CircuitState {
    /// Park every step on the connection.
    Open,
    /// Attempt steps again.
    Closed,
}

/// A connection's circuit and what else says how it is doing.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ConnectionHealth {
    /// The circuit.
    #[serde(flatten)]
    circuit: CircuitView,
    /// RFC 3339: when it was last checked (by an operator or a probe, on any host).
    last_check_at: Option<String>,
    /// Whether that check passed.
    last_check_ok: Option<bool>,
    /// Why it did not.
    last_check_error: Option<String>,
    /// RFC 3339: until when this host holds the connection's requests, as
    /// the remote system's rate-limit answers asked; absent when it does not.
    rate_limited_until: Option<String>,
}

fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The circuit breaker of a connection: its state, failures counted, next
/// probe, and the runs parked on it; with its last check and the
/// rate-limit pause this host learned.
#[utoipa::path(get, path = "/v1/connections/{name}/circuit", tag = "connections",
    security(("bearer" = ["read"])),
    params(("name" = String, Path, description = "Connection name")),
    responses(Refused,
        (status = 200, description = "The circuit", body = ConnectionHealth),
        (status = 404, description = "No such connection (`not_found`)", body = ErrorBody)))]
pub(crate) async fn get_circuit(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<ConnectionHealth>, ApiError> {
    caller.require(Scope::Read)?;
    let circuit = state.flows.circuit(&name).await?;
    let check = state
        .runtime
        .store()
        .last_check(&name)
        .await
        .map_err(|e| ApiError::from(junction_flows::FlowError::from(e)))?;
    let pause = state.runtime.rate_pause(&name);
    let until = (!pause.is_zero())
        .then(|| chrono::Duration::from_std(pause).ok())
        .flatten()
        .map(|pause| rfc3339(chrono::Utc::now() + pause));
    Ok(Json(ConnectionHealth {
        circuit,
        last_check_at: check
            .as_ref()
            .and_then(|c| chrono::DateTime::from_timestamp_millis(c.checked_at).map(rfc3339)),
        last_check_ok: check.as_ref().map(|c| c.ok),
        last_check_error: check.and_then(|c| c.message),
        rate_limited_until: until,
    }))
}

/// Opens a connection's circuit by hand (it stays open until closed by
/// hand), or closes it (its parked runs resume in the order they arrived).
/// Audited as `circuit.open` or `circuit.close`.
#[utoipa::path(put, path = "/v1/connections/{name}/circuit", tag = "connections",
    security(("bearer" = ["operator"])),
    params(("name" = String, Path, description = "Connection name")),
    request_body = CircuitChange,
    responses(Refused,
        (status = 200, description = "The circuit after the change", body = CircuitView),
        (status = 400, description = "Malformed JSON or an unknown state", body = ErrorBody),
        (status = 404, description = "No such connection (`not_found`)", body = ErrorBody)))]
pub(crate) async fn put_circuit(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
    JsonBody(change): JsonBody<CircuitChange>,
) -> Result<Json<CircuitView>, ApiError> {
    caller.require(Scope::Operator)?;
    let view = match change.state {
        CircuitState::Open => state.flows.open_circuit(&name, &caller.name).await?,
        CircuitState::Closed => state.flows.close_circuit(&name, &caller.name).await?,
    };
    Ok(Json(view))
}
