//! `junction plugin ...`: author-side commands (new, build, pack, keygen,
//! sign, inspect) and operator-side commands against a running host (push,
//! list, activate, rollback); `junction flow|run|dead-letter ...` against a
//! running host's flows.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use junction::scaffold;
use junction_registry::{Manifest, Package, SigningKey};
use serde_json::Value;

use super::plugin_crate::{build, built_component, crate_manifest, refuse_stale};
use super::{DeadLetterCommand, FlowCommand, Kind, Lang, PluginCommand, Remote, RunCommand};

pub async fn plugin(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::Inspect { file } => inspect(&file).await,
        PluginCommand::New {
            name,
            kind,
            lang,
            dir,
            sdk_path,
        } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let kind = match kind {
                Kind::Connector => scaffold::Kind::Connector,
                Kind::Transform => scaffold::Kind::Transform,
            };
            let (files, next) = match lang {
                Lang::Rust => (
                    new_crate(kind, &name, &dir, sdk_path)?,
                    "junction plugin build && junction plugin pack",
                ),
                Lang::Js | Lang::Python if sdk_path.is_some() => bail!(
                    "--sdk-path is for Rust crates; a JavaScript or Python plugin gets its SDK \
                     file written beside it"
                ),
                Lang::Js => (
                    scaffold::new_script_plugin(scaffold::Lang::Js, kind, &name, &dir)?,
                    "npm install && npm run build && junction plugin test && junction plugin pack",
                ),
                Lang::Python => (
                    scaffold::new_script_plugin(scaffold::Lang::Python, kind, &name, &dir)?,
                    "./build.sh && junction plugin test && junction plugin pack",
                ),
            };
            for file in files {
                println!("created {}", file.display());
            }
            println!("\nnext: cd {} && {next}", dir.display());
            Ok(())
        }
        PluginCommand::Build { dir } => build(&dir, None),
        PluginCommand::Test {
            dir,
            cases,
            server,
            record,
            wasm,
        } => super::plugin_test::test(dir, cases, server, wasm, record).await,
        PluginCommand::Pack { dir, wasm, out } => pack(&dir, wasm, out).await,
        PluginCommand::Keygen { out } => {
            if out.exists() {
                bail!(
                    "{} already exists; refusing to overwrite a key",
                    out.display()
                );
            }
            let key = SigningKey::generate();
            key.save(&out)
                .with_context(|| format!("writing {}", out.display()))?;
            println!("private key: {} (keep it secret)", out.display());
            println!("key id:      {}", key.key_id());
            println!("public key:  {}", key.public_key());
            println!(
                "\ntrust it on a host with: trusted_keys = [\"{}\"]",
                key.public_key()
            );
            Ok(())
        }
        PluginCommand::Sign { package, key, out } => {
            let key =
                SigningKey::load(&key).with_context(|| format!("reading key {}", key.display()))?;
            let bytes = std::fs::read(&package)
                .with_context(|| format!("reading {}", package.display()))?;
            let signed = Package::from_bytes(&bytes)
                .with_context(|| format!("{} is not a package", package.display()))?
                .sign(&key);
            let out = out.unwrap_or(package);
            std::fs::write(&out, signed.to_bytes())
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "signed {} with key {} (package {})",
                out.display(),
                key.key_id(),
                signed.digest()
            );
            Ok(())
        }
        PluginCommand::Push {
            package,
            activate,
            remote,
        } => {
            let bytes = std::fs::read(&package)
                .with_context(|| format!("reading {}", package.display()))?;
            let spinner = spinner(&format!(
                "uploading {} ({} bytes); the host validates and compiles it",
                package.display(),
                bytes.len()
            ));
            let uploaded = remote
                .send(reqwest::Method::POST, "/v1/plugins", Some(bytes))
                .await;
            spinner.finish_and_clear();
            let uploaded = uploaded?;
            println!(
                "{}@{} uploaded (component {}, signer {}){}",
                uploaded["name"].as_str().unwrap_or("?"),
                uploaded["version"].as_str().unwrap_or("?"),
                uploaded["digest"].as_str().unwrap_or("?"),
                uploaded["signer"].as_str().unwrap_or("none"),
                if uploaded["active"] == true {
                    ", active"
                } else {
                    ""
                }
            );
            if activate && uploaded["active"] != true {
                let name = uploaded["name"].as_str().unwrap_or_default();
                let version = uploaded["version"].as_str().unwrap_or_default();
                let path = format!("/v1/plugins/{name}/versions/{version}/activate");
                remote.send(reqwest::Method::POST, &path, None).await?;
                println!("{name}@{version} is now active");
            }
            Ok(())
        }
        PluginCommand::List { remote } => {
            let list = remote
                .send(reqwest::Method::GET, "/v1/plugins", None)
                .await?;
            println!(
                "{:<28} {:<10} {:<10} {:<8} DIGEST",
                "NAME", "VERSION", "WORLD", "ACTIVE"
            );
            for p in list["plugins"].as_array().into_iter().flatten() {
                println!(
                    "{:<28} {:<10} {:<10} {:<8} {}",
                    p["name"].as_str().unwrap_or("?"),
                    p["version"].as_str().unwrap_or("?"),
                    p["world"].as_str().unwrap_or("?"),
                    if p["active"] == true { "yes" } else { "" },
                    p["digest"].as_str().unwrap_or("?"),
                );
            }
            Ok(())
        }
        PluginCommand::Activate {
            name,
            version,
            remote,
        } => {
            let path = format!("/v1/plugins/{name}/versions/{version}/activate");
            let answer = remote.send(reqwest::Method::POST, &path, None).await?;
            println!(
                "{name}@{} is now active",
                answer["active"].as_str().unwrap_or("?")
            );
            Ok(())
        }
        PluginCommand::Rollback { name, remote } => {
            let answer = remote
                .send(
                    reqwest::Method::POST,
                    &format!("/v1/plugins/{name}/rollback"),
                    None,
                )
                .await?;
            println!(
                "{name} rolled back to {}",
                answer["active"].as_str().unwrap_or("?")
            );
            Ok(())
        }
    }
}

pub(super) fn spinner(message: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

async fn inspect(file: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let (wasm, package) = if bytes.starts_with(b"\0asm") {
        (bytes, None)
    } else {
        let package = Package::from_bytes(&bytes)
            .with_context(|| format!("{} cannot be loaded", file.display()))?;
        (package.wasm().to_vec(), Some(package))
    };
    let inspection = junction_registry::inspect(&wasm)
        .with_context(|| format!("{} cannot be loaded", file.display()))?;
    if let Some(package) = &package {
        let manifest =
            Manifest::parse(package.manifest_text()).context("the package manifest is invalid")?;
        println!(
            "plugin:  {}@{}",
            manifest.plugin.name, manifest.plugin.version
        );
        println!("package: {}", package.digest());
        println!(
            "signed:  {}",
            package
                .signature()
                .map(|s| s.key_id.clone())
                .unwrap_or_else(|| "no".into())
        );
    }
    println!("world:   {}", inspection.world);
    println!("digest:  {}", inspection.digest);
    println!("imports: {}", inspection.imports.join(", "));
    println!("exports: {}", inspection.exports.join(", "));
    // What a host checks next: the component compiles and instantiates
    // within the limits, and its `info` agrees with the manifest.
    let runtime = memory_host().await?;
    let plugin = match &package {
        Some(package) => {
            runtime
                .upload_package(&package.to_bytes(), "junction plugin inspect")
                .await
                .map_err(|e| anyhow::anyhow!("a host would refuse this package: {e}"))?;
            runtime.plugins().into_iter().next()
        }
        None => {
            runtime
                .load_plugin(&wasm)
                .await
                .map_err(|e| anyhow::anyhow!("a host would refuse this component: {e}"))?;
            runtime.plugins().into_iter().next()
        }
    }
    .context("the host loaded nothing")?;
    println!(
        "info:    {}@{}: {}",
        plugin.name, plugin.version, plugin.description
    );
    println!(
        "host:    a host takes it ({})",
        if package.is_some() {
            "the manifest agrees with the component's info"
        } else {
            "a bare component: pack it with plugin.toml to upload it"
        }
    );
    Ok(())
}

/// `junction plugin new --lang rust`: a crate using the SDK at `sdk_path`,
/// else the one this binary carries (written to its per-user directory);
/// the files written.
fn new_crate(
    kind: scaffold::Kind,
    name: &str,
    dir: &Path,
    sdk_path: Option<PathBuf>,
) -> anyhow::Result<Vec<PathBuf>> {
    let sdk = match sdk_path {
        Some(path) => scaffold::SdkSource::Path(
            std::fs::canonicalize(&path).with_context(|| format!("finding {}", path.display()))?,
        ),
        None => {
            let root = scaffold::sdk::default_dir().context(
                "no place for the SDK: set JUNCTION_SDK_DIR (or HOME), or pass --sdk-path",
            )?;
            let sdk = scaffold::sdk::install(&root)?;
            println!(
                "junction-sdk {} (carried by this binary) at {}",
                scaffold::sdk::VERSION,
                sdk.display()
            );
            scaffold::SdkSource::Path(sdk)
        }
    };
    Ok(scaffold::new_plugin(kind, name, dir, sdk)?)
}

async fn pack(dir: &Path, wasm: Option<PathBuf>, out: Option<PathBuf>) -> anyhow::Result<()> {
    let (manifest_text, manifest) = crate_manifest(dir)?;
    let wasm = match wasm {
        Some(path) => path,
        None => {
            let built = built_component(dir)?;
            refuse_stale(dir, &built)?;
            built
        }
    };
    let bytes = std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let inspection = junction_registry::inspect(&bytes)
        .with_context(|| format!("{} cannot be packed", wasm.display()))?;
    if inspection.world != manifest.plugin.world {
        bail!(
            "plugin.toml says world `{}` but the component is a {}",
            manifest.plugin.world,
            inspection.world
        );
    }
    let package = Package::new(manifest_text, bytes);
    host_checks(&package).await?;
    let out = out.unwrap_or_else(|| {
        PathBuf::from(format!(
            "{}-{}.jpkg",
            manifest.plugin.name, manifest.plugin.version
        ))
    });
    std::fs::write(&out, package.to_bytes())
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "packed {} ({}, {})",
        out.display(),
        inspection.world,
        package.digest()
    );
    Ok(())
}

/// The checks a host makes of an upload (world, imports, the manifest
/// against what the component's `info` reports, limits), made on a host
/// in memory.
async fn host_checks(package: &Package) -> anyhow::Result<()> {
    memory_host()
        .await?
        .upload_package(&package.to_bytes(), "junction plugin pack")
        .await
        .map_err(|e| anyhow::anyhow!("a host would refuse this package: {e}"))?;
    Ok(())
}

/// A host's runtime in memory, with the default limits and no cache: what
/// it accepts, a host with the default configuration accepts.
pub(super) async fn memory_host() -> anyhow::Result<std::sync::Arc<junction_runtime::Runtime>> {
    let mut config = junction::config::Config::default();
    config.runtime.cache_dir = None;
    let store = junction_store::Store::in_memory().await?;
    Ok(std::sync::Arc::new(junction_runtime::Runtime::new(
        store,
        &config.runtime,
    )?))
}

impl Remote {
    pub(super) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let mut request = reqwest::Client::new()
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        if let Some(body) = body {
            // A package is a tar, never JSON.
            let kind = if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok() {
                "application/json"
            } else {
                "application/vnd.junction.package"
            };
            request = request.header("content-type", kind).body(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or(text);
            bail!("{method} {path}: {status}: {message}");
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_str(&text)?)
    }
}

/// A query string from optional `key=value` pairs.
fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        if let Some(value) = value {
            q.append_pair(key, value);
        }
    }
    let q = q.finish();
    if q.is_empty() { q } else { format!("?{q}") }
}

fn json_arg(what: &str, text: &str) -> anyhow::Result<Vec<u8>> {
    let value: Value =
        serde_json::from_str(text).with_context(|| format!("{what} is not valid JSON"))?;
    Ok(value.to_string().into_bytes())
}

pub async fn flow(command: FlowCommand) -> anyhow::Result<()> {
    match command {
        FlowCommand::Deploy { file, name, remote } => {
            let name = match name {
                Some(name) => name,
                None => file
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .map(str::to_string)
                    .with_context(|| {
                        format!(
                            "{} has no file name to name the flow after; pass --name",
                            file.display()
                        )
                    })?,
            };
            let source =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let deployed = remote
                .send(
                    reqwest::Method::PUT,
                    &format!("/v1/flows/{name}"),
                    Some(source),
                )
                .await?;
            println!(
                "{name}: version {}{}",
                deployed["version"],
                if deployed["changed"] == true {
                    ""
                } else {
                    " (unchanged)"
                }
            );
            Ok(())
        }
        FlowCommand::List { remote } => {
            let list = remote.send(reqwest::Method::GET, "/v1/flows", None).await?;
            for f in list["flows"].as_array().into_iter().flatten() {
                println!(
                    "{}\tv{}\t{}\t{}",
                    f["name"].as_str().unwrap_or("?"),
                    f["version"],
                    f["trigger"].as_str().unwrap_or("?"),
                    f["description"].as_str().unwrap_or("")
                );
            }
            Ok(())
        }
        FlowCommand::Run {
            name,
            event,
            wait,
            remote,
        } => {
            let body = json_arg("--event", &event)?;
            let started = remote
                .send(
                    reqwest::Method::POST,
                    &format!("/v1/flows/{name}/runs"),
                    Some(body),
                )
                .await?;
            let id = started["run"].as_str().unwrap_or("?");
            println!("{id}");
            if wait {
                let run = super::commands::wait_for_run(&remote, id).await?;
                println!("{}", serde_json::to_string_pretty(&run)?);
            }
            Ok(())
        }
    }
}

pub async fn run(command: RunCommand) -> anyhow::Result<()> {
    match command {
        RunCommand::List {
            flow,
            status,
            remote,
        } => {
            let path = format!(
                "/v1/runs{}",
                query(&[("flow", flow.as_deref()), ("status", status.as_deref())])
            );
            let list = remote.send(reqwest::Method::GET, &path, None).await?;
            for r in list["runs"].as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{}\t{}",
                    r["id"].as_str().unwrap_or("?"),
                    r["flow"].as_str().unwrap_or("?"),
                    r["status"].as_str().unwrap_or("?"),
                    r["created_at"].as_str().unwrap_or("?")
                );
            }
            Ok(())
        }
        RunCommand::Show { id, wait, remote } => {
            let run = if wait {
                super::commands::wait_for_run(&remote, &id).await?
            } else {
                remote
                    .send(reqwest::Method::GET, &format!("/v1/runs/{id}"), None)
                    .await?
            };
            println!("{}", serde_json::to_string_pretty(&run)?);
            Ok(())
        }
        RunCommand::Signal {
            id,
            name,
            decision,
            comment,
            data,
            remote,
        } => {
            let data: Option<Value> = data
                .map(|d| {
                    serde_json::from_str(&d)
                        .map_err(|e| anyhow::anyhow!("--data is not JSON ({e}): {d}"))
                })
                .transpose()?;
            let body = serde_json::json!({"decision": decision, "comment": comment, "data": data});
            let path = format!("/v1/runs/{id}/signals/{name}");
            let sent = remote
                .send(
                    reqwest::Method::POST,
                    &path,
                    Some(body.to_string().into_bytes()),
                )
                .await?;
            println!(
                "{} {} by {} at {}",
                sent["signal"].as_str().unwrap_or("?"),
                sent["decision"].as_str().unwrap_or("?"),
                sent["by"].as_str().unwrap_or("?"),
                sent["at"].as_str().unwrap_or("?")
            );
            Ok(())
        }
    }
}

pub async fn dead_letter(command: DeadLetterCommand) -> anyhow::Result<()> {
    match command {
        DeadLetterCommand::List { flow, remote } => {
            let path = format!("/v1/dead-letters{}", query(&[("flow", flow.as_deref())]));
            let list = remote.send(reqwest::Method::GET, &path, None).await?;
            for d in list["dead_letters"].as_array().into_iter().flatten() {
                let last = d["errors"]
                    .as_array()
                    .and_then(|e| e.last())
                    .and_then(|e| e["message"].as_str())
                    .unwrap_or("");
                println!(
                    "{}\t{}\trun {}\tstep {}\t{} attempts\t{last}",
                    d["id"].as_str().unwrap_or("?"),
                    d["flow"].as_str().unwrap_or("?"),
                    d["run_id"].as_str().unwrap_or("?"),
                    d["step"].as_str().unwrap_or("?"),
                    d["attempts"]
                );
            }
            Ok(())
        }
        DeadLetterCommand::Replay { id, input, remote } => {
            let body = match input {
                Some(text) => {
                    let input: Value = serde_json::from_slice(&json_arg("--input", &text)?)?;
                    Some(
                        serde_json::json!({ "input": input })
                            .to_string()
                            .into_bytes(),
                    )
                }
                None => None,
            };
            let replayed = remote
                .send(
                    reqwest::Method::POST,
                    &format!("/v1/dead-letters/{id}/replay"),
                    body,
                )
                .await?;
            println!("replaying run {}", replayed["run"].as_str().unwrap_or("?"));
            Ok(())
        }
        DeadLetterCommand::Discard { id, remote } => {
            remote
                .send(
                    reqwest::Method::DELETE,
                    &format!("/v1/dead-letters/{id}"),
                    None,
                )
                .await?;
            println!("discarded {id}");
            Ok(())
        }
    }
}
