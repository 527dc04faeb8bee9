//! The commands over a host's connections and runs: `connection put|list|
//! show|check`, `invoke`, `read`, `governance deploy|show`, `xref`, and waiting for a run (`run show --wait`,
//! `flow run --wait`).

use std::io::Read as _;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use super::cli::spinner;
use super::{ConnectionCommand, GovernanceCommand, Remote};

/// The statuses a run ends in.
const ENDED: [&str; 3] = ["completed", "compensated", "failed"];

pub(super) async fn connection(command: ConnectionCommand) -> anyhow::Result<()> {
    match command {
        ConnectionCommand::Put {
            name,
            file,
            json,
            remote,
        } => {
            let text = match (file, json) {
                (Some(path), None) if path.as_os_str() == "-" => {
                    let mut text = String::new();
                    std::io::stdin()
                        .read_to_string(&mut text)
                        .context("reading the connection from stdin")?;
                    text
                }
                (Some(path), None) => std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
                (None, Some(json)) => json,
                _ => anyhow::bail!(
                    "give the connection's JSON document with --file PATH (or - for stdin) or --json '{{...}}'"
                ),
            };
            let body: Value =
                serde_json::from_str(&text).context("the connection document is not JSON")?;
            let put = remote
                .send(
                    reqwest::Method::PUT,
                    &format!("/v1/connections/{name}"),
                    Some(body.to_string().into_bytes()),
                )
                .await?;
            println!(
                "connection {name}: plugin {}, version {}",
                put["plugin"].as_str().unwrap_or("?"),
                put["version"].as_str().unwrap_or("the active one")
            );
            Ok(())
        }
        ConnectionCommand::List { remote } => {
            let list = remote
                .send(reqwest::Method::GET, "/v1/connections", None)
                .await?;
            for c in list["connections"].as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{}",
                    c["name"].as_str().unwrap_or("?"),
                    c["plugin"].as_str().unwrap_or("?"),
                    c["auth"]["type"].as_str().unwrap_or("no auth")
                );
            }
            Ok(())
        }
        ConnectionCommand::Show { name, remote } => {
            let shown = remote
                .send(
                    reqwest::Method::GET,
                    &format!("/v1/connections/{name}"),
                    None,
                )
                .await?;
            println!("{}", serde_json::to_string_pretty(&shown)?);
            Ok(())
        }
        ConnectionCommand::Check { name, remote } => {
            let checked = remote
                .send(
                    reqwest::Method::POST,
                    &format!("/v1/connections/{name}/check"),
                    None,
                )
                .await?;
            // A failed check is an error answer, which `send` reports.
            println!(
                "connection {name}: {} (plugin {}@{})",
                checked["status"].as_str().unwrap_or("?"),
                checked["plugin"].as_str().unwrap_or("?"),
                checked["version"].as_str().unwrap_or("?")
            );
            Ok(())
        }
    }
}

pub(super) async fn invoke(
    remote: &Remote,
    connection: &str,
    operation: &str,
    input: &str,
) -> anyhow::Result<()> {
    let input: Value = serde_json::from_str(input).context("--input is not JSON")?;
    let output = remote
        .send(
            reqwest::Method::POST,
            &format!("/v1/connections/{connection}/operations/{operation}"),
            Some(input.to_string().into_bytes()),
        )
        .await?;
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(())
}

/// Reads `stream` of a connection from `cursor`: each record as a JSON line
/// on stdout, then the cursor to go on from on stderr; with `all`, page after
/// page until the stream is done.
pub(super) async fn read(
    remote: &Remote,
    connection: &str,
    stream: &str,
    mut cursor: Option<String>,
    all: bool,
) -> anyhow::Result<()> {
    let progress = spinner(&format!("reading {stream} of {connection}"));
    let mut count = 0usize;
    loop {
        let mut path = format!("/v1/connections/{connection}/streams/{stream}");
        if let Some(cursor) = &cursor {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("cursor", cursor)
                .finish();
            path = format!("{path}?{query}");
        }
        let page = remote.send(reqwest::Method::GET, &path, None).await?;
        for record in page["records"].as_array().into_iter().flatten() {
            progress.suspend(|| println!("{record}"));
            count += 1;
        }
        cursor = page["next_cursor"].as_str().map(str::to_string);
        progress.set_message(format!("reading {stream} of {connection}: {count} records"));
        if !all || page["done"] == true || cursor.is_none() {
            progress.finish_and_clear();
            match (&cursor, page["done"] == true) {
                (_, true) | (None, _) => eprintln!("{count} records; the stream is done"),
                (Some(c), false) => {
                    eprintln!("{count} records; read on with --cursor '{c}' (or --all)");
                }
            }
            return Ok(());
        }
    }
}

/// Polls run `id` until it ends or waits for a signal, showing its
/// progress (steps done of all, the step it is on); returns the run.
pub(super) async fn wait_for_run(remote: &Remote, id: &str) -> anyhow::Result<Value> {
    let progress = spinner(&format!("run {id}"));
    loop {
        let run = remote
            .send(reqwest::Method::GET, &format!("/v1/runs/{id}"), None)
            .await?;
        let status = run["status"].as_str().unwrap_or("?");
        let steps = run["steps"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let done = steps
            .iter()
            .filter(|s| matches!(s["status"].as_str(), Some("completed" | "skipped")))
            .count();
        let at: Vec<&str> = steps
            .iter()
            .filter(|s| matches!(s["status"].as_str(), Some("running" | "waiting")))
            .filter_map(|s| s["id"].as_str())
            .collect();
        progress.set_message(format!(
            "run {id}: {status}, {done} of {} steps done{}",
            steps.len(),
            if at.is_empty() {
                String::new()
            } else {
                format!(", at {}", at.join(", "))
            }
        ));
        if ENDED.contains(&status) || !run["waiting_for"].is_null() {
            progress.finish_and_clear();
            if let Some(signal) = run["waiting_for"]["signal"].as_str() {
                eprintln!(
                    "run {id} waits for signal `{signal}`: junction run signal {id} {signal} --decision approve"
                );
            }
            return Ok(run);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub(super) async fn governance(command: GovernanceCommand) -> anyhow::Result<()> {
    match command {
        GovernanceCommand::Deploy { file, remote } => {
            let source =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let deployed = remote
                .send(reqwest::Method::PUT, "/v1/governance", Some(source))
                .await?;
            let unchanged = if deployed["changed"] == true {
                ""
            } else {
                " (unchanged)"
            };
            println!("governance: version {}{unchanged}", deployed["version"]);
            let conflicts = deployed["conflicts"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if !conflicts.is_empty() {
                eprintln!(
                    "{} step(s) of deployed flows write fields this version gives another owner; each is dead-lettered before its call until the flow or the document changes:",
                    conflicts.len()
                );
                for c in conflicts {
                    eprintln!(
                        "  {} v{}: {}",
                        c["flow"].as_str().unwrap_or("?"),
                        c["flow_version"],
                        c["message"].as_str().unwrap_or("?")
                    );
                }
            }
            Ok(())
        }
        GovernanceCommand::Show { remote } => {
            let shown = remote
                .send(reqwest::Method::GET, "/v1/governance", None)
                .await?;
            println!(
                "# version {}, deployed {} by {}",
                shown["version"],
                shown["deployed_at"].as_str().unwrap_or("?"),
                shown["deployed_by"].as_str().unwrap_or("?")
            );
            print!("{}", shown["source"].as_str().unwrap_or_default());
            Ok(())
        }
    }
}

pub(super) async fn xref(
    remote: &Remote,
    entity: &str,
    key: Option<String>,
    by_id: Option<(String, String)>,
) -> anyhow::Result<()> {
    let encode = |s: &str| {
        url::form_urlencoded::byte_serialize(s.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    let path = match (key, by_id) {
        (Some(key), _) => format!("/v1/xref/{}/{}", encode(entity), encode(&key)),
        (None, Some((system, id))) => format!(
            "/v1/xref/{}?system={}&id={}",
            encode(entity),
            encode(&system),
            encode(&id)
        ),
        (None, None) => {
            anyhow::bail!("give the entity's canonical key, or `--system S --id ID`")
        }
    };
    let found = remote.send(reqwest::Method::GET, &path, None).await?;
    println!(
        "{} {}",
        found["entity"].as_str().unwrap_or("?"),
        found["key"].as_str().unwrap_or("?")
    );
    for (system, id) in found["ids"].as_object().into_iter().flatten() {
        println!(
            "  {system}\t{}\t{}",
            id["id"].as_str().unwrap_or("?"),
            id["flow"]
                .as_str()
                .unwrap_or(id["by"].as_str().unwrap_or("?"))
        );
    }
    Ok(())
}
