//! The store on both of its databases: every case runs once on a SQLite file
//! (`sqlite::...`) and once on a fresh PostgreSQL database (`postgres::...`,
//! from `JUNCTION_TEST_POSTGRES_URL`; without it that half prints `SKIPPED`
//! and passes).
//!
//! Cases that matter for several hosts open the database twice: two stores
//! with their own connection pools, as two host processes would.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use junction::config::Config;
use junction_flows::{FlowOptions, Flows, RunView};
use junction_runtime::inbound::WebhookEvent;
use junction_runtime::runtime::{ConnectionSpec, Runtime};
use junction_runtime::webhooks::Scheme;
use junction_store::audit::{Outcome, Record};
use junction_store::idempotency::{Claim, request_digest};
use junction_store::secrets::generate_key;
use junction_store::{
    Auth, Backend, Connection, KvQuota, KvUsage, Store, StoredVersion, WebhookSettings,
};
use junction_tests::{guests, test_config, test_limits};
use serde_json::{Value, json};
use sqlx::AnyPool;

const TERMINAL: [&str; 3] = ["completed", "compensated", "failed"];
const PASSWORD: &str = "jira-api-token-7f3a9c2e5b8d1f4a";
const WEBHOOK_SECRET: &str = "whsec-signing-secret-a1b2c3d4e5f60718";

/// One database under test, and the key its stores seal secrets with.
struct Db {
    /// A SQLite file path or a PostgreSQL URL, as `database` takes it.
    database: String,
    backend: Backend,
    key: String,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    /// A SQLite file in a new directory, or the PostgreSQL database at `postgres`.
    fn new(postgres: Option<String>) -> Db {
        match postgres {
            Some(url) => Db {
                database: url,
                backend: Backend::Postgres,
                key: generate_key(),
                _dir: None,
            },
            None => {
                let dir = tempfile::tempdir().unwrap();
                Db {
                    database: dir.path().join("junction.db").display().to_string(),
                    backend: Backend::Sqlite,
                    key: generate_key(),
                    _dir: Some(dir),
                }
            }
        }
    }

    fn config(&self, key: &str) -> Config {
        {
            let mut config = test_config(test_limits());
            config.store.database = Some(PathBuf::from(&self.database));
            config.store.secret_key = Some(key.to_string().into());
            config.runtime.cache_dir = Some(cache_dir());
            config
        }
    }

    /// A store over this database, as one host opens it.
    async fn open(&self) -> Store {
        let store = Store::open(&self.config(&self.key).store).await.unwrap();
        assert_eq!(store.backend(), self.backend);
        store
    }

    /// Flows over a store of their own: one host.
    async fn host(&self) -> Arc<Flows> {
        let runtime = Runtime::new(self.open().await, &self.config(&self.key).runtime).unwrap();
        Flows::new(
            Arc::new(runtime),
            FlowOptions {
                workers: 1,
                lease: Duration::from_secs(30),
                idle_poll: Duration::from_millis(50),
            },
        )
    }

    /// A connection of the test's own to the database, to look at (and
    /// tamper with) what the store wrote.
    async fn raw(&self) -> AnyPool {
        sqlx::any::install_default_drivers();
        let url = match self.backend {
            Backend::Sqlite => format!("sqlite://{}", self.database),
            Backend::Postgres => self.database.clone(),
        };
        AnyPool::connect(&url).await.unwrap()
    }
}

/// Compiled guests shared by the tests of this file.
fn cache_dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("store-compile-cache")
}

junction_tests::sqlite_and_postgres!("store":
    connections_round_trip_with_secrets_sealed,
    another_key_is_refused_at_open,
    kv_is_scoped_and_keeps_bytes,
    kv_quota_holds_under_concurrent_writers,
    packages_versions_and_activations,
    the_audit_log_is_append_only,
    flow_deploys_are_versioned,
    governance_versions_and_the_id_map,
    two_hosts_never_claim_the_same_run,
    an_expired_lease_is_taken_over_and_the_old_worker_is_fenced,
    dead_letters_are_listed_replayed_and_discarded,
    a_webhook_event_starts_one_run_across_hosts,
    idempotency_keys_across_hosts,
);

fn connection(name: &str) -> Connection {
    Connection {
        name: name.into(),
        plugin: "jira".into(),
        version: Some("1.0.0".into()),
        config: BTreeMap::from([("base_url".into(), "https://acme.example".into())]),
        auth: Some(Auth::Basic {
            username: "ops@acme.example".into(),
            password: PASSWORD.into(),
        }),
        allowed_hosts: vec!["acme.example".into()],
        private_hosts: vec![],
        credential_hosts: Vec::new(),
        rate_limit: None,
        webhook: Some(WebhookSettings {
            scheme: Scheme::Stripe,
            secret: WEBHOOK_SECRET.into(),
        }),
        circuit: None,
        created_at: "2026-01-01T00:00:00.000Z".into(),
        updated_at: "2026-01-01T00:00:00.000Z".into(),
    }
}

async fn connections_round_trip_with_secrets_sealed(postgres: Option<String>) {
    let db = &Db::new(postgres);
    let store = db.open().await;
    assert!(store.put_connection(&connection("b")).await.unwrap());
    assert!(store.put_connection(&connection("a")).await.unwrap());
    let mut changed = connection("a");
    changed.version = None;
    changed.auth = Some(Auth::Bearer {
        token: "bearer-token-after-replacement".into(),
    });
    assert!(!store.put_connection(&changed).await.unwrap());
    assert_eq!(store.connection("a").await.unwrap(), Some(changed.clone()));
    assert_eq!(store.connection("c").await.unwrap(), None);
    let names: Vec<String> = store
        .connections()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["a", "b"]);

    // What is stored is sealed, not the secrets.
    let raw = db.raw().await;
    let (auth, webhook): (String, String) =
        sqlx::query_as("SELECT auth, webhook FROM connections WHERE name = 'b'")
            .fetch_one(&raw)
            .await
            .unwrap();
    assert!(auth.starts_with("v1:") && webhook.starts_with("v1:"));
    assert!(!auth.contains(PASSWORD) && !webhook.contains(WEBHOOK_SECRET));

    // A second host with the same key reads them.
    let other = db.open().await;
    assert_eq!(other.connection("a").await.unwrap(), Some(changed));
    assert_eq!(other.connection("b").await.unwrap(), Some(connection("b")));

    // A sealed value moved to another row does not open there.
    sqlx::query(
        "UPDATE connections SET auth = (SELECT auth FROM connections WHERE name = 'b') WHERE name = 'a'",
    )
    .execute(&raw)
    .await
    .unwrap();
    let err = store.connection("a").await.unwrap_err().to_string();
    assert!(err.contains("connection `a`"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
    raw.close().await;
}

async fn another_key_is_refused_at_open(postgres: Option<String>) {
    let db = &Db::new(postgres);
    db.open()
        .await
        .put_connection(&connection("a"))
        .await
        .unwrap();
    let err = Store::open(&db.config(&generate_key()).store)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("connection `a`"), "{err}");
    assert!(err.contains("different key"), "{err}");
    assert!(err.contains("secret_key"), "{err}");
    // The right key still opens it.
    assert!(db.open().await.connection("a").await.unwrap().is_some());
}

async fn kv_is_scoped_and_keeps_bytes(postgres: Option<String>) {
    let db = &Db::new(postgres);
    let store = db.open().await;
    let every_byte: Vec<u8> = (0..=255).collect();
    store
        .kv_set("p", "c1", "cursor", &every_byte, KvQuota::UNLIMITED)
        .await
        .unwrap();
    store
        .kv_set("p", "c2", "cursor", b"2", KvQuota::UNLIMITED)
        .await
        .unwrap();
    store
        .kv_set("q", "c1", "cursor", b"3", KvQuota::UNLIMITED)
        .await
        .unwrap();
    assert_eq!(
        store.kv_get("p", "c1", "cursor").await.unwrap(),
        Some(every_byte)
    );
    assert_eq!(
        store.kv_get("p", "c2", "cursor").await.unwrap(),
        Some(b"2".to_vec())
    );
    assert_eq!(store.kv_get("p", "c3", "cursor").await.unwrap(), None);
    store
        .kv_set("p", "c1", "cursor", b"", KvQuota::UNLIMITED)
        .await
        .unwrap();
    assert_eq!(
        store.kv_get("p", "c1", "cursor").await.unwrap(),
        Some(Vec::new())
    );
    for key in ["cursor-2", "Cursor", "other", "cur%", "cur_x"] {
        store
            .kv_set("p", "c1", key, b"x", KvQuota::UNLIMITED)
            .await
            .unwrap();
    }
    // A prefix is matched exactly: case counts, `%` and `_` are not wildcards.
    assert_eq!(
        store.kv_list("p", "c1", "cur").await.unwrap(),
        ["cur%", "cur_x", "cursor", "cursor-2"]
    );
    assert_eq!(store.kv_list("p", "c1", "cur%").await.unwrap(), ["cur%"]);
    store.kv_delete("p", "c1", "cursor").await.unwrap();
    store.kv_delete("p", "c1", "cursor").await.unwrap();
    assert_eq!(store.kv_get("p", "c1", "cursor").await.unwrap(), None);
}

async fn kv_quota_holds_under_concurrent_writers(postgres: Option<String>) {
    let db = &Db::new(postgres);
    let store = db.open().await;
    // Ten keys of 2 + 8 bytes each fill a 100-byte quota exactly.
    let quota = KvQuota {
        keys: 1_000,
        bytes: 100,
    };
    let writers = (0..40).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .kv_set("p", "c", &format!("{i:02}"), b"12345678", quota)
                .await
        })
    });
    let mut stored = 0;
    for writer in writers {
        match writer.await.unwrap() {
            Ok(()) => stored += 1,
            Err(junction_store::Error::KvQuota(over)) => {
                assert_eq!(over.what, "bytes");
                let message = over.to_string();
                assert!(message.contains("kv_bytes"), "{message}");
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(stored, 10, "exactly the quota's worth of writes pass");
    let usage = store.kv_usage("p", "c").await.unwrap();
    assert_eq!(
        usage,
        KvUsage {
            keys: 10,
            bytes: 100
        }
    );
    let keys = store.kv_list("p", "c", "").await.unwrap();
    assert_eq!(keys.len(), 10);
    // The same key rewritten no larger passes at the quota; larger does not.
    let first = &keys[0];
    store
        .kv_set("p", "c", first, b"abcdefgh", quota)
        .await
        .unwrap();
    let err = store
        .kv_set("p", "c", first, b"abcdefghi", quota)
        .await
        .unwrap_err();
    assert!(matches!(err, junction_store::Error::KvQuota(_)), "{err}");
    // A delete frees its share; another connection has its own quota.
    store.kv_delete("p", "c", first).await.unwrap();
    store
        .kv_set("p", "c", "new", b"1234567", quota)
        .await
        .unwrap();
    assert_eq!(
        store.kv_usage("p", "c").await.unwrap(),
        KvUsage {
            keys: 10,
            bytes: 100
        }
    );
    store
        .kv_set("p", "other", "00", b"12345678", quota)
        .await
        .unwrap();
    let keys_quota = KvQuota {
        keys: 1,
        bytes: 1_000,
    };
    let err = store
        .kv_set("p", "other", "01", b"x", keys_quota)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("kv_keys"), "{err}");
}

fn version(name: &str, version: &str, digest: &str, at: &str) -> StoredVersion {
    StoredVersion {
        name: name.into(),
        version: version.into(),
        world: "connector".into(),
        component_digest: format!("sha256:c-{digest}"),
        package_digest: digest.into(),
        signer: (version == "2.0.0").then(|| "ed25519:k1".to_string()),
        uploaded_at: at.into(),
        uploaded_by: "ops".into(),
    }
}

async fn packages_versions_and_activations(postgres: Option<String>) {
    let db = &Db::new(postgres);
    let store = db.open().await;
    let bytes: Vec<u8> = (0..=255).cycle().take(70_000).collect();
    store.put_package("d1", &bytes).await.unwrap();
    store
        .put_package("d1", b"ignored: same digest")
        .await
        .unwrap();
    store.put_package("d2", b"two").await.unwrap();
    assert_eq!(store.package("d1").await.unwrap(), Some(bytes));
    assert_eq!(store.package("d9").await.unwrap(), None);

    let v1 = version("jira", "1.0.0", "d1", "2026-01-01T00:00:00.000Z");
    let v2 = version("jira", "2.0.0", "d2", "2026-01-02T00:00:00.000Z");
    let other = version("echo", "0.1.0", "d2", "2026-01-03T00:00:00.000Z");
    for v in [&v2, &v1, &other, &v1] {
        store.put_plugin_version(v).await.unwrap();
    }
    assert_eq!(
        store.plugin_versions().await.unwrap(),
        [other.clone(), v1.clone(), v2.clone()]
    );
    // A version must name a stored package.
    let orphan = version("jira", "3.0.0", "missing", "2026-01-04T00:00:00.000Z");
    assert!(store.put_plugin_version(&orphan).await.is_err());

    store
        .record_activation("jira", "1.0.0", "ops")
        .await
        .unwrap();
    store
        .record_activation("echo", "0.1.0", "ops")
        .await
        .unwrap();
    store
        .record_activation("jira", "2.0.0", "ops")
        .await
        .unwrap();
    store
        .record_activation("jira", "1.0.0", "ops")
        .await
        .unwrap();
    assert_eq!(
        store.active_versions().await.unwrap(),
        BTreeMap::from([
            ("echo".to_string(), "0.1.0".to_string()),
            ("jira".to_string(), "1.0.0".to_string())
        ])
    );
    assert_eq!(
        store.activation_history("jira").await.unwrap(),
        ["1.0.0", "2.0.0", "1.0.0"]
    );
    store.delete_plugin_version("jira", "2.0.0").await.unwrap();
    assert_eq!(store.plugin_versions().await.unwrap(), [other, v1]);
}

async fn the_audit_log_is_append_only(postgres: Option<String>) {
    let db = &Db::new(postgres);
    let store = db.open().await;
    for (action, outcome) in [
        ("plugin.upload", Outcome::Ok),
        ("plugin.activate", Outcome::Refused),
        ("plugin.upload", Outcome::Ok),
    ] {
        store
            .audit(Record {
                actor: "ops",
                action,
                target: "jira@1.0.0",
                digest: Some("sha256:00"),
                outcome,
                detail: "why",
            })
            .await
            .unwrap();
    }
    let all = store.audit_entries(None, 10).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all[0].id > all[1].id && all[1].id > all[2].id);
    assert_eq!(all[1].action, "plugin.activate");
    assert_eq!(all[1].outcome, Outcome::Refused);
    assert_eq!(all[1].digest.as_deref(), Some("sha256:00"));
    let uploads = store.audit_entries(Some("plugin.upload"), 1).await.unwrap();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].id, all[0].id);

    let raw = db.raw().await;
    let mut refusals = vec!["UPDATE audit SET actor = 'x'", "DELETE FROM audit"];
    if db.backend == Backend::Postgres {
        refusals.push("TRUNCATE audit");
    }
    for sql in refusals {
        let err = sqlx::query(sql).execute(&raw).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    raw.close().await;
    assert_eq!(store.audit_entries(None, 10).await.unwrap(), all);
}

/// Two jq steps; the first fails for good unless the trigger says `ok`.
const MAP_FLOW: &str = "trigger = { type = \"manual\" }\n\
    [[steps]]\nid = \"check\"\nmap = 'if .trigger.ok then {checked: true} else error(\"not ok\") end'\n\
    [[steps]]\nid = \"done\"\nmap = '{done: .steps.check.checked}'\n";

async fn flow_deploys_are_versioned(postgres: Option<String>) {
    let db = &Db::new(postgres);
    let flows = db.host().await;
    let first = flows.deploy("orders", MAP_FLOW, "ops").await.unwrap();
    assert!(first.created && first.changed);
    assert_eq!(first.version, 1);
    let same = flows.deploy("orders", MAP_FLOW, "ops").await.unwrap();
    assert!(!same.created && !same.changed);
    assert_eq!(same.version, 1);
    let edited = format!("description = \"v2\"\n{MAP_FLOW}");
    let second = flows.deploy("orders", &edited, "ci").await.unwrap();
    assert_eq!(
        (second.created, second.changed, second.version),
        (false, true, 2)
    );
    let detail = flows.get("orders").await.unwrap();
    assert_eq!(detail.source, edited);
    assert_eq!(detail.summary.description.as_deref(), Some("v2"));
    let versions: Vec<(i64, &str)> = detail
        .versions
        .iter()
        .map(|v| (v.version, v.deployed_by.as_str()))
        .collect();
    assert_eq!(versions, [(2, "ci"), (1, "ops")]);
    assert_eq!(flows.list().await.unwrap().len(), 1);
    let audited = flows
        .runtime()
        .store()
        .audit_entries(Some("flow.deploy"), 10)
        .await
        .unwrap();
    assert_eq!(audited.len(), 3);

    // A run keeps the version it started with.
    let run = flows
        .start_run("orders", json!({"ok": true}), None)
        .await
        .unwrap();
    flows.deploy("orders", MAP_FLOW, "ops").await.unwrap();
    let view = drive(&flows, &run).await;
    assert_eq!((view.status.as_str(), view.flow_version), ("completed", 2));
    assert_eq!(step_output(&view, "done"), Some(json!({"done": true})));
}

/// Two map steps that record a project's ids in two systems, then a
/// lookup of them.
const XREF_FLOW: &str = r#"trigger = { type = "manual" }
[[steps]]
id = "deal"
map = "{id: .trigger.deal, key: .trigger.key}"
record = { entity = "project", system = "hubspot", key = ".output.key", id = ".output.id" }
[[steps]]
id = "job"
map = "{id: 2001}"
record = [{ entity = "project", system = "netsuite", key = ".steps.deal.key", id = ".output.id" }]
[[steps]]
id = "ids"
lookup = { entity = "project", system = "hubspot", id = ".trigger.deal" }
"#;

async fn governance_versions_and_the_id_map(postgres: Option<String>) {
    let db = &Db::new(postgres);
    let flows = db.host().await;
    let doc = "[systems]\ncrm = [\"hubspot\"]\n[entities.customer]\ncrm = [\"name\"]\n";
    let first = flows.deploy_governance(doc, "ops").await.unwrap();
    assert_eq!((first.version, first.changed), (1, true));
    let same = flows.deploy_governance(doc, "ops").await.unwrap();
    assert_eq!((same.version, same.changed), (1, false));
    let edited = format!("description = \"v2\"\n{doc}");
    let second = flows.deploy_governance(&edited, "ci").await.unwrap();
    assert_eq!((second.version, second.changed), (2, true));
    let current = flows.governance().await.unwrap();
    assert_eq!((current.version, current.deployed_by.as_str()), (2, "ci"));
    assert_eq!(current.document.description.as_deref(), Some("v2"));

    flows.deploy("xref", XREF_FLOW, "ops").await.unwrap();
    let run = flows
        .start_run(
            "xref",
            json!({"deal": "9876543202", "key": "GLOBEXERPR"}),
            None,
        )
        .await
        .unwrap();
    let view = drive(&flows, &run).await;
    assert_eq!(view.status, "completed");
    let ids = step_output(&view, "ids").unwrap();
    assert_eq!(
        ids,
        json!({"entity": "project", "key": "GLOBEXERPR", "found": true,
               "ids": {"hubspot": "9876543202", "netsuite": "2001"}})
    );
    let map = flows.xref("project", "GLOBEXERPR").await.unwrap();
    assert_eq!(map.ids["netsuite"].run.as_deref(), Some(run.as_str()));
    assert_eq!(map.ids["netsuite"].by, "run");

    // A second run records the same ids again: one row per system, replaced.
    let again = flows
        .start_run(
            "xref",
            json!({"deal": "9876543202", "key": "GLOBEXERPR"}),
            None,
        )
        .await
        .unwrap();
    drive(&flows, &again).await;
    let map = flows.xref("project", "GLOBEXERPR").await.unwrap();
    assert_eq!(map.ids.len(), 2);
    assert_eq!(map.ids["hubspot"].run.as_deref(), Some(again.as_str()));

    let linked = flows
        .link_xref("project", "GLOBEXERPR", "netsuite", Some("2002"), "ops")
        .await
        .unwrap();
    assert_eq!(
        (
            linked.ids["netsuite"].id.as_str(),
            linked.ids["netsuite"].by.as_str()
        ),
        ("2002", "ops")
    );
    let unlinked = flows
        .link_xref("project", "GLOBEXERPR", "netsuite", None, "ops")
        .await
        .unwrap();
    assert_eq!(unlinked.ids.keys().collect::<Vec<_>>(), ["hubspot"]);
    let audited = flows
        .runtime()
        .store()
        .audit_entries(None, 10)
        .await
        .unwrap();
    let actions: Vec<&str> = audited.iter().map(|e| e.action.as_str()).take(2).collect();
    assert_eq!(actions, ["xref.unlink", "xref.link"]);
}

/// Works `run` with this host until it ends.
async fn drive(flows: &Flows, run: &str) -> RunView {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        flows.work_once("driver").await.unwrap();
        let view = flows.run(run).await.unwrap();
        if TERMINAL.contains(&view.status.as_str()) {
            return view;
        }
        assert!(Instant::now() < deadline, "run {run} never ended: {view:?}");
        tokio::task::yield_now().await;
    }
}

fn step_output(view: &RunView, id: &str) -> Option<Value> {
    let steps = view.steps.as_ref().unwrap();
    steps.iter().find(|s| s.id == id).unwrap().output.clone()
}

async fn two_hosts_never_claim_the_same_run(postgres: Option<String>) {
    let db = &Db::new(postgres);
    const RUNS: usize = 40;
    let hosts = [db.host().await, db.host().await];
    hosts[0].deploy("f", MAP_FLOW, "ops").await.unwrap();
    let mut started = BTreeSet::new();
    for n in 0..RUNS {
        let run = hosts[n % 2]
            .start_run("f", json!({"ok": true}), None)
            .await
            .unwrap();
        started.insert(run);
    }
    // Four claimers per host, all at once, until every run is taken.
    let claimed = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (h, host) in hosts.iter().enumerate() {
        for n in 0..4 {
            let (host, claimed) = (host.clone(), claimed.clone());
            tasks.push(tokio::spawn(async move {
                let worker = format!("host{h}-worker{n}");
                let deadline = Instant::now() + Duration::from_secs(60);
                while claimed.lock().unwrap().len() < RUNS {
                    assert!(Instant::now() < deadline, "the runs were never all claimed");
                    match host.claim(&worker, Duration::from_secs(600)).await.unwrap() {
                        Some(run) => claimed.lock().unwrap().push((run, worker.clone())),
                        None => tokio::task::yield_now().await,
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let claimed = claimed.lock().unwrap().clone();
    let distinct: BTreeSet<String> = claimed.iter().map(|(run, _)| run.clone()).collect();
    assert_eq!(claimed.len(), RUNS, "a run was claimed twice: {claimed:?}");
    assert_eq!(distinct, started);
    // Leased runs are not claimed again.
    assert_eq!(
        hosts[1]
            .claim("late", Duration::from_secs(1))
            .await
            .unwrap(),
        None
    );
    let workers: BTreeSet<&str> = claimed.iter().map(|(_, w)| w.as_str()).collect();
    assert!(
        workers.len() > 1,
        "one worker claimed everything: {workers:?}"
    );
}

async fn an_expired_lease_is_taken_over_and_the_old_worker_is_fenced(postgres: Option<String>) {
    let db = &Db::new(postgres);
    let (old, new) = (db.host().await, db.host().await);
    old.deploy("f", MAP_FLOW, "ops").await.unwrap();
    let run = old.start_run("f", json!({"ok": true}), None).await.unwrap();
    let claimed = old.claim("old", Duration::from_millis(1)).await.unwrap();
    assert_eq!(claimed.as_deref(), Some(run.as_str()));
    // Once the lease has expired the other host takes the run over.
    let deadline = Instant::now() + Duration::from_secs(10);
    while new
        .claim("new", Duration::from_secs(60))
        .await
        .unwrap()
        .is_none()
    {
        assert!(Instant::now() < deadline, "the lease never expired");
        tokio::task::yield_now().await;
    }
    // The old worker's writes are fenced off: nothing changes.
    old.advance("old", &run).await.unwrap();
    let view = old.run(&run).await.unwrap();
    assert_eq!(view.status, "running");
    let steps = view.steps.unwrap();
    assert!(
        steps
            .iter()
            .all(|s| s.status == "pending" && s.attempts == 0),
        "{steps:?}"
    );
    new.advance("new", &run).await.unwrap();
    let view = new.run(&run).await.unwrap();
    assert_eq!(view.status, "completed");
    assert_eq!(step_output(&view, "done"), Some(json!({"done": true})));
}

async fn dead_letters_are_listed_replayed_and_discarded(postgres: Option<String>) {
    let db = &Db::new(postgres);
    let flows = db.host().await;
    flows.deploy("f", MAP_FLOW, "ops").await.unwrap();
    let run = flows
        .start_run("f", json!({"ok": false}), None)
        .await
        .unwrap();
    let view = drive(&flows, &run).await;
    assert_eq!(view.status, "failed");
    assert_eq!(view.failed_step.as_deref(), Some("check"));
    let letters = flows.dead_letters(Some("f")).await.unwrap();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(
        (letter.run_id.as_str(), letter.step.as_str()),
        (run.as_str(), "check")
    );
    assert_eq!(letter.attempts, 1);
    assert_eq!(letter.errors.len(), 1);
    assert_eq!(letter.errors[0].kind, "expression");
    assert!(letter.errors[0].message.contains("not ok"), "{letter:?}");
    // A jq step's input is the run's context.
    assert_eq!(
        letter.input.as_ref().unwrap()["trigger"],
        json!({"ok": false})
    );
    assert!(flows.dead_letters(Some("g")).await.unwrap().is_empty());
    // What the metrics read: open dead letters per flow and the oldest's time.
    let summary = flows.runtime().store().dead_letter_summary().await.unwrap();
    assert_eq!(summary.len(), 1, "{summary:?}");
    assert_eq!((summary[0].flow.as_str(), summary[0].open), ("f", 1));
    assert!(summary[0].oldest_at > 0, "{summary:?}");

    // Replay with a corrected input: the same run completes.
    let replayed = flows
        .replay(&letter.id, Some(json!({"trigger": {"ok": true}})), "ops")
        .await
        .unwrap();
    assert_eq!(replayed, run);
    assert!(flows.dead_letters(None).await.unwrap().is_empty());
    let view = drive(&flows, &run).await;
    assert_eq!(view.status, "completed");
    assert_eq!(step_output(&view, "done"), Some(json!({"done": true})));
    // Replaying it again is refused: the dead letter is gone.
    assert!(flows.replay(&letter.id, None, "ops").await.is_err());

    // A discarded dead letter leaves its run as it ended.
    let run = flows
        .start_run("f", json!({"ok": false}), None)
        .await
        .unwrap();
    drive(&flows, &run).await;
    let letter = flows.dead_letters(None).await.unwrap().remove(0);
    flows.discard(&letter.id, "ops").await.unwrap();
    assert!(flows.dead_letters(None).await.unwrap().is_empty());
    let summary = flows.runtime().store().dead_letter_summary().await.unwrap();
    assert!(summary.is_empty(), "{summary:?}");
    assert_eq!(flows.run(&run).await.unwrap().status, "failed");
    let store = flows.runtime().store();
    for action in ["run.replay", "run.discard"] {
        let entries = store.audit_entries(Some(action), 10).await.unwrap();
        assert_eq!(entries.len(), 1, "{action}");
    }
    let runs = flows.runs(Some("f"), Some("failed"), 10).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(flows.runs(Some("f"), None, 10).await.unwrap().len(), 2);
}

/// A host whose runtime has the echo guest loaded and a connection to it.
async fn host_with_echo(db: &Db) -> Arc<Flows> {
    let flows = db.host().await;
    let runtime = flows.runtime();
    runtime
        .load_plugin(&guests::bytes(guests::ECHO))
        .await
        .unwrap();
    runtime
        .put_connection(
            "hooks",
            ConnectionSpec {
                plugin: "echo".into(),
                ..ConnectionSpec::default()
            },
        )
        .await
        .unwrap();
    flows
}

fn event(id: &str) -> WebhookEvent {
    WebhookEvent::new(
        id.into(),
        "crm/tenant-1".into(),
        "deal.won".into(),
        None,
        "2026-01-01T00:00:00Z".into(),
        json!({"ok": true}),
    )
}

async fn a_webhook_event_starts_one_run_across_hosts(postgres: Option<String>) {
    let db = &Db::new(postgres);
    let hosts = [host_with_echo(db).await, host_with_echo(db).await];
    let source = format!(
        "trigger = {{ type = \"event\", connection = \"hooks\", event = \"deal.won\" }}\n{}",
        MAP_FLOW.trim_start_matches("trigger = { type = \"manual\" }\n")
    );
    hosts[0].deploy("on-deal", &source, "ops").await.unwrap();
    // Both hosts receive the same delivery several times, at once.
    let mut tasks = Vec::new();
    for host in &hosts {
        for _ in 0..3 {
            let host = host.clone();
            tasks.push(tokio::spawn(async move {
                host.start_runs_for_events("hooks", &[event("evt-1"), event("evt-2")], None)
                    .await
                    .unwrap()
            }));
        }
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.extend(task.await.unwrap());
    }
    assert_eq!(answers.len(), 12);
    for id in ["evt-1", "evt-2"] {
        let of_event: Vec<_> = answers.iter().filter(|r| r.event == id).collect();
        let fresh = of_event.iter().filter(|r| !r.duplicate).count();
        assert_eq!(fresh, 1, "{id}: {of_event:?}");
        let runs: BTreeSet<&str> = of_event.iter().map(|r| r.run.as_str()).collect();
        assert_eq!(runs.len(), 1, "{id}: {of_event:?}");
    }
    let runs = hosts[1].runs(Some("on-deal"), None, 100).await.unwrap();
    assert_eq!(runs.len(), 2);
    // An event of another type starts nothing.
    let other = WebhookEvent {
        event_type: "deal.lost".into(),
        ..event("evt-3")
    };
    assert!(
        hosts[0]
            .start_runs_for_events("hooks", &[other], None)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn idempotency_keys_across_hosts(postgres: Option<String>) {
    let db = &Db::new(postgres);
    let (a, b) = (db.open().await, db.open().await);
    let stale = Duration::from_secs(60);
    let request = request_digest("c", "op", "{}");
    let other = request_digest("c", "op", "{\"x\":1}");
    assert_eq!(
        a.claim_idempotent("t", "k", &request, stale).await.unwrap(),
        Claim::Run
    );
    assert_eq!(
        b.claim_idempotent("t", "k", &request, stale).await.unwrap(),
        Claim::InFlight
    );
    assert_eq!(
        b.claim_idempotent("t", "k", &other, stale).await.unwrap(),
        Claim::Mismatch
    );
    assert_eq!(
        b.claim_idempotent("u", "k", &other, stale).await.unwrap(),
        Claim::Run
    );
    a.finish_idempotent("t", "k", "{\"ok\":true}", "echo@0.1.0")
        .await
        .unwrap();
    assert_eq!(
        b.claim_idempotent("t", "k", &request, stale).await.unwrap(),
        Claim::Replay {
            response: "{\"ok\":true}".into(),
            plugin: "echo@0.1.0".into()
        }
    );
    b.release_idempotent("u", "k").await.unwrap();
    assert_eq!(
        a.claim_idempotent("u", "k", &request, stale).await.unwrap(),
        Claim::Run
    );
    // A claim that never finished is taken over once stale.
    assert_eq!(
        b.claim_idempotent("u", "k", &request, Duration::ZERO)
            .await
            .unwrap(),
        Claim::Run
    );

    // Many claims of a new key at once, from both hosts: one runs.
    let mut tasks = Vec::new();
    for n in 0..8 {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            store
                .claim_idempotent("t", "fresh", &request, Duration::from_secs(60))
                .await
                .unwrap()
        }));
    }
    let mut claims = Vec::new();
    for task in tasks {
        claims.push(task.await.unwrap());
    }
    assert_eq!(
        claims.iter().filter(|c| **c == Claim::Run).count(),
        1,
        "{claims:?}"
    );
    assert!(
        claims
            .iter()
            .all(|c| matches!(c, Claim::Run | Claim::InFlight))
    );
}

/// A PostgreSQL server that does not answer stops the host at start, naming
/// the server but not the password.
#[tokio::test]
async fn an_unreachable_postgres_is_named_without_its_password() {
    // A port nothing listens on: connecting is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = {
        let mut config = test_config(test_limits());
        config.store.database = Some(PathBuf::from(format!(
            "postgres://junction:hunter2@127.0.0.1:{port}/junction"
        )));
        config.store.secret_key = Some(generate_key().into());
        config
    };
    let err = Store::open(&config.store).await.unwrap_err().to_string();
    assert!(err.contains("cannot connect to PostgreSQL"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

/// Hosts sharing PostgreSQL must share the key: without one the host stops
/// at start, naming the setting (before it connects to anything).
#[tokio::test]
async fn postgres_without_a_secret_key_does_not_start() {
    let config = {
        let mut config = test_config(test_limits());
        config.store.database = Some(PathBuf::from(
            "postgres://junction@db.invalid:5432/junction",
        ));
        config
    };
    let err = config.validate().unwrap_err().to_string();
    assert!(
        err.contains("secret_key") && err.contains("JUNCTION_SECRET_KEY"),
        "{err}"
    );
    let err = Store::open(&config.store).await.unwrap_err().to_string();
    assert!(
        err.contains("secret_key") && err.contains("JUNCTION_SECRET_KEY"),
        "{err}"
    );
}
