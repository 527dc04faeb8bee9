//! The writes of the flow workers: the claim of a run with a lease, and
//! every later write about it fenced by that lease.
//!
//! Every write a worker makes about a run starts with the fence
//! `UPDATE runs ... WHERE id = $1 AND lease_owner = $2`, in the same
//! transaction: a worker whose lease expired (and whose run another worker
//! took over) changes nothing. On SQLite that first write also takes the
//! write lock, so a transaction never has to upgrade a read lock; on
//! PostgreSQL it locks the run's row until the transaction ends, so a claim
//! cannot take the run over in the middle of it.
//!
//! The frequent writes (the claim, a step's start and end) go through the
//! group committer as [`Batch`]es; the rarer ones (failures, the saga) are
//! transactions of their own.

use sqlx::Row;

use crate::commit::{Batch, Statement};
use crate::dead_letters::{NewDeadLetter, dead_letter_run};
use crate::{Backend, Result, Store, Transaction};

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

/// The lease a write is fenced by: `worker` still holds run `run_id`.
#[derive(Debug, Clone, Copy)]
pub struct Fence<'a> {
    /// The worker.
    pub worker: &'a str,
    /// The run.
    pub run_id: &'a str,
    /// Now (ms since the epoch), the run's `updated_at`.
    pub now: i64,
    /// Renews the lease until then (ms since the epoch).
    pub renew_until: Option<i64>,
}

/// A write of a worker applied through the group committer after its fence.
#[derive(Debug, Clone)]
pub enum RunWrite<'a> {
    /// The run completed.
    CompleteRun {
        /// When.
        now: i64,
    },
    /// A step's condition was false.
    SkipStep {
        /// The step.
        step: &'a str,
        /// When.
        now: i64,
    },
    /// A step's attempt starts, recorded before the call is made.
    StartAttempt {
        /// The step.
        step: &'a str,
        /// The attempt, from 1.
        attempt: i64,
        /// Its input (JSON text).
        input: String,
        /// When.
        now: i64,
    },
    /// An event for the outbox, written with the batch's other writes.
    Emit(crate::CloudEvent),
    /// A failed attempt of a step is to be retried, while the run goes on
    /// with its other steps: the step is pending with `attempts` calls
    /// made and `errors` (a JSON array).
    PendStep {
        /// The step.
        step: &'a str,
        /// Calls made.
        attempts: i64,
        /// Every error, oldest first.
        errors: String,
    },
    /// The run no longer waits for a signal (its wait step ends), and the
    /// signal `signal` (if any) has been acted on.
    EndWait {
        /// The signal consumed.
        signal: Option<&'a str>,
        /// When.
        now: i64,
    },
    /// A step's output named the record of an entity in a system: the id
    /// map (`xrefs`) is written with the step's completion.
    Xref {
        /// The run's flow.
        flow: &'a str,
        /// What was recorded.
        xref: crate::NewXref,
        /// When.
        now: i64,
    },
    /// A step completed.
    CompleteStep {
        /// The step.
        step: &'a str,
        /// Its output (JSON text).
        output: String,
        /// When.
        now: i64,
    },
}

/// A run as a worker needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStateRow {
    /// Flow name.
    pub flow: String,
    /// The flow version it runs.
    pub flow_version: i64,
    /// Its status.
    pub status: String,
    /// The trigger event (JSON text).
    pub trigger: String,
    /// The step that failed for good.
    pub failed_step: Option<String>,
    /// The W3C `traceparent` of its business transaction.
    pub traceparent: Option<String>,
    /// Created (ms since the epoch).
    pub created_at: i64,
}

/// A step of a run as a worker needs it (JSON as text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepStateRow {
    /// Step id.
    pub id: String,
    /// Its position in the flow, from 0.
    pub position: i64,
    /// Its status.
    pub status: String,
    /// Calls made.
    pub attempts: i64,
    /// Compensation calls made.
    pub compensation_attempts: i64,
    /// Every error, oldest first (a JSON array).
    pub errors: String,
    /// The input of the last attempt.
    pub input: Option<String>,
    /// The input a replay gave it.
    pub input_override: Option<String>,
    /// The output, once completed.
    pub output: Option<String>,
    /// Passed to the connector on every attempt.
    pub idempotency_key: String,
    /// When it ended (ms since the epoch): completed, skipped or failed.
    pub finished_at: Option<i64>,
}

/// What follows a step's failure for good.
#[derive(Debug, Clone)]
pub enum AfterFailure<'a> {
    /// Completed steps are compensated: the run is compensating.
    Compensate,
    /// Nothing to compensate: the run ends and is dead-lettered.
    DeadLetter(NewDeadLetter<'a>),
}

impl RunWrite<'_> {
    /// Adds this write of run `run_id` to `batch`.
    fn add_to(self, batch: Batch, run_id: &str) -> Batch {
        let statement = match self {
            RunWrite::Emit(event) => return batch.emit(&event),
            RunWrite::PendStep { step, attempts, errors } => Statement::new(PEND_STEP)
                .bind(attempts)
                .bind(errors)
                .bind(run_id)
                .bind(step),
            RunWrite::EndWait { signal, now } => {
                return batch
                    .then(
                        Statement::new("UPDATE runs SET waiting_for = NULL WHERE id = $1")
                            .bind(run_id),
                    )
                    .then(
                        Statement::new("UPDATE run_signals SET consumed_at = $1 WHERE id = $2")
                            .bind(now)
                            .bind(signal.unwrap_or_default()),
                    );
            }
            RunWrite::CompleteRun { now } => Statement::new("UPDATE runs SET status = 'completed', finished_at = $1, updated_at = $2, lease_owner = NULL, lease_until = NULL WHERE id = $3")
                .bind(now)
                .bind(now)
                .bind(run_id),
            RunWrite::SkipStep { step, now } => Statement::new("UPDATE run_steps SET status = 'skipped', started_at = $1, finished_at = $2 WHERE run_id = $3 AND step_id = $4")
                .bind(now)
                .bind(now)
                .bind(run_id)
                .bind(step),
            RunWrite::StartAttempt { step, attempt, input, now } => Statement::new("UPDATE run_steps SET status = 'running', attempts = $1, input = $2, started_at = COALESCE(started_at, $3) WHERE run_id = $4 AND step_id = $5")
                .bind(attempt)
                .bind(input)
                .bind(now)
                .bind(run_id)
                .bind(step),
            RunWrite::Xref { flow, xref, now } => Statement::new(crate::governance::UPSERT_XREF)
                .bind(xref.entity)
                .bind(xref.key)
                .bind(xref.system)
                .bind(xref.id)
                .bind(run_id.to_string())
                .bind(flow.to_string())
                .bind("run")
                .bind(now),
            RunWrite::CompleteStep { step, output, now } => Statement::new("UPDATE run_steps SET status = 'completed', output = $1, finished_at = $2 WHERE run_id = $3 AND step_id = $4")
                .bind(output)
                .bind(now)
                .bind(run_id)
                .bind(step),
        };
        batch.then(statement)
    }
}

/// Makes a step pending again: attempts, errors, run, step.
const PEND_STEP: &str = "UPDATE run_steps SET status = 'pending', attempts = $1, errors = $2 WHERE run_id = $3 AND step_id = $4";

/// Makes `step` of run `run_id` pending again inside `tx`, with
/// `attempts` calls made and `errors` (a JSON array).
pub(crate) async fn pend_step(
    tx: &mut Transaction,
    run_id: &str,
    step: &str,
    attempts: i64,
    errors: &str,
) -> Result<()> {
    sqlx::query(PEND_STEP)
        .bind(attempts)
        .bind(errors)
        .bind(run_id)
        .bind(step)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// The claim batch: leases the runnable run that is due first at `now`
    /// to `worker` until `lease_until`; its fence returns the run's id. A
    /// run is runnable when active, due, and not leased (or its lease expired).
    pub fn claim_batch(&self, worker: &str, lease_until: i64, now: i64) -> Batch {
        let sql = match self.backend() {
            Backend::Sqlite => claim_sql!(""),
            Backend::Postgres => claim_sql!(" FOR UPDATE SKIP LOCKED"),
        };
        Batch::new(Statement::new(sql).bind(worker).bind(lease_until).bind(now))
    }

    /// A batch of `writes` fenced by `fence`.
    pub fn fenced_batch<'a>(
        &self,
        fence: &Fence<'_>,
        writes: impl IntoIterator<Item = RunWrite<'a>>,
    ) -> Batch {
        let run_id = fence.run_id;
        let fence_statement = match fence.renew_until {
            Some(until) => Statement::new(
                "UPDATE runs SET updated_at = $1, lease_until = $2 WHERE id = $3 AND lease_owner = $4 RETURNING id",
            )
            .bind(fence.now)
            .bind(until),
            None => Statement::new(
                "UPDATE runs SET updated_at = $1 WHERE id = $2 AND lease_owner = $3 RETURNING id",
            )
            .bind(fence.now),
        }
        .bind(run_id)
        .bind(fence.worker);
        writes
            .into_iter()
            .fold(Batch::new(fence_statement), |batch, w| {
                w.add_to(batch, run_id)
            })
    }

    /// Run `run_id` as a worker needs it.
    pub async fn run_state(&self, run_id: &str) -> Result<Option<RunStateRow>> {
        let row = sqlx::query(
            "SELECT flow, flow_version, status, trigger_event, failed_step, traceparent, created_at FROM runs WHERE id = $1",
        )
        .bind(run_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| RunStateRow {
            flow: r.get(0),
            flow_version: r.get(1),
            status: r.get(2),
            trigger: r.get(3),
            failed_step: r.get(4),
            traceparent: r.get(5),
            created_at: r.get(6),
        }))
    }

    /// The steps of run `run_id` as a worker needs them, in flow order.
    pub async fn run_step_states(&self, run_id: &str) -> Result<Vec<StepStateRow>> {
        let rows = sqlx::query(
            "SELECT step_id, position, status, attempts, compensation_attempts, errors, input, input_override, output, idempotency_key, finished_at FROM run_steps WHERE run_id = $1 ORDER BY position",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| StepStateRow {
                id: r.get(0),
                position: r.get(1),
                status: r.get(2),
                attempts: r.get(3),
                compensation_attempts: r.get(4),
                errors: r.get(5),
                input: r.get(6),
                input_override: r.get(7),
                output: r.get(8),
                idempotency_key: r.get(9),
                finished_at: r.get(10),
            })
            .collect())
    }

    /// Begins a transaction fenced by `fence`: `None` when the worker no
    /// longer holds the lease (and nothing changed).
    pub(crate) async fn begin_fenced(&self, fence: &Fence<'_>) -> Result<Option<Transaction>> {
        let mut tx = self.begin().await?;
        let fenced = match fence.renew_until {
            Some(until) => sqlx::query(
                "UPDATE runs SET updated_at = $1, lease_until = $2 WHERE id = $3 AND lease_owner = $4",
            )
            .bind(fence.now)
            .bind(until),
            None => sqlx::query("UPDATE runs SET updated_at = $1 WHERE id = $2 AND lease_owner = $3")
                .bind(fence.now),
        }
        .bind(fence.run_id)
        .bind(fence.worker)
        .execute(&mut *tx)
        .await?;
        Ok((fenced.rows_affected() == 1).then_some(tx))
    }

    /// A failed attempt `attempt` of `step` is retried at `next_at`: the
    /// step is pending with `errors` (a JSON array) and the lease released.
    /// Returns whether the fence held (false: nothing changed).
    pub async fn retry_step(
        &self,
        fence: &Fence<'_>,
        step: &str,
        attempt: i64,
        errors: &str,
        next_at: i64,
    ) -> Result<bool> {
        let Some(mut tx) = self.begin_fenced(fence).await? else {
            return Ok(false);
        };
        let run_id = fence.run_id;
        pend_step(&mut tx, run_id, step, attempt, errors).await?;
        sqlx::query(
            "UPDATE runs SET next_at = $1, lease_owner = NULL, lease_until = NULL WHERE id = $2",
        )
        .bind(next_at)
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// `step` failed for good at attempt `attempt` with `errors` (a JSON
    /// array) and `message`; then the run compensates or is dead-lettered,
    /// as `then` says. Returns whether the fence held (false: nothing changed).
    pub async fn fail_step(
        &self,
        fence: &Fence<'_>,
        step: &str,
        attempt: i64,
        errors: &str,
        message: &str,
        then: &AfterFailure<'_>,
    ) -> Result<bool> {
        let Some(mut tx) = self.begin_fenced(fence).await? else {
            return Ok(false);
        };
        let (run_id, now) = (fence.run_id, fence.now);
        sqlx::query("UPDATE run_steps SET status = 'failed', attempts = $1, errors = $2, finished_at = $3 WHERE run_id = $4 AND step_id = $5")
            .bind(attempt)
            .bind(errors)
            .bind(now)
            .bind(run_id)
            .bind(step)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE runs SET error = $1, failed_step = $2, updated_at = $3, waiting_for = NULL WHERE id = $4")
            .bind(message)
            .bind(step)
            .bind(now)
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        match then {
            AfterFailure::Compensate => {
                sqlx::query("UPDATE runs SET status = 'compensating', next_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(run_id)
                    .execute(&mut *tx)
                    .await?;
            }
            AfterFailure::DeadLetter(letter) => dead_letter_run(&mut tx, run_id, letter).await?,
        }
        tx.commit().await?;
        self.events_written.notify_one();
        Ok(true)
    }

    /// The saga ended: the run ends and is dead-lettered as `letter` says.
    /// Returns whether the fence held (false: nothing changed).
    pub async fn finish_saga(&self, fence: &Fence<'_>, letter: &NewDeadLetter<'_>) -> Result<bool> {
        let Some(mut tx) = self.begin_fenced(fence).await? else {
            return Ok(false);
        };
        dead_letter_run(&mut tx, fence.run_id, letter).await?;
        tx.commit().await?;
        self.events_written.notify_one();
        Ok(true)
    }

    /// Compensation attempt `attempt` of `step` starts, recorded before the
    /// call is made. Returns whether the fence held (false: nothing changed).
    pub async fn start_compensation(
        &self,
        fence: &Fence<'_>,
        step: &str,
        attempt: i64,
    ) -> Result<bool> {
        let Some(mut tx) = self.begin_fenced(fence).await? else {
            return Ok(false);
        };
        sqlx::query("UPDATE run_steps SET status = 'compensating', compensation_attempts = $1 WHERE run_id = $2 AND step_id = $3")
            .bind(attempt)
            .bind(fence.run_id)
            .bind(step)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// `step` was compensated (at the fence's `now`). Returns whether the
    /// fence held (false: nothing changed).
    pub async fn step_compensated(&self, fence: &Fence<'_>, step: &str) -> Result<bool> {
        let Some(mut tx) = self.begin_fenced(fence).await? else {
            return Ok(false);
        };
        sqlx::query("UPDATE run_steps SET status = 'compensated', compensated_at = $1 WHERE run_id = $2 AND step_id = $3")
            .bind(fence.now)
            .bind(fence.run_id)
            .bind(step)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A compensation attempt of `step` failed: the step gets `status`
    /// (`compensating` to retry, `compensation_failed`) and `errors` (a JSON
    /// array); with `retry_at`, the run is due again then and its lease
    /// released. Returns whether the fence held (false: nothing changed).
    pub async fn compensation_failed(
        &self,
        fence: &Fence<'_>,
        step: &str,
        status: &str,
        errors: &str,
        retry_at: Option<i64>,
    ) -> Result<bool> {
        let Some(mut tx) = self.begin_fenced(fence).await? else {
            return Ok(false);
        };
        let run_id = fence.run_id;
        sqlx::query(
            "UPDATE run_steps SET status = $1, errors = $2 WHERE run_id = $3 AND step_id = $4",
        )
        .bind(status)
        .bind(errors)
        .bind(run_id)
        .bind(step)
        .execute(&mut *tx)
        .await?;
        if let Some(next_at) = retry_at {
            sqlx::query("UPDATE runs SET next_at = $1, lease_owner = NULL, lease_until = NULL WHERE id = $2")
                .bind(next_at)
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}
