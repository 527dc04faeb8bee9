//! Quotas on what a plugin may write: log lines and bytes per call and per
//! second per plugin version, outbound requests and response bytes per call
//! (the kv quota per connection is kept by the store, in the same
//! transaction as the write). Every refusal is counted once per call in
//! `junction_quota_refusals_total{plugin,quota}`.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use governor::{DefaultDirectRateLimiter, Quota as Rate, RateLimiter};

use crate::engine::Limits;
use crate::metrics::Metrics;

/// A quota that refused something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Quota {
    /// `log_lines` of one call.
    LogLines,
    /// `log_bytes` of one call.
    LogBytes,
    /// `log_rate_lines` or `log_rate_bytes` of one plugin version.
    LogRate,
    /// `kv_keys` of one connection.
    KvKeys,
    /// `kv_bytes` of one connection.
    KvBytes,
    /// `outbound_requests` of one call.
    OutboundRequests,
    /// `call_response_bytes` of one call.
    ResponseBytes,
}

impl Quota {
    /// The metric label: the `[limits]` key (both log rates are `log_rate`).
    pub fn as_str(self) -> &'static str {
        match self {
            Quota::LogLines => "log_lines",
            Quota::LogBytes => "log_bytes",
            Quota::LogRate => "log_rate",
            Quota::KvKeys => "kv_keys",
            Quota::KvBytes => "kv_bytes",
            Quota::OutboundRequests => "outbound_requests",
            Quota::ResponseBytes => "call_response_bytes",
        }
    }
}

/// The log rate of one plugin version, shared by all its calls.
pub struct LogRate {
    lines: Option<DefaultDirectRateLimiter>,
    bytes: Option<DefaultDirectRateLimiter>,
}

impl std::fmt::Debug for LogRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogRate").finish_non_exhaustive()
    }
}

impl LogRate {
    /// The rate `limits` allow (a zero setting: no line at all passes).
    pub fn new(limits: &Limits) -> LogRate {
        let limiter = |per_second: u32| {
            NonZeroU32::new(per_second).map(|n| RateLimiter::direct(Rate::per_second(n)))
        };
        LogRate {
            lines: limiter(limits.log_rate_lines),
            bytes: limiter(limits.log_rate_bytes),
        }
    }

    /// Whether a line of `bytes` bytes may be written now.
    fn admit(&self, bytes: usize) -> bool {
        let (Some(lines), Some(per_byte)) = (&self.lines, &self.bytes) else {
            return false;
        };
        if lines.check().is_err() {
            return false;
        }
        match NonZeroU32::new(u32::try_from(bytes).unwrap_or(u32::MAX)) {
            None => true,
            Some(n) => matches!(per_byte.check_n(n), Ok(Ok(()))),
        }
    }
}

/// The log budget of one call.
#[derive(Debug)]
pub(crate) struct LogBudget {
    lines_left: u64,
    bytes_left: u64,
    /// Lines dropped because the call's quota was used up.
    pub(crate) dropped: u64,
    /// Lines dropped because the plugin version's rate was exceeded.
    pub(crate) dropped_by_rate: u64,
}

impl LogBudget {
    pub(crate) fn new(limits: &Limits) -> LogBudget {
        LogBudget {
            lines_left: limits.log_lines,
            bytes_left: limits.log_bytes,
            dropped: 0,
            dropped_by_rate: 0,
        }
    }

    /// Takes one line of `bytes` from the budget, or says which quota refused it.
    pub(crate) fn take(&mut self, bytes: usize, rate: Option<&LogRate>) -> Result<(), Quota> {
        let bytes_u64 = u64::try_from(bytes).unwrap_or(u64::MAX);
        let refused = if self.lines_left == 0 {
            Some(Quota::LogLines)
        } else if self.bytes_left < bytes_u64 {
            Some(Quota::LogBytes)
        } else if rate.is_some_and(|rate| !rate.admit(bytes)) {
            Some(Quota::LogRate)
        } else {
            None
        };
        match refused {
            None => {
                self.lines_left -= 1;
                self.bytes_left -= bytes_u64;
                Ok(())
            }
            Some(Quota::LogRate) => {
                self.dropped_by_rate += 1;
                Err(Quota::LogRate)
            }
            Some(quota) => {
                self.dropped += 1;
                Err(quota)
            }
        }
    }
}

/// The outbound budget of one call, shared by its requests and their bodies.
#[derive(Debug)]
pub struct OutboundBudget {
    requests_left: AtomicU64,
    bytes_left: AtomicU64,
}

impl OutboundBudget {
    /// The budget `limits` allow one call.
    pub fn new(limits: &Limits) -> OutboundBudget {
        OutboundBudget {
            requests_left: AtomicU64::new(limits.outbound_requests),
            bytes_left: AtomicU64::new(limits.call_response_bytes),
        }
    }

    /// Takes one request; `false` when the call has sent its quota.
    pub(crate) fn take_request(&self) -> bool {
        take(&self.requests_left, 1)
    }

    /// Takes `bytes` of response body; `false` when the call has read its quota.
    pub(crate) fn take_bytes(&self, bytes: u64) -> bool {
        take(&self.bytes_left, bytes)
    }
}

impl Default for OutboundBudget {
    fn default() -> Self {
        OutboundBudget::new(&Limits::default())
    }
}

fn take(left: &AtomicU64, n: u64) -> bool {
    left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
        left.checked_sub(n)
    })
    .is_ok()
}

/// The quotas that refused something during one call, each counted once.
#[derive(Debug, Default)]
pub struct Refusals {
    plugin: Arc<str>,
    metrics: Option<Arc<Metrics>>,
    seen: Mutex<Vec<Quota>>,
}

impl Refusals {
    /// Refusals of a call of `plugin`, counted in `metrics`.
    pub fn new(plugin: Arc<str>, metrics: Option<Arc<Metrics>>) -> Refusals {
        Refusals {
            plugin,
            metrics,
            seen: Mutex::default(),
        }
    }

    /// Notes that `quota` refused something; the first time in this call it
    /// is logged and counted.
    pub(crate) fn note(&self, quota: Quota) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(&quota) {
            return;
        }
        seen.push(quota);
        drop(seen);
        tracing::warn!(plugin = %self.plugin, quota = quota.as_str(), "plugin call reached a quota");
        if let Some(metrics) = &self.metrics {
            metrics.record_quota_refusal(&self.plugin, quota);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            log_lines: 3,
            log_bytes: 10,
            log_rate_lines: 1_000,
            log_rate_bytes: 1_000,
            ..Limits::default()
        }
    }

    #[test]
    fn a_call_logs_at_most_its_lines_and_bytes() {
        let mut budget = LogBudget::new(&limits());
        assert_eq!(budget.take(4, None), Ok(()));
        assert_eq!(budget.take(7, None), Err(Quota::LogBytes));
        assert_eq!(budget.take(6, None), Ok(()));
        assert_eq!(budget.take(0, None), Ok(()));
        assert_eq!(budget.take(0, None), Err(Quota::LogLines));
        assert_eq!(budget.dropped, 2);
    }

    #[test]
    fn the_log_rate_is_shared_by_the_calls_of_a_version() {
        let limits = Limits {
            log_rate_lines: 2,
            ..limits()
        };
        let rate = LogRate::new(&limits);
        let mut first = LogBudget::new(&limits);
        let mut second = LogBudget::new(&limits);
        assert_eq!(first.take(1, Some(&rate)), Ok(()));
        assert_eq!(second.take(1, Some(&rate)), Ok(()));
        assert_eq!(second.take(1, Some(&rate)), Err(Quota::LogRate));
        assert_eq!(second.dropped_by_rate, 1);
        let silent = LogRate::new(&Limits {
            log_rate_lines: 0,
            ..limits
        });
        assert_eq!(first.take(1, Some(&silent)), Err(Quota::LogRate));
    }

    #[test]
    fn outbound_budget_runs_out() {
        let budget = OutboundBudget::new(&Limits {
            outbound_requests: 2,
            call_response_bytes: 100,
            ..Limits::default()
        });
        assert!(budget.take_request());
        assert!(budget.take_request());
        assert!(!budget.take_request());
        assert!(budget.take_bytes(60));
        assert!(!budget.take_bytes(41));
        assert!(budget.take_bytes(40));
    }
}
