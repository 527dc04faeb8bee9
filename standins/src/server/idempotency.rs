//! `Idempotency-Key` handling: a kept first answer replayed to retries of the same create.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::*;

/// Makes creates with an `Idempotency-Key` header safe to retry, as Stripe defines it: the
/// first successful (2xx) answer to a key is kept, and a later request with the same key,
/// method, path and body gets that answer again with `Idempotent-Replayed: true` without being
/// handled. The same key with another request is refused with the stand-in's `reused` answer.
/// Failed answers are not kept, so a key can be retried after an error. Requests with a key are
/// handled one at a time, so two concurrent retries cannot both create.
pub(crate) struct IdempotencyKeys {
    pub(super) answers: tokio::sync::Mutex<HashMap<String, KeptAnswer>>,
    pub(super) reused: fn(&str) -> Response,
}

/// The header whose value makes a create idempotent.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

pub(super) struct KeptAnswer {
    pub(super) request: (String, String, Bytes),
    pub(super) status: StatusCode,
    pub(super) headers: axum::http::HeaderMap,
    pub(super) body: Bytes,
}

impl IdempotencyKeys {
    pub(crate) fn new(reused: fn(&str) -> Response) -> IdempotencyKeys {
        IdempotencyKeys {
            answers: tokio::sync::Mutex::new(HashMap::new()),
            reused,
        }
    }
}

/// The middleware of [`IdempotencyKeys`]; only `POST` requests are concerned.
pub(crate) async fn honour_idempotency_key(
    State(keys): State<Arc<IdempotencyKeys>>,
    request: Request,
    next: Next,
) -> Response {
    let key = request
        .headers()
        .get(IDEMPOTENCY_KEY)
        .map(|k| String::from_utf8_lossy(k.as_bytes()).into_owned());
    let Some(key) = key.filter(|_| request.method() == axum::http::Method::POST) else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let fingerprint = (
        parts.method.to_string(),
        parts.uri.path().to_owned(),
        body.clone(),
    );
    let mut answers = keys.answers.lock().await;
    if let Some(kept) = answers.get(&key) {
        if kept.request != fingerprint {
            return (keys.reused)(&key);
        }
        let mut response = (kept.status, kept.headers.clone(), kept.body.clone()).into_response();
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        return response;
    }
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    if !response.status().is_success() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    answers.insert(
        key,
        KeptAnswer {
            request: fingerprint,
            status: parts.status,
            headers: parts.headers.clone(),
            body: body.clone(),
        },
    );
    Response::from_parts(parts, Body::from(body))
}
