//! What the business KPIs are computed from: the runs of a time window,
//! their steps and manual touches, and the steps that completed in it.
//! A window is `[since, until)` in ms since the epoch.

use sqlx::Row;

use crate::{Result, Store};

/// A run created in a KPI window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KpiRunRow {
    /// Run id.
    pub id: String,
    /// Flow name.
    pub flow: String,
    /// The flow version it runs.
    pub flow_version: i64,
    /// Its status now.
    pub status: String,
}

/// A step of a run created in a KPI window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KpiStepRow {
    /// The run.
    pub run_id: String,
    /// Step id.
    pub step_id: String,
    /// Its status now.
    pub status: String,
    /// Every error of its attempts, across replays (a JSON array).
    pub errors: String,
}

/// A manual touch of a run created in a KPI window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TouchRow {
    /// The run.
    pub run_id: String,
    /// `replay`, `input_corrected` or `discard`.
    pub kind: String,
    /// Who (the token name).
    pub actor: String,
    /// When (ms since the epoch).
    pub at: i64,
}

/// A step that completed in a KPI window, with what its run started from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedStepRow {
    /// The run.
    pub run_id: String,
    /// Flow name.
    pub flow: String,
    /// The flow version the run runs.
    pub flow_version: i64,
    /// Step id.
    pub step_id: String,
    /// The run's trigger event (JSON text).
    pub trigger: String,
    /// When the run was created.
    pub run_created_at: i64,
    /// When the step completed.
    pub finished_at: i64,
}

impl Store {
    /// The rows `sql` selects for the window `[since, until)`, bound as `$1` and `$2`.
    async fn window(
        &self,
        sql: &'static str,
        since: i64,
        until: i64,
    ) -> Result<Vec<sqlx::any::AnyRow>> {
        Ok(sqlx::query(sql)
            .bind(since)
            .bind(until)
            .fetch_all(self.pool())
            .await?)
    }

    /// The runs created in `[since, until)`, oldest first.
    pub async fn kpi_runs(&self, since: i64, until: i64) -> Result<Vec<KpiRunRow>> {
        let rows = self.window("SELECT id, flow, flow_version, status FROM runs WHERE created_at >= $1 AND created_at < $2 ORDER BY created_at, id", since, until).await?;
        Ok(rows
            .iter()
            .map(|r| KpiRunRow {
                id: r.get(0),
                flow: r.get(1),
                flow_version: r.get(2),
                status: r.get(3),
            })
            .collect())
    }

    /// The steps of the runs created in `[since, until)`.
    pub async fn kpi_steps(&self, since: i64, until: i64) -> Result<Vec<KpiStepRow>> {
        let rows = self.window("SELECT s.run_id, s.step_id, s.status, s.errors FROM run_steps s JOIN runs r ON r.id = s.run_id WHERE r.created_at >= $1 AND r.created_at < $2 ORDER BY s.run_id, s.position", since, until).await?;
        Ok(rows
            .iter()
            .map(|r| KpiStepRow {
                run_id: r.get(0),
                step_id: r.get(1),
                status: r.get(2),
                errors: r.get(3),
            })
            .collect())
    }

    /// The manual touches of the runs created in `[since, until)`, oldest first.
    pub async fn kpi_touches(&self, since: i64, until: i64) -> Result<Vec<TouchRow>> {
        let rows = self.window("SELECT t.run_id, t.kind, t.actor, t.at FROM run_touches t JOIN runs r ON r.id = t.run_id WHERE r.created_at >= $1 AND r.created_at < $2 ORDER BY t.at, t.run_id", since, until).await?;
        Ok(rows
            .iter()
            .map(|r| TouchRow {
                run_id: r.get(0),
                kind: r.get(1),
                actor: r.get(2),
                at: r.get(3),
            })
            .collect())
    }

    /// The steps that completed in `[since, until)`, with their runs.
    pub async fn steps_completed_in(
        &self,
        since: i64,
        until: i64,
    ) -> Result<Vec<CompletedStepRow>> {
        let rows = self.window("SELECT s.run_id, r.flow, r.flow_version, s.step_id, r.trigger_event, r.created_at, s.finished_at FROM run_steps s JOIN runs r ON r.id = s.run_id WHERE s.status = 'completed' AND s.finished_at >= $1 AND s.finished_at < $2 ORDER BY s.finished_at, s.run_id", since, until).await?;
        Ok(rows
            .iter()
            .map(|r| CompletedStepRow {
                run_id: r.get(0),
                flow: r.get(1),
                flow_version: r.get(2),
                step_id: r.get(3),
                trigger: r.get(4),
                run_created_at: r.get(5),
                finished_at: r.get(6),
            })
            .collect())
    }

    /// Sets when step `step` of run `run` finished (ms since the epoch), for
    /// tests of time-based reports that need fixed times; whether the step exists.
    #[doc(hidden)]
    pub async fn set_step_finished_at(&self, run: &str, step: &str, at: i64) -> Result<bool> {
        let updated =
            sqlx::query("UPDATE run_steps SET finished_at = $1 WHERE run_id = $2 AND step_id = $3")
                .bind(at)
                .bind(run)
                .bind(step)
                .execute(self.pool())
                .await?;
        Ok(updated.rows_affected() == 1)
    }
}
