//! `/v1/connections/{name}/circuit`: a connection's circuit breaker, and
//! opening or closing it by hand.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;

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

/// The circuit breaker of a connection: its state, failures counted, next
/// probe, and the runs parked on it.
#[utoipa::path(get, path = "/v1/connections/{name}/circuit", tag = "connections",
    security(("bearer" = ["read"])),
    params(("name" = String, Path, description = "Connection name")),
    responses(Refused,
        (status = 200, description = "The circuit", body = CircuitView),
        (status = 404, description = "No such connection (`not_found`)", body = ErrorBody)))]
pub(crate) async fn get_circuit(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<CircuitView>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(state.flows.circuit(&name).await?))
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
