//! Shared helpers of Junction's end-to-end tests; the tests are in `tests/`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use junction::config::Config;
use junction_runtime::engine::Limits;
use junction_runtime::runtime::Runtime;
use junction_store::Store;

pub mod shipped_host;

/// Paths of the test-only guest components, built by `build.rs`.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));

    /// The bytes of a guest component.
    pub fn bytes(path: &str) -> Vec<u8> {
        std::fs::read(path).unwrap_or_else(|e| panic!("reading guest {path}: {e}"))
    }
}

/// A package manifest of plugin `name` with `operations`.
pub fn manifest(name: &str, version: &str, world: &str, operations: &[&str]) -> String {
    let ops: Vec<String> = operations.iter().map(|o| format!("{o:?}")).collect();
    format!(
        "[plugin]\nname = {name:?}\nversion = {version:?}\nworld = {world:?}\nwit = \"junction:plugin@0.1.0\"\n\
         description = \"test\"\noperations = [{}]\ntriggers = []\n\n[capabilities]\noutbound_hosts = []\nauth = \"none\"\nkv = {}\n",
        ops.join(", "),
        world == "connector"
    )
}

/// The operations of the echo test guest.
pub const ECHO_OPS: &[&str] = &[
    "noop", "echo", "version", "config", "kv", "fetch", "whoami", "env",
];

/// The echo test guest packaged as version `0.1.0` or `0.2.0`.
pub fn echo_package(version: &str) -> junction_registry::Package {
    let wasm = match version {
        "0.1.0" => guests::bytes(guests::ECHO),
        "0.2.0" => guests::bytes(guests::ECHO_V2),
        other => panic!("no echo {other}"),
    };
    junction_registry::Package::new(manifest("echo", version, "connector", ECHO_OPS), wasm)
}

/// Limits small enough that hostile guests hit them quickly.
pub fn test_limits() -> Limits {
    Limits {
        memory_mib: 32,
        deadline_ms: 1_500,
        output_bytes: 1024 * 1024,
        pooled_instances: 32,
        ..Limits::default()
    }
}

/// A configuration for tests: in-memory store, no compiled-code cache.
pub fn test_config(limits: Limits) -> Config {
    {
        let mut config = Config::default();
        config.store.database = None;
        config.runtime.cache_dir = None;
        config.runtime.limits = limits;
        config
    }
}

/// A configuration with an in-memory store whose API knows one token, `name`
/// with `scope`.
pub fn config_with_token(name: &str, token: &str, scope: junction::config::Scope) -> Config {
    let mut config = Config::default();
    config.store.database = None;
    config.api.tokens = std::collections::BTreeMap::from([(
        name.to_string(),
        junction::config::Token {
            token: token.into(),
            scope,
        },
    )]);
    config
}

/// Polls `probe` until it returns `Some`, every `every`, and returns that
/// value; panics with `what` and the last probe's description after
/// `within`. A condition is polled, never waited for with a fixed sleep.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, every: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) => assert!(
                Instant::now() < deadline,
                "{what} within {within:?}: {last}"
            ),
        }
        tokio::time::sleep(every).await;
    }
}

/// The step `id` of a run as the API shows it (`GET /v1/runs/{id}`);
/// panics, showing the run, when it has none.
pub fn step<'a>(run: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    run["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["id"] == id))
        .unwrap_or_else(|| panic!("no step {id} in {run:#}"))
}

/// A runtime over an in-memory store.
pub async fn runtime(limits: Limits) -> Arc<Runtime> {
    runtime_with(&test_config(limits)).await
}

/// A runtime over an in-memory store with `config`.
pub async fn runtime_with(config: &Config) -> Arc<Runtime> {
    let store = Store::in_memory().await.expect("in-memory store");
    Arc::new(Runtime::new(store, &config.runtime).expect("runtime"))
}

/// Fresh PostgreSQL databases for tests that run on PostgreSQL too.
///
/// Tests read the server from `JUNCTION_TEST_POSTGRES_URL` (e.g.
/// `postgres://postgres@127.0.0.1:5432/test`); without it they print a
/// `SKIPPED` line and return.
pub mod openapi;

pub mod postgres {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use sqlx::Connection as _;
    use sqlx::postgres::PgConnection;

    /// The variable naming the test server.
    pub const URL_VAR: &str = "JUNCTION_TEST_POSTGRES_URL";

    /// Test databases are named `junction_test_<unix seconds>_<random>`.
    const PREFIX: &str = "junction_test_";

    /// Test databases older than this are dropped when a new one is made.
    const MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

    /// The server's URL, or `None` after printing
    /// `SKIPPED (<label>): JUNCTION_TEST_POSTGRES_URL is not set`.
    pub fn server_url(label: &str) -> Option<String> {
        match std::env::var(URL_VAR) {
            Ok(url) if !url.trim().is_empty() => Some(url.trim().to_string()),
            _ => {
                eprintln!("SKIPPED ({label}): {URL_VAR} is not set");
                None
            }
        }
    }

    /// Creates a new, empty database on the server named by
    /// `JUNCTION_TEST_POSTGRES_URL` and returns its URL; `None` (after a
    /// `SKIPPED` line on stderr) when the variable is not set. Test databases
    /// older than a day are dropped on the way. Panics when the server cannot
    /// be reached: a configured server that is down is a failure, not a skip.
    pub async fn fresh_database(label: &str) -> Option<String> {
        let server = server_url(label)?;
        let mut admin = PgConnection::connect(&server)
            .await
            .unwrap_or_else(|e| panic!("{label}: connecting to {URL_VAR} ({server}): {e}"));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        drop_stale(&mut admin, now).await;
        let name = format!("{PREFIX}{now}_{}", uuid::Uuid::new_v4().simple());
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("{label}: creating database {name}: {e}"));
        admin.close().await.ok();
        let mut url = url::Url::parse(&server)
            .unwrap_or_else(|e| panic!("{URL_VAR} is not a URL ({server}): {e}"));
        url.set_path(&format!("/{name}"));
        Some(url.to_string())
    }

    /// Drops the database at `url` (made by [`fresh_database`]), closing
    /// any connection still open to it.
    pub async fn drop_database(url: &str) {
        let Ok(parsed) = url::Url::parse(url) else {
            return;
        };
        let name = parsed.path().trim_start_matches('/').to_string();
        if !name.starts_with(PREFIX) {
            return;
        }
        // Connect to the server's own database: one cannot drop the database one is in.
        let server = std::env::var(URL_VAR).unwrap_or_else(|_| {
            let mut server = parsed;
            server.set_path("/postgres");
            server.to_string()
        });
        if let Ok(mut admin) = PgConnection::connect(server.trim()).await {
            drop_named(&mut admin, &name).await;
            admin.close().await.ok();
        }
    }

    /// Generates two tests per case: `sqlite::<case>` and
    /// `postgres::<case>`. Each case is an `async fn <case>(postgres:
    /// Option<String>)` of the calling file; the first test calls it with
    /// `None` (the case uses SQLite), the second with the URL of a
    /// [`fresh_database`] (without `JUNCTION_TEST_POSTGRES_URL` it prints
    /// `SKIPPED` and passes), dropped once the case has passed.
    #[macro_export]
    macro_rules! sqlite_and_postgres {
        ($file:literal: $($case:ident),* $(,)?) => {
            mod sqlite {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $case() {
                        super::$case(None).await;
                    }
                )*
            }
            mod postgres {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $case() {
                        let label = concat!($file, "::postgres::", stringify!($case));
                        let Some(url) = $crate::postgres::fresh_database(label).await else {
                            return;
                        };
                        super::$case(Some(url.clone())).await;
                        $crate::postgres::drop_database(&url).await;
                    }
                )*
            }
        };
    }

    async fn drop_stale(admin: &mut PgConnection, now: u64) {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT datname FROM pg_database WHERE datname LIKE 'junction\\_test\\_%'",
        )
        .fetch_all(&mut *admin)
        .await
        .unwrap_or_default();
        for name in names {
            let created = name
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.split('_').next())
                .and_then(|secs| secs.parse::<u64>().ok());
            if created.is_some_and(|at| now.saturating_sub(at) > MAX_AGE.as_secs()) {
                drop_named(admin, &name).await;
            }
        }
    }

    async fn drop_named(admin: &mut PgConnection, name: &str) {
        // Several test processes may clean up at once: a failure is not ours to report.
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .execute(admin)
        .await;
    }
}
