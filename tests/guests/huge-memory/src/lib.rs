//! A connector whose initial linear memory is 512 MiB (set by `build.rs`
//! through the linker), before it runs a single instruction.

use junction_sdk::{Connector, Context, Operation, Operations, Result};
use serde_json::{Value, json};

struct HugeMemory;

impl Connector for HugeMemory {
    fn operations() -> Operations {
        Operations::new().with(Operation::new("noop", "Returns {}", noop))
    }
}

junction_sdk::export_connector!(HugeMemory);

fn noop(_: &Context, _: Value) -> Result<Value> {
    Ok(json!({}))
}
