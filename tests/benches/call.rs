//! Per-call overhead: instantiate a connector from its `InstancePre` in a
//! fresh store, call a no-op operation, drop the store. Run with
//! `cargo bench -p junction-tests --bench call`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;

use criterion::{Criterion, criterion_group, criterion_main};
use junction_host::engine::Limits;
use junction_host::runtime::{CallOptions, ConnectionSpec};
use junction_tests::{guests, runtime};

fn per_call(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let host = rt.block_on(async {
        let host = runtime(Limits::default()).await;
        host.load_plugin(&guests::bytes(guests::ECHO))
            .await
            .expect("echo loads");
        host.load_plugin(junction_host::shipped::HUBSPOT_DEAL_TO_PROJECT)
            .await
            .expect("transform loads");
        host.put_connection(
            "echo",
            ConnectionSpec {
                plugin: "echo".into(),
                version: None,
                config: BTreeMap::new(),
                auth: None,
                allowed_hosts: vec![],
                ..Default::default()
            },
        )
        .await
        .expect("connection");
        host
    });

    let mut group = c.benchmark_group("per-call");
    group.bench_function("connector noop (instantiate + invoke + drop)", |b| {
        b.to_async(&rt).iter(|| async {
            host.invoke("echo", "noop", "{}", CallOptions::default())
                .await
                .expect("noop")
        })
    });
    let deal = r#"{"id":"1","properties":{"dealname":"Acme Rollout","amount":"1000","dealstage":"closedwon","closedate":"2026-11-20T00:00:00.000Z"}}"#;
    group.bench_function("transform hubspot deal -> project", |b| {
        b.to_async(&rt).iter(|| async {
            host.apply("hubspot-deal-to-project", deal)
                .await
                .expect("apply")
        })
    });
    group.finish();
}

criterion_group!(benches, per_call);
criterion_main!(benches);
