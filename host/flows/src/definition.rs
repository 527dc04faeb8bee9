//! Flow files: parsing and validation.
//!
//! ```toml
//! description = "closed-won deal -> Jira project and kickoff issue"
//! trigger = { type = "manual" }          # or { type = "event", connection, event }
//!                                        # or { type = "schedule", cron = "0 0 * * *" }
//!                                        # or { type = "stream", stream = "CRM", subject = "crm.deals.>" }
//! [[steps]]
//! id = "project"
//! connection = "jira"
//! operation = "create-project"
//! input = "{key: .trigger.key, name: .trigger.name}"
//! retry = { attempts = 5, backoff_ms = 200 }
//! compensate = { operation = "archive-project" }
//!
//! [[steps]]
//! id = "summary"
//! map = "{project: .steps.project.key}"
//! when = ".trigger.notify == true"
//!
//! [kpi.project_setup]                    # business KPIs, see `kpi`
//! measure = "duration"
//! from = "trigger"
//! until = "summary"
//! ```

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::governance::Writes;
use super::kpi::KpiDef;
use super::xref::{self, Lookup, RecordDef};
use super::{graph, jq};
use junction_registry::World;
use junction_runtime::Runtime;

/// A flow file as deployed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowDef {
    /// Optional; when present it must equal the name the flow is deployed under.
    #[serde(default)]
    pub name: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// What starts a run.
    pub trigger: Trigger,
    /// The steps, run in order.
    #[serde(default)]
    pub steps: Vec<StepDef>,
    /// The business KPIs the flow measures, by name (`[kpi.<name>]`).
    #[serde(default)]
    pub kpi: BTreeMap<String, KpiDef>,
}

/// What starts a run. Any flow can also be started by hand.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// `POST /v1/flows/{name}/runs` only.
    Manual,
    /// An event of `event` type parsed from a webhook of `connection`.
    Event {
        /// The connection whose webhooks carry the event.
        connection: String,
        /// The event type, e.g. `deal.closed_won`.
        event: String,
    },
    /// A cron schedule (5 fields, or 6-7 with seconds and year), in UTC.
    Schedule {
        /// The cron expression.
        cron: String,
    },
    /// Each message of a NATS JetStream stream (through a durable consumer
    /// of the flow; `[events] nats_url` names the server). One run per
    /// message, acknowledged once the run is committed.
    Stream {
        /// The stream, e.g. `CRM_DEALS`.
        stream: String,
        /// Only messages on this subject (wildcards allowed); absent: all.
        #[serde(default)]
        subject: Option<String>,
        /// Where a new consumer starts: `new` messages (the default) or
        /// `all` those the stream holds.
        #[serde(default)]
        deliver: Deliver,
        /// How long JetStream waits for a host to commit a message's run
        /// before it delivers the message again (to any host), in ms.
        #[serde(default = "default_ack_wait_ms")]
        ack_wait_ms: u64,
    },
}

fn default_ack_wait_ms() -> u64 {
    30_000
}

/// Where a stream trigger's consumer starts when it is first made.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Deliver {
    /// Messages published from then on.
    #[default]
    New,
    /// Every message the stream holds.
    All,
}

impl Trigger {
    /// `manual`, `event` or `schedule`.
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Event { .. } => "event",
            Trigger::Schedule { .. } => "schedule",
            Trigger::Stream { .. } => "stream",
        }
    }
}

/// One step: exactly one of `connection` + `operation`, `transform`, `map`, `wait`, `lookup`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    /// Unique within the flow: a letter, then letters, digits and `_`, so
    /// that `.steps.<id>` works in jq.
    pub id: String,
    /// The connection whose operation the step calls.
    #[serde(default)]
    pub connection: Option<String>,
    /// The operation.
    #[serde(default)]
    pub operation: Option<String>,
    /// A transform plugin; its output is the array of what it returned.
    #[serde(default)]
    pub transform: Option<String>,
    /// A jq expression over the run context; its first value is the output.
    #[serde(default)]
    pub map: Option<String>,
    /// Wait for a signal (an approval, a confirmation) before going on.
    #[serde(default)]
    pub wait: Option<Wait>,
    /// The steps that must be done (completed or skipped) before this one
    /// starts. Absent: the step before it; `[]`: none, it starts with the
    /// run. Steps whose needs are done run at once.
    #[serde(default)]
    pub needs: Option<Vec<String>>,
    /// A jq condition over the run context; a false or null result skips the step.
    #[serde(default)]
    pub when: Option<String>,
    /// A jq expression over the run context that builds the step's input.
    /// Absent: the output of the latest step (in file order) it runs after,
    /// or the trigger event when there is none.
    #[serde(default)]
    pub input: Option<String>,
    /// How failed calls are retried.
    #[serde(default)]
    pub retry: Retry,
    /// How long one attempt may take, on top of the plugin's own deadline;
    /// an attempt that runs out is a retryable `timeout`.
    #[serde(default)]
    pub deadline_ms: Option<u64>,
    /// What undoes this step when a later one fails for good.
    #[serde(default)]
    pub compensate: Option<Compensate>,
    /// The canonical entity and fields the step writes, held to the
    /// governance document (see `governance`).
    #[serde(default)]
    pub writes: Option<Writes>,
    /// The ids its output gives entities, for the id map (see `xref`).
    #[serde(default, deserialize_with = "xref::one_or_many")]
    pub record: Vec<RecordDef>,
    /// Read the id map instead of calling anything.
    #[serde(default)]
    pub lookup: Option<Lookup>,
}

/// A step's retry policy: up to `attempts` calls in all, waiting
/// `backoff_ms * 2^(n-1)` (at most `max_backoff_ms`, with jitter) after the
/// n-th, or what a `rate-limited` answer asks if that is longer.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Calls in all, first included (1 = no retry).
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// The first wait.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
    /// The longest wait.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: default_attempts(),
            backoff_ms: default_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
        }
    }
}

fn default_attempts() -> u32 {
    3
}
fn default_backoff_ms() -> u64 {
    500
}
fn default_max_backoff_ms() -> u64 {
    60_000
}

/// The operation that undoes a step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compensate {
    /// Defaults to the step's connection.
    #[serde(default)]
    pub connection: Option<String>,
    /// The operation.
    pub operation: String,
    /// jq over `{input, output, trigger}`; absent: `{input, output}` of the step.
    #[serde(default)]
    pub input: Option<String>,
}

/// A step that waits, holding no worker, until a signal of its name
/// arrives (`POST /v1/runs/{id}/signals/{signal}`) or its deadline passes.
/// Its output is the decision: `{decision, comment, data, by, at, signal}`,
/// `decision` being `approve`, `reject` or (when the deadline passed and
/// the run goes on) `expired`; later steps branch on it with `when`.
///
/// ```toml
/// [[steps]]
/// id = "staffing"
/// [steps.wait]
/// signal = "staffing_confirmed"
/// deadline_ms = 172_800_000          # optional
/// on_deadline = "escalate"           # "fail" (the default), "continue" or "escalate"
/// on_reject = "fail"                 # "continue" (the default) or "fail"
/// notify = { connection = "psa", operation = "notify", input = "{to: .trigger.manager}" }
/// escalate = { connection = "psa", operation = "notify", input = "{to: .trigger.director}" }
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Wait {
    /// The name of the signal: a letter, then letters, digits, `_` and `-`.
    pub signal: String,
    /// How long to wait, from when the step starts waiting.
    #[serde(default)]
    pub deadline_ms: Option<u64>,
    /// What a passed deadline does.
    #[serde(default)]
    pub on_deadline: OnDeadline,
    /// What a `reject` does.
    #[serde(default)]
    pub on_reject: OnReject,
    /// Called when the step starts waiting (with the step's retries).
    #[serde(default)]
    pub notify: Option<Call>,
    /// Called each time the deadline passes, with `on_deadline = "escalate"`.
    #[serde(default)]
    pub escalate: Option<Call>,
}

/// What a wait step does when its deadline passes.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnDeadline {
    /// Fail the step for good: compensate, dead-letter.
    #[default]
    Fail,
    /// Go on with the decision `expired` (the default branch).
    Continue,
    /// Call `escalate`, then wait for another `deadline_ms`.
    Escalate,
}

/// What a wait step does with a `reject`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnReject {
    /// Go on with the decision `reject`: later steps branch with `when`.
    #[default]
    Continue,
    /// Fail the step for good: compensate, dead-letter.
    Fail,
}

/// An operation a wait step calls to tell someone.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Call {
    /// The connection.
    pub connection: String,
    /// Its operation.
    pub operation: String,
    /// jq over the run context; absent: `{run, flow, step, signal}`.
    #[serde(default)]
    pub input: Option<String>,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<'a> {
    /// A connection's operation.
    Invoke {
        /// Connection.
        connection: &'a str,
        /// Operation.
        operation: &'a str,
    },
    /// A transform plugin.
    Transform(&'a str),
    /// A jq mapping.
    Map(&'a str),
    /// A wait for a signal.
    Wait(&'a Wait),
    /// A read of the id map.
    Lookup(&'a Lookup),
}

impl StepDef {
    /// What the step does; validation made sure exactly one action is set.
    pub fn action(&self) -> Option<Action<'_>> {
        match (
            &self.connection,
            &self.operation,
            &self.transform,
            &self.map,
            &self.wait,
            &self.lookup,
        ) {
            (Some(c), Some(o), None, None, None, None) => Some(Action::Invoke {
                connection: c,
                operation: o,
            }),
            (None, None, Some(t), None, None, None) => Some(Action::Transform(t)),
            (None, None, None, Some(m), None, None) => Some(Action::Map(m)),
            (None, None, None, None, Some(w), None) => Some(Action::Wait(w)),
            (None, None, None, None, None, Some(l)) => Some(Action::Lookup(l)),
            _ => None,
        }
    }

    /// The connection of the compensation, if the step has one.
    pub fn compensation(&self) -> Option<(&str, &Compensate)> {
        let c = self.compensate.as_ref()?;
        let connection = c.connection.as_deref().or(self.connection.as_deref())?;
        Some((connection, c))
    }
}

/// Parses a flow file without checking it against the host.
pub fn parse(source: &str) -> Result<FlowDef, String> {
    toml::from_str(source).map_err(|e| format!("the flow file is not valid: {e}"))
}

/// A cron expression as the `cron` crate reads it: 5-field expressions get
/// a leading `0` seconds field.
pub fn cron_schedule(expr: &str) -> Result<cron::Schedule, String> {
    let fields = expr.split_whitespace().count();
    let full = if fields == 5 {
        format!("0 {expr}")
    } else {
        expr.to_string()
    };
    cron::Schedule::from_str(&full).map_err(|e| format!("`{expr}` is not a cron schedule: {e}"))
}

fn valid_signal(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn valid_step_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && id.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The step ids a jq expression refers to as `.steps.<id>` or `.steps["<id>"]`.
pub(crate) fn referenced_steps(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in code.match_indices(".steps") {
        let rest = &code[at + ".steps".len()..];
        let id: String = if let Some(rest) = rest.strip_prefix('.') {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        } else if let Some(rest) = rest.strip_prefix("[\"") {
            rest.chars().take_while(|c| *c != '"').collect()
        } else {
            continue;
        };
        if !id.is_empty() {
            found.push(id);
        }
    }
    found
}

/// Parses and checks a flow file against the host: connections, operations
/// and plugins exist, step ids are unique and well-formed, `needs` names
/// steps and makes no circle, every jq expression compiles and refers only
/// to steps that run before it, and
/// the `[kpi]` table names measures and steps that exist. Every problem
/// is reported, each naming where it is.
pub async fn validate(runtime: &Runtime, name: &str, source: &str) -> Result<FlowDef, String> {
    let def = parse(source)?;
    let mut problems = Vec::new();
    if let Some(n) = &def.name
        && n != name
    {
        problems.push(format!(
            "name: the file says `{n}` but it is deployed as `{name}`"
        ));
    }
    match &def.trigger {
        Trigger::Manual => {}
        Trigger::Event { connection, event } => {
            if event.trim().is_empty() {
                problems.push("trigger.event: must not be empty".into());
            }
            if connector(runtime, connection).await.is_err() {
                problems.push(format!(
                    "trigger.connection: no connection named `{connection}`"
                ));
            }
        }
        Trigger::Schedule { cron } => {
            if let Err(e) = cron_schedule(cron) {
                problems.push(format!("trigger.cron: {e}"));
            }
        }
        Trigger::Stream {
            stream,
            subject,
            ack_wait_ms,
            ..
        } => problems.extend(super::stream::check(
            stream,
            subject.as_deref(),
            *ack_wait_ms,
        )),
    }
    if def.steps.is_empty() {
        problems.push("steps: a flow needs at least one step".into());
    }
    problems.extend(graph::problems(&def));
    let order = graph::Graph::of(&def);
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, step) in def.steps.iter().enumerate() {
        let at = format!("steps[{i}] (id `{}`)", step.id);
        if !valid_step_id(&step.id) {
            problems.push(format!(
                "{at}: id must be a letter followed by up to 63 letters, digits or `_`"
            ));
        }
        if let Some(first) = seen.insert(&step.id, i) {
            problems.push(format!(
                "{at}: id `{}` is already used by steps[{first}]",
                step.id
            ));
            seen.insert(&step.id, first);
        }
        let earlier = |id: &str| {
            def.steps
                .iter()
                .position(|s| s.id == id)
                .is_some_and(|j| order.runs_after(i, j))
        };
        let mut check_expr = |field: &str, code: &str, steps_visible: bool| {
            if let Err(e) = jq::check(code) {
                problems.push(format!("{at}: {field}: {e}"));
            }
            for id in referenced_steps(code) {
                if !steps_visible {
                    problems.push(format!(
                        "{at}: {field}: refers to step `{id}`, but a compensation sees only `.input`, `.output` and `.trigger`"
                    ));
                } else if !earlier(&id) {
                    problems.push(format!(
                        "{at}: {field}: refers to step `{id}`, which does not run before this step (name it, or a step that runs after it, in `needs`)"
                    ));
                }
            }
        };
        if let Some(code) = &step.when {
            check_expr("when", code, true);
        }
        if let Some(code) = &step.input {
            check_expr("input", code, true);
        }
        if let Some(code) = &step.map {
            check_expr("map", code, true);
        }
        if let Some(code) = step.compensate.as_ref().and_then(|c| c.input.as_ref()) {
            check_expr("compensate.input", code, false);
        }
        if let Some(wait) = &step.wait {
            for (field, call) in [("notify", &wait.notify), ("escalate", &wait.escalate)] {
                if let Some(code) = call.as_ref().and_then(|c| c.input.as_ref()) {
                    check_expr(&format!("wait.{field}.input"), code, true);
                }
            }
        }
        for r in &step.record {
            check_expr("record.key", &r.key, true);
            check_expr("record.id", &r.id, true);
        }
        let lookup = step.lookup.as_ref();
        for code in [
            lookup.and_then(|l| l.key.as_ref()),
            lookup.and_then(|l| l.id.as_ref()),
        ] {
            code.inspect(|code| check_expr("lookup", code, true));
        }
        if let Some(code) = step.writes.as_ref().and_then(|w| w.fields_from.as_ref()) {
            check_expr("writes.fields_from", code, true);
        }
        problems.extend(super::governance::writes_problems(&at, &def, step));
        let connection = step.connection.as_deref();
        problems.extend(xref::problems(&at, connection, &step.record, lookup));
        if step.retry.attempts == 0 {
            problems.push(format!("{at}: retry.attempts: must be at least 1"));
        }
        if step.deadline_ms == Some(0) {
            problems.push(format!("{at}: deadline_ms: must be at least 1"));
        }
        if step.retry.attempts > 100 {
            problems.push(format!("{at}: retry.attempts: at most 100"));
        }
        match step.action() {
            None => problems.push(format!(
                "{at}: a step needs exactly one of `connection` with `operation`, `transform`, `map`, `wait` or `lookup`"
            )),
            Some(Action::Lookup(_)) => {
                if step.input.is_some() || step.compensate.is_some() {
                    problems.push(format!(
                        "{at}: a `lookup` step reads the run context; it takes no `input` or `compensate`"
                    ));
                }
            }
            Some(Action::Wait(wait)) => {
                if !valid_signal(&wait.signal) {
                    problems.push(format!(
                        "{at}: wait.signal: `{}` must be a letter followed by up to 63 letters, digits, `_` or `-`",
                        wait.signal
                    ));
                }
                if wait.deadline_ms == Some(0) {
                    problems.push(format!("{at}: wait.deadline_ms: must be at least 1"));
                }
                if wait.deadline_ms.is_none() && wait.on_deadline != OnDeadline::Fail {
                    problems.push(format!(
                        "{at}: wait.on_deadline: needs a `deadline_ms` to pass"
                    ));
                }
                match (&wait.escalate, wait.on_deadline) {
                    (None, OnDeadline::Escalate) => problems.push(format!(
                        "{at}: wait.escalate: `on_deadline = \"escalate\"` needs the operation to call"
                    )),
                    (Some(_), OnDeadline::Fail | OnDeadline::Continue) => problems.push(format!(
                        "{at}: wait.escalate: only called with `on_deadline = \"escalate\"`"
                    )),
                    _ => {}
                }
                for (field, call) in [("notify", &wait.notify), ("escalate", &wait.escalate)] {
                    let Some(call) = call else { continue };
                    if let Err(p) = check_operation(runtime, &call.connection, &call.operation).await {
                        problems.push(format!("{at}: wait.{field}: {p}"));
                    }
                }
                if step.input.is_some() || step.compensate.is_some() {
                    problems.push(format!(
                        "{at}: a `wait` step takes no `input` or `compensate` (its notify call has its own `input`)"
                    ));
                }
            }
            Some(Action::Invoke {
                connection,
                operation,
            }) => {
                if let Err(p) = check_operation(runtime, connection, operation).await {
                    problems.push(format!("{at}: {p}"));
                }
            }
            Some(Action::Transform(plugin)) => match runtime.plugin(plugin, None) {
                None => problems.push(format!("{at}: transform: no plugin `{plugin}` is loaded")),
                Some(p) if p.world() != World::Transform => problems.push(format!(
                    "{at}: transform: plugin `{plugin}` is a {}, not a transform",
                    p.world()
                )),
                Some(_) => {}
            },
            Some(Action::Map(_)) => {
                if step.input.is_some() {
                    problems.push(format!(
                        "{at}: input: a `map` step reads the run context; it takes no `input`"
                    ));
                }
            }
        }
        if let Some(c) = &step.compensate {
            match step.compensation() {
                None => problems.push(format!(
                    "{at}: compensate.connection: needed when the step calls no connection"
                )),
                Some((connection, _)) => {
                    if let Err(p) = check_operation(runtime, connection, &c.operation).await {
                        problems.push(format!("{at}: compensate: {p}"));
                    }
                }
            }
        }
    }
    problems.extend(super::kpi::check(&def));
    if problems.is_empty() {
        Ok(def)
    } else {
        Err(problems.join("; "))
    }
}

async fn connector(
    runtime: &Runtime,
    connection: &str,
) -> Result<std::sync::Arc<junction_runtime::plugins::Plugin>, String> {
    runtime
        .connector_for(connection)
        .await
        .map(|(_, plugin)| plugin)
        .map_err(|e| e.to_string())
}

async fn check_operation(
    runtime: &Runtime,
    connection: &str,
    operation: &str,
) -> Result<(), String> {
    let plugin = connector(runtime, connection)
        .await
        .map_err(|e| format!("connection: {e}"))?;
    if plugin.operation(operation).is_none() {
        let offered: Vec<&str> = plugin
            .info()
            .operations
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        return Err(format!(
            "operation: connection `{connection}` (plugin `{}`) has no operation `{operation}`; it offers: {}",
            plugin.name(),
            offered.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_trigger_and_step_kind() {
        let def = parse(
            r#"
            trigger = { type = "schedule", cron = "*/5 * * * *" }
            [[steps]]
            id = "a"
            connection = "c"
            operation = "o"
            retry = { attempts = 2, backoff_ms = 10 }
            deadline_ms = 5000
            compensate = { operation = "undo" }
            [[steps]]
            id = "b"
            map = ".steps.a"
            [[steps]]
            id = "t"
            transform = "x"
            "#,
        )
        .unwrap();
        assert_eq!(def.trigger.kind(), "schedule");
        assert_eq!(
            def.steps[0].action(),
            Some(Action::Invoke {
                connection: "c",
                operation: "o"
            })
        );
        assert_eq!(def.steps[0].compensation().unwrap().0, "c");
        assert_eq!(def.steps[0].deadline_ms, Some(5000));
        assert_eq!(def.steps[1].action(), Some(Action::Map(".steps.a")));
        assert_eq!(def.steps[2].action(), Some(Action::Transform("x")));
        assert_eq!(def.steps[2].retry, Retry::default());
    }

    #[test]
    fn cron_accepts_five_and_six_fields() {
        assert!(cron_schedule("*/5 * * * *").is_ok());
        assert!(cron_schedule("0 0 9 * * Mon-Fri").is_ok());
        assert!(cron_schedule("every day").is_err());
        assert!(cron_schedule("61 * * * *").is_err());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = parse("trigger = { type = \"manual\" }\n[[steps]]\nid = \"a\"\nmapp = \".\"")
            .unwrap_err();
        assert!(err.contains("mapp"), "{err}");
    }

    #[test]
    fn step_references_are_found() {
        assert_eq!(
            referenced_steps(r#"{a: .steps.one.x, b: .steps["two"], c: .stepsx}"#),
            ["one", "two"]
        );
        assert!(valid_step_id("create_issue2"));
        assert!(!valid_step_id("2x"));
        assert!(!valid_step_id("a-b"));
    }
}
