//! Connections on the runtime: checked on write, read through a cache, and
//! bound to a plugin version (network, credentials, tokens, rate gate, scope).

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use http::{HeaderName, HeaderValue};
use junction_registry::World;
use junction_store::{self as store, Auth, Connection};
use serde::Deserialize;

use crate::capabilities::Scope;
use crate::capabilities::credentials::Credentials;
use crate::capabilities::egress::{EgressPolicy, HostPattern};
use crate::capabilities::http::{Net, normalize_host_entry};
use crate::capabilities::oauth::TokenSource;
use crate::capabilities::ratelimit::RateGate;
use crate::error::{CallError, ConnectionError};
use crate::plugins::Plugin;
use crate::runtime::{Bound, Runtime, valid_name};

/// What an operator sends to create or replace a connection.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSpec {
    /// The connector plugin.
    pub plugin: String,
    /// Pin a version; absent follows the active version.
    #[serde(default)]
    pub version: Option<String>,
    /// Non-secret settings.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Credentials the host adds to outbound requests.
    #[serde(default)]
    pub auth: Option<Auth>,
    /// Hosts the plugin may reach (`host` or `host:port`, `*.` for any
    /// subdomain); only those its manifest also asks for are reachable.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Allowed hosts granted to resolve to non-public addresses.
    #[serde(default)]
    pub private_hosts: Vec<String>,
    /// The allowed hosts that receive the credentials (exact hosts, no
    /// `*.`); empty: the host of the `base_url` or `instance_url` setting,
    /// else the first allowed host. Other allowed hosts get no credentials.
    #[serde(default)]
    pub credential_hosts: Vec<String>,
    /// Outbound rate limit.
    #[serde(default)]
    pub rate_limit: Option<store::RateLimit>,
    /// Inbound webhook verification.
    #[serde(default)]
    pub webhook: Option<store::WebhookSettings>,
    /// When the circuit breaker opens (defaults: 5 consecutive `unavailable`
    /// errors or timeouts within 60 s; open for 30 s before a probe).
    #[serde(default)]
    pub circuit: Option<store::CircuitSettings>,
}

impl Runtime {
    /// Creates or replaces a connection after checking that its plugin,
    /// pinned version and allowlist make sense. Returns it and whether it is new.
    pub async fn put_connection(
        &self,
        name: &str,
        spec: ConnectionSpec,
    ) -> Result<(Connection, bool), ConnectionError> {
        if !valid_name(name) {
            return Err(ConnectionError::Invalid(format!(
                "connection name `{name}` must be 1-64 characters of a-z, 0-9, `-` and `_`"
            )));
        }
        let version = spec
            .version
            .as_deref()
            .map(|v| {
                semver::Version::parse(v).map_err(|e| {
                    ConnectionError::Invalid(format!("version `{v}` is not semver: {e}"))
                })
            })
            .transpose()?;
        let plugin = self
            .plugins
            .get(&spec.plugin, version.as_ref())
            .ok_or_else(|| {
                ConnectionError::Invalid(match &version {
                    Some(v) => format!("plugin `{}` has no loaded version {v}", spec.plugin),
                    None => format!("no plugin `{}` is loaded", spec.plugin),
                })
            })?;
        if plugin.world() != World::Connector {
            return Err(ConnectionError::Invalid(format!(
                "plugin `{}` is a {}; connections need a connector",
                spec.plugin,
                plugin.world()
            )));
        }
        let allowed_hosts = spec
            .allowed_hosts
            .iter()
            .map(|h| normalize_host_entry(h))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ConnectionError::Invalid)?;
        let private_hosts = spec
            .private_hosts
            .iter()
            .map(|h| normalize_host_entry(h))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ConnectionError::Invalid)?;
        if let Some(limit) = &spec.rate_limit
            && (limit.requests == 0 || limit.per_seconds == 0 || limit.burst == Some(0))
        {
            return Err(ConnectionError::Invalid(
                "rate_limit: requests, per_seconds and burst must be at least 1".into(),
            ));
        }
        if let Some(circuit) = &spec.circuit {
            circuit.validate().map_err(ConnectionError::Invalid)?;
        }
        if let Some(webhook) = &spec.webhook
            && webhook.secret.is_empty()
        {
            return Err(ConnectionError::Invalid(
                "webhook.secret must not be empty".into(),
            ));
        }
        if let Some(auth) = &spec.auth {
            credential_headers(auth).map_err(ConnectionError::Invalid)?;
            TokenSource::from_auth(auth).map_err(|e| ConnectionError::Invalid(e.to_string()))?;
        }
        if let Some(package) = plugin.package() {
            let asked = package.capabilities.auth;
            let given = spec.auth.as_ref().map_or("none", Auth::kind);
            if asked.as_str() != given {
                return Err(ConnectionError::Invalid(format!(
                    "plugin `{}` authenticates with `{asked}` (its manifest says so); this connection gives `{given}` credentials",
                    spec.plugin
                )));
            }
        }
        let policy = EgressPolicy::new(&spec.allowed_hosts, &spec.private_hosts)
            .map_err(|e| ConnectionError::Invalid(e.to_string()))?;
        let credential_hosts = spec
            .credential_hosts
            .iter()
            .map(|h| credential_host(h, &policy))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ConnectionError::Invalid)?;
        // Without allowed hosts nothing is reachable, and nothing needs them.
        if spec.auth.is_some()
            && !allowed_hosts.is_empty()
            && credential_targets(&credential_hosts, &spec.config, &allowed_hosts).is_empty()
        {
            return Err(ConnectionError::Invalid(
                "the connection has credentials but no host to send them to: set \
                 `credential_hosts` (exact hosts of `allowed_hosts`) or a `base_url` setting"
                    .into(),
            ));
        }
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let created_at = self
            .store
            .connection(name)
            .await?
            .map(|c| c.created_at)
            .unwrap_or_else(|| now.clone());
        let connection = Connection {
            name: name.to_string(),
            plugin: spec.plugin,
            version: spec.version,
            config: spec.config,
            auth: spec.auth,
            allowed_hosts,
            private_hosts,
            credential_hosts,
            rate_limit: spec.rate_limit,
            webhook: spec.webhook,
            circuit: spec.circuit,
            created_at,
            updated_at: now,
        };
        let created = self.store.put_connection(&connection).await?;
        self.announce(store::Change::Connections).await;
        self.nets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&connection.name);
        self.connections
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(connection.name.clone(), Arc::new(connection.clone()));
        Ok((connection, created))
    }

    /// Drops the cached connections that another host changed, so the next
    /// call reads them from the store (what their calls share is rebuilt
    /// then: `bound` compares the change time). Unchanged ones keep their
    /// pooled connections, tokens and learned rate-limit pauses.
    pub(crate) async fn refresh_connections(&self) {
        let stored = match self.store.connections().await {
            Ok(stored) => stored,
            Err(err) => {
                tracing::warn!(error = %err, "reading connections after another host's change failed");
                self.connections
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
                return;
            }
        };
        let current: std::collections::HashMap<&str, &str> = stored
            .iter()
            .map(|c| (c.name.as_str(), c.updated_at.as_str()))
            .collect();
        self.connections
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|name, c| current.get(name.as_str()) == Some(&c.updated_at.as_str()));
    }

    /// The circuit settings of connection `name` (the defaults when it has
    /// none set, or does not exist).
    pub async fn circuit_settings(&self, name: &str) -> store::CircuitSettings {
        self.connection(name)
            .await
            .ok()
            .and_then(|c| c.circuit)
            .unwrap_or_default()
    }

    pub(crate) async fn connection(&self, name: &str) -> Result<Arc<Connection>, CallError> {
        let cached = self
            .connections
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned();
        if let Some(conn) = cached {
            return Ok(conn);
        }
        let conn = Arc::new(
            self.store
                .connection(name)
                .await?
                .ok_or_else(|| CallError::UnknownConnection(name.to_string()))?,
        );
        self.connections
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), conn.clone());
        Ok(conn)
    }

    /// What every call of `plugin` on `conn` shares (network, credentials,
    /// scope): built on the first call after the connection or the plugin
    /// version changed, then reused, so a call only clones `Arc`s.
    pub(crate) fn bound(
        &self,
        conn: &Connection,
        plugin: &Plugin,
    ) -> Result<Arc<Bound>, CallError> {
        let mut nets = self.nets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bound) = nets.get(&conn.name)
            && bound.updated_at == conn.updated_at
            && bound.digest == *plugin.digest()
        {
            return Ok(bound.clone());
        }
        let mut policy = EgressPolicy::new(&conn.allowed_hosts, &conn.private_hosts)
            .map_err(|e| CallError::Internal(format!("stored egress policy: {e}")))?;
        if let Some(package) = plugin.package() {
            policy = policy
                .declared(&package.capabilities.outbound_hosts)
                .map_err(|e| CallError::Internal(format!("manifest outbound_hosts: {e}")))?;
        }
        let credentials = match &conn.auth {
            Some(auth) => Credentials::new(
                credential_headers(auth).map_err(CallError::Internal)?,
                TokenSource::from_auth(auth).map_err(|e| CallError::Internal(e.to_string()))?,
                credential_targets(&conn.credential_hosts, &conn.config, &conn.allowed_hosts)
                    .iter()
                    .filter_map(|h| HostPattern::parse(h).ok())
                    .collect(),
                credential_secrets(auth),
            ),
            None => Credentials::default(),
        };
        let net = Arc::new(Net::new(
            policy,
            credentials,
            Some(RateGate::new(conn.rate_limit)),
            plugin.limits.response_bytes,
        ));
        let bound = Arc::new(Bound {
            updated_at: conn.updated_at.clone(),
            digest: plugin.digest().clone(),
            net,
            scope: Arc::new(Scope {
                plugin: plugin.name().to_string(),
                version: plugin.version().to_string(),
                connection: Some(conn.name.clone()),
                config: conn.config.clone(),
            }),
            plugin: plugin.name().into(),
            connection: conn.name.as_str().into(),
        });
        nets.insert(conn.name.clone(), bound.clone());
        Ok(bound)
    }
}

/// The settings whose URL names the system's API host.
const API_URL_SETTINGS: [&str; 2] = ["base_url", "instance_url"];

/// Checks one `credential_hosts` entry: one host (or `host:port`) on the
/// allowlist.
fn credential_host(entry: &str, policy: &EgressPolicy) -> Result<String, String> {
    let normalized = normalize_host_entry(entry)?;
    let pattern = HostPattern::parse(&normalized).map_err(|e| e.to_string())?;
    if pattern.is_wildcard() {
        return Err(format!(
            "credential_hosts: `{entry}` is a pattern; name each host that receives the credentials"
        ));
    }
    if !policy.allows_exact(&pattern) {
        return Err(format!(
            "credential_hosts: `{entry}` is not on the connection's `allowed_hosts`"
        ));
    }
    Ok(normalized)
}

/// The hosts that receive a connection's credentials: `explicit`, else the
/// host of its API URL setting, else its first allowed host when that is
/// an exact host.
pub fn credential_targets(
    explicit: &[String],
    config: &BTreeMap<String, String>,
    allowed_hosts: &[String],
) -> Vec<String> {
    if !explicit.is_empty() {
        return explicit.to_vec();
    }
    let from_setting = API_URL_SETTINGS.iter().find_map(|key| {
        let uri = config.get(*key)?.parse::<http::Uri>().ok()?;
        let host = uri.host()?.to_ascii_lowercase();
        Some(match uri.port_u16() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        })
    });
    match from_setting {
        Some(host) => vec![host],
        None => allowed_hosts
            .first()
            .filter(|h| !h.starts_with("*."))
            .cloned()
            .into_iter()
            .collect(),
    }
}

/// The raw secrets behind `auth`'s headers, masked when a response echoes them.
fn credential_secrets(auth: &Auth) -> Vec<String> {
    match auth {
        Auth::Basic { password, .. } => vec![password.clone()],
        Auth::Bearer { token } => vec![token.clone()],
        Auth::ApiKey { value, .. } => vec![value.clone()],
        Auth::OAuth2ClientCredentials { client_secret, .. } => vec![client_secret.clone()],
        Auth::OAuth2RefreshToken {
            client_secret,
            refresh_token,
            ..
        } => vec![client_secret.clone(), refresh_token.clone()],
    }
}

/// The headers that carry `auth` on an outbound request.
pub(crate) fn credential_headers(auth: &Auth) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let header = |name: &str, value: String| -> Result<(HeaderName, HeaderValue), String> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`{name}` is not a valid header name"))?;
        let mut value = HeaderValue::from_str(&value)
            .map_err(|_| format!("the credential for `{name}` is not a valid header value"))?;
        value.set_sensitive(true);
        Ok((name, value))
    };
    Ok(vec![match auth {
        Auth::Basic { username, password } => {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            header("authorization", format!("Basic {encoded}"))?
        }
        Auth::Bearer { token } => header("authorization", format!("Bearer {token}"))?,
        Auth::ApiKey {
            header: name,
            value,
        } => header(name, value.clone())?,
        // Fetched per call by the outbound path; nothing static to add.
        Auth::OAuth2ClientCredentials { .. } | Auth::OAuth2RefreshToken { .. } => {
            return Ok(Vec::new());
        }
    }])
}
