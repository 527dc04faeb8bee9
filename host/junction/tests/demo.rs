//! The README's first command: `junction demo` runs the story end to end,
//! exits 0, and prints the records it made in every system.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::process::Command;

#[test]
fn demo_runs_quote_to_project_and_hot_loads_the_contract_tool() {
    let output = Command::new(env!("CARGO_BIN_EXE_junction"))
        .arg("demo")
        .env_remove("JUNCTION_LOG")
        .output()
        .expect("running junction demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "demo failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // Every system holds what the story made.
    for record in [
        "Created Jira project: GLOBEXERPR; PSA project active",
        "NetSuite  customer 1001 \"Globex Corporation\" externalId hubspot-",
        "NetSuite  job 2001 \"Globex ERP rollout\" for customer 1001",
        "status active externalId hubspot-",
        "Jira      project GLOBEXERPR \"Globex ERP rollout\"",
        "Jira      issue GLOBEXERPR-1 \"Kickoff: Globex ERP rollout\"",
        "Contracts contract",
        "closed-won-to-project: completed",
        "contract-signed-activates-project: completed",
        "no restart",
        "signals/staffing_confirmed (the resource manager approves) -> approve by demo at ",
        "PUT /v1/governance (flows/governance.toml: CRM sells, ERP bills, PSA delivers) -> version 1",
        "GET /v1/xref/project/GLOBEXERPR -> hubspot ",
        ", jira GLOBEXERPR, netsuite 2001, psa ",
        "-> refused (422): step `deal` writes project.budget.amount with the value of `netsuite`",
    ] {
        assert!(stdout.contains(record), "missing `{record}` in:\n{stdout}");
    }
    assert!(stdout.contains("PSA       assignment"), "{stdout}");
}
