//! The host's durable state: connections and plugin key-value state.
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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyConnection, AnyPool, ConnectOptions as _, Connection as _, Row};

use crate::config::{Config, DatabaseLocation, POSTGRES_NEEDS_KEY};
use crate::secrets::{SecretBox, SecretError, generate_key};

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

/// Credentials of a connection. The host adds them to the connection's
/// outbound requests; they are never given to a plugin nor returned by the API.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    /// HTTP Basic (`Authorization: Basic base64(username:password)`), as Jira Cloud uses.
    Basic {
        /// User name or e-mail.
        username: String,
        /// Password or API token.
        password: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: String,
    },
    /// A key sent in a header of its own, e.g. `X-API-Key`.
    ApiKey {
        /// Header name.
        header: String,
        /// Header value.
        value: String,
    },
    /// OAuth 2.0 client-credentials grant (RFC 6749 section 4.4): the host
    /// fetches an access token, caches it until it expires, fetches a new
    /// one when the remote system answers 401, and sends it as a bearer token.
    #[serde(rename = "oauth2_client_credentials")]
    OAuth2ClientCredentials {
        /// The token endpoint.
        token_url: String,
        /// Client id.
        client_id: String,
        /// Client secret.
        client_secret: String,
        /// Space-separated scopes, if the system wants them.
        #[serde(default)]
        scope: Option<String>,
    },
    /// OAuth 2.0 refresh-token grant (RFC 6749 section 6): as the
    /// client-credentials grant, but each access token is obtained with a
    /// long-lived refresh token.
    #[serde(rename = "oauth2_refresh_token")]
    OAuth2RefreshToken {
        /// The token endpoint.
        token_url: String,
        /// Client id.
        client_id: String,
        /// Client secret.
        client_secret: String,
        /// The refresh token.
        refresh_token: String,
        /// Space-separated scopes, if the system wants them.
        #[serde(default)]
        scope: Option<String>,
    },
}

impl Auth {
    /// The scheme's name, safe to show.
    pub fn kind(&self) -> &'static str {
        match self {
            Auth::Basic { .. } => "basic",
            Auth::Bearer { .. } => "bearer",
            Auth::ApiKey { .. } => "api_key",
            Auth::OAuth2ClientCredentials { .. } => "oauth2_client_credentials",
            Auth::OAuth2RefreshToken { .. } => "oauth2_refresh_token",
        }
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Auth::{}(<redacted>)", self.kind())
    }
}

/// How a connection's inbound webhooks are authenticated. The secret never
/// leaves the host: it is stored encrypted and never returned by the API.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// The sender's signature scheme.
    pub scheme: crate::webhooks::Scheme,
    /// The shared signing secret.
    pub secret: String,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("scheme", &self.scheme)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A connection's outbound rate limit: `requests` per `per_seconds`, with
/// bursts of up to `burst` (default: `requests`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests allowed per period.
    pub requests: u32,
    /// The period, in seconds.
    #[serde(default = "one")]
    pub per_seconds: u32,
    /// Requests allowed at once after a quiet period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

fn one() -> u32 {
    1
}

/// A connection: one configured account of one external system.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Connection {
    /// Unique name, used in API paths.
    pub name: String,
    /// The connector plugin.
    pub plugin: String,
    /// A pinned plugin version; `None` follows the active version.
    pub version: Option<String>,
    /// Non-secret settings, visible to the plugin.
    pub config: BTreeMap<String, String>,
    /// Credentials; never visible to the plugin.
    pub auth: Option<Auth>,
    /// Hosts the plugin may reach on this connection (`host` or `host:port`).
    pub allowed_hosts: Vec<String>,
    /// Allowed hosts that may resolve to loopback, private or link-local
    /// addresses (an on-premises ERP, a local stand-in). Others may not.
    pub private_hosts: Vec<String>,
    /// Outbound rate limit; `None` is unlimited.
    pub rate_limit: Option<RateLimit>,
    /// Inbound webhook verification; `None` refuses webhooks.
    pub webhook: Option<WebhookSettings>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

/// A plugin version the host accepted, as stored.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StoredVersion {
    /// Plugin name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// `connector` or `transform`.
    pub world: String,
    /// sha256 of the component.
    pub component_digest: String,
    /// sha256 of the package (manifest + component); the key of its bytes.
    pub package_digest: String,
    /// Key id of the signer, when signed.
    pub signer: Option<String>,
    /// RFC 3339 upload time.
    pub uploaded_at: String,
    /// Token name of the uploader.
    pub uploaded_by: String,
}

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

impl Store {
    /// Opens the database `config` names (`database`): a SQLite file
    /// (created with its directory when missing), a PostgreSQL URL, or, when
    /// absent, an in-memory SQLite database. PostgreSQL needs `secret_key`:
    /// there is no key file beside it, and hosts sharing it must share the key.
    pub async fn open(config: &Config) -> Result<Store> {
        match config.database_location() {
            DatabaseLocation::Memory => Self::in_memory().await,
            DatabaseLocation::Sqlite(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        Error::Config(format!(
                            "database: cannot create the directory {}: {e}",
                            parent.display()
                        ))
                    })?;
                }
                Self::open_sqlite_with_config(path, config).await
            }
            DatabaseLocation::Postgres(url) => {
                let Some(key) = configured_key(config)? else {
                    return Err(Error::Config(POSTGRES_NEEDS_KEY.to_string()));
                };
                Self::open_postgres(url, key).await
            }
        }
    }

    /// Opens the PostgreSQL database at `url` (`postgres://` or
    /// `postgresql://`) and migrates it; secrets are sealed with `key`.
    pub async fn open_postgres(url: &str, key: SecretBox) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let options = AnyConnectOptions::from_str(url)
            .map_err(|e| Error::Config(format!("database {}: {e}", redact_url(url))))?;
        let unreachable = |e: sqlx::Error| {
            Error::Config(format!(
                "database: cannot connect to PostgreSQL at {}: {e}",
                redact_url(url)
            ))
        };
        // One connection first: the pool would retry a refused connection
        // until its acquire timeout, and the host should stop at once.
        AnyConnection::connect_with(&options)
            .await
            .map_err(unreachable)?
            .close()
            .await
            .map_err(unreachable)?;
        let pool = AnyPoolOptions::new()
            .max_connections(16)
            .min_connections(0)
            .connect_with(options)
            .await
            .map_err(unreachable)?;
        Self::finish(pool, Backend::Postgres, KeySource::Given(key)).await
    }

    /// Opens (creating if needed) the SQLite database at `path` and migrates
    /// it; secrets are sealed with the key in [`key_file_path`], which is
    /// created on first start.
    pub async fn open_sqlite(path: &Path) -> Result<Store> {
        Self::connect_sqlite(Some(path), KeySource::File(path)).await
    }

    /// As [`open_sqlite`](Self::open_sqlite), sealing secrets with `key`.
    pub async fn open_sqlite_with_key(path: &Path, key: SecretBox) -> Result<Store> {
        Self::connect_sqlite(Some(path), KeySource::Given(key)).await
    }

    /// As [`open_sqlite`](Self::open_sqlite), with the key of `config`'s
    /// `secret_key` when it has one.
    pub async fn open_sqlite_with_config(path: &Path, config: &Config) -> Result<Store> {
        match configured_key(config)? {
            Some(key) => Self::open_sqlite_with_key(path, key).await,
            None => Self::open_sqlite(path).await,
        }
    }

    /// An in-memory database, for tests and throwaway runs; its secrets are
    /// sealed with a key that dies with it.
    pub async fn in_memory() -> Result<Store> {
        Self::connect_sqlite(None, KeySource::Ephemeral).await
    }

    /// Connects to the SQLite file at `path` (`None`: a new in-memory
    /// database), with the pragmas the store relies on set on every connection.
    async fn connect_sqlite(path: Option<&Path>, key: KeySource<'_>) -> Result<Store> {
        let url = match path {
            Some(path) => {
                // The Any driver takes a URL: make it absolute so the file
                // name cannot be read as a URL's host.
                let absolute = std::path::absolute(path)
                    .map_err(|e| Error::Config(format!("database {}: {e}", path.display())))?;
                SqliteConnectOptions::new()
                    .filename(absolute)
                    .create_if_missing(true)
                    .to_url_lossy()
            }
            // A named shared-cache database: every connection of the pool
            // sees the same one, and it lives while the pool does.
            None => url::Url::parse(&format!(
                "sqlite:file:junction-memory-{}?mode=memory&cache=shared",
                uuid::Uuid::new_v4().simple()
            ))
            .map_err(|e| Error::Config(format!("in-memory database: {e}")))?,
        };
        sqlx::any::install_default_drivers();
        let options = AnyConnectOptions::from_url(&url)?;
        let in_memory = path.is_none();
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            // One connection always open keeps an in-memory database alive.
            .min_connections(u32::from(in_memory))
            .idle_timeout(None)
            .max_lifetime(None)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    for pragma in SQLITE_PRAGMAS {
                        sqlx::query(pragma).execute(&mut *conn).await?;
                    }
                    if !in_memory {
                        for pragma in SQLITE_FILE_PRAGMAS {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Self::finish(pool, Backend::Sqlite, key).await
    }

    /// Migrates the database behind `pool`, loads the key and checks the
    /// stored secrets against it.
    async fn finish(pool: AnyPool, backend: Backend, key: KeySource<'_>) -> Result<Store> {
        match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await?,
        }
        let (secrets, key_origin) = match key {
            KeySource::Given(secrets) => (
                secrets,
                "the configured `secret_key` (JUNCTION_SECRET_KEY)".to_string(),
            ),
            KeySource::File(database) => {
                let path = key_file_path(database);
                let secrets = key_from_file(&pool, &path).await?;
                (secrets, format!("from key file {}", path.display()))
            }
            KeySource::Ephemeral => (
                SecretBox::from_config(&generate_key()).map_err(|e| Error::Key(e.to_string()))?,
                "a throwaway key of the in-memory store".to_string(),
            ),
        };
        let store = Store {
            pool,
            backend,
            secrets,
            key_origin,
        };
        store.check_secrets().await?;
        Ok(store)
    }

    /// Opens every stored secret with this store's key, so a wrong key is an
    /// error now rather than at the first call, and seals the plaintext
    /// secrets of databases written before secrets were sealed.
    async fn check_secrets(&self) -> Result<()> {
        let rows = sqlx::query("SELECT name, auth, webhook FROM connections")
            .fetch_all(&self.pool)
            .await?;
        let mut plaintext = Vec::new();
        for row in &rows {
            let name: String = row.get("name");
            for column in SECRET_COLUMNS {
                let Some(value) = row.get::<Option<String>, _>(column) else {
                    continue;
                };
                if !SecretBox::is_sealed(&value) {
                    plaintext.push((name.clone(), column, self.seal(&name, column, &value)));
                    continue;
                }
                match self.unseal(&name, column, &value) {
                    Ok(_) => {}
                    // Nothing will open: stop now, with the reason.
                    Err(
                        err @ Error::Secret {
                            reason: SecretError::WrongKey { .. },
                            ..
                        },
                    ) => return Err(err),
                    // Only this connection is affected; its calls will fail
                    // with this error.
                    Err(err) => tracing::error!(error = %err, "stored secret does not open"),
                }
            }
        }
        if plaintext.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for (name, column, sealed) in &plaintext {
            let sql = if *column == "auth" {
                "UPDATE connections SET auth = $1 WHERE name = $2"
            } else {
                "UPDATE connections SET webhook = $1 WHERE name = $2"
            };
            sqlx::query(sql)
                .bind(sealed)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        // Move the sealed pages into the database file and empty the WAL, so
        // no copy of the plaintext stays behind.
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await?;
        }
        tracing::info!(
            secrets = plaintext.len(),
            "sealed the plaintext connection secrets of an older version"
        );
        Ok(())
    }

    /// Seals `plaintext` for `column` of connection `name`.
    fn seal(&self, name: &str, column: &str, plaintext: &str) -> String {
        self.secrets
            .seal_with_context(plaintext.as_bytes(), &secret_context(name, column))
    }

    /// Opens the sealed `column` of connection `name`.
    fn unseal(&self, name: &str, column: &'static str, sealed: &str) -> Result<String> {
        let secret_error = |reason| Error::Secret {
            connection: name.to_string(),
            column,
            reason,
            key_origin: self.key_origin.clone(),
        };
        let bytes = self
            .secrets
            .open_with_context(sealed, &secret_context(name, column))
            .map_err(secret_error)?;
        String::from_utf8(bytes).map_err(|_| {
            secret_error(SecretError::Malformed {
                reason: "the opened secret is not UTF-8",
            })
        })
    }

    /// Creates or replaces a connection; returns whether it was created.
    pub async fn put_connection(&self, c: &Connection) -> Result<bool> {
        let existed = sqlx::query("SELECT 1 FROM connections WHERE name = $1")
            .bind(&c.name)
            .fetch_optional(&self.pool)
            .await?
            .is_some();
        sqlx::query(
            "INSERT INTO connections (name, plugin, version, config, auth, allowed_hosts,
               private_hosts, rate_limit, webhook, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT(name) DO UPDATE SET plugin = excluded.plugin, version = excluded.version,
               config = excluded.config, auth = excluded.auth,
               allowed_hosts = excluded.allowed_hosts, private_hosts = excluded.private_hosts,
               rate_limit = excluded.rate_limit, webhook = excluded.webhook,
               updated_at = excluded.updated_at",
        )
        .bind(&c.name)
        .bind(&c.plugin)
        .bind(&c.version)
        .bind(serde_json::to_string(&c.config)?)
        .bind(self.seal_json(&c.name, "auth", c.auth.as_ref())?)
        .bind(serde_json::to_string(&c.allowed_hosts)?)
        .bind(serde_json::to_string(&c.private_hosts)?)
        .bind(
            c.rate_limit
                .as_ref()
                .map(serde_json::to_string)
                .transpose()?,
        )
        .bind(self.seal_json(&c.name, "webhook", c.webhook.as_ref())?)
        .bind(&c.created_at)
        .bind(&c.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(!existed)
    }

    /// The connection called `name`, if any.
    pub async fn connection(&self, name: &str) -> Result<Option<Connection>> {
        let row = sqlx::query("SELECT * FROM connections WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| self.connection_from_row(&r)).transpose()
    }

    /// Every connection, by name.
    pub async fn connections(&self) -> Result<Vec<Connection>> {
        let rows = sqlx::query("SELECT * FROM connections ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| self.connection_from_row(r)).collect()
    }

    /// `value` as JSON, sealed for `column` of connection `name`.
    fn seal_json<T: Serialize>(
        &self,
        name: &str,
        column: &str,
        value: Option<&T>,
    ) -> Result<Option<String>> {
        value
            .map(|v| Ok(self.seal(name, column, &serde_json::to_string(v)?)))
            .transpose()
    }

    /// The sealed JSON `column` of a connection row, opened and decoded.
    fn open_json<T: serde::de::DeserializeOwned>(
        &self,
        row: &sqlx::any::AnyRow,
        column: &'static str,
    ) -> Result<Option<T>> {
        let Some(sealed) = row.get::<Option<String>, _>(column) else {
            return Ok(None);
        };
        let name: String = row.get("name");
        let json = self.unseal(&name, column, &sealed)?;
        Ok(Some(serde_json::from_str(&json)?))
    }

    fn connection_from_row(&self, r: &sqlx::any::AnyRow) -> Result<Connection> {
        let rate_limit: Option<String> = r.get("rate_limit");
        Ok(Connection {
            name: r.get("name"),
            plugin: r.get("plugin"),
            version: r.get("version"),
            config: serde_json::from_str(r.get("config"))?,
            auth: self.open_json(r, "auth")?,
            allowed_hosts: serde_json::from_str(r.get("allowed_hosts"))?,
            private_hosts: serde_json::from_str(r.get("private_hosts"))?,
            rate_limit: rate_limit
                .as_deref()
                .map(serde_json::from_str)
                .transpose()?,
            webhook: self.open_json(r, "webhook")?,
            created_at: r.get("created_at"),
            updated_at: r.get("updated_at"),
        })
    }

    /// The value of a plugin's key on a connection.
    pub async fn kv_get(
        &self,
        plugin: &str,
        connection: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>> {
        let row =
            sqlx::query("SELECT value FROM kv WHERE plugin = $1 AND connection = $2 AND key = $3")
                .bind(plugin)
                .bind(connection)
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.get::<Vec<u8>, _>("value")))
    }

    /// Sets a plugin's key on a connection.
    pub async fn kv_set(
        &self,
        plugin: &str,
        connection: &str,
        key: &str,
        value: &[u8],
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO kv (plugin, connection, key, value) VALUES ($1, $2, $3, $4)
             ON CONFLICT(plugin, connection, key) DO UPDATE SET value = excluded.value",
        )
        .bind(plugin)
        .bind(connection)
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes a plugin's key on a connection; a missing key is not an error.
    pub async fn kv_delete(&self, plugin: &str, connection: &str, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM kv WHERE plugin = $1 AND connection = $2 AND key = $3")
            .bind(plugin)
            .bind(connection)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A plugin's keys on a connection that start with `prefix`, sorted.
    pub async fn kv_list(
        &self,
        plugin: &str,
        connection: &str,
        prefix: &str,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT key FROM kv WHERE plugin = $1 AND connection = $2 AND substr(key, 1, length($3)) = $4 ORDER BY key",
        )
        .bind(plugin)
        .bind(connection)
        .bind(prefix)
        .bind(prefix)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| r.get::<String, _>("key")).collect())
    }

    /// Stores package bytes under their digest; storing them twice is a no-op.
    pub async fn put_package(&self, digest: &str, bytes: &[u8]) -> Result<()> {
        sqlx::query(
            "INSERT INTO packages (digest, bytes) VALUES ($1, $2) ON CONFLICT(digest) DO NOTHING",
        )
        .bind(digest)
        .bind(bytes)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The bytes of the package with `digest`.
    pub async fn package(&self, digest: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT bytes FROM packages WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get::<Vec<u8>, _>("bytes")))
    }

    /// Records an accepted plugin version.
    pub async fn put_plugin_version(&self, v: &StoredVersion) -> Result<()> {
        sqlx::query(
            "INSERT INTO plugin_versions (name, version, world, component_digest, package_digest, signer, uploaded_at, uploaded_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT(name, version) DO NOTHING",
        )
        .bind(&v.name)
        .bind(&v.version)
        .bind(&v.world)
        .bind(&v.component_digest)
        .bind(&v.package_digest)
        .bind(&v.signer)
        .bind(&v.uploaded_at)
        .bind(&v.uploaded_by)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every stored plugin version, by name then upload order.
    pub async fn plugin_versions(&self) -> Result<Vec<StoredVersion>> {
        let rows = sqlx::query("SELECT * FROM plugin_versions ORDER BY name, uploaded_at")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| StoredVersion {
                name: r.get("name"),
                version: r.get("version"),
                world: r.get("world"),
                component_digest: r.get("component_digest"),
                package_digest: r.get("package_digest"),
                signer: r.get("signer"),
                uploaded_at: r.get("uploaded_at"),
                uploaded_by: r.get("uploaded_by"),
            })
            .collect())
    }

    /// Forgets a plugin version (its package bytes stay, content-addressed).
    pub async fn delete_plugin_version(&self, name: &str, version: &str) -> Result<()> {
        sqlx::query("DELETE FROM plugin_versions WHERE name = $1 AND version = $2")
            .bind(name)
            .bind(version)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records that `version` became the active version of `name`.
    pub async fn record_activation(&self, name: &str, version: &str, by: &str) -> Result<()> {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        sqlx::query("INSERT INTO plugin_activations (name, version, activated_at, activated_by) VALUES ($1, $2, $3, $4)")
            .bind(name)
            .bind(version)
            .bind(at)
            .bind(by)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The last recorded active version of each plugin.
    pub async fn active_versions(&self) -> Result<BTreeMap<String, String>> {
        let rows = sqlx::query(
            "SELECT a.name, a.version FROM plugin_activations a
             WHERE a.seq = (SELECT MAX(seq) FROM plugin_activations b WHERE b.name = a.name)",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get("name"), r.get("version")))
            .collect())
    }

    /// The versions `name` was activated at, oldest first.
    pub async fn activation_history(&self, name: &str) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT version FROM plugin_activations WHERE name = $1 ORDER BY seq")
                .bind(name)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(|r| r.get("version")).collect())
    }

    /// The connection pool, for the store's other modules.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
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

/// The connection columns that hold sealed secrets.
const SECRET_COLUMNS: [&str; 2] = ["auth", "webhook"];

/// What a sealed secret is bound to: its connection and column, so a sealed
/// value copied to another row or column does not open.
fn secret_context(name: &str, column: &str) -> String {
    format!("connections/{name}/{column}")
}

/// The key of `config`'s `secret_key`, if it has one.
fn configured_key(config: &Config) -> Result<Option<SecretBox>> {
    config
        .secret_key
        .as_ref()
        .map(|text| {
            SecretBox::from_config(text.expose())
                .map_err(|e| Error::Key(format!("secret_key: {e}")))
        })
        .transpose()
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

/// Reads the key file at `path`, or creates it when it does not exist and
/// the database holds no sealed secret (which a new key could not open).
async fn key_from_file(pool: &AnyPool, path: &Path) -> Result<SecretBox> {
    let key_error = |what: String| Error::Key(format!("key file {}: {what}", path.display()));
    match std::fs::read_to_string(path) {
        Ok(text) => {
            warn_if_readable_by_others(path);
            return SecretBox::from_config(&text).map_err(|e| key_error(e.to_string()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(key_error(format!("cannot be read: {e}"))),
    }
    let sealed = sqlx::query(
        "SELECT 1 FROM connections WHERE auth LIKE 'v1:%' OR webhook LIKE 'v1:%' LIMIT 1",
    )
    .fetch_optional(pool)
    .await?
    .is_some();
    if sealed {
        return Err(key_error(
            "is missing, but the database holds secrets sealed with a key; restore the key \
             file, or configure that key as `secret_key` (JUNCTION_SECRET_KEY)"
                .into(),
        ));
    }
    let text = generate_key();
    match write_new_key_file(path, &text) {
        Ok(()) => {
            tracing::info!(
                path = %path.display(),
                "generated the key that seals connection secrets; keep it with the database \
                 (backups need both)"
            );
            SecretBox::from_config(&text).map_err(|e| key_error(e.to_string()))
        }
        // Another process opening the same database created it first.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| key_error(format!("cannot be read: {e}")))?;
            SecretBox::from_config(&text).map_err(|e| key_error(e.to_string()))
        }
        Err(e) => Err(key_error(format!("cannot be created: {e}"))),
    }
}

/// Writes `text` to a new file at `path`, readable by its owner only. The
/// key is written and synced under a temporary name first and then linked
/// into place, so `path` never exists half-written and an existing file is
/// never replaced.
fn write_new_key_file(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::hard_link(&tmp, path)?;
        #[cfg(unix)]
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "the secrets key file is readable by other users; restrict it with `chmod 600`"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(name: &str) -> Connection {
        Connection {
            name: name.into(),
            plugin: "jira".into(),
            version: None,
            config: BTreeMap::from([("base_url".into(), "http://x".into())]),
            auth: Some(Auth::Basic {
                username: "u".into(),
                password: "p".into(),
            }),
            allowed_hosts: vec!["x".into()],
            private_hosts: vec![],
            rate_limit: None,
            webhook: None,
            created_at: "2026-01-01T00:00:00Z".into(),
            updated_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[tokio::test]
    async fn connections_round_trip_and_replace() {
        let store = Store::in_memory().await.unwrap();
        assert!(store.put_connection(&connection("a")).await.unwrap());
        let mut changed = connection("a");
        changed.version = Some("1.0.0".into());
        assert!(!store.put_connection(&changed).await.unwrap());
        assert_eq!(store.connection("a").await.unwrap(), Some(changed));
        assert_eq!(store.connection("b").await.unwrap(), None);
        assert_eq!(store.connections().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn kv_is_scoped_by_plugin_and_connection() {
        let store = Store::in_memory().await.unwrap();
        store.kv_set("p", "c1", "cursor", b"1").await.unwrap();
        store.kv_set("p", "c2", "cursor", b"2").await.unwrap();
        store.kv_set("q", "c1", "cursor", b"3").await.unwrap();
        assert_eq!(
            store.kv_get("p", "c1", "cursor").await.unwrap(),
            Some(b"1".to_vec())
        );
        assert_eq!(
            store.kv_get("p", "c2", "cursor").await.unwrap(),
            Some(b"2".to_vec())
        );
        assert_eq!(store.kv_get("p", "c3", "cursor").await.unwrap(), None);
        store.kv_set("p", "c1", "cursor", b"9").await.unwrap();
        store.kv_set("p", "c1", "other", b"x").await.unwrap();
        assert_eq!(
            store.kv_list("p", "c1", "cur").await.unwrap(),
            vec!["cursor"]
        );
        store.kv_delete("p", "c1", "cursor").await.unwrap();
        store.kv_delete("p", "c1", "cursor").await.unwrap();
        assert_eq!(store.kv_get("p", "c1", "cursor").await.unwrap(), None);
    }

    #[tokio::test]
    async fn file_database_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        Store::open_sqlite(&path)
            .await
            .unwrap()
            .put_connection(&connection("a"))
            .await
            .unwrap();
        let reopened = Store::open_sqlite(&path).await.unwrap();
        assert!(reopened.connection("a").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn file_connections_are_durable_and_in_memory_ones_shared() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("j.db")).await.unwrap();
        assert_eq!(store.backend(), Backend::Sqlite);
        // Every connection of the pool, not only the first.
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut conn = store.pool.acquire().await.unwrap();
            for (pragma, expected) in [
                ("journal_mode", "wal"),
                ("synchronous", "2"),
                ("secure_delete", "1"),
                ("foreign_keys", "1"),
                ("busy_timeout", "5000"),
            ] {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA {pragma}")))
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
                let value = row
                    .try_get::<String, _>(0)
                    .or_else(|_| row.try_get::<i64, _>(0).map(|n| n.to_string()))
                    .unwrap();
                assert_eq!(value, expected, "PRAGMA {pragma}");
            }
            held.push(conn);
        }
        drop(held);
        // The connections of an in-memory store see one database.
        let store = Store::in_memory().await.unwrap();
        let mut a = store.pool.acquire().await.unwrap();
        let mut b = store.pool.acquire().await.unwrap();
        sqlx::query(
            "INSERT INTO kv (plugin, connection, key, value) VALUES ('p', 'c', 'k', x'00')",
        )
        .execute(&mut *a)
        .await
        .unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM kv")
            .fetch_one(&mut *b)
            .await
            .unwrap();
        assert_eq!(n, 1);
    }

    // ---- secrets at rest ----

    const PASSWORD: &str = "jira-api-token-7f3a9c2e5b8d1f4a";
    const TOKEN: &str = "oauth-refresh-token-c0ffee1234567890";
    const CLIENT_SECRET: &str = "oauth-client-secret-9988776655443322";
    const WEBHOOK_SECRET: &str = "whsec-signing-secret-a1b2c3d4e5f60718";

    fn with_secrets(name: &str) -> Connection {
        Connection {
            auth: Some(Auth::OAuth2RefreshToken {
                token_url: "https://auth.example.com/token".into(),
                client_id: "client-1".into(),
                client_secret: CLIENT_SECRET.into(),
                refresh_token: TOKEN.into(),
                scope: None,
            }),
            webhook: Some(WebhookSettings {
                scheme: crate::webhooks::Scheme::Stripe,
                secret: WEBHOOK_SECRET.into(),
            }),
            ..connection(name)
        }
    }

    fn basic(name: &str) -> Connection {
        Connection {
            auth: Some(Auth::Basic {
                username: "ops@acme.example".into(),
                password: PASSWORD.into(),
            }),
            ..connection(name)
        }
    }

    /// The database file and its WAL and shared-memory companions, concatenated.
    fn database_bytes(path: &Path) -> Vec<u8> {
        let mut bytes = Vec::new();
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = path.as_os_str().to_os_string();
            name.push(suffix);
            if let Ok(b) = std::fs::read(&name) {
                bytes.extend(b);
            }
        }
        assert!(!bytes.is_empty());
        bytes
    }

    /// `secret` as it would appear base64-encoded at any byte offset, in the
    /// standard and URL-safe alphabets: the characters that encode only its
    /// bytes.
    fn base64_forms(secret: &[u8]) -> Vec<String> {
        use base64::Engine as _;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        let mut forms = Vec::new();
        for shift in 0..3 {
            let mut bytes = vec![b'x'; shift];
            bytes.extend_from_slice(secret);
            for engine in [&STANDARD, &URL_SAFE] {
                let text = engine.encode(&bytes);
                let start = if shift == 0 { 0 } else { 4 };
                forms.push(text[start..text.len() - 4].to_string());
            }
        }
        forms
    }

    fn assert_absent(bytes: &[u8], secret: &str) {
        let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(!contains(secret.as_bytes()), "{secret} is in the database");
        for form in base64_forms(secret.as_bytes()) {
            assert!(
                !contains(form.as_bytes()),
                "base64 of {secret} ({form}) is in the database"
            );
        }
    }

    #[tokio::test]
    async fn secrets_are_sealed_at_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let store = Store::open_sqlite(&path).await.unwrap();
        store.put_connection(&with_secrets("a")).await.unwrap();
        store.put_connection(&basic("b")).await.unwrap();
        // Replacing a connection must not leave the old secret behind either.
        let mut replaced = basic("c");
        store.put_connection(&replaced).await.unwrap();
        replaced.auth = Some(Auth::Bearer {
            token: "bearer-token-after-replacement-0001".into(),
        });
        store.put_connection(&replaced).await.unwrap();
        assert_eq!(
            store.connection("a").await.unwrap(),
            Some(with_secrets("a"))
        );

        let bytes = database_bytes(&path);
        // The scan sees what is stored: the non-secret settings are there.
        assert!(bytes.windows(10).any(|w| w == b"\"base_url\""));
        for secret in [PASSWORD, TOKEN, CLIENT_SECRET, WEBHOOK_SECRET] {
            assert_absent(&bytes, secret);
        }
        // What a Basic header would carry.
        assert_absent(&bytes, &format!("ops@acme.example:{PASSWORD}"));
        assert_absent(&bytes, "bearer-token-after-replacement-0001");
        // The stored columns are sealed values, not JSON.
        let raw: (String, String) =
            sqlx::query_as("SELECT auth, webhook FROM connections WHERE name = 'a'")
                .fetch_one(&store.pool)
                .await
                .unwrap();
        assert!(
            raw.0.starts_with("v1:") && raw.1.starts_with("v1:"),
            "{raw:?}"
        );
        // The key is neither in the database nor in the store's Debug output.
        let key = std::fs::read_to_string(key_file_path(&path)).unwrap();
        assert_absent(&bytes, key.trim());
        assert!(!format!("{store:?}").contains(key.trim()));
    }

    #[tokio::test]
    async fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let key_file = key_file_path(&path);
        assert_eq!(key_file, dir.path().join("j.db.key"));
        let store = Store::open_sqlite(&path).await.unwrap();
        store.put_connection(&with_secrets("a")).await.unwrap();
        drop(store);
        let key = std::fs::read_to_string(&key_file).unwrap();
        SecretBox::from_config(&key).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        // Reopening reads the same key: the secrets open.
        let reopened = Store::open_sqlite(&path).await.unwrap();
        assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key);
        assert_eq!(
            reopened.connection("a").await.unwrap(),
            Some(with_secrets("a"))
        );
        drop(reopened);
        // The same key given in configuration opens them too.
        let configured = Config {
            secret_key: Some(key.trim().to_string().into()),
            ..Config::default()
        };
        let store = Store::open_sqlite_with_config(&path, &configured)
            .await
            .unwrap();
        assert!(store.connection("a").await.unwrap().is_some());
        drop(store);

        // Without the key file, a new key would open nothing: refuse.
        std::fs::remove_file(&key_file).unwrap();
        let err = Store::open_sqlite(&path).await.unwrap_err().to_string();
        assert!(err.contains("is missing"), "{err}");
        assert!(err.contains("j.db.key"), "{err}");
        assert!(!key_file.exists());
    }

    #[tokio::test]
    async fn another_key_fails_clearly_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let key = SecretBox::from_config(&generate_key()).unwrap();
        let store = Store::open_sqlite_with_key(&path, key.clone())
            .await
            .unwrap();
        store.put_connection(&with_secrets("a")).await.unwrap();
        drop(store);
        // The configured key was used: no key file.
        assert!(!key_file_path(&path).exists());

        let other = SecretBox::from_config(&generate_key()).unwrap();
        let err = Store::open_sqlite_with_key(&path, other.clone())
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(
                &err,
                Error::Secret {
                    reason: SecretError::WrongKey { .. },
                    ..
                }
            ),
            "{message}"
        );
        assert!(message.contains("connection `a`"), "{message}");
        assert!(message.contains("different key"), "{message}");
        assert!(message.contains(key.key_id()), "{message}");
        assert!(message.contains(other.key_id()), "{message}");
        assert!(message.contains("secret_key"), "{message}");
        // A malformed configured key is refused before anything is opened.
        let bad = Config {
            secret_key: Some("not-a-key".to_string().into()),
            ..Config::default()
        };
        let err = Store::open_sqlite_with_config(&path, &bad)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("secret_key") && err.contains("base64"),
            "{err}"
        );
        // The right key still works.
        let store = Store::open_sqlite_with_key(&path, key).await.unwrap();
        assert!(store.connection("a").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn sealed_values_are_bound_to_their_row() {
        let store = Store::in_memory().await.unwrap();
        store.put_connection(&with_secrets("a")).await.unwrap();
        store.put_connection(&connection("b")).await.unwrap();
        sqlx::query("UPDATE connections SET auth = (SELECT auth FROM connections WHERE name = 'a') WHERE name = 'b'")
            .execute(&store.pool)
            .await
            .unwrap();
        let err = store.connection("b").await.unwrap_err().to_string();
        assert!(err.contains("connection `b`"), "{err}");
        assert!(err.contains("altered or corrupted"), "{err}");
        assert!(!err.contains(TOKEN), "{err}");
        // Connection `a` is unaffected.
        assert!(store.connection("a").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn plaintext_rows_of_older_versions_are_sealed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let store = Store::open_sqlite(&path).await.unwrap();
        store.put_connection(&connection("old")).await.unwrap();
        // What a version before sealing stored: the JSON itself.
        let auth = serde_json::to_string(&basic("old").auth).unwrap();
        let webhook = serde_json::to_string(&with_secrets("old").webhook).unwrap();
        sqlx::query("UPDATE connections SET auth = $1, webhook = $2 WHERE name = 'old'")
            .bind(&auth)
            .bind(&webhook)
            .execute(&store.pool)
            .await
            .unwrap();
        store.pool.close().await;

        let store = Store::open_sqlite(&path).await.unwrap();
        let loaded = store.connection("old").await.unwrap().unwrap();
        assert_eq!(loaded.auth, basic("old").auth);
        assert_eq!(loaded.webhook, with_secrets("old").webhook);
        let raw: (String, String) =
            sqlx::query_as("SELECT auth, webhook FROM connections WHERE name = 'old'")
                .fetch_one(&store.pool)
                .await
                .unwrap();
        assert!(
            raw.0.starts_with("v1:") && raw.1.starts_with("v1:"),
            "{raw:?}"
        );
        let bytes = database_bytes(&path);
        assert_absent(&bytes, PASSWORD);
        assert_absent(&bytes, WEBHOOK_SECRET);
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let text = format!("{:?}", with_secrets("a"));
        for secret in [TOKEN, CLIENT_SECRET, WEBHOOK_SECRET] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(!format!("{:?}", basic("b")).contains(PASSWORD));
    }
}
