//! The host's durable state: connections and plugin key-value state.
//!
//! SQLite is the embedded default (WAL journal, `synchronous=FULL` so that
//! anything the API acknowledged survives a crash), reached through `sqlx`
//! with migrations embedded in the binary.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

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

/// A handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and migrates it.
    pub async fn open_sqlite(path: &Path) -> Result<Store> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        Self::connect(options).await
    }

    /// An in-memory database, for tests and throwaway runs.
    pub async fn in_memory() -> Result<Store> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?;
        Self::connect(options).await
    }

    async fn connect(options: SqliteConnectOptions) -> Result<Store> {
        let in_memory = options.get_filename().as_os_str() == ":memory:";
        let pool = SqlitePoolOptions::new()
            // One connection keeps an in-memory database alive and shared.
            .max_connections(if in_memory { 1 } else { 8 })
            .min_connections(if in_memory { 1 } else { 0 })
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store { pool })
    }

    /// Creates or replaces a connection; returns whether it was created.
    pub async fn put_connection(&self, c: &Connection) -> Result<bool> {
        let existed = sqlx::query("SELECT 1 FROM connections WHERE name = ?")
            .bind(&c.name)
            .fetch_optional(&self.pool)
            .await?
            .is_some();
        sqlx::query(
            "INSERT INTO connections (name, plugin, version, config, auth, allowed_hosts,
               private_hosts, rate_limit, webhook, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
        .bind(c.auth.as_ref().map(serde_json::to_string).transpose()?)
        .bind(serde_json::to_string(&c.allowed_hosts)?)
        .bind(serde_json::to_string(&c.private_hosts)?)
        .bind(c.rate_limit.as_ref().map(serde_json::to_string).transpose()?)
        .bind(c.webhook.as_ref().map(serde_json::to_string).transpose()?)
        .bind(&c.created_at)
        .bind(&c.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(!existed)
    }

    /// The connection called `name`, if any.
    pub async fn connection(&self, name: &str) -> Result<Option<Connection>> {
        let row = sqlx::query("SELECT * FROM connections WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| connection_from_row(&r)).transpose()
    }

    /// Every connection, by name.
    pub async fn connections(&self) -> Result<Vec<Connection>> {
        let rows = sqlx::query("SELECT * FROM connections ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(connection_from_row).collect()
    }

    /// The value of a plugin's key on a connection.
    pub async fn kv_get(
        &self,
        plugin: &str,
        connection: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>> {
        let row =
            sqlx::query("SELECT value FROM kv WHERE plugin = ? AND connection = ? AND key = ?")
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
            "INSERT INTO kv (plugin, connection, key, value) VALUES (?, ?, ?, ?)
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
        sqlx::query("DELETE FROM kv WHERE plugin = ? AND connection = ? AND key = ?")
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
            "SELECT key FROM kv WHERE plugin = ? AND connection = ? AND substr(key, 1, length(?)) = ? ORDER BY key",
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
            "INSERT INTO packages (digest, bytes) VALUES (?, ?) ON CONFLICT(digest) DO NOTHING",
        )
        .bind(digest)
        .bind(bytes)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The bytes of the package with `digest`.
    pub async fn package(&self, digest: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT bytes FROM packages WHERE digest = ?")
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get::<Vec<u8>, _>("bytes")))
    }

    /// Records an accepted plugin version.
    pub async fn put_plugin_version(&self, v: &StoredVersion) -> Result<()> {
        sqlx::query(
            "INSERT INTO plugin_versions (name, version, world, component_digest, package_digest, signer, uploaded_at, uploaded_by)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name, version) DO NOTHING",
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
        sqlx::query("DELETE FROM plugin_versions WHERE name = ? AND version = ?")
            .bind(name)
            .bind(version)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records that `version` became the active version of `name`.
    pub async fn record_activation(&self, name: &str, version: &str, by: &str) -> Result<()> {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        sqlx::query("INSERT INTO plugin_activations (name, version, activated_at, activated_by) VALUES (?, ?, ?, ?)")
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
            sqlx::query("SELECT version FROM plugin_activations WHERE name = ? ORDER BY seq")
                .bind(name)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(|r| r.get("version")).collect())
    }

    /// The connection pool, for the store's other modules.
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

fn connection_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<Connection> {
    let auth: Option<String> = r.get("auth");
    let rate_limit: Option<String> = r.get("rate_limit");
    let webhook: Option<String> = r.get("webhook");
    Ok(Connection {
        name: r.get("name"),
        plugin: r.get("plugin"),
        version: r.get("version"),
        config: serde_json::from_str(r.get("config"))?,
        auth: auth.as_deref().map(serde_json::from_str).transpose()?,
        allowed_hosts: serde_json::from_str(r.get("allowed_hosts"))?,
        private_hosts: serde_json::from_str(r.get("private_hosts"))?,
        rate_limit: rate_limit.as_deref().map(serde_json::from_str).transpose()?,
        webhook: webhook.as_deref().map(serde_json::from_str).transpose()?,
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    })
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
}
