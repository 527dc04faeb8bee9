//! A connector that opens a TCP connection itself, so its component imports
//! `wasi:sockets`, which no Junction world allows: the registry must refuse it.

use junction_sdk::{Connector, Context, Error, Operation, Operations, Result};
use serde_json::{Value, json};

struct Sockets;

impl Connector for Sockets {
    fn operations() -> Operations {
        Operations::new().with(Operation::new(
            "connect",
            "Connects to 127.0.0.1:1",
            connect,
        ))
    }
}

junction_sdk::export_connector!(Sockets);

fn connect(_: &Context, _: Value) -> Result<Value> {
    std::net::TcpStream::connect("127.0.0.1:1")
        .map_err(|e| Error::Unavailable(format!("connecting to 127.0.0.1:1: {e}")))?;
    Ok(json!({ "connected": true }))
}
