//! A connector that misbehaves on purpose, so tests can check that the host
//! contains it: it spins, exhausts memory, traps and floods its output.

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
