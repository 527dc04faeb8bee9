//! [`ApiError`], the one error of the API: a status, a stable code and a message.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use junction_flows::FlowError;
use junction_registry::Refusal;
use junction_runtime::inbound::WebhookError;
use junction_runtime::lifecycle::LifecycleError;
use junction_runtime::plugins::Conflict;
use junction_runtime::runtime::{CallError, ConnectionError, LoadError, PluginError};

/// An API error: a status, a stable machine-readable code and a message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    pub(crate) fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after_secs = Some(secs.max(1));
        self
    }

    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, code = self.code, message = %self.message, "request failed");
        }
        let body = Json(json!({"error": {"code": self.code, "message": self.message}}));
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        // Webhooks are refused with 401 too, but no bearer token would help them.
        if self.status == StatusCode::UNAUTHORIZED && self.code == "unauthorized" {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"junction\""),
            );
        }
        response
    }
}

impl From<CallError> for ApiError {
    fn from(err: CallError) -> ApiError {
        use StatusCode as S;
        let message = err.to_string();
        match err {
            CallError::UnknownConnection(_)
            | CallError::UnknownPlugin(_)
            | CallError::UnknownOperation { .. } => ApiError::not_found(message),
            CallError::WrongWorld { .. } => {
                ApiError::new(S::BAD_REQUEST, "wrong_plugin_kind", message)
            }
            CallError::InvalidJson(_) => ApiError::new(S::BAD_REQUEST, "invalid_json", message),
            CallError::Plugin(e) => match e {
                PluginError::InvalidInput(_) => {
                    ApiError::new(S::UNPROCESSABLE_ENTITY, "invalid_input", message)
                }
                PluginError::Unauthorized(_) => {
                    ApiError::new(S::BAD_GATEWAY, "upstream_unauthorized", message)
                }
                PluginError::NotFound(_) => {
                    ApiError::new(S::NOT_FOUND, "upstream_not_found", message)
                }
                PluginError::Conflict(_) => ApiError::new(S::CONFLICT, "conflict", message),
                PluginError::RateLimited(ms) => {
                    ApiError::new(S::TOO_MANY_REQUESTS, "rate_limited", message)
                        .retry_after(ms.div_ceil(1000))
                }
                PluginError::Unavailable(_) => {
                    ApiError::new(S::SERVICE_UNAVAILABLE, "upstream_unavailable", message)
                        .retry_after(1)
                }
                PluginError::Internal(_) => ApiError::new(S::BAD_GATEWAY, "plugin_error", message),
            },
            CallError::Timeout { .. } => {
                ApiError::new(S::GATEWAY_TIMEOUT, "plugin_timeout", message)
            }
            CallError::LimitExceeded { .. } => {
                ApiError::new(S::BAD_GATEWAY, "plugin_limit_exceeded", message)
            }
            CallError::Trap(_) => ApiError::new(S::BAD_GATEWAY, "plugin_trapped", message),
            CallError::OutputTooLarge { .. } => {
                ApiError::new(S::BAD_GATEWAY, "plugin_output_too_large", message)
            }
            CallError::BadOutput(_) => ApiError::new(S::BAD_GATEWAY, "plugin_bad_output", message),
            CallError::Busy { retry_after_ms, .. } => {
                ApiError::new(S::SERVICE_UNAVAILABLE, "plugin_busy", message)
                    .retry_after(retry_after_ms.div_ceil(1000))
            }
            CallError::Internal(detail) => {
                tracing::error!(%detail, "internal error during a plugin call");
                ApiError::new(S::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

impl From<ConnectionError> for ApiError {
    fn from(err: ConnectionError) -> ApiError {
        match err {
            ConnectionError::Invalid(message) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_connection",
                message,
            ),
            ConnectionError::Store(e) => {
                tracing::error!(error = %e, "store failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

impl From<LifecycleError> for ApiError {
    fn from(err: LifecycleError) -> ApiError {
        use StatusCode as S;
        let message = err.to_string();
        let conflict = |c: &Conflict| match c {
            Conflict::DigestMismatch { .. } | Conflict::InUse(_) => S::CONFLICT,
            Conflict::NotLoaded(_) => S::NOT_FOUND,
        };
        match &err {
            LifecycleError::Load(LoadError::Refused(refusal)) => match refusal {
                Refusal::TooLarge { .. } => {
                    ApiError::new(S::PAYLOAD_TOO_LARGE, "payload_too_large", message)
                }
                Refusal::Unsigned
                | Refusal::UntrustedSigner { .. }
                | Refusal::BadSignature { .. } => {
                    ApiError::new(S::FORBIDDEN, "untrusted_package", message)
                }
                Refusal::UnknownWorld { .. }
                | Refusal::ForbiddenImports { .. }
                | Refusal::WorldMismatch { .. }
                | Refusal::ManifestMismatch { .. } => {
                    ApiError::new(S::UNPROCESSABLE_ENTITY, "invalid_plugin", message)
                }
                _ => ApiError::new(S::BAD_REQUEST, "invalid_package", message),
            },
            LifecycleError::Load(LoadError::Invalid(_)) => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, "invalid_plugin", message)
            }
            LifecycleError::Load(LoadError::Conflict(c)) | LifecycleError::Conflict(c) => {
                let status = conflict(c);
                ApiError::new(
                    status,
                    if status == S::NOT_FOUND {
                        "not_found"
                    } else {
                        "conflict"
                    },
                    message,
                )
            }
            LifecycleError::Store(e) => {
                tracing::error!(error = %e, "store failed");
                ApiError::new(S::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

impl From<WebhookError> for ApiError {
    fn from(err: WebhookError) -> ApiError {
        match err {
            WebhookError::NotConfigured(_) => ApiError::new(
                StatusCode::CONFLICT,
                "webhook_not_configured",
                err.to_string(),
            ),
            WebhookError::Refused(reason) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_signature",
                format!("webhook signature refused: {reason}"),
            ),
            WebhookError::Call(err) => err.into(),
        }
    }
}

impl From<FlowError> for ApiError {
    fn from(err: FlowError) -> ApiError {
        match err {
            FlowError::Invalid(message) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_flow", message)
            }
            FlowError::NotFound(message) => ApiError::not_found(message),
            FlowError::Conflict(message) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            FlowError::Store(e) => {
                tracing::error!(error = %e, "store failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}
