//! The workers: claim a runnable run with a lease, advance it step by step,
//! retry, compensate, dead-letter.
//!
//! Every write a worker makes about a run starts with the fence
//! `UPDATE runs ... WHERE id = $1 AND lease_owner = $2`, in the same
//! transaction: a worker whose lease expired (and whose run another worker
//! took over) changes nothing. On SQLite that first write also takes the
//! write lock, so a transaction never has to upgrade a read lock; on
//! PostgreSQL it locks the run's row until the transaction ends, so a claim
//! cannot take the run over in the middle of it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use sqlx::Row;

use super::definition::{self, Action, FlowDef, Retry, StepDef};
use super::{FlowError, Flows, Result, StepError, jq, now_ms};
use junction_runtime::runtime::{CallError, CallOptions, PluginError};
use junction_store::Backend;
use junction_store::commit::{Batch, Statement};

/// The claim: one statement that leases the runnable run due first.
/// SQLite serialises writers, so the statement alone is exclusive; on
/// PostgreSQL (READ COMMITTED) `$lock` is `FOR UPDATE SKIP LOCKED`, so
/// concurrent claimers lock different rows, and the outer condition is
/// checked again on the locked row, so a run whose lease was just taken is
/// not taken twice.
macro_rules! claim_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE runs SET lease_owner = $1, lease_until = $2, updated_at = $3, \
             status = CASE WHEN status = 'pending' THEN 'running' ELSE status END \
             WHERE id = (SELECT id FROM runs WHERE status IN ('pending', 'running', 'compensating') \
               AND next_at <= $3 AND (lease_until IS NULL OR lease_until < $3) \
               ORDER BY next_at, created_at LIMIT 1",
            $lock,
            ") AND (lease_until IS NULL OR lease_until < $3) RETURNING id"
        )
    };
}

/// Why one attempt failed.
#[derive(Debug, Clone)]
struct Failure {
    kind: &'static str,
    message: String,
    retryable: bool,
    retry_after_ms: Option<u64>,
}

impl Failure {
    fn permanent(kind: &'static str, message: impl Into<String>) -> Failure {
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
fn classify(err: CallError) -> Failure {
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
fn backoff(retry: &Retry, attempt: i64, retry_after_ms: Option<u64>) -> u64 {
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
enum Next {
    /// The run ended, waits, or the lease was lost.
    Stop,
    /// Go on with the state in memory, which the move kept up to date.
    Continue,
    /// Go on after reading the run again.
    Reload,
}

impl Next {
    fn reload_if(go_on: bool) -> Next {
        if go_on { Next::Reload } else { Next::Stop }
    }
}

/// A step row as the worker needs it.
#[derive(Debug, Clone)]
struct StepRow {
    id: String,
    position: usize,
    status: String,
    attempts: i64,
    compensation_attempts: i64,
    errors: Vec<StepError>,
    input: Option<Value>,
    input_override: Option<Value>,
    output: Option<Value>,
    key: String,
}

struct RunRow {
    flow: String,
    flow_version: i64,
    status: String,
    trigger: Value,
    failed_step: Option<String>,
}

fn error_entry(phase: &str, attempt: i64, failure: &Failure) -> StepError {
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
            .collect()
    }

    /// How long an idle worker can sleep: until the next run is due (or its
    /// lease expires), at most `idle_poll`.
    async fn idle_wait(&self) -> Duration {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > next_at THEN lease_until ELSE next_at END) FROM runs WHERE status IN ('pending', 'running', 'compensating')",
        )
        .fetch_one(self.pool())
        .await
        .unwrap_or(None);
        let schedule: Option<i64> = sqlx::query_scalar("SELECT MIN(next_at) FROM flow_schedules")
            .fetch_one(self.pool())
            .await
            .unwrap_or(None);
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
        let sql = match self.runtime.store().backend() {
            Backend::Sqlite => claim_sql!(""),
            Backend::Postgres => claim_sql!(" FOR UPDATE SKIP LOCKED"),
        };
        // Through the group committer: claims of many workers share a commit.
        self.committer()
            .apply(Batch::new(
                Statement::new(sql).bind(worker).bind(until).bind(now),
            ))
            .await
            .map_err(FlowError::from)
    }

    /// The fence of a batch: the run's lease is still `worker`'s (renewed
    /// for a step when `renew`).
    fn fence(&self, worker: &str, run_id: &str, renew: bool) -> Statement {
        let now = now_ms();
        if renew {
            let until = now.saturating_add(
                i64::try_from(self.step_lease().as_millis()).unwrap_or(i64::MAX / 2),
            );
            Statement::new(
                "UPDATE runs SET updated_at = $1, lease_until = $2 WHERE id = $3 AND lease_owner = $4 RETURNING id",
            )
            .bind(now)
            .bind(until)
        } else {
            Statement::new(
                "UPDATE runs SET updated_at = $1 WHERE id = $2 AND lease_owner = $3 RETURNING id",
            )
            .bind(now)
        }
        .bind(run_id)
        .bind(worker)
    }

    /// Applies a batch fenced by `worker`'s lease of `run_id` through the
    /// group committer. Returns whether it was applied (false: the lease
    /// was lost and nothing changed).
    async fn commit_fenced(
        &self,
        worker: &str,
        run_id: &str,
        renew: bool,
        writes: impl IntoIterator<Item = Statement>,
    ) -> Result<bool> {
        let batch = writes
            .into_iter()
            .fold(Batch::new(self.fence(worker, run_id, renew)), Batch::then);
        if self.committer().apply(batch).await?.is_some() {
            Ok(true)
        } else {
            tracing::warn!(run = %run_id, worker, "lost the lease of a run; leaving it");
            Ok(false)
        }
    }

    /// Begins a fenced transaction: `None` when `worker` no longer holds the lease.
    async fn fenced(
        &self,
        worker: &str,
        run_id: &str,
        renew: bool,
    ) -> Result<Option<junction_store::Transaction>> {
        let mut tx = self.pool().begin().await?;
        let now = now_ms();
        let until = now
            .saturating_add(i64::try_from(self.step_lease().as_millis()).unwrap_or(i64::MAX / 2));
        let fenced = if renew {
            sqlx::query(
                "UPDATE runs SET updated_at = $1, lease_until = $2 WHERE id = $3 AND lease_owner = $4",
            )
            .bind(now)
            .bind(until)
        } else {
            sqlx::query("UPDATE runs SET updated_at = $1 WHERE id = $2 AND lease_owner = $3").bind(now)
        }
        .bind(run_id)
        .bind(worker)
        .execute(&mut *tx)
        .await?;
        if fenced.rows_affected() == 1 {
            Ok(Some(tx))
        } else {
            tracing::warn!(run = %run_id, worker, "lost the lease of a run; leaving it");
            Ok(None)
        }
    }

    async fn load(&self, run_id: &str) -> Result<(RunRow, Vec<StepRow>)> {
        let r = sqlx::query(
            "SELECT flow, flow_version, status, trigger_event, failed_step FROM runs WHERE id = $1",
        )
        .bind(run_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| FlowError::NotFound(format!("no run with id `{run_id}`")))?;
        let run = RunRow {
            flow: r.get(0),
            flow_version: r.get(1),
            status: r.get(2),
            trigger: serde_json::from_str(&r.get::<String, _>(3))?,
            failed_step: r.get(4),
        };
        let rows = sqlx::query(
            "SELECT step_id, position, status, attempts, compensation_attempts, errors, input, input_override, output, idempotency_key FROM run_steps WHERE run_id = $1 ORDER BY position",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await?;
        let json = |t: Option<String>| -> Result<Option<Value>> {
            Ok(t.map(|t| serde_json::from_str(&t)).transpose()?)
        };
        let mut steps = Vec::new();
        for r in &rows {
            steps.push(StepRow {
                id: r.get(0),
                position: usize::try_from(r.get::<i64, _>(1)).unwrap_or(usize::MAX),
                status: r.get(2),
                attempts: r.get(3),
                compensation_attempts: r.get(4),
                errors: serde_json::from_str(&r.get::<String, _>(5))?,
                input: json(r.get(6))?,
                input_override: json(r.get(7))?,
                output: json(r.get(8))?,
                key: r.get(9),
            });
        }
        Ok((run, steps))
    }

    async fn definition(&self, flow: &str, version: i64) -> Result<FlowDef> {
        let source: String =
            sqlx::query_scalar("SELECT source FROM flow_versions WHERE flow = $1 AND version = $2")
                .bind(flow)
                .bind(version)
                .fetch_optional(self.pool())
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
        let (mut run, mut steps) = self.load(run_id).await?;
        let def = self.definition(&run.flow, run.flow_version).await?;
        loop {
            // While the lease is held, this worker's fenced writes are the
            // only writes to the run: forward moves keep `steps` up to date
            // in memory; the rarer moves (failures, the saga) reload.
            let next = match run.status.as_str() {
                "pending" | "running" => {
                    self.forward(worker, run_id, &run, &def, &mut steps).await?
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

    /// The context jq expressions see: the trigger, completed steps' outputs, the run.
    fn context(run_id: &str, run: &RunRow, steps: &[StepRow]) -> Value {
        let mut outputs = Map::new();
        for s in steps {
            match s.status.as_str() {
                "completed" => {
                    outputs.insert(s.id.clone(), s.output.clone().unwrap_or(Value::Null));
                }
                "skipped" => {
                    outputs.insert(s.id.clone(), Value::Null);
                }
                _ => {}
            }
        }
        json!({"trigger": run.trigger, "steps": outputs, "run": {"id": run_id, "flow": run.flow}})
    }

    /// One forward move. Returns whether to keep going.
    async fn forward(
        &self,
        worker: &str,
        run_id: &str,
        run: &RunRow,
        def: &FlowDef,
        steps: &mut [StepRow],
    ) -> Result<Next> {
        let Some(index) = steps
            .iter()
            .position(|s| s.status == "pending" || s.status == "running")
        else {
            let now = now_ms();
            let done = Statement::new("UPDATE runs SET status = 'completed', finished_at = $1, updated_at = $2, lease_owner = NULL, lease_until = NULL WHERE id = $3")
                .bind(now)
                .bind(now)
                .bind(run_id);
            if self.commit_fenced(worker, run_id, false, [done]).await? {
                tracing::info!(run = %run_id, flow = %run.flow, "run completed");
            }
            return Ok(Next::Stop);
        };
        let row = steps[index].clone();
        let row = &row;
        let Some(spec) = def.steps.get(row.position) else {
            return Err(FlowError::Invalid(format!(
                "step `{}` is not in version {} of flow `{}`",
                row.id, run.flow_version, run.flow
            )));
        };
        let ctx = Self::context(run_id, run, steps);
        let attempt = row.attempts + 1;
        // Conditions and inputs are computed once per attempt; an expression
        // error fails the step for good (it would fail the same way again).
        let prepared: std::result::Result<Option<Value>, Failure> = (|| {
            if let Some(when) = &spec.when
                && !jq::truthy(when, &ctx)
                    .map_err(|e| Failure::permanent("expression", format!("when: {e}")))?
            {
                return Ok(None);
            }
            if let Some(input) = &row.input_override {
                return Ok(Some(input.clone()));
            }
            if let Some(Action::Map(_)) = spec.action() {
                return Ok(Some(ctx.clone()));
            }
            match &spec.input {
                Some(code) => jq::first(code, &ctx)
                    .map(Some)
                    .map_err(|e| Failure::permanent("expression", format!("input: {e}"))),
                None => Ok(Some(previous_output(run, steps, row.position))),
            }
        })();
        let input = match prepared {
            Ok(None) => {
                let now = now_ms();
                let skip = Statement::new("UPDATE run_steps SET status = 'skipped', started_at = $1, finished_at = $2 WHERE run_id = $3 AND step_id = $4")
                    .bind(now)
                    .bind(now)
                    .bind(run_id)
                    .bind(row.id.as_str());
                if !self.commit_fenced(worker, run_id, false, [skip]).await? {
                    return Ok(Next::Stop);
                }
                steps[index].status = "skipped".into();
                return Ok(Next::Continue);
            }
            Ok(Some(input)) => input,
            Err(failure) => {
                return self
                    .step_failed(
                        worker, run_id, def, steps, row, attempt, None, None, failure,
                    )
                    .await
                    .map(Next::reload_if);
            }
        };
        // Record the attempt before making it: a crash during the call
        // still counts it, and the next worker sees the input.
        let running = Statement::new("UPDATE run_steps SET status = 'running', attempts = $1, input = $2, started_at = COALESCE(started_at, $3) WHERE run_id = $4 AND step_id = $5")
            .bind(attempt)
            .bind(input.to_string())
            .bind(now_ms())
            .bind(run_id)
            .bind(row.id.as_str());
        if !self.commit_fenced(worker, run_id, true, [running]).await? {
            return Ok(Next::Stop);
        }
        steps[index].status = "running".into();
        steps[index].attempts = attempt;
        steps[index].input = Some(input.clone());
        let call = self.call(spec, &input, &row.key, run_id, attempt);
        let result = match spec.deadline_ms {
            Some(ms) => tokio::time::timeout(Duration::from_millis(ms), call)
                .await
                .unwrap_or_else(|_| {
                    Err(Failure {
                        kind: "timeout",
                        message: format!("the step did not finish within its deadline of {ms} ms"),
                        retryable: true,
                        retry_after_ms: None,
                    })
                }),
            None => call.await,
        };
        match result {
            Ok(output) => {
                let completed = Statement::new("UPDATE run_steps SET status = 'completed', output = $1, finished_at = $2 WHERE run_id = $3 AND step_id = $4")
                    .bind(output.to_string())
                    .bind(now_ms())
                    .bind(run_id)
                    .bind(row.id.as_str());
                if !self
                    .commit_fenced(worker, run_id, false, [completed])
                    .await?
                {
                    return Ok(Next::Stop);
                }
                steps[index].status = "completed".into();
                steps[index].output = Some(output);
                Ok(Next::Continue)
            }
            Err(failure) => self
                .step_failed(
                    worker,
                    run_id,
                    def,
                    steps,
                    row,
                    attempt,
                    Some(&input),
                    Some(&spec.retry),
                    failure,
                )
                .await
                .map(Next::reload_if),
        }
    }

    /// Makes one call of a step.
    async fn call(
        &self,
        spec: &StepDef,
        input: &Value,
        key: &str,
        run_id: &str,
        attempt: i64,
    ) -> std::result::Result<Value, Failure> {
        let options = CallOptions {
            idempotency_key: Some(key.to_string()),
            run_id: Some(run_id.to_string()),
            attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
            trace_id: None,
        };
        let text = input.to_string();
        let parse = |json: &str| {
            serde_json::from_str(json).map_err(|e| Failure::permanent("bad_output", e.to_string()))
        };
        match spec.action() {
            Some(Action::Invoke {
                connection,
                operation,
            }) => match self
                .runtime
                .invoke(connection, operation, &text, options)
                .await
            {
                Ok(out) => parse(&out.json),
                Err(e) => Err(classify(e)),
            },
            Some(Action::Transform(plugin)) => match self.runtime.apply(plugin, &text).await {
                Ok((outputs, _)) => outputs
                    .iter()
                    .map(|o| parse(o))
                    .collect::<std::result::Result<Vec<Value>, _>>()
                    .map(Value::Array),
                Err(e) => Err(classify(e)),
            },
            Some(Action::Map(code)) => jq::first(code, input)
                .map_err(|e| Failure::permanent("expression", format!("map: {e}"))),
            None => Err(Failure::permanent(
                "configuration",
                "the step has no action",
            )),
        }
    }

    /// Records a failed attempt: schedules a retry, or fails the step for
    /// good and starts the saga (or fails the run).
    #[allow(clippy::too_many_arguments)]
    async fn step_failed(
        &self,
        worker: &str,
        run_id: &str,
        def: &FlowDef,
        steps: &[StepRow],
        row: &StepRow,
        attempt: i64,
        input: Option<&Value>,
        retry: Option<&Retry>,
        failure: Failure,
    ) -> Result<bool> {
        let mut errors = row.errors.clone();
        errors.push(error_entry("step", attempt, &failure));
        let errors_text = serde_json::to_string(&errors)?;
        let Some(mut tx) = self.fenced(worker, run_id, false).await? else {
            return Ok(false);
        };
        let now = now_ms();
        if let Some(retry) = retry.filter(|r| failure.retryable && attempt < i64::from(r.attempts))
        {
            let wait = backoff(retry, attempt, failure.retry_after_ms);
            sqlx::query("UPDATE run_steps SET status = 'pending', attempts = $1, errors = $2 WHERE run_id = $3 AND step_id = $4")
                .bind(attempt)
                .bind(&errors_text)
                .bind(run_id)
                .bind(&row.id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE runs SET next_at = $1, lease_owner = NULL, lease_until = NULL WHERE id = $2",
            )
            .bind(now.saturating_add(i64::try_from(wait).unwrap_or(i64::MAX / 2)))
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::info!(run = %run_id, step = %row.id, attempt, wait_ms = wait, kind = failure.kind, "step failed; retrying");
            return Ok(false);
        }
        sqlx::query("UPDATE run_steps SET status = 'failed', attempts = $1, errors = $2, finished_at = $3 WHERE run_id = $4 AND step_id = $5")
            .bind(attempt)
            .bind(&errors_text)
            .bind(now)
            .bind(run_id)
            .bind(&row.id)
            .execute(&mut *tx)
            .await?;
        let message = format!("step `{}` failed: {}", row.id, failure.message);
        let to_compensate = steps.iter().any(|s| {
            s.status == "completed"
                && def
                    .steps
                    .get(s.position)
                    .is_some_and(|d| d.compensation().is_some())
        });
        sqlx::query("UPDATE runs SET error = $1, failed_step = $2, updated_at = $3 WHERE id = $4")
            .bind(&message)
            .bind(&row.id)
            .bind(now)
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        if to_compensate {
            sqlx::query("UPDATE runs SET status = 'compensating', next_at = $1 WHERE id = $2")
                .bind(now)
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::warn!(run = %run_id, step = %row.id, kind = failure.kind, "step failed for good; compensating");
            return Ok(true);
        }
        let mut failed = row.clone();
        failed.errors = errors;
        failed.attempts = attempt;
        if let Some(input) = input {
            failed.input = Some(input.clone());
        }
        self.finish_failed(&mut tx, run_id, "failed", &failed, &[])
            .await?;
        tx.commit().await?;
        tracing::warn!(run = %run_id, step = %row.id, kind = failure.kind, "step failed for good; run failed");
        Ok(false)
    }

    /// Ends a run as `status` and dead-letters it, inside `tx`.
    async fn finish_failed(
        &self,
        tx: &mut junction_store::Transaction,
        run_id: &str,
        status: &str,
        failed: &StepRow,
        compensation_errors: &[StepError],
    ) -> Result<()> {
        let now = now_ms();
        let flow: String = sqlx::query_scalar("SELECT flow FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_one(&mut **tx)
            .await?;
        sqlx::query("UPDATE runs SET status = $1, finished_at = $2, updated_at = $3, lease_owner = NULL, lease_until = NULL WHERE id = $4")
            .bind(status)
            .bind(now)
            .bind(now)
            .bind(run_id)
            .execute(&mut **tx)
            .await?;
        let mut errors: Vec<StepError> = failed
            .errors
            .iter()
            .filter(|e| e.phase == "step")
            .cloned()
            .collect();
        errors.extend(compensation_errors.iter().cloned());
        let input = failed.input_override.as_ref().or(failed.input.as_ref());
        sqlx::query("INSERT INTO dead_letters (id, run_id, flow, step_id, attempts, errors, input, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(run_id)
            .bind(flow)
            .bind(&failed.id)
            .bind(failed.attempts)
            .bind(serde_json::to_string(&errors)?)
            .bind(input.map(Value::to_string))
            .bind(now)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// One backward move of the saga: compensate the latest completed step
    /// that has a compensation. Returns whether to keep going.
    async fn backward(
        &self,
        worker: &str,
        run_id: &str,
        run: &RunRow,
        def: &FlowDef,
        steps: &[StepRow],
    ) -> Result<bool> {
        let next = steps.iter().rev().find(|s| {
            (s.status == "completed" || s.status == "compensating")
                && def
                    .steps
                    .get(s.position)
                    .is_some_and(|d| d.compensation().is_some())
        });
        let Some(row) = next else {
            let failed_id = run.failed_step.clone().unwrap_or_default();
            let Some(failed) = steps.iter().find(|s| s.id == failed_id) else {
                return Err(FlowError::Invalid(format!(
                    "run `{run_id}` is compensating but names no failed step"
                )));
            };
            let compensation_errors: Vec<StepError> = steps
                .iter()
                .filter(|s| s.status == "compensation_failed")
                .flat_map(|s| s.errors.iter().filter(|e| e.phase == "compensate").cloned())
                .collect();
            let status = if steps.iter().any(|s| s.status == "compensation_failed") {
                "failed"
            } else {
                "compensated"
            };
            let Some(mut tx) = self.fenced(worker, run_id, false).await? else {
                return Ok(false);
            };
            self.finish_failed(&mut tx, run_id, status, failed, &compensation_errors)
                .await?;
            tx.commit().await?;
            tracing::warn!(run = %run_id, status, "saga finished");
            return Ok(false);
        };
        let Some(spec) = def.steps.get(row.position) else {
            return Ok(false);
        };
        let Some((connection, compensate)) = spec.compensation() else {
            return Ok(false);
        };
        let attempt = row.compensation_attempts + 1;
        let step_input = row.input.clone().unwrap_or(Value::Null);
        let step_output = row.output.clone().unwrap_or(Value::Null);
        let input = match &compensate.input {
            Some(code) => jq::first(
                code,
                &json!({"input": step_input, "output": step_output, "trigger": run.trigger}),
            )
            .map_err(|e| Failure::permanent("expression", format!("compensate.input: {e}"))),
            None => Ok(json!({"input": step_input, "output": step_output})),
        };
        let Some(mut tx) = self.fenced(worker, run_id, true).await? else {
            return Ok(false);
        };
        sqlx::query("UPDATE run_steps SET status = 'compensating', compensation_attempts = $1 WHERE run_id = $2 AND step_id = $3")
            .bind(attempt)
            .bind(run_id)
            .bind(&row.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let result = match input {
            Ok(input) => {
                let options = CallOptions {
                    idempotency_key: Some(format!("{}:compensate", row.key)),
                    run_id: Some(run_id.to_string()),
                    attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                    trace_id: None,
                };
                self.runtime
                    .invoke(
                        connection,
                        &compensate.operation,
                        &input.to_string(),
                        options,
                    )
                    .await
                    .map(drop)
                    .map_err(classify)
            }
            Err(failure) => Err(failure),
        };
        let Some(mut tx) = self.fenced(worker, run_id, false).await? else {
            return Ok(false);
        };
        let now = now_ms();
        match result {
            Ok(()) => {
                sqlx::query("UPDATE run_steps SET status = 'compensated', compensated_at = $1 WHERE run_id = $2 AND step_id = $3")
                    .bind(now)
                    .bind(run_id)
                    .bind(&row.id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }
            Err(failure) => {
                let mut errors = row.errors.clone();
                errors.push(error_entry("compensate", attempt, &failure));
                let retry = failure.retryable && attempt < i64::from(spec.retry.attempts);
                sqlx::query(
                    "UPDATE run_steps SET status = $1, errors = $2 WHERE run_id = $3 AND step_id = $4",
                )
                .bind(if retry {
                    "compensating"
                } else {
                    "compensation_failed"
                })
                .bind(serde_json::to_string(&errors)?)
                .bind(run_id)
                .bind(&row.id)
                .execute(&mut *tx)
                .await?;
                if retry {
                    let wait = backoff(&spec.retry, attempt, failure.retry_after_ms);
                    sqlx::query("UPDATE runs SET next_at = $1, lease_owner = NULL, lease_until = NULL WHERE id = $2")
                        .bind(now.saturating_add(i64::try_from(wait).unwrap_or(i64::MAX / 2)))
                        .bind(run_id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(!retry)
            }
        }
    }
}

/// The default input of a step: the output of the latest completed step
/// before it, or the trigger event.
fn previous_output(run: &RunRow, steps: &[StepRow], position: usize) -> Value {
    steps
        .iter()
        .rfind(|s| s.position < position && s.status == "completed")
        .and_then(|s| s.output.clone())
        .unwrap_or_else(|| run.trigger.clone())
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
