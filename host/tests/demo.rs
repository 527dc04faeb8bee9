//! The README's first command: `junction demo` runs the story end to end,
//! exits 0 and names the Jira project it created.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::process::Command;

#[test]
fn demo_creates_a_jira_project_and_exits_zero() {
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
    assert!(stdout.contains("Created Jira project: ACME"), "{stdout}");
    assert!(
        stdout.contains("credentials added by the host: yes"),
        "{stdout}"
    );
    assert!(stdout.contains("issue ACME"), "{stdout}");
}
