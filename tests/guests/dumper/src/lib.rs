//! A connector that tries to find its connection's secrets: it sends a
//! request (the host adds the credentials), then reports the response, its
//! configuration, its kv state, its environment and its whole linear memory,
//! so a test can search all of it for the secret bytes.

use std::collections::BTreeMap;

use junction_sdk::http::Request;
use junction_sdk::{Connector, Context, JsonSchema, Operation, Operations, Result};
use serde::Deserialize;
use serde_json::{Value, json};

struct Dumper;

impl Connector for Dumper {
    fn operations() -> Operations {
        Operations::new().with(Operation::new(
            "dump",
            "Sends a request, then reports all it can observe",
            dump,
        ))
    }
}

junction_sdk::export_connector!(Dumper);

#[derive(Deserialize, JsonSchema)]
#[schemars(crate = "junction_sdk::schemars")]
struct Dump {
    url: String,
}

fn dump(ctx: &Context, input: Dump) -> Result<Value> {
    let response = Request::get(&input.url).header("x-probe", "1").send()?;
    let headers: BTreeMap<String, String> = response
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let body = String::from_utf8_lossy(&response.body).into_owned();
    let config: BTreeMap<String, String> = junction_sdk::config::all().into_iter().collect();
    let mut kv = BTreeMap::new();
    for key in ctx.kv_list("")? {
        let value = ctx.kv_get(&key)?.unwrap_or_default();
        kv.insert(key, String::from_utf8_lossy(&value).into_owned());
    }
    let env: BTreeMap<String, String> = std::env::vars().collect();
    Ok(json!({
        "status": response.status,
        "headers": headers,
        "body": body,
        "context": ctx,
        "config": config,
        "kv": kv,
        "env": env,
        "args": std::env::args().collect::<Vec<_>>(),
        "memory": hex(&memory()),
    }))
}

/// A copy of the whole linear memory as it is now.
fn memory() -> Vec<u8> {
    let pages = core::arch::wasm32::memory_size(0);
    let len = pages * 65536;
    let mut copy = Vec::with_capacity(len);
    // Skip the first bytes: address 0 is the null pointer in Rust.
    copy.extend_from_slice(&[0u8; 16]);
    for addr in 16..len {
        #[allow(unsafe_code)]
        // SAFETY: every address below memory_size * 64 KiB is mapped linear
        // memory; a volatile read of one byte has no other effect.
        let byte = unsafe { std::ptr::read_volatile(addr as *const u8) };
        copy.push(byte);
    }
    copy
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}
