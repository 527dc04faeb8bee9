//! The host's durable state and every SQL statement of the host: connections,
//! plugin packages and versions, kv, idempotency keys, audit, flows, runs,
//! steps, dead letters, schedules and what the business KPIs are computed
//! from (runs by window, manual touches). No other crate of the host holds SQL.
//!
//! SQLite is the embedded default (WAL journal, `synchronous=FULL` so that
//! anything the API acknowledged survives a crash), reached through `sqlx`
//! with migrations embedded in the binary.
//!
//! Connection secrets (the `auth` and `webhook` columns) are stored sealed
//! with [`SecretBox`], each bound to its connection and column. The key comes
//! from configuration (`secret_key`); without one, an on-disk database gets a
//! key file beside it ([`key_file_path`]), created on first start, and the
//! in-memory store a throwaway key. Opening a database checks every sealed
//! secret against the key, so a wrong key stops the host at start rather
//! than at the first call, and seals any plaintext secret an older version
//! stored.
//!
//! The SQL of flows (deploys, runs and their steps, dead letters, schedules,
//! flow events and the workers' leases) is the same on SQLite and PostgreSQL
//! (`$n` placeholders, BIGINT millisecond times, TEXT JSON, no SQLite-only
//! functions), except for the claim of a run, which on PostgreSQL locks the
//! row it takes with `FOR UPDATE SKIP LOCKED` (SQLite serialises writers,
//! so its single `UPDATE ... WHERE id = (SELECT ...)` is already exclusive).

use std::path::{Path, PathBuf};

use sqlx::AnyPool;

pub mod audit;
mod changes;
mod circuits;
pub mod commit;
pub mod config;
mod connections;
mod console;
mod dead_letters;
pub mod events;
mod flows;
mod governance;
pub mod idempotency;
mod kpis;
mod kv;
mod open;
mod packages;
mod runs;
mod schedules;
mod scheme;
pub mod secrets;
#[cfg(test)]
mod tests;
mod waits;
mod work;

pub use changes::{Change, ChangeFeed};
pub use circuits::{CircuitRow, CircuitSettings, FailureOutcome};
pub use config::{DatabaseLocation, StoreConfig};
pub use connections::{Auth, CheckRow, Connection, RateLimit, WebhookSettings};
pub use console::{ConsoleKind, ConsoleSession};
pub use dead_letters::{DeadLetterRow, NewDeadLetter, ReplayOutcome, TouchKind};
pub use events::{CloudEvent, Cursor, EventRow};
pub use flows::{
    DeployOutcome, FlowRow, FlowSource, FlowVersionRow, NewFlowVersion, ScheduleUpdate,
};
pub use governance::{GovernanceRow, NewXref, XrefRow};
pub use kpis::{CompletedStepRow, KpiRunRow, KpiStepRow, TouchRow};
pub use kv::{KvOverQuota, KvQuota, KvUsage};
pub use packages::StoredVersion;
pub use runs::{NewEventRun, NewRun, NewStep, RunRow, StartedEventRun, StepRow};
pub use schedules::DueSchedule;
pub use scheme::{Encoding, Scheme};
pub use waits::{NewSignal, SignalOutcome, SignalRow};
pub use work::{AfterFailure, Fence, RunStateRow, RunWrite, StepStateRow};

use secrets::{SecretBox, SecretError};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored JSON column did not decode.
    #[error("stored data is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// A kv write would take the connection's kv over its quota.
    #[error(transparent)]
    KvQuota(#[from] KvOverQuota),
    /// The key that seals connection secrets could not be loaded or created.
    #[error("{0}")]
    Key(String),
    /// The configured database cannot be used as given.
    #[error("{0}")]
    Config(String),
    /// A connection's stored secret could not be opened: it was sealed
    /// under another key, altered, or never sealed.
    #[error(
        "cannot open the stored `{column}` secret of connection `{connection}`: {reason}; \
         this host's key is {key_origin}"
    )]
    Secret {
        /// The connection.
        connection: String,
        /// `auth` or `webhook`.
        column: &'static str,
        /// Why it did not open.
        reason: SecretError,
        /// Where the host's key came from.
        key_origin: String,
    },
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Pragmas set on every SQLite connection: wait for a busy database
/// rather than fail, enforce foreign keys, and overwrite deleted content with
/// zeros so that a replaced secret (or a plaintext one sealed on migration)
/// does not linger in free pages.
const SQLITE_PRAGMAS: [&str; 3] = [
    "PRAGMA busy_timeout = 5000",
    "PRAGMA foreign_keys = ON",
    "PRAGMA secure_delete = ON",
];

/// Pragmas of SQLite files: the WAL journal, and `synchronous=FULL` so that
/// anything the API acknowledged survives a crash or power loss.
const SQLITE_FILE_PRAGMAS: [&str; 2] = ["PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL"];

/// The database behind a [`Store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite: one host (several processes only through the same file).
    Sqlite,
    /// PostgreSQL: one or several hosts sharing it.
    Postgres,
}

/// A transaction of the store.
pub(crate) type Transaction = sqlx::Transaction<'static, sqlx::Any>;

/// A handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    secrets: SecretBox,
    /// Where `secrets`' key came from, for error messages.
    key_origin: String,
    /// How long the group committer's commits take (shared by the clones).
    commit_seconds: prometheus_client::metrics::histogram::Histogram,
    /// The PostgreSQL URL, for listening to the other hosts' notices.
    url: Option<ListenUrl>,
    /// Woken when this process wrote events to the outbox.
    events_written: std::sync::Arc<tokio::sync::Notify>,
}

/// A database URL that prints without its password.
#[derive(Clone)]
struct ListenUrl(String);

impl std::ops::Deref for ListenUrl {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ListenUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

/// Where the key sealing connection secrets comes from.
enum KeySource<'a> {
    /// Configured.
    Given(SecretBox),
    /// The key file beside the database at this path.
    File(&'a Path),
    /// A new random key that dies with the process.
    Ephemeral,
}

/// The key file used for the database at `database` when no `secret_key`
/// is configured: the database's file name with `.key` appended.
pub fn key_file_path(database: &Path) -> PathBuf {
    let mut name = database.file_name().unwrap_or_default().to_os_string();
    name.push(".key");
    database.with_file_name(name)
}

/// Begins a transaction that writes. On SQLite it takes the write lock at
/// once (`BEGIN IMMEDIATE`): a deferred transaction that reads first cannot
/// upgrade to a writer once another connection has committed, and fails with
/// "database is locked" without waiting; an immediate one waits its turn
/// behind the busy timeout instead. PostgreSQL needs nothing of the kind.
pub(crate) async fn begin_write(pool: &AnyPool, backend: Backend) -> sqlx::Result<Transaction> {
    match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => pool.begin().await,
    }
}

impl Store {
    /// A transaction that writes; see [`begin_write`].
    pub(crate) async fn begin(&self) -> Result<Transaction> {
        Ok(begin_write(&self.pool, self.backend).await?)
    }

    /// The connection pool, for the store's other modules.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The latency of the group committer's commits, in seconds, for the
    /// runtime to register with its metrics (shared by every clone).
    pub fn commit_seconds(&self) -> prometheus_client::metrics::histogram::Histogram {
        self.commit_seconds.clone()
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// `url` without its password, for messages and logs (also when it does
/// not parse: the text between `user:` and `@` is hidden).
pub fn redact_url(url: &str) -> String {
    if let Ok(mut parsed) = url::Url::parse(url) {
        if parsed.password().is_some() && parsed.set_password(Some("***")).is_ok() {
            return parsed.to_string();
        }
        return url.to_string();
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{}", &rest[authority_end..])
        }
        None => url.to_string(),
    }
}

/// Milliseconds since the Unix epoch, the store's clock.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
