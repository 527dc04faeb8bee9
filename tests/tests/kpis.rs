//! Business KPIs: what flows declare in `[kpi]`, computed from the store and
//! served at `GET /v1/kpis` and on `GET /metrics`.
//!
//! Times are fixed: a webhook event carries its business time, and when its
//! run's step completed is set through the store
//! (`Store::set_step_finished_at`), so a duration is exactly what the test
//! says. Runs are worked until they end by polling, never by sleeping.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode};
use junction::config::{Config, Scope, Token};
use junction_api as api;
use junction_flows::kpi::{DeclaredKpi, format_time, parse_time};
use junction_flows::{FlowOptions, Flows, RunView};
use junction_runtime::runtime::{ConnectionSpec, Runtime};
use junction_store::Store;
use junction_tests::{eventually, guests, runtime_with, test_config, test_limits};
use prometheus_parse::{Scrape, Value as Sample};
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-kpis-0123456789";
const READER: &str = "reader-token-kpis-0123456789";
const WEBHOOK_SECRET: &str = "github-webhook-secret-for-kpis";
const SECRET_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const TERMINAL: [&str; 3] = ["completed", "compensated", "failed"];

/// The business time of the test's deal: 2026-01-05T09:00:00Z.
const T: &str = "2026-01-05T09:00:00Z";
const FIVE_MINUTES_MS: i64 = 5 * 60 * 1000;

/// An event-started flow whose setup ends when its one step completes.
const SETUP_FLOW: &str = r#"
trigger = { type = "event", connection = "hooks", event = "deal.won" }
[[steps]]
id = "project"
connection = "echo"
operation = "echo"
input = "{deal: .trigger.data}"

[kpi.project_setup]
measure = "duration"
from = "trigger"
until = "project"
"#;

/// A jq check that fails unless the trigger says `ok`.
const CHECKED_FLOW: &str = r#"
trigger = { type = "manual" }
[[steps]]
id = "check"
map = 'if .trigger.ok then {checked: true} else error("not ok") end'
[[steps]]
id = "done"
map = '{done: .steps.check.checked}'
"#;

/// A call the echo plugin refuses as invalid input when the method is not HTTP.
const INVOICING_FLOW: &str = r#"
trigger = { type = "manual" }
[[steps]]
id = "invoice"
connection = "echo"
operation = "fetch"
input = '{url: "http://127.0.0.1:9/invoices", method: .trigger.method}'
retry = { attempts = 1 }

[kpi.invoice_blocked]
measure = "blocked"
"#;

struct Host {
    app: Router,
    flows: Arc<Flows>,
}

fn cache_dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("kpis-compile-cache")
}

async fn host() -> Host {
    let mut config = test_config(test_limits());
    config.store.database = None;
    config.runtime.cache_dir = Some(cache_dir());
    let token = |t: &str, scope| Token {
        token: t.into(),
        scope,
    };
    config.api.tokens = BTreeMap::from([
        ("admin".into(), token(ADMIN, Scope::Admin)),
        ("reader".into(), token(READER, Scope::Read)),
    ]);
    let rt = runtime_with(&config).await;
    rt.load_plugin(&guests::bytes(guests::ECHO)).await.unwrap();
    rt.put_connection(
        "echo",
        ConnectionSpec {
            plugin: "echo".into(),
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
            idle_poll: Duration::from_millis(20),
        },
    );
    flows.spawn_workers();
    let app = api::router_with_flows(flows.clone(), &config.api);
    Host { app, flows }
}

impl Host {
    async fn send(
        &self,
        method: &str,
        uri: &str,
        headers: &[(String, String)],
        body: String,
    ) -> (StatusCode, String) {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let answer =
            junction_tests::openapi::send(&self.app, request.body(Body::from(body)).unwrap()).await;
        (answer.status, answer.text())
    }

    async fn call(&self, method: &str, uri: &str, body: impl Into<String>) -> (StatusCode, Value) {
        let auth = ("authorization".to_string(), format!("Bearer {ADMIN}"));
        let (status, text) = self.send(method, uri, &[auth], body.into()).await;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {uri}: {text}"))
        };
        (status, value)
    }

    async fn deploy(&self, name: &str, toml: &str) {
        let (status, body) = self.call("PUT", &format!("/v1/flows/{name}"), toml).await;
        assert!(status.is_success(), "deploy {name}: {status} {body}");
    }

    async fn start(&self, flow: &str, trigger: Value) -> String {
        let uri = format!("/v1/flows/{flow}/runs");
        let (status, body) = self.call("POST", &uri, trigger.to_string()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body["run"].as_str().unwrap().to_string()
    }

    /// Posts `event` to the `hooks` connection's webhook, signed as GitHub
    /// signs; the run it started.
    async fn deliver(&self, event: &Value) -> String {
        use hmac::{Hmac, KeyInit, Mac};
        let body = event.to_string();
        let mut mac =
            <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
        Mac::update(&mut mac, body.as_bytes());
        let signature = hex::encode(mac.finalize().into_bytes());
        let headers = [(
            "x-hub-signature-256".to_string(),
            format!("sha256={signature}"),
        )];
        let (status, text) = self
            .send("POST", "/v1/webhooks/hooks", &headers, body)
            .await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        answer["runs"][0]["run"].as_str().unwrap().to_string()
    }

    /// Polls run `run` until it is terminal.
    async fn finished(&self, run: &str) -> Value {
        eventually(
            &format!("run {run} finishes"),
            Duration::from_secs(20),
            Duration::from_millis(10),
            || async {
                let (_, body) = self.call("GET", &format!("/v1/runs/{run}"), "").await;
                if TERMINAL.contains(&body["status"].as_str().unwrap_or("")) {
                    Ok(body)
                } else {
                    Err(format!("{body:#}"))
                }
            },
        )
        .await
    }

    /// The open dead letter of run `run`.
    async fn dead_letter_of(&self, run: &str) -> String {
        eventually(
            &format!("run {run} is dead-lettered"),
            Duration::from_secs(20),
            Duration::from_millis(10),
            || async {
                let (_, body) = self.call("GET", "/v1/dead-letters", "").await;
                body["dead_letters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|l| l["run_id"] == run)
                    .map(|l| l["id"].as_str().unwrap().to_string())
                    .ok_or_else(|| body.to_string())
            },
        )
        .await
    }

    fn store(&self) -> &Store {
        self.flows.runtime().store()
    }

    async fn kpis(&self, query: &str) -> Value {
        let (status, body) = self.call("GET", &format!("/v1/kpis{query}"), "").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

/// The sum of the samples of `metric` whose labels include `labels`.
fn sample(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let values: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            Sample::Gauge(v) | Sample::Untyped(v) | Sample::Counter(v) => v,
            _ => panic!("{metric} is not a gauge"),
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// The quantiles of summary `metric` whose labels include `labels`.
fn quantiles(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .flat_map(|s| match &s.value {
            Sample::Summary(qs) => qs.iter().map(|q| (q.quantile, q.count)).collect::<Vec<_>>(),
            _ => panic!("{metric} is not a summary"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setup_completing_five_minutes_after_the_deal_takes_five_minutes() {
    let h = host().await;
    let (status, body) = h
        .call(
            "PUT",
            "/v1/connections/hooks",
            json!({"plugin": "echo", "webhook": {"scheme": "github", "secret": WEBHOOK_SECRET}})
                .to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    h.deploy("setup", SETUP_FLOW).await;

    // The deal closed at T; its run completes, and its step's completion is set to T + 5 min.
    let run = h
        .deliver(&json!({"id": "deal-1", "type": "deal.won", "time": T}))
        .await;
    let done = h.finished(&run).await;
    assert_eq!(done["status"], "completed", "{done:#}");
    assert_eq!(done["trigger"]["time"], T);
    let t = parse_time(T).unwrap();
    assert!(
        h.store()
            .set_step_finished_at(&run, "project", t + FIVE_MINUTES_MS)
            .await
            .unwrap()
    );

    let report = h
        .kpis("?since=2026-01-05T00:00:00Z&until=2026-01-06T00:00:00Z")
        .await;
    assert_eq!(report["since"], "2026-01-05T00:00:00.000Z");
    assert_eq!(report["until"], "2026-01-06T00:00:00.000Z");
    let setup = &report["kpis"]["project_setup"];
    assert_eq!(setup["measure"], "duration", "{report:#}");
    assert_eq!(
        setup["all"],
        json!({"count": 1, "p50_seconds": 300.0, "p90_seconds": 300.0})
    );
    assert_eq!(
        setup["flows"],
        json!([{
            "flow": "setup", "count": 1, "p50_seconds": 300.0, "p90_seconds": 300.0,
            "started_from": {"trigger_time": 1, "run_created": 0, "step_completed": 0, "from_time": 0}
        }])
    );
    // A window that ends before the completion has no duration.
    let before = h
        .kpis("?since=2026-01-05T00:00:00Z&until=2026-01-05T09:05:00Z")
        .await;
    assert_eq!(
        before["kpis"]["project_setup"]["all"],
        json!({"count": 0, "p50_seconds": null, "p90_seconds": null})
    );
    // Reconciliation does not exist: not measured, with the reason.
    assert_eq!(report["time_to_reconcile"]["value"], Value::Null);
    assert_eq!(report["time_to_reconcile"]["measured"], false);
    assert!(
        report["time_to_reconcile"]["reason"]
            .as_str()
            .unwrap()
            .contains("reconciliation does not exist yet"),
        "{report:#}"
    );

    // A deal of ten minutes ago, set up five minutes later, is on the scrape
    // (which reports the last 24 hours).
    let now = junction_store::now_ms();
    let recent = now - now % 1000 - 2 * FIVE_MINUTES_MS;
    let recent_text = format_time(recent);
    let run = h
        .deliver(&json!({"id": "deal-2", "type": "deal.won", "time": recent_text}))
        .await;
    assert_eq!(h.finished(&run).await["status"], "completed");
    h.store()
        .set_step_finished_at(&run, "project", recent + FIVE_MINUTES_MS)
        .await
        .unwrap();
    let auth = [("authorization".to_string(), format!("Bearer {READER}"))];
    let (status, text) = h.send("GET", "/metrics", &auth, String::new()).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let setup = [("kpi", "project_setup"), ("flow", "setup")];
    assert_eq!(
        quantiles(&scrape, "junction_kpi_duration_seconds", &setup),
        [(0.5, 300.0), (0.9, 300.0)],
        "{text}"
    );
    assert_eq!(
        sample(&scrape, "junction_kpi_duration_seconds_count", &setup),
        Some(1.0)
    );
    assert_eq!(
        sample(&scrape, "junction_kpi_duration_seconds_sum", &setup),
        Some(300.0)
    );
    assert_eq!(
        sample(&scrape, "junction_kpi_window_seconds", &[]),
        Some(86_400.0)
    );
    assert!(
        !text.contains(&run),
        "run ids are never labels of the scrape"
    );
    // A reader may read the KPIs too.
    let (status, _) = h.send("GET", "/v1/kpis", &auth, String::new()).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_corrections_and_discards_are_manual_touches() {
    let h = host().await;
    h.deploy("checked", CHECKED_FLOW).await;
    h.deploy("invoicing", INVOICING_FLOW).await;

    // One run that needs nobody.
    let fine = h.start("checked", json!({"ok": true})).await;
    assert_eq!(h.finished(&fine).await["status"], "completed");
    // One replayed as it was (it fails again), then with a corrected input.
    let touched = h.start("checked", json!({"ok": false})).await;
    let letter = h.dead_letter_of(&touched).await;
    let (status, body) = h
        .call("POST", &format!("/v1/dead-letters/{letter}/replay"), "")
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let letter = h.dead_letter_of(&touched).await;
    let corrected = json!({"input": {"trigger": {"ok": true}}}).to_string();
    let uri = format!("/v1/dead-letters/{letter}/replay");
    let (status, body) = h.call("POST", &uri, corrected).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(h.finished(&touched).await["status"], "completed");
    // One invoice blocked by bad data: the plugin refuses the input.
    let blocked = h.start("invoicing", json!({"method": "BREW"})).await;
    let blocked_letter = h.dead_letter_of(&blocked).await;
    let run = h.finished(&blocked).await;
    assert_eq!(
        run["steps"][0]["errors"][0]["kind"], "invalid_input",
        "{run:#}"
    );

    let report = h.kpis("").await;
    let touch = &report["manual_touch"];
    assert_eq!(
        (&touch["runs"], &touch["touched"], &touch["ratio"]),
        (&json!(3), &json!(1), &json!(1.0 / 3.0)),
        "{report:#}"
    );
    assert_eq!(
        touch["by_kind"],
        json!({"replay": 1, "input_corrected": 1, "discard": 0})
    );
    assert_eq!(
        touch["flows"],
        json!([
            {"flow": "checked", "runs": 2, "touched": 1, "ratio": 0.5},
            {"flow": "invoicing", "runs": 1, "touched": 0, "ratio": 0.0}
        ])
    );
    assert_eq!(
        report["failed_sync"]["flows"],
        json!([
            {"flow": "checked", "runs": 2, "failed": 0, "ratio": 0.0},
            {"flow": "invoicing", "runs": 1, "failed": 1, "ratio": 1.0}
        ])
    );
    assert_eq!(
        report["failed_sync"]["connections"],
        json!([{"connection": "echo", "calls": 1, "failed": 1, "ratio": 1.0}])
    );
    assert_eq!(
        report["kpis"]["invoice_blocked"],
        json!({"measure": "blocked", "runs": 1, "open": 1,
               "flows": [{"flow": "invoicing", "runs": 1, "open": 1}]})
    );
    let dead = report["dead_letters"].as_array().unwrap();
    assert_eq!(dead.len(), 1, "{report:#}");
    assert_eq!(
        (&dead[0]["flow"], &dead[0]["open"]),
        (&json!("invoicing"), &json!(1))
    );
    assert!(dead[0]["oldest_age_seconds"].as_f64().unwrap() >= 0.0);

    // Discarding the blocked invoice is a touch too; it is no longer open,
    // but it was blocked.
    let (status, body) = h
        .call("DELETE", &format!("/v1/dead-letters/{blocked_letter}"), "")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let report = h.kpis("").await;
    assert_eq!(report["manual_touch"]["touched"], 2);
    assert_eq!(report["manual_touch"]["by_kind"]["discard"], 1);
    assert_eq!(report["kpis"]["invoice_blocked"]["runs"], 1);
    assert_eq!(report["kpis"]["invoice_blocked"]["open"], 0);
    assert_eq!(report["dead_letters"], json!([]));

    // The scrape carries the same figures.
    let auth = [("authorization".to_string(), format!("Bearer {ADMIN}"))];
    let (_, text) = h.send("GET", "/metrics", &auth, String::new()).await;
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let flow = |f: &'static str| [("flow", f)];
    assert_eq!(
        sample(&scrape, "junction_kpi_manual_touch_ratio", &flow("checked")),
        Some(0.5)
    );
    assert_eq!(
        sample(
            &scrape,
            "junction_kpi_manual_touch_ratio",
            &flow("invoicing")
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &scrape,
            "junction_kpi_failed_sync_ratio",
            &flow("invoicing")
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &scrape,
            "junction_kpi_failed_call_ratio",
            &[("connection", "echo")]
        ),
        Some(1.0)
    );
    let blocked = [("kpi", "invoice_blocked"), ("flow", "invoicing")];
    assert_eq!(
        sample(&scrape, "junction_kpi_blocked_runs", &blocked),
        Some(1.0)
    );
    assert_eq!(
        sample(&scrape, "junction_kpi_blocked_open", &blocked),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_windows_and_bad_declarations_are_refused_with_the_fix() {
    let h = host().await;
    let (status, body) = h.call("GET", "/v1/kpis?since=yesterday", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");
    assert_eq!(
        body["error"]["message"],
        "`since` is `yesterday`, not an RFC 3339 time; use e.g. `2026-01-05T09:00:00Z`"
    );
    let (status, body) = h
        .call(
            "GET",
            "/v1/kpis?since=2026-01-06T00:00:00Z&until=2026-01-05T00:00:00Z",
            "",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("must be before `until`"),
        "{body}"
    );
    let (status, _) = h.send("GET", "/v1/kpis", &[], String::new()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let bad = format!(
        "{CHECKED_FLOW}\n[kpi.setup]\nmeasure = \"duration\"\nuntil = \"kickoff\"\n\
         [kpi.stuck]\nmeasure = \"stuck\"\n"
    );
    let (status, body) = h.call("PUT", "/v1/flows/bad", bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_flow");
    assert_eq!(
        body["error"]["message"],
        "kpi.setup.until: no step `kickoff` in this flow; use one of `check`, `done`; \
         kpi.stuck.measure: `stuck` is not a measure; use `duration` (with `from` and `until`) or `blocked`"
    );
    // One name, one measure across flows.
    h.deploy("invoicing", INVOICING_FLOW).await;
    let clash = format!(
        "{CHECKED_FLOW}\n[kpi.invoice_blocked]\nmeasure = \"duration\"\nuntil = \"done\"\n"
    );
    let (status, body) = h.call("PUT", "/v1/flows/clash", clash).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("flow `invoicing` declares `invoice_blocked` as `blocked`"),
        "{body}"
    );
}

// The store's KPI queries and touches on both databases.
junction_tests::sqlite_and_postgres!("kpis":
    kpis_are_computed_from_the_store,
);

/// Works `run` with this host until it ends.
async fn drive(flows: &Flows, run: &str) -> RunView {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        flows.work_once("driver").await.unwrap();
        let view = flows.run(run).await.unwrap();
        if TERMINAL.contains(&view.status.as_str()) {
            return view;
        }
        assert!(Instant::now() < deadline, "run {run} never ended: {view:?}");
        tokio::task::yield_now().await;
    }
}

async fn kpis_are_computed_from_the_store(postgres: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let mut config: Config = test_config(test_limits());
    config.store.database = Some(match postgres {
        Some(url) => PathBuf::from(url),
        None => dir.path().join("junction.db"),
    });
    config.store.secret_key = Some(SECRET_KEY.to_string().into());
    config.runtime.cache_dir = Some(cache_dir());
    let runtime = Runtime::open(&config.store, &config.runtime).await.unwrap();
    let flows = Flows::new(runtime, FlowOptions::default());
    let source = format!(
        "{CHECKED_FLOW}\n[kpi.setup]\nmeasure = \"duration\"\nuntil = \"done\"\n\
         [kpi.bad_data]\nmeasure = \"blocked\"\nerrors = [\"expression\"]\n"
    );
    flows.deploy("checked", &source, "ops").await.unwrap();
    let run = flows
        .start_run("checked", json!({"ok": false, "time": T}), None)
        .await
        .unwrap();
    assert_eq!(drive(&flows, &run).await.status, "failed");
    let letter = flows.dead_letters(None).await.unwrap().remove(0);
    flows
        .replay(&letter.id, Some(json!({"trigger": {"ok": true}})), "ops")
        .await
        .unwrap();
    assert_eq!(drive(&flows, &run).await.status, "completed");
    let store = flows.runtime().store();
    let t = parse_time(T).unwrap();
    assert!(
        store
            .set_step_finished_at(&run, "done", t + FIVE_MINUTES_MS)
            .await
            .unwrap()
    );
    assert!(!store.set_step_finished_at(&run, "nope", t).await.unwrap());

    // The duration, by the completion's window.
    let day = 24 * 60 * 60 * 1000;
    let since = parse_time("2026-01-05T00:00:00Z").unwrap();
    let completed = store.steps_completed_in(since, since + day).await.unwrap();
    assert_eq!(completed.len(), 1, "{completed:?}");
    assert_eq!(
        (completed[0].step_id.as_str(), completed[0].finished_at),
        ("done", t + FIVE_MINUTES_MS)
    );
    let report = flows.kpis(since, since + day).await.unwrap();
    match &report.kpis["setup"] {
        DeclaredKpi::Duration {
            all,
            flows: per_flow,
        } => {
            assert_eq!((all.count, all.p50_seconds), (1, Some(300.0)));
            assert_eq!(per_flow[0].started_from.trigger_time, 1);
        }
        other => panic!("{other:?}"),
    }

    // The touches and blocked runs, by the run's creation window.
    let now = junction_store::now_ms();
    let (since, until) = (now - day, now + 1);
    let touches = store.kpi_touches(since, until).await.unwrap();
    assert_eq!(touches.len(), 1, "{touches:?}");
    assert_eq!(
        (
            touches[0].run_id.as_str(),
            touches[0].kind.as_str(),
            touches[0].actor.as_str()
        ),
        (run.as_str(), "input_corrected", "ops")
    );
    assert_eq!(store.kpi_runs(since, until).await.unwrap().len(), 1);
    assert_eq!(store.kpi_steps(since, until).await.unwrap().len(), 2);
    let report = flows.kpis(since, until).await.unwrap();
    assert_eq!(
        (report.manual_touch.touched, report.manual_touch.ratio),
        (1, Some(1.0))
    );
    assert_eq!(
        report.kpis["bad_data"],
        DeclaredKpi::Blocked {
            runs: 1,
            open: 0,
            flows: vec![junction_flows::kpi::FlowBlocked {
                flow: "checked".into(),
                runs: 1,
                open: 0
            }]
        }
    );
    // A discard is kept as a touch too.
    let second = flows
        .start_run("checked", json!({"ok": false}), None)
        .await
        .unwrap();
    drive(&flows, &second).await;
    let letter = flows.dead_letters(None).await.unwrap().remove(0);
    flows.discard(&letter.id, "ops").await.unwrap();
    let kinds: Vec<String> = store
        .kpi_touches(since, junction_store::now_ms() + 1)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.kind)
        .collect();
    assert_eq!(kinds, ["input_corrected", "discard"]);
}
