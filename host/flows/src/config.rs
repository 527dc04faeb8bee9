//! The flow engine's configuration, the `[flows]` table of `junction.toml`.

use serde::{Deserialize, Serialize};

use crate::FlowOptions;

/// The flow workers of a host (`[flows]`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct FlowSettings {
    /// Worker tasks claiming runs (at least 1).
    pub workers: usize,
    /// How long a claimed run stays with its worker without renewal, in ms;
    /// each step call holds it for this plus the plugin deadline. A crashed
    /// host's runs are taken over once it expires.
    pub lease_ms: u64,
    /// The longest an idle worker waits before looking for due runs and
    /// expired leases again, in ms (new runs of this host wake it at once).
    pub idle_poll_ms: u64,
}

impl Default for FlowSettings {
    fn default() -> Self {
        let options = FlowOptions::default();
        FlowSettings {
            workers: options.workers,
            lease_ms: u64::try_from(options.lease.as_millis()).unwrap_or(u64::MAX),
            idle_poll_ms: u64::try_from(options.idle_poll.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

impl FlowSettings {
    /// The worker options these settings describe.
    pub fn options(&self) -> FlowOptions {
        FlowOptions {
            workers: self.workers,
            lease: std::time::Duration::from_millis(self.lease_ms),
            idle_poll: std::time::Duration::from_millis(self.idle_poll_ms),
        }
    }
}

impl FlowSettings {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.workers == 0 || self.lease_ms == 0 || self.idle_poll_ms == 0 {
            return Err(
                "flows.workers, flows.lease_ms and flows.idle_poll_ms must be above zero".into(),
            );
        }
        Ok(())
    }
}
