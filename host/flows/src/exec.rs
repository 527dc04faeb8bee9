//! The workers: claim a runnable run with a lease, advance it step by step
//! ([`step`](super::step) makes the forward moves, [`saga`](super::saga)
//! the backward ones), retry, compensate, dead-letter.
//!
//! Every write a worker makes about a run is fenced by its lease in the
//! store (see `junction_store::Fence`): a worker whose lease expired (and
//! whose run another worker took over) changes nothing.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::definition::{self, FlowDef, Retry};
use super::graph::Graph;
use super::{FlowError, Flows, Result, StepError, now_ms};
use junction_runtime::runtime::{CallError, PluginError};
use junction_runtime::trace::TraceContext;
use junction_store::{Fence, RunWrite};
use tracing::Instrument;

/// Why one attempt failed.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) kind: &'static str,
    pub(crate) message: String,
    pub(crate) retryable: bool,
    pub(crate) retry_after_ms: Option<u64>,
}

impl Failure {
    pub(crate) fn permanent(kind: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
            retryable: false,
            retry_after_ms: None,
        }
    }
}

/// Which call errors are worth retrying: the remote system's or the host's
/// passing trouble, not a request that will fail the same way again.
pub(crate) fn classify(err: CallError) -> Failure {
    let message = err.to_string();
    let (kind, retryable, retry_after_ms) = match &err {
        CallError::Plugin(e) => match e {
            PluginError::InvalidInput(_) => ("invalid_input", false, None),
            PluginError::Unauthorized(_) => ("unauthorized", false, None),
            PluginError::NotFound(_) => ("not_found", false, None),
            PluginError::Conflict(_) => ("conflict", false, None),
            PluginError::RateLimited(ms) => ("rate_limited", true, Some(*ms)),
            PluginError::Unavailable(_) => ("unavailable", true, None),
            PluginError::Internal(_) => ("plugin_error", true, None),
        },
        CallError::Busy { retry_after_ms, .. } => ("busy", true, Some(*retry_after_ms)),
        CallError::Timeout { .. } => ("timeout", true, None),
        CallError::Trap(_) => ("trapped", true, None),
        CallError::Internal(_) => ("internal", true, None),
        CallError::UnknownConnection(_)
        | CallError::UnknownPlugin(_)
        | CallError::UnknownOperation { .. }
        | CallError::WrongWorld { .. } => ("configuration", false, None),
        CallError::InvalidJson(_) => ("invalid_input", false, None),
        CallError::LimitExceeded { .. } => ("limit_exceeded", false, None),
        CallError::EgressDenied { .. } => ("egress_denied", false, None),
        CallError::OutputTooLarge { .. } | CallError::BadOutput(_) => ("bad_output", false, None),
    };
    Failure {
        kind,
        message,
        retryable,
        retry_after_ms,
    }
}

/// The wait before attempt `attempt + 1`: exponential with equal jitter,
/// at least what a rate limit asked for.
pub(crate) fn backoff(retry: &Retry, attempt: i64, retry_after_ms: Option<u64>) -> u64 {
    let exp = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let full = retry
        .backoff_ms
        .saturating_mul(1u64 << exp)
        .min(retry.max_backoff_ms);
    let random = (uuid::Uuid::new_v4().as_u128() & u128::from(u64::MAX)) as u64;
    let half = full / 2;
    let jittered = half + if half == 0 { 0 } else { random % (half + 1) };
    jittered.max(retry_after_ms.unwrap_or(0))
}

/// What a worker does after one move of a run.
pub(crate) enum Next {
    /// The run ended, waits, or the lease was lost.
    Stop,
    /// Go on with the state in memory, which the move kept up to date.
    Continue,
    /// Go on after reading the run again.
    Reload,
}

impl Next {
    pub(crate) fn reload_if(go_on: bool) -> Next {
        if go_on { Next::Reload } else { Next::Stop }
    }
}

/// A step row as the worker needs it.
#[derive(Debug, Clone)]
pub(crate) struct StepRow {
    pub(crate) id: String,
    pub(crate) position: usize,
    pub(crate) status: String,
    pub(crate) attempts: i64,
    pub(crate) compensation_attempts: i64,
    pub(crate) errors: Vec<StepError>,
    pub(crate) input: Option<Value>,
    pub(crate) input_override: Option<Value>,
    pub(crate) output: Option<Value>,
    pub(crate) key: String,
    /// When it ended (ms since the epoch).
    pub(crate) finished_at: Option<i64>,
}

/// A run as the worker needs it.
pub(crate) struct RunRow {
    pub(crate) flow: String,
    pub(crate) flow_version: i64,
    pub(crate) status: String,
    pub(crate) trigger: Value,
    pub(crate) failed_step: Option<String>,
    /// The parent of the run's spans: its business transaction.
    pub(crate) trace: Option<TraceContext>,
    /// Created (ms since the epoch).
    pub(crate) created_at: i64,
}

pub(crate) fn error_entry(phase: &str, attempt: i64, failure: &Failure) -> StepError {
    StepError {
        phase: phase.into(),
        attempt,
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        kind: failure.kind.into(),
        message: failure.message.clone(),
    }
}

impl Flows {
    /// Starts the configured number of worker tasks on the current Tokio
    /// runtime. They stop once every other handle to these flows is gone.
    pub fn spawn_workers(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let keeper = self.spawn_keeper();
        (0..self.options.workers.max(1))
            .map(|n| {
                let weak = Arc::downgrade(self);
                let worker = format!("{}-{n}", self.host_id);
                tokio::spawn(async move {
                    loop {
                        let (wake, wait) = {
                            let Some(flows) = weak.upgrade() else { return };
                            match flows.work_once(&worker).await {
                                Ok(true) => continue,
                                Ok(false) => (flows.wake.clone(), flows.idle_wait().await),
                                Err(e) => {
                                    tracing::error!(error = %e, worker = %worker, "flow worker failed");
                                    (flows.wake.clone(), flows.options.idle_poll)
                                }
                            }
                        };
                        tokio::select! {
                            _ = wake.notified() => {}
                            _ = tokio::time::sleep(wait) => {}
                        }
                    }
                })
            })
            .chain(std::iter::once(keeper))
            .collect()
    }

    /// How long an idle worker can sleep: until the next run is due (or its
    /// lease expires), at most `idle_poll`.
    async fn idle_wait(&self) -> Duration {
        let next = self.store().next_run_at().await.unwrap_or(None);
        let schedule = self.store().next_schedule_at().await.unwrap_or(None);
        let next = match (next, schedule) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let poll = self.options.idle_poll;
        match next {
            Some(at) => {
                let ms = u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0);
                Duration::from_millis(ms.max(5)).min(poll)
            }
            None => poll,
        }
    }

    /// Claims one runnable run for `worker` and advances it as far as it can
    /// go now. Returns whether there was one.
    pub async fn work_once(&self, worker: &str) -> Result<bool> {
        self.fire_schedules().await?;
        let lease = self.step_lease();
        let Some(run_id) = self.claim(worker, lease).await? else {
            return Ok(false);
        };
        if let Err(e) = self.advance(worker, &run_id).await {
            tracing::error!(run = %run_id, error = %e, "advancing a run failed; it is retried after its lease");
        }
        Ok(true)
    }

    /// The lease a worker takes for one step: long enough for a call that
    /// runs to its deadline.
    fn step_lease(&self) -> Duration {
        self.options.lease + self.runtime.limits().deadline() + Duration::from_secs(1)
    }

    /// Claims the runnable run that is due first for `worker`, for `lease`.
    /// A run is runnable when active, due, and not leased (or its lease expired).
    pub async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<String>> {
        let now = now_ms();
        let until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2));
        // Through the group committer: claims of many workers share a commit.
        self.committer()
            .apply(self.store().claim_batch(worker, until, now))
            .await
            .map_err(FlowError::from)
    }

    /// The fence of a write: the run's lease is still `worker`'s (renewed
    /// for a step when `renew`).
    pub(crate) fn fence<'a>(&self, worker: &'a str, run_id: &'a str, renew: bool) -> Fence<'a> {
        let now = now_ms();
        let renew_until = renew.then(|| {
            now.saturating_add(i64::try_from(self.step_lease().as_millis()).unwrap_or(i64::MAX / 2))
        });
        Fence {
            worker,
            run_id,
            now,
            renew_until,
        }
    }

    /// Applies `writes`, fenced by `worker`'s lease of `run_id`, through the
    /// group committer. Returns whether they were applied (false: the lease
    /// was lost and nothing changed).
    pub(crate) async fn commit_fenced(
        &self,
        worker: &str,
        run_id: &str,
        renew: bool,
        writes: impl IntoIterator<Item = RunWrite<'_>>,
    ) -> Result<bool> {
        let batch = self
            .store()
            .fenced_batch(&self.fence(worker, run_id, renew), writes);
        let applied = self.committer().apply(batch).await?.is_some();
        Ok(lease_held(applied, worker, run_id))
    }

    pub(crate) async fn load(&self, run_id: &str) -> Result<(RunRow, Vec<StepRow>)> {
        let r = self
            .store()
            .run_state(run_id)
            .await?
            .ok_or_else(|| FlowError::NotFound(format!("no run with id `{run_id}`")))?;
        let run = RunRow {
            flow: r.flow,
            flow_version: r.flow_version,
            status: r.status,
            trigger: serde_json::from_str(&r.trigger)?,
            failed_step: r.failed_step,
            trace: r.traceparent.as_deref().and_then(TraceContext::parse),
            created_at: r.created_at,
        };
        let rows = self.store().run_step_states(run_id).await?;
        let json = |t: Option<String>| -> Result<Option<Value>> {
            Ok(t.map(|t| serde_json::from_str(&t)).transpose()?)
        };
        let mut steps = Vec::new();
        for r in rows {
            steps.push(StepRow {
                id: r.id,
                position: usize::try_from(r.position).unwrap_or(usize::MAX),
                status: r.status,
                attempts: r.attempts,
                compensation_attempts: r.compensation_attempts,
                errors: serde_json::from_str(&r.errors)?,
                input: json(r.input)?,
                input_override: json(r.input_override)?,
                output: json(r.output)?,
                key: r.idempotency_key,
                finished_at: r.finished_at,
            });
        }
        Ok((run, steps))
    }

    pub(crate) async fn definition(&self, flow: &str, version: i64) -> Result<FlowDef> {
        let source = self
            .store()
            .flow_source(flow, version)
            .await?
            .ok_or_else(|| {
                FlowError::NotFound(format!("flow `{flow}` has no version {version}"))
            })?;
        definition::parse(&source).map_err(FlowError::Invalid)
    }

    /// Advances a run `worker` claimed until it ends, waits for a retry, or
    /// the lease is lost (then it changes nothing). Workers call it after
    /// [`claim`](Self::claim); tests call it to act as a worker that lost its lease.
    pub async fn advance(&self, worker: &str, run_id: &str) -> Result<()> {
        let (run, steps) = self.load(run_id).await?;
        let span = run_span(run_id, &run);
        self.advance_loaded(worker, run_id, run, steps)
            .instrument(span)
            .await
    }

    async fn advance_loaded(
        &self,
        worker: &str,
        run_id: &str,
        mut run: RunRow,
        mut steps: Vec<StepRow>,
    ) -> Result<()> {
        let def = self.definition(&run.flow, run.flow_version).await?;
        let graph = Graph::of(&def);
        loop {
            // While the lease is held, this worker's fenced writes are the
            // only writes to the run: forward moves keep `steps` up to date
            // in memory; the rarer moves (failures, the saga) reload.
            let next = match run.status.as_str() {
                "pending" | "running" => {
                    self.forward(worker, run_id, &run, &def, &graph, &mut steps)
                        .await?
                }
                "compensating" => {
                    if self.backward(worker, run_id, &run, &def, &steps).await? {
                        Next::Reload
                    } else {
                        Next::Stop
                    }
                }
                _ => Next::Stop,
            };
            match next {
                Next::Stop => return Ok(()),
                Next::Continue => {}
                Next::Reload => (run, steps) = self.load(run_id).await?,
            }
        }
    }
}

/// The span of one stretch of a run's work, from its claim until it ends,
/// waits or loses its lease. Its parent is the run's business transaction
/// (the request or schedule that started it), so every stretch of a run,
/// on any host and after any restart, is in that one trace.
fn run_span(run_id: &str, run: &RunRow) -> tracing::Span {
    let text = |key: &str| {
        run.trigger
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let span = tracing::info_span!(
        "run",
        otel.name = %format!("run {}", run.flow),
        flow = %run.flow,
        flow.version = run.flow_version,
        run = %run_id,
        trigger.type = %text("type"),
        trigger.id = %text("id"),
        trace_id = tracing::field::Empty,
    );
    if let Some(trace) = &run.trace {
        trace.adopt(&span);
        span.record("trace_id", trace.trace_id());
    }
    span
}

/// `held`, logging when the lease of `run_id` was lost.
pub(crate) fn lease_held(held: bool, worker: &str, run_id: &str) -> bool {
    if !held {
        tracing::warn!(run = %run_id, worker, "lost the lease of a run; leaving it");
    }
    held
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_honours_retry_after() {
        let retry = Retry {
            attempts: 5,
            backoff_ms: 100,
            max_backoff_ms: 1_000,
        };
        for _ in 0..50 {
            let first = backoff(&retry, 1, None);
            assert!((50..=100).contains(&first), "{first}");
            let third = backoff(&retry, 3, None);
            assert!((200..=400).contains(&third), "{third}");
            let capped = backoff(&retry, 20, None);
            assert!((500..=1_000).contains(&capped), "{capped}");
        }
        assert!(backoff(&retry, 1, Some(2_000)) >= 2_000);
    }

    #[test]
    fn invalid_input_and_unauthorized_are_not_retried() {
        let f = classify(CallError::Plugin(PluginError::InvalidInput("x".into())));
        assert!(!f.retryable);
        let f = classify(CallError::Plugin(PluginError::Unauthorized("x".into())));
        assert!(!f.retryable);
        let f = classify(CallError::Plugin(PluginError::Unavailable("x".into())));
        assert!(f.retryable);
        let f = classify(CallError::Plugin(PluginError::RateLimited(2_000)));
        assert_eq!((f.retryable, f.retry_after_ms), (true, Some(2_000)));
    }
}
