//! The flow workers' group committer, on SQLite and PostgreSQL (from
//! `JUNCTION_TEST_POSTGRES_URL`; without it that half prints `SKIPPED`):
//! batches applied in one transaction stand or fall alone. A batch whose
//! fence matches no row, or whose statement fails, changes nothing and is
//! reported to its sender; the other batches of the same group are
//! committed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use junction_flows::{FlowOptions, Flows};
use junction_runtime::runtime::Runtime;
use junction_store::Store;
use junction_store::commit::{Batch, GroupCommitter, Statement};
use junction_store::secrets::Redacted;
use junction_tests::{test_config, test_limits};
use serde_json::json;

const FLOW: &str = "trigger = { type = \"manual\" }\n[[steps]]\nid = \"a\"\nmap = \".trigger\"\n";

/// A fenced write of `error` to `run`, applied only while `owner` holds its lease.
fn write_error(run: &str, owner: &str, error: &str) -> Batch {
    Batch::new(
        Statement::new(
            "UPDATE runs SET updated_at = updated_at WHERE id = $1 AND lease_owner = $2 RETURNING id",
        )
        .bind(run)
        .bind(owner),
    )
    .then(
        Statement::new("UPDATE runs SET error = $1 WHERE id = $2")
            .bind(error)
            .bind(run),
    )
}

async fn batches_stand_or_fall_alone(database: String) {
    let config = {
        let mut config = test_config(test_limits());
        config.store.database = Some(database.into());
        config.store.secret_key = Some(Redacted::new(
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".to_string(),
        ));
        config
    };
    let store = Store::open(&config.store).await.unwrap();
    let rt = Arc::new(Runtime::new(store, &config.runtime).unwrap());
    let flows = Flows::new(rt.clone(), FlowOptions::default());
    flows.deploy("f", FLOW, "test").await.unwrap();
    let first = flows.start_run("f", json!({"n": 1}), None).await.unwrap();
    let second = flows.start_run("f", json!({"n": 2}), None).await.unwrap();
    // The test holds both leases (no worker runs).
    let mut claimed = vec![
        flows
            .claim("holder", Duration::from_secs(600))
            .await
            .unwrap()
            .unwrap(),
        flows
            .claim("holder", Duration::from_secs(600))
            .await
            .unwrap()
            .unwrap(),
    ];
    claimed.sort();
    let mut expected = vec![first.clone(), second.clone()];
    expected.sort();
    assert_eq!(claimed, expected);

    let committer = GroupCommitter::start(rt.store());
    // A batch that writes, then fails on a statement: its write must not stay.
    let failing = write_error(&first, "holder", "written by the failing batch")
        .then(Statement::new("UPDATE no_such_table SET x = 1"));
    // Sent together, before the committer task runs: one group.
    let (applied, fenced, failed) = tokio::join!(
        committer.apply(write_error(&first, "holder", "written by the holder")),
        committer.apply(write_error(
            &second,
            "not-the-holder",
            "written without the lease"
        )),
        committer.apply(failing),
    );
    assert_eq!(applied.unwrap(), Some(first.clone()));
    assert_eq!(fenced.unwrap(), None, "the fence holds the second run");
    let error = failed.unwrap_err().to_string();
    assert!(error.contains("no_such_table"), "{error}");

    assert_eq!(
        flows.run(&first).await.unwrap().error.as_deref(),
        Some("written by the holder"),
        "the applied batch is committed; the failing one rolled back alone"
    );
    assert_eq!(flows.run(&second).await.unwrap().error, None);

    // The committer goes on after a failed batch.
    let after = committer
        .apply(write_error(&second, "holder", "written later"))
        .await
        .unwrap();
    assert_eq!(after, Some(second.clone()));
    assert_eq!(
        flows.run(&second).await.unwrap().error.as_deref(),
        Some("written later")
    );
}

#[tokio::test]
async fn sqlite_batches_stand_or_fall_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("group.db");
    batches_stand_or_fall_alone(path.to_string_lossy().into_owned()).await;
}

#[tokio::test]
async fn postgres_batches_stand_or_fall_alone() {
    let Some(url) = junction_tests::postgres::fresh_database("group-commit").await else {
        return;
    };
    batches_stand_or_fall_alone(url).await;
}
