//! Host configuration: `junction.toml`, every key overridable by a
//! `JUNCTION_*` environment variable (nested keys joined by `__`, e.g.
//! `JUNCTION_LIMITS__MEMORY_MIB=128` or `JUNCTION_TOKENS__CI__TOKEN=...`).
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! database = "junction-data/junction.db"
//! plugin_dir = "plugins.d"
//!
//! [limits]
//! memory_mib = 64
//! deadline_ms = 10000
//!
//! [tokens.ops]
//! token = "change-me"
//! scope = "operator"
//!
//! [flows]
//! workers = 2
//! lease_ms = 30000
//! ```
//!
//! `database` is a SQLite file or a PostgreSQL URL
//! (`postgres://user@host:5432/junction`, which needs `secret_key`).
//! `secret_key` (better set as `JUNCTION_SECRET_KEY` than written in the
//! file) is the master key that seals connection secrets in the database;
//! `public_url` is the address webhook senders use to reach the host.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::engine::Limits;
use crate::flows::FlowOptions;
use crate::secrets::{Redacted, SecretBox};
use crate::store::redact_url;

/// What a bearer token may do. Each scope includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read plugins, connections, runs.
    Read,
    /// Also invoke operations and apply transforms.
    Invoker,
    /// Also change connections, plugins and flows.
    Operator,
    /// Everything, including the audit log.
    Admin,
}

impl Scope {
    /// The scope's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Invoker => "invoker",
            Scope::Operator => "operator",
            Scope::Admin => "admin",
        }
    }
}

/// One API token.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// The bearer token itself (at least 16 characters).
    pub token: String,
    /// What it may do.
    pub scope: Scope,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// The host's configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the API listens on.
    pub listen: SocketAddr,
    /// Where the host keeps its state: a SQLite database file (the embedded
    /// default), or a PostgreSQL URL (`postgres://` or `postgresql://`, for
    /// several hosts sharing one database; it needs `secret_key`). Absent
    /// keeps everything in memory (lost on exit). See [`Config::database_location`].
    pub database: Option<PathBuf>,
    /// Directory watched for plugin packages (`*.jpkg`): dropping one in
    /// uploads it, removing it unloads that version (unless it is active or pinned).
    pub plugin_dir: Option<PathBuf>,
    /// Compiled-code cache; absent compiles every component at every load.
    pub cache_dir: Option<PathBuf>,
    /// Refuse packages that are not signed by one of `trusted_keys`.
    pub require_signatures: bool,
    /// Public keys (`ed25519:<base64>`) whose signatures are trusted.
    pub trusted_keys: Vec<String>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Largest component accepted, in bytes.
    pub max_component_bytes: usize,
    /// Limits of every plugin call.
    pub limits: Limits,
    /// API tokens by name (the name is what the audit log shows).
    pub tokens: BTreeMap<String, Token>,
    /// The master key sealing connection secrets at rest: standard base64
    /// of 32 random bytes (`openssl rand -base64 32`). Absent: a key file
    /// beside the database is read, or created on first start (see
    /// [`store::key_file_path`](crate::store::key_file_path)); an in-memory
    /// store uses a throwaway key.
    pub secret_key: Option<Redacted<String>>,
    /// The URL webhook senders use to reach this host (scheme, host, port
    /// and any path prefix a proxy adds), e.g. `https://junction.example.com`.
    /// Schemes that sign the URL (HubSpot v3) are checked against it.
    /// Absent: `http://` followed by `listen`.
    pub public_url: Option<String>,
    /// The flow workers of this host.
    pub flows: FlowSettings,
}

/// The flow workers of a host (`[flows]`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct FlowSettings {
    /// Worker tasks claiming runs (at least 1).
    pub workers: usize,
    /// How long a claimed run stays with its worker without renewal, in ms;
    /// each step call holds it for this plus the plugin deadline. A crashed
    /// host's runs are taken over once it expires.
    pub lease_ms: u64,
    /// The longest an idle worker waits before looking for due runs and
    /// expired leases again, in ms (new runs of this host wake it at once).
    pub idle_poll_ms: u64,
}

impl Default for FlowSettings {
    fn default() -> Self {
        let options = FlowOptions::default();
        FlowSettings {
            workers: options.workers,
            lease_ms: u64::try_from(options.lease.as_millis()).unwrap_or(u64::MAX),
            idle_poll_ms: u64::try_from(options.idle_poll.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

impl FlowSettings {
    /// The worker options these settings describe.
    pub fn options(&self) -> FlowOptions {
        FlowOptions {
            workers: self.workers,
            lease: std::time::Duration::from_millis(self.lease_ms),
            idle_poll: std::time::Duration::from_millis(self.idle_poll_ms),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database: Some(PathBuf::from("junction-data/junction.db")),
            plugin_dir: None,
            cache_dir: Some(PathBuf::from("junction-data/cache")),
            require_signatures: false,
            trusted_keys: Vec::new(),
            max_body_bytes: 4 * 1024 * 1024,
            max_component_bytes: junction_registry::DEFAULT_MAX_COMPONENT_BYTES,
            limits: Limits::default(),
            tokens: BTreeMap::new(),
            secret_key: None,
            public_url: None,
            flows: FlowSettings::default(),
        }
    }
}

/// Top-level keys; `JUNCTION_*` variables naming anything else (such as
/// `JUNCTION_TEST_POSTGRES_URL`) are not configuration and are ignored.
const KEYS: &[&str] = &[
    "listen",
    "database",
    "plugin_dir",
    "cache_dir",
    "require_signatures",
    "trusted_keys",
    "max_body_bytes",
    "max_component_bytes",
    "limits",
    "tokens",
    "secret_key",
    "public_url",
    "flows",
];

impl Config {
    /// Defaults, then `path` (when given it must exist), then `JUNCTION_*` variables.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = path {
            if !path.is_file() {
                anyhow::bail!("config file {} does not exist", path.display());
            }
            figment = figment.merge(Toml::file(path));
        }
        // Keys arrive in the case they were written in: compare without case.
        let env = Env::prefixed("JUNCTION_").split("__").filter(|key| {
            let first = key.as_str().split('.').next().unwrap_or_default();
            KEYS.iter().any(|k| first.eq_ignore_ascii_case(k))
        });
        let config: Config = figment
            .merge(env)
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, token) in &self.tokens {
            if token.token.len() < 16 {
                anyhow::bail!("token `{name}` is shorter than 16 characters");
            }
        }
        if self.limits.memory_mib == 0 || self.limits.deadline_ms == 0 {
            anyhow::bail!("limits.memory_mib and limits.deadline_ms must be above zero");
        }
        if let Some(key) = &self.secret_key {
            SecretBox::from_config(key.expose()).map_err(|e| anyhow::anyhow!("secret_key: {e}"))?;
        }
        self.check_database()?;
        if let Some(url) = &self.public_url {
            check_public_url(url)?;
        }
        if self.flows.workers == 0 || self.flows.lease_ms == 0 || self.flows.idle_poll_ms == 0 {
            anyhow::bail!(
                "flows.workers, flows.lease_ms and flows.idle_poll_ms must be above zero"
            );
        }
        Ok(())
    }

    /// What `database` names.
    pub fn database_location(&self) -> DatabaseLocation<'_> {
        let Some(path) = &self.database else {
            return DatabaseLocation::Memory;
        };
        match path.to_str() {
            Some(text) if is_postgres_url(text) => DatabaseLocation::Postgres(text.trim()),
            _ => DatabaseLocation::Sqlite(path),
        }
    }

    /// A PostgreSQL `database` must be a URL and come with `secret_key`;
    /// a SQLite one must not look like a URL of another database.
    fn check_database(&self) -> anyhow::Result<()> {
        match self.database_location() {
            DatabaseLocation::Memory => Ok(()),
            DatabaseLocation::Postgres(text) => {
                url::Url::parse(text).map_err(|e| {
                    anyhow::anyhow!(
                        "database: `{}` is not a valid PostgreSQL URL: {e}",
                        redact_url(text)
                    )
                })?;
                if self.secret_key.is_none() {
                    anyhow::bail!(POSTGRES_NEEDS_KEY);
                }
                Ok(())
            }
            DatabaseLocation::Sqlite(path) => {
                let text = path.to_string_lossy();
                if let Some((scheme, _)) = text.split_once("://")
                    && !scheme.is_empty()
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                {
                    anyhow::bail!(
                        "database: `{scheme}://` is not supported; give a SQLite file path or a \
                         `postgres://` URL"
                    );
                }
                Ok(())
            }
        }
    }

    /// The URL senders reach the host at, without a trailing `/`:
    /// `public_url`, or `http://<listen>`.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim().trim_end_matches('/').to_string(),
            None => format!("http://{}", self.listen),
        }
    }
}

/// Where the host keeps its state (see [`Config::database`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseLocation<'a> {
    /// An in-memory SQLite database, lost on exit.
    Memory,
    /// A SQLite database file.
    Sqlite(&'a Path),
    /// A PostgreSQL URL.
    Postgres(&'a str),
}

/// Whether `text` is a `postgres://` or `postgresql://` URL.
fn is_postgres_url(text: &str) -> bool {
    let text = text.trim_start();
    ["postgres://", "postgresql://"].iter().any(|scheme| {
        text.get(..scheme.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(scheme))
    })
}

/// Why a host with a PostgreSQL database and no `secret_key` does not start.
pub(crate) const POSTGRES_NEEDS_KEY: &str = "database is PostgreSQL, which needs `secret_key` \
     (JUNCTION_SECRET_KEY): there is no key file beside it, and every host sharing it must \
     seal connection secrets with the same key (`openssl rand -base64 32`)";

/// A public URL is an absolute `http` or `https` URL with a host and no
/// credentials, query or fragment.
fn check_public_url(text: &str) -> anyhow::Result<()> {
    let bad = |why: &str| anyhow::anyhow!("public_url `{text}` {why}");
    let url = url::Url::parse(text.trim()).map_err(|e| bad(&format!("is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not contain credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or a fragment"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure returns figment::Error
    fn file_then_env_override() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junction.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9999\"\n[limits]\nmemory_mib = 32\n[tokens.ops]\ntoken = \"0123456789abcdef\"\nscope = \"operator\"\n",
        )
        .unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("JUNCTION_LIMITS__DEADLINE_MS", "1234");
            jail.set_env("JUNCTION_TEST_POSTGRES_URL", "postgres://ignored");
            jail.set_env("JUNCTION_TOKENS__CI__TOKEN", "fedcba9876543210");
            jail.set_env("JUNCTION_TOKENS__CI__SCOPE", "invoker");
            jail.set_env("JUNCTION_FLOWS__LEASE_MS", "1500");
            let config = Config::load(Some(&path)).map_err(|e| e.to_string())?;
            assert_eq!(config.listen.port(), 9999);
            assert_eq!(config.limits.memory_mib, 32);
            assert_eq!(config.limits.deadline_ms, 1234);
            assert_eq!(config.tokens["ops"].scope, Scope::Operator);
            assert_eq!(config.tokens["ci"].scope, Scope::Invoker);
            assert_eq!(config.tokens["ci"].token, "fedcba9876543210");
            assert_eq!(
                config.flows.options().lease,
                std::time::Duration::from_millis(1500)
            );
            assert_eq!(config.flows.workers, FlowOptions::default().workers);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_short_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junction.toml");
        std::fs::write(&path, "lisen = \"127.0.0.1:1\"\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("lisen"), "{err}");
        std::fs::write(&path, "[tokens.x]\ntoken = \"short\"\nscope = \"read\"\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("shorter than 16"), "{err}");
        assert!(Config::load(Some(&dir.path().join("missing.toml"))).is_err());
        std::fs::write(&path, "[flows]\nlease_ms = 0\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("flows.lease_ms"), "{err}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure returns figment::Error
    fn secret_key_from_env_is_checked_and_redacted() {
        // A key with every character base64 may use beyond letters and digits.
        let key = "+/+/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        figment::Jail::expect_with(|jail| {
            jail.set_env("JUNCTION_SECRET_KEY", key);
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(
                config.secret_key.as_ref().map(|k| k.expose().as_str()),
                Some(key)
            );
            assert!(!format!("{config:?}").contains(key));
            jail.set_env("JUNCTION_SECRET_KEY", "c2hvcnQ=");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("secret_key") && err.contains("32"), "{err}");
            assert!(!err.contains("c2hvcnQ="), "{err}");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure returns figment::Error
    fn database_is_a_sqlite_path_or_a_postgres_url() {
        let mut config = Config {
            database: None,
            ..Config::default()
        };
        assert_eq!(config.database_location(), DatabaseLocation::Memory);
        config.database = Some("data/junction.db".into());
        assert_eq!(
            config.database_location(),
            DatabaseLocation::Sqlite(Path::new("data/junction.db"))
        );
        config.validate().unwrap();
        for url in [
            "postgres://junction@db.example:5432/junction",
            "postgresql://junction:pw@db.example/junction?sslmode=require",
            "POSTGRES://db.example/junction",
        ] {
            config.database = Some(url.into());
            assert_eq!(config.database_location(), DatabaseLocation::Postgres(url));
        }
        // PostgreSQL has no key file beside it: the key must be configured.
        config.secret_key = None;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("`secret_key` (JUNCTION_SECRET_KEY)"), "{err}");
        config.secret_key = Some(crate::secrets::generate_key().into());
        config.validate().unwrap();
        // Other URLs are refused, and a password never shows in a message.
        config.database = Some("mysql://root:hunter2@db.example/junction".into());
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("mysql://") && err.contains("postgres://"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        config.database = Some("postgres://u:hunter2@db.example:port/junction".into());
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("not a valid PostgreSQL URL"), "{err}");
        assert!(
            err.contains("postgres://u:***@db.example:port/junction"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");

        // The environment override takes a URL too.
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "JUNCTION_DATABASE",
                "postgres://junction@db.example/junction",
            );
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("secret_key"), "{err}");
            jail.set_env("JUNCTION_SECRET_KEY", crate::secrets::generate_key());
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(
                config.database_location(),
                DatabaseLocation::Postgres("postgres://junction@db.example/junction")
            );
            Ok(())
        });
    }

    #[test]
    fn public_url_default_and_checks() {
        let mut config = Config::default();
        assert_eq!(config.public_url(), "http://127.0.0.1:8080");
        config.public_url = Some("https://junction.example.com/hooks/".into());
        config.validate().unwrap();
        assert_eq!(config.public_url(), "https://junction.example.com/hooks");
        for bad in [
            "junction.example.com",
            "ftp://junction.example.com",
            "https://user:pw@junction.example.com",
            "https://junction.example.com/?x=1",
            "https://junction.example.com/#top",
        ] {
            config.public_url = Some(bad.into());
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains("public_url"), "{bad}: {err}");
        }
    }
}
