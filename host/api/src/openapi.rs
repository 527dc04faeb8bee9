//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! attributes and their request and response types.
//!
//! The router is built here, from the same attributes, so a route cannot
//! exist without its entry in the document: a handler is mounted with
//! `routes!`, which reads its method and path from its attribute.

use std::sync::LazyLock;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::audit::*;
use crate::circuits::*;
use crate::connections::*;
use crate::console::*;
use crate::dead_letters::*;
use crate::error::{ErrorBody, ErrorCode};
use crate::events::*;
use crate::extract::ApiState;
use crate::flows::*;
use crate::governance::*;
use crate::kpis::*;
use crate::metrics::*;
use crate::plugins::*;
use crate::reload::*;
use crate::runs::*;
use crate::streams::*;
use crate::transforms::*;
use crate::webhooks::*;
use crate::{__path_healthz, __path_readyz, healthz, readyz};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Junction",
        description = "The HTTP API of a Junction host: plugins (hot-loaded WebAssembly \
components), connections to the systems they reach, flows between them, their runs and \
dead letters, webhooks, metrics and KPIs.\n\nEvery error answers `{\"error\":{\"code\",\
\"message\"}}` with a stable `code` (see `ErrorCode`). Endpoints behind a bearer token \
name the token scope they need (`read` < `invoker` < `operator` < `admin`); a token of a \
wider scope may call them too. Webhooks are authenticated by their signature instead.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&Security),
    components(schemas(ErrorBody, ErrorCode)),
    tags(
        (name = "host", description = "Health, readiness, metrics and this document"),
        (name = "plugins", description = "Upload, activate, roll back and unload plugin versions"),
        (name = "connections", description = "Connections to remote systems and their operations"),
        (name = "transforms", description = "Pure mappings between record shapes"),
        (name = "webhooks", description = "Signed deliveries from remote systems"),
        (name = "flows", description = "Durable flows between the systems"),
        (name = "runs", description = "What flows did, step by step"),
        (name = "dead-letters", description = "Runs that failed for good: inspect, replay, discard"),
        (name = "audit", description = "Who did what"),
        (name = "events", description = "CloudEvents the host emitted or passed on, as a feed (and published to NATS JetStream when configured)"),
        (name = "governance", description = "Which system owns which field of each canonical entity, and the cross-system id map"),
        (name = "console", description = "The operator console at `/console/`: its page, sign-in and sessions"),
        (name = "kpis", description = "Business KPIs of a window: setup cycle time, failed syncs, manual touches, blocked invoices"),
    )
)]
struct ApiDoc;

/// The bearer schemes: API tokens (with the scope as the requirement's
/// role) and the scrape token that may read `/metrics` only.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi
            .components
            .get_or_insert_with(utoipa::openapi::Components::new);
        let bearer = |description: &str| {
            let mut http = Http::new(HttpAuthScheme::Bearer);
            http.description = Some(description.to_string());
            SecurityScheme::Http(http)
        };
        components.add_security_scheme(
            "bearer",
            bearer(
                "An API token from the host's `[api.tokens]`; the requirement lists the scope \
                 an endpoint needs (`read`, `invoker`, `operator` or `admin`).",
            ),
        );
        components.add_security_scheme(
            "console_session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "junction_session",
                "The operator console's session (`POST /console/session`): it acts as the \
                 API token it was opened with, on every endpoint, with that token's scope; \
                 a state change made with it must carry the session's `X-CSRF-Token`.",
            ))),
        );
        components.add_security_scheme(
            "scrape_token",
            bearer("The host's `api.metrics_token`: reads `/metrics` and nothing else."),
        );
    }
}

/// Every route of the API with its documentation; `upload_limit` bounds
/// plugin uploads' bodies.
pub(crate) fn routes(upload_limit: usize) -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(list_plugins))
        .routes(routes!(upload_plugin).layer(DefaultBodyLimit::max(upload_limit)))
        .routes(routes!(plugin_detail))
        .routes(routes!(activate_plugin))
        .routes(routes!(delete_plugin_version))
        .routes(routes!(rollback_plugin))
        .routes(routes!(audit_log))
        .routes(routes!(list_events))
        .routes(routes!(list_connections))
        .routes(routes!(get_connection, put_connection))
        .routes(routes!(check_connection))
        .routes(routes!(get_circuit, put_circuit))
        .routes(routes!(invoke))
        .routes(routes!(read_stream))
        .routes(routes!(apply))
        .routes(routes!(webhook))
        .routes(routes!(list_flows))
        .routes(routes!(flow_detail, deploy_flow))
        .routes(routes!(flow_version))
        .routes(routes!(start_run))
        .routes(routes!(list_runs))
        .routes(routes!(run_detail))
        .routes(routes!(signal_run))
        .routes(routes!(list_dead_letters))
        .routes(routes!(replay_flow_dead_letters))
        .routes(routes!(discard_dead_letter))
        .routes(routes!(replay_dead_letter))
        .routes(routes!(dead_letter_input_schema))
        .routes(routes!(console_link))
        .routes(routes!(console_page))
        .routes(routes!(console_page_bare))
        .routes(routes!(console_asset))
        .routes(routes!(whoami, sign_in, sign_out))
        .routes(routes!(redeem_link))
        .routes(routes!(kpis))
        .routes(routes!(get_governance, deploy_governance))
        .routes(routes!(find_xref))
        .routes(routes!(get_xref))
        .routes(routes!(link_xref, unlink_xref))
        .routes(routes!(reload_config))
}

/// The OpenAPI document of this version of the API.
pub fn document() -> utoipa::openapi::OpenApi {
    routes(0).split_for_parts().1
}

static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    document()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"the document did not serialize: {e}\"}}"))
});

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "host",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API",
        content_type = "application/json", body = serde_json::Value)))]
pub(crate) async fn openapi_json() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        DOCUMENT.as_str(),
    )
        .into_response()
}
