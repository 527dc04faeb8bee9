//! Upload-to-serving latency: a package is uploaded to a running host
//! (validated, compiled or taken from the compiled-code cache, linked,
//! described) and a connection on it answers its first call, for a small
//! component (the `echo` test connector) and a component of about 5 MB (the
//! bench-only `bench-large` guest, built by this bench). Run with
//! `cargo bench -p junction-tests --bench upload`; `-- echo` or `-- large`
//! runs one component's cases.

#![allow(clippy::unwrap_used, clippy::expect_used)] // bench code: a failed unwrap is a failed run

mod support;

use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use junction_registry::Package;
use junction_runtime::runtime::{CallOptions, ConnectionSpec};
use junction_tests::{guests, runtime_with, test_config};

fn large_package(wasm: Vec<u8>) -> Package {
    let manifest = "[plugin]\nname = \"bench-large\"\nversion = \"0.1.0\"\nworld = \"connector\"\n\
        wit = \"junction:plugin@0.1.0\"\ndescription = \"bench\"\n\
        operations = [\"noop\", \"run\", \"chain\"]\n\
        triggers = []\n\n[capabilities]\noutbound_hosts = []\nauth = \"none\"\nkv = false\n";
    Package::new(manifest, wasm)
}

fn upload_to_serving(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let echo_wasm = guests::bytes(guests::ECHO);
    let large_wasm = support::build_guest("bench-large", &[]);
    println!("echo component: {} bytes", echo_wasm.len());
    println!("bench-large component: {} bytes", large_wasm.len());
    let components = [
        ("echo", "echo", support::echo_package(echo_wasm).to_bytes()),
        ("large", "bench-large", large_package(large_wasm).to_bytes()),
    ];

    let mut group = c.benchmark_group("upload-to-serving");
    group.sample_size(10);
    let mut timings = Vec::new();
    for (label, plugin, package) in &components {
        // One cache directory per component.
        let cache = tempfile::tempdir().unwrap();
        for cached in [false, true] {
            // An uncached large upload takes seconds: one per sample (criterion
            // then warns that 10 samples do not fit the target time).
            let (sampling, time) = match (*label, cached) {
                ("large", false) => (SamplingMode::Flat, 10),
                _ => (SamplingMode::Auto, 20),
            };
            group
                .sampling_mode(sampling)
                .measurement_time(Duration::from_secs(time));
            let id = format!(
                "{label} component, {} compile",
                if cached { "cached" } else { "uncached" }
            );
            let runs = support::Timings::default();
            let cache_dir = cached.then(|| cache.path().to_path_buf());
            if cached {
                // Fill the cache first, so that every measured upload finds it.
                rt.block_on(upload_and_call(package, plugin, cache_dir.clone()));
            }
            group.bench_function(&id, |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let cache_dir = cache_dir.clone();
                    let runs = &runs;
                    async move {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let sample = upload_and_call(package, plugin, cache_dir.clone()).await;
                            total += runs.record(sample);
                        }
                        total
                    }
                })
            });
            timings.push((id, runs));
        }
    }
    group.finish();
    for (id, runs) in &timings {
        runs.report(&format!("upload-to-serving, {id}"));
    }
}

/// On a fresh runtime (in-memory store, `cache_dir` as given): the time (wall
/// clock and CPU) from the start of the upload of `package` to the end of the
/// first no-op call of a connection on `plugin`.
async fn upload_and_call(
    package: &[u8],
    plugin: &str,
    cache_dir: Option<PathBuf>,
) -> support::Sample {
    let mut config = test_config(junction_runtime::engine::Limits::default());
    config.runtime.cache_dir = cache_dir;
    let host = runtime_with(&config).await;
    let started = support::Stopwatch::start();
    host.upload_package(package, "bench").await.unwrap();
    let spec = ConnectionSpec {
        plugin: plugin.into(),
        version: None,
        config: Default::default(),
        auth: None,
        allowed_hosts: vec![],
        ..Default::default()
    };
    host.put_connection("bench", spec).await.unwrap();
    host.invoke("bench", "noop", "{}", CallOptions::default())
        .await
        .unwrap();
    started.stop()
}

criterion_group!(benches, upload_to_serving);
criterion_main!(benches);
