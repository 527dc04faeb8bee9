//! Host memory stays bounded while plugins attack it: the resident set after
//! rounds of memory-growth, output-flood and handle-flood attacks is within
//! a fixed margin of the resident set after the first round. (Its own test
//! binary, so no other test's allocations are counted.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use junction_runtime::runtime::{CallOptions, ConnectionSpec};
use junction_tests::{guests, runtime, test_limits};

/// Resident set size of this process, in bytes (Linux `/proc`).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[tokio::test]
async fn host_memory_stays_bounded_under_attack() {
    let Some(_) = resident_bytes() else {
        eprintln!("SKIPPED: no /proc/self/status on this system; host memory not measured");
        return;
    };
    let rt = runtime(test_limits()).await;
    rt.load_plugin(&guests::bytes(guests::HOSTILE))
        .await
        .unwrap();
    rt.load_plugin(&guests::bytes(guests::HOSTILE_TRANSFORM))
        .await
        .unwrap();
    rt.put_connection(
        "hostile",
        ConnectionSpec {
            plugin: "hostile".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let attack = || async {
        for (op, input) in [
            ("grow", "{}"),
            ("big-output", r#"{"bytes": 100000000}"#),
            ("handles", "{}"),
            ("recurse", "{}"),
        ] {
            let result = rt
                .invoke("hostile", op, input, CallOptions::default())
                .await;
            assert!(result.is_err(), "{op} was stopped");
        }
        let flood = rt
            .apply("hostile-transform", r#"{"count": 1000000, "bytes": 0}"#)
            .await;
        assert!(flood.is_err());
    };
    // The first round warms the pool, the allocator and lazily loaded code.
    attack().await;
    let baseline = resident_bytes().unwrap();
    for _ in 0..5 {
        attack().await;
    }
    let after = resident_bytes().unwrap();
    let grown = after.saturating_sub(baseline);
    eprintln!(
        "resident: {} MiB after the first round, {} MiB after five more",
        baseline >> 20,
        after >> 20
    );
    // Each round makes guests use 32 MiB and the host lift megabytes; a
    // leak of any of it per round would show as well over this margin.
    assert!(grown < 48 << 20, "host memory grew by {} MiB", grown >> 20);
}
