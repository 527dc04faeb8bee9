//! Durable flows through the `/v1` API: deploy and validation, runs against
//! the Jira stand-in and the echo guest, retries, the saga, dead letters and
//! replay, and a run that outlives the runtime that claimed it.
//!
//! Nothing here waits a fixed time: each test polls the API (or the store)
//! until the run reaches a terminal state, with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode};
use junction::config::{Config, Scope};
use junction_api as api;
use junction_flows::{FlowOptions, Flows};
use junction_runtime::runtime::{ConnectionSpec, Runtime};
use junction_standins::{JiraStandin, Misbehaviour};
use junction_tests::{eventually, guests, runtime_with, step, test_config, test_limits};
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-0123456789";
/// The hosts' `secret_key` (PostgreSQL needs one).
const SECRET_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const TERMINAL: [&str; 3] = ["completed", "compensated", "failed"];

fn options() -> FlowOptions {
    FlowOptions {
        workers: 2,
        lease: Duration::from_secs(5),
        idle_poll: Duration::from_millis(50),
    }
}

fn config() -> Config {
    junction_tests::config_with_token("admin", ADMIN, Scope::Admin)
}

/// Compiled code shared by the tests of this file: the first one to load
/// the plugins compiles them, the others read the cache.
fn cache_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("flows-compile-cache")
}

static LOADING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn load_plugins(rt: &Runtime) {
    let _first = LOADING.lock().await;
    rt.load_plugin(junction::shipped::JIRA_CONNECTOR)
        .await
        .unwrap();
    rt.load_plugin(&guests::bytes(guests::ECHO)).await.unwrap();
}

async fn connect(rt: &Runtime, jira: &JiraStandin) {
    rt.put_connection(
        "jira",
        ConnectionSpec {
            plugin: "jira".into(),
            config: BTreeMap::from([("base_url".into(), jira.base_url())]),
            auth: Some(junction_store::Auth::Basic {
                username: "ops@acme.example".into(),
                password: "jira-api-token".into(),
            }),
            allowed_hosts: vec![jira.host()],
            private_hosts: vec![jira.host()],
            ..ConnectionSpec::default()
        },
    )
    .await
    .unwrap();
    // The echo guest's `fetch` reaches the stand-in too, which records every
    // request in order: a log of side effects a test can read.
    rt.put_connection(
        "echo",
        ConnectionSpec {
            plugin: "echo".into(),
            allowed_hosts: vec![jira.host()],
            private_hosts: vec![jira.host()],
            ..ConnectionSpec::default()
        },
    )
    .await
    .unwrap();
}

struct Harness {
    app: Router,
    jira: JiraStandin,
}

async fn harness() -> Harness {
    harness_on(None).await
}

/// The configuration of a host over `database` (`None`: in memory).
fn host_config(database: Option<String>) -> Config {
    {
        let mut config = test_config(test_limits());
        config.store.database = database.map(std::path::PathBuf::from);
        config.store.secret_key = Some(SECRET_KEY.to_string().into());
        config.runtime.cache_dir = Some(cache_dir());
        config
    }
}

/// A harness over the PostgreSQL database at `postgres`, or in memory.
async fn harness_on(postgres: Option<String>) -> Harness {
    let host = host_config(postgres);
    let rt = match &host.store.database {
        None => runtime_with(&host).await,
        Some(_) => Runtime::open(&host.store, &host.runtime).await.unwrap(),
    };
    load_plugins(&rt).await;
    let jira = JiraStandin::start("ops@acme.example", "jira-api-token")
        .await
        .unwrap();
    connect(&rt, &jira).await;
    let flows = Flows::new(rt, options());
    flows.spawn_workers();
    let app = api::router_with_flows(flows.clone(), &config().api);
    Harness { app, jira }
}

impl Harness {
    async fn call(&self, method: &str, uri: &str, body: impl Into<String>) -> (StatusCode, Value) {
        let auth = ("authorization".to_string(), format!("Bearer {ADMIN}"));
        self.with_headers(method, uri, &[auth], body).await
    }

    async fn with_headers(
        &self,
        method: &str,
        uri: &str,
        headers: &[(String, String)],
        body: impl Into<String>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request.body(Body::from(body.into())).unwrap();
        let answer = junction_tests::openapi::send(&self.app, request).await;
        (answer.status, answer.json())
    }

    async fn deploy(&self, name: &str, toml: &str) {
        let (status, body) = self.call("PUT", &format!("/v1/flows/{name}"), toml).await;
        assert!(status.is_success(), "deploy {name}: {status} {body}");
    }

    async fn start(&self, flow: &str, trigger: Value) -> String {
        let (status, body) = self
            .call(
                "POST",
                &format!("/v1/flows/{flow}/runs"),
                trigger.to_string(),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body["run"].as_str().unwrap().to_string()
    }

    /// Polls the run until it is terminal; panics after 20 s.
    async fn finished(&self, run: &str) -> Value {
        eventually(
            &format!("run {run} finishes"),
            Duration::from_secs(20),
            Duration::from_millis(10),
            || async {
                let (status, body) = self.call("GET", &format!("/v1/runs/{run}"), "").await;
                assert_eq!(status, StatusCode::OK, "{body}");
                if TERMINAL.contains(&body["status"].as_str().unwrap()) {
                    Ok(body)
                } else {
                    Err(format!("{body:#}"))
                }
            },
        )
        .await
    }

    /// Paths of the stand-in requests, in arrival order.
    fn paths(&self) -> Vec<String> {
        self.jira
            .requests()
            .into_iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    fn count(&self, path: &str) -> usize {
        self.paths().iter().filter(|p| p.ends_with(path)).count()
    }
}

// Key cases run on both databases: `sqlite::<case>` (in memory, or a file
// when the case needs a database that outlives a host) and
// `postgres::<case>`.
junction_tests::sqlite_and_postgres!("flows":
    a_flow_runs_its_steps_in_order_and_records_each,
    an_unavailable_system_is_retried_until_it_answers,
    a_permanent_failure_compensates_in_reverse_then_replay_completes,
    a_run_claimed_by_a_host_that_died_is_finished_after_its_lease,
);

/// A step that records `POST /effects/<name>` at the stand-in (and, as a
/// compensation, `POST /undo/<name>`).
fn effect_step(base: &str, id: &str, compensate: bool) -> String {
    let mut text = format!(
        r#"
[[steps]]
id = "{id}"
connection = "echo"
operation = "fetch"
input = '{{url: "{base}/effects/{id}", method: "POST"}}'
"#
    );
    if compensate {
        text.push_str(&format!(
            "compensate = {{ operation = \"fetch\", input = '{{url: \"{base}/undo/{id}\", method: \"POST\"}}' }}\n"
        ));
    }
    text
}

async fn a_flow_runs_its_steps_in_order_and_records_each(postgres: Option<String>) {
    let h = harness_on(postgres).await;
    h.deploy(
        "deal-to-project",
        r#"
description = "closed-won deal -> Jira project and kickoff issue"
trigger = { type = "manual" }

[[steps]]
id = "project"
connection = "jira"
operation = "create-project"
input = "{key: .trigger.key, name: .trigger.name}"

[[steps]]
id = "shape"
map = '{project_key: .steps.project.key, summary: ("Kickoff: " + .trigger.name)}'

[[steps]]
id = "issue"
connection = "jira"
operation = "create-issue"

[[steps]]
id = "who"
connection = "echo"
operation = "whoami"
when = ".steps.issue.key != null"
input = "{}"

[[steps]]
id = "never"
connection = "echo"
operation = "noop"
when = ".trigger.notify"
"#,
    )
    .await;
    let run = h
        .start(
            "deal-to-project",
            json!({"key": "ACME", "name": "Acme rollout"}),
        )
        .await;
    let done = h.finished(&run).await;
    assert_eq!(done["status"], "completed", "{done:#}");
    assert_eq!(h.jira.projects().len(), 1);
    let issues = h.jira.issues();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0]["fields"]["summary"], "Kickoff: Acme rollout");
    assert_eq!(issues[0]["fields"]["project"]["key"], "ACME");
    for id in ["project", "shape", "issue", "who"] {
        let s = step(&done, id);
        assert_eq!(s["status"], "completed", "{s:#}");
        assert_eq!(s["attempts"], 1);
        assert_eq!(s["idempotency_key"], format!("{run}:{id}"));
        assert!(s["started_at"].is_string() && s["finished_at"].is_string());
    }
    assert_eq!(step(&done, "issue")["output"]["key"], "ACME-1");
    // The connector got the step's idempotency key and the run id.
    let who = &step(&done, "who")["output"];
    assert_eq!(who["idempotency_key"], format!("{run}:who"));
    assert_eq!(who["run_id"], run.as_str());
    assert_eq!(step(&done, "never")["status"], "skipped");

    let (status, runs) = h
        .call("GET", "/v1/runs?flow=deal-to-project&status=completed", "")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1);
    let (status, _) = h.call("GET", "/v1/runs?status=bogus", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = h.call("GET", "/v1/runs/no-such-run", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = h.call("POST", "/v1/flows/nope/runs", "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_are_versioned_listed_and_audited() {
    let h = harness().await;
    let v1 = "trigger = { type = \"manual\" }\n[[steps]]\nid = \"a\"\nmap = \".trigger\"\n";
    let v2 = "trigger = { type = \"schedule\", cron = \"*/5 * * * *\" }\n[[steps]]\nid = \"a\"\nmap = \".trigger.x\"\n";
    let (status, body) = h.call("PUT", "/v1/flows/f", v1).await;
    assert_eq!(
        (status, body["version"].clone()),
        (StatusCode::CREATED, json!(1))
    );
    let (status, body) = h.call("PUT", "/v1/flows/f", v1).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["version"].clone(), body["changed"].clone()),
        (json!(1), json!(false))
    );
    let (status, body) = h.call("PUT", "/v1/flows/f", v2).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["version"], 2);
    let (_, detail) = h.call("GET", "/v1/flows/f", "").await;
    assert_eq!(detail["source"], v2);
    assert_eq!(detail["trigger"], "schedule");
    assert_eq!(detail["versions"].as_array().unwrap().len(), 2);
    let (_, list) = h.call("GET", "/v1/flows", "").await;
    assert_eq!(list["flows"][0]["name"], "f");
    let (_, audit) = h.call("GET", "/v1/audit?action=flow.deploy", "").await;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 3);
    let (status, _) = h.call("GET", "/v1/flows/missing", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_flows_are_refused_naming_the_location() {
    let h = harness().await;
    let manual = "trigger = { type = \"manual\" }\n";
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "unknown connection",
            format!("{manual}[[steps]]\nid = \"a\"\nconnection = \"nope\"\noperation = \"echo\"\n"),
            "steps[0] (id `a`): connection: no connection named `nope`",
        ),
        (
            "unknown operation",
            format!("{manual}[[steps]]\nid = \"a\"\nconnection = \"echo\"\noperation = \"launch\"\n"),
            "steps[0] (id `a`): operation: connection `echo` (plugin `echo`) has no operation `launch`",
        ),
        (
            "unknown transform",
            format!("{manual}[[steps]]\nid = \"a\"\ntransform = \"nope\"\n"),
            "steps[0] (id `a`): transform: no plugin `nope` is loaded",
        ),
        (
            "unknown compensation operation",
            format!("{manual}[[steps]]\nid = \"a\"\nconnection = \"echo\"\noperation = \"echo\"\ncompensate = {{ operation = \"undo\" }}\n"),
            "steps[0] (id `a`): compensate: operation:",
        ),
        (
            "reference to a later step",
            format!("{manual}[[steps]]\nid = \"a\"\nmap = \".steps.b\"\n[[steps]]\nid = \"b\"\nmap = \".\"\n"),
            "steps[0] (id `a`): map: refers to step `b`, which does not run before this step",
        ),
        (
            "reference to an unknown step",
            format!("{manual}[[steps]]\nid = \"a\"\nconnection = \"echo\"\noperation = \"echo\"\ninput = \".steps.ghost.x\"\n"),
            "steps[0] (id `a`): input: refers to step `ghost`",
        ),
        (
            "duplicate ids",
            format!("{manual}[[steps]]\nid = \"a\"\nmap = \".\"\n[[steps]]\nid = \"a\"\nmap = \".\"\n"),
            "steps[1] (id `a`): id `a` is already used by steps[0]",
        ),
        (
            "bad jq",
            format!("{manual}[[steps]]\nid = \"a\"\nmap = \"{{x: }}\"\n"),
            "steps[0] (id `a`): map: not a valid jq expression",
        ),
        (
            "bad jq in a condition",
            format!("{manual}[[steps]]\nid = \"a\"\nmap = \".\"\nwhen = \"nosuchfilter\"\n"),
            "steps[0] (id `a`): when: not a valid jq expression",
        ),
        (
            "no action",
            format!("{manual}[[steps]]\nid = \"a\"\n"),
            "steps[0] (id `a`): a step needs exactly one of",
        ),
        (
            "bad cron",
            "trigger = { type = \"schedule\", cron = \"every monday\" }\n[[steps]]\nid = \"a\"\nmap = \".\"\n".into(),
            "trigger.cron: `every monday` is not a cron schedule",
        ),
        (
            "unknown event connection",
            "trigger = { type = \"event\", connection = \"nope\", event = \"deal.won\" }\n[[steps]]\nid = \"a\"\nmap = \".\"\n".into(),
            "trigger.connection: no connection named `nope`",
        ),
        (
            "not TOML",
            "trigger = [".into(),
            "the flow file is not valid",
        ),
        (
            "unknown field",
            format!("{manual}[[steps]]\nid = \"a\"\nmap = \".\"\nretries = 3\n"),
            "unknown field `retries`",
        ),
    ];
    for (what, toml, expected) in cases {
        let (status, body) = h.call("PUT", "/v1/flows/bad", toml).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {body}");
        assert_eq!(body["error"]["code"], "invalid_flow", "{what}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{what}: {message}");
    }
    let (status, _) = h.call("GET", "/v1/flows/bad", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing invalid was stored");
    let (status, body) = h
        .call(
            "PUT",
            "/v1/flows/Bad%20Name",
            format!("{manual}[[steps]]\nid = \"a\"\nmap = \".\"\n"),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

async fn an_unavailable_system_is_retried_until_it_answers(postgres: Option<String>) {
    let h = harness_on(postgres).await;
    h.deploy(
        "retrying",
        r#"
trigger = { type = "manual" }
[[steps]]
id = "project"
connection = "jira"
operation = "create-project"
input = "{key: \"RETRY\", name: \"Retried\"}"
retry = { attempts = 4, backoff_ms = 20 }
"#,
    )
    .await;
    h.jira.misbehave(Misbehaviour::ServerError { times: 2 });
    let run = h.start("retrying", json!({})).await;
    let done = h.finished(&run).await;
    assert_eq!(done["status"], "completed", "{done:#}");
    let s = step(&done, "project");
    assert_eq!(s["attempts"], 3);
    let errors = s["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert!(
        errors.iter().all(|e| e["kind"] == "unavailable"),
        "{errors:?}"
    );
    assert_eq!(h.jira.projects().len(), 1);
    // Each attempt first looks up the project lead (the connection's own
    // user): the two failures met that request, the third attempt created.
    assert_eq!(h.count("GET /rest/api/3/myself"), 3);
    assert_eq!(h.count("POST /rest/api/3/project"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_step_waits_as_long_as_it_is_told() {
    let h = harness().await;
    h.deploy(
        "limited",
        r#"
trigger = { type = "manual" }
[[steps]]
id = "project"
connection = "jira"
operation = "create-project"
input = "{key: \"LIMIT\", name: \"Limited\"}"
retry = { attempts = 3, backoff_ms = 10 }
"#,
    )
    .await;
    h.jira.misbehave(Misbehaviour::RateLimited {
        times: 1,
        retry_after_secs: 1,
    });
    let started = Instant::now();
    let run = h.start("limited", json!({})).await;
    let done = h.finished(&run).await;
    assert_eq!(done["status"], "completed", "{done:#}");
    let s = step(&done, "project");
    assert_eq!(s["attempts"], 2);
    assert_eq!(s["errors"][0]["kind"], "rate_limited");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the retry came after {:?}, before the 1 s the system asked for",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_past_its_step_deadline_is_retried() {
    let h = harness().await;
    let base = h.jira.base_url();
    h.deploy(
        "slow",
        &format!(
            r#"
trigger = {{ type = "manual" }}
[[steps]]
id = "slow"
connection = "echo"
operation = "fetch"
input = '{{url: "{base}/slow"}}'
deadline_ms = 150
retry = {{ attempts = 2, backoff_ms = 10 }}
"#
        ),
    )
    .await;
    h.jira.misbehave(Misbehaviour::Latency {
        times: 1,
        millis: 5_000,
    });
    let run = h.start("slow", json!({})).await;
    let done = h.finished(&run).await;
    assert_eq!(done["status"], "completed", "{done:#}");
    let s = step(&done, "slow");
    assert_eq!(s["attempts"], 2);
    assert_eq!(s["errors"][0]["kind"], "timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_is_not_retried_and_is_dead_lettered() {
    let h = harness().await;
    h.deploy(
        "invalid",
        r#"
trigger = { type = "manual" }
[[steps]]
id = "project"
connection = "jira"
operation = "create-project"
input = "{key: .trigger.key, name: \"x\"}"
retry = { attempts = 5, backoff_ms = 10 }
"#,
    )
    .await;
    let run = h.start("invalid", json!({"key": "not a key"})).await;
    let done = h.finished(&run).await;
    assert_eq!(done["status"], "failed", "{done:#}");
    assert_eq!(done["failed_step"], "project");
    let s = step(&done, "project");
    assert_eq!(s["attempts"], 1);
    assert_eq!(s["errors"][0]["kind"], "invalid_input");
    // The connector refuses a key that breaks Jira's rule before any request.
    assert_eq!(h.count("POST /rest/api/3/project"), 0);
    let (_, letters) = h.call("GET", "/v1/dead-letters", "").await;
    let letter = &letters["dead_letters"][0];
    assert_eq!(letter["run_id"], run.as_str());
    assert_eq!(letter["step"], "project");
    assert_eq!(letter["attempts"], 1);
    assert_eq!(letter["input"], json!({"key": "not a key", "name": "x"}));
    // Discarding keeps the run as it ended.
    let id = letter["id"].as_str().unwrap();
    let (status, _) = h
        .call("DELETE", &format!("/v1/dead-letters/{id}"), "")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, letters) = h.call("GET", "/v1/dead-letters", "").await;
    assert!(letters["dead_letters"].as_array().unwrap().is_empty());
    let (status, _) = h
        .call("DELETE", &format!("/v1/dead-letters/{id}"), "")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, audit) = h.call("GET", "/v1/audit?action=run.discard", "").await;
    assert_eq!(audit["entries"][0]["target"], run.as_str());
}

async fn a_permanent_failure_compensates_in_reverse_then_replay_completes(
    postgres: Option<String>,
) {
    let h = harness_on(postgres).await;
    let base = h.jira.base_url();
    let flow = format!(
        "trigger = {{ type = \"manual\" }}\n{}{}{}",
        effect_step(&base, "one", true),
        effect_step(&base, "two", true),
        r#"
[[steps]]
id = "three"
connection = "jira"
operation = "create-issue"
input = '{project_key: "FIX", summary: "Kickoff"}'
retry = { attempts = 3, backoff_ms = 10 }
"#
    );
    h.deploy("saga", &flow).await;
    let run = h.start("saga", json!({})).await;
    let done = h.finished(&run).await;
    assert_eq!(done["status"], "compensated", "{done:#}");
    assert_eq!(step(&done, "three")["status"], "failed");
    assert_eq!(
        step(&done, "three")["attempts"],
        1,
        "invalid input is not retried"
    );
    assert_eq!(step(&done, "two")["status"], "compensated");
    assert_eq!(step(&done, "one")["status"], "compensated");
    assert_eq!(
        h.paths(),
        [
            "POST /effects/one",
            "POST /effects/two",
            "POST /rest/api/3/issue",
            "POST /undo/two",
            "POST /undo/one",
        ]
    );
    let keys: Vec<Value> = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["idempotency_key"].clone())
        .collect();
    let (_, letters) = h.call("GET", "/v1/dead-letters?flow=saga", "").await;
    let letter = &letters["dead_letters"][0];
    assert_eq!(letter["step"], "three");
    assert_eq!(letter["errors"][0]["kind"], "invalid_input");
    assert!(
        letter["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("project"),
        "{letter}"
    );
    assert_eq!(letter["input"]["project_key"], "FIX");

    // Fix the remote system, then replay: the undone steps run again (with
    // the same keys), the failed one completes, and nothing runs twice more.
    let (status, body) = h
        .call(
            "POST",
            "/v1/connections/jira/operations/create-project",
            json!({"key": "FIX", "name": "Fixed"}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = letter["id"].as_str().unwrap();
    let (status, body) = h
        .call("POST", &format!("/v1/dead-letters/{id}/replay"), "")
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["run"], run.as_str());
    let done = h.finished(&run).await;
    assert_eq!(done["status"], "completed", "{done:#}");
    let keys_after: Vec<Value> = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["idempotency_key"].clone())
        .collect();
    assert_eq!(keys, keys_after);
    assert_eq!(h.jira.issues().len(), 1);
    assert_eq!(h.count("/effects/one"), 2);
    assert_eq!(h.count("/undo/one"), 1);
    assert_eq!(h.count("/undo/two"), 1);
    let (_, letters) = h.call("GET", "/v1/dead-letters", "").await;
    assert!(letters["dead_letters"].as_array().unwrap().is_empty());
    let (_, audit) = h.call("GET", "/v1/audit?action=run.replay", "").await;
    assert_eq!(audit["entries"][0]["target"], run.as_str());
    let (status, _) = h
        .call("POST", &format!("/v1/dead-letters/{id}/replay"), "")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_with_corrected_input_does_not_repeat_completed_steps() {
    let h = harness().await;
    let base = h.jira.base_url();
    let flow = format!(
        "trigger = {{ type = \"manual\" }}\n{}{}",
        effect_step(&base, "one", false),
        r#"
[[steps]]
id = "project"
connection = "jira"
operation = "create-project"
input = '{key: .trigger.key, name: "Replayed"}'
"#
    );
    h.deploy("fixable", &flow).await;
    let run = h.start("fixable", json!({"key": "bad key"})).await;
    let failed = h.finished(&run).await;
    assert_eq!(failed["status"], "failed", "{failed:#}");
    let key = step(&failed, "project")["idempotency_key"].clone();
    let (_, letters) = h.call("GET", "/v1/dead-letters", "").await;
    let id = letters["dead_letters"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = h
        .call(
            "POST",
            &format!("/v1/dead-letters/{id}/replay"),
            json!({"input": {"key": "GOOD", "name": "Replayed"}}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let done = h.finished(&run).await;
    assert_eq!(done["status"], "completed", "{done:#}");
    assert_eq!(
        h.count("/effects/one"),
        1,
        "a completed step is not run again"
    );
    assert_eq!(h.jira.projects()[0]["key"], "GOOD");
    let project = step(&done, "project");
    assert_eq!(project["idempotency_key"], key);
    assert_eq!(project["attempts"], 1);
    assert_eq!(
        project["errors"].as_array().unwrap().len(),
        1,
        "history is kept"
    );
    let (status, body) = h
        .call("POST", "/v1/dead-letters/nope/replay", "{\"inputs\": 1}")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

async fn a_run_claimed_by_a_host_that_died_is_finished_after_its_lease(postgres: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("junction.db").display().to_string();
    let config = host_config(Some(postgres.unwrap_or(sqlite)));
    let jira = JiraStandin::start("ops@acme.example", "jira-api-token")
        .await
        .unwrap();
    let flow = format!(
        "trigger = {{ type = \"manual\" }}\n{}{}",
        effect_step(&jira.base_url(), "one", false),
        effect_step(&jira.base_url(), "two", false),
    );

    // The first host deploys, starts a run and claims it, then dies
    // without running a step and without releasing its lease.
    let run = {
        let rt = Runtime::open(&config.store, &config.runtime).await.unwrap();
        load_plugins(&rt).await;
        connect(&rt, &jira).await;
        let flows = Flows::new(rt.clone(), options());
        flows.deploy("durable", &flow, "test").await.unwrap();
        let run = flows.start_run("durable", json!({}), None).await.unwrap();
        let claimed = flows
            .claim("host-that-dies", Duration::from_millis(400))
            .await
            .unwrap();
        assert_eq!(claimed.as_deref(), Some(run.as_str()));
        assert_eq!(
            flows
                .claim("another", Duration::from_secs(1))
                .await
                .unwrap(),
            None,
            "a leased run is not claimed twice"
        );
        run
    };

    // A new runtime over the same database picks it up once the lease expires.
    let rt = Runtime::open(&config.store, &config.runtime).await.unwrap();
    load_plugins(&rt).await;
    let flows = Flows::new(rt, options());
    flows.spawn_workers();
    let done = eventually(
        "the run finishes",
        Duration::from_secs(20),
        Duration::from_millis(10),
        || async {
            let view = flows.run(&run).await.unwrap();
            if TERMINAL.contains(&view.status.as_str()) {
                Ok(view)
            } else {
                Err(format!("{view:?}"))
            }
        },
    )
    .await;
    assert_eq!(done.status, "completed", "{done:?}");
    let steps = done.steps.unwrap();
    assert!(
        steps
            .iter()
            .all(|s| s.attempts == 1 && s.status == "completed")
    );
    assert_eq!(
        jira.requests()
            .iter()
            .filter(|r| r.path.starts_with("/effects/"))
            .count(),
        2
    );
}

const WEBHOOK_SECRET: &str = "github-webhook-secret-for-flows";

/// Posts `body` to the `hooks` connection's webhook, signed as GitHub signs.
async fn deliver(h: &Harness, body: &Value) -> (StatusCode, Value) {
    use hmac::{Hmac, KeyInit, Mac};
    let body = body.to_string();
    let mut mac =
        <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    Mac::update(&mut mac, body.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    let headers = [(
        "x-hub-signature-256".to_string(),
        format!("sha256={signature}"),
    )];
    h.with_headers("POST", "/v1/webhooks/hooks", &headers, body)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_event_starts_one_run_however_often_it_is_delivered() {
    let h = harness().await;
    let (status, body) = h
        .call(
            "PUT",
            "/v1/connections/hooks",
            json!({"plugin": "echo", "webhook": {"scheme": "github", "secret": WEBHOOK_SECRET}})
                .to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    h.deploy(
        "on-deal",
        r#"
trigger = { type = "event", connection = "hooks", event = "deal.won" }
[[steps]]
id = "echo"
connection = "echo"
operation = "echo"
input = "{deal: .trigger.data.deal, event: .trigger.id}"
"#,
    )
    .await;
    let event = json!({"id": "evt-1", "type": "deal.won", "deal": "D-7"});
    let (status, first) = deliver(&h, &event).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["runs"][0]["duplicate"], false, "{first}");
    let run = first["runs"][0]["run"].as_str().unwrap().to_string();
    let (status, again) = deliver(&h, &event).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["runs"][0]["duplicate"], true);
    assert_eq!(again["runs"][0]["run"], run.as_str());
    // Another event type starts nothing.
    let (_, other) = deliver(&h, &json!({"id": "evt-2", "type": "deal.lost"})).await;
    assert_eq!(other["events"][0]["id"], "evt-2");
    assert!(other.get("runs").is_none(), "{other}");

    let done = h.finished(&run).await;
    assert_eq!(done["status"], "completed", "{done:#}");
    assert_eq!(
        step(&done, "echo")["output"],
        json!({"deal": "D-7", "event": "evt-1"})
    );
    let (_, runs) = h.call("GET", "/v1/runs?flow=on-deal", "").await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compensation_that_fails_for_good_leaves_the_run_failed() {
    let h = harness().await;
    let base = h.jira.base_url();
    h.deploy(
        "undo-fails",
        &format!(
            r#"
trigger = {{ type = "manual" }}
[[steps]]
id = "one"
connection = "echo"
operation = "fetch"
input = '{{url: "{base}/effects/one", method: "POST"}}'
compensate = {{ operation = "fetch", input = '{{url: "{base}/undo/one", method: "BOGUS"}}' }}

[[steps]]
id = "two"
connection = "jira"
operation = "create-issue"
input = '{{project_key: "NONE", summary: "x"}}'
"#
        ),
    )
    .await;
    let run = h.start("undo-fails", json!({})).await;
    let done = h.finished(&run).await;
    assert_eq!(done["status"], "failed", "{done:#}");
    let one = step(&done, "one");
    assert_eq!(one["status"], "compensation_failed");
    assert_eq!(
        one["compensation_attempts"], 1,
        "invalid input is not retried"
    );
    let (_, letters) = h.call("GET", "/v1/dead-letters?flow=undo-fails", "").await;
    let errors = letters["dead_letters"][0]["errors"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0]["phase"], "step");
    assert_eq!(errors[1]["phase"], "compensate");
    assert!(errors[1]["message"].as_str().unwrap().contains("BOGUS"));

    // Step one was never undone: a replay after the fix does not run it again.
    let (status, body) = h
        .call(
            "POST",
            "/v1/connections/jira/operations/create-project",
            json!({"key": "NONE", "name": "Now there"}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = letters["dead_letters"][0]["id"].as_str().unwrap();
    let (status, _) = h
        .call("POST", &format!("/v1/dead-letters/{id}/replay"), "")
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let done = h.finished(&run).await;
    assert_eq!(done["status"], "completed", "{done:#}");
    assert_eq!(h.count("/effects/one"), 1);
    assert_eq!(h.jira.issues().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_flow_starts_runs_on_its_own() {
    let h = harness().await;
    h.deploy(
        "every-second",
        r#"
trigger = { type = "schedule", cron = "* * * * * *" }
[[steps]]
id = "tick"
map = "{at: .trigger.scheduled_at}"
"#,
    )
    .await;
    let run = eventually(
        "a scheduled run completes",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async {
            let (_, runs) = h
                .call("GET", "/v1/runs?flow=every-second&status=completed", "")
                .await;
            runs["runs"]
                .as_array()
                .unwrap()
                .first()
                .cloned()
                .ok_or_else(|| format!("{runs}"))
        },
    )
    .await;
    assert_eq!(run["trigger"]["type"], "schedule");
    assert!(run["trigger"]["scheduled_at"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flows_dead_letters_are_replayed_in_bulk() {
    let h = harness().await;
    h.deploy(
        "bulk",
        r#"
trigger = { type = "manual" }
[[steps]]
id = "project"
connection = "jira"
operation = "create-project"
input = "{key: .trigger.key, name: .trigger.key}"
"#,
    )
    .await;
    // Jira refuses the project until the credentials work again.
    h.jira.misbehave(Misbehaviour::Unauthorized { times: 2 });
    let first = h.start("bulk", json!({"key": "BULKA"})).await;
    assert_eq!(h.finished(&first).await["status"], "failed");
    let second = h.start("bulk", json!({"key": "BULKB"})).await;
    assert_eq!(h.finished(&second).await["status"], "failed");
    let (_, letters) = h.call("GET", "/v1/dead-letters?flow=bulk", "").await;
    assert_eq!(letters["dead_letters"].as_array().unwrap().len(), 2);
    assert_eq!(
        letters["dead_letters"][0]["errors"][0]["kind"],
        "unauthorized"
    );

    let (status, _) = h.call("POST", "/v1/dead-letters/replay", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = h
        .call("POST", "/v1/dead-letters/replay?flow=bulk", "")
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["runs"], json!([first, second]));
    for run in [&first, &second] {
        assert_eq!(h.finished(run).await["status"], "completed");
    }
    assert_eq!(h.jira.projects().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invokes_with_an_idempotency_key_run_once() {
    let h = harness().await;
    let url = format!("{}/effects/charge", h.jira.base_url());
    let body = json!({"url": url, "method": "POST"}).to_string();
    let keyed = |key: &str| {
        vec![
            ("authorization".to_string(), format!("Bearer {ADMIN}")),
            ("idempotency-key".to_string(), key.to_string()),
        ]
    };
    let path = "/v1/connections/echo/operations/fetch";
    let (status, first) = h
        .with_headers("POST", path, &keyed("k-1"), body.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, again) = h
        .with_headers("POST", path, &keyed("k-1"), body.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(first, again, "the stored answer comes back");
    assert_eq!(h.count("/effects/charge"), 1, "the plugin ran once");

    let other = json!({"url": url, "method": "PUT"}).to_string();
    let (status, refused) = h.with_headers("POST", path, &keyed("k-1"), other).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["code"], "idempotency_key_reused");

    // While the first request with a key runs, a second one is refused.
    h.jira.misbehave(Misbehaviour::Latency {
        times: 1,
        millis: 1_000,
    });
    let k2 = keyed("k-2");
    let slow = h.with_headers("POST", path, &k2, body.clone());
    let racing = async {
        // Let the slow one claim the key first: poll until the stand-in sees it.
        eventually(
            "the first request arrives",
            Duration::from_secs(10),
            Duration::from_millis(5),
            || async {
                let seen = h.count("/effects/charge");
                if seen >= 2 {
                    Ok(())
                } else {
                    Err(format!("{seen} requests seen"))
                }
            },
        )
        .await;
        h.with_headers("POST", path, &k2, body.clone()).await
    };
    let ((slow_status, _), (race_status, raced)) = tokio::join!(slow, racing);
    assert_eq!(slow_status, StatusCode::OK);
    assert_eq!(race_status, StatusCode::CONFLICT, "{raced}");
    assert_eq!(raced["error"]["code"], "idempotency_key_in_flight");
    assert_eq!(h.count("/effects/charge"), 2);

    // An error releases the key: the same request can be retried with it.
    let (status, _) = h
        .with_headers(
            "POST",
            path,
            &keyed("k-3"),
            json!({"url": url, "method": "BOGUS"}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = h
        .with_headers(
            "POST",
            path,
            &keyed("k-3"),
            json!({"url": url, "method": "BOGUS"}).to_string(),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not 409: the key was released"
    );
}
