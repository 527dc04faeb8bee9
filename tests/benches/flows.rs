//! Durable flows: run and step-transition throughput of a 3-step flow, and
//! webhook intake, on SQLite (`synchronous=FULL`) and PostgreSQL.
//!
//! ```sh
//! cargo bench -p junction-tests --bench flows                 # SQLite, and PostgreSQL when
//!                                                             # JUNCTION_TEST_POSTGRES_URL is set
//! cargo bench -p junction-tests --bench flows -- sqlite       # one backend
//! JUNCTION_BENCH_RUNS=4000 cargo bench -p junction-tests --bench flows
//! ```
//!
//! **Runs.** A flow of three steps, each a call of the `echo` test
//! connector's no-op operation (a real plugin call: instantiate, call,
//! drop), is deployed; `RUNS` runs are started from 32 concurrent tasks (each
//! start is committed before it returns: the "starts/s" column); then the
//! flow workers are started and the bench waits until every run is
//! `completed`. A step transition is one step's move to `completed`,
//! durably committed with its output (three per run); each run also commits
//! its claim, each step's attempt record and the run's end.
//!
//! **Webhook intake.** `EVENTS` distinct events are POSTed over loopback
//! TCP to `POST /v1/webhooks/{connection}` by 32 concurrent senders, each
//! body signed (HMAC-SHA256, the generic scheme) and parsed by the echo
//! plugin's `handle-webhook`; an event-triggered flow matches every event, so
//! each accepted delivery commits the event and starts one run before it is
//! answered `200`. Workers are off during intake: this measures the intake
//! path alone. Reported: accepted events/s and the latency percentiles of
//! the deliveries.
//!
//! **Open-loop intake.** `JUNCTION_BENCH_OPEN_EVENTS` (5,000) deliveries at a
//! fixed `JUNCTION_BENCH_RATE` (1,000/s), each sent at its scheduled time
//! however slow the earlier answers are, latency counted from that time,
//! with the flow workers draining the runs meanwhile.

#![allow(clippy::unwrap_used, clippy::expect_used)] // bench code: a failed unwrap is a failed bench

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use junction_flows::{FlowOptions, Flows};
use junction_runtime::runtime::{ConnectionSpec, Runtime};
use junction_store::secrets::Redacted;
use junction_store::{Store, WebhookSettings};
use junction_tests::{guests, test_config, test_limits};
use serde_json::json;

const SECRET: &str = "bench-webhook-secret-3f9a";
const SENDERS: usize = 32;
const STARTERS: usize = 32;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A runtime over `database` (a SQLite file or a PostgreSQL URL), with the
/// echo connector loaded and connected twice: `echo` for the steps and
/// `hooks` for the webhooks.
async fn runtime(database: String) -> Arc<Runtime> {
    let config = {
        let mut config = test_config(test_limits());
        config.store.database = Some(database.into());
        config.store.secret_key = Some(Redacted::new(
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_string(),
        ));
        config
    };
    let store = Store::open(&config.store).await.expect("store");
    let rt = Arc::new(Runtime::new(store, &config.runtime).expect("runtime"));
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
    rt.put_connection(
        "hooks",
        ConnectionSpec {
            plugin: "echo".into(),
            webhook: Some(WebhookSettings {
                scheme: serde_json::from_value(json!({"generic_hmac": {
                    "header": "X-Bench-Signature", "prefix": "sha256=", "encoding": "hex"
                }}))
                .unwrap(),
                secret: SECRET.into(),
            }),
            ..ConnectionSpec::default()
        },
    )
    .await
    .unwrap();
    rt
}

fn options(workers: usize) -> FlowOptions {
    FlowOptions {
        workers,
        lease: Duration::from_secs(30),
        idle_poll: Duration::from_millis(20),
    }
}

const THREE_STEPS: &str = r#"
description = "bench: three no-op plugin calls"
trigger = { type = "manual" }
[[steps]]
id = "one"
connection = "echo"
operation = "noop"
input = "{}"
[[steps]]
id = "two"
connection = "echo"
operation = "noop"
input = "{}"
[[steps]]
id = "three"
connection = "echo"
operation = "noop"
input = "{}"
"#;

const ON_EVENT: &str = r#"
description = "bench: every webhook event starts a run"
trigger = { type = "event", connection = "hooks", event = "bench.event" }
[[steps]]
id = "one"
connection = "echo"
operation = "noop"
input = "{}"
"#;

/// Makes the database of one measurement, by label: a SQLite file, or a
/// fresh PostgreSQL database (`None` when PostgreSQL is not configured).
type DatabaseFor = Box<dyn Fn(&str) -> Option<String>>;

struct RunFigures {
    runs: usize,
    starts_per_s: f64,
    runs_per_s: f64,
    transitions_per_s: f64,
}

async fn bench_runs(database: String, runs: usize, workers: usize) -> RunFigures {
    let rt = runtime(database).await;
    let flows = Flows::new(rt, options(workers));
    flows
        .deploy("three-steps", THREE_STEPS, "bench")
        .await
        .unwrap();
    let started = Instant::now();
    let per_task = runs.div_ceil(STARTERS);
    let mut tasks = Vec::new();
    for t in 0..STARTERS {
        let flows = flows.clone();
        let count = per_task.min(runs.saturating_sub(t * per_task));
        tasks.push(tokio::spawn(async move {
            for _ in 0..count {
                flows
                    .start_run("three-steps", json!({"bench": true}), None)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let starts = started.elapsed();
    let drain = Instant::now();
    let handles = flows.spawn_workers();
    loop {
        let waiting = flows
            .runs(Some("three-steps"), Some("pending"), 1)
            .await
            .unwrap()
            .len()
            + flows
                .runs(Some("three-steps"), Some("running"), 1)
                .await
                .unwrap()
                .len();
        if waiting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained = drain.elapsed();
    let completed = flows
        .runs(
            Some("three-steps"),
            Some("completed"),
            u32::try_from(runs + 1).unwrap(),
        )
        .await
        .unwrap()
        .len();
    assert_eq!(completed, runs, "every run must complete");
    for h in handles {
        h.abort();
    }
    RunFigures {
        runs,
        starts_per_s: runs as f64 / starts.as_secs_f64(),
        runs_per_s: runs as f64 / drained.as_secs_f64(),
        transitions_per_s: (3 * runs) as f64 / drained.as_secs_f64(),
    }
}

struct IntakeFigures {
    events: usize,
    per_s: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn sign(body: &[u8]) -> String {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
    Mac::update(&mut mac, body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A host on loopback with the event-triggered flow deployed and `workers`
/// flow workers (none started when 0); returns it, the webhook URL and the server.
async fn intake_host(
    database: String,
    workers: usize,
) -> (
    Arc<Flows>,
    String,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let rt = runtime(database).await;
    let flows = Flows::new(rt, options(workers.max(1)));
    flows.deploy("on-event", ON_EVENT, "bench").await.unwrap();
    if workers > 0 {
        flows.spawn_workers();
    }
    let app = junction_api::router_with_flows(flows.clone(), &Default::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/v1/webhooks/hooks",
        listener.local_addr().unwrap()
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    (flows, url, server)
}

/// The figures of `latencies` (sorted here) of `events` deliveries over `elapsed`.
fn intake_figures(mut latencies: Vec<Duration>, elapsed: Duration) -> IntakeFigures {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    IntakeFigures {
        events: latencies.len(),
        per_s: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        max: *latencies.last().unwrap(),
    }
}

async fn bench_intake(database: String, events: usize) -> IntakeFigures {
    let (flows, url, server) = intake_host(database, 0).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(SENDERS)
        .build()
        .unwrap();
    let per_sender = events.div_ceil(SENDERS);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..SENDERS {
        let client = client.clone();
        let url = url.clone();
        let count = per_sender.min(events.saturating_sub(s * per_sender));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(count);
            for n in 0..count {
                let body = json!({"id": format!("evt-{s}-{n}"), "type": "bench.event", "n": n})
                    .to_string();
                let signature = sign(body.as_bytes());
                let sent = Instant::now();
                let answer = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-bench-signature", signature)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = answer.status();
                let text = answer.text().await.unwrap();
                latencies.push(sent.elapsed());
                assert!(status.is_success(), "{status}: {text}");
            }
            latencies
        }));
    }
    let mut latencies = Vec::with_capacity(events);
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    server.abort();
    let runs = flows
        .runs(Some("on-event"), None, u32::try_from(events + 1).unwrap())
        .await
        .unwrap()
        .len();
    assert_eq!(runs, events, "every accepted event starts one run");
    intake_figures(latencies, elapsed)
}

/// Webhook intake at a fixed rate (open loop): delivery `i` is sent at
/// `start + i / rate` whether or not the earlier ones were answered, and its
/// latency is counted from that scheduled time, so a slow answer delays no
/// later delivery and hides no queueing. The flow workers run meanwhile, as
/// on a host in production, draining the runs the events start.
async fn bench_intake_open(
    database: String,
    events: usize,
    rate: f64,
    workers: usize,
) -> IntakeFigures {
    let (_flows, url, server) = intake_host(database, workers).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let tasks: Vec<_> = (0..events)
        .map(|n| {
            let (client, url) = (client.clone(), url.clone());
            let at = start + Duration::from_secs_f64(n as f64 / rate);
            let body =
                json!({"id": format!("open-{n}"), "type": "bench.event", "n": n}).to_string();
            let signature = sign(body.as_bytes());
            tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                let answer = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-bench-signature", signature)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = answer.status();
                let text = answer.text().await.unwrap();
                assert!(status.is_success(), "{status}: {text}");
                at.elapsed()
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(events);
    for t in tasks {
        latencies.push(t.await.unwrap());
    }
    let elapsed = start.elapsed();
    server.abort();
    intake_figures(latencies, elapsed)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn main() {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let runs = env_number("JUNCTION_BENCH_RUNS", 2000);
    let events = env_number("JUNCTION_BENCH_EVENTS", 4000);
    let workers = env_number("JUNCTION_BENCH_WORKERS", 16);
    let rate = env_number("JUNCTION_BENCH_RATE", 1000) as f64;
    let open_events = env_number("JUNCTION_BENCH_OPEN_EVENTS", 5000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut backends: Vec<(&str, DatabaseFor)> = Vec::new();
    let sqlite_dir = dir.path().to_path_buf();
    backends.push((
        "sqlite",
        Box::new(move |label| {
            Some(
                sqlite_dir
                    .join(format!("{label}.db"))
                    .to_string_lossy()
                    .into_owned(),
            )
        }),
    ));
    let postgres_rt = runtime.handle().clone();
    backends.push((
        "postgres",
        Box::new(move |label| {
            postgres_rt.block_on(junction_tests::postgres::fresh_database(label))
        }),
    ));
    println!(
        "flows bench: {runs} runs of 3 steps, {workers} workers; {events} webhook events from {SENDERS} senders; load average before: {}",
        load_average()
    );
    let mut table = BTreeMap::new();
    for (name, database) in &backends {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
            continue;
        }
        let Some(run_db) = database(&format!("bench-runs-{name}")) else {
            continue;
        };
        let r = runtime.block_on(bench_runs(run_db, runs, workers));
        let intake_db = database(&format!("bench-intake-{name}")).unwrap();
        let i = runtime.block_on(bench_intake(intake_db, events));
        println!(
            "{name}: {} runs: starts {:.0}/s, runs {:.0}/s, step transitions {:.0}/s; intake {} events: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; load average after: {}",
            r.runs,
            r.starts_per_s,
            r.runs_per_s,
            r.transitions_per_s,
            i.events,
            i.per_s,
            i.p50.as_secs_f64() * 1e3,
            i.p99.as_secs_f64() * 1e3,
            i.max.as_secs_f64() * 1e3,
            load_average(),
        );
        let open_db = database(&format!("bench-intake-open-{name}")).unwrap();
        let o = runtime.block_on(bench_intake_open(open_db, open_events, rate, workers));
        println!(
            "{name}: open-loop intake at {rate:.0}/s with {workers} workers draining: {} events in {:.2} s ({:.0}/s), p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; load average after: {}",
            o.events,
            o.events as f64 / o.per_s,
            o.per_s,
            o.p50.as_secs_f64() * 1e3,
            o.p99.as_secs_f64() * 1e3,
            o.max.as_secs_f64() * 1e3,
            load_average(),
        );
        table.insert(*name, (r, i));
    }
    println!();
    println!(
        "| backend | run starts/s | runs/s | step transitions/s | webhook events/s | p50 | p99 |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, (r, i)) in &table {
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} ms | {:.2} ms |",
            r.starts_per_s,
            r.runs_per_s,
            r.transitions_per_s,
            i.per_s,
            i.p50.as_secs_f64() * 1e3,
            i.p99.as_secs_f64() * 1e3
        );
    }
}
