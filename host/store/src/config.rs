//! The store's configuration: where the state lives (`database`) and the key
//! sealing connection secrets in it (`secret_key`). Top-level keys of
//! `junction.toml`; the binary composes them with the other crates' sections.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::redact_url;
use crate::secrets::{Redacted, SecretBox};

/// The store's settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct StoreConfig {
    /// Where the host keeps its state: a SQLite database file (the embedded
    /// default), or a PostgreSQL URL (`postgres://` or `postgresql://`, for
    /// several hosts sharing one database; it needs `secret_key`). Absent
    /// keeps everything in memory (lost on exit). See [`StoreConfig::database_location`].
    pub database: Option<PathBuf>,
    /// The master key sealing connection secrets at rest: standard base64
    /// of 32 random bytes (`openssl rand -base64 32`). Absent: a key file
    /// beside the database is read, or created on first start (see
    /// [`key_file_path`](crate::key_file_path)); an in-memory store uses a
    /// throwaway key.
    pub secret_key: Option<Redacted<String>>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            database: Some(PathBuf::from("junction-data/junction.db")),
            secret_key: None,
        }
    }
}

/// The top-level keys these settings own.
pub const KEYS: &[&str] = &["database", "secret_key"];

impl StoreConfig {
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

    /// Checks what serde cannot: the key is well formed, a PostgreSQL
    /// `database` is a URL and comes with `secret_key`, a SQLite one does not
    /// look like a URL of another database.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(key) = &self.secret_key {
            SecretBox::from_config(key.expose()).map_err(|e| format!("secret_key: {e}"))?;
        }
        match self.database_location() {
            DatabaseLocation::Memory => Ok(()),
            DatabaseLocation::Postgres(text) => {
                url::Url::parse(text).map_err(|e| {
                    format!(
                        "database: `{}` is not a valid PostgreSQL URL: {e}",
                        redact_url(text)
                    )
                })?;
                if self.secret_key.is_none() {
                    return Err(POSTGRES_NEEDS_KEY.to_string());
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
                    return Err(format!(
                        "database: `{scheme}://` is not supported; give a SQLite file path or a \
                         `postgres://` URL"
                    ));
                }
                Ok(())
            }
        }
    }
}

/// Where the host keeps its state (see [`StoreConfig::database`]).
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
