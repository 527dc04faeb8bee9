//! Flow schedules: when each scheduled flow fires next, and firing it once
//! however many hosts share the store.

use sqlx::Row;

use crate::runs::{NewRun, insert_run};
use crate::{Result, Store};

/// A schedule that is due, with its flow's current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueSchedule {
    /// The flow.
    pub flow: String,
    /// When it was due (ms since the epoch).
    pub next_at: i64,
    /// The flow's current version.
    pub version: i64,
    /// That version's TOML.
    pub source: String,
}

impl Store {
    /// Every schedule due at `now` (ms since the epoch).
    pub async fn due_schedules(&self, now: i64) -> Result<Vec<DueSchedule>> {
        let due = sqlx::query(
            "SELECT s.flow, s.next_at, f.version, v.source FROM flow_schedules s JOIN flows f ON f.name = s.flow JOIN flow_versions v ON v.flow = f.name AND v.version = f.version WHERE s.next_at <= $1",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        Ok(due
            .iter()
            .map(|row| DueSchedule {
                flow: row.get(0),
                next_at: row.get(1),
                version: row.get(2),
                source: row.get(3),
            })
            .collect())
    }

    /// Moves the schedule of `run.flow` from `due_at` to `next` and inserts
    /// `run`, in one transaction. Returns false, changing nothing, when the
    /// schedule is no longer due at `due_at` (another host fired it).
    pub async fn fire_schedule(&self, due_at: i64, next: i64, run: &NewRun<'_>) -> Result<bool> {
        let mut tx = self.begin().await?;
        let moved =
            sqlx::query("UPDATE flow_schedules SET next_at = $1 WHERE flow = $2 AND next_at = $3")
                .bind(next)
                .bind(run.flow)
                .bind(due_at)
                .execute(&mut *tx)
                .await?;
        if moved.rows_affected() != 1 {
            return Ok(false);
        }
        insert_run(&mut tx, run).await?;
        tx.commit().await?;
        self.events_written.notify_one();
        Ok(true)
    }

    /// When the first schedule is due, if any.
    pub async fn next_schedule_at(&self) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT MIN(next_at) FROM flow_schedules")
                .fetch_one(self.pool())
                .await?,
        )
    }
}
