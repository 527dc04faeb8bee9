//! The plugin manifest, `plugin.toml`: what a plugin is and what it asks for.
//!
//! ```
//! use junction_registry::{Manifest, World};
//!
//! let manifest = Manifest::parse(r#"
//! [plugin]
//! name = "jira"
//! version = "0.1.0"
//! world = "connector"
//! wit = "junction:plugin@0.1.0"
//! description = "Jira Cloud REST v3"
//! operations = ["create-issue"]
//!
//! [capabilities]
//! outbound_hosts = ["*.atlassian.net"]
//! auth = "basic"
//! "#).unwrap();
//! assert_eq!(manifest.plugin.world, World::Connector);
//! assert_eq!(Manifest::parse(&manifest.to_toml()).unwrap(), manifest);
//! ```

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::World;

/// The WIT packages this host can run, as written in `plugin.wit`.
pub const SUPPORTED_WIT: &[&str] = &["junction:plugin@0.1.0"];

/// Longest plugin name, in characters.
pub const MAX_NAME_LEN: usize = 64;

/// A parsed and checked `plugin.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifest {
    /// The `[plugin]` table: identity and what the plugin offers.
    pub plugin: Plugin,
    /// The `[capabilities]` table: what the plugin asks the host for.
    pub capabilities: Capabilities,
    /// The `[limits]` table: resource limits the plugin asks for; the host
    /// intersects them with the operator's policy. Absent keys are `None`.
    pub limits: Limits,
}

/// The `[plugin]` table of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plugin {
    /// 1 to 64 characters of `a-z`, `0-9`, `-` and `_`.
    pub name: String,
    /// The plugin's own version.
    pub version: semver::Version,
    /// The world the component targets.
    pub world: World,
    /// The WIT package it was built against, one of [`SUPPORTED_WIT`].
    pub wit: String,
    /// One line for people.
    pub description: String,
    /// Operations a connector offers; empty for a transform.
    pub operations: Vec<String>,
    /// Event types a connector can emit from webhooks; empty if none.
    pub triggers: Vec<String>,
}

/// How a connector authenticates to the system it talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Auth {
    /// No credentials.
    #[default]
    None,
    /// HTTP basic authentication.
    Basic,
    /// A bearer token.
    Bearer,
    /// An API key in a header or query parameter.
    ApiKey,
    /// OAuth 2 client-credentials grant.
    Oauth2ClientCredentials,
    /// OAuth 2 with a refresh token.
    Oauth2RefreshToken,
}

impl Auth {
    const ALL: [Auth; 6] = [
        Auth::None,
        Auth::Basic,
        Auth::Bearer,
        Auth::ApiKey,
        Auth::Oauth2ClientCredentials,
        Auth::Oauth2RefreshToken,
    ];

    /// The scheme as written in `plugin.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Basic => "basic",
            Auth::Bearer => "bearer",
            Auth::ApiKey => "api_key",
            Auth::Oauth2ClientCredentials => "oauth2_client_credentials",
            Auth::Oauth2RefreshToken => "oauth2_refresh_token",
        }
    }
}

impl fmt::Display for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `[capabilities]` table of a manifest. An absent table asks for nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Capabilities {
    /// Hosts the plugin may call: `host` or `host:port`, optionally with a
    /// `*.` prefix matching any subdomain. Empty means no network.
    pub outbound_hosts: Vec<String>,
    /// The authentication scheme; `none` when absent.
    pub auth: Auth,
    /// Whether the plugin uses `junction:plugin/kv`.
    pub kv: bool,
}

/// The `[limits]` table of a manifest; `None` leaves the host's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Linear memory, in MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// Wall-clock deadline of one call, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// Largest output of one call, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_bytes: Option<u64>,
    /// Calls in flight at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u64>,
    /// Log lines one call may write.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_lines: Option<u64>,
    /// Log bytes one call may write.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_bytes: Option<u64>,
    /// Keys the plugin's kv may hold on one connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_keys: Option<u64>,
    /// Bytes the plugin's kv may hold on one connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_bytes: Option<u64>,
    /// Outbound requests one call may send.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbound_requests: Option<u64>,
    /// Response body bytes one call may read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_response_bytes: Option<u64>,
}

impl Limits {
    fn entries(&self) -> [(&'static str, Option<u64>); 10] {
        [
            ("memory_mib", self.memory_mib),
            ("deadline_ms", self.deadline_ms),
            ("output_bytes", self.output_bytes),
            ("concurrency", self.concurrency),
            ("log_lines", self.log_lines),
            ("log_bytes", self.log_bytes),
            ("kv_keys", self.kv_keys),
            ("kv_bytes", self.kv_bytes),
            ("outbound_requests", self.outbound_requests),
            ("call_response_bytes", self.call_response_bytes),
        ]
    }

    /// Whether no limit is requested.
    pub fn is_empty(&self) -> bool {
        self.entries().iter().all(|(_, v)| v.is_none())
    }
}

/// Why a `plugin.toml` is refused. Each message names the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not TOML, a missing or unknown key, or a value of the wrong type.
    #[error("{0}")]
    Syntax(String),
    /// `plugin.name` has the wrong shape.
    #[error(
        "`plugin.name` {0:?} is not valid: use 1 to {MAX_NAME_LEN} characters of a-z, 0-9, `-` and `_`"
    )]
    BadName(String),
    /// `plugin.version` is not semver.
    #[error("`plugin.version` {version:?} is not a semver version: {reason}")]
    BadVersion {
        /// The value given.
        version: String,
        /// What semver says.
        reason: String,
    },
    /// `plugin.world` names no `junction:plugin` world.
    #[error("`plugin.world` {0:?} is not a junction:plugin world; use `connector` or `transform`")]
    UnknownWorld(String),
    /// `plugin.wit` names a WIT package this host cannot run.
    #[error(
        "`plugin.wit` {wit:?} is not supported; this host supports {}",
        .supported.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
    )]
    UnsupportedWit {
        /// The value given.
        wit: String,
        /// What this host supports.
        supported: Vec<String>,
    },
    /// `capabilities.auth` names no scheme.
    #[error("`capabilities.auth` {auth:?} is not an auth scheme; use one of {}", .expected.join(", "))]
    UnknownAuth {
        /// The value given.
        auth: String,
        /// The schemes there are.
        expected: Vec<String>,
    },
    /// A transform asks for something only a connector may have.
    #[error("`{key}`: a transform is a pure mapping and cannot request {what}")]
    TransformCapability {
        /// The key, such as `capabilities.kv`.
        key: String,
        /// What it asked for.
        what: String,
    },
    /// An entry of `capabilities.outbound_hosts` is not a host pattern.
    #[error(
        "`capabilities.outbound_hosts` entry {entry:?} is not `host`, `host:port` or `*.domain`: {reason}"
    )]
    BadHost {
        /// The entry.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An operation or trigger name is empty or repeated.
    #[error("`plugin.{key}` entry {entry:?} is {reason}")]
    BadListEntry {
        /// `operations` or `triggers`.
        key: String,
        /// The entry.
        entry: String,
        /// `empty` or `repeated`.
        reason: String,
    },
    /// A limit is zero.
    #[error("`limits.{0}` must be greater than zero")]
    ZeroLimit(String),
}

// What the TOML says before it is checked: enums and versions are strings so
// that a bad value is reported with the key that holds it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    plugin: RawPlugin,
    #[serde(default)]
    capabilities: RawCapabilities,
    #[serde(default)]
    limits: Limits,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugin {
    name: String,
    version: String,
    world: String,
    wit: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    operations: Vec<String>,
    #[serde(default)]
    triggers: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCapabilities {
    #[serde(default)]
    outbound_hosts: Vec<String>,
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    kv: bool,
}

impl Manifest {
    /// Parses and checks `plugin.toml`. Unknown keys are refused, so a typo
    /// is not silently ignored.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let raw: RawManifest = toml::from_str(text)
            .map_err(|e| ManifestError::Syntax(format!("plugin.toml: {}", e.message())))?;
        let RawPlugin {
            name,
            version,
            world,
            wit,
            description,
            operations,
            triggers,
        } = raw.plugin;

        if !valid_name(&name) {
            return Err(ManifestError::BadName(name));
        }
        let version = semver::Version::parse(&version).map_err(|e| ManifestError::BadVersion {
            reason: e.to_string(),
            version,
        })?;
        let world = match world.as_str() {
            "connector" => World::Connector,
            "transform" => World::Transform,
            _ => return Err(ManifestError::UnknownWorld(world)),
        };
        if !SUPPORTED_WIT.contains(&wit.as_str()) {
            return Err(ManifestError::UnsupportedWit {
                wit,
                supported: SUPPORTED_WIT.iter().map(|s| s.to_string()).collect(),
            });
        }
        check_list("operations", &operations)?;
        check_list("triggers", &triggers)?;

        let auth = match raw.capabilities.auth {
            None => Auth::None,
            Some(auth) => Auth::ALL
                .into_iter()
                .find(|a| a.as_str() == auth)
                .ok_or_else(|| ManifestError::UnknownAuth {
                    auth,
                    expected: Auth::ALL.iter().map(|a| a.as_str().to_string()).collect(),
                })?,
        };
        for entry in &raw.capabilities.outbound_hosts {
            check_host(entry).map_err(|reason| ManifestError::BadHost {
                entry: entry.clone(),
                reason: reason.to_string(),
            })?;
        }
        if let Some((key, _)) = raw.limits.entries().iter().find(|(_, v)| *v == Some(0)) {
            return Err(ManifestError::ZeroLimit(key.to_string()));
        }

        if world == World::Transform {
            let transform_refusal = |key: &str, what: &str| ManifestError::TransformCapability {
                key: key.into(),
                what: what.into(),
            };
            if !raw.capabilities.outbound_hosts.is_empty() {
                return Err(transform_refusal(
                    "capabilities.outbound_hosts",
                    "network access",
                ));
            }
            if raw.capabilities.kv {
                return Err(transform_refusal("capabilities.kv", "key-value storage"));
            }
            if auth != Auth::None {
                return Err(transform_refusal("capabilities.auth", "credentials"));
            }
            if !operations.is_empty() {
                return Err(transform_refusal("plugin.operations", "operations"));
            }
            if !triggers.is_empty() {
                return Err(transform_refusal("plugin.triggers", "triggers"));
            }
        }

        Ok(Manifest {
            plugin: Plugin {
                name,
                version,
                world,
                wit,
                description,
                operations,
                triggers,
            },
            capabilities: Capabilities {
                outbound_hosts: raw.capabilities.outbound_hosts,
                auth,
                kv: raw.capabilities.kv,
            },
            limits: raw.limits,
        })
    }

    /// The manifest as `plugin.toml` text; [`Manifest::parse`] reads it back
    /// to an equal manifest.
    pub fn to_toml(&self) -> String {
        TomlText(self).to_string()
    }
}

struct TomlText<'a>(&'a Manifest);

impl fmt::Display for TomlText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Written by hand so the keys keep the documented order; toml's
        // `Value` does the quoting and escaping.
        let str_value = |s: &str| toml::Value::String(s.to_string());
        let list = |items: &[String]| {
            toml::Value::Array(items.iter().map(|s| str_value(s)).collect::<Vec<_>>())
        };
        let Manifest {
            plugin,
            capabilities,
            limits,
        } = self.0;
        writeln!(f, "[plugin]")?;
        writeln!(f, "name = {}", str_value(&plugin.name))?;
        writeln!(f, "version = {}", str_value(&plugin.version.to_string()))?;
        writeln!(f, "world = {}", str_value(plugin.world.as_str()))?;
        writeln!(f, "wit = {}", str_value(&plugin.wit))?;
        writeln!(f, "description = {}", str_value(&plugin.description))?;
        writeln!(f, "operations = {}", list(&plugin.operations))?;
        writeln!(f, "triggers = {}", list(&plugin.triggers))?;
        writeln!(f)?;
        writeln!(f, "[capabilities]")?;
        writeln!(f, "outbound_hosts = {}", list(&capabilities.outbound_hosts))?;
        writeln!(f, "auth = {}", str_value(capabilities.auth.as_str()))?;
        writeln!(f, "kv = {}", capabilities.kv)?;
        if !limits.is_empty() {
            writeln!(f)?;
            writeln!(f, "[limits]")?;
            for (key, value) in limits.entries() {
                if let Some(value) = value {
                    writeln!(f, "{key} = {value}")?;
                }
            }
        }
        Ok(())
    }
}

fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn check_list(key: &str, entries: &[String]) -> Result<(), ManifestError> {
    let mut seen = BTreeSet::new();
    for entry in entries {
        let reason = if entry.trim().is_empty() {
            "empty"
        } else if !seen.insert(entry.as_str()) {
            "repeated"
        } else {
            continue;
        };
        return Err(ManifestError::BadListEntry {
            key: key.into(),
            entry: entry.clone(),
            reason: reason.into(),
        });
    }
    Ok(())
}

/// Checks one `outbound_hosts` entry: lowercase DNS labels (or an IPv4
/// address), an optional `:port`, and an optional `*.` prefix followed by at
/// least two labels, so `*.com` is refused.
fn check_host(entry: &str) -> Result<(), &'static str> {
    if entry.contains('/') {
        return Err("use a host name, not a URL or a path");
    }
    let (wildcard, rest) = match entry.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, entry),
    };
    let host = match rest.rsplit_once(':') {
        Some((host, port)) => {
            match port.parse::<u16>() {
                Ok(p) if p != 0 && !port.starts_with('+') => {}
                _ => return Err("the port must be a number from 1 to 65535"),
            }
            host
        }
        None => rest,
    };
    if host.is_empty() {
        return Err("the host is empty");
    }
    if host.contains('*') {
        return Err("a wildcard is allowed only as a leading `*.`");
    }
    if host.len() > 253 {
        return Err("the host is longer than 253 characters");
    }
    let labels: Vec<&str> = host.split('.').collect();
    for label in &labels {
        if label.is_empty() || label.len() > 63 {
            return Err("each dot-separated label must have 1 to 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err("use lowercase letters, digits and `-` only (no scheme or path)");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label cannot start or end with `-`");
        }
    }
    if wildcard && labels.len() < 2 {
        return Err("a wildcard must be followed by at least two labels, as in `*.example.com`");
    }
    Ok(())
}

/// The manifest of the design document's example, for tests.
#[cfg(test)]
pub(crate) const JIRA: &str = r#"
[plugin]
name = "jira"
version = "0.1.0"
world = "connector"
wit = "junction:plugin@0.1.0"
description = "Jira Cloud REST v3"
operations = ["create-project", "create-issue", "get-issue"]
triggers = []

[capabilities]
outbound_hosts = ["*.atlassian.net"]
auth = "basic"
kv = true

[limits]
memory_mib = 64
deadline_ms = 10000
output_bytes = 4194304
concurrency = 16
"#;

#[cfg(test)]
mod tests;
