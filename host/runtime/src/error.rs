//! Why a load, a call or a connection change failed.

use junction_registry::{Refusal, World};
use junction_store as store;

use crate::bindings::junction::plugin::types::Error as PluginError;
use crate::plugins::Conflict;

/// Why a plugin version was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The registry refused the component before compiling it.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// It compiled but could not be linked or described itself wrongly.
    #[error("the component cannot be loaded: {0}")]
    Invalid(String),
    /// A different component with the same name and version is loaded.
    #[error(transparent)]
    Conflict(#[from] Conflict),
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No connection has that name.
    #[error("no connection named `{0}`")]
    UnknownConnection(String),
    /// No plugin (or no such version) is loaded.
    #[error("no plugin `{0}` is loaded")]
    UnknownPlugin(String),
    /// The plugin has no such operation.
    #[error("plugin `{plugin}` has no operation `{operation}`; it offers: {offered}")]
    UnknownOperation {
        /// Plugin name.
        plugin: String,
        /// The operation asked for.
        operation: String,
        /// What it offers, comma-separated.
        offered: String,
    },
    /// The plugin is of the other world (a transform used as a connector or the reverse).
    #[error("plugin `{plugin}` is a {actual}, not a {expected}")]
    WrongWorld {
        /// Plugin name.
        plugin: String,
        /// The world the call needs.
        expected: World,
        /// The plugin's world.
        actual: World,
    },
    /// The input is not JSON.
    #[error("the input is not valid JSON: {0}")]
    InvalidJson(String),
    /// The plugin answered with one of the WIT error cases.
    #[error("{}", describe_plugin_error(.0))]
    Plugin(PluginError),
    /// The call ran past its deadline and was interrupted.
    #[error("the plugin did not finish within its deadline of {deadline_ms} ms and was stopped")]
    Timeout {
        /// The deadline.
        deadline_ms: u64,
    },
    /// The call hit a resource limit and was stopped.
    #[error("the plugin exceeded its {what} limit and was stopped")]
    LimitExceeded {
        /// Which limit: `memory`, `table`, ...
        what: String,
    },
    /// The plugin trapped (a panic, an `unreachable`, a bad memory access).
    #[error("the plugin crashed: {0}")]
    Trap(String),
    /// The plugin returned more than the host accepts.
    #[error("the plugin returned {size} bytes; the limit is {limit}")]
    OutputTooLarge {
        /// What it returned.
        size: usize,
        /// The cap.
        limit: u64,
    },
    /// The plugin returned something that is not JSON.
    #[error("the plugin returned invalid JSON: {0}")]
    BadOutput(String),
    /// Every slot of the plugin version was busy for longer than the queue allows.
    #[error(
        "plugin `{plugin}` is running its maximum of {concurrency} calls at once; retry after {retry_after_ms} ms"
    )]
    Busy {
        /// Plugin name.
        plugin: String,
        /// Its concurrency limit.
        concurrency: u32,
        /// When to retry.
        retry_after_ms: u64,
    },
    /// The egress policy refused a request of the call, and the plugin then
    /// failed: the refusal and the setting that would allow the request.
    #[error("{denial}; {fix}")]
    EgressDenied {
        /// What was refused and why.
        denial: String,
        /// The setting that would allow it.
        fix: &'static str,
    },
    /// The host failed (store, instantiation); not the caller's nor the plugin's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CallError {
    /// The outcome case of a failed call, as spans and metrics name it: the
    /// plugin's error case, or what the host stopped or refused.
    pub fn outcome(&self) -> &'static str {
        match self {
            CallError::UnknownConnection(_) => "unknown_connection",
            CallError::UnknownPlugin(_) => "unknown_plugin",
            CallError::UnknownOperation { .. } => "unknown_operation",
            CallError::WrongWorld { .. } => "wrong_world",
            CallError::InvalidJson(_) => "invalid_input",
            CallError::Plugin(e) => match e {
                PluginError::InvalidInput(_) => "invalid_input",
                PluginError::Unauthorized(_) => "unauthorized",
                PluginError::NotFound(_) => "not_found",
                PluginError::Conflict(_) => "conflict",
                PluginError::RateLimited(_) => "rate_limited",
                PluginError::Unavailable(_) => "unavailable",
                PluginError::Internal(_) => "plugin_error",
            },
            CallError::Timeout { .. } => "timeout",
            CallError::LimitExceeded { .. } => "limit_exceeded",
            CallError::Trap(_) => "trapped",
            CallError::OutputTooLarge { .. } | CallError::BadOutput(_) => "bad_output",
            CallError::Busy { .. } => "busy",
            CallError::EgressDenied { .. } => "egress_denied",
            CallError::Internal(_) => "internal",
        }
    }
}

pub(crate) fn describe_plugin_error(e: &PluginError) -> String {
    match e {
        PluginError::InvalidInput(m) => format!("invalid input: {m}"),
        PluginError::Unauthorized(m) => format!("the remote system refused the credentials: {m}"),
        PluginError::NotFound(m) => format!("not found: {m}"),
        PluginError::Conflict(m) => format!("conflict: {m}"),
        PluginError::RateLimited(ms) => {
            format!("rate limited by the remote system; retry after {ms} ms")
        }
        PluginError::Unavailable(m) => format!("the remote system is unavailable: {m}"),
        PluginError::Internal(m) => format!("the plugin failed: {m}"),
    }
}

impl From<store::Error> for CallError {
    fn from(e: store::Error) -> Self {
        CallError::Internal(e.to_string())
    }
}

/// Why a connection was not saved.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The request names something that does not exist or is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
}
