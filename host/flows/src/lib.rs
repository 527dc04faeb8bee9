//! Durable flows: declarative TOML flow files whose runs survive restarts.
//!
//! A flow is deployed (validated against the host's connections and plugins,
//! then stored as a new version), and each run is a row in the store with
//! one row per step. Workers claim runnable runs with a lease, run their
//! steps in order with retries (the steps that need nothing of each other
//! at once, see `needs`), and on a permanent failure compensate the
//! completed steps in reverse order of completion (saga) before
//! dead-lettering the run.
//! Every step call carries an idempotency key derived from the run and step
//! ids, stable across retries, restarts and replays. A flow file declares
//! the business KPIs it measures (`[kpi]`), computed over a window by
//! [`Flows::kpis`] (see [`kpi`]).
//!
//! This crate holds no SQL: every read and write of flows, runs, steps,
//! dead letters, schedules and flow events is a typed method of
//! [`junction_store::Store`], which returns plain rows that the views here
//! are built from, or builds the fenced batches the workers hand to the
//! group committer.

mod branches;
mod circuit;
pub mod config;
mod dead_letters;
pub mod definition;
mod deploy;
pub mod events;
mod exec;
pub mod governance;
mod graph;
pub mod jq;
pub mod kpi;
mod runs;
mod saga;
mod schedules;
mod step;
mod stream;
mod wait;
pub mod xref;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use junction_runtime::Runtime;
use junction_store as store;

pub use circuit::CircuitView;
pub use config::FlowSettings;
pub use dead_letters::InputSchemaView;
pub use definition::{Deliver, FlowDef, Trigger};
pub use events::EventSettings;
pub use governance::{Conflict, GovernanceDeployed, GovernanceDoc, GovernanceView};
pub use kpi::KpiReport;
pub use wait::{SignalView, WaitingView};
pub use xref::{XrefId, XrefView};

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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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

/// One version of a flow, with its source.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FlowVersionSource {
    /// The version.
    #[serde(flatten)]
    pub version: FlowVersion,
    /// Its TOML.
    pub source: String,
}

/// A flow with its current source and every version.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    /// The W3C trace id of its business transaction: every span of the run
    /// (and of the request that started it) is in this trace.
    pub trace_id: Option<String>,
    /// The connection whose open circuit the run waits for: it is parked,
    /// and resumes when the circuit closes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parked_on: Option<String>,
    /// The signal the run waits for, and its deadline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<WaitingView>,
    /// The signals it received: who decided what, when (only in [`Flows::run`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signals: Option<Vec<SignalView>>,
    /// Steps in flow order (only in [`Flows::run`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<StepView>>,
}

/// A dead letter.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    circuits: circuit::Circuits,
    streams: stream::Streams,
    /// The governance version last read, parsed.
    owners: std::sync::Mutex<Option<Arc<governance::Owners>>>,
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
            circuits: circuit::Circuits::default(),
            streams: stream::Streams::default(),
            owners: std::sync::Mutex::new(None),
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

    /// The store.
    fn store(&self) -> &store::Store {
        self.runtime.store()
    }
}

/// The first time `cron` fires strictly after `after_ms` (UTC), in ms.
pub(crate) fn next_fire(cron: &str, after_ms: i64) -> Option<i64> {
    let schedule = definition::cron_schedule(cron).ok()?;
    let after = chrono::DateTime::from_timestamp_millis(after_ms)?;
    schedule.after(&after).next().map(|t| t.timestamp_millis())
}

/// The pending run `id` of version `version` of `def` (flow `flow`) to
/// insert, with one pending step per step of `def`.
fn new_run<'a>(
    id: &'a str,
    flow: &'a str,
    version: i64,
    def: &'a FlowDef,
    trigger: &'a str,
    traceparent: &'a str,
) -> store::NewRun<'a> {
    store::NewRun {
        id,
        flow,
        version,
        trigger,
        traceparent: Some(traceparent),
        steps: def
            .steps
            .iter()
            .map(|step| store::NewStep {
                id: &step.id,
                idempotency_key: idempotency_key(id, &step.id),
            })
            .collect(),
    }
}
