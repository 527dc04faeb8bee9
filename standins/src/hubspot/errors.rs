//! HubSpot's error bodies (`status`, `message`, `correlationId`, `category`) and the injected
//! faults in that shape.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::server::FaultResponses;

use super::*;

static CORRELATION: AtomicU64 = AtomicU64::new(1);

/// A fresh UUID-shaped correlation id, as HubSpot puts in every error.
fn correlation_id() -> String {
    let n = CORRELATION.fetch_add(1, Ordering::Relaxed);
    format!("5e1c8f3a-0d2b-4c6e-9a7f-{n:012x}")
}

pub(super) fn hubspot_error(status: StatusCode, category: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "status": "error",
            "message": message,
            "correlationId": correlation_id(),
            "category": category,
        })),
    )
        .into_response()
}

pub(super) fn validation_error(message: &str) -> Response {
    hubspot_error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
}

pub(super) fn unauthorized() -> Response {
    hubspot_error(
        StatusCode::UNAUTHORIZED,
        "INVALID_AUTHENTICATION",
        "Authentication credentials not found. This API supports OAuth 2.0 authentication and \
         you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
    )
}

pub(super) fn object_not_found(id: &str) -> Response {
    hubspot_error(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        &format!("Object not found.  objectId are usually numeric. ({id})"),
    )
}

pub(super) struct HubspotFaults;

impl FaultResponses for HubspotFaults {
    fn server_error(&self) -> Response {
        hubspot_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "internal error",
        )
    }

    fn rate_limited(&self, retry_after_secs: u64) -> Response {
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({
                "status": "error",
                "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": correlation_id(),
                "policyName": "TEN_SECONDLY_ROLLING",
                "category": "RATE_LIMITS",
            })),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        headers.insert("x-hubspot-ratelimit-max", HeaderValue::from(RATE_LIMIT_MAX));
        headers.insert("x-hubspot-ratelimit-remaining", HeaderValue::from(0u32));
        headers.insert(
            "x-hubspot-ratelimit-interval-milliseconds",
            HeaderValue::from(10_000u32),
        );
        headers.insert(
            "x-hubspot-ratelimit-daily",
            HeaderValue::from(RATE_LIMIT_DAILY),
        );
        headers.insert(
            "x-hubspot-ratelimit-daily-remaining",
            HeaderValue::from(RATE_LIMIT_DAILY - 1),
        );
        response
    }

    fn unauthorized(&self) -> Response {
        unauthorized()
    }
}
