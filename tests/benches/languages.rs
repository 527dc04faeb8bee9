//! A connector in JavaScript beside the same connector in Rust: component
//! size, upload-to-first-call time (uncached compile) and per-call latency
//! of `echo` on a running host's runtime. The JavaScript one is
//! `examples/js-echo`, built with ComponentizeJS (`npm ci && npm run build`
//! there; `.ci/run` does it); the Rust one is the `echo` test connector.
//! Run with `cargo bench -p junction-tests --bench languages`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // bench code: a failed unwrap is a failed run

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use junction_registry::Package;
use junction_runtime::runtime::{CallOptions, ConnectionSpec};
use junction_tests::{guests, runtime_with, test_config};

const UPLOADS: usize = 5;
const CALLS: usize = 2_000;

fn main() {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/js-echo");
    let wasm = std::fs::read(js.join("target/js-echo.wasm")).unwrap_or_else(|e| {
        panic!(
            "examples/js-echo/target/js-echo.wasm: {e}; build it with `npm ci && npm run build` in examples/js-echo"
        )
    });
    let manifest = std::fs::read_to_string(js.join("plugin.toml")).unwrap();
    let plugins = [
        (
            "rust (tests/guests/echo)",
            "echo",
            support::echo_package(guests::bytes(guests::ECHO)),
        ),
        (
            "javascript (examples/js-echo)",
            "js-echo",
            Package::new(manifest, wasm),
        ),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (label, plugin, package) in &plugins {
        let bytes = package.to_bytes();
        let mut uploads = Vec::new();
        let mut host = None;
        for _ in 0..UPLOADS {
            let (took, fresh) = rt.block_on(upload_and_call(&bytes, plugin));
            uploads.push(took);
            host = Some(fresh);
        }
        uploads.sort();
        let host = host.unwrap();
        let input = r#"{"message":"hi"}"#;
        let mut calls = Vec::with_capacity(CALLS);
        rt.block_on(async {
            for _ in 0..CALLS {
                let started = Instant::now();
                host.invoke("bench", "echo", input, CallOptions::default())
                    .await
                    .unwrap();
                calls.push(started.elapsed());
            }
        });
        calls.sort();
        let at = |q: f64| calls[((calls.len() as f64 * q) as usize).min(calls.len() - 1)];
        println!(
            "{label}: component {} bytes; upload to first call (uncached) median {:.1} ms of {UPLOADS}; \
             echo call p50 {:.1} µs, p99 {:.1} µs over {CALLS}",
            package.wasm().len(),
            ms(uploads[UPLOADS / 2]),
            at(0.5).as_secs_f64() * 1e6,
            at(0.99).as_secs_f64() * 1e6,
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// On a fresh runtime without a compiled-code cache: the time from the
/// start of the upload to the end of the first `echo` call, and the runtime.
async fn upload_and_call(
    package: &[u8],
    plugin: &str,
) -> (Duration, std::sync::Arc<junction_runtime::Runtime>) {
    let mut config = test_config(junction_runtime::engine::Limits::default());
    config.runtime.cache_dir = None;
    let host = runtime_with(&config).await;
    let started = Instant::now();
    host.upload_package(package, "bench").await.unwrap();
    let spec = ConnectionSpec {
        plugin: plugin.into(),
        ..ConnectionSpec::default()
    };
    host.put_connection("bench", spec).await.unwrap();
    host.invoke(
        "bench",
        "echo",
        r#"{"message":"hi"}"#,
        CallOptions::default(),
    )
    .await
    .unwrap();
    (started.elapsed(), host)
}
