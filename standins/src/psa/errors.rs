//! The PSA's error bodies (`{"errors":[{"type","message","field"}]}`) and the injected faults in
//! that shape.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::server::{FaultResponses, FieldError, with_rate_limit_headers};

use super::*;

pub(super) fn psa_error(
    status: StatusCode,
    kind: &str,
    message: &str,
    field: Option<&str>,
) -> Response {
    let mut error = json!({ "type": kind, "message": message });
    if let (Some(field), Some(object)) = (field, error.as_object_mut()) {
        object.insert("field".into(), json!(field));
    }
    (status, axum::Json(json!({ "errors": [error] }))).into_response()
}

/// `422` naming the field, or `400` for a body that is not a JSON object (no field).
pub(super) fn invalid(error: FieldError) -> Response {
    if error.field.is_empty() {
        psa_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &error.message,
            None,
        )
    } else {
        psa_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            &format!("{} {}", error.field, error.message),
            Some(&error.field),
        )
    }
}

pub(super) fn not_found(kind: Kind, id: &str) -> Response {
    psa_error(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("{} {id} not found", kind.name()),
        None,
    )
}

pub(super) fn conflict(field: &str, message: &str) -> Response {
    psa_error(StatusCode::CONFLICT, "conflict", message, Some(field))
}

pub(super) fn unauthorized() -> Response {
    psa_error(
        StatusCode::UNAUTHORIZED,
        "oauth",
        "Invalid OAuth 2 Request",
        None,
    )
}

pub(super) fn key_reused(key: &str) -> Response {
    psa_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency",
        &format!(
            "Idempotency-Key {key:?} was already used with another request; use a new key for a \
             new request"
        ),
        Some("Idempotency-Key"),
    )
}

pub(super) struct PsaFaults;

impl FaultResponses for PsaFaults {
    fn server_error(&self) -> Response {
        psa_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "system",
            "Something went wrong on our side; please try again",
            None,
        )
    }

    fn rate_limited(&self, retry_after_secs: u64) -> Response {
        let response = psa_error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit",
            &format!("Rate limit of {RATE_LIMIT} requests per minute exceeded"),
            None,
        );
        with_rate_limit_headers(response, RATE_LIMIT, retry_after_secs)
    }

    fn unauthorized(&self) -> Response {
        unauthorized()
    }
}
