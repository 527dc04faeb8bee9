//! A connector that misbehaves on purpose, so tests can check that the host
//! contains it: it spins, exhausts memory, traps, floods its output, its
//! log, its kv and the network.

use junction_sdk::{Connector, Context, JsonSchema, Operation, Operations, Result};
use serde::Deserialize;
use serde_json::{Value, json};

struct Hostile;

impl Connector for Hostile {
    fn operations() -> Operations {
        Operations::new()
            .with(Operation::new("noop", "Returns {}", noop))
            .with(Operation::new("loop", "Never returns", spin))
            .with(Operation::new(
                "grow",
                "Allocates memory until stopped",
                grow,
            ))
            .with(Operation::new("panic", "Panics", panic))
            .with(Operation::new(
                "big-output",
                "Returns a JSON string of the requested length",
                big_output,
            ))
            .with(Operation::new("recurse", "Recurses without end", recurse))
            .with(Operation::new(
                "handles",
                "Creates host resource handles without end and never drops them",
                handles,
            ))
            .with(Operation::new(
                "log-flood",
                "Writes the requested number of log lines of the requested size",
                log_flood,
            ))
            .with(Operation::new(
                "kv-fill",
                "Sets new keys until the host refuses one; returns how many it took and why it stopped",
                kv_fill,
            ))
            .with(Operation::new(
                "request-flood",
                "Sends GET requests to a URL until one fails or the count is reached",
                request_flood,
            ))
    }
}

junction_sdk::export_connector!(Hostile);

fn noop(_: &Context, _: Value) -> Result<Value> {
    Ok(json!({}))
}

fn spin(_: &Context, _: Value) -> Result<Value> {
    let mut counter = 0u64;
    // black_box keeps the optimizer from proving the loop has no effect.
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

fn grow(_: &Context, _: Value) -> Result<Value> {
    const CHUNK: usize = 1 << 20;
    let mut kept: Vec<Vec<u8>> = Vec::new();
    loop {
        // Non-zero fill writes every page, so the memory is really used.
        let chunk = std::hint::black_box(vec![0xA5u8; CHUNK]);
        kept.push(chunk);
        std::hint::black_box(&kept);
    }
}

fn panic(_: &Context, _: Value) -> Result<Value> {
    panic!("hostile guest panicked on purpose");
}

#[derive(Deserialize, JsonSchema)]
#[schemars(crate = "junction_sdk::schemars")]
struct Size {
    /// Length of the returned string, in bytes (the JSON adds two quotes).
    bytes: usize,
}

fn big_output(_: &Context, input: Size) -> Result<String> {
    Ok("x".repeat(input.bytes))
}

fn recurse(_: &Context, _: Value) -> Result<Value> {
    fn deeper(depth: u64, pad: [u64; 16]) -> u64 {
        // The padding and black_box keep each frame real and the call non-tail;
        // the exit condition is never met (black_box hides that).
        let pad = std::hint::black_box(pad);
        if std::hint::black_box(depth) == u64::MAX {
            return 0;
        }
        deeper(depth + 1, pad).wrapping_add(pad[(depth % 16) as usize])
    }
    Ok(json!(deeper(0, [1; 16])))
}

fn handles(_: &Context, _: Value) -> Result<Value> {
    use junction_sdk::wit::connector::wasi::http::types::Fields;
    loop {
        // Each `Fields` is an entry in the host's resource table.
        std::mem::forget(std::hint::black_box(Fields::new()));
    }
}

#[derive(Deserialize, JsonSchema)]
#[schemars(crate = "junction_sdk::schemars")]
struct Flood {
    /// Lines (or keys, or requests) to write.
    count: u64,
    /// Bytes of each line or value.
    #[serde(default)]
    bytes: usize,
    /// The URL of `request-flood`.
    #[serde(default)]
    url: String,
}

fn log_flood(_: &Context, input: Flood) -> Result<Value> {
    let line = "x".repeat(input.bytes);
    for _ in 0..input.count {
        junction_sdk::log::info(&line);
    }
    Ok(json!({"written": input.count}))
}

fn kv_fill(ctx: &Context, input: Flood) -> Result<Value> {
    let value = vec![0x5Au8; input.bytes];
    for i in 0..input.count {
        if let Err(e) = ctx.kv_set(&format!("k{i:08}"), &value) {
            return Ok(json!({"stored": i, "error": e.to_string()}));
        }
    }
    Ok(json!({"stored": input.count, "error": null}))
}

fn request_flood(_: &Context, input: Flood) -> Result<Value> {
    let mut bytes = 0usize;
    for i in 0..input.count {
        match junction_sdk::http::Request::get(input.url.as_str()).send() {
            Ok(response) => bytes += response.text().len(),
            Err(e) => return Ok(json!({"sent": i, "bytes": bytes, "error": e.to_string()})),
        }
    }
    Ok(json!({"sent": input.count, "bytes": bytes, "error": null}))
}
