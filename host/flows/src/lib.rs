//! Durable flows: declarative TOML flow files whose runs survive restarts.
//!
//! A flow is deployed (validated against the host's connections and plugins,
//! then stored as a new version), and each run is a row in the store with
//! one row per step. Workers claim runnable runs with a lease, run their
//! steps in order with retries, and on a permanent failure compensate the
//! completed steps in reverse order (saga) before dead-lettering the run.
//! Every step call carries an idempotency key derived from the run and step
//! ids, stable across retries, restarts and replays.
//!
//! The SQL is the same on SQLite and PostgreSQL (`$n` placeholders, BIGINT
//! millisecond times, TEXT JSON, no SQLite-only functions), except for the
//! claim, which on PostgreSQL locks the row it takes with
//! `FOR UPDATE SKIP LOCKED` (SQLite serialises writers, so its single
//! `UPDATE ... WHERE id = (SELECT ...)` is already exclusive).

pub mod config;
pub mod definition;
mod exec;
pub mod jq;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Row;

use junction_runtime::Runtime;
use junction_store as store;
use junction_store::audit::{Outcome, Record};

pub use config::FlowSettings;
pub use definition::{FlowDef, Trigger};

/// Why a flow request failed.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// The flow file is invalid; the message names every problem and where it is.
    #[error("{0}")]
    Invalid(String),
    /// No such flow, run or dead letter.
    #[error("{0}")]
    NotFound(String),
    /// The request does not fit the current state.
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
}

impl From<sqlx::Error> for FlowError {
    fn from(e: sqlx::Error) -> Self {
        FlowError::Store(store::Error::Database(e))
    }
}

impl From<serde_json::Error> for FlowError {
    fn from(e: serde_json::Error) -> Self {
        FlowError::Store(store::Error::Corrupt(e))
    }
}

/// The result type of flows.
pub type Result<T, E = FlowError> = std::result::Result<T, E>;

/// How the workers behave.
#[derive(Debug, Clone)]
pub struct FlowOptions {
    /// Worker tasks per host.
    pub workers: usize,
    /// How long a claimed run stays with its worker without renewal; a crashed
    /// host's runs are picked up after it expires. Each step call renews it
    /// for at least the plugin deadline plus this.
    pub lease: Duration,
    /// The longest an idle worker waits before looking for work again.
    pub idle_poll: Duration,
}

impl Default for FlowOptions {
    fn default() -> Self {
        FlowOptions {
            workers: 2,
            lease: Duration::from_secs(30),
            idle_poll: Duration::from_secs(1),
        }
    }
}

/// A deployed flow.
#[derive(Debug, Clone, Serialize)]
pub struct FlowSummary {
    /// Name.
    pub name: String,
    /// Current version, from 1.
    pub version: i64,
    /// `manual`, `event` or `schedule`.
    pub trigger: String,
    /// Description from the file.
    pub description: Option<String>,
    /// RFC 3339 time of the first deploy.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

/// A flow version as stored.
#[derive(Debug, Clone, Serialize)]
pub struct FlowVersion {
    /// Version number.
    pub version: i64,
    /// sha256 of the source.
    pub digest: String,
    /// RFC 3339 time.
    pub deployed_at: String,
    /// Token name.
    pub deployed_by: String,
}

/// A flow with its current source and every version.
#[derive(Debug, Clone, Serialize)]
pub struct FlowDetail {
    /// The summary.
    #[serde(flatten)]
    pub summary: FlowSummary,
    /// The current version's TOML.
    pub source: String,
    /// Every version, newest first.
    pub versions: Vec<FlowVersion>,
}

/// What a deploy did.
#[derive(Debug, Clone, Serialize)]
pub struct Deployed {
    /// The flow.
    pub name: String,
    /// Its version now.
    pub version: i64,
    /// sha256 of the source.
    pub digest: String,
    /// The flow did not exist before.
    pub created: bool,
    /// A new version was stored (false when the source is unchanged).
    pub changed: bool,
}

/// A run that a webhook event started (or had started before).
#[derive(Debug, Clone, Serialize)]
pub struct EventRun {
    /// The flow.
    pub flow: String,
    /// The run.
    pub run: String,
    /// The event id.
    pub event: String,
    /// The event was delivered before; `run` is the run it started then.
    pub duplicate: bool,
}

/// One error of a step or compensation attempt.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct StepError {
    /// `step` or `compensate`.
    pub phase: String,
    /// The attempt it ended.
    pub attempt: i64,
    /// RFC 3339 time.
    pub at: String,
    /// `invalid_input`, `unavailable`, `rate_limited`, `expression`, ...
    pub kind: String,
    /// What happened.
    pub message: String,
}

/// A step of a run.
#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    /// Step id.
    pub id: String,
    /// `pending`, `running`, `completed`, `skipped`, `failed`, `compensating`,
    /// `compensated` or `compensation_failed`.
    pub status: String,
    /// Calls made (in this replay).
    pub attempts: i64,
    /// Compensation calls made.
    pub compensation_attempts: i64,
    /// Every error, oldest first.
    pub errors: Vec<StepError>,
    /// The input of the last attempt.
    pub input: Option<Value>,
    /// The output, once completed.
    pub output: Option<Value>,
    /// Passed to the connector on every attempt.
    pub idempotency_key: String,
    /// RFC 3339 time of the first attempt.
    pub started_at: Option<String>,
    /// RFC 3339 time it completed or failed for good.
    pub finished_at: Option<String>,
    /// RFC 3339 time its compensation completed.
    pub compensated_at: Option<String>,
}

/// A run.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    /// Run id.
    pub id: String,
    /// Flow name.
    pub flow: String,
    /// The flow version it runs.
    pub flow_version: i64,
    /// `pending`, `running`, `compensating`, `completed`, `compensated` or `failed`.
    pub status: String,
    /// The trigger event.
    pub trigger: Value,
    /// Why it failed.
    pub error: Option<String>,
    /// The step that failed for good.
    pub failed_step: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// RFC 3339, once terminal.
    pub finished_at: Option<String>,
    /// Steps in flow order (only in [`Flows::run`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<StepView>>,
}

/// A dead letter.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
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
    /// Every error of that step, then those of failed compensations.
    pub errors: Vec<StepError>,
    /// The input that failed.
    pub input: Option<Value>,
    /// RFC 3339.
    pub created_at: String,
}

/// Milliseconds since the Unix epoch.
pub(crate) use junction_store::now_ms;

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The idempotency key of a step of a run.
pub fn idempotency_key(run_id: &str, step_id: &str) -> String {
    format!("{run_id}:{step_id}")
}

/// Flows over a runtime: deploys, runs, dead letters and the workers.
pub struct Flows {
    runtime: Arc<Runtime>,
    options: FlowOptions,
    wake: Arc<tokio::sync::Notify>,
    host_id: String,
    committer: std::sync::OnceLock<store::commit::GroupCommitter>,
}

impl Flows {
    /// Flows over `runtime`; no worker runs until [`spawn_workers`](Self::spawn_workers).
    pub fn new(runtime: Arc<Runtime>, options: FlowOptions) -> Arc<Flows> {
        Arc::new(Flows {
            runtime,
            options,
            wake: Arc::new(tokio::sync::Notify::new()),
            host_id: uuid::Uuid::new_v4().simple().to_string(),
            committer: std::sync::OnceLock::new(),
        })
    }

    /// The runtime.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The group committer of the workers' writes, started on first use
    /// (on the current Tokio runtime).
    fn committer(&self) -> &store::commit::GroupCommitter {
        self.committer
            .get_or_init(|| store::commit::GroupCommitter::start(self.runtime.store()))
    }

    fn pool(&self) -> &sqlx::AnyPool {
        self.runtime.store().pool()
    }

    /// Validates and stores `source` as the next version of flow `name`
    /// (nothing changes when it equals the current version), audited.
    pub async fn deploy(&self, name: &str, source: &str, by: &str) -> Result<Deployed> {
        let result = self.deploy_inner(name, source, by).await;
        let digest = hex::encode(Sha256::digest(source.as_bytes()));
        let detail = match &result {
            Ok(d) => format!("version {}", d.version),
            Err(e) => e.to_string(),
        };
        let record = Record {
            actor: by,
            action: "flow.deploy",
            target: name,
            digest: Some(&digest),
            outcome: if result.is_ok() {
                Outcome::Ok
            } else {
                Outcome::Refused
            },
            detail: &detail,
        };
        if let Err(e) = self.runtime.store().audit(record).await {
            tracing::error!(error = %e, "could not write the audit log");
        }
        result
    }

    async fn deploy_inner(&self, name: &str, source: &str, by: &str) -> Result<Deployed> {
        if !valid_flow_name(name) {
            return Err(FlowError::Invalid(format!(
                "flow name `{name}` must be 1-64 characters of a-z, 0-9, `-` and `_`"
            )));
        }
        let def = definition::validate(&self.runtime, name, source)
            .await
            .map_err(FlowError::Invalid)?;
        let digest = hex::encode(Sha256::digest(source.as_bytes()));
        let now = now_text();
        let mut tx = self.pool().begin().await?;
        let current = sqlx::query(
            "SELECT f.version, v.digest FROM flows f JOIN flow_versions v ON v.flow = f.name AND v.version = f.version WHERE f.name = $1",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let (version, created, changed) = match current {
            Some(row) => {
                let version: i64 = row.get(0);
                let old: String = row.get(1);
                if old == digest {
                    (version, false, false)
                } else {
                    sqlx::query("UPDATE flows SET version = $1, updated_at = $2 WHERE name = $3")
                        .bind(version + 1)
                        .bind(&now)
                        .bind(name)
                        .execute(&mut *tx)
                        .await?;
                    (version + 1, false, true)
                }
            }
            None => {
                sqlx::query(
                    "INSERT INTO flows (name, version, created_at, updated_at) VALUES ($1, 1, $2, $3)",
                )
                .bind(name)
                .bind(&now)
                .bind(&now)
                .execute(&mut *tx)
                .await?;
                (1, true, true)
            }
        };
        if changed {
            sqlx::query(
                "INSERT INTO flow_versions (flow, version, source, digest, deployed_at, deployed_by) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(name)
            .bind(version)
            .bind(source)
            .bind(&digest)
            .bind(&now)
            .bind(by)
            .execute(&mut *tx)
            .await?;
            match &def.trigger {
                Trigger::Schedule { cron } => {
                    let next = next_fire(cron, now_ms()).ok_or_else(|| {
                        FlowError::Invalid(format!("trigger.cron: `{cron}` never fires again"))
                    })?;
                    sqlx::query("INSERT INTO flow_schedules (flow, next_at) VALUES ($1, $2) ON CONFLICT (flow) DO UPDATE SET next_at = excluded.next_at")
                        .bind(name)
                        .bind(next)
                        .execute(&mut *tx)
                        .await?;
                }
                _ => {
                    sqlx::query("DELETE FROM flow_schedules WHERE flow = $1")
                        .bind(name)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        tracing::info!(flow = %name, version, changed, by, "flow deployed");
        Ok(Deployed {
            name: name.to_string(),
            version,
            digest,
            created,
            changed,
        })
    }

    /// Every deployed flow.
    pub async fn list(&self) -> Result<Vec<FlowSummary>> {
        let rows = sqlx::query(
            "SELECT f.name, f.version, f.created_at, f.updated_at, v.source FROM flows f JOIN flow_versions v ON v.flow = f.name AND v.version = f.version ORDER BY f.name",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(summary_from_row).collect())
    }

    /// One flow with its source and versions.
    pub async fn get(&self, name: &str) -> Result<FlowDetail> {
        let row = sqlx::query(
            "SELECT f.name, f.version, f.created_at, f.updated_at, v.source FROM flows f JOIN flow_versions v ON v.flow = f.name AND v.version = f.version WHERE f.name = $1",
        )
        .bind(name)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| FlowError::NotFound(format!("no flow named `{name}`")))?;
        let versions = sqlx::query(
            "SELECT version, digest, deployed_at, deployed_by FROM flow_versions WHERE flow = $1 ORDER BY version DESC",
        )
        .bind(name)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| FlowVersion {
            version: r.get(0),
            digest: r.get(1),
            deployed_at: r.get(2),
            deployed_by: r.get(3),
        })
        .collect();
        Ok(FlowDetail {
            summary: summary_from_row(&row),
            source: row.get(4),
            versions,
        })
    }

    /// Starts a run of the current version of flow `name` with `trigger` as
    /// its event; returns the run id. The run is committed before this returns.
    pub async fn start_run(&self, name: &str, trigger: Value) -> Result<String> {
        let row = sqlx::query(
            "SELECT f.version, v.source FROM flows f JOIN flow_versions v ON v.flow = f.name AND v.version = f.version WHERE f.name = $1",
        )
        .bind(name)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| FlowError::NotFound(format!("no flow named `{name}`")))?;
        let version: i64 = row.get(0);
        let source: String = row.get(1);
        let def = definition::parse(&source).map_err(FlowError::Invalid)?;
        let id = uuid::Uuid::new_v4().to_string();
        let mut tx = self.pool().begin().await?;
        insert_run(&mut tx, &id, name, version, &def, &trigger).await?;
        tx.commit().await?;
        tracing::info!(flow = %name, run = %id, "run started");
        self.wake.notify_one();
        Ok(id)
    }

    /// Starts a run of every flow whose schedule is due, once per due time
    /// however many hosts share the store; missed times during downtime fire
    /// once, not once each. Returns how many runs started.
    pub(crate) async fn fire_schedules(&self) -> Result<usize> {
        let now = now_ms();
        let due = sqlx::query(
            "SELECT s.flow, s.next_at, f.version, v.source FROM flow_schedules s JOIN flows f ON f.name = s.flow JOIN flow_versions v ON v.flow = f.name AND v.version = f.version WHERE s.next_at <= $1",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        let mut fired = 0;
        for row in &due {
            let flow: String = row.get(0);
            let due_at: i64 = row.get(1);
            let version: i64 = row.get(2);
            let Ok(def) = definition::parse(&row.get::<String, _>(3)) else {
                continue;
            };
            let Trigger::Schedule { cron } = &def.trigger else {
                continue;
            };
            // Far in the future when it never fires again: the row stays, inert.
            let next = next_fire(cron, now).unwrap_or(i64::MAX);
            let mut tx = self.pool().begin().await?;
            let moved = sqlx::query(
                "UPDATE flow_schedules SET next_at = $1 WHERE flow = $2 AND next_at = $3",
            )
            .bind(next)
            .bind(&flow)
            .bind(due_at)
            .execute(&mut *tx)
            .await?;
            if moved.rows_affected() != 1 {
                continue;
            }
            let id = uuid::Uuid::new_v4().to_string();
            let trigger = serde_json::json!({"type": "schedule", "scheduled_at": rfc3339(due_at)});
            insert_run(&mut tx, &id, &flow, version, &def, &trigger).await?;
            tx.commit().await?;
            tracing::info!(flow = %flow, run = %id, "scheduled run started");
            fired += 1;
        }
        Ok(fired)
    }

    /// Starts one run per event and flow whose trigger is that event type
    /// from `connection`, at most once per event (its `source` and `id`) and
    /// flow however often it is delivered. Everything is committed before
    /// this returns, so a webhook answered 2xx is not lost.
    pub async fn start_runs_for_events(
        &self,
        connection: &str,
        events: &[junction_runtime::inbound::WebhookEvent],
    ) -> Result<Vec<EventRun>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT f.name, f.version, v.source FROM flows f JOIN flow_versions v ON v.flow = f.name AND v.version = f.version ORDER BY f.name",
        )
        .fetch_all(self.pool())
        .await?;
        let mut listeners = Vec::new();
        for row in &rows {
            let Ok(def) = definition::parse(&row.get::<String, _>(2)) else {
                continue;
            };
            if let Trigger::Event {
                connection: c,
                event,
            } = &def.trigger
                && c == connection
            {
                let event = event.clone();
                listeners.push((row.get::<String, _>(0), row.get::<i64, _>(1), event, def));
            }
        }
        let mut started = Vec::new();
        if listeners.is_empty() {
            return Ok(started);
        }
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        for event in events {
            for (flow, version, event_type, def) in &listeners {
                if *event_type != event.event_type {
                    continue;
                }
                let run_id = uuid::Uuid::new_v4().to_string();
                // The run goes in first: flow_events references it.
                let trigger = serde_json::to_value(event)?;
                insert_run(&mut tx, &run_id, flow, *version, def, &trigger).await?;
                let inserted = sqlx::query(
                    "INSERT INTO flow_events (source, event_id, flow, run_id, received_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(&event.source)
                .bind(&event.id)
                .bind(flow)
                .bind(&run_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if inserted.rows_affected() == 1 {
                    started.push(EventRun {
                        flow: flow.clone(),
                        run: run_id,
                        event: event.id.clone(),
                        duplicate: false,
                    });
                    continue;
                }
                // Seen before: take back the run just inserted.
                sqlx::query("DELETE FROM run_steps WHERE run_id = $1")
                    .bind(&run_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM runs WHERE id = $1")
                    .bind(&run_id)
                    .execute(&mut *tx)
                    .await?;
                let existing: String = sqlx::query_scalar(
                    "SELECT run_id FROM flow_events WHERE source = $1 AND event_id = $2 AND flow = $3",
                )
                .bind(&event.source)
                .bind(&event.id)
                .bind(flow)
                .fetch_one(&mut *tx)
                .await?;
                started.push(EventRun {
                    flow: flow.clone(),
                    run: existing,
                    event: event.id.clone(),
                    duplicate: true,
                });
            }
        }
        tx.commit().await?;
        if started.iter().any(|r| !r.duplicate) {
            tracing::info!(
                connection,
                runs = started.len(),
                "runs started by webhook events"
            );
            self.wake.notify_one();
        }
        Ok(started)
    }

    /// Runs, newest first, filtered by flow and status.
    pub async fn runs(
        &self,
        flow: Option<&str>,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunView>> {
        let rows = sqlx::query(
            "SELECT id, flow, flow_version, status, trigger_event, error, failed_step, created_at, updated_at, finished_at FROM runs WHERE ($1 IS NULL OR flow = $2) AND ($3 IS NULL OR status = $4) ORDER BY created_at DESC, id LIMIT $5",
        )
        .bind(flow)
        .bind(flow)
        .bind(status)
        .bind(status)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    /// One run with its steps.
    pub async fn run(&self, id: &str) -> Result<RunView> {
        let row = sqlx::query(
            "SELECT id, flow, flow_version, status, trigger_event, error, failed_step, created_at, updated_at, finished_at FROM runs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| FlowError::NotFound(format!("no run with id `{id}`")))?;
        let mut run = run_from_row(&row)?;
        let steps = sqlx::query(
            "SELECT step_id, status, attempts, compensation_attempts, errors, input, output, idempotency_key, started_at, finished_at, compensated_at FROM run_steps WHERE run_id = $1 ORDER BY position",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        let json = |t: Option<String>| -> Result<Option<Value>> {
            Ok(t.map(|t| serde_json::from_str(&t)).transpose()?)
        };
        let mut views = Vec::new();
        for r in &steps {
            views.push(StepView {
                id: r.get(0),
                status: r.get(1),
                attempts: r.get(2),
                compensation_attempts: r.get(3),
                errors: serde_json::from_str(&r.get::<String, _>(4))?,
                input: json(r.get(5))?,
                output: json(r.get(6))?,
                idempotency_key: r.get(7),
                started_at: r.get::<Option<i64>, _>(8).map(rfc3339),
                finished_at: r.get::<Option<i64>, _>(9).map(rfc3339),
                compensated_at: r.get::<Option<i64>, _>(10).map(rfc3339),
            });
        }
        run.steps = Some(views);
        Ok(run)
    }

    /// Dead letters, newest first.
    pub async fn dead_letters(&self, flow: Option<&str>) -> Result<Vec<DeadLetter>> {
        let rows = sqlx::query(
            "SELECT id, run_id, flow, step_id, attempts, errors, input, created_at FROM dead_letters WHERE ($1 IS NULL OR flow = $2) ORDER BY created_at DESC, id",
        )
        .bind(flow)
        .bind(flow)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(dead_letter_from_row).collect()
    }

    /// Replays a dead-lettered run from its failed step: steps that completed
    /// and were not undone (no compensation, or one that failed) keep their
    /// outputs; the others run again
    /// with the same idempotency keys. `input` replaces the failed step's
    /// input. The dead letter is removed; audited as `run.replay`.
    pub async fn replay(&self, id: &str, input: Option<Value>, by: &str) -> Result<String> {
        let mut tx = self.pool().begin().await?;
        let row = sqlx::query("SELECT run_id, step_id FROM dead_letters WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| FlowError::NotFound(format!("no dead letter with id `{id}`")))?;
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
            return Err(FlowError::Conflict(format!(
                "run `{run_id}` is not failed or compensated; only those can be replayed"
            )));
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
        if let Some(input) = &input {
            sqlx::query(
                "UPDATE run_steps SET input_override = $1 WHERE run_id = $2 AND step_id = $3",
            )
            .bind(input.to_string())
            .bind(&run_id)
            .bind(&step_id)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM dead_letters WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.audit_run(
            "run.replay",
            by,
            &run_id,
            &format!("dead letter {id}, from step {step_id}"),
        )
        .await;
        self.wake.notify_one();
        Ok(run_id)
    }

    /// Replays every dead letter of flow `flow`, oldest first; returns the run ids.
    pub async fn replay_flow(&self, flow: &str, by: &str) -> Result<Vec<String>> {
        let mut letters = self.dead_letters(Some(flow)).await?;
        letters.reverse();
        let mut runs = Vec::new();
        for letter in letters {
            match self.replay(&letter.id, None, by).await {
                Ok(run) => runs.push(run),
                // Replayed or discarded meanwhile by someone else.
                Err(FlowError::NotFound(_) | FlowError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(runs)
    }

    /// Discards a dead letter; its run stays as it ended. Audited as `run.discard`.
    pub async fn discard(&self, id: &str, by: &str) -> Result<()> {
        let row = sqlx::query("SELECT run_id FROM dead_letters WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| FlowError::NotFound(format!("no dead letter with id `{id}`")))?;
        let run_id: String = row.get(0);
        sqlx::query("DELETE FROM dead_letters WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        self.audit_run("run.discard", by, &run_id, &format!("dead letter {id}"))
            .await;
        Ok(())
    }

    async fn audit_run(&self, action: &str, by: &str, run_id: &str, detail: &str) {
        let record = Record {
            actor: by,
            action,
            target: run_id,
            digest: None,
            outcome: Outcome::Ok,
            detail,
        };
        if let Err(e) = self.runtime.store().audit(record).await {
            tracing::error!(error = %e, "could not write the audit log");
        }
    }
}

/// The first time `cron` fires strictly after `after_ms` (UTC), in ms.
pub(crate) fn next_fire(cron: &str, after_ms: i64) -> Option<i64> {
    let schedule = definition::cron_schedule(cron).ok()?;
    let after = chrono::DateTime::from_timestamp_millis(after_ms)?;
    schedule.after(&after).next().map(|t| t.timestamp_millis())
}

/// Inserts a pending run of `def` and its steps.
async fn insert_run(
    tx: &mut store::Transaction,
    id: &str,
    flow: &str,
    version: i64,
    def: &FlowDef,
    trigger: &Value,
) -> Result<()> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO runs (id, flow, flow_version, status, trigger_event, created_at, updated_at, next_at) VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(flow)
    .bind(version)
    .bind(trigger.to_string())
    .bind(now)
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    for (position, step) in def.steps.iter().enumerate() {
        sqlx::query(
            "INSERT INTO run_steps (run_id, step_id, position, status, idempotency_key) VALUES ($1, $2, $3, 'pending', $4)",
        )
        .bind(id)
        .bind(&step.id)
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .bind(idempotency_key(id, &step.id))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

fn valid_flow_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn summary_from_row(row: &sqlx::any::AnyRow) -> FlowSummary {
    let source: String = row.get(4);
    let def = definition::parse(&source).ok();
    FlowSummary {
        name: row.get(0),
        version: row.get(1),
        trigger: def
            .as_ref()
            .map_or("unknown", |d| d.trigger.kind())
            .to_string(),
        description: def.and_then(|d| d.description),
        created_at: row.get(2),
        updated_at: row.get(3),
    }
}

fn run_from_row(r: &sqlx::any::AnyRow) -> Result<RunView> {
    Ok(RunView {
        id: r.get(0),
        flow: r.get(1),
        flow_version: r.get(2),
        status: r.get(3),
        trigger: serde_json::from_str(&r.get::<String, _>(4))?,
        error: r.get(5),
        failed_step: r.get(6),
        created_at: rfc3339(r.get(7)),
        updated_at: rfc3339(r.get(8)),
        finished_at: r.get::<Option<i64>, _>(9).map(rfc3339),
        steps: None,
    })
}

fn dead_letter_from_row(r: &sqlx::any::AnyRow) -> Result<DeadLetter> {
    Ok(DeadLetter {
        id: r.get(0),
        run_id: r.get(1),
        flow: r.get(2),
        step: r.get(3),
        attempts: r.get(4),
        errors: serde_json::from_str(&r.get::<String, _>(5))?,
        input: r
            .get::<Option<String>, _>(6)
            .map(|t| serde_json::from_str(&t))
            .transpose()?,
        created_at: rfc3339(r.get(7)),
    })
}
