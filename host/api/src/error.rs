//! [`ApiError`], the one error of the API: a status, a stable code and a message.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use junction_flows::FlowError;
use junction_registry::Refusal;
use junction_runtime::inbound::WebhookError;
use junction_runtime::lifecycle::LifecycleError;
use junction_runtime::plugins::Conflict;
use junction_runtime::runtime::{CallError, ConnectionError, LoadError, PluginError};

/// The stable, machine-readable code of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed (a parameter or header); the message says which.
    BadRequest,
    /// The request conflicts with the current state (a digest mismatch, a version in use, a duplicate).
    Conflict,
    /// The host's egress policy refused a request of the plugin; the message
    /// names the host and the setting that would allow it.
    EgressDenied,
    /// The token's scope does not cover this endpoint.
    Forbidden,
    /// A request with this `Idempotency-Key` is still running: retry after `Retry-After`.
    IdempotencyKeyInFlight,
    /// This `Idempotency-Key` was used for a different request.
    IdempotencyKeyReused,
    /// The host failed; the log has the detail.
    Internal,
    /// The host's configuration did not reload; the message says why.
    InvalidConfig,
    /// The connection specification is refused; the message says the fix.
    InvalidConnection,
    /// The flow file is refused; the message names the field and the fix.
    InvalidFlow,
    /// The governance document, or an entity, key or id of the id map, is
    /// refused; the message names the field and the fix.
    InvalidGovernance,
    /// The plugin refused the operation's input.
    InvalidInput,
    /// The body is not the JSON the endpoint expects.
    InvalidJson,
    /// The uploaded package is malformed.
    InvalidPackage,
    /// The component is refused (unknown world, forbidden imports, manifest mismatch).
    InvalidPlugin,
    /// A webhook whose signature does not verify.
    InvalidSignature,
    /// The path exists but not with this method.
    MethodNotAllowed,
    /// No such resource or endpoint.
    NotFound,
    /// The store or the engine is not ready yet.
    NotReady,
    /// The body is larger than the host accepts.
    PayloadTooLarge,
    /// The plugin answered with output that is not valid JSON.
    PluginBadOutput,
    /// Every instance slot of the plugin is in use: retry after `Retry-After`.
    PluginBusy,
    /// The plugin reported an internal error.
    PluginError,
    /// The plugin exceeded a sandbox limit (memory, fuel, instances).
    PluginLimitExceeded,
    /// The plugin's output exceeds the host's limit.
    PluginOutputTooLarge,
    /// The plugin call passed its deadline.
    PluginTimeout,
    /// The plugin trapped (crashed inside its sandbox).
    PluginTrapped,
    /// The remote system is rate limiting: retry after `Retry-After`.
    RateLimited,
    /// Missing or unknown bearer token.
    Unauthorized,
    /// The package is unsigned or signed by an untrusted key.
    UntrustedPackage,
    /// The remote system has no such record.
    UpstreamNotFound,
    /// The remote system refused the connection's credentials.
    UpstreamUnauthorized,
    /// The remote system is unavailable: retry after `Retry-After`.
    UpstreamUnavailable,
    /// The connection has no webhook verification configured.
    WebhookNotConfigured,
    /// The plugin is of the other world (connector vs transform).
    WrongPluginKind,
}

impl ErrorCode {
    /// The code as it appears in the error body.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Conflict => "conflict",
            ErrorCode::EgressDenied => "egress_denied",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::IdempotencyKeyInFlight => "idempotency_key_in_flight",
            ErrorCode::IdempotencyKeyReused => "idempotency_key_reused",
            ErrorCode::Internal => "internal",
            ErrorCode::InvalidConfig => "invalid_config",
            ErrorCode::InvalidConnection => "invalid_connection",
            ErrorCode::InvalidFlow => "invalid_flow",
            ErrorCode::InvalidGovernance => "invalid_governance",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidPackage => "invalid_package",
            ErrorCode::InvalidPlugin => "invalid_plugin",
            ErrorCode::InvalidSignature => "invalid_signature",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::NotFound => "not_found",
            ErrorCode::NotReady => "not_ready",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::PluginBadOutput => "plugin_bad_output",
            ErrorCode::PluginBusy => "plugin_busy",
            ErrorCode::PluginError => "plugin_error",
            ErrorCode::PluginLimitExceeded => "plugin_limit_exceeded",
            ErrorCode::PluginOutputTooLarge => "plugin_output_too_large",
            ErrorCode::PluginTimeout => "plugin_timeout",
            ErrorCode::PluginTrapped => "plugin_trapped",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::UntrustedPackage => "untrusted_package",
            ErrorCode::UpstreamNotFound => "upstream_not_found",
            ErrorCode::UpstreamUnauthorized => "upstream_unauthorized",
            ErrorCode::UpstreamUnavailable => "upstream_unavailable",
            ErrorCode::WebhookNotConfigured => "webhook_not_configured",
            ErrorCode::WrongPluginKind => "wrong_plugin_kind",
        }
    }
}

/// The body of every error answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// An error's code and message.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable code to branch on.
    pub code: ErrorCode,
    /// What happened and, where there is one, the fix; for people, not for parsing.
    pub message: String,
}

/// The answers every endpoint behind a bearer token may give besides its own.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code, reason = "only describes answers in the OpenAPI document")]
pub(crate) enum Refused {
    /// No `Authorization: Bearer` header, or an unknown token (`unauthorized`).
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The token's scope does not cover the endpoint (`forbidden`); on an
    /// endpoint that calls a plugin, also a request of the plugin that the
    /// egress policy refused (`egress_denied`, naming the setting that would
    /// allow it).
    #[response(status = 403)]
    Forbidden(ErrorBody),
}

/// The answers of an endpoint that calls a plugin, besides its own.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code, reason = "only describes answers in the OpenAPI document")]
pub(crate) enum CallRefused {
    /// The body is not JSON or not UTF-8 (`invalid_json`), the plugin is of
    /// the other world (`wrong_plugin_kind`), or a header is malformed (`bad_request`).
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No such connection, plugin or operation (`not_found`), or the remote
    /// system has no such record (`upstream_not_found`).
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The remote system reports a conflict (`conflict`), or a request with
    /// the same `Idempotency-Key` is still running (`idempotency_key_in_flight`).
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// The plugin refused the input (`invalid_input`), or the
    /// `Idempotency-Key` was used for another request (`idempotency_key_reused`).
    #[response(status = 422)]
    Unprocessable(ErrorBody),
    /// The remote system rate limits: retry after `Retry-After` (`rate_limited`).
    #[response(status = 429)]
    RateLimited(ErrorBody),
    /// The host failed (`internal`).
    #[response(status = 500)]
    Internal(ErrorBody),
    /// The plugin failed: it trapped, exceeded a limit, wrote bad or too much
    /// output, reported an error, or the remote system refused the credentials.
    #[response(status = 502)]
    BadGateway(ErrorBody),
    /// Every slot of the plugin is busy (`plugin_busy`) or the remote system
    /// is unavailable (`upstream_unavailable`): retry after `Retry-After`.
    #[response(status = 503)]
    Unavailable(ErrorBody),
    /// The call passed its deadline (`plugin_timeout`).
    #[response(status = 504)]
    Timeout(ErrorBody),
}

/// An API error: a status, a stable machine-readable code and a message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// What happened and, where there is one, the fix.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after_secs = Some(secs.max(1));
        self
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, code = self.code.as_str(), message = %self.message, "request failed");
        }
        let body = Json(ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        });
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        // Webhooks are refused with 401 too, but no bearer token would help them.
        if self.status == StatusCode::UNAUTHORIZED && self.code == ErrorCode::Unauthorized {
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
                ApiError::new(S::BAD_REQUEST, ErrorCode::WrongPluginKind, message)
            }
            CallError::InvalidJson(_) => {
                ApiError::new(S::BAD_REQUEST, ErrorCode::InvalidJson, message)
            }
            CallError::Plugin(e) => match e {
                PluginError::InvalidInput(_) => {
                    ApiError::new(S::UNPROCESSABLE_ENTITY, ErrorCode::InvalidInput, message)
                }
                PluginError::Unauthorized(_) => {
                    ApiError::new(S::BAD_GATEWAY, ErrorCode::UpstreamUnauthorized, message)
                }
                PluginError::NotFound(_) => {
                    ApiError::new(S::NOT_FOUND, ErrorCode::UpstreamNotFound, message)
                }
                PluginError::Conflict(_) => {
                    ApiError::new(S::CONFLICT, ErrorCode::Conflict, message)
                }
                PluginError::RateLimited(ms) => {
                    ApiError::new(S::TOO_MANY_REQUESTS, ErrorCode::RateLimited, message)
                        .retry_after(ms.div_ceil(1000))
                }
                PluginError::Unavailable(_) => ApiError::new(
                    S::SERVICE_UNAVAILABLE,
                    ErrorCode::UpstreamUnavailable,
                    message,
                )
                .retry_after(1),
                PluginError::Internal(_) => {
                    ApiError::new(S::BAD_GATEWAY, ErrorCode::PluginError, message)
                }
            },
            CallError::Timeout { .. } => {
                ApiError::new(S::GATEWAY_TIMEOUT, ErrorCode::PluginTimeout, message)
            }
            CallError::LimitExceeded { .. } => {
                ApiError::new(S::BAD_GATEWAY, ErrorCode::PluginLimitExceeded, message)
            }
            CallError::Trap(_) => ApiError::new(S::BAD_GATEWAY, ErrorCode::PluginTrapped, message),
            CallError::OutputTooLarge { .. } => {
                ApiError::new(S::BAD_GATEWAY, ErrorCode::PluginOutputTooLarge, message)
            }
            CallError::BadOutput(_) => {
                ApiError::new(S::BAD_GATEWAY, ErrorCode::PluginBadOutput, message)
            }
            CallError::Busy { retry_after_ms, .. } => {
                ApiError::new(S::SERVICE_UNAVAILABLE, ErrorCode::PluginBusy, message)
                    .retry_after(retry_after_ms.div_ceil(1000))
            }
            CallError::EgressDenied { .. } => {
                ApiError::new(S::FORBIDDEN, ErrorCode::EgressDenied, message)
            }
            CallError::Internal(detail) => {
                tracing::error!(%detail, "internal error during a plugin call");
                ApiError::new(
                    S::INTERNAL_SERVER_ERROR,
                    ErrorCode::Internal,
                    "internal error",
                )
            }
        }
    }
}

impl From<ConnectionError> for ApiError {
    fn from(err: ConnectionError) -> ApiError {
        match err {
            ConnectionError::Invalid(message) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidConnection,
                message,
            ),
            ConnectionError::Store(e) => {
                tracing::error!(error = %e, "store failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Internal,
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
                    ApiError::new(S::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge, message)
                }
                Refusal::Unsigned
                | Refusal::UntrustedSigner { .. }
                | Refusal::BadSignature { .. } => {
                    ApiError::new(S::FORBIDDEN, ErrorCode::UntrustedPackage, message)
                }
                Refusal::UnknownWorld { .. }
                | Refusal::ForbiddenImports { .. }
                | Refusal::WorldMismatch { .. }
                | Refusal::ManifestMismatch { .. } => {
                    ApiError::new(S::UNPROCESSABLE_ENTITY, ErrorCode::InvalidPlugin, message)
                }
                _ => ApiError::new(S::BAD_REQUEST, ErrorCode::InvalidPackage, message),
            },
            LifecycleError::Load(LoadError::Invalid(_)) => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, ErrorCode::InvalidPlugin, message)
            }
            LifecycleError::Load(LoadError::Conflict(c)) | LifecycleError::Conflict(c) => {
                let status = conflict(c);
                ApiError::new(
                    status,
                    if status == S::NOT_FOUND {
                        ErrorCode::NotFound
                    } else {
                        ErrorCode::Conflict
                    },
                    message,
                )
            }
            LifecycleError::Store(e) => {
                tracing::error!(error = %e, "store failed");
                ApiError::new(
                    S::INTERNAL_SERVER_ERROR,
                    ErrorCode::Internal,
                    "internal error",
                )
            }
        }
    }
}

impl From<WebhookError> for ApiError {
    fn from(err: WebhookError) -> ApiError {
        match err {
            WebhookError::NotConfigured(_) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::WebhookNotConfigured,
                err.to_string(),
            ),
            WebhookError::Refused(reason) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::InvalidSignature,
                format!("webhook signature refused: {reason}"),
            ),
            WebhookError::Call(err) => err.into(),
        }
    }
}

impl From<FlowError> for ApiError {
    fn from(err: FlowError) -> ApiError {
        match err {
            FlowError::Invalid(message) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidFlow,
                message,
            ),
            FlowError::NotFound(message) => ApiError::not_found(message),
            FlowError::Conflict(message) => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::Conflict, message)
            }
            FlowError::Store(e) => {
                tracing::error!(error = %e, "store failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Internal,
                    "internal error",
                )
            }
        }
    }
}
