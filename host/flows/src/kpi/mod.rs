//! Business KPIs: what flows declare they measure (`[kpi]`, see
//! [`declare`]), and the report over a time window computed from the store
//! ([`Flows::kpis`](crate::Flows::kpis)), served as JSON at `GET /v1/kpis`
//! and as gauges on `GET /metrics` ([`KpiReport::encode_prometheus`]).
//!
//! Two kinds of window membership, each the natural one for its figure:
//! a duration counts in the window its end (the `until` step's completion)
//! falls in; every per-run figure (failed runs, failed calls, manual
//! touches, blocked runs) counts the runs created in the window, whatever
//! they did since. Dead letters are counted as they are now.

mod compute;
pub mod declare;
mod prometheus;

use std::collections::BTreeMap;

use serde::Serialize;

pub(crate) use declare::check;
pub use declare::{KpiDef, Measure, Start};

/// The window `GET /v1/kpis` reports by default and `/metrics` always
/// reports: the last 24 hours.
pub const DEFAULT_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// An RFC 3339 time (`2026-01-05T09:00:00Z`, any offset) in ms since the epoch.
pub fn parse_time(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// A time in ms since the epoch as the report writes it (RFC 3339, UTC, ms).
pub fn format_time(ms: i64) -> String {
    crate::rfc3339(ms)
}

/// The business KPIs of a window `[since, until)`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct KpiReport {
    /// RFC 3339 start of the window (included).
    pub since: String,
    /// RFC 3339 end of the window (excluded).
    pub until: String,
    /// The KPIs flows declare, by name.
    pub kpis: BTreeMap<String, DeclaredKpi>,
    /// Failed synchronisations: runs that failed, per flow, and calls that
    /// failed, per connection.
    pub failed_sync: FailedSync,
    /// Runs that needed a person: replayed, input corrected or discarded.
    pub manual_touch: ManualTouch,
    /// Open dead letters per flow, now.
    pub dead_letters: Vec<DeadLetterAge>,
    /// Time to reconcile: not measured yet.
    pub time_to_reconcile: NotMeasured,
}

/// A declared KPI's figures over every flow that declares it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(tag = "measure", rename_all = "snake_case")]
pub enum DeclaredKpi {
    /// A duration: its percentiles over all flows and per flow.
    Duration {
        /// Over every flow declaring it.
        all: DurationStats,
        /// Per flow, by name.
        flows: Vec<FlowDuration>,
    },
    /// Runs blocked by data errors.
    Blocked {
        /// Runs created in the window that failed for good on one of the
        /// KPI's errors (later replays do not undo it), over every flow.
        runs: u64,
        /// Dead letters open now that failed on one of them, over every flow.
        open: u64,
        /// Per flow, by name.
        flows: Vec<FlowBlocked>,
    },
}

/// Percentiles of durations (nearest rank), in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DurationStats {
    /// How many durations ended in the window.
    pub count: u64,
    /// The median; `null` without durations.
    pub p50_seconds: Option<f64>,
    /// The 90th percentile; `null` without durations.
    pub p90_seconds: Option<f64>,
    /// Their sum (the `_sum` of the Prometheus summary).
    #[serde(skip)]
    pub sum_seconds: f64,
}

impl DurationStats {
    /// The stats of `seconds`.
    pub fn of(seconds: &[f64]) -> DurationStats {
        let mut sorted = seconds.to_vec();
        sorted.sort_by(f64::total_cmp);
        DurationStats {
            count: sorted.len() as u64,
            p50_seconds: percentile(&sorted, 0.5),
            p90_seconds: percentile(&sorted, 0.9),
            sum_seconds: sorted.iter().sum(),
        }
    }
}

/// One flow's durations of a KPI.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FlowDuration {
    /// The flow.
    pub flow: String,
    /// Its durations.
    #[serde(flatten)]
    pub stats: DurationStats,
    /// What the durations started from.
    pub started_from: StartSources,
}

/// How many durations started from each kind of start time: a fallback
/// (a trigger without business time) shows here as `run_created`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StartSources {
    /// The trigger event's business time (its `time`).
    pub trigger_time: u64,
    /// The run's creation.
    pub run_created: u64,
    /// A step's completion.
    pub step_completed: u64,
    /// The KPI's `from_time` expression.
    pub from_time: u64,
}

/// One flow's blocked runs of a KPI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FlowBlocked {
    /// The flow.
    pub flow: String,
    /// Runs created in the window that failed for good on one of the errors.
    pub runs: u64,
    /// Its dead letters open now that failed on one of them.
    pub open: u64,
}

/// Failed synchronisations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FailedSync {
    /// Per flow: of its runs created in the window that have ended, those
    /// that failed or were compensated.
    pub flows: Vec<FlowFailures>,
    /// Per connection: of the calls steps of those runs made to it, those
    /// that failed (retried or not).
    pub connections: Vec<ConnectionFailures>,
}

/// One flow's failed runs.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FlowFailures {
    /// The flow.
    pub flow: String,
    /// Runs that have ended.
    pub runs: u64,
    /// Of those, failed or compensated.
    pub failed: u64,
    /// `failed / runs`; `null` when no run ended.
    pub ratio: Option<f64>,
}

/// One connection's failed calls.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ConnectionFailures {
    /// The connection.
    pub connection: String,
    /// Calls made by steps.
    pub calls: u64,
    /// Of those, failed.
    pub failed: u64,
    /// `failed / calls`; `null` without calls.
    pub ratio: Option<f64>,
}

/// Runs that needed a person.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ManualTouch {
    /// Runs created in the window.
    pub runs: u64,
    /// Of those, touched at least once.
    pub touched: u64,
    /// `touched / runs`; `null` without runs.
    pub ratio: Option<f64>,
    /// Touches of those runs by kind: `replay`, `input_corrected`, `discard`.
    pub by_kind: BTreeMap<String, u64>,
    /// Per flow.
    pub flows: Vec<FlowTouches>,
}

/// One flow's touched runs.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FlowTouches {
    /// The flow.
    pub flow: String,
    /// Runs created in the window.
    pub runs: u64,
    /// Of those, touched at least once.
    pub touched: u64,
    /// `touched / runs`.
    pub ratio: Option<f64>,
}

/// One flow's open dead letters.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeadLetterAge {
    /// The flow.
    pub flow: String,
    /// Open now.
    pub open: u64,
    /// The age of the oldest, in seconds.
    pub oldest_age_seconds: f64,
}

/// A KPI that is not measured, and why.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct NotMeasured {
    /// Always `null`.
    pub value: Option<f64>,
    /// Always `false`.
    pub measured: bool,
    /// Why not.
    pub reason: String,
}

impl NotMeasured {
    /// Time to reconcile, which needs a reconciliation that does not exist yet.
    pub fn time_to_reconcile() -> NotMeasured {
        NotMeasured {
            value: None,
            measured: false,
            reason: "not measured: reconciliation does not exist yet, so no flow records when \
                     a record is reconciled"
                .into(),
        }
    }
}

/// The nearest-rank percentile `p` (0 < p <= 1) of `sorted` (ascending).
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

/// `part / whole`, or `None` when `whole` is zero.
fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&ten, 0.5), Some(5.0));
        assert_eq!(percentile(&ten, 0.9), Some(9.0));
        assert_eq!(percentile(&ten, 1.0), Some(10.0));
        assert_eq!(percentile(&[300.0], 0.5), Some(300.0));
        assert_eq!(percentile(&[300.0], 0.9), Some(300.0));
        assert_eq!(percentile(&[], 0.5), None);
        let stats = DurationStats::of(&[600.0, 60.0, 300.0]);
        assert_eq!(
            stats,
            DurationStats {
                count: 3,
                p50_seconds: Some(300.0),
                p90_seconds: Some(600.0),
                sum_seconds: 960.0
            }
        );
    }

    #[test]
    fn ratios_need_a_whole() {
        assert_eq!(ratio(1, 4), Some(0.25));
        assert_eq!(ratio(0, 0), None);
    }

    #[test]
    fn time_to_reconcile_is_null_with_a_reason() {
        let json = serde_json::to_value(NotMeasured::time_to_reconcile()).unwrap();
        assert_eq!(json["value"], serde_json::Value::Null);
        assert_eq!(json["measured"], false);
        assert!(json["reason"].as_str().unwrap().contains("reconciliation"));
    }
}
