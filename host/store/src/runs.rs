//! Runs of flows and their steps: starting them (by hand, by a webhook
//! event at most once per event and flow) and reading them.

use sqlx::Row;

use crate::events::{CloudEvent, insert_event, types};
use crate::{Result, Store, Transaction, now_ms};

/// A step of a run to insert.
#[derive(Debug, Clone)]
pub struct NewStep<'a> {
    /// Step id.
    pub id: &'a str,
    /// Passed to the connector on every attempt.
    pub idempotency_key: String,
}

/// A pending run to insert, with its steps in flow order.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    /// Run id.
    pub id: &'a str,
    /// Flow name.
    pub flow: &'a str,
    /// The flow version it runs.
    pub version: i64,
    /// The trigger event (JSON text).
    pub trigger: &'a str,
    /// The W3C `traceparent` of its business transaction.
    pub traceparent: Option<&'a str>,
    /// Its steps, in flow order.
    pub steps: Vec<NewStep<'a>>,
}

/// A run that a webhook event starts, unless the event started one of its
/// flow before.
#[derive(Debug, Clone)]
pub struct NewEventRun<'a> {
    /// The run.
    pub run: NewRun<'a>,
    /// The event's source.
    pub source: &'a str,
    /// The event's id.
    pub event_id: &'a str,
}

/// What [`Store::start_event_runs`] did with one event run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedEventRun {
    /// The run: the new one, or the one the event started before.
    pub run: String,
    /// The event was delivered before; `run` is the run it started then.
    pub duplicate: bool,
}

/// A run as stored (times in ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    /// Run id.
    pub id: String,
    /// Flow name.
    pub flow: String,
    /// The flow version it runs.
    pub flow_version: i64,
    /// `pending`, `running`, `compensating`, `completed`, `compensated` or `failed`.
    pub status: String,
    /// The trigger event (JSON text).
    pub trigger: String,
    /// Why it failed.
    pub error: Option<String>,
    /// The step that failed for good.
    pub failed_step: Option<String>,
    /// Created.
    pub created_at: i64,
    /// Last changed.
    pub updated_at: i64,
    /// Ended, once terminal.
    pub finished_at: Option<i64>,
    /// The W3C `traceparent` of its business transaction.
    pub traceparent: Option<String>,
    /// The connection whose open circuit it waits for, if parked.
    pub parked_on: Option<String>,
    /// The signal it waits for, if it does.
    pub waiting_for: Option<String>,
    /// When it is due (ms since the epoch): for a waiting run, its deadline.
    pub next_at: i64,
}

/// A step of a run as stored (JSON as text, times in ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRow {
    /// Step id.
    pub id: String,
    /// Its status.
    pub status: String,
    /// Calls made (in this replay).
    pub attempts: i64,
    /// Compensation calls made.
    pub compensation_attempts: i64,
    /// Every error, oldest first (a JSON array).
    pub errors: String,
    /// The input of the last attempt.
    pub input: Option<String>,
    /// The output, once completed.
    pub output: Option<String>,
    /// Passed to the connector on every attempt.
    pub idempotency_key: String,
    /// The first attempt.
    pub started_at: Option<i64>,
    /// Completed or failed for good.
    pub finished_at: Option<i64>,
    /// Its compensation completed.
    pub compensated_at: Option<i64>,
}

/// Inserts a pending run and its steps inside `tx`, with its
/// `run.started` event.
pub(crate) async fn insert_run(tx: &mut Transaction, run: &NewRun<'_>) -> Result<()> {
    insert_run_rows(tx, run).await?;
    insert_event(tx, &started_event(run)).await
}

/// The `run.started` event of `run`.
fn started_event(run: &NewRun<'_>) -> CloudEvent {
    let data = serde_json::json!({"run": run.id, "flow": run.flow, "flow_version": run.version});
    CloudEvent::of_run(types::RUN_STARTED, run.flow, run.id, data)
}

/// Inserts a pending run and its steps inside `tx`, without an event.
async fn insert_run_rows(tx: &mut Transaction, run: &NewRun<'_>) -> Result<()> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO runs (id, flow, flow_version, status, trigger_event, created_at, updated_at, next_at, traceparent) VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $8)",
    )
    .bind(run.id)
    .bind(run.flow)
    .bind(run.version)
    .bind(run.trigger)
    .bind(now)
    .bind(now)
    .bind(now)
    .bind(run.traceparent)
    .execute(&mut **tx)
    .await?;
    for (position, step) in run.steps.iter().enumerate() {
        sqlx::query(
            "INSERT INTO run_steps (run_id, step_id, position, status, idempotency_key) VALUES ($1, $2, $3, 'pending', $4)",
        )
        .bind(run.id)
        .bind(step.id)
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .bind(step.idempotency_key.as_str())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl Store {
    /// Inserts `run` and its steps, committed before this returns.
    pub async fn start_run(&self, run: &NewRun<'_>) -> Result<()> {
        let mut tx = self.begin().await?;
        insert_run(&mut tx, run).await?;
        tx.commit().await?;
        self.events_written.notify_one();
        Ok(())
    }

    /// Writes the `delivered` events to the outbox (once per source and
    /// id) and inserts each of `runs` unless its event started a run of its
    /// flow before (then the earlier run is answered), all in one
    /// transaction; `received_at` is when the events arrived. One answer per
    /// run, in order.
    pub async fn start_event_runs(
        &self,
        delivered: &[CloudEvent],
        runs: &[NewEventRun<'_>],
        received_at: i64,
    ) -> Result<Vec<StartedEventRun>> {
        let mut started = Vec::with_capacity(runs.len());
        let mut tx = self.begin().await?;
        for event in delivered {
            insert_event(&mut tx, event).await?;
        }
        for new in runs {
            let (run_id, flow) = (new.run.id, new.run.flow);
            // The run goes in first: flow_events references it.
            insert_run_rows(&mut tx, &new.run).await?;
            let inserted = sqlx::query(
                "INSERT INTO flow_events (source, event_id, flow, run_id, received_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(new.source)
            .bind(new.event_id)
            .bind(flow)
            .bind(run_id)
            .bind(received_at)
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 1 {
                insert_event(&mut tx, &started_event(&new.run)).await?;
                started.push(StartedEventRun {
                    run: run_id.to_string(),
                    duplicate: false,
                });
                continue;
            }
            // Seen before: take back the run just inserted.
            sqlx::query("DELETE FROM run_steps WHERE run_id = $1")
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM runs WHERE id = $1")
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
            let existing: String = sqlx::query_scalar(
                "SELECT run_id FROM flow_events WHERE source = $1 AND event_id = $2 AND flow = $3",
            )
            .bind(new.source)
            .bind(new.event_id)
            .bind(flow)
            .fetch_one(&mut *tx)
            .await?;
            started.push(StartedEventRun {
                run: existing,
                duplicate: true,
            });
        }
        tx.commit().await?;
        self.events_written.notify_one();
        Ok(started)
    }

    /// Runs, newest first, of flow `flow` and in status `status` when given.
    pub async fn runs(
        &self,
        flow: Option<&str>,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunRow>> {
        self.runs_created(flow, status, None, None, limit).await
    }

    /// As [`runs`](Self::runs), of those created at or after `since` and
    /// before `until` (ms since the epoch) when given.
    pub async fn runs_created(
        &self,
        flow: Option<&str>,
        status: Option<&str>,
        since: Option<i64>,
        until: Option<i64>,
        limit: u32,
    ) -> Result<Vec<RunRow>> {
        let rows = sqlx::query(
            "SELECT id, flow, flow_version, status, trigger_event, error, failed_step, created_at, updated_at, finished_at, traceparent, parked_on, waiting_for, next_at FROM runs WHERE ($1 IS NULL OR flow = $2) AND ($3 IS NULL OR status = $4) AND ($5 IS NULL OR created_at >= $6) AND ($7 IS NULL OR created_at < $8) ORDER BY created_at DESC, id LIMIT $9",
        )
        .bind(flow)
        .bind(flow)
        .bind(status)
        .bind(status)
        .bind(since)
        .bind(since)
        .bind(until)
        .bind(until)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(run_from_row).collect())
    }

    /// Run `id`.
    pub async fn run(&self, id: &str) -> Result<Option<RunRow>> {
        let row = sqlx::query(
            "SELECT id, flow, flow_version, status, trigger_event, error, failed_step, created_at, updated_at, finished_at, traceparent, parked_on, waiting_for, next_at FROM runs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(run_from_row))
    }

    /// The steps of run `id`, in flow order.
    pub async fn run_steps(&self, id: &str) -> Result<Vec<StepRow>> {
        let steps = sqlx::query(
            "SELECT step_id, status, attempts, compensation_attempts, errors, input, output, idempotency_key, started_at, finished_at, compensated_at FROM run_steps WHERE run_id = $1 ORDER BY position",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        Ok(steps
            .iter()
            .map(|r| StepRow {
                id: r.get(0),
                status: r.get(1),
                attempts: r.get(2),
                compensation_attempts: r.get(3),
                errors: r.get(4),
                input: r.get(5),
                output: r.get(6),
                idempotency_key: r.get(7),
                started_at: r.get(8),
                finished_at: r.get(9),
                compensated_at: r.get(10),
            })
            .collect())
    }

    /// When the first active run is due, or its lease expires when that is
    /// later, if any run is active.
    pub async fn next_run_at(&self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > next_at THEN lease_until ELSE next_at END) FROM runs WHERE status IN ('pending', 'running', 'compensating')",
        )
        .fetch_one(self.pool())
        .await?)
    }
}

fn run_from_row(r: &sqlx::any::AnyRow) -> RunRow {
    RunRow {
        id: r.get(0),
        flow: r.get(1),
        flow_version: r.get(2),
        status: r.get(3),
        trigger: r.get(4),
        error: r.get(5),
        failed_step: r.get(6),
        created_at: r.get(7),
        updated_at: r.get(8),
        finished_at: r.get(9),
        traceparent: r.get(10),
        parked_on: r.get(11),
        waiting_for: r.get(12),
        next_at: r.get(13),
    }
}
