//! `junction plugin test`: runs a plugin's test cases in-process on the
//! host's engine, through the host's own upload checks, limits and
//! capability filtering, against a recorded cassette or a running system.
//!
//! The cases are TOML (`tests/cases.toml` in the crate): each calls one
//! operation, reads a stream, parses a webhook, runs `check`, or applies a
//! transform, and says what must come back. Expected JSON is a subset: every
//! field it names must be there with that value, other fields may be too.
//!
//! A cassette (`tests/cassettes/NAME.toml`) is the system's answers, replayed
//! by a loopback server whose address the connection's settings receive as
//! `{server}`. A request the cassette does not hold fails the case, naming it.
//! With `--server URL`, `{server}` is that system instead (a stand-in, say)
//! and cassettes are not used; with `--record` too, each case's exchanges
//! with it are written to its cassette (`record`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use anyhow::{Context, bail};
use axum::body::Bytes;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use junction_registry::{Package, World};
use junction_runtime::Runtime;
use junction_runtime::inbound::InboundWebhook;
use junction_runtime::runtime::{CallError, CallOptions, ConnectionSpec};
use junction_store::Auth;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cli::memory_host;

mod record;
use super::plugin_crate::{build, built_component, crate_manifest};

/// The connection every case calls through.
const CONNECTION: &str = "under-test";
/// Pages a read case follows at most.
const MAX_PAGES: usize = 100;

/// A file of cases.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cases {
    /// How the cases' connection is set up (connectors only).
    #[serde(default)]
    connection: ConnectionCase,
    #[serde(default, rename = "case")]
    cases: Vec<Case>,
    /// What `--record` redacts.
    #[serde(default)]
    record: RecordCase,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordCase {
    /// JSON fields whose values a recording replaces, e.g. `["email", "phone"]`.
    #[serde(default)]
    redact: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionCase {
    /// Settings; `{server}` in a value becomes the replaying server's URL.
    #[serde(default)]
    config: BTreeMap<String, String>,
    /// Credentials the host adds to requests, as on a real connection.
    #[serde(default)]
    auth: Option<Auth>,
}

/// One case: what to do, and what must come back.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    /// Calls this operation with `input`.
    operation: Option<String>,
    input: Option<Value>,
    /// Reads this stream from `cursor`, following the pages until `done`.
    read: Option<String>,
    cursor: Option<String>,
    /// Parses this webhook (the host has checked its signature).
    webhook: Option<WebhookCase>,
    /// Runs the connector's `check`.
    #[serde(default)]
    check: bool,
    /// Applies the transform to this record.
    apply: Option<Value>,
    /// The cassette the system's answers come from (`tests/cassettes/NAME.toml`).
    cassette: Option<String>,
    /// The operation's output contains this.
    output: Option<Value>,
    /// The transform's outputs, one expected subset each.
    outputs: Option<Vec<Value>>,
    /// The read returns this many records in all.
    records: Option<usize>,
    /// The first record read contains this.
    first: Option<Value>,
    /// The webhook's events, one expected subset each.
    events: Option<Vec<Value>>,
    /// The call fails with this kind (`invalid_input`, `not_found`, `unavailable`, ...).
    error: Option<String>,
    /// The error's message contains this.
    error_contains: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookCase {
    #[serde(default = "post")]
    method: String,
    #[serde(default = "root")]
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: String,
}

fn post() -> String {
    "POST".into()
}

fn root() -> String {
    "/".into()
}

/// A cassette: the answers of the system, in the order they are expected.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Cassette {
    #[serde(default, rename = "interaction")]
    interactions: Vec<Interaction>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Interaction {
    method: String,
    /// The path, without the query.
    path: String,
    /// The query, when it must match too (exactly, without `?`).
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<String>,
    #[serde(default = "ok")]
    status: u16,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<String, String>,
    /// The body as JSON (sent as `application/json` unless headers say otherwise)...
    #[serde(skip_serializing_if = "Option::is_none")]
    json: Option<Value>,
    /// ...or as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
}

fn ok() -> u16 {
    200
}

/// What the replaying server holds for the case that runs.
#[derive(Debug, Default)]
struct Replay {
    interactions: Vec<(Interaction, bool)>,
    unexpected: Vec<String>,
}

type Shared = Arc<Mutex<Replay>>;

fn lock(replay: &Shared) -> std::sync::MutexGuard<'_, Replay> {
    replay.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `junction plugin test`.
pub(super) async fn test(
    dir: PathBuf,
    cases: Option<PathBuf>,
    server: Option<String>,
    wasm: Option<PathBuf>,
    record: bool,
) -> anyhow::Result<()> {
    let cases_path = cases.unwrap_or_else(|| dir.join("tests/cases.toml"));
    let text = std::fs::read_to_string(&cases_path).with_context(|| {
        format!(
            "reading {} (write the cases there, or name the file with --cases)",
            cases_path.display()
        )
    })?;
    let file: Cases =
        toml::from_str(&text).with_context(|| format!("{} is invalid", cases_path.display()))?;
    if file.cases.is_empty() {
        bail!("{} has no [[case]]", cases_path.display());
    }
    for case in &file.cases {
        case.validate()
            .with_context(|| format!("case `{}` in {}", case.name, cases_path.display()))?;
    }
    let cassettes = cases_path
        .parent()
        .unwrap_or(Path::new("."))
        .join("cassettes");

    let replay: Shared = Arc::default();
    let recording = record::recording(file.connection.auth.as_ref(), &file.record.redact);
    let (base, replaying, recorder) = match (server.as_deref(), record) {
        (None, true) => bail!(
            "--record needs --server URL: the system (a sandbox account, a stand-in) whose answers go into the cassettes"
        ),
        (Some(url), true) => {
            let named = file
                .cases
                .iter()
                .filter_map(|c| Some((c.name.as_str(), c.cassette.as_deref()?)));
            record::check_names(named)?;
            let (proxy, task) = record::proxy(url, recording.clone()).await?;
            (proxy, None, Some(task))
        }
        (Some(url), false) => (url.trim_end_matches('/').to_string(), None, None),
        (None, false) => {
            let (url, task) = replay_server(replay.clone()).await?;
            (url, Some(task), None)
        }
    };
    let (runtime, plugin, world) = test_host(&dir, wasm, &base).await?;
    if world == World::Connector {
        connect(&runtime, &plugin, &file.connection, &base).await?;
    }

    let (mut passed, mut failed) = (0, Vec::new());
    for case in &file.cases {
        let began = Instant::now();
        let outcome = async {
            if replaying.is_some() {
                let cassette = match &case.cassette {
                    Some(name) => load_cassette(&cassettes, name)?,
                    None => Cassette::default(),
                };
                *lock(&replay) = Replay {
                    interactions: cassette
                        .interactions
                        .into_iter()
                        .map(|i| (i, false))
                        .collect(),
                    unexpected: Vec::new(),
                };
            }
            record::start(&recording);
            let result = case.run(&runtime, &plugin).await;
            if let (Ok(()), Some(_), Some(name)) = (&result, &recorder, &case.cassette) {
                let count = record::save(&recording, &cassettes, name)?;
                println!(
                    "      recorded {count} exchange(s) into {}",
                    cassettes.join(format!("{name}.toml")).display()
                );
            }
            let unexpected = std::mem::take(&mut lock(&replay).unexpected);
            if !unexpected.is_empty() {
                bail!(
                    "the cassette holds no answer for {}{}",
                    unexpected.join(", "),
                    result
                        .err()
                        .map_or(String::new(), |e| format!(" (then: {e:#})"))
                );
            }
            result
        }
        .await;
        let ms = began.elapsed().as_millis();
        match outcome {
            Ok(()) => {
                passed += 1;
                println!("ok    {} ({ms} ms)", case.name);
            }
            Err(e) => {
                println!("FAIL  {} ({ms} ms): {e:#}", case.name);
                failed.push(case.name.clone());
            }
        }
    }
    println!("{passed} passed, {} failed", failed.len());
    if !failed.is_empty() {
        bail!("failing cases: {}", failed.join(", "));
    }
    Ok(())
}

/// A host in memory with the plugin uploaded through the host's checks: its
/// runtime, and the plugin's name and world. A connector's manifest gains
/// the server among its outbound hosts, which is all that changes.
async fn test_host(
    dir: &Path,
    wasm: Option<PathBuf>,
    base: &str,
) -> anyhow::Result<(Arc<Runtime>, String, World)> {
    let (text, manifest) = crate_manifest(dir)?;
    let (name, world) = (manifest.plugin.name, manifest.plugin.world);
    let text = match world {
        World::Connector => with_outbound_host(&text, &host_of(base)?)?,
        World::Transform => text,
    };
    let wasm = match wasm {
        Some(path) => path,
        None => {
            build(dir, None)?;
            built_component(dir)?
        }
    };
    let bytes = std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let runtime = memory_host().await?;
    runtime
        .upload_package(
            &Package::new(text, bytes).to_bytes(),
            "junction plugin test",
        )
        .await
        .map_err(|e| anyhow::anyhow!("a host would refuse this plugin: {e}"))?;
    Ok((runtime, name, world))
}

/// `host:port` of a URL.
fn host_of(url: &str) -> anyhow::Result<String> {
    let parsed = url::Url::parse(url).with_context(|| format!("`{url}` is not a URL"))?;
    let host = parsed
        .host_str()
        .with_context(|| format!("`{url}` names no host"))?;
    Ok(match parsed.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    })
}

/// `plugin.toml` with `host` added to `capabilities.outbound_hosts`.
fn with_outbound_host(text: &str, host: &str) -> anyhow::Result<String> {
    let mut table: toml::Table = toml::from_str(text).context("plugin.toml is not TOML")?;
    let capabilities = table
        .entry("capabilities")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .context("plugin.toml: `capabilities` is not a table")?;
    let hosts = capabilities
        .entry("outbound_hosts")
        .or_insert_with(|| toml::Value::Array(Vec::new()))
        .as_array_mut()
        .context("plugin.toml: `capabilities.outbound_hosts` is not a list")?;
    hosts.push(toml::Value::String(host.to_string()));
    Ok(toml::to_string(&table)?)
}

/// The cases' connection: their settings with `{server}` filled in, allowed
/// to reach the server (and it alone receives the credentials).
async fn connect(
    runtime: &Runtime,
    plugin: &str,
    case: &ConnectionCase,
    base: &str,
) -> anyhow::Result<()> {
    let host = host_of(base)?;
    let spec = ConnectionSpec {
        plugin: plugin.to_string(),
        config: case
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.replace("{server}", base)))
            .collect(),
        auth: case.auth.clone(),
        allowed_hosts: vec![host.clone()],
        private_hosts: vec![host.clone()],
        credential_hosts: vec![host],
        ..ConnectionSpec::default()
    };
    runtime
        .put_connection(CONNECTION, spec)
        .await
        .context("the [connection] of the cases")?;
    Ok(())
}

fn load_cassette(dir: &Path, name: &str) -> anyhow::Result<Cassette> {
    let path = dir.join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading cassette {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("cassette {} is invalid", path.display()))
}

/// A loopback server answering from the cassette of the case that runs.
async fn replay_server(replay: Shared) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let base = url.clone();
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, _body: Bytes| {
        let (replay, base) = (replay.clone(), base.clone());
        async move { answer(&replay, &base, &method, &uri) }
    });
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("error: the replaying server stopped: {e}");
        }
    });
    Ok((url, task))
}

/// The first unused interaction that matches the request, `{server}` in
/// it replaced by `base`; a 501 naming the request when there is none.
fn answer(replay: &Shared, base: &str, method: &Method, uri: &Uri) -> Response {
    let mut replay = lock(replay);
    let query = uri.query().unwrap_or_default();
    let found = replay.interactions.iter_mut().find(|(i, used)| {
        !*used
            && i.method.eq_ignore_ascii_case(method.as_str())
            && i.path == uri.path()
            && i.query.as_deref().is_none_or(|q| q == query)
    });
    let Some((interaction, used)) = found else {
        replay.unexpected.push(format!("{method} {uri}"));
        return (
            StatusCode::NOT_IMPLEMENTED,
            format!("the cassette holds no answer for {method} {uri}"),
        )
            .into_response();
    };
    *used = true;
    let status = StatusCode::from_u16(interaction.status).unwrap_or(StatusCode::OK);
    let mut builder = Response::builder().status(status);
    for (name, value) in &interaction.headers {
        builder = builder.header(name, value.replace("{server}", base));
    }
    let body = match (&interaction.json, &interaction.body) {
        (Some(json), _) => {
            if !interaction
                .headers
                .keys()
                .any(|k| k.eq_ignore_ascii_case("content-type"))
            {
                builder = builder.header("content-type", "application/json");
            }
            json.to_string()
        }
        (None, Some(body)) => body.clone(),
        (None, None) => String::new(),
    };
    builder
        .body(body.replace("{server}", base).into())
        .unwrap_or_else(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response())
}

impl Case {
    /// Exactly one thing to do, and expectations that fit it.
    fn validate(&self) -> anyhow::Result<()> {
        let actions = [
            self.operation.is_some(),
            self.read.is_some(),
            self.webhook.is_some(),
            self.check,
            self.apply.is_some(),
        ];
        if actions.iter().filter(|a| **a).count() != 1 {
            bail!("give exactly one of `operation`, `read`, `webhook`, `check = true` or `apply`");
        }
        let misplaced = |set: bool, field: &str, fits: bool, with: &str| {
            if set && !fits {
                bail!("`{field}` goes with `{with}`");
            }
            Ok(())
        };
        misplaced(
            self.input.is_some(),
            "input",
            self.operation.is_some(),
            "operation",
        )?;
        misplaced(
            self.output.is_some(),
            "output",
            self.operation.is_some(),
            "operation",
        )?;
        misplaced(
            self.outputs.is_some(),
            "outputs",
            self.apply.is_some(),
            "apply",
        )?;
        misplaced(self.cursor.is_some(), "cursor", self.read.is_some(), "read")?;
        misplaced(
            self.records.is_some(),
            "records",
            self.read.is_some(),
            "read",
        )?;
        misplaced(self.first.is_some(), "first", self.read.is_some(), "read")?;
        misplaced(
            self.events.is_some(),
            "events",
            self.webhook.is_some(),
            "webhook",
        )?;
        if self.error.is_some() || self.error_contains.is_some() {
            let expects_success = self.output.is_some()
                || self.outputs.is_some()
                || self.records.is_some()
                || self.first.is_some()
                || self.events.is_some();
            if expects_success {
                bail!("a case expects an error or an answer, not both");
            }
        }
        Ok(())
    }

    async fn run(&self, runtime: &Runtime, plugin: &str) -> anyhow::Result<()> {
        let result = self.call(runtime, plugin).await;
        match (&self.error, &self.error_contains, result) {
            (None, None, Ok(answer)) => self.expect(&answer),
            (None, None, Err(e)) => bail!("failed ({}): {e}", e.outcome()),
            (_, _, Ok(answer)) => bail!("expected an error, got {answer}"),
            (kind, contains, Err(e)) => {
                if let Some(kind) = kind
                    && kind.replace('-', "_") != e.outcome()
                {
                    bail!("expected error `{kind}`, got `{}`: {e}", e.outcome());
                }
                if let Some(text) = contains
                    && !e.to_string().contains(text.as_str())
                {
                    bail!("the error does not contain `{text}`: {e}");
                }
                Ok(())
            }
        }
    }

    /// Does what the case says; the answer as JSON.
    async fn call(&self, runtime: &Runtime, plugin: &str) -> Result<Value, CallError> {
        if let Some(operation) = &self.operation {
            let input = self
                .input
                .clone()
                .unwrap_or_else(|| Value::Object(Default::default()));
            let output = runtime
                .invoke(
                    CONNECTION,
                    operation,
                    &input.to_string(),
                    CallOptions::default(),
                )
                .await?;
            return parse(&output.json);
        }
        if let Some(stream) = &self.read {
            let mut cursor = self.cursor.clone();
            let mut records = Vec::new();
            for _ in 0..MAX_PAGES {
                let page = runtime
                    .read(
                        CONNECTION,
                        stream,
                        cursor.as_deref(),
                        CallOptions::default(),
                    )
                    .await?;
                for record in &page.records {
                    records.push(parse(record)?);
                }
                if page.done || page.next_cursor.is_none() {
                    return Ok(Value::Array(records));
                }
                cursor = page.next_cursor;
            }
            return Err(CallError::BadOutput(format!(
                "stream `{stream}` was not done after {MAX_PAGES} pages"
            )));
        }
        if let Some(hook) = &self.webhook {
            let headers: Vec<(String, String)> = hook
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let request = InboundWebhook {
                method: &hook.method,
                url: &hook.path,
                path: &hook.path,
                headers: &headers,
                body: hook.body.as_bytes(),
            };
            let (events, _) = runtime
                .parse_webhook_unverified(CONNECTION, request)
                .await?;
            return serde_json::to_value(events).map_err(|e| CallError::BadOutput(e.to_string()));
        }
        if let Some(record) = &self.apply {
            let (outputs, _) = runtime.apply(plugin, &record.to_string()).await?;
            return outputs.iter().map(|o| parse(o)).collect();
        }
        runtime.check(CONNECTION).await?;
        Ok(Value::Null)
    }

    fn expect(&self, answer: &Value) -> anyhow::Result<()> {
        if let Some(expected) = &self.output {
            contains(expected, answer, "output")?;
        }
        for (expected, name) in [(&self.outputs, "outputs"), (&self.events, "events")] {
            if let Some(expected) = expected {
                contains(&Value::Array(expected.clone()), answer, name)?;
            }
        }
        let records = answer.as_array().map_or(0, Vec::len);
        if let Some(count) = self.records
            && count != records
        {
            bail!("expected {count} records, read {records}");
        }
        if let Some(first) = &self.first {
            let got = answer.get(0).context("the stream returned no record")?;
            contains(first, got, "first record")?;
        }
        Ok(())
    }
}

fn parse(json: &str) -> Result<Value, CallError> {
    serde_json::from_str(json).map_err(|e| CallError::BadOutput(e.to_string()))
}

/// `actual` has every field of `expected` with its value (lists: the same
/// length, each item containing its expected one); the first difference, by path.
fn contains(expected: &Value, actual: &Value, path: &str) -> anyhow::Result<()> {
    match (expected, actual) {
        (Value::Object(want), Value::Object(got)) => {
            for (key, value) in want {
                let at = format!("{path}.{key}");
                let got = got.get(key).with_context(|| format!("{at} is missing"))?;
                contains(value, got, &at)?;
            }
            Ok(())
        }
        (Value::Array(want), Value::Array(got)) => {
            if want.len() != got.len() {
                bail!("{path} has {} items, expected {}", got.len(), want.len());
            }
            for (n, (w, g)) in want.iter().zip(got).enumerate() {
                contains(w, g, &format!("{path}[{n}]"))?;
            }
            Ok(())
        }
        (want, got) if want == got => Ok(()),
        (want, got) => bail!("{path} is {got}, expected {want}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expected_json_is_a_subset_and_the_difference_is_named() {
        let got = json!({"deal": {"id": "1", "amount": 5, "tags": ["a", "b"]}, "extra": true});
        contains(&json!({"deal": {"amount": 5}}), &got, "output").unwrap();
        let e = contains(&json!({"deal": {"amount": 6}}), &got, "output").unwrap_err();
        assert_eq!(e.to_string(), "output.deal.amount is 5, expected 6");
        let e = contains(&json!({"deal": {"tags": ["a"]}}), &got, "output").unwrap_err();
        assert_eq!(e.to_string(), "output.deal.tags has 2 items, expected 1");
        let e = contains(&json!({"currency": "EUR"}), &got, "output").unwrap_err();
        assert_eq!(e.to_string(), "output.currency is missing");
    }

    #[test]
    fn a_case_does_one_thing_with_expectations_that_fit() {
        let case = |text: &str| -> anyhow::Result<()> {
            let cases: Cases = toml::from_str(text)?;
            cases.cases[0].validate()
        };
        case("[[case]]\nname = \"a\"\noperation = \"ping\"\noutput = {}\n").unwrap();
        let e = case("[[case]]\nname = \"a\"\noperation = \"ping\"\nread = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("exactly one"), "{e}");
        let e = case("[[case]]\nname = \"a\"\nread = \"x\"\noutput = {}\n").unwrap_err();
        assert_eq!(e.to_string(), "`output` goes with `operation`");
        let e = case("[[case]]\nname = \"a\"\ncheck = true\nerrors = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `errors`"), "{e}");
    }

    #[test]
    fn the_server_is_added_to_the_outbound_hosts() {
        let text =
            "[plugin]\nname = \"a\"\n\n[capabilities]\noutbound_hosts = [\"*.hubapi.com\"]\n";
        let out = with_outbound_host(text, "127.0.0.1:4000").unwrap();
        let table: toml::Table = toml::from_str(&out).unwrap();
        assert_eq!(
            table["capabilities"]["outbound_hosts"],
            toml::Value::Array(vec!["*.hubapi.com".into(), "127.0.0.1:4000".into()])
        );
        assert_eq!(host_of("http://127.0.0.1:4000").unwrap(), "127.0.0.1:4000");
        assert_eq!(
            host_of("https://api.example.com/x").unwrap(),
            "api.example.com:443"
        );
    }
}
