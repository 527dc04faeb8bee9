//! A small connector for the footprint benchmark, which loads it as many
//! distinct versions (its version string rewritten in the component).

use junction_sdk::{Connector, Context, Operation, Operations, Result};
use serde_json::{Value, json};

struct Versions;

impl Connector for Versions {
    fn operations() -> Operations {
        Operations::new().with(Operation::new("noop", "Returns {}", noop).idempotent())
    }
}

junction_sdk::export_connector!(Versions);

fn noop(_: &Context, _: Value) -> Result<Value> {
    Ok(json!({}))
}
