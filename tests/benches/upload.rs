//! Upload-to-serving latency: a package is uploaded to a running host
//! (validated, compiled or taken from the compiled-code cache, linked,
//! described) and a connection on it answers its first call. Run with
//! `cargo bench -p junction-tests --bench upload`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // bench code: a failed unwrap is a failed run

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use junction_host::runtime::{CallOptions, ConnectionSpec};
use junction_registry::Package;
use junction_tests::{guests, runtime_with, test_config};

fn echo_package() -> Package {
    let manifest = "[plugin]\nname = \"echo\"\nversion = \"0.1.0\"\nworld = \"connector\"\n\
        wit = \"junction:plugin@0.1.0\"\ndescription = \"bench\"\n\
        operations = [\"noop\", \"echo\", \"version\", \"config\", \"kv\", \"fetch\", \"whoami\", \"env\"]\n\
        triggers = []\n\n[capabilities]\noutbound_hosts = []\nauth = \"none\"\nkv = true\n";
    Package::new(manifest, guests::bytes(guests::ECHO))
}

fn upload_to_serving(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let package = echo_package().to_bytes();
    let cache = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("upload-to-serving");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    for (label, cached) in [
        ("echo component, uncached compile", false),
        ("echo component, cached compile", true),
    ] {
        group.bench_function(label, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let package = package.clone();
                let cache_dir = cached.then(|| cache.path().to_path_buf());
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let mut config = test_config(junction_host::engine::Limits::default());
                        config.cache_dir = cache_dir.clone();
                        let host = runtime_with(&config).await;
                        let started = Instant::now();
                        host.upload_package(&package, "bench").await.unwrap();
                        let spec = ConnectionSpec {
                            plugin: "echo".into(),
                            version: None,
                            config: Default::default(),
                            auth: None,
                            allowed_hosts: vec![],
                            ..Default::default()
                        };
                        host.put_connection("echo", spec).await.unwrap();
                        host.invoke("echo", "noop", "{}", CallOptions::default())
                            .await
                            .unwrap();
                        total += started.elapsed();
                    }
                    total
                }
            })
        });
    }
    group.finish();
    println!(
        "echo component: {} bytes",
        guests::bytes(guests::ECHO).len()
    );
}

criterion_group!(benches, upload_to_serving);
criterion_main!(benches);
