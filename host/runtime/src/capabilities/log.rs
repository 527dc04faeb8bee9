//! `junction:plugin/log`: plugin log lines go into the host's `tracing`
//! output with the plugin, version and connection as fields.

use crate::bindings::junction::plugin::log::{Host, Level};

use super::HostState;

impl Host for HostState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let message = truncate(&message, self.hostcall_bytes);
        let scope = &self.scope;
        let connection = scope.connection.as_deref().unwrap_or("-");
        macro_rules! emit {
            ($level:ident) => {
                tracing::$level!(
                    target: "junction::plugin",
                    plugin = %scope.plugin,
                    version = %scope.version,
                    connection,
                    "{message}"
                )
            };
        }
        match level {
            Level::Trace => emit!(trace),
            Level::Debug => emit!(debug),
            Level::Info => emit!(info),
            Level::Warn => emit!(warn),
            Level::Error => emit!(error),
        }
        Ok(())
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary.
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncates_on_char_boundary() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
