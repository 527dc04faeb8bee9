//! Steps that wait for a signal (an approval, a confirmation): the run is
//! parked durably, holding no lease and no worker, until a signal of the
//! name it waits for arrives or its deadline passes. Each signal is kept
//! with who sent it and when.

use sqlx::Row;

use crate::events::{CloudEvent, insert_event};
use crate::work::Fence;
use crate::{Backend, Result, Store};

/// The `next_at` of a run that waits without a deadline.
const NO_DEADLINE: i64 = i64::MAX;

/// A signal to a waiting run.
#[derive(Debug, Clone)]
pub struct NewSignal<'a> {
    /// The signal's name; the run must be waiting for it.
    pub name: &'a str,
    /// `approve` or `reject`.
    pub decision: &'a str,
    /// Free text.
    pub comment: Option<&'a str>,
    /// Optional data for the steps after it (JSON).
    pub data: Option<&'a serde_json::Value>,
    /// Who sent it (the API token's name).
    pub actor: &'a str,
}

/// What [`Store::signal_run`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalOutcome {
    /// Recorded; the run is due again.
    Recorded {
        /// The signal's id.
        id: String,
        /// The step that waited.
        step: String,
        /// The run's flow.
        flow: String,
    },
    /// No such run.
    NotFound,
    /// The run does not wait for this signal now.
    NotWaiting {
        /// Its status.
        status: String,
        /// The signal it does wait for, if any.
        waiting_for: Option<String>,
    },
}

/// A signal as stored (time in ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalRow {
    /// Id.
    pub id: String,
    /// The step that waited for it.
    pub step_id: String,
    /// Its name.
    pub name: String,
    /// `approve` or `reject`.
    pub decision: String,
    /// Free text.
    pub comment: Option<String>,
    /// Data (JSON text).
    pub data: Option<String>,
    /// Who sent it.
    pub actor: String,
    /// When.
    pub at: i64,
    /// When a worker moved the run on with it.
    pub consumed_at: Option<i64>,
}

fn signal_row(r: &sqlx::any::AnyRow) -> Result<SignalRow> {
    Ok(SignalRow {
        id: r.try_get("id")?,
        step_id: r.try_get("step_id")?,
        name: r.try_get("name")?,
        decision: r.try_get("decision")?,
        comment: r.try_get("comment")?,
        data: r.try_get("data")?,
        actor: r.try_get("actor")?,
        at: r.try_get("at")?,
        consumed_at: r.try_get("consumed_at")?,
    })
}

impl Store {
    /// The run `fence` holds starts waiting at step `step` for signal
    /// `signal` until `deadline` (ms since the epoch; none: no deadline),
    /// and `event` (its `approval.requested`) goes to the outbox. The lease
    /// is released. Returns whether the fence held (false: nothing changed).
    pub async fn start_wait(
        &self,
        fence: &Fence<'_>,
        step: &str,
        signal: &str,
        deadline: Option<i64>,
        event: &CloudEvent,
    ) -> Result<bool> {
        let Some(mut tx) = self.begin_fenced(fence).await? else {
            return Ok(false);
        };
        let run_id = fence.run_id;
        sqlx::query("UPDATE run_steps SET status = 'waiting', started_at = COALESCE(started_at, $1) WHERE run_id = $2 AND step_id = $3")
            .bind(fence.now)
            .bind(run_id)
            .bind(step)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE runs SET waiting_for = $1, next_at = $2, lease_owner = NULL, lease_until = NULL WHERE id = $3",
        )
        .bind(signal)
        .bind(deadline.unwrap_or(NO_DEADLINE))
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        // A signal left from an earlier wait of the step (before a replay)
        // decides nothing now.
        sqlx::query("UPDATE run_signals SET consumed_at = $1 WHERE run_id = $2 AND step_id = $3 AND consumed_at IS NULL")
            .bind(fence.now)
            .bind(run_id)
            .bind(step)
            .execute(&mut *tx)
            .await?;
        insert_event(&mut tx, event).await?;
        tx.commit().await?;
        self.events_written.notify_one();
        Ok(true)
    }

    /// Records `signal` for run `run_id` if it waits for it now (and no
    /// worker holds it), makes the run due at `now`, and writes `event`
    /// (its `approval.decided`, built by `event_of` from the flow and
    /// step) to the outbox, all in one transaction.
    pub async fn signal_run(
        &self,
        run_id: &str,
        signal: &NewSignal<'_>,
        now: i64,
        event_of: impl FnOnce(&str, &str) -> CloudEvent,
    ) -> Result<SignalOutcome> {
        let mut tx = self.begin().await?;
        let sql = match self.backend() {
            Backend::Sqlite => {
                "SELECT status, waiting_for, lease_until, flow FROM runs WHERE id = $1"
            }
            Backend::Postgres => {
                "SELECT status, waiting_for, lease_until, flow FROM runs WHERE id = $1 FOR UPDATE"
            }
        };
        let Some(row) = sqlx::query(sql)
            .bind(run_id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(SignalOutcome::NotFound);
        };
        let status: String = row.try_get("status")?;
        let waiting_for: Option<String> = row.try_get("waiting_for")?;
        let leased = row
            .try_get::<Option<i64>, _>("lease_until")?
            .is_some_and(|until| until >= now);
        if status != "running" || waiting_for.as_deref() != Some(signal.name) || leased {
            return Ok(SignalOutcome::NotWaiting {
                status,
                waiting_for: waiting_for.filter(|_| !leased),
            });
        }
        let flow: String = row.try_get("flow")?;
        let step: String = sqlx::query_scalar(
            "SELECT step_id FROM run_steps WHERE run_id = $1 AND status = 'waiting' ORDER BY position LIMIT 1",
        )
        .bind(run_id)
        .fetch_one(&mut *tx)
        .await?;
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO run_signals (id, run_id, step_id, name, decision, comment, data, actor, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id.as_str())
        .bind(run_id)
        .bind(step.as_str())
        .bind(signal.name)
        .bind(signal.decision)
        .bind(signal.comment)
        .bind(signal.data.map(serde_json::Value::to_string))
        .bind(signal.actor)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE runs SET waiting_for = NULL, next_at = $1, updated_at = $2 WHERE id = $3",
        )
        .bind(now)
        .bind(now)
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        insert_event(&mut tx, &event_of(&flow, &step)).await?;
        tx.commit().await?;
        self.events_written.notify_one();
        Ok(SignalOutcome::Recorded { id, step, flow })
    }

    /// The signal step `step` of run `run_id` received and no worker has
    /// acted on yet, if any.
    pub async fn pending_signal(&self, run_id: &str, step: &str) -> Result<Option<SignalRow>> {
        sqlx::query(
            "SELECT id, step_id, name, decision, comment, data, actor, at, consumed_at FROM run_signals \
             WHERE run_id = $1 AND step_id = $2 AND consumed_at IS NULL ORDER BY at LIMIT 1",
        )
            .bind(run_id)
            .bind(step)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(signal_row)
            .transpose()
    }

    /// Every signal run `run_id` received, oldest first.
    pub async fn run_signals(&self, run_id: &str) -> Result<Vec<SignalRow>> {
        sqlx::query(
            "SELECT id, step_id, name, decision, comment, data, actor, at, consumed_at FROM run_signals \
             WHERE run_id = $1 ORDER BY at, id",
        )
            .bind(run_id)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(signal_row)
            .collect()
    }
}
