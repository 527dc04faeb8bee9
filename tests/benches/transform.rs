//! Transform throughput against native code: the shipped HubSpot deal ->
//! canonical project mapping (`plugins/hubspot-deal-to-project`) on HubSpot
//! deals of about 0.75 KB of JSON (16 properties, as the search API returns
//! them), JSON text in and JSON text out, run
//!
//! - natively: the plugin crate's own `deal_to_project`, compiled into this
//!   bench (a path dependency, so there is one source of the mapping), with
//!   the same serde steps the SDK's transform glue runs in the guest: parse
//!   the deal, map it, serialize the project;
//! - as WASM through the host: `Runtime::apply` of the shipped component
//!   (input checked as JSON, a fresh instance from the `InstancePre` in a
//!   fresh store, the call, the output checked, the store dropped).
//!
//! The two run in alternating rounds (so a change of machine load hits both)
//! on one thread; the bench prints each one's records/s (median round, and
//! the range) and the ratio. Run with
//! `cargo bench -p junction-tests --bench transform`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // bench code: a failed unwrap is a failed run

mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use hubspot_deal_to_project::{Deal, deal_to_project};
use junction_runtime::engine::Limits;
use junction_tests::runtime;

/// Distinct records, used round-robin.
const RECORDS: usize = 64;
/// Alternating rounds of each.
const ROUNDS: usize = 15;
/// Records per round: the native side is about 50 times faster, so it gets
/// more records to keep its rounds measurable.
const NATIVE_PER_ROUND: usize = 50_000;
const WASM_PER_ROUND: usize = 2_000;

/// The `i`th HubSpot CRM v3 deal as the search API returns it: the
/// properties the mapping reads and the usual others it ignores.
fn deal(i: usize) -> String {
    let id = 18_347_562_301_u64 + i as u64;
    let amount = 40_000 + 1_250 * i;
    let day = 1 + i % 28;
    serde_json::json!({
        "id": id.to_string(),
        "properties": {
            "amount": amount.to_string(),
            "closedate": format!("2026-11-{day:02}T00:00:00.000Z"),
            "createdate": "2026-09-14T08:21:37.912Z",
            "deal_currency_code": if i.is_multiple_of(3) { "eur" } else { "USD" },
            "dealname": format!("Northwind Traders {i} - EMEA ERP rollout, phase 2"),
            "dealstage": "closedwon",
            "dealtype": "newbusiness",
            "description": "Implementation of the finance and project modules for three subsidiaries, with data migration and training.",
            "hs_deal_stage_probability": "1.0",
            "hs_forecast_amount": amount.to_string(),
            "hs_is_closed_won": "true",
            "hs_lastmodifieddate": "2026-11-20T10:02:11.402Z",
            "hs_object_id": id.to_string(),
            "hubspot_owner_id": "75410227",
            "num_associated_contacts": "4",
            "pipeline": "default"
        },
        "createdAt": "2026-09-14T08:21:37.912Z",
        "updatedAt": "2026-11-20T10:02:11.402Z",
        "archived": false
    })
    .to_string()
}

/// The native mapping, JSON text to JSON texts, as the SDK's transform glue
/// runs it in the guest.
fn native(input: &str) -> Vec<String> {
    let deal: Deal = serde_json::from_str(input).expect("a deal");
    deal_to_project(deal)
        .expect("mapped")
        .iter()
        .map(|project| serde_json::to_string(project).expect("serialized"))
        .collect()
}

/// Records per second of one timed round.
fn rate(records: usize, took: Duration) -> f64 {
    records as f64 / took.as_secs_f64()
}

fn median_and_range(mut rates: Vec<f64>) -> (f64, f64, f64) {
    rates.sort_by(f64::total_cmp);
    (rates[rates.len() / 2], rates[0], rates[rates.len() - 1])
}

fn main() {
    // `cargo bench` passes `--bench`; this bench takes no filter.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let host = rt.block_on(async {
        let host = runtime(Limits::default()).await;
        host.load_plugin(junction::shipped::HUBSPOT_DEAL_TO_PROJECT)
            .await
            .expect("transform loads");
        host
    });
    let records: Vec<String> = (0..RECORDS).map(deal).collect();
    let bytes: usize = records.iter().map(String::len).sum();
    println!(
        "{RECORDS} distinct HubSpot deals, {} bytes of JSON on average",
        bytes / RECORDS
    );

    // Both must give the same projects before anything is timed.
    for record in &records {
        let (outputs, _) = rt
            .block_on(host.apply("hubspot-deal-to-project", record))
            .expect("apply");
        assert_eq!(outputs, native(record), "WASM and native outputs differ");
    }
    println!(
        "one output: {} bytes, e.g. {}",
        native(&records[0])[0].len(),
        native(&records[0])[0]
    );

    println!("load average before: {}", support::load_average());
    let (mut native_rates, mut wasm_rates) = (Vec::new(), Vec::new());
    for round in 0..=ROUNDS {
        let started = Instant::now();
        for i in 0..NATIVE_PER_ROUND {
            black_box(native(black_box(&records[i % RECORDS])));
        }
        let native_took = started.elapsed();
        let started = Instant::now();
        rt.block_on(async {
            for i in 0..WASM_PER_ROUND {
                let (outputs, _) = host
                    .apply("hubspot-deal-to-project", &records[i % RECORDS])
                    .await
                    .expect("apply");
                black_box(outputs);
            }
        });
        let wasm_took = started.elapsed();
        // Round 0 warms both up and is not counted.
        if round > 0 {
            native_rates.push(rate(NATIVE_PER_ROUND, native_took));
            wasm_rates.push(rate(WASM_PER_ROUND, wasm_took));
        }
    }
    println!("load average after: {}", support::load_average());

    let (native, native_min, native_max) = median_and_range(native_rates);
    let (wasm, wasm_min, wasm_max) = median_and_range(wasm_rates);
    println!("median of {ROUNDS} rounds (min - max), one thread:");
    println!(
        "native: {native:.0} records/s ({native_min:.0} - {native_max:.0}), {:.2?} per record",
        Duration::from_secs_f64(1.0 / native)
    );
    println!(
        "wasm through Runtime::apply: {wasm:.0} records/s ({wasm_min:.0} - {wasm_max:.0}), {:.2?} per record",
        Duration::from_secs_f64(1.0 / wasm)
    );
    println!(
        "native / wasm: {:.1}x (target: at most 1.5x)",
        native / wasm
    );
}
