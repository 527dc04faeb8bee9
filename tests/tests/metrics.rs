//! `GET /metrics`: who may scrape it, and that its counters, gauges and
//! histograms move as calls, refusals, runs, dead letters and webhooks
//! happen. Scrapes are read with a Prometheus text-format parser; when
//! `promtool` is installed, a scrape must pass `promtool check metrics`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode};
use junction::config::{Scope, Token};
use junction_api as api;
use junction_flows::{FlowOptions, Flows};
use junction_runtime::runtime::ConnectionSpec;
use junction_standins::JiraStandin;
use junction_tests::{eventually, guests, runtime_with, test_config, test_limits};
use prometheus_parse::{Scrape, Value};
use serde_json::json;

const ADMIN: &str = "admin-token-0123456789";
const READER: &str = "reader-token-0123456789";
const SCRAPER: &str = "scrape-token-0123456789";

struct Host {
    app: Router,
    stand_in: JiraStandin,
}

async fn host() -> Host {
    let mut config = test_config(test_limits());
    config.store.database = None;
    let token = |t: &str, scope| Token {
        token: t.into(),
        scope,
    };
    config.api.tokens = BTreeMap::from([
        ("admin".into(), token(ADMIN, Scope::Admin)),
        ("reader".into(), token(READER, Scope::Read)),
    ]);
    config.api.metrics_token = Some(SCRAPER.into());
    let rt = runtime_with(&config).await;
    rt.load_plugin(&guests::bytes(guests::ECHO)).await.unwrap();
    // Any HTTP server does as the echo guest's `fetch` target.
    let stand_in = JiraStandin::start("ops@acme.example", "jira-api-token")
        .await
        .unwrap();
    rt.put_connection(
        "echo",
        ConnectionSpec {
            plugin: "echo".into(),
            allowed_hosts: vec![stand_in.host()],
            private_hosts: vec![stand_in.host()],
            ..ConnectionSpec::default()
        },
    )
    .await
    .unwrap();
    let flows = Flows::new(
        rt,
        FlowOptions {
            workers: 2,
            lease: Duration::from_secs(5),
            idle_poll: Duration::from_millis(50),
        },
    );
    flows.spawn_workers();
    let app = api::router_with_flows(flows, &config.api);
    Host { app, stand_in }
}

impl Host {
    async fn send(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: String,
    ) -> (StatusCode, String, String) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(Body::from(body)).unwrap();
        let answer = junction_tests::openapi::send(&self.app, request).await;
        let content_type = answer
            .headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (answer.status, content_type, answer.text())
    }

    async fn admin(
        &self,
        method: &str,
        uri: &str,
        body: impl Into<String>,
    ) -> (StatusCode, String) {
        let (status, _, body) = self.send(method, uri, Some(ADMIN), body.into()).await;
        (status, body)
    }

    async fn scrape_text(&self) -> String {
        let (status, _, text) = self
            .send("GET", "/metrics", Some(SCRAPER), String::new())
            .await;
        assert_eq!(status, StatusCode::OK, "{text}");
        text
    }

    async fn scrape(&self) -> Metrics {
        Metrics(parse(&self.scrape_text().await))
    }

    /// Starts a run of `flow` and waits until it is terminal; its status.
    async fn run(&self, flow: &str) -> String {
        let (status, body) = self
            .admin("POST", &format!("/v1/flows/{flow}/runs"), "{}")
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        let run = body["run"].as_str().unwrap().to_string();
        eventually(
            &format!("run {run} finishes"),
            Duration::from_secs(20),
            Duration::from_millis(10),
            || async {
                let (_, body) = self.admin("GET", &format!("/v1/runs/{run}"), "").await;
                let body: serde_json::Value = serde_json::from_str(&body).unwrap();
                match body["status"].as_str().unwrap() {
                    s @ ("completed" | "compensated" | "failed") => Ok(s.to_string()),
                    _ => Err(body.to_string()),
                }
            },
        )
        .await
    }
}

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// A parsed scrape.
struct Metrics(Scrape);

impl Metrics {
    /// The sum over the samples of `metric` whose labels include `labels`: a
    /// counter's or gauge's value, a histogram's observation count.
    fn value(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == metric)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                Value::Histogram(buckets) => buckets
                    .iter()
                    .find(|b| b.less_than.is_infinite())
                    .map_or(0.0, |b| b.count),
                Value::Summary(_) => panic!("{metric} is a summary"),
            })
            .sum()
    }

    /// The label sets of the samples of `metric`.
    fn labels_of(&self, metric: &str) -> Vec<BTreeMap<String, String>> {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == metric)
            .map(|s| {
                s.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_a_read_token_or_the_scrape_token() {
    let h = host().await;
    for token in [None, Some("not-a-real-token-at-all")] {
        let (status, _, body) = h.send("GET", "/metrics", token, String::new()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    }
    for token in [READER, ADMIN, SCRAPER] {
        let (status, content_type, text) =
            h.send("GET", "/metrics", Some(token), String::new()).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        assert!(
            text.contains("# TYPE junction_plugin_versions_loaded gauge"),
            "{text}"
        );
    }
    // The scrape token opens nothing else.
    let (status, _, _) = h
        .send("GET", "/v1/plugins", Some(SCRAPER), String::new())
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_and_refusals_move_the_call_metrics() {
    let h = host().await;
    let before = h.scrape().await;
    assert_eq!(before.value("junction_plugin_calls_total", &[]), 0.0);
    assert_eq!(
        before.value("junction_plugin_versions_loaded", &[("plugin", "echo")]),
        1.0
    );
    assert_eq!(
        before.value("junction_plugin_slots_in_use", &[("plugin", "echo")]),
        0.0
    );
    assert!(before.value("junction_plugin_slots", &[("plugin", "echo")]) >= 1.0);

    let (status, body) = h
        .admin("POST", "/v1/connections/echo/operations/echo", r#"{"a":1}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ok = [
        ("plugin", "echo"),
        ("version", "0.1.0"),
        ("connection", "echo"),
        ("operation", "echo"),
        ("outcome", "ok"),
    ];
    let m = h.scrape().await;
    assert_eq!(m.value("junction_plugin_calls_total", &ok), 1.0);
    assert_eq!(m.value("junction_plugin_call_duration_seconds", &ok), 1.0);

    // Refused: an operation the plugin does not have (its name, which the
    // caller chose, stays out of the labels), and a connection that does not exist.
    let (status, body) = h
        .admin(
            "POST",
            "/v1/connections/echo/operations/launch-rockets",
            "{}",
        )
        .await;
    assert!(status.is_client_error(), "{status} {body}");
    let (status, body) = h
        .admin("POST", "/v1/connections/nope-123/operations/echo", "{}")
        .await;
    assert!(status.is_client_error(), "{status} {body}");
    let m = h.scrape().await;
    assert_eq!(
        m.value(
            "junction_plugin_calls_total",
            &[
                ("plugin", "echo"),
                ("operation", ""),
                ("outcome", "unknown_operation")
            ]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "junction_plugin_calls_total",
            &[
                ("plugin", ""),
                ("connection", ""),
                ("outcome", "unknown_connection")
            ]
        ),
        1.0
    );
    assert_eq!(m.value("junction_plugin_calls_total", &[]), 3.0);
    for labels in m.labels_of("junction_plugin_calls_total") {
        assert!(
            !labels
                .values()
                .any(|v| v.contains("nope") || v.contains("rockets")),
            "{labels:?}"
        );
    }

    // An outbound request, by connection, host and status.
    let url = format!("{}/effects/x", h.stand_in.base_url());
    let (status, body) = h
        .admin(
            "POST",
            "/v1/connections/echo/operations/fetch",
            json!({"url": url, "method": "POST"}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let code = serde_json::from_str::<serde_json::Value>(&body).unwrap()["status"]
        .as_u64()
        .map(|c| c.to_string())
        .unwrap_or_else(|| panic!("no status in {body}"));
    let m = h.scrape().await;
    assert_eq!(
        m.value(
            "junction_outbound_requests_total",
            &[("connection", "echo"), ("status", code.as_str())]
        ),
        1.0,
        "{:?}",
        m.labels_of("junction_outbound_requests_total")
    );
    // One the egress policy refuses; its host is not a label.
    let (status, _) = h
        .admin(
            "POST",
            "/v1/connections/echo/operations/fetch",
            json!({"url": "http://not-allowed.example/x"}).to_string(),
        )
        .await;
    assert!(!status.is_success());
    let m = h.scrape().await;
    assert_eq!(
        m.value(
            "junction_outbound_requests_total",
            &[("connection", "echo"), ("host", ""), ("status", "refused")]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_dead_letters_and_webhooks_move_their_metrics() {
    let h = host().await;
    let (status, body) = h
        .admin(
            "PUT",
            "/v1/flows/fine",
            "trigger = { type = \"manual\" }\n[[steps]]\nid = \"a\"\nconnection = \"echo\"\noperation = \"noop\"\ninput = \"{}\"\n",
        )
        .await;
    assert!(status.is_success(), "{body}");
    let (status, body) = h
        .admin(
            "PUT",
            "/v1/flows/doomed",
            "trigger = { type = \"manual\" }\n[[steps]]\nid = \"call\"\nconnection = \"echo\"\noperation = \"fetch\"\ninput = '{url: \"http://not-allowed.example/x\"}'\nretry = { attempts = 1 }\n",
        )
        .await;
    assert!(status.is_success(), "{body}");

    assert_eq!(h.run("fine").await, "completed");
    let fine = [("flow", "fine")];
    let m = eventually(
        "the completed run is counted",
        Duration::from_secs(10),
        Duration::from_millis(10),
        || async {
            let m = h.scrape().await;
            let done = [("flow", "fine"), ("status", "completed")];
            if m.value("junction_flow_runs_finished_total", &done) == 1.0 {
                Ok(m)
            } else {
                Err("not yet".to_string())
            }
        },
    )
    .await;
    assert_eq!(m.value("junction_flow_runs_started_total", &fine), 1.0);
    assert_eq!(
        m.value(
            "junction_flow_run_duration_seconds",
            &[("flow", "fine"), ("status", "completed")]
        ),
        1.0
    );
    let step_ok = [("flow", "fine"), ("step", "a"), ("outcome", "ok")];
    assert_eq!(m.value("junction_flow_step_attempts_total", &step_ok), 1.0);
    assert_eq!(
        m.value("junction_flow_step_duration_seconds", &step_ok),
        1.0
    );
    assert!(m.value("junction_store_commit_duration_seconds", &[]) >= 1.0);
    assert_eq!(m.value("junction_dead_letters_open", &[]), 0.0);

    assert_eq!(h.run("doomed").await, "failed");
    let m = eventually(
        "the failed run is counted",
        Duration::from_secs(10),
        Duration::from_millis(10),
        || async {
            let m = h.scrape().await;
            let failed = [("flow", "doomed"), ("status", "failed")];
            if m.value("junction_flow_runs_finished_total", &failed) == 1.0 {
                Ok(m)
            } else {
                Err("not yet".to_string())
            }
        },
    )
    .await;
    let doomed = [("flow", "doomed")];
    assert_eq!(m.value("junction_flow_runs_started_total", &doomed), 1.0);
    assert_eq!(m.value("junction_dead_letters_open", &doomed), 1.0);
    assert!(m.value("junction_dead_letters_oldest_age_seconds", &doomed) >= 0.0);
    assert_eq!(
        m.labels_of("junction_dead_letters_oldest_age_seconds")
            .len(),
        1
    );
    assert_eq!(
        m.value(
            "junction_flow_step_attempts_total",
            &[("flow", "doomed"), ("step", "call")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "junction_flow_step_attempts_total",
            &[("flow", "doomed"), ("outcome", "ok")]
        ),
        0.0
    );
    // No run id is a label anywhere.
    let text = h.scrape_text().await;
    assert!(!text.contains("run_id") && !text.contains("run="), "{text}");

    // Webhooks: the echo connection has no webhook settings, so it refuses;
    // an unknown connection is refused under no connection name.
    let (status, _, _) = h.send("POST", "/v1/webhooks/echo", None, "{}".into()).await;
    assert!(status.is_client_error());
    let (status, _, _) = h
        .send("POST", "/v1/webhooks/who-knows", None, "{}".into())
        .await;
    assert!(status.is_client_error());
    let m = h.scrape().await;
    assert_eq!(
        m.value(
            "junction_webhooks_total",
            &[("connection", "echo"), ("outcome", "refused")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "junction_webhooks_total",
            &[("connection", ""), ("outcome", "refused")]
        ),
        1.0
    );
}

/// `promtool check metrics` on a scrape with samples of every kind. Skips
/// (saying so on stderr) where promtool is not installed; CI installs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_a_scrape() {
    let promtool = ["promtool", "/usr/bin/promtool"].into_iter().find(|p| {
        std::process::Command::new(p)
            .arg("--version")
            .output()
            .is_ok()
    });
    let Some(promtool) = promtool else {
        eprintln!("SKIPPED promtool_accepts_a_scrape: promtool is not installed");
        return;
    };
    let h = host().await;
    let (status, body) = h
        .admin("POST", "/v1/connections/echo/operations/echo", "{}")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    h.admin("POST", "/v1/connections/echo/operations/nope", "{}")
        .await;
    h.send("POST", "/v1/webhooks/echo", None, "{}".into()).await;
    let text = h.scrape_text().await;
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
