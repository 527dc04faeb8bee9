//! Connections: what a plugin is called on, with its credentials, egress
//! policy, rate limit and webhook settings; secrets sealed at rest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::secrets::{SecretBox, SecretError};
use crate::{Backend, Error, Result, Store};

/// Credentials of a connection. The host adds them to the connection's
/// outbound requests; they are never given to a plugin nor returned by the API.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    /// HTTP Basic (`Authorization: Basic base64(username:password)`), as Jira Cloud uses.
    Basic {
        /// User name or e-mail.
        username: String,
        /// Password or API token.
        #[schema(write_only)]
        password: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        #[schema(write_only)]
        token: String,
    },
    /// A key sent in a header of its own, e.g. `X-API-Key`.
    ApiKey {
        /// Header name.
        header: String,
        /// Header value.
        #[schema(write_only)]
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
        #[schema(write_only)]
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
        #[schema(write_only)]
        client_secret: String,
        /// The refresh token.
        #[schema(write_only)]
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
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// The sender's signature scheme.
    pub scheme: crate::Scheme,
    /// The shared signing secret.
    #[schema(write_only)]
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
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
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
    /// Allowed hosts that receive the credentials (exact hosts); empty: the
    /// runtime's default (the host of `base_url`, ...).
    #[serde(default)]
    pub credential_hosts: Vec<String>,
    /// Outbound rate limit; `None` is unlimited.
    pub rate_limit: Option<RateLimit>,
    /// Inbound webhook verification; `None` refuses webhooks.
    pub webhook: Option<WebhookSettings>,
    /// When the circuit breaker opens; `None`: the defaults.
    #[serde(default)]
    pub circuit: Option<crate::CircuitSettings>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

impl Store {
    /// Opens every stored secret with this store's key, so a wrong key is an
    /// error now rather than at the first call, and seals the plaintext
    /// secrets of databases written before secrets were sealed.
    pub(crate) async fn check_secrets(&self) -> Result<()> {
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
        let mut tx = self.begin().await?;
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
               private_hosts, rate_limit, webhook, created_at, updated_at, credential_hosts, circuit)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT(name) DO UPDATE SET plugin = excluded.plugin, version = excluded.version,
               config = excluded.config, auth = excluded.auth,
               allowed_hosts = excluded.allowed_hosts, private_hosts = excluded.private_hosts,
               rate_limit = excluded.rate_limit, webhook = excluded.webhook,
               updated_at = excluded.updated_at, credential_hosts = excluded.credential_hosts,
               circuit = excluded.circuit",
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
        .bind(serde_json::to_string(&c.credential_hosts)?)
        .bind(c.circuit.as_ref().map(serde_json::to_string).transpose()?)
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
        let circuit: Option<String> = r.get("circuit");
        Ok(Connection {
            name: r.get("name"),
            plugin: r.get("plugin"),
            version: r.get("version"),
            config: serde_json::from_str(r.get("config"))?,
            auth: self.open_json(r, "auth")?,
            allowed_hosts: serde_json::from_str(r.get("allowed_hosts"))?,
            private_hosts: serde_json::from_str(r.get("private_hosts"))?,
            credential_hosts: serde_json::from_str(r.get("credential_hosts"))?,
            rate_limit: rate_limit
                .as_deref()
                .map(serde_json::from_str)
                .transpose()?,
            webhook: self.open_json(r, "webhook")?,
            circuit: circuit.as_deref().map(serde_json::from_str).transpose()?,
            created_at: r.get("created_at"),
            updated_at: r.get("updated_at"),
        })
    }
}

/// The connection columns that hold sealed secrets.
const SECRET_COLUMNS: [&str; 2] = ["auth", "webhook"];

/// What a sealed secret is bound to: its connection and column, so a sealed
/// value copied to another row or column does not open.
fn secret_context(name: &str, column: &str) -> String {
    format!("connections/{name}/{column}")
}

/// The last check of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRow {
    /// When it ended, in ms since the epoch.
    pub checked_at: i64,
    /// Whether the remote system answered as expected.
    pub ok: bool,
    /// Why not.
    pub message: Option<String>,
}

impl Store {
    /// Keeps the outcome of a check of `connection`, in place of the last one.
    pub async fn record_check(&self, connection: &str, check: &CheckRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO connection_checks (connection, checked_at, ok, message) VALUES ($1, $2, $3, $4) ON CONFLICT (connection) DO UPDATE SET checked_at = excluded.checked_at, ok = excluded.ok, message = excluded.message",
        )
        .bind(connection)
        .bind(check.checked_at)
        .bind(i64::from(check.ok))
        .bind(check.message.as_deref())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The last check of `connection`, if it was ever checked.
    pub async fn last_check(&self, connection: &str) -> Result<Option<CheckRow>> {
        let row = sqlx::query(
            "SELECT checked_at, ok, message FROM connection_checks WHERE connection = $1",
        )
        .bind(connection)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| CheckRow {
            checked_at: r.get(0),
            ok: r.get::<i64, _>(1) != 0,
            message: r.get(2),
        }))
    }
}
