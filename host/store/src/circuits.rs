//! The circuit breaker of each connection, shared by the hosts of a
//! database, and the runs parked on an open circuit.
//!
//! A circuit is `closed` (steps are attempted), `open` (steps on the
//! connection are parked, not attempted: no request reaches a system that
//! is down, and no run burns its retries into the dead-letter queue) or
//! `half_open` (one host is probing it with the connector's `check`).
//! Closing it makes every run parked on it due again at the time it was
//! parked, so they resume in the order they arrived.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::events::{CloudEvent, insert_event};
use crate::work::{Fence, pend_step};
use crate::{Backend, Result, Store, Transaction};

/// The `next_at` of a parked run: never due until its circuit closes.
const PARKED: i64 = i64::MAX;

/// When a connection's circuit opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CircuitSettings {
    /// Consecutive `unavailable` errors or timeouts that open the circuit.
    pub failures: u32,
    /// ...within this window, in ms (from the first of them).
    pub window_ms: u64,
    /// How long the circuit stays open before a probe, in ms.
    pub cool_down_ms: u64,
}

impl Default for CircuitSettings {
    fn default() -> Self {
        CircuitSettings {
            failures: 5,
            window_ms: 60_000,
            cool_down_ms: 30_000,
        }
    }
}

impl CircuitSettings {
    /// Checks what serde cannot.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.failures == 0 || self.window_ms == 0 || self.cool_down_ms == 0 {
            return Err("circuit: failures, window_ms and cool_down_ms must be at least 1".into());
        }
        Ok(())
    }
}

/// A circuit as stored (times in ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitRow {
    /// The connection.
    pub connection: String,
    /// `closed`, `open` or `half_open`.
    pub state: String,
    /// Consecutive failures counted in the current window.
    pub failures: i64,
    /// When it opened, while it is not closed.
    pub opened_at: Option<i64>,
    /// While open: when the next probe is due (none when opened by hand).
    pub probe_at: Option<i64>,
    /// Opened by hand: stays open until closed by hand.
    pub manual: bool,
    /// Why it last changed.
    pub reason: Option<String>,
    /// Last change.
    pub updated_at: i64,
    /// Runs parked on it now.
    pub parked: i64,
}

/// What a failure did to a circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Still closed, with this many consecutive failures.
    Counted(i64),
    /// This failure opened it.
    Opened,
    /// It was open (or being probed) already.
    AlreadyOpen,
}

fn circuit_event(kind: &str, connection: &str, data: serde_json::Value) -> CloudEvent {
    let event_type = format!("dev.junction.circuit.{kind}");
    CloudEvent::of_host(
        format!("/connections/{connection}"),
        &event_type,
        connection,
        data,
    )
}

/// Makes sure `connection` has a circuit row and locks it (PostgreSQL;
/// SQLite's writer lock already serialises). Returns its state,
/// consecutive failures and window start.
async fn lock_circuit(
    tx: &mut Transaction,
    backend: Backend,
    connection: &str,
    now: i64,
) -> Result<(String, i64, i64)> {
    sqlx::query(
        "INSERT INTO circuits (connection, state, failures, window_start, updated_at) \
         VALUES ($1, 'closed', 0, $2, $3) ON CONFLICT (connection) DO NOTHING",
    )
    .bind(connection)
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT state, failures, window_start FROM circuits WHERE connection = $1"
        }
        Backend::Postgres => {
            "SELECT state, failures, window_start FROM circuits WHERE connection = $1 FOR UPDATE"
        }
    };
    let row = sqlx::query(sql)
        .bind(connection)
        .fetch_one(&mut **tx)
        .await?;
    Ok((
        row.try_get("state")?,
        row.try_get("failures")?,
        row.try_get("window_start")?,
    ))
}

/// Opens the circuit of `connection` inside `tx` (the row exists): probed
/// at `probe_at`, or only closed by hand when `None`.
async fn set_open(
    tx: &mut Transaction,
    connection: &str,
    now: i64,
    probe_at: Option<i64>,
    reason: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE circuits SET state = 'open', opened_at = COALESCE(opened_at, $1), probe_at = $2, \
         manual = $3, reason = $4, updated_at = $5 WHERE connection = $6",
    )
    .bind(now)
    .bind(probe_at)
    .bind(i64::from(probe_at.is_none()))
    .bind(reason)
    .bind(now)
    .bind(connection)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Counts an `unavailable` error or timeout of a call on `connection`
    /// at `now`; opens its circuit once `settings.failures` consecutive
    /// ones fall within `settings.window_ms`.
    pub async fn circuit_failure(
        &self,
        connection: &str,
        settings: &CircuitSettings,
        now: i64,
        reason: &str,
    ) -> Result<FailureOutcome> {
        let mut tx = self.begin().await?;
        let (state, failures, window_start) =
            lock_circuit(&mut tx, self.backend(), connection, now).await?;
        if state != "closed" {
            return Ok(FailureOutcome::AlreadyOpen);
        }
        let window = i64::try_from(settings.window_ms).unwrap_or(i64::MAX);
        let (failures, window_start) = if failures == 0 || now - window_start > window {
            (1, now)
        } else {
            (failures + 1, window_start)
        };
        sqlx::query(
            "UPDATE circuits SET failures = $1, window_start = $2, updated_at = $3 WHERE connection = $4",
        )
        .bind(failures)
        .bind(window_start)
        .bind(now)
        .bind(connection)
        .execute(&mut *tx)
        .await?;
        if failures < i64::from(settings.failures) {
            tx.commit().await?;
            return Ok(FailureOutcome::Counted(failures));
        }
        let cool_down = i64::try_from(settings.cool_down_ms).unwrap_or(i64::MAX / 2);
        let reason = format!("{failures} consecutive failures: {reason}");
        set_open(
            &mut tx,
            connection,
            now,
            Some(now.saturating_add(cool_down)),
            &reason,
        )
        .await?;
        let data = serde_json::json!({"connection": connection, "failures": failures, "reason": reason, "by": "junction"});
        insert_event(&mut tx, &circuit_event("opened", connection, data)).await?;
        tx.commit().await?;
        self.events_written.notify_one();
        Ok(FailureOutcome::Opened)
    }

    /// A call on `connection` succeeded: its streak of failures ends.
    pub async fn circuit_success(&self, connection: &str, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE circuits SET failures = 0, updated_at = $1 WHERE connection = $2 AND state = 'closed' AND failures > 0",
        )
        .bind(now)
        .bind(connection)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Opens the circuit of `connection` by hand (`actor` in its reason):
    /// it stays open, unprobed, until closed by hand. Returns whether it
    /// was closed before.
    pub async fn open_circuit(&self, connection: &str, actor: &str, now: i64) -> Result<bool> {
        let mut tx = self.begin().await?;
        let (state, ..) = lock_circuit(&mut tx, self.backend(), connection, now).await?;
        let reason = format!("opened by hand by {actor}");
        set_open(&mut tx, connection, now, None, &reason).await?;
        let was_closed = state == "closed";
        if was_closed {
            let data = serde_json::json!({"connection": connection, "reason": reason, "by": actor});
            insert_event(&mut tx, &circuit_event("opened", connection, data)).await?;
        }
        tx.commit().await?;
        self.events_written.notify_one();
        Ok(was_closed)
    }

    /// A probe of `connection` failed at `now`: open again until `probe_at`.
    pub async fn circuit_probe_failed(
        &self,
        connection: &str,
        now: i64,
        probe_at: i64,
        reason: &str,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE circuits SET state = 'open', probe_at = $1, reason = $2, updated_at = $3 \
             WHERE connection = $4 AND state = 'half_open'",
        )
        .bind(probe_at)
        .bind(format!("probe failed: {reason}"))
        .bind(now)
        .bind(connection)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Closes the circuit of `connection` (`by`: the probe or a person) and
    /// makes every run parked on it due again at the time it was parked.
    /// Returns how many runs it released, or `None` when it was closed.
    pub async fn close_circuit(&self, connection: &str, by: &str, now: i64) -> Result<Option<u64>> {
        let mut tx = self.begin().await?;
        let (state, ..) = lock_circuit(&mut tx, self.backend(), connection, now).await?;
        if state == "closed" {
            tx.commit().await?;
            return Ok(None);
        }
        sqlx::query(
            "UPDATE circuits SET state = 'closed', failures = 0, window_start = $1, opened_at = NULL, \
             probe_at = NULL, manual = 0, reason = $2, updated_at = $3 WHERE connection = $4",
        )
        .bind(now)
        .bind(format!("closed by {by}"))
        .bind(now)
        .bind(connection)
        .execute(&mut *tx)
        .await?;
        let released = sqlx::query(
            "UPDATE runs SET next_at = parked_at, parked_on = NULL, parked_at = NULL WHERE parked_on = $1",
        )
        .bind(connection)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let data =
            serde_json::json!({"connection": connection, "by": by, "resumed_runs": released});
        insert_event(&mut tx, &circuit_event("closed", connection, data)).await?;
        tx.commit().await?;
        self.events_written.notify_one();
        Ok(Some(released))
    }

    /// Takes the probes that are due at `now`: each such circuit becomes
    /// `half_open`, held by the caller until `now + hold_ms` (a host that
    /// dies while probing leaves it to another after that).
    pub async fn take_due_probes(&self, now: i64, hold_ms: i64) -> Result<Vec<String>> {
        let mut tx = self.begin().await?;
        let taken = sqlx::query(
            "UPDATE circuits SET state = 'half_open', probe_at = $1, updated_at = $2 \
             WHERE state IN ('open', 'half_open') AND manual = 0 AND probe_at <= $3 RETURNING connection",
        )
        .bind(now.saturating_add(hold_ms))
        .bind(now)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<std::result::Result<Vec<_>, _>>()?;
        tx.commit().await?;
        Ok(taken)
    }

    /// The connections whose circuit is not closed.
    pub async fn open_circuits(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT connection FROM circuits WHERE state <> 'closed'")
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// The circuit of `connection`, if it ever counted a failure.
    pub async fn circuit(&self, connection: &str) -> Result<Option<CircuitRow>> {
        let row = sqlx::query(
            "SELECT connection, state, failures, opened_at, probe_at, manual, reason, updated_at, \
             (SELECT COUNT(*) FROM runs WHERE parked_on = $1) AS parked \
             FROM circuits WHERE connection = $2",
        )
        .bind(connection)
        .bind(connection)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(CircuitRow {
                connection: r.try_get("connection")?,
                state: r.try_get("state")?,
                failures: r.try_get("failures")?,
                opened_at: r.try_get("opened_at")?,
                probe_at: r.try_get("probe_at")?,
                manual: r.try_get::<i64, _>("manual")? != 0,
                reason: r.try_get("reason")?,
                updated_at: r.try_get("updated_at")?,
                parked: r.try_get("parked")?,
            })
        })
        .transpose()
    }

    /// Makes the runs parked on a circuit that is closed due again (a park
    /// that raced with the close on PostgreSQL). Returns how many.
    pub async fn release_stranded_runs(&self) -> Result<u64> {
        let mut tx = self.begin().await?;
        let released = sqlx::query(
            "UPDATE runs SET next_at = parked_at, parked_on = NULL, parked_at = NULL \
             WHERE parked_on IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM circuits WHERE connection = runs.parked_on AND state <> 'closed')",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(released)
    }

    /// Parks the run `fence` holds on the open circuit of `connection`:
    /// step `step` is pending again with `attempts` and `errors` (a JSON
    /// array), the lease is released, and the run is not due until the
    /// circuit closes; then it is due at the time its step was first
    /// attempted (or parked, when it never was). Returns whether the fence held (false: nothing changed).
    pub async fn park_run(
        &self,
        fence: &Fence<'_>,
        step: &str,
        attempts: i64,
        errors: &str,
        connection: &str,
    ) -> Result<bool> {
        let Some(mut tx) = self.begin_fenced(fence).await? else {
            return Ok(false);
        };
        let run_id = fence.run_id;
        pend_step(&mut tx, run_id, step, attempts, errors).await?;
        // A run arrived at the circuit when its step was first attempted
        // (or now, when it never was): parked runs resume in that order.
        sqlx::query(
            "UPDATE runs SET next_at = $1, parked_on = $2, \
             parked_at = COALESCE((SELECT started_at FROM run_steps WHERE run_id = $3 AND step_id = $4), $5), \
             lease_owner = NULL, lease_until = NULL WHERE id = $6",
        )
        .bind(PARKED)
        .bind(connection)
        .bind(run_id)
        .bind(step)
        .bind(fence.now)
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        // The circuit may have closed since the caller looked: then the run
        // is due again at once.
        sqlx::query(
            "UPDATE runs SET next_at = parked_at, parked_on = NULL, parked_at = NULL \
             WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM circuits WHERE connection = $2 AND state <> 'closed')",
        )
        .bind(run_id)
        .bind(connection)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}
