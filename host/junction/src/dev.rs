//! `junction dev`: watches a plugin crate and, on every change, runs its
//! tests, builds it and hot-swaps the build into a host without a restart,
//! printing each swap and any failing test.
//!
//! The host is the one `--url`/`JUNCTION_URL` names, or a local one this
//! command starts (in memory, on a free loopback port, with a token of its
//! own). Each build is pushed as `<version>-dev.<ms since the epoch>` and
//! activated: a version differs from every earlier build's, so the host
//! keeps each (and `plugin rollback` goes back one build), and calls in
//! flight finish on the build they started with.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use junction_registry::{Manifest, Package};

use super::Remote;
use super::plugin_crate::{Project, build, built_component, crate_manifest, source_files};

/// How often the crate is looked at.
const POLL: Duration = Duration::from_millis(300);

pub(super) async fn dev(
    dir: PathBuf,
    url: Option<String>,
    token: Option<String>,
    once: bool,
) -> anyhow::Result<()> {
    if Project::of(&dir) != Project::Crate {
        // Each swap is a new version, which a Rust build takes from the
        // environment; a JavaScript or Python plugin carries its own in its app.
        bail!(
            "junction dev watches Rust plugin crates; for a JavaScript or Python plugin run \
             `junction plugin build && junction plugin pack` and `junction plugin push PACKAGE --activate`"
        );
    }
    let (remote, _local) = match url {
        Some(url) => {
            let token = token.context("a host's URL needs its token: --token or JUNCTION_TOKEN")?;
            (Remote { url, token }, None)
        }
        None => {
            let (remote, host) = local_host().await?;
            (remote, Some(host))
        }
    };
    let mut seen = None;
    loop {
        let now = fingerprint(&dir)?;
        if seen.as_ref() != Some(&now) {
            seen = Some(now);
            let swapped = swap(&dir, &remote).await;
            match &swapped {
                Ok(line) => println!("{line}"),
                Err(e) => eprintln!("not swapped: {e:#}"),
            }
            if once {
                return swapped.map(drop);
            }
            println!("watching {} for changes (Ctrl-C stops)", dir.display());
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// What a change of the crate changes: each source file's path, size and
/// modification time (`src/`, `Cargo.toml`, `plugin.toml`).
fn fingerprint(dir: &Path) -> anyhow::Result<Vec<(PathBuf, u64, SystemTime)>> {
    source_files(dir, &["Cargo.toml", "plugin.toml"])?
        .into_iter()
        .map(|(path, meta)| Ok((path, meta.len(), meta.modified()?)))
        .collect()
}

/// Tests, builds, packs and pushes the crate once; the line to print.
async fn swap(dir: &Path, remote: &Remote) -> anyhow::Result<String> {
    let began = Instant::now();
    let tests = run_tests(dir)?;
    let (text, manifest) = crate_manifest(dir)?;
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let base = &manifest.plugin.version;
    let version = format!("{}.{}.{}-dev.{ms}", base.major, base.minor, base.patch);
    let text = with_version(&text, &version)?;
    build(dir, Some(&version))?;
    let wasm = built_component(dir)?;
    let bytes = std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let package = Package::new(text, bytes);
    let uploaded = remote
        .send(
            reqwest::Method::POST,
            "/v1/plugins",
            Some(package.to_bytes()),
        )
        .await?;
    let name = &manifest.plugin.name;
    if uploaded["active"] != true {
        let path = format!("/v1/plugins/{name}/versions/{version}/activate");
        remote.send(reqwest::Method::POST, &path, None).await?;
    }
    Ok(format!(
        "swapped {name}@{version} (component {}) into {} in {} ms; {tests}",
        uploaded["digest"].as_str().unwrap_or("?"),
        remote.url,
        began.elapsed().as_millis()
    ))
}

/// `plugin.toml` with `plugin.version` set to `version` (checked by parsing it again).
fn with_version(text: &str, version: &str) -> anyhow::Result<String> {
    let mut in_plugin = false;
    let mut done = false;
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_plugin = trimmed.starts_with("[plugin]");
        }
        let key = trimmed.split('=').next().unwrap_or_default().trim();
        if in_plugin && !done && key == "version" {
            out.push_str(&format!("version = \"{version}\""));
            done = true;
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    let parsed = Manifest::parse(&out).context("plugin.toml with the dev version")?;
    if !done || parsed.plugin.version.to_string() != version {
        bail!("plugin.toml has no `version = \"...\"` line under [plugin] to set");
    }
    Ok(out)
}

/// Runs the crate's own tests natively: `tests ok`, or which failed.
fn run_tests(dir: &Path) -> anyhow::Result<String> {
    let output =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(dir)
            .arg("test")
            .output()
            .context("running cargo test")?;
    if output.status.success() {
        return Ok("tests ok".into());
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let failed: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("test ")?.strip_suffix(" ... FAILED"))
        .collect();
    if failed.is_empty() {
        // It did not get as far as the tests: the compiler's errors say why.
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        return Ok("the tests did not build (see above)".into());
    }
    eprintln!("{stdout}");
    Ok(format!("FAILING TESTS: {}", failed.join(", ")))
}

/// A host in memory on a free loopback port, with a token of its own; it
/// stops when the returned task is dropped with the process.
async fn local_host() -> anyhow::Result<(Remote, tokio::task::JoinHandle<()>)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let token = format!("dev-{}", uuid::Uuid::new_v4().simple());
    let mut config = junction::config::Config::default();
    config.store.database = None;
    config.api.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    config.api.tokens = std::collections::BTreeMap::from([(
        "dev".to_string(),
        junction::config::Token {
            token: token.clone(),
            scope: junction::config::Scope::Admin,
        },
    )]);
    let host = tokio::spawn(async move {
        if let Err(e) = junction::serve::run(&config, None, std::future::pending()).await {
            eprintln!("error: the local host stopped: {e:#}");
        }
    });
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(format!("{url}/healthz")).send().await.is_err() {
        if Instant::now() > deadline || host.is_finished() {
            bail!("the local host did not start on {url}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("local host at {url}: JUNCTION_URL={url} JUNCTION_TOKEN={token}");
    Ok((Remote { url, token }, host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_version_replaces_the_plugin_version_only() {
        let text = "[plugin]\nname = \"acme\"\nversion = \"0.2.1\"\nworld = \"transform\"\nwit = \"junction:plugin@0.1.0\"\ndescription = \"x\"\noperations = []\n\n[capabilities]\n";
        let out = with_version(text, "0.2.1-dev.42").unwrap();
        assert!(out.contains("version = \"0.2.1-dev.42\""), "{out}");
        assert!(out.contains("wit = \"junction:plugin@0.1.0\""));
        assert!(with_version("[plugin]\nname = \"a\"\n", "0.1.0-dev.1").is_err());
    }
}
