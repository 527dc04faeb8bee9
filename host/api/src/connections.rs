//! `/v1/connections`: list, create or replace, check, and invoke operations.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;

use crate::config::Scope;
use crate::error::{ApiError, CallRefused, ErrorBody, ErrorCode, Refused};
use crate::extract::{ApiState, Caller, JsonBody, RawBody, utf8};
use junction_runtime::runtime::{CallOptions, ConnectionError, ConnectionSpec};
use junction_runtime::trace::TraceContext;
use junction_store::Connection;
use junction_store::audit::{Outcome, Record};
use junction_store::idempotency::{self, Claim};

/// A connection as the API shows it: credentials reduced to their kind.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ConnectionView {
    /// Connection name.
    name: String,
    /// The connector plugin.
    plugin: String,
    /// The pinned version; absent when it follows the active version.
    version: Option<String>,
    /// Non-secret settings.
    config: std::collections::BTreeMap<String, String>,
    /// The kind of its credentials (`basic`, `bearer`, `api_key`,
    /// `oauth2_client_credentials`, `oauth2_refresh_token`), never the secrets.
    auth: Option<Kind>,
    /// Hosts the plugin may reach.
    allowed_hosts: Vec<String>,
    /// Allowed hosts granted to resolve to non-public addresses.
    private_hosts: Vec<String>,
    /// The hosts that receive the credentials: the ones set, else the host
    /// of the `base_url` or `instance_url` setting, else the first allowed
    /// host; empty without credentials.
    credential_hosts: Vec<String>,
    /// Outbound rate limit.
    rate_limit: Option<junction_store::RateLimit>,
    /// The scheme that verifies its webhooks, never the secret.
    webhook: Option<WebhookView>,
    /// When its circuit breaker opens (the defaults when not set).
    circuit: junction_store::CircuitSettings,
    /// RFC 3339 time of creation.
    created_at: String,
    /// RFC 3339 time of the last change.
    updated_at: String,
}

/// The kind of a connection's credentials, and their fields that are not
/// secret (`username`, `header`, `token_url`, `client_id`, `scope`).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Kind {
    /// The kind.
    #[serde(rename = "type")]
    kind: &'static str,
    /// The fields that are not secret, by name.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    settings: serde_json::Map<String, serde_json::Value>,
}

/// The credential fields the API shows: an allow-list, so that a secret
/// field added later is hidden until it is named here.
const PUBLIC_AUTH_FIELDS: [&str; 5] = ["username", "header", "token_url", "client_id", "scope"];

impl Kind {
    fn of(auth: &junction_store::Auth) -> Kind {
        let mut settings = serde_json::Map::new();
        if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(auth) {
            for (name, value) in fields {
                if PUBLIC_AUTH_FIELDS.contains(&name.as_str()) && !value.is_null() {
                    settings.insert(name, value);
                }
            }
        }
        Kind {
            kind: auth.kind(),
            settings,
        }
    }
}

/// How a connection's webhooks are verified, without the secret.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct WebhookView {
    /// The sender's signature scheme.
    scheme: junction_store::Scheme,
}

/// Every connection.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ConnectionList {
    /// Sorted by name.
    connections: Vec<ConnectionView>,
}

/// A passed connection check.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CheckPassed {
    /// Always `ok`.
    status: &'static str,
    /// The plugin that checked.
    plugin: String,
    /// Its version.
    version: String,
}

impl From<Connection> for ConnectionView {
    fn from(c: Connection) -> Self {
        ConnectionView {
            auth: c.auth.as_ref().map(Kind::of),
            credential_hosts: match c.auth {
                Some(_) => junction_runtime::runtime::credential_targets(
                    &c.credential_hosts,
                    &c.config,
                    &c.allowed_hosts,
                ),
                None => Vec::new(),
            },
            name: c.name,
            plugin: c.plugin,
            version: c.version,
            config: c.config,
            allowed_hosts: c.allowed_hosts,
            private_hosts: c.private_hosts,
            rate_limit: c.rate_limit,
            webhook: c.webhook.map(|w| WebhookView { scheme: w.scheme }),
            circuit: c.circuit.unwrap_or_default(),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// Lists every connection, credentials reduced to their kind.
#[utoipa::path(get, path = "/v1/connections", tag = "connections",
    security(("bearer" = ["read"])),
    responses(Refused, (status = 200, description = "The connections", body = ConnectionList)))]
pub(crate) async fn list_connections(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Json<ConnectionList>, ApiError> {
    caller.require(Scope::Read)?;
    let connections = state
        .runtime
        .store()
        .connections()
        .await
        .map_err(ConnectionError::from)?;
    Ok(Json(ConnectionList {
        connections: connections.into_iter().map(Into::into).collect(),
    }))
}

/// Creates or replaces a connection: its plugin (and pinned version), settings,
/// credentials (write-only), allowed hosts, rate limit and webhook verification.
#[utoipa::path(get, path = "/v1/connections/{name}", tag = "connections",
    security(("bearer" = ["read"])),
    params(("name" = String, Path, description = "Connection name")),
    responses(Refused,
        (status = 200, description = "The connection; credentials only as their kind", body = ConnectionView),
        (status = 404, description = "No such connection", body = ErrorBody),
    ))]
pub(crate) async fn get_connection(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<ConnectionView>, ApiError> {
    caller.require(Scope::Read)?;
    let connection = state
        .runtime
        .store()
        .connection(&name)
        .await
        .map_err(ConnectionError::from)?
        .ok_or_else(|| ApiError::not_found(format!("no connection named `{name}`")))?;
    Ok(Json(connection.into()))
}

/// Creates or replaces a connection. Secrets are write-only: a replacement
/// whose `auth` is of the stored kind but leaves out its secret fields, or
/// whose `webhook` leaves out its `secret`, keeps the stored ones.
#[utoipa::path(put, path = "/v1/connections/{name}", tag = "connections",
    security(("bearer" = ["operator"])),
    params(("name" = String, Path, description = "Connection name: 1-64 of a-z, 0-9, `-`, `_`")),
    request_body = ConnectionSpec,
    responses(Refused,
        (status = 201, description = "Created", body = ConnectionView),
        (status = 200, description = "Replaced", body = ConnectionView),
        (status = 400, description = "Malformed JSON or an unknown field", body = ErrorBody),
        (status = 422, description = "Refused: the message says the fix", body = ErrorBody),
    ))]
pub(crate) async fn put_connection(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
    JsonBody(mut body): JsonBody<serde_json::Value>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Operator)?;
    keep_stored_secrets(&state, &name, &mut body).await?;
    let spec: ConnectionSpec = serde_json::from_value(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidJson,
            format!("invalid request body: {e}"),
        )
    })?;
    let plugin = spec.plugin.clone();
    let result = state.runtime.put_connection(&name, spec).await;
    let record = Record {
        actor: &caller.name,
        action: "connection.put",
        target: &name,
        digest: None,
        outcome: Outcome::of(&result),
        detail: &match &result {
            Ok(_) => format!("plugin {plugin}"),
            Err(e) => e.to_string(),
        },
    };
    state.runtime.store().audit_or_log(record).await;
    let (connection, created) = result?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(ConnectionView::from(connection))).into_response())
}

/// The secret fields of each kind of credentials, and of webhook settings.
const SECRET_FIELDS: [(&str, &[&str]); 5] = [
    ("basic", &["password"]),
    ("bearer", &["token"]),
    ("api_key", &["value"]),
    ("oauth2_client_credentials", &["client_secret"]),
    ("oauth2_refresh_token", &["client_secret", "refresh_token"]),
];

/// A replacement that leaves out a secret keeps the stored one: an `auth`
/// of the stored kind without its secret fields, or a `webhook` without its
/// `secret`. Secrets are never shown, so an edit that changes only the
/// rate limit need not retype them.
async fn keep_stored_secrets(
    state: &ApiState,
    name: &str,
    body: &mut serde_json::Value,
) -> Result<(), ApiError> {
    let omits = |section: &str, fields: &[&str]| {
        body.get(section)
            .and_then(|v| v.as_object())
            .is_some_and(|o| fields.iter().any(|f| !o.contains_key(*f)))
    };
    let auth_kind = body
        .get("auth")
        .and_then(|a| a.get("type"))
        .and_then(|t| t.as_str())
        .unwrap_or_default()
        .to_string();
    let auth_secrets = SECRET_FIELDS
        .iter()
        .find(|(kind, _)| *kind == auth_kind)
        .map(|(_, fields)| *fields)
        .unwrap_or_default();
    if !omits("auth", auth_secrets) && !omits("webhook", &["secret"]) {
        return Ok(());
    }
    let Some(stored) = state
        .runtime
        .store()
        .connection(name)
        .await
        .map_err(ConnectionError::from)?
    else {
        return Ok(());
    };
    let copy = |section: &str,
                stored: serde_json::Value,
                fields: &[&str],
                body: &mut serde_json::Value| {
        if let (Some(target), Some(stored)) = (
            body.get_mut(section).and_then(|v| v.as_object_mut()),
            stored.as_object(),
        ) {
            for field in fields {
                if !target.contains_key(*field)
                    && let Some(value) = stored.get(*field)
                {
                    target.insert((*field).to_string(), value.clone());
                }
            }
        }
    };
    if let Some(auth) = stored
        .auth
        .as_ref()
        .and_then(|a| serde_json::to_value(a).ok())
        && auth["type"] == auth_kind.as_str()
    {
        copy("auth", auth, auth_secrets, body);
    }
    if let Some(webhook) = stored
        .webhook
        .as_ref()
        .and_then(|w| serde_json::to_value(w).ok())
    {
        copy("webhook", webhook, &["secret"], body);
    }
    Ok(())
}

/// Runs the connector's `check` against the remote system with the connection's credentials.
#[utoipa::path(post, path = "/v1/connections/{name}/check", tag = "connections",
    security(("bearer" = ["invoker"])),
    params(("name" = String, Path, description = "Connection name")),
    responses(Refused, CallRefused,
        (status = 200, description = "The remote system answered as expected", body = CheckPassed),
    ))]
pub(crate) async fn check_connection(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<CheckPassed>, ApiError> {
    caller.require(Scope::Invoker)?;
    let plugin = state.runtime.check(&name).await?;
    Ok(Json(CheckPassed {
        status: "ok",
        plugin: plugin.name().to_string(),
        version: plugin.version().to_string(),
    }))
}

/// The options of a call made for a request: its `Idempotency-Key` and its
/// trace, so the plugin and the systems it calls see the request's trace id.
pub(crate) fn call_options(headers: &HeaderMap, trace: Option<TraceContext>) -> CallOptions {
    CallOptions {
        idempotency_key: headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        trace,
        ..CallOptions::default()
    }
}

/// Calls one operation of the connection's plugin with the JSON body as its
/// input, and answers with the operation's JSON output.
#[utoipa::path(post, path = "/v1/connections/{name}/operations/{op}", tag = "connections",
    security(("bearer" = ["invoker"])),
    params(
        ("name" = String, Path, description = "Connection name"),
        ("op" = String, Path, description = "Operation name, as the plugin's `info` lists it"),
        ("Idempotency-Key" = Option<String>, Header,
            description = "1-255 characters: a retry with the same key and body answers the first answer (with `Idempotent-Replayed: true`) instead of calling again"),
    ),
    request_body(content = serde_json::Value, description = "The operation's input; empty means `{}`"),
    responses(Refused, CallRefused,
        (status = 200, description = "The operation's output", body = serde_json::Value,
            headers(("Junction-Plugin" = String, description = "`<plugin>@<version>` that answered"))),
    ))]
pub(crate) async fn invoke(
    caller: Caller,
    State(state): State<ApiState>,
    Path((name, op)): Path<(String, String)>,
    headers: HeaderMap,
    trace: Option<Extension<TraceContext>>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(Scope::Invoker)?;
    let input = utf8(&body)?;
    let input = if input.trim().is_empty() { "{}" } else { input };
    let options = call_options(&headers, trace.map(|t| t.0));
    let store = state.runtime.store();
    let claimed = match &options.idempotency_key {
        Some(key) => {
            if key.is_empty() || key.len() > 255 {
                return Err(ApiError::bad_request(
                    "the Idempotency-Key header must be 1-255 characters",
                ));
            }
            let request = idempotency::request_digest(&name, &op, input);
            // A first request that never finished (its host died) is given up after this.
            let stale = state.runtime.limits().deadline() * 2 + std::time::Duration::from_secs(60);
            match store
                .claim_idempotent(&caller.name, key, &request, stale)
                .await
                .map_err(ConnectionError::from)?
            {
                Claim::Run => Some(key.clone()),
                Claim::Replay { response, plugin } => {
                    return Ok(operation_answer(response, &plugin, true));
                }
                Claim::Mismatch => {
                    return Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        ErrorCode::IdempotencyKeyReused,
                        format!("Idempotency-Key `{key}` was used for another request"),
                    ));
                }
                Claim::InFlight => {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        ErrorCode::IdempotencyKeyInFlight,
                        format!("a request with Idempotency-Key `{key}` is still running"),
                    )
                    .retry_after(1));
                }
            }
        }
        None => None,
    };
    let result = state.runtime.invoke(&name, &op, input, options).await;
    match (&result, &claimed) {
        (Ok(output), Some(key)) => {
            let version = format!("{}@{}", output.plugin.name(), output.plugin.version());
            if let Err(e) = store
                .finish_idempotent(&caller.name, key, &output.json, &version)
                .await
            {
                tracing::error!(error = %e, "could not store an idempotent answer");
            }
        }
        (Err(_), Some(key)) => {
            if let Err(e) = store.release_idempotent(&caller.name, key).await {
                tracing::error!(error = %e, "could not release an idempotency key");
            }
        }
        (_, None) => {}
    }
    let output = result?;
    let version = format!("{}@{}", output.plugin.name(), output.plugin.version());
    Ok(operation_answer(output.json, &version, false))
}

/// An operation's output, with the plugin version that produced it.
pub(crate) fn operation_answer(json: String, version: &str, replayed: bool) -> Response {
    let mut response = (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::HeaderName::from_static("junction-plugin"),
                HeaderValue::from_str(version).unwrap_or(HeaderValue::from_static("unknown")),
            ),
        ],
        json,
    )
        .into_response();
    if replayed {
        response.headers_mut().insert(
            header::HeaderName::from_static("idempotent-replayed"),
            HeaderValue::from_static("true"),
        );
    }
    response
}
