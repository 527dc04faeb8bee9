//! A small connector for the host-start benchmark. Its plugin name is fixed
//! when it is compiled, from `JUNCTION_BENCH_PLUGIN_NAME` (default
//! `bench-named`), so that one source builds as many distinct plugins, each a
//! different component, as the benchmark needs.

use junction_sdk::{Connector, Context, JsonSchema, Operation, Operations, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The plugin name, chosen at build time.
const NAME: &str = match option_env!("JUNCTION_BENCH_PLUGIN_NAME") {
    Some(name) => name,
    None => "bench-named",
};

struct Named;

impl Connector for Named {
    fn operations() -> Operations {
        Operations::new()
            .with(Operation::new("noop", "Returns {}", noop).idempotent())
            .with(Operation::new("echo", "Returns its input", echo).idempotent())
            .with(Operation::new("name", "Returns the plugin name", name).idempotent())
            .with(Operation::new("count", "Counts the words of a text", count))
    }
}

junction_sdk::export_connector!(Named, name = NAME);

fn noop(_: &Context, _: Value) -> Result<Value> {
    Ok(json!({}))
}

fn echo(_: &Context, input: Value) -> Result<Value> {
    Ok(input)
}

fn name(_: &Context, _: Value) -> Result<Value> {
    Ok(json!({ "name": NAME }))
}

#[derive(Deserialize, JsonSchema)]
#[schemars(crate = "junction_sdk::schemars")]
struct Text {
    text: String,
}

#[derive(Serialize, JsonSchema)]
#[schemars(crate = "junction_sdk::schemars")]
struct Counted {
    words: usize,
}

fn count(_: &Context, input: Text) -> Result<Counted> {
    Ok(Counted {
        words: input.text.split_whitespace().count(),
    })
}
