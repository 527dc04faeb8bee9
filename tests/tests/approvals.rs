//! Wait steps (approvals): a run parks durably until a signal arrives
//! through `POST /v1/runs/{id}/signals/{name}`, survives a SIGKILL of its
//! host while it waits, records who decided what and when (with the run,
//! in the audit log, as CloudEvents), and takes the approve or reject path;
//! a passed deadline takes its own path. A signal to a run that does not
//! wait for it is 409; a read token cannot signal.
//!
//! Runs are waited for by polling, never by sleeping.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use junction::config::{Scope, Token};
use junction_api as api;
use junction_flows::{FlowOptions, Flows};
use junction_tests::{eventually, runtime_with, test_config, test_limits};
use serde_json::{Value, json};

const INVOKER: &str = "invoker-token-approvals-0123456789";
const READER: &str = "reader-token-approvals-0123456789";
const HOST_CONFIG_VAR: &str = "JUNCTION_APPROVALS_HOST_CONFIG";

/// Staffing is confirmed before assignments are booked; a reject takes
/// the other path.
const STAFFING: &str = r#"
trigger = { type = "manual" }
[[steps]]
id = "project"
map = "{project: .trigger.project}"

[[steps]]
id = "staffing"
[steps.wait]
signal = "staffing_confirmed"

[[steps]]
id = "book"
when = '.steps.staffing.decision == "approve"'
map = "{booked: .steps.project.project, by: .steps.staffing.by, hours: .steps.staffing.data.hours}"

[[steps]]
id = "replan"
when = '.steps.staffing.decision == "reject"'
map = "{replan: .steps.project.project, why: .steps.staffing.comment}"
"#;

fn deadline_flow(on_deadline: &str) -> String {
    format!(
        r#"
trigger = {{ type = "manual" }}
[[steps]]
id = "approval"
[steps.wait]
signal = "approve"
deadline_ms = 50
on_deadline = "{on_deadline}"

[[steps]]
id = "fallback"
when = '.steps.approval.decision == "expired"'
map = "{{fallback: true}}"
"#
    )
}

struct Host {
    app: axum::Router,
    flows: Arc<Flows>,
}

async fn host() -> Host {
    let mut config = test_config(test_limits());
    let token = |t: &str, scope| Token {
        token: t.into(),
        scope,
    };
    config.api.tokens = BTreeMap::from([
        ("ops".into(), token(INVOKER, Scope::Invoker)),
        ("reader".into(), token(READER, Scope::Read)),
    ]);
    let rt = runtime_with(&config).await;
    let flows = Flows::new(
        rt,
        FlowOptions {
            workers: 2,
            lease: Duration::from_secs(5),
            idle_poll: Duration::from_millis(20),
        },
    );
    flows.spawn_workers();
    flows.deploy("staffing", STAFFING, "tests").await.unwrap();
    for on_deadline in ["continue", "fail"] {
        let name = format!("deadline-{on_deadline}");
        flows
            .deploy(&name, &deadline_flow(on_deadline), "tests")
            .await
            .unwrap();
    }
    let app = api::router_with_flows(flows.clone(), &config.api);
    Host { app, flows }
}

impl Host {
    async fn call(&self, token: &str, method: &str, uri: &str, body: Value) -> (StatusCode, Value) {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        junction_tests::openapi::call(&self.app, Some(token), method, uri, body).await
    }

    async fn start(&self, flow: &str, trigger: Value) -> String {
        self.flows.start_run(flow, trigger, None).await.unwrap()
    }

    async fn until(&self, run: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        eventually(
            &format!("run {run}: {what}"),
            Duration::from_secs(30),
            Duration::from_millis(10),
            || async {
                let (_, view) = self
                    .call(READER, "GET", &format!("/v1/runs/{run}"), Value::Null)
                    .await;
                if done(&view) {
                    Ok(view)
                } else {
                    Err(format!("{view:#}"))
                }
            },
        )
        .await
    }
}

fn waits_for(view: &Value, signal: &str) -> bool {
    view["waiting_for"]["signal"] == signal
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_records_who_decided_and_takes_the_approve_path() {
    let h = host().await;
    let run = h.start("staffing", json!({"project": "GLOBEX-ERP"})).await;
    let view = h
        .until(&run, "waits for staffing", |v| {
            waits_for(v, "staffing_confirmed")
        })
        .await;
    assert_eq!(view["status"], "running");
    assert_eq!(view["steps"][1]["status"], "waiting");
    assert!(view["waiting_for"]["deadline"].is_null(), "{view:#}");
    let signal = format!("/v1/runs/{run}/signals/staffing_confirmed");

    // A read token cannot decide; a signal of another name is a conflict
    // that names what the run waits for; an unknown decision is refused.
    let approve =
        json!({"decision": "approve", "comment": "Alan and Grace", "data": {"hours": 120}});
    let (status, _) = h.call(READER, "POST", &signal, approve.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = h
        .call(
            INVOKER,
            "POST",
            &format!("/v1/runs/{run}/signals/budget"),
            approve.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("staffing_confirmed"),
        "{body}"
    );
    let (status, _) = h
        .call(INVOKER, "POST", &signal, json!({"decision": "maybe"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = h
        .call(
            INVOKER,
            "POST",
            "/v1/runs/no-such-run/signals/staffing_confirmed",
            approve.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let (status, sent) = h.call(INVOKER, "POST", &signal, approve.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    assert_eq!(sent["by"], "ops");
    assert_eq!(sent["decision"], "approve");
    let view = h
        .until(&run, "completes", |v| v["status"] == "completed")
        .await;
    let steps = view["steps"].as_array().unwrap();
    assert_eq!(steps[1]["output"]["decision"], "approve");
    assert_eq!(steps[1]["output"]["by"], "ops");
    assert_eq!(steps[1]["output"]["comment"], "Alan and Grace");
    assert_eq!(
        steps[2]["output"],
        json!({"booked": "GLOBEX-ERP", "by": "ops", "hours": 120})
    );
    assert_eq!(steps[3]["status"], "skipped");
    assert!(view.get("waiting_for").is_none(), "{view:#}");
    let signals = view["signals"].as_array().unwrap();
    assert_eq!(signals.len(), 1);
    assert_eq!(signals[0]["by"], "ops");
    assert_eq!(signals[0]["step"], "staffing");
    assert!(signals[0]["at"].as_str().unwrap().ends_with('Z'));

    // Once decided, the run no longer waits.
    let (status, body) = h.call(INVOKER, "POST", &signal, approve).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not waiting"),
        "{body}"
    );

    // Audited, and emitted as CloudEvents.
    let audit = h
        .flows
        .runtime()
        .store()
        .audit_entries(Some("run.signal"), 10)
        .await
        .unwrap();
    assert!(
        audit.iter().any(|e| e.actor == "ops"
            && e.target == run
            && e.detail == "signal staffing_confirmed: approve"),
        "{audit:?}"
    );
    let events = h
        .flows
        .runtime()
        .store()
        .events_after(None, 1000)
        .await
        .unwrap();
    let types: Vec<&str> = events
        .iter()
        .filter(|r| r.event.subject.as_deref() == Some(run.as_str()))
        .map(|r| r.event.event_type.as_str())
        .filter(|t| t.contains(".approval."))
        .collect();
    assert_eq!(
        types,
        [
            "dev.junction.approval.requested",
            "dev.junction.approval.decided"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reject_takes_the_reject_path() {
    let h = host().await;
    let run = h.start("staffing", json!({"project": "INITECH"})).await;
    h.until(&run, "waits", |v| waits_for(v, "staffing_confirmed"))
        .await;
    let (status, body) = h
        .call(
            INVOKER,
            "POST",
            &format!("/v1/runs/{run}/signals/staffing_confirmed"),
            json!({"decision": "reject", "comment": "nobody free in March"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let view = h
        .until(&run, "completes", |v| v["status"] == "completed")
        .await;
    assert_eq!(view["steps"][2]["status"], "skipped");
    assert_eq!(
        view["steps"][3]["output"],
        json!({"replan": "INITECH", "why": "nobody free in March"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passed_deadline_takes_its_path() {
    let h = host().await;
    let going_on = h.start("deadline-continue", json!({})).await;
    let failing = h.start("deadline-fail", json!({})).await;
    let view = h
        .until(&going_on, "completes", |v| v["status"] == "completed")
        .await;
    assert_eq!(view["steps"][0]["output"]["decision"], "expired");
    assert_eq!(view["steps"][1]["output"], json!({"fallback": true}));
    let view = h
        .until(&failing, "fails", |v| v["status"] == "failed")
        .await;
    let errors = view["steps"][0]["errors"].as_array().unwrap();
    assert_eq!(errors.last().unwrap()["kind"], "deadline", "{view:#}");
    let letters = h.flows.dead_letters(Some("deadline-fail")).await.unwrap();
    assert_eq!(letters.len(), 1);
}

#[tokio::test]
async fn a_wait_step_is_checked_at_deploy() {
    let h = host().await;
    let bad = r#"
trigger = { type = "manual" }
[[steps]]
id = "approval"
input = "{}"
[steps.wait]
signal = "2fast"
on_deadline = "escalate"
"#;
    let err = h
        .flows
        .deploy("bad", bad, "tests")
        .await
        .unwrap_err()
        .to_string();
    for expected in [
        "wait.signal",
        "wait.on_deadline: needs a `deadline_ms`",
        "wait.escalate",
        "takes no `input`",
    ] {
        assert!(err.contains(expected), "{expected}: {err}");
    }
}

/// The host in its own process, when this executable is started as one
/// (with [`HOST_CONFIG_VAR`]); as a test of the suite it does nothing.
#[test]
fn approvals_host_process() {
    let Some(config) = std::env::var_os(HOST_CONFIG_VAR) else {
        return;
    };
    junction::serve::log_to_stderr("warn,junction_flows=info");
    let config = junction::config::Config::load(Some(Path::new(&config))).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(junction::serve::run(&config, None, std::future::pending()))
        .unwrap();
}

/// Starts a host process on `database`, on a new port; its base URL.
fn spawn_host(dir: &Path, database: &Path, life: usize) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join(format!("host-{life}.toml"));
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndatabase = {database:?}\n\n[flows]\nidle_poll_ms = 50\n\n\
             [tokens.ops]\ntoken = \"{INVOKER}\"\nscope = \"operator\"\n"
        ),
    )
    .unwrap();
    let mut command = Command::new(std::env::current_exe().unwrap());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("JUNCTION_") {
            command.env_remove(name);
        }
    }
    let log = std::fs::File::create(dir.join(format!("host-{life}.log"))).unwrap();
    let child = command
        .args([
            "approvals_host_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOST_CONFIG_VAR, &config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    (child, format!("http://127.0.0.1:{port}"))
}

async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<String>,
) -> Result<(u16, Value), String> {
    let mut request = client.request(method, url).bearer_auth(INVOKER);
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let value = response.json().await.unwrap_or(Value::Null);
    Ok((status, value))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_run_survives_a_sigkill_of_its_host() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("junction.db");
    let client = reqwest::Client::new();
    let (mut child, base) = spawn_host(dir.path(), &database, 1);
    let until_up = |base: String| {
        let client = client.clone();
        async move {
            eventually(
                "the host answers",
                Duration::from_secs(60),
                Duration::from_millis(20),
                || async {
                    send(
                        &client,
                        reqwest::Method::GET,
                        &format!("{base}/healthz"),
                        None,
                    )
                    .await
                    .map(|_| ())
                },
            )
            .await;
        }
    };
    until_up(base.clone()).await;
    let (status, body) = send(
        &client,
        reqwest::Method::PUT,
        &format!("{base}/v1/flows/staffing"),
        Some(STAFFING.into()),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(
        &client,
        reqwest::Method::POST,
        &format!("{base}/v1/flows/staffing/runs"),
        Some(r#"{"project": "ACME"}"#.into()),
    )
    .await
    .unwrap();
    assert_eq!(status, 202, "{body}");
    let run = body["run"].as_str().unwrap().to_string();
    let waiting = |base: String| {
        let client = client.clone();
        let run = run.clone();
        async move {
            eventually(
                "the run waits",
                Duration::from_secs(30),
                Duration::from_millis(20),
                || async {
                    let (_, view) = send(
                        &client,
                        reqwest::Method::GET,
                        &format!("{base}/v1/runs/{run}"),
                        None,
                    )
                    .await?;
                    if waits_for(&view, "staffing_confirmed") {
                        Ok(view)
                    } else {
                        Err(format!("{view}"))
                    }
                },
            )
            .await
        }
    };
    waiting(base.clone()).await;

    // SIGKILL while it waits, and start again on the same database.
    child.kill().unwrap();
    child.wait().unwrap();
    let (mut child, base) = spawn_host(dir.path(), &database, 2);
    until_up(base.clone()).await;
    waiting(base.clone()).await;
    let (status, body) = send(
        &client,
        reqwest::Method::POST,
        &format!("{base}/v1/runs/{run}/signals/staffing_confirmed"),
        Some(
            r#"{"decision": "approve", "comment": "after the restart", "data": {"hours": 8}}"#
                .into(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(status, 202, "{body}");
    let view = eventually(
        "the run completes",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || async {
            let (_, view) = send(
                &client,
                reqwest::Method::GET,
                &format!("{base}/v1/runs/{run}"),
                None,
            )
            .await?;
            if view["status"] == "completed" {
                Ok(view)
            } else {
                Err(format!("{view}"))
            }
        },
    )
    .await;
    assert_eq!(view["steps"][2]["output"]["booked"], "ACME");
    assert_eq!(view["signals"][0]["comment"], "after the restart");
    assert_eq!(view["signals"][0]["by"], "ops");
    child.kill().unwrap();
    child.wait().unwrap();
}
