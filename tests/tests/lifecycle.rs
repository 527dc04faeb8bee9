//! Plugin lifecycle on a running host: upload, activate, roll back under
//! steady load with zero failed calls; refusals; restart; the watched
//! plugin directory.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use junction::config::{Config, Scope, Token};
use junction_registry::{Package, SigningKey};
use junction_runtime::runtime::Runtime;
use junction_tests::{
    ECHO_OPS, echo_package, guests, manifest, runtime_with, test_config, test_limits,
};
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-0123456789";

fn config(extra: impl FnOnce(&mut Config)) -> Config {
    let mut config = test_config(test_limits());
    config.api.tokens = BTreeMap::from([(
        "admin".to_string(),
        Token {
            token: ADMIN.into(),
            scope: Scope::Admin,
        },
    )]);
    extra(&mut config);
    config
}

/// The API on a loopback port, as a client sees it.
struct Host {
    base: String,
    client: reqwest::Client,
}

async fn start(config: &Config) -> Host {
    let runtime = runtime_with(config).await;
    serve(runtime, config).await
}

async fn serve(runtime: Arc<Runtime>, config: &Config) -> Host {
    let app = junction_api::router(runtime, &config.api, config.flows.options());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Host {
        base,
        client: reqwest::Client::new(),
    }
}

impl Host {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> (u16, Value) {
        let method_name = method.to_string();
        let method_name = method_name.as_str();
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN);
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = response.bytes().await.unwrap();
        junction_tests::openapi::check_response(
            method_name,
            path,
            status,
            content_type.as_deref(),
            &bytes,
        );
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn upload(&self, bytes: Vec<u8>) -> (u16, Value) {
        self.send(reqwest::Method::POST, "/v1/plugins", Some(bytes))
            .await
    }

    async fn active(&self, name: &str) -> Option<String> {
        let (_, detail) = self
            .send(reqwest::Method::GET, &format!("/v1/plugins/{name}"), None)
            .await;
        detail["active"].as_str().map(str::to_string)
    }

    async fn connect_echo(&self) {
        let spec = json!({"plugin": "echo"}).to_string().into_bytes();
        let (status, body) = self
            .send(reqwest::Method::PUT, "/v1/connections/echo", Some(spec))
            .await;
        assert_eq!(status, 201, "{body}");
    }
}

/// One call of the load: when it started and ended, and what answered.
struct Call {
    started: Instant,
    ended: Instant,
    outcome: Result<String, String>,
}

fn assert_none_failed(calls: &[Call]) {
    let failed: Vec<&String> = calls
        .iter()
        .filter_map(|c| c.outcome.as_ref().err())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} calls failed, e.g. {:?}",
        failed.len(),
        calls.len(),
        failed.first()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_and_rollback_under_steady_load_fail_no_call() {
    let host = Arc::new(start(&config(|_| {})).await);
    let (status, body) = host.upload(echo_package("0.1.0").to_bytes()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["active"], true);
    host.connect_echo().await;

    // A steady 400 calls per second, each on its own task.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let load = {
        let (host, stop, done) = (host.clone(), stop.clone(), done.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(2_500));
            let mut calls = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let (host, done) = (host.clone(), done.clone());
                calls.push(tokio::spawn(async move {
                    let started = Instant::now();
                    let result = host
                        .client
                        .post(format!(
                            "{}/v1/connections/echo/operations/version",
                            host.base
                        ))
                        .bearer_auth(ADMIN)
                        .body("{}")
                        .send()
                        .await;
                    let outcome = match result {
                        Ok(r) if r.status().is_success() => {
                            let v: Value = r.json().await.unwrap_or(Value::Null);
                            Ok(v["version"].as_str().unwrap_or("?").to_string())
                        }
                        Ok(r) => Err(format!(
                            "{}: {}",
                            r.status(),
                            r.text().await.unwrap_or_default()
                        )),
                        Err(e) => Err(e.to_string()),
                    };
                    done.fetch_add(1, Ordering::Relaxed);
                    Call {
                        started,
                        ended: Instant::now(),
                        outcome,
                    }
                }));
            }
            let mut finished = Vec::new();
            for call in calls {
                finished.push(call.await.unwrap());
            }
            finished
        })
    };
    let wait_for = |n: usize| {
        let done = done.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while done.load(Ordering::Relaxed) < n {
                assert!(Instant::now() < deadline, "the load stalled");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };

    wait_for(400).await;
    let (status, body) = host.upload(echo_package("0.2.0").to_bytes()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["active"], false, "a new version waits for activation");
    let before = done.load(Ordering::Relaxed);
    wait_for(before + 200).await;

    let activate_sent = Instant::now();
    let (status, body) = host
        .send(
            reqwest::Method::POST,
            "/v1/plugins/echo/versions/0.2.0/activate",
            None,
        )
        .await;
    let activated = Instant::now();
    assert_eq!(status, 200, "{body}");
    let before = done.load(Ordering::Relaxed);
    wait_for(before + 600).await;

    let rollback_sent = Instant::now();
    let (status, body) = host
        .send(reqwest::Method::POST, "/v1/plugins/echo/rollback", None)
        .await;
    let rolled_back = Instant::now();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["active"], "0.1.0");
    let before = done.load(Ordering::Relaxed);
    wait_for(before + 600).await;
    stop.store(true, Ordering::Relaxed);
    let calls = load.await.unwrap();

    assert_none_failed(&calls);
    assert!(calls.len() >= 1800, "only {} calls", calls.len());
    let version = |c: &Call| c.outcome.clone().unwrap();
    // Calls that ended before the activation was asked for ran v1; calls that
    // started after it answered and ended before the rollback ran v2; calls
    // that started after the rollback answered ran v1 again.
    let mut counts = BTreeMap::new();
    for call in &calls {
        let phase = if call.ended < activate_sent {
            Some(("before", "0.1.0"))
        } else if call.started > activated && call.ended < rollback_sent {
            Some(("during", "0.2.0"))
        } else if call.started > rolled_back {
            Some(("after", "0.1.0"))
        } else {
            None // in flight across a switch: either version is right
        };
        if let Some((phase, expected)) = phase {
            assert_eq!(version(call), expected, "a call {phase} the swap");
            *counts.entry(phase).or_insert(0) += 1;
        }
    }
    for phase in ["before", "during", "after"] {
        assert!(counts.get(phase).copied().unwrap_or(0) >= 100, "{counts:?}");
    }
    let audit = host.send(reqwest::Method::GET, "/v1/audit", None).await.1;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "plugin.rollback",
            "plugin.activate",
            "plugin.upload",
            "connection.put",
            "plugin.upload"
        ]
    );
}

#[tokio::test]
async fn refusals_are_4xx_leave_the_active_version_and_are_audited() {
    let key = SigningKey::generate();
    let stranger = SigningKey::generate();
    let host = start(&config(|_| {})).await;
    assert_eq!(host.upload(echo_package("0.1.0").to_bytes()).await.0, 201);

    let truncated = {
        let wasm = guests::bytes(guests::ECHO);
        Package::new(
            manifest("echo", "0.3.0", "connector", ECHO_OPS),
            wasm[..wasm.len() / 2].to_vec(),
        )
    };
    let core_module = Package::new(
        manifest("echo", "0.3.0", "connector", ECHO_OPS),
        b"\0asm\x01\0\0\0".to_vec(),
    );
    let other_world = Package::new(
        manifest("other", "1.0.0", "connector", &[]),
        guests::bytes(guests::OTHER_WORLD),
    );
    let filesystem = Package::new(
        manifest("fs-reader", "1.0.0", "connector", &["read"]),
        guests::bytes(guests::FS_READER),
    );
    let sockets = Package::new(
        manifest("sockets", "1.0.0", "connector", &["connect"]),
        guests::bytes(guests::SOCKETS),
    );
    let bad_semver = Package::new(
        manifest("echo", "1.0", "connector", ECHO_OPS),
        guests::bytes(guests::ECHO),
    );
    // Same name and version as the loaded echo, other bytes.
    let other_digest = Package::new(
        manifest("echo", "0.1.0", "connector", ECHO_OPS),
        guests::bytes(guests::ECHO_V2),
    );
    // The component says echo 0.2.0 with eight operations; the manifest disagrees.
    let disagreeing = Package::new(
        manifest("echo", "0.2.0", "connector", &["noop", "teleport"]),
        guests::bytes(guests::ECHO_V2),
    );

    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("empty body", Vec::new(), 400, "invalid_package"),
        ("not a package", b"hello".to_vec(), 400, "invalid_package"),
        (
            "truncated component",
            truncated.to_bytes(),
            400,
            "invalid_package",
        ),
        (
            "core module",
            core_module.to_bytes(),
            400,
            "invalid_package",
        ),
        ("other world", other_world.to_bytes(), 422, "invalid_plugin"),
        (
            "filesystem import",
            filesystem.to_bytes(),
            422,
            "invalid_plugin",
        ),
        ("sockets import", sockets.to_bytes(), 422, "invalid_plugin"),
        ("bad semver", bad_semver.to_bytes(), 400, "invalid_package"),
        (
            "same version, other digest",
            other_digest.to_bytes(),
            409,
            "conflict",
        ),
        (
            "manifest disagrees",
            disagreeing.to_bytes(),
            422,
            "invalid_plugin",
        ),
        (
            "untrusted signer",
            echo_package("0.2.0").sign(&stranger).to_bytes(),
            403,
            "untrusted_package",
        ),
    ];
    for (what, bytes, status, code) in &cases {
        let (got, body) = host.upload(bytes.clone()).await;
        assert_eq!(got, *status, "{what}: {body}");
        assert_eq!(body["error"]["code"], *code, "{what}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.len() > 10),
            "{what}: {body}"
        );
        assert_eq!(
            host.active("echo").await.as_deref(),
            Some("0.1.0"),
            "{what}"
        );
    }
    let (_, body) = host.upload(filesystem.to_bytes()).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("wasi:filesystem/"),
        "{body}"
    );

    // With signatures required: unsigned and untrusted are refused, trusted accepted.
    let strict = start(&config(|c| {
        c.runtime.require_signatures = true;
        c.runtime.trusted_keys = vec![key.public_key().to_string()];
        c.runtime.max_component_bytes = 4 * 1024 * 1024;
    }))
    .await;
    let (status, body) = strict.upload(echo_package("0.1.0").to_bytes()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("untrusted_package")),
        "{body}"
    );
    let (status, body) = strict
        .upload(echo_package("0.1.0").sign(&stranger).to_bytes())
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("untrusted_package")),
        "{body}"
    );
    let oversized = Package::new(
        manifest("echo", "0.9.0", "connector", ECHO_OPS),
        vec![0u8; 5 * 1024 * 1024],
    );
    let (status, body) = strict.upload(oversized.sign(&key).to_bytes()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{body}"
    );
    let (status, body) = strict
        .upload(echo_package("0.1.0").sign(&key).to_bytes())
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["signer"], key.key_id());

    let audit = host
        .send(reqwest::Method::GET, "/v1/audit?action=plugin.upload", None)
        .await
        .1;
    let refused = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "refused")
        .count();
    assert_eq!(refused, cases.len() + 1);
}

#[tokio::test]
async fn a_pinned_version_cannot_be_deleted_and_an_unused_one_can() {
    let host = start(&config(|_| {})).await;
    host.upload(echo_package("0.1.0").to_bytes()).await;
    host.upload(echo_package("0.2.0").to_bytes()).await;
    let spec = json!({"plugin": "echo", "version": "0.2.0"})
        .to_string()
        .into_bytes();
    assert_eq!(
        host.send(reqwest::Method::PUT, "/v1/connections/pinned", Some(spec))
            .await
            .0,
        201
    );
    let (status, body) = host
        .send(
            reqwest::Method::DELETE,
            "/v1/plugins/echo/versions/0.2.0",
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("pinned")
    );
    let (status, body) = host
        .send(
            reqwest::Method::DELETE,
            "/v1/plugins/echo/versions/0.1.0",
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict")),
        "the active version: {body}"
    );
    let (_, detail) = host
        .send(reqwest::Method::GET, "/v1/plugins/echo", None)
        .await;
    assert_eq!(detail["versions"][1]["pinned_by"], json!(["pinned"]));
    let spec = json!({"plugin": "echo"}).to_string().into_bytes();
    host.send(reqwest::Method::PUT, "/v1/connections/pinned", Some(spec))
        .await;
    let (status, _) = host
        .send(
            reqwest::Method::DELETE,
            "/v1/plugins/echo/versions/0.2.0",
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = host
        .send(
            reqwest::Method::DELETE,
            "/v1/plugins/echo/versions/9.9.9",
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_restart_keeps_versions_and_the_active_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(|c| {
        c.store.database = Some(dir.path().join("junction.db"));
        c.runtime.cache_dir = Some(dir.path().join("cache"));
    });
    {
        let runtime = Runtime::open(&config.store, &config.runtime).await.unwrap();
        runtime
            .upload_package(&echo_package("0.1.0").to_bytes(), "ops")
            .await
            .unwrap();
        runtime
            .upload_package(&echo_package("0.2.0").to_bytes(), "ops")
            .await
            .unwrap();
        runtime.activate("echo", "0.2.0", "ops").await.unwrap();
    }
    let cached = std::fs::read_dir(dir.path().join("cache")).unwrap().count();
    assert!(
        cached >= 2,
        "compiled components were cached: {cached} files"
    );
    let runtime = Runtime::open(&config.store, &config.runtime).await.unwrap();
    let active = runtime.plugin("echo", None).unwrap();
    assert_eq!(active.version().to_string(), "0.2.0");
    assert_eq!(runtime.plugins().len(), 2);
    // A corrupt cache entry is ignored and rebuilt, not trusted.
    for entry in std::fs::read_dir(dir.path().join("cache")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            std::fs::write(&path, b"garbage").unwrap();
        }
    }
    drop(runtime);
    let runtime = Runtime::open(&config.store, &config.runtime).await.unwrap();
    assert_eq!(runtime.plugins().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watched_directory_loads_and_unloads_packages() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime_with(&config(|_| {})).await;
    let _watch = junction_runtime::watcher::watch(runtime.clone(), dir.path().to_path_buf())
        .await
        .unwrap();
    let drop_in = |name: &str, package: Package| {
        let tmp = dir.path().join(format!("{name}.partial"));
        std::fs::write(&tmp, package.to_bytes()).unwrap();
        std::fs::rename(&tmp, dir.path().join(format!("{name}.jpkg"))).unwrap();
    };
    let wait = |what: &'static str, check: Box<dyn Fn() -> bool>| async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    drop_in("echo-1", echo_package("0.1.0"));
    let rt = runtime.clone();
    wait("v1 to load", Box::new(move || rt.plugins().len() == 1)).await;
    drop_in("echo-2", echo_package("0.2.0"));
    let rt = runtime.clone();
    wait("v2 to load", Box::new(move || rt.plugins().len() == 2)).await;
    assert_eq!(
        runtime.plugin("echo", None).unwrap().version().to_string(),
        "0.1.0"
    );
    std::fs::remove_file(dir.path().join("echo-2.jpkg")).unwrap();
    let rt = runtime.clone();
    wait("v2 to unload", Box::new(move || rt.plugins().len() == 1)).await;
    // The unload is audited after it takes effect: poll for the record.
    let entries = junction_tests::eventually(
        "the unload is audited",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || async {
            let entries = runtime.store().audit_entries(None, 10).await.unwrap();
            match entries.first() {
                Some(e) if e.action == "plugin.delete" => Ok(entries),
                other => Err(format!("newest audit record: {other:?}")),
            }
        },
    )
    .await;
    assert!(entries.iter().all(|e| e.actor == "watcher"));
}

/// One host of a pair sharing a PostgreSQL database, following the other's changes.
async fn host_on(url: &str, key: &str) -> (Host, Arc<Runtime>) {
    let config = config(|c| {
        c.store.database = Some(url.into());
        c.store.secret_key = Some(key.to_string().into());
    });
    let runtime = Runtime::open(&config.store, &config.runtime).await.unwrap();
    runtime
        .follow_changes()
        .await
        .unwrap()
        .expect("PostgreSQL has a change feed");
    (serve(runtime.clone(), &config).await, runtime)
}

impl Host {
    /// The version the echo connection answers with, or why it failed.
    async fn echo_version(&self) -> Result<String, String> {
        let response = self
            .client
            .post(format!(
                "{}/v1/connections/echo/operations/version",
                self.base
            ))
            .bearer_auth(ADMIN)
            .body("{}")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match body["version"].as_str() {
            Some(version) if status.is_success() => Ok(version.to_string()),
            _ => Err(format!("{status}: {body}")),
        }
    }

    /// Polls until `probe` of this host's state holds (each probe is an API call).
    async fn until(&self, what: &str, probe: impl AsyncFn(&Host) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !probe(self).await {
            assert!(Instant::now() < deadline, "{what}: not within 30 s");
            tokio::task::yield_now().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_on_postgres_follow_each_others_changes_within_a_second() {
    let Some(url) =
        junction_tests::postgres::fresh_database("lifecycle::two_hosts_on_postgres").await
    else {
        return;
    };
    let key = junction_store::secrets::generate_key();
    let (a, _runtime_a) = host_on(&url, &key).await;
    let (b, _runtime_b) = host_on(&url, &key).await;
    let (status, body) = a.upload(echo_package("0.1.0").to_bytes()).await;
    assert_eq!(status, 201, "{body}");
    a.connect_echo().await;
    b.until("B serves what A uploaded", async |b| {
        b.echo_version().await.is_ok()
    })
    .await;
    let (status, body) = a.upload(echo_package("0.2.0").to_bytes()).await;
    assert_eq!(status, 201, "{body}");
    b.until("B loads the version A uploaded", async |b| {
        let (_, detail) = b.send(reqwest::Method::GET, "/v1/plugins/echo", None).await;
        detail.to_string().contains("0.2.0")
    })
    .await;

    // Both hosts are called steadily (four callers each) while A activates
    // 0.2.0, then rolls back.
    let (a, b) = (Arc::new(a), Arc::new(b));
    let stop = Arc::new(AtomicBool::new(false));
    let load = |host: Arc<Host>| {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut calls = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let outcome = host.echo_version().await;
                calls.push(Call {
                    started,
                    ended: Instant::now(),
                    outcome,
                });
            }
            calls
        })
    };
    let on_a: Vec<_> = (0..4).map(|_| load(a.clone())).collect();
    let on_b: Vec<_> = (0..4).map(|_| load(b.clone())).collect();
    let load_started = Instant::now();
    // What "within 1 s" allows: the sleeps are the bound under test, not
    // synchronisation (the calls decide the outcome).
    let second = Duration::from_secs(1);
    let (status, body) = a
        .send(
            reqwest::Method::POST,
            "/v1/plugins/echo/versions/0.2.0/activate",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let activated = Instant::now();
    tokio::time::sleep(2 * second).await;
    let rollback_sent = Instant::now();
    let (status, body) = a
        .send(reqwest::Method::POST, "/v1/plugins/echo/rollback", None)
        .await;
    assert_eq!(status, 200, "{body}");
    let rolled_back = Instant::now();
    tokio::time::sleep(2 * second).await;
    stop.store(true, Ordering::Relaxed);
    let load_took = load_started.elapsed();
    let mut on_a_total = 0;
    for caller in on_a {
        let from_a = caller.await.unwrap();
        assert_none_failed(&from_a);
        on_a_total += from_a.len();
    }
    let mut calls = Vec::new();
    for caller in on_b {
        calls.extend(caller.await.unwrap());
    }
    assert_none_failed(&calls);
    eprintln!(
        "{} calls on A and {} on B in {load_took:.1?}",
        on_a_total,
        calls.len()
    );
    let (mut new, mut old) = (0, 0);
    for call in &calls {
        let version = call.outcome.as_deref().unwrap();
        if call.started > activated + second && call.ended < rollback_sent {
            assert_eq!(version, "0.2.0", "a call on B over 1 s after A activated");
            new += 1;
        } else if call.started > rolled_back + second {
            assert_eq!(version, "0.1.0", "a call on B over 1 s after A rolled back");
            old += 1;
        }
    }
    assert!(
        new >= 10 && old >= 10,
        "{new} calls after the activation, {old} after the rollback"
    );

    // A connection changed on B is used by A.
    let spec = json!({"plugin": "echo", "config": {"greeting": "changed on B"}});
    let (status, body) = b
        .send(
            reqwest::Method::PUT,
            "/v1/connections/echo",
            Some(spec.to_string().into_bytes()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(second).await;
    let (status, out) = a
        .send(
            reqwest::Method::POST,
            "/v1/connections/echo/operations/config",
            Some(br#"{"key": "greeting"}"#.to_vec()),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        out["value"], "changed on B",
        "A, 1 s after B changed it: {out}"
    );

    // A flow deployed on A is run by B at once, in the version A deployed last.
    for (version, said) in [(1, "one"), (2, "two")] {
        let flow = format!(
            "trigger = {{ type = \"manual\" }}\n[[steps]]\nid = \"say\"\nmap = '{{said: \"{said}\"}}'\n"
        );
        let (status, body) = a
            .send(
                reqwest::Method::PUT,
                "/v1/flows/greet",
                Some(flow.into_bytes()),
            )
            .await;
        assert!(
            status == 201 || status == 200,
            "deploy v{version} on A: {status} {body}"
        );
        let (status, body) = b
            .send(
                reqwest::Method::POST,
                "/v1/flows/greet/runs",
                Some(b"{}".to_vec()),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        let run = body["run"].as_str().unwrap().to_string();
        let path = format!("/v1/runs/{run}");
        b.until("B's run completes", async |b| {
            b.send(reqwest::Method::GET, &path, None).await.1["status"] == "completed"
        })
        .await;
        let (_, view) = b.send(reqwest::Method::GET, &path, None).await;
        assert_eq!(view["flow_version"], version, "{view:#}");
        assert_eq!(view["steps"][0]["output"]["said"], said, "{view:#}");
    }
    junction_tests::postgres::drop_database(&url).await;
}

#[tokio::test]
async fn trusted_keys_and_tokens_reload_without_a_restart_and_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("junction.toml");
    let key = SigningKey::generate();
    let write = |trusted: &str, extra_token: &str| {
        std::fs::write(
            &file,
            format!(
                "require_signatures = true\ntrusted_keys = [{trusted}]\n\
                 [tokens.admin]\ntoken = {ADMIN:?}\nscope = \"admin\"\n{extra_token}"
            ),
        )
        .unwrap();
    };
    write("", "");
    let config = {
        let mut config = Config::load(Some(&file)).unwrap();
        config.store.database = None;
        config.runtime.cache_dir = None;
        config.runtime.limits = test_limits();
        config
    };
    let runtime = runtime_with(&config).await;
    let source = junction::serve::reload_source(Some(&file));
    let flows = junction_flows::Flows::new(runtime, config.flows.options());
    flows.spawn_workers();
    let (app, _reloader) = junction_api::router_with_reload(flows, &config.api, Some(source));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = Host {
        base: format!("http://{}", listener.local_addr().unwrap()),
        client: reqwest::Client::new(),
    };
    tokio::spawn(async move { axum::serve(listener, app).await });
    let signed = echo_package("0.1.0").sign(&key).to_bytes();

    // Not trusted yet: the refusal says what to change and how to apply it.
    let (status, body) = host.upload(signed.clone()).await;
    assert_eq!(status, 403, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`trusted_keys`") && message.contains("/v1/admin/reload"),
        "{message}"
    );

    // A configuration that does not parse changes nothing.
    std::fs::write(&file, "trusted_keys = 7\n").unwrap();
    let (status, body) = host
        .send(reqwest::Method::POST, "/v1/admin/reload", None)
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_config");

    // The key trusted and a token added in the file, then reloaded.
    write(
        &format!("{:?}", key.public_key().to_string()),
        "[tokens.ci]\ntoken = \"ci-token-0123456789\"\nscope = \"read\"\n",
    );
    let (status, body) = host
        .send(reqwest::Method::POST, "/v1/admin/reload", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"tokens": 2, "trusted_keys": 1, "require_signatures": true})
    );
    let (status, body) = host.upload(signed).await;
    assert_eq!(status, 201, "the next push goes through: {body}");
    let plugins = host
        .client
        .get(format!("{}/v1/plugins", host.base))
        .bearer_auth("ci-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(plugins.status(), 200, "the new token works");

    let audit = host.send(reqwest::Method::GET, "/v1/audit", None).await.1;
    let reloads: Vec<(&str, &str)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "config.reload")
        .map(|e| (e["actor"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(reloads.len(), 2, "{audit}");
    assert!(
        reloads.iter().all(|(actor, _)| *actor == "admin"),
        "{reloads:?}"
    );
}
