//! `/v1/plugins`: list, upload, detail, activate, roll back and delete plugin versions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::config::Scope;
use crate::error::{ApiError, ErrorBody, Refused};
use crate::extract::{ApiState, Caller, RawBody};
use junction_runtime::lifecycle::{PluginDetail, Uploaded};
use junction_runtime::plugins::PluginSummary;

/// Every loaded plugin version.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PluginList {
    /// One entry per loaded version.
    plugins: Vec<PluginSummary>,
}

/// A package file (`.jpkg`): manifest, component and signature.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(
    dead_code,
    reason = "only describes the upload body in the OpenAPI document"
)]
pub(crate) struct Package(Vec<u8>);

/// The version a plugin serves now.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ActiveVersion {
    /// Plugin name.
    name: String,
    /// The active version.
    active: String,
    /// `sha256:<hex>` of its component.
    digest: String,
}

impl ActiveVersion {
    fn of(name: String, plugin: &junction_runtime::plugins::Plugin) -> ActiveVersion {
        ActiveVersion {
            name,
            active: plugin.version().to_string(),
            digest: plugin.digest().to_string(),
        }
    }
}

/// Lists every loaded plugin version.
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins",
    security(("bearer" = ["read"])),
    responses(Refused,
        (status = 200, description = "The loaded versions", body = PluginList),
    ))]
pub(crate) async fn list_plugins(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Json<PluginList>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(PluginList {
        plugins: state.runtime.plugins(),
    }))
}

/// Uploads a plugin package (manifest, component and signature), which is
/// inspected, compiled and loaded without a restart.
#[utoipa::path(post, path = "/v1/plugins", tag = "plugins",
    security(("bearer" = ["operator"])),
    request_body(content = Package, content_type = "application/octet-stream",
        description = "A package written by `junction plugin pack` (and `sign`)"),
    responses(
        (status = 201, description = "A new version was loaded", body = Uploaded),
        (status = 200, description = "Exactly this package was already loaded", body = Uploaded),
        (status = 400, description = "A malformed package", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "The token's scope is too narrow, or the package is unsigned or signed by an untrusted key", body = ErrorBody),
        (status = 409, description = "This version was loaded with another digest", body = ErrorBody),
        (status = 413, description = "The package is larger than the host accepts", body = ErrorBody),
        (status = 422, description = "The component is refused: world, imports, manifest", body = ErrorBody),
    ))]
pub(crate) async fn upload_plugin(
    caller: Caller,
    State(state): State<ApiState>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(Scope::Operator)?;
    let uploaded = state.runtime.upload_package(&body, &caller.name).await?;
    let status = if uploaded.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(uploaded)).into_response())
}

/// A plugin with every loaded version and which connections pin which.
#[utoipa::path(get, path = "/v1/plugins/{name}", tag = "plugins",
    security(("bearer" = ["read"])),
    params(("name" = String, Path, description = "Plugin name")),
    responses(Refused,
        (status = 200, description = "The plugin", body = PluginDetail),
        (status = 404, description = "No such plugin", body = ErrorBody),
    ))]
pub(crate) async fn plugin_detail(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<PluginDetail>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(state.runtime.plugin_detail(&name).await?))
}

/// Makes a loaded version the one calls use (hot swap: calls in flight finish on the old one).
#[utoipa::path(post, path = "/v1/plugins/{name}/versions/{version}/activate", tag = "plugins",
    security(("bearer" = ["operator"])),
    params(
        ("name" = String, Path, description = "Plugin name"),
        ("version" = String, Path, description = "A loaded version"),
    ),
    responses(Refused,
        (status = 200, description = "The version now active", body = ActiveVersion),
        (status = 404, description = "No such plugin or version", body = ErrorBody),
    ))]
pub(crate) async fn activate_plugin(
    caller: Caller,
    State(state): State<ApiState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<ActiveVersion>, ApiError> {
    caller.require(Scope::Operator)?;
    let plugin = state
        .runtime
        .activate(&name, &version, &caller.name)
        .await?;
    Ok(Json(ActiveVersion::of(name, &plugin)))
}

/// Activates the version that was active before the current one.
#[utoipa::path(post, path = "/v1/plugins/{name}/rollback", tag = "plugins",
    security(("bearer" = ["operator"])),
    params(("name" = String, Path, description = "Plugin name")),
    responses(Refused,
        (status = 200, description = "The version now active", body = ActiveVersion),
        (status = 404, description = "No such plugin, or no earlier version", body = ErrorBody),
    ))]
pub(crate) async fn rollback_plugin(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<ActiveVersion>, ApiError> {
    caller.require(Scope::Operator)?;
    let plugin = state.runtime.rollback(&name, &caller.name).await?;
    Ok(Json(ActiveVersion::of(name, &plugin)))
}

/// Unloads a version that is neither active nor pinned by a connection.
#[utoipa::path(delete, path = "/v1/plugins/{name}/versions/{version}", tag = "plugins",
    security(("bearer" = ["operator"])),
    params(
        ("name" = String, Path, description = "Plugin name"),
        ("version" = String, Path, description = "A loaded version"),
    ),
    responses(Refused,
        (status = 204, description = "The version is gone"),
        (status = 404, description = "No such plugin or version", body = ErrorBody),
        (status = 409, description = "The version is active or pinned", body = ErrorBody),
    ))]
pub(crate) async fn delete_plugin_version(
    caller: Caller,
    State(state): State<ApiState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::Operator)?;
    state
        .runtime
        .delete_version(&name, &version, &caller.name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
