//! The circuit breaker per connection, against the NetSuite stand-in and
//! the shipped NetSuite connector: an outage opens the circuit after the
//! configured failures, the runs that arrive meanwhile are parked (none is
//! dead-lettered, and the system receives nothing but the probes), and once
//! a probe passes every run completes, in the order the runs arrived. An
//! operator can open and close a circuit by hand through the API; every
//! change is audited, counted in the metrics and emitted as a CloudEvent.
//!
//! Runs are waited for by polling, never by sleeping.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use junction::config::{Scope, Token};
use junction_api as api;
use junction_flows::{FlowOptions, Flows};
use junction_runtime::engine::Limits;
use junction_runtime::runtime::ConnectionSpec;
use junction_standins::{Misbehaviour, NetsuiteStandin};
use junction_store::{Auth, CircuitSettings};
use junction_tests::{eventually, runtime_with, test_config, test_limits};
use serde_json::{Value, json};

const TOKEN: &str = "netsuite-oauth2-access-token";
const OPERATOR: &str = "operator-token-circuit-0123456789";
const READER: &str = "reader-token-circuit-0123456789";

const TO_ERP: &str = r#"
trigger = { type = "manual" }
[[steps]]
id = "customer"
connection = "erp"
operation = "upsert-customer"
input = "{external_id: .trigger.id, fields: {companyName: .trigger.name}}"
retry = { attempts = 3, backoff_ms = 10, max_backoff_ms = 20 }
"#;

fn cache_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("circuit-compile-cache")
}

static LOADING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Host {
    flows: Arc<Flows>,
    ns: NetsuiteStandin,
    app: axum::Router,
}

/// A host with the NetSuite connector on `erp` (circuit `settings`), the
/// `to-erp` flow, and one flow worker, so runs are worked one at a time.
async fn host(settings: CircuitSettings) -> Host {
    let mut config = test_config(Limits {
        deadline_ms: 10_000,
        ..test_limits()
    });
    config.runtime.cache_dir = Some(cache_dir());
    let token = |t: &str, scope| Token {
        token: t.into(),
        scope,
    };
    config.api.tokens = BTreeMap::from([
        ("ops".into(), token(OPERATOR, Scope::Operator)),
        ("reader".into(), token(READER, Scope::Read)),
    ]);
    let rt = runtime_with(&config).await;
    {
        let _first = LOADING.lock().await;
        let package = junction_registry::Package::new(
            junction::shipped::NETSUITE_MANIFEST,
            junction::shipped::NETSUITE_CONNECTOR,
        );
        rt.upload_package(&package.to_bytes(), "tests")
            .await
            .unwrap();
    }
    let ns = NetsuiteStandin::start(TOKEN).await.unwrap();
    let spec = ConnectionSpec {
        plugin: "netsuite".into(),
        config: BTreeMap::from([("base_url".to_string(), ns.base_url())]),
        auth: Some(Auth::Bearer {
            token: TOKEN.into(),
        }),
        allowed_hosts: vec![ns.host()],
        private_hosts: vec![ns.host()],
        circuit: Some(settings),
        ..ConnectionSpec::default()
    };
    rt.put_connection("erp", spec).await.unwrap();
    let flows = Flows::new(
        rt,
        FlowOptions {
            workers: 1,
            lease: Duration::from_secs(5),
            idle_poll: Duration::from_millis(20),
        },
    );
    flows.deploy("to-erp", TO_ERP, "tests").await.unwrap();
    flows.spawn_workers();
    let app = api::router_with_flows(flows.clone(), &config.api);
    Host { flows, ns, app }
}

impl Host {
    async fn start(&self, n: usize) -> String {
        let trigger = json!({"id": format!("CRM-{n:02}"), "name": format!("Customer {n:02}")});
        self.flows.start_run("to-erp", trigger, None).await.unwrap()
    }

    async fn completed(&self, run: &str) {
        eventually(
            &format!("run {run} completes"),
            Duration::from_secs(60),
            Duration::from_millis(10),
            || async {
                let view = self.flows.run(run).await.unwrap();
                if view.status == "completed" {
                    Ok(())
                } else {
                    Err(format!("{view:?}"))
                }
            },
        )
        .await;
    }

    async fn call(&self, token: &str, method: &str, uri: &str, body: Value) -> (StatusCode, Value) {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        junction_tests::openapi::call(&self.app, Some(token), method, uri, body).await
    }

    /// The upserts the stand-in received (not the probes' reads).
    fn upserts(&self) -> Vec<junction_standins::RecordedRequest> {
        self.ns
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .collect()
    }
}

fn is_probe(request: &junction_standins::RecordedRequest) -> bool {
    request.method == "GET" && request.path.ends_with("/customer/0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_parks_the_runs_and_they_resume_in_arrival_order() {
    let settings = CircuitSettings {
        failures: 3,
        window_ms: 60_000,
        cool_down_ms: 200,
    };
    let h = host(settings).await;
    h.ns.misbehave(Misbehaviour::Unavailable { times: u32::MAX });
    let mut runs = Vec::new();
    for n in 0..50 {
        runs.push(h.start(n).await);
    }
    // Three failures open the circuit; every run ends up parked on it.
    eventually(
        "the circuit opens and every run is parked",
        Duration::from_secs(60),
        Duration::from_millis(10),
        || async {
            let circuit = h.flows.circuit("erp").await.unwrap();
            if circuit.state != "closed" && circuit.parked_runs == 50 {
                Ok(())
            } else {
                Err(format!("{circuit:?}"))
            }
        },
    )
    .await;
    assert!(h.flows.dead_letters(None).await.unwrap().is_empty());
    let parked = h.flows.run(&runs[49]).await.unwrap();
    assert_eq!(parked.status, "running");
    assert_eq!(parked.parked_on.as_deref(), Some("erp"));

    // While it is open, the system is only probed (and each probe fails).
    let seen = h.ns.requests().len();
    eventually(
        "two probes while the system is down",
        Duration::from_secs(30),
        Duration::from_millis(10),
        || async {
            let probes = h.ns.requests()[seen..]
                .iter()
                .filter(|r| is_probe(r))
                .count();
            if probes >= 2 {
                Ok(())
            } else {
                Err(format!("{probes} probes"))
            }
        },
    )
    .await;
    let requests = h.ns.requests();
    assert!(
        requests[seen..].iter().all(is_probe),
        "only probes reach a system whose circuit is open: {:?}",
        requests[seen..]
            .iter()
            .map(|r| (&r.method, &r.path))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        h.upserts().len(),
        3,
        "the three failures that opened the circuit, and no other upsert"
    );
    assert!(h.flows.dead_letters(None).await.unwrap().is_empty());

    // The system is back: the next probe closes the circuit and every run completes.
    h.ns.behave();
    for run in &runs {
        h.completed(run).await;
    }
    assert!(h.flows.dead_letters(None).await.unwrap().is_empty());
    let created: Vec<String> =
        h.ns.customers()
            .iter()
            .map(|c| c["externalId"].as_str().unwrap().to_string())
            .collect();
    let arrived: Vec<String> = (0..50).map(|n| format!("CRM-{n:02}")).collect();
    assert_eq!(
        created, arrived,
        "customers created in the order the runs arrived"
    );
    let circuit = h.flows.circuit("erp").await.unwrap();
    assert_eq!(circuit.state, "closed");
    assert_eq!(circuit.parked_runs, 0);

    // Audited, counted and emitted.
    let audit = h
        .flows
        .runtime()
        .store()
        .audit_entries(None, 100)
        .await
        .unwrap();
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .filter(|e| e.action.starts_with("circuit."))
        .map(|e| (e.action.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(
        actions,
        [("circuit.close", "junction"), ("circuit.open", "junction")],
        "newest first"
    );
    let (status, scrape) = h.call(READER, "GET", "/metrics", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let scrape = scrape.as_str().unwrap();
    assert!(
        scrape.contains("junction_circuit_state{connection=\"erp\"} 0"),
        "{scrape}"
    );
    assert!(
        scrape.contains("junction_circuit_transitions_total{connection=\"erp\",to=\"open\"}"),
        "{scrape}"
    );
    let events = h
        .flows
        .runtime()
        .store()
        .events_after(None, 1000)
        .await
        .unwrap();
    let circuit_events: Vec<&str> = events
        .iter()
        .map(|r| r.event.event_type.as_str())
        .filter(|t| t.starts_with("dev.junction.circuit."))
        .collect();
    assert_eq!(
        circuit_events,
        ["dev.junction.circuit.opened", "dev.junction.circuit.closed"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_opens_and_closes_a_circuit_by_hand() {
    let h = host(CircuitSettings::default()).await;
    let (status, body) = h
        .call(READER, "GET", "/v1/connections/erp/circuit", Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "closed");
    assert_eq!(body["settings"]["failures"], 5);

    // A read token cannot change it.
    let (status, body) = h
        .call(
            READER,
            "PUT",
            "/v1/connections/erp/circuit",
            json!({"state": "open"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = h
        .call(
            OPERATOR,
            "PUT",
            "/v1/connections/erp/circuit",
            json!({"state": "ajar"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = h
        .call(
            OPERATOR,
            "PUT",
            "/v1/connections/nope/circuit",
            json!({"state": "open"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let (status, body) = h
        .call(
            OPERATOR,
            "PUT",
            "/v1/connections/erp/circuit",
            json!({"state": "open"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "open");
    assert_eq!(body["manual"], true);
    assert!(body["next_probe_at"].is_null(), "{body}");

    // A run on it parks without a request; closing it resumes the run.
    let run = h.start(1).await;
    eventually(
        "the run parks",
        Duration::from_secs(30),
        Duration::from_millis(10),
        || async {
            let view = h.flows.run(&run).await.unwrap();
            if view.parked_on.is_some() {
                Ok(())
            } else {
                Err(format!("{view:?}"))
            }
        },
    )
    .await;
    assert!(h.ns.requests().is_empty(), "{:?}", h.ns.requests());
    let (_, body) = h
        .call(READER, "GET", "/v1/connections/erp/circuit", Value::Null)
        .await;
    assert_eq!(body["parked_runs"], 1, "{body}");
    let (_, view) = h
        .call(READER, "GET", &format!("/v1/runs/{run}"), Value::Null)
        .await;
    assert_eq!(view["parked_on"], "erp", "{view}");

    let (status, body) = h
        .call(
            OPERATOR,
            "PUT",
            "/v1/connections/erp/circuit",
            json!({"state": "closed"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "closed");
    h.completed(&run).await;
    assert_eq!(h.ns.customers().len(), 1);

    let audit = h
        .flows
        .runtime()
        .store()
        .audit_entries(None, 100)
        .await
        .unwrap();
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .filter(|e| e.action.starts_with("circuit."))
        .map(|e| (e.action.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(actions, [("circuit.close", "ops"), ("circuit.open", "ops")]);
}
