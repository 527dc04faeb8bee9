//! Per-call overhead: instantiate a connector from its `InstancePre` in a
//! fresh store, call a no-op operation, drop the store; and the same for the
//! shipped HubSpot deal -> project transform. Criterion's medians first, then
//! a latency run that times every one of 20,000 consecutive calls per case
//! and prints p50, p90, p99, p99.9 and the maximum, and the CPU time the
//! calling thread used per call (which other processes on a busy machine do
//! not inflate). Run with
//! `cargo bench -p junction-tests --bench call`.
//!
//! `JUNCTION_BENCH_TELEMETRY` picks what observes the calls: `off` (no
//! subscriber, the default), `logs` (the host's log subscriber at info, as
//! `junction serve` runs when it exports no traces) or `traces` (that, and
//! every span exported over OTLP/HTTP to a sink on loopback).

#![allow(clippy::unwrap_used, clippy::expect_used)] // bench code: a failed unwrap is a failed run

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use junction_runtime::engine::Limits;
use junction_runtime::runtime::{CallOptions, ConnectionSpec, Runtime};
use junction_store::{Auth, RateLimit};
use junction_tests::{guests, runtime};

/// A small HubSpot deal, as the API suite sends it.
const DEAL: &str = r#"{"id":"1","properties":{"dealname":"Acme Rollout","amount":"1000","dealstage":"closedwon","closedate":"2026-11-20T00:00:00.000Z"}}"#;

/// Calls timed one by one in the latency run, after as many unmeasured ones.
const LATENCY_CALLS: usize = 20_000;

/// The cases: a label and one call.
#[derive(Clone, Copy)]
enum Case {
    /// `noop` of `echo` on a connection without credentials.
    Noop,
    /// `noop` of `echo` on a connection with a bearer token (injected into
    /// outbound requests by the host), an allowlist and a rate limit.
    NoopWithAuth,
    /// The HubSpot deal -> project transform on [`DEAL`].
    Transform,
}

impl Case {
    const ALL: [Case; 3] = [Case::Noop, Case::NoopWithAuth, Case::Transform];

    fn label(self) -> &'static str {
        match self {
            Case::Noop => "connector noop (instantiate + invoke + drop)",
            Case::NoopWithAuth => "connector noop, bearer auth + allowlist + rate limit",
            Case::Transform => "transform hubspot deal -> project",
        }
    }

    async fn call(self, host: &Runtime) {
        match self {
            Case::Noop => {
                host.invoke("echo", "noop", "{}", CallOptions::default())
                    .await
                    .expect("noop");
            }
            Case::NoopWithAuth => {
                host.invoke("echo-auth", "noop", "{}", CallOptions::default())
                    .await
                    .expect("noop with auth");
            }
            Case::Transform => {
                host.apply("hubspot-deal-to-project", DEAL)
                    .await
                    .expect("apply");
            }
        }
    }
}

fn single_threaded() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn host() -> Arc<Runtime> {
    let host = runtime(Limits::default()).await;
    host.load_plugin(&guests::bytes(guests::ECHO))
        .await
        .expect("echo loads");
    host.load_plugin(junction::shipped::HUBSPOT_DEAL_TO_PROJECT)
        .await
        .expect("transform loads");
    host.put_connection(
        "echo",
        ConnectionSpec {
            plugin: "echo".into(),
            ..Default::default()
        },
    )
    .await
    .expect("connection");
    host.put_connection(
        "echo-auth",
        ConnectionSpec {
            plugin: "echo".into(),
            config: BTreeMap::from([("site".to_string(), "example".to_string())]),
            auth: Some(Auth::Bearer {
                token: "a-long-random-secret".into(),
            }),
            allowed_hosts: vec!["api.example.com".into()],
            rate_limit: Some(RateLimit {
                requests: 100,
                per_seconds: 1,
                burst: None,
            }),
            ..Default::default()
        },
    )
    .await
    .expect("connection with auth");
    host
}

fn per_call(c: &mut Criterion) {
    let rt = single_threaded();
    let host = rt.block_on(host());
    let mut group = c.benchmark_group("per-call");
    for case in Case::ALL {
        group.bench_function(case.label(), |b| b.to_async(&rt).iter(|| case.call(&host)));
    }
    // What metrics add to each call: the host records every call (counter and
    // latency histogram by plugin, version, connection, operation, outcome).
    let plugin = rt
        .block_on(host.invoke("echo", "noop", "{}", CallOptions::default()))
        .expect("noop")
        .plugin;
    let ok: Result<(), junction_runtime::runtime::CallError> = Ok(());
    group.bench_function("metrics: record one call", |b| {
        b.iter(|| {
            host.metrics()
                .record_call(Some(&plugin), "echo", "noop", Instant::now(), &ok)
        })
    });
    group.finish();
}

/// Times every call of [`LATENCY_CALLS`] consecutive ones per case.
fn latency() {
    let rt = single_threaded();
    let host = rt.block_on(host());
    println!(
        "latency run, load average before: {}",
        support::load_average()
    );
    for case in Case::ALL {
        let calls = rt.block_on(async {
            for _ in 0..LATENCY_CALLS {
                case.call(&host).await;
            }
            let mut calls: Vec<Duration> = Vec::with_capacity(LATENCY_CALLS);
            let cpu = support::thread_cpu();
            for _ in 0..LATENCY_CALLS {
                let started = Instant::now();
                case.call(&host).await;
                calls.push(started.elapsed());
            }
            let cpu = support::thread_cpu()
                .zip(cpu)
                .map(|(after, before)| (after - before) / LATENCY_CALLS as u32);
            (calls, cpu)
        });
        support::report_latencies(case.label(), calls.0);
        if let Some(cpu) = calls.1 {
            println!("  CPU time of this thread per call: {cpu:.2?}");
        }
    }
    println!("load average after: {}", support::load_average());
}

criterion_group!(benches, per_call);

/// The subscriber `JUNCTION_BENCH_TELEMETRY` asks for.
fn telemetry() -> Option<junction::telemetry::Telemetry> {
    use junction::telemetry::TelemetryConfig;
    let mode = std::env::var("JUNCTION_BENCH_TELEMETRY").unwrap_or_else(|_| "off".into());
    println!("telemetry: {mode}");
    let config = match mode.as_str() {
        "off" => return None,
        "logs" => TelemetryConfig {
            traces: Some(false),
            ..TelemetryConfig::default()
        },
        "traces" => TelemetryConfig {
            traces: Some(true),
            otlp_endpoint: Some(otlp_sink()),
            ..TelemetryConfig::default()
        },
        other => panic!("JUNCTION_BENCH_TELEMETRY={other}: use off, logs or traces"),
    };
    Some(junction::telemetry::init(&config, "info").expect("telemetry"))
}

/// An OTLP/HTTP endpoint on loopback that accepts and drops every export.
fn otlp_sink() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("sink");
    listener.set_nonblocking(true).expect("sink");
    let base = format!("http://{}", listener.local_addr().expect("sink"));
    std::thread::spawn(move || {
        single_threaded().block_on(async move {
            let app = axum::Router::new().route(
                "/v1/traces",
                axum::routing::post(|_: axum::body::Bytes| async { "" }),
            );
            let listener = tokio::net::TcpListener::from_std(listener).expect("sink");
            axum::serve(listener, app).await.expect("sink");
        });
    });
    base
}

fn main() {
    let _telemetry = telemetry();
    benches();
    Criterion::default().configure_from_args().final_summary();
    latency();
}
