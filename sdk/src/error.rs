//! The error a plugin returns, mirroring the WIT `error` variant.

/// Why a call failed, classified so the host knows what to do next.
///
/// The host acts on the case; the text is for the operator reading a run or a
/// dead letter, so make it say what was wrong and with which value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input is wrong; retrying the same input fails again. Never retried.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The remote system refused the connection's credentials. Not retried.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The remote object does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The object already exists; an idempotent create may treat this as success.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The remote system asked to slow down; the host retries after this many milliseconds.
    #[error("rate limited: retry after {retry_after_ms} ms")]
    RateLimited {
        /// How long to wait before the next attempt.
        retry_after_ms: u64,
    },
    /// The remote system is unreachable or failing; the host retries with backoff.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Anything else, including bugs in the plugin.
    #[error("internal error: {0}")]
    Internal(String),
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// JSON that does not fit the expected type is a caller's mistake: the input
/// of an operation or a transform. Output and response bodies are mapped to
/// [`Error::Internal`] explicitly where they are parsed.
impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Error::InvalidInput(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_are_invalid_input_and_name_the_field() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Input {
            key: String,
        }
        let error: Error = serde_json::from_str::<Input>("{}").unwrap_err().into();
        match error {
            Error::InvalidInput(message) => assert!(message.contains("`key`"), "{message}"),
            other => panic!("expected invalid input, got {other:?}"),
        }
    }

    #[test]
    fn display_says_the_case() {
        assert_eq!(
            Error::RateLimited {
                retry_after_ms: 1500
            }
            .to_string(),
            "rate limited: retry after 1500 ms"
        );
        assert_eq!(
            Error::NotFound("issue ACME-9".into()).to_string(),
            "not found: issue ACME-9"
        );
    }
}
