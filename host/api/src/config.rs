//! The API's configuration: where it listens, the URL senders reach it at,
//! the largest body it accepts and its bearer tokens. Top-level keys of
//! `junction.toml` (`[tokens.<name>]` tables); the binary composes them with
//! the other crates' sections.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

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

/// The API's settings.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ApiConfig {
    /// Address the API listens on.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// API tokens by name (the name is what the audit log shows).
    pub tokens: BTreeMap<String, Token>,
    /// The URL webhook senders use to reach this host (scheme, host, port
    /// and any path prefix a proxy adds), e.g. `https://junction.example.com`.
    /// Schemes that sign the URL (HubSpot v3) are checked against it.
    /// Absent: `http://` followed by `listen`.
    pub public_url: Option<String>,
    /// A bearer token (at least 16 characters) that may scrape `/metrics`
    /// and nothing else; any token of the read scope or above may too.
    pub metrics_token: Option<String>,
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("listen", &self.listen)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("tokens", &self.tokens)
            .field("public_url", &self.public_url)
            .field("metrics_token", &self.metrics_token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 4 * 1024 * 1024,
            tokens: BTreeMap::new(),
            public_url: None,
            metrics_token: None,
        }
    }
}

/// The top-level keys these settings own.
pub const KEYS: &[&str] = &[
    "listen",
    "max_body_bytes",
    "tokens",
    "public_url",
    "metrics_token",
];

impl ApiConfig {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        for (name, token) in &self.tokens {
            if token.token.len() < 16 {
                return Err(format!("token `{name}` is shorter than 16 characters"));
            }
        }
        if let Some(url) = &self.public_url {
            check_public_url(url)?;
        }
        if self.metrics_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err("metrics_token is shorter than 16 characters".into());
        }
        Ok(())
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

/// A public URL is an absolute `http` or `https` URL with a host and no
/// credentials, query or fragment.
pub(crate) fn check_public_url(text: &str) -> Result<(), String> {
    let bad = |why: &str| format!("public_url `{text}` {why}");
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
