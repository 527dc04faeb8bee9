//! The contract tool's error bodies (`errorCode`, `message`) and the injected faults in that shape.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::server::{FaultResponses, FieldError, with_rate_limit_headers};

use super::*;

pub(super) fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "errorCode": code, "message": message })),
    )
        .into_response()
}

pub(super) fn invalid(e: FieldError) -> Response {
    if e.field.is_empty() {
        error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST_BODY",
            &format!(
                "The request body is missing or improperly formatted. {}",
                e.message
            ),
        )
    } else {
        error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST_PARAMETER",
            &format!(
                "The request contained at least one invalid parameter. {}: {}",
                e.field, e.message
            ),
        )
    }
}

pub(super) fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "CONTRACT_DOES_NOT_EXIST",
        "The contract specified either does not exist or you have no rights to it.",
    )
}

pub(super) fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "AUTHORIZATION_INVALID_TOKEN",
        "The access token provided is expired, revoked or malformed.",
    )
}

pub(super) struct ContractFaults;

impl FaultResponses for ContractFaults {
    fn server_error(&self) -> Response {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNSPECIFIED_ERROR",
            "An unexpected error occurred on the server.",
        )
    }

    fn rate_limited(&self, retry_after_secs: u64) -> Response {
        let response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "HOURLY_APIINVOCATION_LIMIT_EXCEEDED",
            &format!(
                "The maximum number of hourly API invocations has been exceeded. The hourly \
                 limit is {RATE_LIMIT}."
            ),
        );
        with_rate_limit_headers(response, RATE_LIMIT, retry_after_secs)
    }

    fn unauthorized(&self) -> Response {
        unauthorized()
    }
}
