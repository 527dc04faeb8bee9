//! A connector that reads a file, so its component imports `wasi:filesystem`,
//! which no Junction world allows: the registry must refuse it.

use junction_sdk::{Connector, Context, Error, Operation, Operations, Result};
use serde_json::{Value, json};

struct FsReader;

impl Connector for FsReader {
    fn operations() -> Operations {
        Operations::new().with(Operation::new("read", "Reads /etc/hostname", read))
    }
}

junction_sdk::export_connector!(FsReader);

fn read(_: &Context, _: Value) -> Result<Value> {
    let contents = std::fs::read_to_string("/etc/hostname")
        .map_err(|e| Error::Internal(format!("reading /etc/hostname: {e}")))?;
    Ok(json!({ "contents": contents }))
}
