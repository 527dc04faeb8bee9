//! The sandbox: what the host refuses to load, and what happens when a
//! plugin misbehaves while a healthy one is being called.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use junction_registry::{Refusal, World};
use junction_runtime::runtime::{CallError, CallOptions, ConnectionSpec, LoadError, Runtime};
use junction_tests::{guests, runtime, test_limits};
use serde_json::{Value, json};

async fn connect(rt: &Runtime, name: &str, plugin: &str, allowed_hosts: Vec<String>) {
    rt.put_connection(
        name,
        ConnectionSpec {
            plugin: plugin.into(),
            version: None,
            config: BTreeMap::from([("greeting".to_string(), format!("hello from {name}"))]),
            auth: None,
            allowed_hosts,
            ..Default::default()
        },
    )
    .await
    .expect("connection");
}

async fn invoke(
    rt: &Runtime,
    connection: &str,
    op: &str,
    input: Value,
) -> Result<Value, CallError> {
    rt.invoke(connection, op, &input.to_string(), CallOptions::default())
        .await
        .map(|out| serde_json::from_str(&out.json).expect("output is JSON"))
}

async fn with_guests() -> Arc<Runtime> {
    let rt = runtime(test_limits()).await;
    rt.load_plugin(&guests::bytes(guests::ECHO))
        .await
        .expect("echo loads");
    rt.load_plugin(&guests::bytes(guests::HOSTILE))
        .await
        .expect("hostile loads");
    connect(&rt, "echo", "echo", vec![]).await;
    connect(&rt, "hostile", "hostile", vec![]).await;
    rt
}

#[tokio::test]
async fn both_worlds_load() {
    let rt = runtime(test_limits()).await;
    let jira = rt
        .load_plugin(junction::shipped::JIRA_CONNECTOR)
        .await
        .unwrap();
    assert_eq!(jira.name(), "jira");
    assert_eq!(jira.world(), World::Connector);
    for op in ["create-project", "create-issue", "get-issue"] {
        assert!(jira.operation(op).is_some(), "jira offers {op}");
    }
    let transform = rt
        .load_plugin(junction::shipped::HUBSPOT_DEAL_TO_PROJECT)
        .await
        .unwrap();
    assert_eq!(transform.world(), World::Transform);
    let listed = rt.plugins();
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .all(|p| p.active && p.digest.starts_with("sha256:"))
    );
}

#[tokio::test]
async fn loading_the_same_component_twice_is_idempotent() {
    let rt = runtime(test_limits()).await;
    let bytes = guests::bytes(guests::ECHO);
    let first = rt.load_plugin(&bytes).await.unwrap();
    let second = rt.load_plugin(&bytes).await.unwrap();
    assert_eq!(first.digest(), second.digest());
    assert_eq!(rt.plugins().len(), 1);
}

#[tokio::test]
async fn core_module_is_refused() {
    let rt = runtime(test_limits()).await;
    let err = rt.load_plugin(b"\0asm\x01\0\0\0").await.unwrap_err();
    assert!(
        matches!(err, LoadError::Refused(Refusal::CoreModule)),
        "{err}"
    );
    assert!(err.to_string().contains("core WebAssembly module"));
}

#[tokio::test]
async fn component_of_an_unknown_world_is_refused() {
    let rt = runtime(test_limits()).await;
    let err = rt
        .load_plugin(&guests::bytes(guests::OTHER_WORLD))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, LoadError::Refused(Refusal::UnknownWorld { .. })),
        "{message}"
    );
    assert!(
        message.contains("hello"),
        "names what it exports: {message}"
    );
    assert!(rt.plugins().is_empty());
}

#[tokio::test]
async fn forbidden_imports_are_named() {
    let rt = runtime(test_limits()).await;
    for (guest, needle) in [
        (guests::FS_READER, "wasi:filesystem/"),
        (guests::SOCKETS, "wasi:sockets/"),
    ] {
        let err = rt.load_plugin(&guests::bytes(guest)).await.unwrap_err();
        let message = err.to_string();
        match &err {
            LoadError::Refused(Refusal::ForbiddenImports { world, imports }) => {
                assert_eq!(*world, World::Connector);
                assert!(imports.iter().any(|i| i.starts_with(needle)), "{imports:?}");
                assert!(
                    imports.iter().all(|i| !i.starts_with("junction:")),
                    "{imports:?}"
                );
            }
            other => panic!("expected forbidden imports for {guest}, got {other}"),
        }
        assert!(
            message.contains(needle),
            "the message names the import: {message}"
        );
    }
    assert!(rt.plugins().is_empty());
}

/// Runs `hostile` on the hostile plugin while the healthy echo plugin is
/// called; the healthy call must answer before the hostile one is stopped.
/// With `still_running`, the hostile call must not have ended when the
/// healthy one answered (true of an infinite loop; a panic may end first).
async fn misbehave_beside_healthy(
    op: &str,
    still_running: bool,
) -> (Result<Value, CallError>, Duration) {
    let rt = with_guests().await;
    let hostile_rt = rt.clone();
    let op = op.to_string();
    let started = Instant::now();
    let hostile = tokio::spawn(async move {
        let result = invoke(&hostile_rt, "hostile", &op, json!({})).await;
        (result, started.elapsed())
    });
    // The healthy plugin answers while the hostile call is still running.
    let healthy = invoke(&rt, "echo", "echo", json!({"still": "alive"}))
        .await
        .unwrap();
    assert_eq!(healthy, json!({"still": "alive"}));
    if still_running {
        assert!(
            !hostile.is_finished(),
            "the healthy call waited for the hostile one"
        );
    }
    let (result, elapsed) = hostile.await.unwrap();
    // And after it, the host still serves both plugins.
    assert_eq!(
        invoke(&rt, "echo", "noop", json!({})).await.unwrap(),
        json!({})
    );
    assert_eq!(
        invoke(&rt, "hostile", "noop", json!({})).await.unwrap(),
        json!({})
    );
    (result, elapsed)
}

#[tokio::test]
async fn infinite_loop_times_out_within_its_deadline() {
    let deadline = Duration::from_millis(test_limits().deadline_ms);
    let (result, elapsed) = misbehave_beside_healthy("loop", true).await;
    let err = result.unwrap_err();
    assert!(
        matches!(err, CallError::Timeout { deadline_ms: 1_500 }),
        "{err}"
    );
    assert!(elapsed >= deadline, "stopped early: {elapsed:?}");
    // Epochs tick every few ms; a generous bound catches a deadline that never fires.
    assert!(elapsed < deadline * 3, "stopped late: {elapsed:?}");
}

#[tokio::test]
async fn unbounded_memory_growth_hits_the_limit() {
    let (result, _) = misbehave_beside_healthy("grow", false).await;
    let err = result.unwrap_err();
    assert!(
        matches!(&err, CallError::LimitExceeded { what } if what == "memory"),
        "{err}"
    );
}

#[tokio::test]
async fn panic_is_a_trap_with_the_message() {
    let (result, _) = misbehave_beside_healthy("panic", false).await;
    let err = result.unwrap_err();
    assert!(matches!(err, CallError::Trap(_)), "{err}");
    assert!(
        err.to_string()
            .contains("hostile guest panicked on purpose"),
        "{err}"
    );
}

#[tokio::test]
async fn oversized_output_is_refused() {
    let rt = with_guests().await;
    let err = invoke(
        &rt,
        "hostile",
        "big-output",
        json!({"bytes": 2 * 1024 * 1024}),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CallError::OutputTooLarge { .. }), "{err}");
}

#[tokio::test]
async fn unknown_operation_lists_what_is_offered() {
    let rt = with_guests().await;
    let err = invoke(&rt, "echo", "no-such-op", json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::UnknownOperation { .. }), "{err}");
    assert!(err.to_string().contains("echo"), "{err}");
}

#[tokio::test]
async fn config_and_kv_are_scoped_to_the_connection() {
    let rt = with_guests().await;
    connect(&rt, "echo-b", "echo", vec![]).await;
    let value = invoke(&rt, "echo", "config", json!({"key": "greeting"}))
        .await
        .unwrap();
    assert_eq!(value["value"], "hello from echo");
    let value = invoke(&rt, "echo-b", "config", json!({"key": "greeting"}))
        .await
        .unwrap();
    assert_eq!(value["value"], "hello from echo-b");

    invoke(&rt, "echo", "kv", json!({"set": {"k": "a-value"}}))
        .await
        .unwrap();
    // A later call (a fresh instance) sees the state; another connection does not.
    let seen = invoke(&rt, "echo", "kv", json!({"get": "k"}))
        .await
        .unwrap();
    assert_eq!(seen["value"], "a-value");
    let other = invoke(&rt, "echo-b", "kv", json!({"get": "k"}))
        .await
        .unwrap();
    assert_eq!(other["value"], Value::Null);
}

/// A loopback HTTP server that answers every request with its own headers.
/// The headers of each request a [`header_echo_server`] received.
type Received = Arc<std::sync::Mutex<Vec<BTreeMap<String, String>>>>;

/// A server that answers every request with its headers as JSON (an
/// upstream that reflects what it gets), and records them.
async fn header_echo_server() -> (String, Received) {
    use axum::Router;
    use axum::http::HeaderMap;
    let received = Received::default();
    let record = received.clone();
    let app = Router::new().fallback(move |headers: HeaderMap| {
        let record = record.clone();
        async move {
            let map: BTreeMap<String, String> = headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect();
            record.lock().unwrap().push(map.clone());
            axum::Json(map)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr.to_string(), received)
}

#[tokio::test]
async fn credentials_go_only_to_credential_hosts_and_reflections_are_masked() {
    let rt = with_guests().await;
    let (api, api_seen) = header_echo_server().await;
    let (cdn, cdn_seen) = header_echo_server().await;
    let (other, other_seen) = header_echo_server().await;
    rt.put_connection(
        "web",
        ConnectionSpec {
            plugin: "echo".into(),
            config: BTreeMap::from([("base_url".to_string(), format!("http://{api}"))]),
            auth: Some(junction_store::Auth::Bearer {
                token: "s3cret-token-value".into(),
            }),
            allowed_hosts: vec![cdn.clone(), api.clone()],
            private_hosts: vec![api.clone(), cdn.clone()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let fetch = async |host: &str| {
        invoke(
            &rt,
            "web",
            "fetch",
            json!({"url": format!("http://{host}/x")}),
        )
        .await
    };

    // The API host (from `base_url`) gets the credential, added by the host...
    let ok = fetch(&api).await.unwrap();
    assert_eq!(ok["status"], 200);
    let sent = api_seen.lock().unwrap().pop().unwrap();
    assert_eq!(sent["authorization"], "Bearer s3cret-token-value");
    // ...and its echo of it reaches the guest masked, length kept.
    let echoed: Value = serde_json::from_str(ok["body"].as_str().unwrap()).unwrap();
    assert_eq!(echoed["authorization"], "*".repeat(25));
    assert!(!ok.to_string().contains("s3cret-token-value"), "{ok}");

    // Another allowed host gets none, though it is first on the allowlist.
    assert_eq!(fetch(&cdn).await.unwrap()["status"], 200);
    let sent = cdn_seen.lock().unwrap().pop().unwrap();
    assert!(!sent.contains_key("authorization"), "{sent:?}");

    // A host off the allowlist gets nothing at all: not even the request.
    let err = fetch(&other).await.unwrap_err();
    assert_eq!(err.outcome(), "egress_denied", "{err}");
    assert!(err.to_string().contains("`allowed_hosts`"), "{err}");
    assert!(other_seen.lock().unwrap().is_empty());

    // The guest never saw the secret: not in what it can report about itself.
    let whoami = invoke(&rt, "web", "whoami", json!({})).await.unwrap();
    let env = invoke(&rt, "web", "env", json!({})).await.unwrap();
    for observed in [whoami.to_string(), env.to_string()] {
        assert!(!observed.contains("s3cret-token-value"), "{observed}");
    }

    // Explicit credential hosts are exact hosts on the allowlist.
    let spec = |credential_hosts: Vec<String>| ConnectionSpec {
        plugin: "echo".into(),
        auth: Some(junction_store::Auth::Bearer {
            token: "s3cret-token-value".into(),
        }),
        allowed_hosts: vec!["*.example.com".into()],
        credential_hosts,
        ..Default::default()
    };
    for (hosts, says) in [
        (vec![], "no host to send them to"),
        (vec!["*.example.com".to_string()], "is a pattern"),
        (
            vec!["api.other.com".to_string()],
            "not on the connection's `allowed_hosts`",
        ),
    ] {
        let err = rt.put_connection("bad", spec(hosts)).await.unwrap_err();
        assert!(err.to_string().contains(says), "{err}");
    }
    rt.put_connection("good", spec(vec!["api.example.com".into()]))
        .await
        .unwrap();
}

#[tokio::test]
async fn deep_recursion_is_a_trap() {
    let (result, _) = misbehave_beside_healthy("recurse", false).await;
    let err = result.unwrap_err();
    // Rust keeps large frames on a shadow stack in linear memory, so the
    // first thing to run out may be that (an out-of-bounds access below
    // address 0) or the engine's call stack; either is a trap.
    assert!(matches!(err, CallError::Trap(_)), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("stack") || message.contains("out of bounds memory access"),
        "{message}"
    );
}

#[tokio::test]
async fn endless_resource_handles_hit_the_limit() {
    let (result, elapsed) = misbehave_beside_healthy("handles", false).await;
    let err = result.unwrap_err();
    assert!(
        matches!(&err, CallError::LimitExceeded { what } if what == "resource handle"),
        "{err}"
    );
    assert!(
        elapsed < Duration::from_millis(test_limits().deadline_ms),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn a_100_mb_output_string_is_stopped() {
    let rt = with_guests().await;
    let err = invoke(&rt, "hostile", "big-output", json!({"bytes": 100_000_000}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CallError::LimitExceeded { what } if what == "memory")
            || matches!(err, CallError::OutputTooLarge { .. }),
        "{err}"
    );
    assert_eq!(
        invoke(&rt, "echo", "noop", json!({})).await.unwrap(),
        json!({})
    );
}

#[tokio::test]
async fn huge_initial_memory_is_refused_at_load() {
    let rt = runtime(test_limits()).await;
    let err = rt
        .load_plugin(&guests::bytes(guests::HUGE_MEMORY))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("memory"), "{message}");
    assert!(rt.plugins().is_empty());
}

#[tokio::test]
async fn calls_beyond_a_plugins_concurrency_wait_then_get_busy() {
    let limits = junction_runtime::engine::Limits {
        concurrency: 1,
        queue_ms: 100,
        ..test_limits()
    };
    let rt = runtime(limits).await;
    rt.load_plugin(&guests::bytes(guests::HOSTILE))
        .await
        .unwrap();
    rt.load_plugin(&guests::bytes(guests::ECHO)).await.unwrap();
    connect(&rt, "hostile", "hostile", vec![]).await;
    connect(&rt, "echo", "echo", vec![]).await;
    let spinning = rt.clone();
    let looping =
        tokio::spawn(async move { invoke(&spinning, "hostile", "loop", json!({})).await });
    // Wait until the loop holds the only slot: a noop then cannot get in.
    let busy = loop {
        match invoke(&rt, "hostile", "noop", json!({})).await {
            Err(err @ CallError::Busy { .. }) => break err,
            Ok(_) => tokio::task::yield_now().await,
            Err(other) => panic!("unexpected: {other}"),
        }
    };
    assert!(
        matches!(busy, CallError::Busy { concurrency: 1, retry_after_ms, .. } if retry_after_ms >= 1000),
        "{busy}"
    );
    // Other plugins have their own slots.
    assert_eq!(
        invoke(&rt, "echo", "noop", json!({})).await.unwrap(),
        json!({})
    );
    assert!(matches!(
        looping.await.unwrap(),
        Err(CallError::Timeout { .. })
    ));
    assert_eq!(
        invoke(&rt, "hostile", "noop", json!({})).await.unwrap(),
        json!({})
    );
}

/// The hostile guest's version, as built; [`hostile_version`] stamps its last digit.
const HOSTILE_VERSION: &[u8] = b"0.1.0-hostile-0";

/// The hostile guest as version `0.1.0-hostile-<n>`: a distinct component
/// (its version string rewritten), loaded as another version of the plugin.
fn hostile_version(n: u8) -> Vec<u8> {
    let mut wasm = guests::bytes(guests::HOSTILE);
    let found: Vec<usize> = wasm
        .windows(HOSTILE_VERSION.len())
        .enumerate()
        .filter(|(_, w)| *w == HOSTILE_VERSION)
        .map(|(at, _)| at)
        .collect();
    assert_eq!(found.len(), 1, "the version string appears once");
    wasm[found[0] + HOSTILE_VERSION.len() - 1] = b'0' + n;
    wasm
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hostile_versions_spinning_cannot_starve_a_healthy_plugin() {
    // The pool has 32 instances (test_limits); five hostile versions may run
    // 64 calls each: without shares, any one of them would take every instance.
    let limits = junction_runtime::engine::Limits {
        concurrency: 64,
        deadline_ms: 3_000,
        queue_ms: 200,
        ..test_limits()
    };
    let rt = runtime(limits).await;
    rt.load_plugin(&guests::bytes(guests::ECHO)).await.unwrap();
    connect(&rt, "echo", "echo", vec![]).await;
    for n in 1..=5 {
        let loaded = rt.load_plugin(&hostile_version(n)).await.unwrap();
        assert_eq!(loaded.version().to_string(), format!("0.1.0-hostile-{n}"));
        rt.put_connection(
            &format!("hostile-{n}"),
            ConnectionSpec {
                plugin: "hostile".into(),
                version: Some(format!("0.1.0-hostile-{n}")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let spinning: Vec<_> = (1..=5)
        .flat_map(|n| (0..64).map(move |_| n))
        .map(|n| {
            let rt = rt.clone();
            tokio::spawn(
                async move { invoke(&rt, &format!("hostile-{n}"), "loop", json!({})).await },
            )
        })
        .collect();
    // Wait until every hostile version holds its whole share: its next call is busy.
    for n in 1..=5 {
        loop {
            match invoke(&rt, &format!("hostile-{n}"), "noop", json!({})).await {
                Err(CallError::Busy { .. }) => break,
                Ok(_) => tokio::task::yield_now().await,
                Err(other) => panic!("unexpected: {other}"),
            }
        }
    }
    for _ in 0..50 {
        assert_eq!(
            invoke(&rt, "echo", "noop", json!({})).await.unwrap(),
            json!({}),
            "the healthy plugin is served while five hostile versions spin"
        );
    }
    let (mut busy, mut timed_out) = (0, 0);
    for call in spinning {
        match call.await.unwrap() {
            Err(CallError::Busy { .. }) => busy += 1,
            Err(CallError::Timeout { .. }) => timed_out += 1,
            other => panic!("a spinning call ended as {other:?}, not busy or its own timeout"),
        }
    }
    assert!(
        busy > 0 && timed_out > 0,
        "{busy} busy, {timed_out} timed out"
    );
}

#[tokio::test]
async fn a_flood_of_outputs_is_refused() {
    let rt = with_guests().await;
    rt.load_plugin(&guests::bytes(guests::HOSTILE_TRANSFORM))
        .await
        .unwrap();
    // 150,000 empty strings: little guest memory, a large list<string>.
    let err = rt
        .apply("hostile-transform", r#"{"count": 150000, "bytes": 0}"#)
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::OutputTooLarge { .. }), "{err}");
    // Few outputs of 8 MiB each: stopped by the guest's memory or the byte cap.
    let err = rt
        .apply("hostile-transform", r#"{"count": 4, "bytes": 8388608}"#)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CallError::LimitExceeded { what } if what == "memory")
            || matches!(err, CallError::OutputTooLarge { .. }),
        "{err}"
    );
    let (fine, _) = rt
        .apply("hostile-transform", r#"{"count": 3, "bytes": 2}"#)
        .await
        .unwrap();
    assert_eq!(fine, vec![r#""xx""#; 3]);
    assert_eq!(
        invoke(&rt, "echo", "noop", json!({})).await.unwrap(),
        json!({})
    );
}

/// A runtime with `limits` and the hostile guest loaded.
async fn hostile_runtime(limits: junction_runtime::engine::Limits) -> Arc<Runtime> {
    let rt = runtime(limits).await;
    rt.load_plugin(&guests::bytes(guests::HOSTILE))
        .await
        .unwrap();
    rt
}

/// The connection `web` of the hostile guest, allowed to reach `server`.
async fn connect_web(rt: &Runtime, server: &str) {
    rt.put_connection(
        "web",
        ConnectionSpec {
            plugin: "hostile".into(),
            allowed_hosts: vec![server.to_string()],
            private_hosts: vec![server.to_string()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
}

/// Everything the host logs on this thread while it is alive (a
/// current-thread test runtime runs the calls on this thread).
struct HostLog {
    text: Arc<std::sync::Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl HostLog {
    fn capture() -> HostLog {
        let text: Arc<std::sync::Mutex<Vec<u8>>> = Arc::default();
        let sink = text.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || LogSink(sink.clone()))
            .finish();
        HostLog {
            text,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.text.lock().unwrap()).into_owned()
    }
}

struct LogSink(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The value of `junction_quota_refusals_total` for `plugin` and `quota`.
async fn quota_refusals(rt: &Runtime, plugin: &str, quota: &str) -> u64 {
    let text = rt.metrics_text().await.unwrap();
    let series = format!("junction_quota_refusals_total{{plugin=\"{plugin}\",quota=\"{quota}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test]
async fn a_log_flood_leaves_at_most_the_quota_in_the_host_log() {
    let limits = junction_runtime::engine::Limits {
        deadline_ms: 60_000,
        log_lines: 1_000,
        log_bytes: 1024 * 1024,
        ..test_limits()
    };
    let rt = hostile_runtime(limits).await;
    connect(&rt, "hostile", "hostile", vec![]).await;
    let log = HostLog::capture();
    // 100,000 lines of 64 KiB: 6.25 GiB offered to the log.
    let out = invoke(
        &rt,
        "hostile",
        "log-flood",
        json!({"count": 100_000, "bytes": 65_536}),
    )
    .await
    .unwrap();
    assert_eq!(out["written"], 100_000);
    let text = log.text();
    let plugin_lines = text.lines().filter(|l| l.contains("xxxxxxxx")).count();
    assert_eq!(plugin_lines, 16, "1 MiB of 64 KiB lines");
    assert!(
        text.len() < 1024 * 1024 + 64 * 1024,
        "the host log got {} bytes",
        text.len()
    );
    assert!(
        text.contains("99984 log lines of this call were dropped"),
        "one line says how many: {}",
        text.lines()
            .filter(|l| !l.contains("xxxxxxxx"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(quota_refusals(&rt, "hostile", "log_bytes").await, 1);

    // Many short lines stop at the line quota.
    invoke(
        &rt,
        "hostile",
        "log-flood",
        json!({"count": 5_000, "bytes": 1}),
    )
    .await
    .unwrap();
    assert!(
        log.text()
            .contains("4000 log lines of this call were dropped")
    );
    assert_eq!(quota_refusals(&rt, "hostile", "log_lines").await, 1);
}

#[tokio::test]
async fn the_log_rate_is_shared_by_a_plugins_calls() {
    let limits = junction_runtime::engine::Limits {
        log_rate_lines: 100,
        ..test_limits()
    };
    let rt = hostile_runtime(limits).await;
    connect(&rt, "hostile", "hostile", vec![]).await;
    let log = HostLog::capture();
    let started = Instant::now();
    for _ in 0..3 {
        invoke(
            &rt,
            "hostile",
            "log-flood",
            json!({"count": 1_000, "bytes": 8}),
        )
        .await
        .unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let written = log
        .text()
        .lines()
        .filter(|l| l.contains("xxxxxxxx"))
        .count();
    // A burst of one second's worth, then 100 a second while the calls ran.
    let most = 100 + (100.0 * elapsed).ceil() as usize + 1;
    assert!(
        (100..=most).contains(&written),
        "{written} lines passed in {elapsed:.2} s; at most {most} may"
    );
    assert!(log.text().contains("beyond the plugin's log rate"));
    assert!(quota_refusals(&rt, "hostile", "log_rate").await >= 1);
}

#[tokio::test]
async fn filling_kv_stops_at_the_quota_and_the_store_holds_no_more() {
    let limits = junction_runtime::engine::Limits {
        deadline_ms: 60_000,
        kv_bytes: 1024 * 1024,
        kv_keys: 100,
        ..test_limits()
    };
    let rt = hostile_runtime(limits).await;
    connect(&rt, "hostile", "hostile", vec![]).await;
    connect(&rt, "other", "hostile", vec![]).await;

    // Values of 64 KiB: the byte quota (1 MiB) comes first, at 15 keys.
    let out = invoke(
        &rt,
        "hostile",
        "kv-fill",
        json!({"count": 1_000_000, "bytes": 65_536}),
    )
    .await
    .unwrap();
    assert_eq!(out["stored"], 15, "{out}");
    let error = out["error"].as_str().unwrap();
    assert!(error.contains("kv quota"), "{error}");
    assert!(error.contains("kv_bytes"), "{error}");
    let usage = rt.store().kv_usage("hostile", "hostile").await.unwrap();
    assert_eq!(usage.keys, 15);
    assert!(usage.bytes <= 1024 * 1024, "{usage:?}");
    let stored = rt.store().kv_list("hostile", "hostile", "").await.unwrap();
    assert_eq!(stored.len(), 15);
    assert_eq!(quota_refusals(&rt, "hostile", "kv_bytes").await, 1);

    // Small values: the key quota, on a connection of its own.
    let out = invoke(&rt, "other", "kv-fill", json!({"count": 1_000, "bytes": 1}))
        .await
        .unwrap();
    assert_eq!(out["stored"], 100, "{out}");
    assert!(out["error"].as_str().unwrap().contains("kv_keys"), "{out}");
    assert_eq!(quota_refusals(&rt, "hostile", "kv_keys").await, 1);
}

#[tokio::test]
async fn a_call_sends_and_reads_at_most_its_quota() {
    let limits = junction_runtime::engine::Limits {
        outbound_requests: 10,
        ..test_limits()
    };
    let rt = hostile_runtime(limits).await;
    let (server, _) = header_echo_server().await;
    connect_web(&rt, &server).await;
    let url = format!("http://{server}/x");
    let out = invoke(
        &rt,
        "web",
        "request-flood",
        json!({"count": 50, "url": url}),
    )
    .await
    .unwrap();
    assert_eq!(out["sent"], 10, "{out}");
    assert!(
        out["error"].as_str().unwrap().contains("outbound_requests"),
        "{out}"
    );
    assert_eq!(quota_refusals(&rt, "hostile", "outbound_requests").await, 1);
    // The next call has a quota of its own.
    let out = invoke(&rt, "web", "request-flood", json!({"count": 5, "url": url}))
        .await
        .unwrap();
    assert_eq!(out["sent"], 5, "{out}");

    // Response bytes over all of a call's requests.
    let limits = junction_runtime::engine::Limits {
        call_response_bytes: 1_000,
        ..test_limits()
    };
    let rt = hostile_runtime(limits).await;
    connect_web(&rt, &server).await;
    let out = invoke(
        &rt,
        "web",
        "request-flood",
        json!({"count": 1_000, "url": url}),
    )
    .await
    .unwrap();
    let bytes = out["bytes"].as_u64().unwrap();
    assert!(bytes <= 1_000, "{out}");
    assert!(out["sent"].as_u64().unwrap() < 1_000, "{out}");
    assert_eq!(
        quota_refusals(&rt, "hostile", "call_response_bytes").await,
        1
    );
}
