//! HTTP invoke against its anchors, in one run, each server in its own
//! process except the native one, and the load from `wrk` (a second process)
//! on loopback:
//!
//! - **Junction**: the release `junction serve` binary (built by this bench
//!   with `cargo build --release --locked -p junction --bin junction`)
//!   on a SQLite database in a temporary directory, with its default limits,
//!   a bearer token and default logging; the `echo` test connector uploaded
//!   as a package through `POST /v1/plugins`, one connection on it, and the
//!   load `POST /v1/connections/bench/operations/noop` with `{}` and the token.
//! - **wasmtime serve**: `wasmtime serve -O pooling-allocator=y` of the same
//!   wasmtime version as the host (48.0.8) serving the bench-only
//!   `bench-http-hello` guest, a hello-world `wasi:http/proxy` component
//!   (built by this bench), sent the same requests.
//! - **native**: an axum handler in this process on a two-worker Tokio
//!   runtime that checks the same bearer token and answers `{}`: the limit.
//!
//! Each server gets a 2 s warm-up, then `wrk` at 1, 32 and 128 connections
//! for 10 s each (`JUNCTION_BENCH_HTTP_SECONDS` changes it); the bench prints
//! one table of requests/s, p50 and p99 and the ratios. It needs `wrk` on the
//! PATH (Debian: `apt-get install -y wrk`) and wasmtime-cli 48.0.8 at
//! `target/bench-tools/wasmtime-48.0.8/bin/wasmtime` or `JUNCTION_BENCH_WASMTIME`
//! (without it that row is skipped, loudly); BENCHMARKS.md has the install
//! command. `JUNCTION_BENCH_JUNCTION` names a `junction` binary to use
//! instead of building one. Run with `cargo bench -p junction-tests --bench http`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // bench code: a failed unwrap is a failed run

mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use junction_tests::guests;

const TOKEN: &str = "bench-token-0123456789abcdef";
const CONCURRENCY: [u32; 3] = [1, 32, 128];
const WASMTIME_VERSION: &str = "48.0.8";

/// The target directory (the parent of `CARGO_TARGET_TMPDIR`).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target directory")
        .to_path_buf()
}

/// A free loopback port (bound, read, released).
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Polls `url` until it answers 2xx, for at most 60 s.
fn wait_ready(url: &str) {
    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(url).send()
            && (r.status().is_success() || r.status() == 404)
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills and reaps a server process when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What `wrk` measured in one run.
#[derive(Debug, Clone, Copy)]
struct Measured {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    errors: u64,
}

/// `wrk`'s script: the POST, and one machine-readable line at the end
/// (requests, non-2xx/3xx answers plus socket errors, p50 and p99 in µs,
/// duration in µs).
const WRK_SCRIPT: &str = r#"
wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer TOKEN"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %d\n", summary.requests,
    e.status + e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), summary.duration))
end
"#;

fn wrk(script: &Path, url: &str, connections: u32, seconds: u64) -> Measured {
    let threads = connections.min(2);
    let output = Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .arg("--timeout")
        .arg("10s")
        .arg("-s")
        .arg(script)
        .arg(url)
        .output()
        .expect("running wrk (Debian: apt-get install -y wrk)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "wrk failed: {stdout}");
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCH "))
        .unwrap_or_else(|| panic!("wrk printed no figures: {stdout}"));
    let f: Vec<f64> = line
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    Measured {
        rps: f[0] / (f[4] / 1e6),
        errors: f[1] as u64,
        p50_us: f[2],
        p99_us: f[3],
    }
}

/// Warm-up, then one measured `wrk` run per concurrency.
fn load(script: &Path, url: &str, seconds: u64) -> Vec<Measured> {
    wrk(script, url, 32, 2);
    CONCURRENCY
        .iter()
        .map(|&c| {
            let m = wrk(script, url, c, seconds);
            assert_eq!(m.errors, 0, "{url} at {c} connections answered errors");
            m
        })
        .collect()
}

/// The release `junction` binary, built now (cargo rebuilds only what changed),
/// or the one `JUNCTION_BENCH_JUNCTION` names (when another cargo holds the
/// release directory's lock, a build would wait for it).
fn junction_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("JUNCTION_BENCH_JUNCTION") {
        eprintln!(
            "using the junction binary {}",
            PathBuf::from(&path).display()
        );
        return PathBuf::from(path);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    eprintln!("building: cargo build --release --locked -p junction --bin junction");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "junction",
            "--bin",
            "junction",
        ])
        .status()
        .expect("running cargo");
    assert!(status.success(), "building the junction binary failed");
    target_dir().join("release").join("junction")
}

fn junction(script: &Path, seconds: u64) -> Vec<Measured> {
    let binary = junction_binary();
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let config = dir.path().join("junction.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"{addr}\"\ndatabase = \"{}\"\ncache_dir = \"{}\"\n\n\
             [tokens.bench]\ntoken = \"{TOKEN}\"\nscope = \"operator\"\n",
            dir.path().join("junction.db").display(),
            dir.path().join("cache").display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(binary);
    cmd.arg("serve")
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.path().join("junction.log")).unwrap(),
        ));
    // Only the config file configures it.
    for (key, _) in std::env::vars() {
        if key.starts_with("JUNCTION_") {
            cmd.env_remove(key);
        }
    }
    let _server = Server(cmd.spawn().expect("starting junction serve"));
    let base = format!("http://{addr}");
    wait_ready(&format!("{base}/readyz"));
    let client = reqwest::blocking::Client::new();
    let uploaded = client
        .post(format!("{base}/v1/plugins"))
        .bearer_auth(TOKEN)
        .body(support::echo_package(guests::bytes(guests::ECHO)).to_bytes())
        .send()
        .unwrap();
    assert!(
        uploaded.status().is_success(),
        "upload: {}",
        uploaded.text().unwrap()
    );
    let put = client
        .put(format!("{base}/v1/connections/bench"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"plugin": "echo", "allowed_hosts": []}))
        .send()
        .unwrap();
    assert!(
        put.status().is_success(),
        "connection: {}",
        put.text().unwrap()
    );
    let url = format!("{base}/v1/connections/bench/operations/noop");
    let first = client
        .post(&url)
        .bearer_auth(TOKEN)
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.text().unwrap().trim(), "{}");
    load(script, &url, seconds)
}

/// The wasmtime binary and whether it is the right version; `None` after a
/// loud line saying why the row is skipped.
fn wasmtime_binary() -> Option<PathBuf> {
    let path = std::env::var_os("JUNCTION_BENCH_WASMTIME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            target_dir()
                .join("bench-tools")
                .join(format!("wasmtime-{WASMTIME_VERSION}"))
                .join("bin")
                .join("wasmtime")
        });
    let version = Command::new(&path).arg("--version").output();
    match version {
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains(WASMTIME_VERSION) => Some(path),
        Ok(out) => {
            eprintln!(
                "SKIPPED wasmtime serve: {} is `{}`, not {WASMTIME_VERSION}",
                path.display(),
                String::from_utf8_lossy(&out.stdout).trim()
            );
            None
        }
        Err(e) => {
            eprintln!(
                "SKIPPED wasmtime serve: {}: {e}; install it as BENCHMARKS.md says",
                path.display()
            );
            None
        }
    }
}

fn wasmtime_serve(script: &Path, seconds: u64) -> Option<Vec<Measured>> {
    let binary = wasmtime_binary()?;
    let hello = support::build_guest("bench-http-hello", &[]);
    let dir = tempfile::tempdir().unwrap();
    let component = dir.path().join("hello.wasm");
    std::fs::write(&component, hello).unwrap();
    let addr = free_addr();
    let _server = Server(
        Command::new(binary)
            .args(["serve", "-O", "pooling-allocator=y", "--addr"])
            .arg(addr.to_string())
            .arg(&component)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting wasmtime serve"),
    );
    let url = format!("http://{addr}/");
    wait_ready(&url);
    let first = reqwest::blocking::Client::new()
        .post(&url)
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(first.status(), 200);
    Some(load(script, &url, seconds))
}

/// The native limit: same route shape, same token check, `{}` back.
fn native(script: &Path, seconds: u64) -> Vec<Measured> {
    use axum::Router;
    use axum::extract::Path as UrlPath;
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::routing::post;

    async fn noop(
        UrlPath((_connection, _operation)): UrlPath<(String, String)>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> Result<([(header::HeaderName, &'static str); 1], &'static str), StatusCode> {
        let expected = format!("Bearer {TOKEN}");
        if headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()) != Some(expected.as_bytes()) {
            return Err(StatusCode::UNAUTHORIZED);
        }
        serde_json::from_slice::<serde_json::Value>(&body).map_err(|_| StatusCode::BAD_REQUEST)?;
        Ok(([(header::CONTENT_TYPE, "application/json")], "{}"))
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let addr = free_addr();
    let listener = rt.block_on(tokio::net::TcpListener::bind(addr)).unwrap();
    let app = Router::new().route("/v1/connections/{name}/operations/{op}", post(noop));
    rt.spawn(async move { axum::serve(listener, app).await });
    let url = format!("http://{addr}/v1/connections/bench/operations/noop");
    let measured = load(script, &url, seconds);
    rt.shutdown_timeout(Duration::from_secs(1));
    measured
}

fn main() {
    let seconds: u64 = std::env::var("JUNCTION_BENCH_HTTP_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("post.lua");
    std::fs::write(&script, WRK_SCRIPT.replace("TOKEN", TOKEN)).unwrap();

    println!("load average before: {}", support::load_average());
    let junction = junction(&script, seconds);
    let wasmtime = wasmtime_serve(&script, seconds);
    let native = native(&script, seconds);
    println!("load average after: {}", support::load_average());

    let cell = |m: &Measured| {
        format!(
            "{:.0} req/s, p50 {:.0} µs, p99 {:.0} µs",
            m.rps, m.p50_us, m.p99_us
        )
    };
    println!(
        "| connections | Junction invoke | wasmtime serve {WASMTIME_VERSION} hello | native axum | Junction / wasmtime serve | Junction / native |"
    );
    println!("|---|---|---|---|---|---|");
    for (i, c) in CONCURRENCY.iter().enumerate() {
        let (w, ratio) = match &wasmtime {
            Some(w) => (cell(&w[i]), format!("{:.2}", junction[i].rps / w[i].rps)),
            None => ("not run".to_string(), "-".to_string()),
        };
        println!(
            "| {c} | {} | {w} | {} | {ratio} | {:.2} |",
            cell(&junction[i]),
            cell(&native[i]),
            junction[i].rps / native[i].rps
        );
    }
}
