//! The operator console at `/console`: its page and assets, embedded in the
//! binary, and its sign-in.
//!
//! The page is one HTML shell and a few ES modules (`host/api/console/`) that
//! render the estate from the `/v1` API in the browser: nothing is built or
//! fetched at run time, and the content security policy admits only this
//! host's own scripts and styles.
//!
//! Signing in with an API token (or redeeming a one-time link from
//! `POST /v1/console/links`) opens a session: a random cookie value,
//! `HttpOnly`, `SameSite=Strict` and `Secure` when the host's public URL is
//! https, of which the store keeps only the digest. The session acts as its
//! token, with the scope the token has at each request, so API calls from
//! the page are refused and allowed exactly as the token's would be. Every
//! state change made with the cookie must also carry the session's CSRF token
//! in `X-CSRF-Token`, which the page reads from `GET /console/session`.

use std::sync::LazyLock;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Scope;
use crate::error::{ApiError, ErrorBody, ErrorCode, Refused};
use crate::extract::{ApiState, Caller, JsonBody, same_digest, unauthorized};
use junction_flows::FlowError;
use junction_store::audit::{Outcome, Record};
use junction_store::{ConsoleKind, ConsoleSession, now_ms};

/// The session cookie's name.
const COOKIE: &str = "junction_session";
/// How long a session lasts.
const SESSION_MS: i64 = 12 * 60 * 60 * 1000;
/// How long a sign-in link may wait to be redeemed.
const LINK_MS: i64 = 10 * 60 * 1000;
/// The header a cookie-authenticated state change carries its CSRF token in.
const CSRF_HEADER: &str = "x-csrf-token";

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// One embedded file: name, content type, content.
type Asset = (&'static str, &'static str, &'static str);

macro_rules! assets {
    ($($name:literal => $mime:expr),* $(,)?) => {
        &[$(($name, $mime, include_str!(concat!("../console/assets/", $name)))),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = assets!(
    "console.css" => "text/css; charset=utf-8",
    "app.js" => JS,
    "api.js" => JS,
    "ui.js" => JS,
    "overview.js" => JS,
    "plugins.js" => JS,
    "connections.js" => JS,
    "flows.js" => JS,
    "runs.js" => JS,
    "dead-letters.js" => JS,
    "audit.js" => JS,
    "json-schema.js" => JS,
    "LICENSES.md" => "text/markdown; charset=utf-8",
);

static INDEX: &str = include_str!("../console/index.html");

/// Strong validators of the embedded files, computed once.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    std::iter::once(INDEX)
        .chain(ASSETS.iter().map(|(_, _, body)| *body))
        .map(|body| {
            format!(
                "\"{}\"",
                hex::encode(&Sha256::digest(body.as_bytes())[..12])
            )
        })
        .collect()
});

/// The headers every console response carries: the content security policy
/// and the refusal to be framed, sniffed or named in a Referer (a sign-in
/// link's code is in its URL).
fn guarded(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// An embedded file, or 304 when the browser's copy is current.
fn embedded(request: &HeaderMap, etag: &str, mime: &'static str, body: &'static str) -> Response {
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, mime)], body).into_response()
    };
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, etag);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    guarded(response)
}

/// The console's page (its data comes from this API, with the session's cookie).
#[utoipa::path(get, path = "/console/", tag = "console",
    responses((status = 200, description = "The console's page", content_type = "text/html")))]
pub(crate) async fn console_page(headers: HeaderMap) -> Response {
    embedded(&headers, &ETAGS[0], "text/html; charset=utf-8", INDEX)
}

/// The console's page, at the path without the trailing `/`.
#[utoipa::path(get, path = "/console", tag = "console",
    responses((status = 200, description = "The console's page", content_type = "text/html")))]
pub(crate) async fn console_page_bare(headers: HeaderMap) -> Response {
    console_page(headers).await
}

/// A script, style sheet or licence of the console, embedded in the binary.
#[utoipa::path(get, path = "/console/assets/{file}", tag = "console",
    params(("file" = String, Path, description = "e.g. `app.js`")),
    responses(
        (status = 200, description = "The file"),
        (status = 304, description = "The browser's copy is current (`If-None-Match`)"),
        (status = 404, description = "No such file", body = ErrorBody),
    ))]
pub(crate) async fn console_asset(headers: HeaderMap, Path(file): Path<String>) -> Response {
    match ASSETS.iter().position(|(name, _, _)| *name == file) {
        Some(i) => {
            let (_, mime, body) = ASSETS[i];
            embedded(&headers, &ETAGS[i + 1], mime, body)
        }
        None => ApiError::not_found(format!("the console has no asset `{file}`")).into_response(),
    }
}

/// Who the session is, and the CSRF token its state changes carry.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SessionView {
    /// The API token the session acts as.
    name: String,
    /// That token's scope now: `read`, `invoker`, `operator` or `admin`.
    scope: &'static str,
    /// Sent back in `X-CSRF-Token` with every state change.
    csrf: String,
    /// RFC 3339: when the session ends.
    expires_at: String,
}

impl SessionView {
    fn of(session: &ConsoleSession, scope: Scope) -> SessionView {
        SessionView {
            name: session.token_name.clone(),
            scope: scope.as_str(),
            csrf: session.csrf.clone(),
            expires_at: rfc3339(session.expires_at),
        }
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A fresh random secret: 244 bits from the operating system's generator.
fn secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn store_failed(e: junction_store::Error) -> ApiError {
    ApiError::from(FlowError::from(e))
}

/// The value of the session cookie of a request, if it has one.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
}

/// The session of a request that carries the cookie, and its token's scope
/// now: `None` without the cookie, 401 when the session is unknown, expired
/// or its token is no longer configured.
pub(crate) async fn session(
    state: &ApiState,
    headers: &HeaderMap,
) -> Result<Option<(ConsoleSession, Scope)>, ApiError> {
    let Some(value) = cookie(headers) else {
        return Ok(None);
    };
    let session = state
        .runtime
        .store()
        .console_session(&digest(value), now_ms())
        .await
        .map_err(store_failed)?
        .ok_or_else(|| unauthorized("the console session has ended or expired; sign in again"))?;
    let scope = state
        .tokens()
        .scope_of(&session.token_name)
        .ok_or_else(|| {
            unauthorized("the token of this console session is no longer configured; sign in again")
        })?;
    Ok(Some((session, scope)))
}

/// The session of a request, which must have one.
async fn signed_in(
    state: &ApiState,
    headers: &HeaderMap,
) -> Result<(ConsoleSession, Scope), ApiError> {
    session(state, headers)
        .await?
        .ok_or_else(|| unauthorized("not signed in to the console"))
}

/// The caller a console session acts as; a state change must carry the
/// session's CSRF token.
pub(crate) fn caller_of(
    session: &ConsoleSession,
    scope: Scope,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Caller, ApiError> {
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        let presented = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let expected: [u8; 32] = Sha256::digest(session.csrf.as_bytes()).into();
        let got: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        if !same_digest(&expected, &got) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "a change made with a console session must carry the session's CSRF token in \
                 `X-CSRF-Token` (from GET /console/session); reload the console",
            ));
        }
    }
    Ok(Caller {
        name: session.token_name.clone(),
        scope,
    })
}

/// The `Set-Cookie` of a new session (or, with `None`, of its end).
fn set_cookie(state: &ApiState, value: Option<&str>) -> HeaderValue {
    let secure = if state.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = match value {
        Some(value) => format!(
            "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            SESSION_MS / 1000
        ),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Opens a session for token `name` and answers with its cookie.
async fn open(state: &ApiState, name: &str, scope: Scope, how: &str) -> Result<Response, ApiError> {
    let value = secret();
    let now = now_ms();
    let session = ConsoleSession {
        digest: digest(&value),
        kind: ConsoleKind::Session,
        token_name: name.to_string(),
        csrf: secret(),
        created_at: now,
        expires_at: now + SESSION_MS,
    };
    let store = state.runtime.store();
    store
        .open_console_session(&session)
        .await
        .map_err(store_failed)?;
    store
        .audit_or_log(Record {
            actor: name,
            action: "console.sign_in",
            target: "console",
            digest: None,
            outcome: Outcome::Ok,
            detail: how,
        })
        .await;
    let mut response = Json(SessionView::of(&session, scope)).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie(state, Some(&value)));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(guarded(response))
}

/// A sign-in: the API token to act as.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignIn {
    /// One of the host's API tokens.
    token: String,
}

/// Signs in to the console with an API token: a session cookie
/// (`HttpOnly`, `SameSite=Strict`, `Secure` behind https) that acts as the
/// token for twelve hours. Audited as `console.sign_in`.
#[utoipa::path(post, path = "/console/session", tag = "console",
    request_body = SignIn,
    responses(
        (status = 200, description = "Signed in; the cookie is set", body = SessionView),
        (status = 400, description = "The body is not `{\"token\": ...}`", body = ErrorBody),
        (status = 401, description = "No token of this host is that token", body = ErrorBody),
        (status = 403, description = "The request came from another site's page (`Origin`)", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
    ))]
pub(crate) async fn sign_in(
    State(state): State<ApiState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SignIn>,
) -> Result<Response, ApiError> {
    same_origin_json(&headers, &state.public_url)?;
    let tokens = state.tokens();
    let (name, scope) = tokens.find(body.token.trim()).ok_or_else(|| {
        unauthorized("no API token of this host is that token; check it and sign in again")
    })?;
    open(&state, name, scope, "token").await
}

/// A sign-in comes from the console's own page: JSON (which a form on
/// another site cannot send without the browser asking this host first),
/// and from this host's origin (its `Host`, or its public URL) when the
/// browser names one. Otherwise
/// another site could sign its visitors in as a token of its choosing.
fn same_origin_json(headers: &HeaderMap, public_url: &str) -> Result<(), ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::BadRequest,
            "a sign-in is `Content-Type: application/json` with `{\"token\": \"...\"}`",
        ));
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if let (Some(origin), Some(host)) = (origin, host) {
        let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        // Behind a proxy that rewrites `Host`, the public URL is the origin.
        let public = public_url
            .get(..origin.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(origin))
            && public_url[origin.len()..]
                .chars()
                .next()
                .is_none_or(|c| c == '/');
        if !authority.eq_ignore_ascii_case(host) && !public {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                format!("a sign-in must come from this host's console, not from `{origin}`"),
            ));
        }
    }
    Ok(())
}

/// The console session of the cookie: its token, scope and CSRF token.
#[utoipa::path(get, path = "/console/session", tag = "console",
    security(("console_session" = [])),
    responses(
        (status = 200, description = "Signed in", body = SessionView),
        (status = 401, description = "No session, or it ended", body = ErrorBody),
    ))]
pub(crate) async fn whoami(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (session, scope) = signed_in(&state, &headers).await?;
    let mut response = Json(SessionView::of(&session, scope)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(guarded(response))
}

/// Signs out: the session ends on every host and the cookie is cleared.
/// Needs the session's `X-CSRF-Token`. Audited as `console.sign_out`.
#[utoipa::path(delete, path = "/console/session", tag = "console",
    security(("console_session" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "No session, or it ended", body = ErrorBody),
        (status = 403, description = "No or a wrong `X-CSRF-Token`", body = ErrorBody),
    ))]
pub(crate) async fn sign_out(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (session, scope) = signed_in(&state, &headers).await?;
    caller_of(&session, scope, &Method::DELETE, &headers)?;
    let store = state.runtime.store();
    store
        .end_console_session(&session.digest)
        .await
        .map_err(store_failed)?;
    store
        .audit_or_log(Record {
            actor: &session.token_name,
            action: "console.sign_out",
            target: "console",
            digest: None,
            outcome: Outcome::Ok,
            detail: "",
        })
        .await;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&state, None));
    Ok(guarded(response))
}

/// The code of a one-time sign-in link.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LinkQuery {
    /// From `POST /v1/console/links`.
    code: Option<String>,
}

/// Redeems a one-time sign-in link: a session, and on to the console; a
/// used, expired or unknown link goes to the console's sign-in instead.
#[utoipa::path(get, path = "/console/sign-in", tag = "console",
    params(LinkQuery),
    responses((status = 303, description = "To `/console/` (signed in), or to `/console/?link=refused`")))]
pub(crate) async fn redeem_link(
    State(state): State<ApiState>,
    Query(query): Query<LinkQuery>,
) -> Result<Response, ApiError> {
    let refused = || {
        guarded(
            (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, "/console/?link=refused")],
            )
                .into_response(),
        )
    };
    let Some(code) = query.code.filter(|c| !c.is_empty()) else {
        return Ok(refused());
    };
    let Some(link) = state
        .runtime
        .store()
        .redeem_console_link(&digest(&code), now_ms())
        .await
        .map_err(store_failed)?
    else {
        return Ok(refused());
    };
    let Some(scope) = state.tokens().scope_of(&link.token_name) else {
        return Ok(refused());
    };
    let opened = open(&state, &link.token_name, scope, "one-time link").await?;
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/console/")]).into_response();
    for name in [header::SET_COOKIE, header::CACHE_CONTROL] {
        if let Some(value) = opened.headers().get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    Ok(guarded(response))
}

/// A one-time sign-in link to the console.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ConsoleLink {
    /// Opens a console session as the token that asked for it, once.
    url: String,
    /// RFC 3339: the link is refused after this.
    expires_at: String,
}

/// Makes a one-time link that signs its opener in to the console as the
/// calling token (with its scope), valid for ten minutes. Audited as
/// `console.link`.
#[utoipa::path(post, path = "/v1/console/links", tag = "console",
    security(("bearer" = ["read"])),
    responses(Refused,
        (status = 201, description = "The link", body = ConsoleLink),
    ))]
pub(crate) async fn console_link(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let code = secret();
    let now = now_ms();
    let link = ConsoleSession {
        digest: digest(&code),
        kind: ConsoleKind::Link,
        token_name: caller.name.clone(),
        csrf: secret(),
        created_at: now,
        expires_at: now + LINK_MS,
    };
    let store = state.runtime.store();
    store
        .open_console_session(&link)
        .await
        .map_err(store_failed)?;
    store
        .audit_or_log(Record {
            actor: &caller.name,
            action: "console.link",
            target: "console",
            digest: None,
            outcome: Outcome::Ok,
            detail: "one-time sign-in link",
        })
        .await;
    let body = ConsoleLink {
        url: format!("{}/console/sign-in?code={code}", state.public_url),
        expires_at: rfc3339(link.expires_at),
    };
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; junction_session=abc ; b=2"),
        );
        assert_eq!(cookie(&headers), Some("abc"));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("junction_sessionx=1"),
        );
        assert_eq!(cookie(&headers), None);
    }
}
