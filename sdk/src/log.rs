//! Log lines that the host forwards to its `tracing` output with plugin,
//! version and connection fields.
//!
//! ```
//! junction_sdk::log::info!("created issue {}", "ACME-1");
//! junction_sdk::log::warn("falling back to the default issue type");
//! ```

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Very detailed diagnostics.
    Trace,
    /// Diagnostics.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the plugin recovered from.
    Warn,
    /// Something failed.
    Error,
}

/// Writes one log line at `level`.
pub fn write(level: Level, message: &str) {
    backend(level, message);
}

#[cfg(all(
    target_arch = "wasm32",
    any(feature = "connector", feature = "transform")
))]
fn backend(level: Level, message: &str) {
    use crate::wit::log::{Level as L, log};
    let level = match level {
        Level::Trace => L::Trace,
        Level::Debug => L::Debug,
        Level::Info => L::Info,
        Level::Warn => L::Warn,
        Level::Error => L::Error,
    };
    log(level, message);
}

// Outside a host (a plugin's native unit tests) there is no log import.
#[cfg(not(all(
    target_arch = "wasm32",
    any(feature = "connector", feature = "transform")
)))]
fn backend(level: Level, message: &str) {
    eprintln!("[{level:?}] {message}");
}

/// Writes a line at [`Level::Trace`].
pub fn trace(message: impl AsRef<str>) {
    write(Level::Trace, message.as_ref());
}
/// Writes a line at [`Level::Debug`].
pub fn debug(message: impl AsRef<str>) {
    write(Level::Debug, message.as_ref());
}
/// Writes a line at [`Level::Info`].
pub fn info(message: impl AsRef<str>) {
    write(Level::Info, message.as_ref());
}
/// Writes a line at [`Level::Warn`].
pub fn warn(message: impl AsRef<str>) {
    write(Level::Warn, message.as_ref());
}
/// Writes a line at [`Level::Error`].
pub fn error(message: impl AsRef<str>) {
    write(Level::Error, message.as_ref());
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_trace {
    ($($arg:tt)+) => { $crate::log::write($crate::log::Level::Trace, &::std::format!($($arg)+)) };
}
#[doc(hidden)]
#[macro_export]
macro_rules! __log_debug {
    ($($arg:tt)+) => { $crate::log::write($crate::log::Level::Debug, &::std::format!($($arg)+)) };
}
#[doc(hidden)]
#[macro_export]
macro_rules! __log_info {
    ($($arg:tt)+) => { $crate::log::write($crate::log::Level::Info, &::std::format!($($arg)+)) };
}
#[doc(hidden)]
#[macro_export]
macro_rules! __log_warn {
    ($($arg:tt)+) => { $crate::log::write($crate::log::Level::Warn, &::std::format!($($arg)+)) };
}
#[doc(hidden)]
#[macro_export]
macro_rules! __log_error {
    ($($arg:tt)+) => { $crate::log::write($crate::log::Level::Error, &::std::format!($($arg)+)) };
}

/// Formats and writes a line at [`Level::Debug`], like `format!`.
pub use crate::__log_debug as debug;
/// Formats and writes a line at [`Level::Error`], like `format!`.
pub use crate::__log_error as error;
/// Formats and writes a line at [`Level::Info`], like `format!`.
pub use crate::__log_info as info;
/// Formats and writes a line at [`Level::Trace`], like `format!`.
pub use crate::__log_trace as trace;
/// Formats and writes a line at [`Level::Warn`], like `format!`.
pub use crate::__log_warn as warn;
