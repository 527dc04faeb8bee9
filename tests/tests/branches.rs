//! Parallel branches: steps that name what they `needs` run at once when
//! they need nothing of each other, against a ledger stand-in that takes
//! 500 ms per request; a join waits for every branch; a branch that fails
//! for good compensates the branches that completed, the one that
//! completed last first; a deploy refuses circles and references to steps
//! a step does not run after.
//!
//! Concurrency is read from the ledger's own record of when it handled
//! each request (the requests overlap), never from the wall clock.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode};
use junction::config::Scope;
use junction_api as api;
use junction_flows::{FlowOptions, Flows};
use junction_runtime::runtime::ConnectionSpec;
use junction_standins::{LedgerStandin, Misbehaviour};
use junction_tests::{eventually, guests, runtime_with, step};
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-branches-0123456789";

struct Host {
    app: Router,
    ledger: LedgerStandin,
}

/// A host with one flow worker, the echo guest on `echo` reaching the
/// ledger, and the ledger taking `latency` per request.
async fn host(latency: Duration) -> Host {
    let config = junction_tests::config_with_token("admin", ADMIN, Scope::Admin);
    let rt = runtime_with(&config).await;
    rt.load_plugin(&guests::bytes(guests::ECHO)).await.unwrap();
    let ledger = LedgerStandin::start(latency).await.unwrap();
    rt.put_connection(
        "echo",
        ConnectionSpec {
            plugin: "echo".into(),
            allowed_hosts: vec![ledger.host()],
            private_hosts: vec![ledger.host()],
            ..ConnectionSpec::default()
        },
    )
    .await
    .unwrap();
    let flows = Flows::new(
        rt,
        FlowOptions {
            workers: 1,
            lease: Duration::from_secs(5),
            idle_poll: Duration::from_millis(50),
        },
    );
    flows.spawn_workers();
    let app = api::router_with_flows(flows, &config.api);
    Host { app, ledger }
}

impl Host {
    async fn call(&self, method: &str, uri: &str, body: impl Into<String>) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {ADMIN}"))
            .body(Body::from(body.into()))
            .unwrap();
        let answer = junction_tests::openapi::send(&self.app, request).await;
        (answer.status, answer.json())
    }

    async fn run(&self, flow: &str, source: &str) -> Value {
        let (status, body) = self.call("PUT", &format!("/v1/flows/{flow}"), source).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = self
            .call("POST", &format!("/v1/flows/{flow}/runs"), "{}")
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let run = body["run"].as_str().unwrap().to_string();
        eventually(
            &format!("run {run} ends"),
            Duration::from_secs(30),
            Duration::from_millis(20),
            || async {
                let (_, body) = self.call("GET", &format!("/v1/runs/{run}"), "").await;
                match body["status"].as_str() {
                    Some("completed" | "compensated" | "failed") => Ok(body),
                    _ => Err(format!("{body:#}")),
                }
            },
        )
        .await
    }
}

/// A step that applies effect `id` at the ledger, needing `needs`; with
/// `undo`, compensated by effect `undo-<id>`.
fn effect(ledger: &str, id: &str, needs: &[&str], undo: bool) -> String {
    let needs: Vec<String> = needs.iter().map(|n| format!("\"{n}\"")).collect();
    let mut step = format!(
        "[[steps]]\nid = \"{id}\"\nneeds = [{}]\nconnection = \"echo\"\noperation = \"fetch\"\n\
         input = '{{url: \"{ledger}/effects/{id}\", method: \"POST\", body: \"{{}}\"}}'\n",
        needs.join(", ")
    );
    if undo {
        step.push_str(&format!(
            "compensate = {{ operation = \"fetch\", input = '{{url: \"{ledger}/effects/undo-{id}\", method: \"POST\", body: \"{{}}\"}}' }}\n"
        ));
    }
    step
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_steps_run_at_once_and_a_join_waits_for_all_of_them() {
    let h = host(Duration::from_millis(500)).await;
    let base = h.ledger.base_url();
    let flow = format!(
        "trigger = {{ type = \"manual\" }}\n{}{}{}\
         [[steps]]\nid = \"summary\"\nneeds = [\"psa_project\", \"jira_workspace\", \"erp_dimensions\"]\n\
         map = '[.steps.psa_project, .steps.jira_workspace, .steps.erp_dimensions] | map(.body | fromjson | .name)'\n",
        effect(&base, "psa_project", &[], false),
        effect(&base, "jira_workspace", &[], false),
        effect(&base, "erp_dimensions", &[], false),
    );
    let done = h.run("onboard", &flow).await;
    assert_eq!(done["status"], "completed", "{done:#}");

    // The ledger handled the three requests at the same time: each arrived
    // before any of them was applied.
    let handled = h.ledger.handlings();
    assert_eq!(handled.len(), 3, "{handled:?}");
    let last_arrival = handled.iter().map(|h| h.arrived).max().unwrap();
    let first_applied = handled.iter().map(|h| h.applied).min().unwrap();
    assert!(
        last_arrival < first_applied,
        "the branches did not overlap at the ledger: {handled:?}"
    );
    // Each branch has its own key; the join saw every branch's output.
    let keys: std::collections::BTreeSet<&str> =
        ["psa_project", "jira_workspace", "erp_dimensions"]
            .iter()
            .map(|id| step(&done, id)["idempotency_key"].as_str().unwrap())
            .collect();
    assert_eq!(keys.len(), 3, "{done:#}");
    assert_eq!(
        step(&done, "summary")["output"],
        json!(["psa_project", "jira_workspace", "erp_dimensions"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_that_fails_for_good_compensates_the_completed_branches_last_completed_first() {
    let h = host(Duration::from_millis(300)).await;
    let base = h.ledger.base_url();
    // `quick` completes at once, `slow` after the ledger's latency, and
    // `budget` fails for good meanwhile: both completed branches are
    // undone, `slow` (completed last) first.
    let flow = format!(
        "trigger = {{ type = \"manual\" }}\n{}\
         [[steps]]\nid = \"quick\"\nneeds = []\nmap = '{{ready: true}}'\n\
         compensate = {{ connection = \"echo\", operation = \"fetch\", input = '{{url: \"{base}/effects/undo-quick\", method: \"POST\", body: \"{{}}\"}}' }}\n\
         [[steps]]\nid = \"budget\"\nneeds = []\nmap = 'error(\"no budget code for this deal\")'\n\
         [[steps]]\nid = \"after\"\nneeds = [\"slow\", \"quick\", \"budget\"]\nmap = '.steps.slow'\n",
        effect(&base, "slow", &[], true),
    );
    let done = h.run("onboard", &flow).await;
    assert_eq!(done["status"], "compensated", "{done:#}");
    assert_eq!(step(&done, "budget")["status"], "failed");
    assert_eq!(step(&done, "slow")["status"], "compensated");
    assert_eq!(step(&done, "quick")["status"], "compensated");
    assert_eq!(step(&done, "after")["status"], "pending");
    let names: Vec<String> = h.ledger.effects().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["slow", "undo-slow", "undo-quick"]);
    let (_, letters) = h.call("GET", "/v1/dead-letters?flow=onboard", "").await;
    let letter = &letters["dead_letters"][0];
    assert_eq!(letter["step"], "budget", "{letters:#}");
    assert!(
        letter["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no budget code"),
        "{letter:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_retries_on_its_own_while_the_other_completes() {
    let h = host(Duration::ZERO).await;
    let base = h.ledger.base_url();
    // The first request the ledger gets hangs past the step's deadline.
    h.ledger.misbehave(Misbehaviour::Latency {
        times: 1,
        millis: 5_000,
    });
    let flow = format!(
        "trigger = {{ type = \"manual\" }}\n{}{}",
        effect(&base, "left", &[], false),
        effect(&base, "right", &[], false),
    )
    .replace(
        "operation = \"fetch\"\n",
        "operation = \"fetch\"\ndeadline_ms = 800\nretry = { attempts = 3, backoff_ms = 10 }\n",
    );
    let done = h.run("pair", &flow).await;
    assert_eq!(done["status"], "completed", "{done:#}");
    let mut attempts: Vec<i64> = ["left", "right"]
        .iter()
        .map(|id| step(&done, id)["attempts"].as_i64().unwrap())
        .collect();
    attempts.sort_unstable();
    assert_eq!(attempts, [1, 2], "one branch was retried, once: {done:#}");
    let retried = ["left", "right"]
        .into_iter()
        .map(|id| step(&done, id))
        .find(|s| s["attempts"] == 2)
        .unwrap();
    assert_eq!(retried["errors"][0]["kind"], "timeout", "{retried:#}");
    let mut names: Vec<String> = h.ledger.effects().into_iter().map(|e| e.name).collect();
    names.sort();
    assert_eq!(names, ["left", "right"], "each effect once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_refuses_circles_and_references_to_steps_not_needed() {
    let h = host(Duration::ZERO).await;
    let circle = "trigger = { type = \"manual\" }\n\
        [[steps]]\nid = \"a\"\nneeds = [\"c\"]\nmap = '1'\n\
        [[steps]]\nid = \"b\"\nneeds = [\"a\"]\nmap = '2'\n\
        [[steps]]\nid = \"c\"\nneeds = [\"b\", \"ghost\"]\nmap = '3'\n";
    let (status, body) = h.call("PUT", "/v1/flows/circle", circle).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "the steps wait for each other in a circle, so none of them can start: a -> c -> b -> a"
        ),
        "{message}"
    );
    assert!(
        message.contains("steps[2] (id `c`): needs: no step has the id `ghost`"),
        "{message}"
    );
    // `b` runs beside `a`, not after it: it cannot read `a`'s output.
    let sibling = "trigger = { type = \"manual\" }\n\
        [[steps]]\nid = \"a\"\nneeds = []\nmap = '1'\n\
        [[steps]]\nid = \"b\"\nneeds = []\nmap = '.steps.a + 1'\n";
    let (status, body) = h.call("PUT", "/v1/flows/sibling", sibling).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("steps[1] (id `b`): map: refers to step `a`, which does not run before this step (name it, or a step that runs after it, in `needs`)"),
        "{message}"
    );
    let (status, _) = h.call("GET", "/v1/flows/circle", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was deployed");
}
