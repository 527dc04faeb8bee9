//! Plugins in JavaScript and Python beside the same plugins in Rust:
//! component size, upload-to-first-call time (uncached compile) and
//! per-call latency on a running host's runtime.
//! - Connector `echo`: `examples/js-echo`, built with ComponentizeJS (`npm ci
//!   && npm run build` there), against the `echo` test connector.
//! - Transform `apply` of one contact: `examples/js-person` (ComponentizeJS)
//!   and `examples/py-person`, built with componentize-py (`./build.sh`
//!   there), against the Rust transform
//!   `junction plugin new --kind transform` writes (same mapping), which
//!   this bench scaffolds and builds.
//!
//! `.ci/run` builds both examples. Run with
//! `cargo bench -p junction-tests --bench languages`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // bench code: a failed unwrap is a failed run

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use junction_registry::Package;
use junction_runtime::runtime::{CallOptions, ConnectionSpec};
use junction_tests::{guests, runtime_with, test_config};

const UPLOADS: usize = 5;
const CALLS: usize = 2_000;

/// What is measured of a plugin: a connector's operation or a transform.
#[derive(Clone, Copy)]
enum Call {
    Invoke(&'static str, &'static str),
    Apply(&'static str),
}

fn main() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let built = |name: &str, how: &str| {
        let path = examples
            .join(name)
            .join("target")
            .join(format!("{name}.wasm"));
        let wasm = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; build it with `{how}` in examples/{name}",
                path.display()
            )
        });
        let manifest = std::fs::read_to_string(examples.join(name).join("plugin.toml")).unwrap();
        Package::new(manifest, wasm)
    };
    let contact = r#"{"first_name":"Ada","last_name":"Lovelace","email":" Ada@Example.COM "}"#;
    let echo = Call::Invoke("echo", r#"{"message":"hi"}"#);
    let plugins = [
        (
            "connector in rust (tests/guests/echo)",
            "echo",
            support::echo_package(guests::bytes(guests::ECHO)),
            echo,
        ),
        (
            "connector in javascript (examples/js-echo)",
            "js-echo",
            built("js-echo", "npm ci && npm run build"),
            echo,
        ),
        (
            "transform in rust (junction plugin new --kind transform)",
            "rs-person",
            rust_person(),
            Call::Apply(contact),
        ),
        (
            "transform in javascript (examples/js-person)",
            "js-person",
            built("js-person", "npm ci && npm run build"),
            Call::Apply(contact),
        ),
        (
            "transform in python (examples/py-person)",
            "py-person",
            built("py-person", "./build.sh"),
            Call::Apply(contact),
        ),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (label, plugin, package, call) in &plugins {
        let bytes = package.to_bytes();
        let mut uploads = Vec::new();
        let mut host = None;
        for _ in 0..UPLOADS {
            let (took, fresh) = rt.block_on(upload_and_call(&bytes, plugin, *call));
            uploads.push(took);
            host = Some(fresh);
        }
        uploads.sort();
        let host = host.unwrap();
        let mut calls = Vec::with_capacity(CALLS);
        rt.block_on(async {
            for _ in 0..CALLS {
                let started = Instant::now();
                once(&host, plugin, *call).await;
                calls.push(started.elapsed());
            }
        });
        calls.sort();
        let at = |q: f64| calls[((calls.len() as f64 * q) as usize).min(calls.len() - 1)];
        println!(
            "{label}: component {} bytes; upload to first call (uncached) median {:.1} ms of {UPLOADS}; \
             call p50 {:.1} µs, p99 {:.1} µs over {CALLS}",
            package.wasm().len(),
            ms(uploads[UPLOADS / 2]),
            at(0.5).as_secs_f64() * 1e6,
            at(0.99).as_secs_f64() * 1e6,
        );
    }
}

/// The Rust transform of the scaffold, written to a temporary directory and
/// built for wasm32-wasip2 into the guests' target directory.
fn rust_person() -> Package {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let krate = dir.path().join("rs-person");
    let sdk = junction::scaffold::SdkSource::Path(repo.join("sdk"));
    junction::scaffold::new_plugin(
        junction::scaffold::Kind::Transform,
        "rs-person",
        &krate,
        sdk,
    )
    .unwrap();
    let target = junction_build_support::shared_target_dir(Path::new(env!("OUT_DIR")));
    let mut cargo = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()));
    cargo
        .current_dir(&krate)
        .args([
            "build",
            "--release",
            "--target",
            junction_build_support::TARGET,
        ])
        .arg("--target-dir")
        .arg(&target);
    for key in [
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
    ] {
        cargo.env_remove(key);
    }
    assert!(
        cargo.status().unwrap().success(),
        "building the Rust transform"
    );
    let wasm = std::fs::read(
        target
            .join(junction_build_support::TARGET)
            .join("release/rs_person.wasm"),
    )
    .unwrap();
    let manifest = std::fs::read_to_string(krate.join("plugin.toml"))
        .unwrap()
        .replace("[plugin]\n", "[plugin]\nversion = \"0.1.0\"\n");
    Package::new(manifest, wasm)
}

/// One measured call.
async fn once(host: &junction_runtime::Runtime, plugin: &str, call: Call) {
    match call {
        Call::Invoke(operation, input) => {
            host.invoke("bench", operation, input, CallOptions::default())
                .await
                .unwrap();
        }
        Call::Apply(input) => {
            host.apply(plugin, input).await.unwrap();
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// On a fresh runtime without a compiled-code cache: the time from the
/// start of the upload to the end of the first call, and the runtime.
async fn upload_and_call(
    package: &[u8],
    plugin: &str,
    call: Call,
) -> (Duration, std::sync::Arc<junction_runtime::Runtime>) {
    let mut config = test_config(junction_runtime::engine::Limits::default());
    config.runtime.cache_dir = None;
    let host = runtime_with(&config).await;
    let started = Instant::now();
    host.upload_package(package, "bench").await.unwrap();
    if let Call::Invoke(..) = call {
        let spec = ConnectionSpec {
            plugin: plugin.into(),
            ..ConnectionSpec::default()
        };
        host.put_connection("bench", spec).await.unwrap();
    }
    once(&host, plugin, call).await;
    (started.elapsed(), host)
}
