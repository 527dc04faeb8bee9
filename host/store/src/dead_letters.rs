//! Dead letters: runs that failed for good, kept with the step that failed
//! until they are replayed or discarded.

use sqlx::Row;

use crate::events::{CloudEvent, insert_event, types};
use crate::{Result, Store, Transaction, now_ms};

/// A dead letter as stored (JSON as text, time in ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterRow {
    /// Id.
    pub id: String,
    /// The run.
    pub run_id: String,
    /// Its flow.
    pub flow: String,
    /// The step that failed for good.
    pub step: String,
    /// Its attempts.
    pub attempts: i64,
    /// Every error of that step, then those of failed compensations (a JSON array).
    pub errors: String,
    /// The input that failed.
    pub input: Option<String>,
    /// Created.
    pub created_at: i64,
}

/// How a run ends when it is dead-lettered, and the dead letter it leaves.
#[derive(Debug, Clone)]
pub struct NewDeadLetter<'a> {
    /// The dead letter's id.
    pub id: String,
    /// The run's final status: `failed` or `compensated`.
    pub status: &'a str,
    /// The step that failed for good.
    pub step: &'a str,
    /// Its attempts.
    pub attempts: i64,
    /// Its errors, then those of failed compensations (a JSON array).
    pub errors: String,
    /// The input that failed (JSON text).
    pub input: Option<String>,
}

/// What [`Store::replay_dead_letter`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayOutcome {
    /// The run is pending again from the failed step; the dead letter is gone.
    Replayed {
        /// The run.
        run_id: String,
        /// The step that failed.
        step_id: String,
    },
    /// No such dead letter.
    NotFound,
    /// The dead letter's run is not failed or compensated; nothing changed.
    NotReplayable {
        /// The run.
        run_id: String,
    },
}

/// How a person handled a dead-lettered run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TouchKind {
    /// Replayed as it was.
    Replay,
    /// Replayed with a corrected input for the failed step.
    InputCorrected,
    /// Discarded.
    Discard,
}

impl TouchKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [TouchKind; 3] = [
        TouchKind::Replay,
        TouchKind::InputCorrected,
        TouchKind::Discard,
    ];

    /// `replay`, `input_corrected` or `discard`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            TouchKind::Replay => "replay",
            TouchKind::InputCorrected => "input_corrected",
            TouchKind::Discard => "discard",
        }
    }

    /// The kind stored as `text`.
    pub fn parse(text: &str) -> Option<TouchKind> {
        TouchKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// Records inside `tx` that `actor` handled dead letter `dead_letter` of run `run_id`.
async fn insert_touch(
    tx: &mut Transaction,
    run_id: &str,
    kind: TouchKind,
    actor: &str,
    dead_letter: &str,
    at: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO run_touches (run_id, kind, actor, dead_letter, at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(run_id)
    .bind(kind.as_str())
    .bind(actor)
    .bind(dead_letter)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Ends run `run_id` as `letter.status` and inserts its dead letter, inside `tx`.
pub(crate) async fn dead_letter_run(
    tx: &mut Transaction,
    run_id: &str,
    letter: &NewDeadLetter<'_>,
) -> Result<()> {
    let now = now_ms();
    let flow: String = sqlx::query_scalar("SELECT flow FROM runs WHERE id = $1")
        .bind(run_id)
        .fetch_one(&mut **tx)
        .await?;
    sqlx::query("UPDATE runs SET status = $1, finished_at = $2, updated_at = $3, lease_owner = NULL, lease_until = NULL WHERE id = $4")
        .bind(letter.status)
        .bind(now)
        .bind(now)
        .bind(run_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("INSERT INTO dead_letters (id, run_id, flow, step_id, attempts, errors, input, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(letter.id.as_str())
        .bind(run_id)
        .bind(flow.as_str())
        .bind(letter.step)
        .bind(letter.attempts)
        .bind(letter.errors.as_str())
        .bind(letter.input.as_deref())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    let ended = if letter.status == "compensated" {
        types::RUN_COMPENSATED
    } else {
        types::RUN_FAILED
    };
    let last_error = serde_json::from_str::<Vec<serde_json::Value>>(&letter.errors)
        .ok()
        .and_then(|mut errors| errors.pop())
        .unwrap_or(serde_json::Value::Null);
    let data = serde_json::json!({
        "run": run_id,
        "flow": flow,
        "status": letter.status,
        "failed_step": letter.step,
        "attempts": letter.attempts,
        "error": last_error,
    });
    insert_event(tx, &CloudEvent::of_run(ended, &flow, run_id, data)).await?;
    let data = serde_json::json!({
        "dead_letter": letter.id,
        "run": run_id,
        "flow": flow,
        "step": letter.step,
    });
    let letter_event = CloudEvent::of_run(types::RUN_DEAD_LETTERED, &flow, run_id, data);
    insert_event(tx, &letter_event).await
}

/// The open dead letters of one flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterSummary {
    /// The flow.
    pub flow: String,
    /// How many dead letters it has open.
    pub open: i64,
    /// When the oldest of them was created (ms since the epoch).
    pub oldest_at: i64,
}

impl Store {
    /// The open dead letters per flow, by flow name: their count and the
    /// creation time of the oldest.
    pub async fn dead_letter_summary(&self) -> Result<Vec<DeadLetterSummary>> {
        let rows = sqlx::query(
            "SELECT flow, COUNT(*), MIN(created_at) FROM dead_letters GROUP BY flow ORDER BY flow",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| DeadLetterSummary {
                flow: r.get(0),
                open: r.get(1),
                oldest_at: r.get(2),
            })
            .collect())
    }

    /// Dead letters, newest first, of flow `flow` when given.
    pub async fn dead_letters(&self, flow: Option<&str>) -> Result<Vec<DeadLetterRow>> {
        let rows = sqlx::query(
            "SELECT id, run_id, flow, step_id, attempts, errors, input, created_at FROM dead_letters WHERE ($1 IS NULL OR flow = $2) ORDER BY created_at DESC, id",
        )
        .bind(flow)
        .bind(flow)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(dead_letter_row).collect())
    }

    /// Dead letter `id`, while it is open.
    pub async fn dead_letter(&self, id: &str) -> Result<Option<DeadLetterRow>> {
        let row = sqlx::query(
            "SELECT id, run_id, flow, step_id, attempts, errors, input, created_at FROM dead_letters WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(dead_letter_row))
    }

    /// Makes the run of dead letter `id` pending again from its failed step,
    /// in one transaction: steps that completed and were not undone (no
    /// compensation, or one that failed) stay completed, the others are
    /// reset; `input` (JSON text) replaces the failed step's input; the dead
    /// letter is removed; the replay is kept as a touch of the run by `by`
    /// (`input_corrected` with an input, else `replay`).
    pub async fn replay_dead_letter(
        &self,
        id: &str,
        input: Option<&str>,
        by: &str,
    ) -> Result<ReplayOutcome> {
        let mut tx = self.begin().await?;
        let Some(row) = sqlx::query("SELECT run_id, step_id FROM dead_letters WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(ReplayOutcome::NotFound);
        };
        let run_id: String = row.get(0);
        let step_id: String = row.get(1);
        let now = now_ms();
        // The run first, as every writer of runs and their steps does (on
        // PostgreSQL this row lock orders concurrent replays and workers).
        let updated = sqlx::query(
            "UPDATE runs SET status = 'pending', error = NULL, failed_step = NULL, finished_at = NULL, next_at = $1, updated_at = $2, lease_owner = NULL, lease_until = NULL WHERE id = $3 AND status IN ('failed', 'compensated')",
        )
        .bind(now)
        .bind(now)
        .bind(&run_id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(ReplayOutcome::NotReplayable { run_id });
        }
        // A step whose compensation failed still has its effect: it stays done.
        sqlx::query(
            "UPDATE run_steps SET status = 'completed' WHERE run_id = $1 AND status = 'compensation_failed'",
        )
        .bind(&run_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE run_steps SET status = 'pending', attempts = 0, compensation_attempts = 0, output = NULL, finished_at = NULL, compensated_at = NULL WHERE run_id = $1 AND status NOT IN ('completed', 'skipped')",
        )
        .bind(&run_id)
        .execute(&mut *tx)
        .await?;
        if let Some(input) = input {
            sqlx::query(
                "UPDATE run_steps SET input_override = $1 WHERE run_id = $2 AND step_id = $3",
            )
            .bind(input)
            .bind(&run_id)
            .bind(&step_id)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM dead_letters WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let kind = if input.is_some() {
            TouchKind::InputCorrected
        } else {
            TouchKind::Replay
        };
        insert_touch(&mut tx, &run_id, kind, by, id, now).await?;
        tx.commit().await?;
        Ok(ReplayOutcome::Replayed { run_id, step_id })
    }

    /// Removes dead letter `id`, leaving its run as it ended, and keeps the
    /// discard as a touch of the run by `by`; returns the run, or `None`
    /// when there is no such dead letter.
    pub async fn discard_dead_letter(&self, id: &str, by: &str) -> Result<Option<String>> {
        let mut tx = self.begin().await?;
        let Some(row) = sqlx::query("SELECT run_id FROM dead_letters WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let run_id: String = row.get(0);
        sqlx::query("DELETE FROM dead_letters WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        insert_touch(&mut tx, &run_id, TouchKind::Discard, by, id, now_ms()).await?;
        tx.commit().await?;
        Ok(Some(run_id))
    }
}

fn dead_letter_row(r: &sqlx::any::AnyRow) -> DeadLetterRow {
    DeadLetterRow {
        id: r.get(0),
        run_id: r.get(1),
        flow: r.get(2),
        step: r.get(3),
        attempts: r.get(4),
        errors: r.get(5),
        input: r.get(6),
        created_at: r.get(7),
    }
}
