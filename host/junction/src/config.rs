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

use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::{Figment, Provider};
use serde::{Deserialize, Serialize};

pub use junction_api::config::{ApiConfig, Scope, Token};
pub use junction_flows::EventSettings;
pub use junction_flows::config::FlowSettings;
pub use junction_runtime::config::RuntimeConfig;
pub use junction_store::config::{DatabaseLocation, StoreConfig};

pub use crate::telemetry::TelemetryConfig;

/// The host's configuration: each crate's section, composed. The store's,
/// the runtime's and the API's keys sit at the top level of `junction.toml`;
/// the flow engine's are the `[flows]` table.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Config {
    /// `database`, `secret_key`.
    #[serde(flatten)]
    pub store: StoreConfig,
    /// `plugin_dir`, `cache_dir`, `require_signatures`, `trusted_keys`,
    /// `max_component_bytes`, `[limits]`.
    #[serde(flatten)]
    pub runtime: RuntimeConfig,
    /// `listen`, `max_body_bytes`, `public_url`, `[tokens.<name>]`.
    #[serde(flatten)]
    pub api: ApiConfig,
    /// `[flows]`.
    pub flows: FlowSettings,
    /// `[events]`: the outbox published to NATS JetStream.
    pub events: EventSettings,
    /// `[telemetry]`: trace export.
    pub telemetry: TelemetryConfig,
}

/// Every top-level key: the sections' own. `JUNCTION_*` variables naming
/// anything else (such as `JUNCTION_TEST_POSTGRES_URL`) are not
/// configuration and are ignored; a file naming anything else is refused.
fn known(key: &str) -> bool {
    junction_store::config::KEYS
        .iter()
        .chain(junction_runtime::config::KEYS)
        .chain(junction_api::config::KEYS)
        .chain(&["flows", "events", "telemetry"])
        .any(|k| key.eq_ignore_ascii_case(k))
}

impl Config {
    /// Defaults, then `path` (when given it must exist), then `JUNCTION_*` variables.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = path {
            if !path.is_file() {
                anyhow::bail!("config file {} does not exist", path.display());
            }
            let file = Figment::from(Toml::file(path));
            let data = file
                .data()
                .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
            for dict in data.values() {
                if let Some(key) = dict.keys().find(|key| !known(key)) {
                    anyhow::bail!(
                        "invalid configuration: unknown field `{key}` in {}",
                        path.display()
                    );
                }
            }
            figment = figment.merge(file);
        }
        // Keys arrive in the case they were written in: compare without case.
        let env = Env::prefixed("JUNCTION_")
            .split("__")
            .filter(|key| known(key.as_str().split('.').next().unwrap_or_default()));
        let config: Config = figment
            .merge(env)
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot, section by section.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.api.validate().map_err(anyhow::Error::msg)?;
        self.runtime.validate().map_err(anyhow::Error::msg)?;
        self.store.validate().map_err(anyhow::Error::msg)?;
        self.flows.validate().map_err(anyhow::Error::msg)?;
        self.events.validate().map_err(anyhow::Error::msg)?;
        self.telemetry.validate().map_err(anyhow::Error::msg)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use junction_flows::FlowOptions;

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
            assert_eq!(config.api.listen.port(), 9999);
            assert_eq!(config.runtime.limits.memory_mib, 32);
            assert_eq!(config.runtime.limits.deadline_ms, 1234);
            assert_eq!(config.api.tokens["ops"].scope, Scope::Operator);
            assert_eq!(config.api.tokens["ci"].scope, Scope::Invoker);
            assert_eq!(config.api.tokens["ci"].token, "fedcba9876543210");
            assert_eq!(
                config.flows.options().lease,
                std::time::Duration::from_millis(1500)
            );
            assert_eq!(config.flows.workers, FlowOptions::default().workers);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure returns figment::Error
    fn unknown_keys_and_short_tokens_are_refused() {
        // In a Jail: the other tests set `JUNCTION_*` variables in their
        // Jails, which must not reach this one's loads.
        figment::Jail::expect_with(|_| {
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
            Ok(())
        });
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
                config
                    .store
                    .secret_key
                    .as_ref()
                    .map(|k| k.expose().as_str()),
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
            store: StoreConfig {
                database: None,
                ..StoreConfig::default()
            },
            ..Config::default()
        };
        assert_eq!(config.store.database_location(), DatabaseLocation::Memory);
        config.store.database = Some("data/junction.db".into());
        assert_eq!(
            config.store.database_location(),
            DatabaseLocation::Sqlite(Path::new("data/junction.db"))
        );
        config.validate().unwrap();
        for url in [
            "postgres://junction@db.example:5432/junction",
            "postgresql://junction:pw@db.example/junction?sslmode=require",
            "POSTGRES://db.example/junction",
        ] {
            config.store.database = Some(url.into());
            assert_eq!(
                config.store.database_location(),
                DatabaseLocation::Postgres(url)
            );
        }
        // PostgreSQL has no key file beside it: the key must be configured.
        config.store.secret_key = None;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("`secret_key` (JUNCTION_SECRET_KEY)"), "{err}");
        config.store.secret_key = Some(junction_store::secrets::generate_key().into());
        config.validate().unwrap();
        // Other URLs are refused, and a password never shows in a message.
        config.store.database = Some("mysql://root:hunter2@db.example/junction".into());
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("mysql://") && err.contains("postgres://"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        config.store.database = Some("postgres://u:hunter2@db.example:port/junction".into());
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
            jail.set_env(
                "JUNCTION_SECRET_KEY",
                junction_store::secrets::generate_key(),
            );
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(
                config.store.database_location(),
                DatabaseLocation::Postgres("postgres://junction@db.example/junction")
            );
            Ok(())
        });
    }

    #[test]
    fn public_url_default_and_checks() {
        let mut config = Config::default();
        assert_eq!(config.api.public_url(), "http://127.0.0.1:8080");
        config.api.public_url = Some("https://junction.example.com/hooks/".into());
        config.validate().unwrap();
        assert_eq!(
            config.api.public_url(),
            "https://junction.example.com/hooks"
        );
        for bad in [
            "junction.example.com",
            "ftp://junction.example.com",
            "https://user:pw@junction.example.com",
            "https://junction.example.com/?x=1",
            "https://junction.example.com/#top",
        ] {
            config.api.public_url = Some(bad.into());
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains("public_url"), "{bad}: {err}");
        }
    }
}
