//! Answers before they become responses, NetSuite's error bodies (`type`, `title`, `status`,
//! `o:errorDetails`) and the injected faults in that shape.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::server::FaultResponses;

/// A response kept whole, so that an asynchronous job can answer it as its result.
#[derive(Clone)]
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) location: Option<String>,
    pub(super) body: Option<Value>,
}

impl Answer {
    pub(super) fn no_content(location: String) -> Answer {
        Answer {
            status: StatusCode::NO_CONTENT,
            location: Some(location),
            body: None,
        }
    }

    pub(super) fn error(
        status: StatusCode,
        code: &str,
        detail: &str,
        path: Option<&str>,
    ) -> Answer {
        Answer {
            status,
            location: None,
            body: Some(error_body(status, code, detail, path)),
        }
    }

    pub(super) fn into_response(self) -> Response {
        let mut response = match self.body {
            Some(body) => (self.status, axum::Json(body)).into_response(),
            None => self.status.into_response(),
        };
        if self.status.is_client_error() || self.status.is_server_error() {
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.oracle.resource+json; type=error"),
            );
        }
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        response
    }
}

/// The RFC 9110 (RFC 6585 for 429) section a status's `type` URL points at.
fn type_url(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.1",
        401 => "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.2",
        404 => "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.5",
        405 => "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.6",
        429 => "https://www.rfc-editor.org/rfc/rfc6585.html#section-4",
        _ => "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.6.1",
    }
}

fn error_body(status: StatusCode, code: &str, detail: &str, path: Option<&str>) -> Value {
    let mut item = json!({ "detail": detail, "o:errorCode": code });
    if let (Some(path), Some(object)) = (path, item.as_object_mut()) {
        object.insert("o:errorPath".into(), json!(path));
    }
    json!({
        "type": type_url(status),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "o:errorDetails": [item],
    })
}

pub(super) fn error(status: StatusCode, code: &str, detail: &str) -> Response {
    Answer::error(status, code, detail, None).into_response()
}

pub(super) fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "INVALID_LOGIN",
        "Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite UI \
         at Setup > Users/Roles > User Management > View Login Audit Trail.",
    )
}

pub(super) struct NetsuiteFaults;

impl FaultResponses for NetsuiteFaults {
    fn server_error(&self) -> Response {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNEXPECTED_ERROR",
            "An unexpected error occurred. Error ID: junction-standin",
        )
    }

    fn rate_limited(&self, retry_after_secs: u64) -> Response {
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "CONCURRENCY_LIMIT_EXCEEDED",
            "Concurrent request limit exceeded. Request blocked.",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        response
    }

    fn unauthorized(&self) -> Response {
        unauthorized()
    }
}
