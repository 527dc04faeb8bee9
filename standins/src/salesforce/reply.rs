//! Answers before they become responses, Salesforce's error bodies, and the injected faults in
//! Salesforce's shapes.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::server::FaultResponses;

use super::*;

/// An answer before it becomes an HTTP response, so composite subrequests can reuse it.
#[derive(Clone)]
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) body: Option<Value>,
    pub(super) location: Option<String>,
}

impl Reply {
    pub(super) fn ok(body: Value) -> Reply {
        Reply {
            status: StatusCode::OK,
            body: Some(body),
            location: None,
        }
    }

    pub(super) fn no_content() -> Reply {
        Reply {
            status: StatusCode::NO_CONTENT,
            body: None,
            location: None,
        }
    }

    pub(super) fn error(status: StatusCode, code: &str, message: &str, fields: &[&str]) -> Reply {
        Reply {
            status,
            body: Some(error_array(code, message, fields)),
            location: None,
        }
    }

    pub(super) fn is_success(&self) -> bool {
        self.status.is_success()
    }

    pub(super) fn into_response(self) -> Response {
        let mut response = match self.body {
            Some(body) => (self.status, axum::Json(body)).into_response(),
            None => self.status.into_response(),
        };
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        response
    }
}

fn error_array(code: &str, message: &str, fields: &[&str]) -> Value {
    json!([{ "message": message, "errorCode": code, "fields": fields }])
}

pub(super) fn not_found() -> Reply {
    Reply::error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
        &[],
    )
}

pub(super) fn unauthorized() -> Response {
    let mut response = Reply::error(
        StatusCode::UNAUTHORIZED,
        "INVALID_SESSION_ID",
        "Session expired or invalid",
        &[],
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
    response
}

pub(super) struct SalesforceFaults {
    pub(super) usage: Arc<Usage>,
}

impl FaultResponses for SalesforceFaults {
    fn server_error(&self) -> Response {
        let reply = Reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred. Please include this ErrorId if you contact support: \
             1234567890-12345 (-1234567890)",
            &[],
        );
        with_limit_info(reply.into_response(), self.usage.count())
    }

    fn rate_limited(&self, retry_after_secs: u64) -> Response {
        let mut response = Reply::error(
            StatusCode::TOO_MANY_REQUESTS,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
            &[],
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        with_limit_info(response, self.usage.count())
    }

    fn unauthorized(&self) -> Response {
        with_limit_info(unauthorized(), self.usage.count())
    }
}
