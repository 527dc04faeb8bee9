//! A well-behaved connector whose operations reflect what the host gives a
//! plugin: its input, config, key-value store, call context, outbound HTTP
//! and process environment. Its webhook handler turns a JSON body into one
//! event and counts its calls in the key-value store (`webhook-calls`), so a
//! test can tell whether the host called it.

use std::collections::BTreeMap;

use junction_sdk::http::{Method, Request};
use junction_sdk::{
    Connector, Context, Error, Event, JsonSchema, Operation, Operations, Result, WebhookRequest,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

struct Echo;

impl Connector for Echo {
    fn operations() -> Operations {
        Operations::new()
            .with(Operation::new("noop", "Returns {}", noop).idempotent())
            .with(Operation::new("echo", "Returns its input", echo).idempotent())
            .with(Operation::new(
                "version",
                "Returns the plugin version",
                version,
            ))
            .with(Operation::new(
                "config",
                "Reads a connection setting",
                config,
            ))
            .with(Operation::new(
                "kv",
                "Writes then reads the key-value store",
                kv,
            ))
            .with(Operation::new(
                "fetch",
                "Performs an HTTP request, with the call's idempotency key as `Idempotency-Key`",
                fetch,
            ))
            .with(Operation::new("whoami", "Returns the call context", whoami))
            .with(Operation::new(
                "env",
                "Returns environment variables and arguments",
                env,
            ))
    }

    fn handle_webhook(ctx: &Context, request: WebhookRequest) -> Result<Vec<Event>> {
        // Count first, so that even a call that fails below is seen.
        let calls = ctx
            .kv_get(WEBHOOK_CALLS)?
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| text.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        ctx.kv_set(WEBHOOK_CALLS, calls.to_string().as_bytes())?;
        let body: Value = request.json()?;
        let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_string);
        Ok(vec![Event {
            id: text("id").unwrap_or_else(|| format!("webhook-{calls}")),
            event_type: text("type").unwrap_or_else(|| "com.example.echo.webhook".into()),
            source: format!("echo/{}", ctx.connection),
            subject: text("subject"),
            time: text("time").unwrap_or_else(|| "1970-01-01T00:00:00Z".into()),
            data: body.to_string(),
        }])
    }
}

/// The key-value key counting `handle_webhook` calls, as decimal text.
const WEBHOOK_CALLS: &str = "webhook-calls";

// Named explicitly: `echo-v2` builds this same file as a later `echo`.
junction_sdk::export_connector!(Echo, name = "echo");

fn noop(_: &Context, _: Value) -> Result<Value> {
    Ok(json!({}))
}

fn echo(_: &Context, input: Value) -> Result<Value> {
    Ok(input)
}

fn version(_: &Context, _: Value) -> Result<Value> {
    Ok(json!({ "version": env!("CARGO_PKG_VERSION") }))
}

#[derive(Deserialize, JsonSchema)]
#[schemars(crate = "junction_sdk::schemars")]
struct Key {
    key: String,
}

#[derive(Serialize, JsonSchema)]
#[schemars(crate = "junction_sdk::schemars")]
struct Found {
    value: Option<String>,
}

fn config(ctx: &Context, input: Key) -> Result<Found> {
    Ok(Found {
        value: ctx.config(&input.key),
    })
}

#[derive(Deserialize, JsonSchema)]
#[schemars(crate = "junction_sdk::schemars")]
struct Kv {
    /// Pairs to write first.
    #[serde(default)]
    set: BTreeMap<String, String>,
    /// Key to read back afterwards.
    #[serde(default)]
    get: Option<String>,
}

fn kv(ctx: &Context, input: Kv) -> Result<Found> {
    for (key, value) in &input.set {
        ctx.kv_set(key, value.as_bytes())?;
    }
    let value = match &input.get {
        Some(key) => ctx
            .kv_get(key)?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        None => None,
    };
    Ok(Found { value })
}

#[derive(Deserialize, JsonSchema)]
#[schemars(crate = "junction_sdk::schemars")]
struct Fetch {
    url: String,
    /// GET (default), POST, PUT, PATCH, DELETE or HEAD.
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Request body as text.
    #[serde(default)]
    body: Option<String>,
}

#[derive(Serialize, JsonSchema)]
#[schemars(crate = "junction_sdk::schemars")]
struct Fetched {
    status: u16,
    /// The body as text, invalid UTF-8 replaced.
    body: String,
    /// Header names lower-cased; repeated headers joined with ", ".
    headers: BTreeMap<String, String>,
}

/// Sends the call's idempotency key upstream as `Idempotency-Key` (unless the
/// input names that header itself), the way Stripe-style APIs take it.
fn fetch(ctx: &Context, input: Fetch) -> Result<Fetched> {
    let method = match input
        .method
        .as_deref()
        .unwrap_or("GET")
        .to_ascii_uppercase()
        .as_str()
    {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        "HEAD" => Method::Head,
        other => return Err(Error::InvalidInput(format!("unsupported method `{other}`"))),
    };
    let mut request = Request::new(method, input.url);
    let keyed = input
        .headers
        .keys()
        .any(|name| name.eq_ignore_ascii_case("idempotency-key"));
    if let Some(key) = ctx.idempotency_key.as_ref().filter(|_| !keyed) {
        request = request.header("Idempotency-Key", key.as_str());
    }
    for (name, value) in input.headers {
        request = request.header(name, value);
    }
    if let Some(body) = input.body {
        request = request.body(body);
    }
    let response = request.send()?;
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in &response.headers {
        headers
            .entry(name.to_ascii_lowercase())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(value);
            })
            .or_insert_with(|| value.clone());
    }
    Ok(Fetched {
        status: response.status,
        body: response.text(),
        headers,
    })
}

fn whoami(ctx: &Context, _: Value) -> Result<Context> {
    Ok(ctx.clone())
}

fn env(_: &Context, _: Value) -> Result<Value> {
    let vars: BTreeMap<String, String> = std::env::vars().collect();
    let args: Vec<String> = std::env::args().collect();
    Ok(json!({ "vars": vars, "args": args }))
}
