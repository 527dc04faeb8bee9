//! The CLI against a running host: `connection put|list|show|check`,
//! `invoke`, `flow run --wait`, `run show --wait`, `completions`,
//! `governance deploy|show`, `xref`, and a bad argument that says the fix.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::process::{Command, Output};

use junction_standins::JiraStandin;
use serde_json::{Value, json};

const TOKEN: &str = "cli-admin-token-0123456789";

mod support;

/// `junction <args>` against the host at `url`.
fn junction(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_junction"))
        .args(args)
        .env("JUNCTION_URL", url)
        .env("JUNCTION_TOKEN", TOKEN)
        .output()
        .expect("running junction")
}

fn ok(url: &str, args: &[&str]) -> String {
    let out = junction(url, args);
    assert!(
        out.status.success(),
        "junction {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_cli_puts_lists_shows_checks_invokes_and_waits_for_runs() {
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let jira = tokio
        .block_on(JiraStandin::start("ops@acme.example", "jira-api-token"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins.d");
    std::fs::create_dir(&plugins).unwrap();
    let package = &junction::shipped::packages()[0];
    std::fs::write(plugins.join("jira.jpkg"), package.to_bytes()).unwrap();
    let config = dir.path().join("junction.toml");
    std::fs::write(
        &config,
        format!(
            "database = {:?}\ncache_dir = {:?}\nplugin_dir = {:?}\n[tokens.ops]\ntoken = \"{TOKEN}\"\nscope = \"admin\"\n",
            dir.path().join("j.db"),
            dir.path().join("cache"),
            plugins
        ),
    )
    .unwrap();
    let client = reqwest::blocking::Client::new();
    // Until the plugin directory is loaded.
    let (_server, url) = support::serve(&config, "the host did not load jira", |url| {
        client
            .get(format!("{url}/v1/plugins"))
            .bearer_auth(TOKEN)
            .send()
            .ok()
            .and_then(|r| r.json::<Value>().ok())
            .is_some_and(|v| v["plugins"].as_array().is_some_and(|p| !p.is_empty()))
    });

    let document = json!({
        "plugin": "jira",
        "config": {"base_url": jira.base_url()},
        "auth": {"type": "basic", "username": "ops@acme.example", "password": "jira-api-token"},
        "allowed_hosts": [jira.host()],
        "private_hosts": [jira.host()],
    });
    let put = ok(
        &url,
        &["connection", "put", "jira", "--json", &document.to_string()],
    );
    assert!(put.contains("connection jira: plugin jira"), "{put}");
    let list = ok(&url, &["connection", "list"]);
    assert!(list.contains("jira\tjira\tbasic"), "{list}");
    let shown: Value = serde_json::from_str(&ok(&url, &["connection", "show", "jira"])).unwrap();
    assert_eq!(shown["auth"]["type"], "basic");
    assert!(!shown.to_string().contains("jira-api-token"), "{shown}");
    let checked = ok(&url, &["connection", "check", "jira"]);
    assert!(checked.starts_with("connection jira: "), "{checked}");

    let created: Value = serde_json::from_str(&ok(
        &url,
        &[
            "invoke",
            "jira",
            "create-project",
            "--input",
            r#"{"key": "CLI", "name": "CLI rollout"}"#,
        ],
    ))
    .unwrap();
    assert_eq!(created["key"], "CLI", "{created}");
    assert_eq!(jira.projects().len(), 1);

    let flow = dir.path().join("kickoff.toml");
    std::fs::write(
        &flow,
        "trigger = { type = \"manual\" }\n[[steps]]\nid = \"issue\"\nconnection = \"jira\"\noperation = \"create-issue\"\ninput = '{project_key: \"CLI\", summary: .trigger.summary}'\n",
    )
    .unwrap();
    ok(&url, &["flow", "deploy", flow.to_str().unwrap()]);
    let ran = ok(
        &url,
        &[
            "flow",
            "run",
            "kickoff",
            "--event",
            r#"{"summary": "Kickoff"}"#,
            "--wait",
        ],
    );
    let (id, shown) = ran.split_once('\n').unwrap();
    let run: Value = serde_json::from_str(shown).unwrap();
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(run["id"], id);
    let again: Value = serde_json::from_str(&ok(&url, &["run", "show", id, "--wait"])).unwrap();
    assert_eq!(again["status"], "completed");
    assert_eq!(jira.issues().len(), 1);

    let bash = ok(&url, &["completions", "bash"]);
    assert!(
        bash.contains("_junction") && bash.contains("connection"),
        "completions"
    );

    // A missing document says how to give one; a refused one names the fix.
    let missing = junction(&url, &["connection", "put", "jira"]);
    assert!(!missing.status.success());
    let said = String::from_utf8_lossy(&missing.stderr);
    assert!(
        said.contains("--file PATH") && said.contains("--json"),
        "{said}"
    );
    let bad = junction(
        &url,
        &["connection", "put", "x", "--json", r#"{"plugin": "nope"}"#],
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("422"),
        "{bad:?}"
    );

    // The governance document and the id map.
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../../flows/governance.toml");
    let deployed = ok(&url, &["governance", "deploy", shipped]);
    assert_eq!(deployed, "governance: version 1\n");
    let again = ok(&url, &["governance", "deploy", shipped]);
    assert_eq!(again, "governance: version 1 (unchanged)\n");
    let shown = ok(&url, &["governance", "show"]);
    assert!(shown.starts_with("# version 1, deployed "), "{shown}");
    assert!(
        shown.contains("crm = [\"hubspot\", \"salesforce\"]"),
        "{shown}"
    );
    let nothing = junction(&url, &["xref", "project", "NOPE"]);
    assert!(!nothing.status.success());
    let said = String::from_utf8_lossy(&nothing.stderr);
    assert!(
        said.contains("no system has project `NOPE` in the id map"),
        "{said}"
    );
    let neither = junction(&url, &["xref", "project"]);
    assert!(!neither.status.success());
    let said = String::from_utf8_lossy(&neither.stderr);
    assert!(said.contains("--system S --id ID"), "{said}");
}
