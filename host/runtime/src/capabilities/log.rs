//! `junction:plugin/log`: plugin log lines go into the host's `tracing`
//! output with the plugin, version and connection as fields.

use crate::bindings::junction::plugin::log::{Host, Level};

use super::HostState;

impl Host for HostState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let message = truncate(&message, self.hostcall_bytes);
        if let Err(quota) = self.log.take(message.len(), self.log_rate.as_deref()) {
            self.refusals().note(quota);
            return Ok(());
        }
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

impl HostState {
    /// Says, in one line, how many log lines the call's quotas dropped.
    pub(crate) fn report_dropped_logs(&self) {
        let (quota, rate) = (self.log.dropped, self.log.dropped_by_rate);
        if quota == 0 && rate == 0 {
            return;
        }
        tracing::warn!(
            target: "junction::plugin",
            plugin = %self.scope.plugin,
            version = %self.scope.version,
            connection = self.scope.connection.as_deref().unwrap_or("-"),
            dropped_by_call_quota = quota,
            dropped_by_rate = rate,
            "{} log lines of this call were dropped: {quota} beyond the call's quota \
             (`[limits] log_lines`, `log_bytes`), {rate} beyond the plugin's log rate \
             (`log_rate_lines`, `log_rate_bytes`)",
            quota + rate
        );
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
