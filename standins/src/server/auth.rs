//! Credential checks shared by the stand-ins: bearer tokens and a required `Authorization` scheme
//! in front of a router.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::Response;

/// Whether `headers` carry `Authorization: Bearer {token}` (the scheme in any case).
pub(crate) fn has_bearer_token(headers: &axum::http::HeaderMap, token: &str) -> bool {
    authorization(headers, "bearer") == Some(token)
}

/// The credentials of `Authorization: {scheme} {credentials}` (the scheme in any case), or
/// `None` when the header is absent or has another scheme.
fn authorization<'h>(headers: &'h axum::http::HeaderMap, scheme: &str) -> Option<&'h str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(sent, _)| sent.eq_ignore_ascii_case(scheme))
        .map(|(_, credentials)| credentials.trim())
}

/// `router` behind a check of `Authorization: {scheme} {secret}` (the scheme, such as `Bearer`
/// or `API-Key`, in any case): requests without it are answered `refused()`.
pub(crate) fn behind_authorization<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    scheme: &'static str,
    secret: &str,
    refused: fn() -> Response,
) -> Router<S> {
    let required = Arc::new(RequiredAuthorization {
        scheme,
        secret: secret.to_owned(),
        refused,
    });
    router.layer(middleware::from_fn_with_state(
        required,
        require_authorization,
    ))
}

/// The credentials a stand-in wants and its answer to a request without them.
struct RequiredAuthorization {
    pub(super) scheme: &'static str,
    pub(super) secret: String,
    pub(super) refused: fn() -> Response,
}

async fn require_authorization(
    State(required): State<Arc<RequiredAuthorization>>,
    request: Request,
    next: Next,
) -> Response {
    if authorization(request.headers(), required.scheme) == Some(required.secret.as_str()) {
        next.run(request).await
    } else {
        (required.refused)()
    }
}
