//! `/v1/governance` (which system owns which field of each canonical
//! entity) and `/v1/xref` (the cross-system id map).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use crate::config::Scope;
use crate::error::{ApiError, ErrorBody, ErrorCode, Refused};
use crate::extract::{ApiState, Caller, JsonBody, RawBody};
use junction_flows::{FlowError, GovernanceDeployed, GovernanceView, XrefView};

/// A refused document, entity, key or id is `invalid_governance`.
fn refused(err: FlowError) -> ApiError {
    match err {
        FlowError::Invalid(message) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidGovernance,
            message,
        ),
        other => other.into(),
    }
}

/// Deploys the governance document (TOML): for each canonical entity, the
/// system that owns each field. Stored as a new version when it changed,
/// audited as `governance.deploy`. Flows deployed after it are refused when
/// a step writes a field with a value not its owner's; steps of flows
/// deployed before it that it refuses are listed in `conflicts` (and
/// dead-lettered at run time, before their call).
#[utoipa::path(put, path = "/v1/governance", tag = "governance",
    security(("bearer" = ["operator"])),
    request_body(content = String, content_type = "application/toml", description = "The governance document"),
    responses(Refused,
        (status = 200, description = "Stored (or unchanged: `changed: false`)", body = GovernanceDeployed),
        (status = 400, description = "The document is not UTF-8", body = ErrorBody),
        (status = 422, description = "Refused (`invalid_governance`); the message names every problem and its fix", body = ErrorBody),
    ))]
pub(crate) async fn deploy_governance(
    caller: Caller,
    State(state): State<ApiState>,
    RawBody(body): RawBody,
) -> Result<Json<GovernanceDeployed>, ApiError> {
    caller.require(Scope::Operator)?;
    let source = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the governance document is not UTF-8"))?;
    let deployed = state
        .flows
        .deploy_governance(source, &caller.name)
        .await
        .map_err(refused)?;
    Ok(Json(deployed))
}

/// The current governance version: its source and what it says.
#[utoipa::path(get, path = "/v1/governance", tag = "governance",
    security(("bearer" = ["read"])),
    responses(Refused,
        (status = 200, description = "The current version", body = GovernanceView),
        (status = 404, description = "None is deployed (`not_found`)", body = ErrorBody),
    ))]
pub(crate) async fn get_governance(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Json<GovernanceView>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(state.flows.governance().await?))
}

/// An entity's ids in every system that has it, by its canonical key.
#[utoipa::path(get, path = "/v1/xref/{entity}/{key}", tag = "governance",
    security(("bearer" = ["read"])),
    params(
        ("entity" = String, Path, description = "A canonical entity, e.g. `project`"),
        ("key" = String, Path, description = "Its canonical key"),
    ),
    responses(Refused,
        (status = 200, description = "Its ids, by system", body = XrefView),
        (status = 404, description = "No system has it (`not_found`)", body = ErrorBody),
        (status = 422, description = "Not a canonical entity (`invalid_governance`)", body = ErrorBody),
    ))]
pub(crate) async fn get_xref(
    caller: Caller,
    State(state): State<ApiState>,
    Path((entity, key)): Path<(String, String)>,
) -> Result<Json<XrefView>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(
        state.flows.xref(&entity, &key).await.map_err(refused)?,
    ))
}

/// The record of one system to find an entity by.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ById {
    /// The system (connection), e.g. `hubspot`.
    system: String,
    /// The record's id there.
    id: String,
}

/// The entity whose record in `system` is `id`, with its ids in every system.
#[utoipa::path(get, path = "/v1/xref/{entity}", tag = "governance",
    security(("bearer" = ["read"])),
    params(("entity" = String, Path, description = "A canonical entity"), ById),
    responses(Refused,
        (status = 200, description = "The entity's ids, by system", body = XrefView),
        (status = 400, description = "`system` or `id` is missing", body = ErrorBody),
        (status = 404, description = "No entity has that id (`not_found`)", body = ErrorBody),
        (status = 409, description = "Several keys have that id (`conflict`): unlink the wrong ones", body = ErrorBody),
        (status = 422, description = "Not a canonical entity (`invalid_governance`)", body = ErrorBody),
    ))]
pub(crate) async fn find_xref(
    caller: Caller,
    State(state): State<ApiState>,
    Path(entity): Path<String>,
    query: Result<Query<ById>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<XrefView>, ApiError> {
    caller.require(Scope::Read)?;
    let Query(by) = query.map_err(|e| {
        ApiError::bad_request(format!(
            "{}; find an entity by one system's id: `?system=hubspot&id=123`",
            e.body_text()
        ))
    })?;
    let view = state.flows.xref_by_id(&entity, &by.system, &by.id).await;
    Ok(Json(view.map_err(refused)?))
}

/// The id of an entity in a system.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct XrefLink {
    /// The record's id in the system.
    id: String,
}

/// Links an entity to its record in a system by hand (replacing the id a
/// run recorded, if any), audited as `xref.link`.
#[utoipa::path(put, path = "/v1/xref/{entity}/{key}/{system}", tag = "governance",
    security(("bearer" = ["operator"])),
    params(
        ("entity" = String, Path, description = "A canonical entity"),
        ("key" = String, Path, description = "Its canonical key"),
        ("system" = String, Path, description = "The system (connection)"),
    ),
    request_body = XrefLink,
    responses(Refused,
        (status = 200, description = "The entity's ids after the change", body = XrefView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 422, description = "Not a canonical entity, or a key or id out of bounds (`invalid_governance`)", body = ErrorBody),
    ))]
pub(crate) async fn link_xref(
    caller: Caller,
    State(state): State<ApiState>,
    Path((entity, key, system)): Path<(String, String, String)>,
    JsonBody(link): JsonBody<XrefLink>,
) -> Result<Json<XrefView>, ApiError> {
    caller.require(Scope::Operator)?;
    let view = state
        .flows
        .link_xref(&entity, &key, &system, Some(&link.id), &caller.name)
        .await;
    Ok(Json(view.map_err(refused)?))
}

/// Unlinks an entity from its record in a system, audited as `xref.unlink`.
#[utoipa::path(delete, path = "/v1/xref/{entity}/{key}/{system}", tag = "governance",
    security(("bearer" = ["operator"])),
    params(
        ("entity" = String, Path, description = "A canonical entity"),
        ("key" = String, Path, description = "Its canonical key"),
        ("system" = String, Path, description = "The system (connection)"),
    ),
    responses(Refused,
        (status = 200, description = "The entity's ids after the change", body = XrefView),
        (status = 422, description = "Not a canonical entity (`invalid_governance`)", body = ErrorBody),
    ))]
pub(crate) async fn unlink_xref(
    caller: Caller,
    State(state): State<ApiState>,
    Path((entity, key, system)): Path<(String, String, String)>,
) -> Result<Json<XrefView>, ApiError> {
    caller.require(Scope::Operator)?;
    let view = state
        .flows
        .link_xref(&entity, &key, &system, None, &caller.name)
        .await;
    Ok(Json(view.map_err(refused)?))
}
