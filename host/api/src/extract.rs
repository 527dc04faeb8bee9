//! Extractors: JSON and raw bodies in the error shape, the API state, and the
//! authenticated caller.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::config::Scope;
use crate::error::{ApiError, ErrorCode};
use junction_flows::Flows;
use junction_runtime::runtime::Runtime;

/// A JSON body; malformed JSON is a 400, an oversized body a 413, both in the error shape.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = RawBody::from_request(req, state).await?.0;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidJson,
                format!("invalid request body: {e}"),
            )
        })
    }
}

/// The raw body; an oversized body is a 413 in the error shape.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|rejection| {
                let status = rejection.status();
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        status,
                        ErrorCode::PayloadTooLarge,
                        "the request body is larger than the host accepts",
                    )
                } else {
                    ApiError::new(status, ErrorCode::BadRequest, rejection.body_text())
                }
            })
    }
}

/// Token digests and what they may do.
pub(crate) struct Tokens(pub(crate) Vec<(String, [u8; 32], Scope)>);

impl Tokens {
    /// The tokens of `config`, kept as digests.
    pub(crate) fn of(config: &crate::config::ApiConfig) -> Tokens {
        Tokens(
            config
                .tokens
                .iter()
                .map(|(name, t)| {
                    (
                        name.clone(),
                        Sha256::digest(t.token.as_bytes()).into(),
                        t.scope,
                    )
                })
                .collect(),
        )
    }

    /// How many there are.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The scope of the token called `name`, while it is configured.
    pub(crate) fn scope_of(&self, name: &str) -> Option<Scope> {
        self.0
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, scope)| *scope)
    }

    pub(crate) fn find(&self, presented: &str) -> Option<(&str, Scope)> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Compare digests, not secrets, and every entry, so timing says nothing useful.
        let mut found = None;
        for (name, expected, scope) in &self.0 {
            if same_digest(expected, &digest) {
                found = Some((name.as_str(), *scope));
            }
        }
        found
    }
}

/// Whether two digests are equal, compared in constant time.
pub(crate) fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The shared state of the API.
#[derive(Clone)]
pub struct ApiState {
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) flows: Arc<Flows>,
    /// The API tokens; replaced by a reload.
    pub(crate) tokens: Arc<std::sync::RwLock<Arc<Tokens>>>,
    /// Reloads the tokens and trusted keys.
    pub(crate) reloader: crate::reload::Reloader,
    /// Where senders reach the host, without a trailing `/`.
    pub(crate) public_url: Arc<str>,
    /// The digest of the token that may scrape `/metrics` only.
    pub(crate) metrics_token: Option<[u8; 32]>,
}

impl ApiState {
    /// The tokens accepted now.
    pub(crate) fn tokens(&self) -> Arc<Tokens> {
        self.tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Token name from the configuration.
    pub name: String,
    /// Its scope.
    pub scope: Scope,
}

impl Caller {
    pub(crate) fn require(&self, needed: Scope) -> Result<(), ApiError> {
        if self.scope >= needed {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                format!(
                    "token `{}` has scope `{}`; this needs `{}`",
                    self.name,
                    self.scope.as_str(),
                    needed.as_str()
                ),
            ))
        }
    }
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        // A request without a bearer token may come from the console, with
        // its session cookie.
        if !parts.headers.contains_key(header::AUTHORIZATION)
            && let Some((session, scope)) = crate::console::session(state, &parts.headers).await?
        {
            return crate::console::caller_of(&session, scope, &parts.method, &parts.headers);
        }
        let token = bearer(&parts.headers)?;
        let tokens = state.tokens();
        let (name, scope) = tokens
            .find(token)
            .ok_or_else(|| unauthorized("unknown token"))?;
        Ok(Caller {
            name: name.to_string(),
            scope,
        })
    }
}

/// A 401 in the error shape.
pub(crate) fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
}

/// The bearer token of a request's `Authorization` header.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing `Authorization: Bearer <token>` header"))?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))
}

/// A JSON body must be UTF-8 before it is anything else.
pub(crate) fn utf8(body: &Bytes) -> Result<&str, ApiError> {
    std::str::from_utf8(body).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidJson,
            "the body is not UTF-8",
        )
    })
}
