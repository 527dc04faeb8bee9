//! Host start time with 20 plugins: `Runtime::open` on a SQLite database that
//! holds 20 uploaded plugins (distinct names, distinct components), which
//! restores every stored version (package read back and validated, component
//! compiled or taken from the compiled-code cache, linked, described) until
//! the host is ready to serve. Cold: an empty cache directory, so all 20 are
//! compiled (and written to the cache). Warm: the cache directory a previous
//! start filled. Run with `cargo bench -p junction-tests --bench startup`.
//!
//! The 20 components are real builds of the bench-only `bench-named` guest,
//! one per plugin name (`JUNCTION_BENCH_PLUGIN_NAME`), built by this bench.

#![allow(clippy::unwrap_used, clippy::expect_used)] // bench code: a failed unwrap is a failed run

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use junction_registry::{Digest, Package};
use junction_runtime::runtime::Runtime;
use junction_tests::test_config;

const PLUGINS: usize = 20;

fn named_package(name: &str, wasm: Vec<u8>) -> Package {
    let manifest = format!(
        "[plugin]\nname = \"{name}\"\nversion = \"0.1.0\"\nworld = \"connector\"\n\
         wit = \"junction:plugin@0.1.0\"\ndescription = \"bench\"\n\
         operations = [\"noop\", \"echo\", \"name\", \"count\"]\n\
         triggers = []\n\n[capabilities]\noutbound_hosts = []\nauth = \"none\"\nkv = false\n"
    );
    Package::new(manifest, wasm)
}

fn host_start(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    // 20 distinct components: one build of `bench-named` per plugin name.
    let mut packages = Vec::new();
    let mut digests = BTreeSet::new();
    let mut bytes = 0;
    for i in 1..=PLUGINS {
        let name = format!("bench-{i:02}");
        let wasm = support::build_guest(
            "bench-named",
            &[("JUNCTION_BENCH_PLUGIN_NAME", name.as_str())],
        );
        bytes += wasm.len();
        digests.insert(Digest::of(&wasm).to_string());
        packages.push(named_package(&name, wasm).to_bytes());
    }
    assert_eq!(digests.len(), PLUGINS, "the components must all differ");
    println!(
        "{PLUGINS} distinct bench-named components: {bytes} bytes in all, {} on average",
        bytes / PLUGINS
    );

    // One database holding the 20 plugins, uploaded the normal way.
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(junction_runtime::engine::Limits::default());
    config.store.database = Some(dir.path().join("junction.db"));
    config.runtime.cache_dir = None;
    rt.block_on(async {
        let host = Runtime::open(&config.store, &config.runtime).await.unwrap();
        for package in &packages {
            let up = host.upload_package(package, "bench").await.unwrap();
            assert!(up.created && up.active, "{} uploaded and active", up.name);
        }
    });

    // For reference, one start without a cache directory: compiles only.
    rt.block_on(async {
        let started = support::Stopwatch::start();
        let host = Runtime::open(&config.store, &config.runtime).await.unwrap();
        let sample = started.stop();
        assert_eq!(host.plugins().len(), PLUGINS);
        println!(
            "one start without a cache directory: {:.2?} (CPU time {:.2?})",
            sample.wall,
            sample.cpu.unwrap_or_default()
        );
    });

    // The warm cache is filled by one start before anything is measured.
    let warm_cache = dir.path().join("warm-cache");
    rt.block_on(async {
        let mut config = config.clone();
        config.runtime.cache_dir = Some(warm_cache.clone());
        let started = support::Stopwatch::start();
        let host = Runtime::open(&config.store, &config.runtime).await.unwrap();
        let sample = started.stop();
        assert_eq!(host.plugins().len(), PLUGINS);
        println!(
            "first start, filling the cache: {:.2?} (CPU time {:.2?}); cache: {} bytes",
            sample.wall,
            sample.cpu.unwrap_or_default(),
            dir_bytes(&warm_cache)
        );
    });

    let mut group = c.benchmark_group("host-start-20-plugins");
    group.sample_size(10);
    let mut timings = Vec::new();
    for (label, warm) in [("cold cache", false), ("warm cache", true)] {
        // A cold start takes seconds: one start per sample (criterion then
        // warns that 10 samples do not fit the target time).
        let (sampling, time) = if warm {
            (SamplingMode::Auto, 10)
        } else {
            (SamplingMode::Flat, 10)
        };
        group
            .sampling_mode(sampling)
            .measurement_time(Duration::from_secs(time));
        let runs = support::Timings::default();
        group.bench_function(label, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let mut config = config.clone();
                let warm_cache = warm_cache.clone();
                let scratch = dir.path().to_path_buf();
                let runs = &runs;
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        // Cold: a new, empty cache directory for every start.
                        let cold = (!warm).then(|| tempfile::tempdir_in(&scratch).unwrap());
                        config.runtime.cache_dir = Some(match &cold {
                            Some(cold) => cold.path().to_path_buf(),
                            None => warm_cache.clone(),
                        });
                        let started = support::Stopwatch::start();
                        let host = Runtime::open(&config.store, &config.runtime).await.unwrap();
                        total += runs.record(started.stop());
                        let plugins = host.plugins();
                        assert_eq!(plugins.len(), PLUGINS, "every plugin restored");
                        assert!(plugins.iter().all(|p| p.active), "every plugin active");
                        drop(host);
                    }
                    total
                }
            })
        });
        timings.push((label, runs));
    }
    group.finish();
    for (label, runs) in &timings {
        runs.report(&format!("host start, 20 plugins, {label}"));
    }
}

/// Total size of the files directly or indirectly under `dir`.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| match entry.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&entry.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

criterion_group!(benches, host_start);
criterion_main!(benches);
