//! The set of loaded plugin versions.
//!
//! A plugin version is validated (by `junction-registry`) before it is
//! compiled, compiled off the async executor, linked against the
//! capabilities of its world once ([`InstancePre`](wasmtime::component::InstancePre)),
//! and asked for its `info`, which must agree with what it is.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use junction_registry::{Digest, World};
use serde::Serialize;

use crate::bindings::ConnectorPre;
use crate::bindings::transform::TransformPre;
use crate::bindings::{PluginInfo, junction::plugin::types::OperationInfo};
use crate::capabilities::HostState;

/// The pre-instantiated component of one plugin version.
pub(crate) enum Pre {
    Connector(ConnectorPre<HostState>),
    Transform(TransformPre<HostState>),
}

/// One loaded plugin version.
pub struct Plugin {
    pub(crate) info: PluginInfo,
    pub(crate) version: semver::Version,
    pub(crate) world: World,
    pub(crate) digest: Digest,
    pub(crate) pre: Pre,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.info.name)
            .field("version", &self.version.to_string())
            .field("world", &self.world)
            .field("digest", &self.digest.as_str())
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// The plugin's version.
    pub fn version(&self) -> &semver::Version {
        &self.version
    }

    /// The world the plugin targets.
    pub fn world(&self) -> World {
        self.world
    }

    /// The sha256 digest of the component.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// What the plugin reported about itself.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// The operation called `name`, if the plugin offers it.
    pub fn operation(&self, name: &str) -> Option<&OperationInfo> {
        self.info.operations.iter().find(|op| op.name == name)
    }

    /// A JSON-friendly summary.
    pub fn summary(&self, active: bool) -> PluginSummary {
        PluginSummary {
            name: self.info.name.clone(),
            version: self.version.to_string(),
            world: self.world,
            digest: self.digest.to_string(),
            description: self.info.description.clone(),
            active,
            operations: self
                .info
                .operations
                .iter()
                .map(|o| o.name.clone())
                .collect(),
        }
    }
}

/// A plugin version as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PluginSummary {
    /// Plugin name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// `connector` or `transform`.
    pub world: World,
    /// `sha256:<hex>` of the component.
    pub digest: String,
    /// The plugin's description.
    pub description: String,
    /// Whether this is the version calls use unless a connection pins another.
    pub active: bool,
    /// Names of its operations.
    pub operations: Vec<String>,
}

/// What happened when a plugin version was added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// A new version, now active.
    New,
    /// The same name, version and digest were already loaded.
    Unchanged,
}

/// Why a plugin version could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// Same name and version as a loaded one, other bytes.
    #[error(
        "{name}@{version} is already loaded with digest {existing}; a released version is never replaced: publish a new version"
    )]
    DigestMismatch {
        /// Plugin name.
        name: String,
        /// Plugin version.
        version: String,
        /// The digest already loaded.
        existing: String,
    },
}

#[derive(Default)]
struct Versions {
    versions: BTreeMap<semver::Version, Arc<Plugin>>,
    active: Option<semver::Version>,
}

/// Loaded plugins by name and version, with one active version each.
#[derive(Default)]
pub struct PluginSet {
    inner: RwLock<BTreeMap<String, Versions>>,
}

impl PluginSet {
    /// Adds a version and makes it the active one.
    pub fn add(&self, plugin: Arc<Plugin>) -> Result<Added, Conflict> {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let entry = inner.entry(plugin.name().to_string()).or_default();
        if let Some(existing) = entry.versions.get(plugin.version()) {
            if existing.digest == plugin.digest {
                return Ok(Added::Unchanged);
            }
            return Err(Conflict::DigestMismatch {
                name: plugin.name().to_string(),
                version: plugin.version().to_string(),
                existing: existing.digest.to_string(),
            });
        }
        entry.active = Some(plugin.version().clone());
        entry.versions.insert(plugin.version().clone(), plugin);
        Ok(Added::New)
    }

    /// The active version of `name`, or the pinned `version` when given.
    pub fn get(&self, name: &str, version: Option<&semver::Version>) -> Option<Arc<Plugin>> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let entry = inner.get(name)?;
        let version = version.or(entry.active.as_ref())?;
        entry.versions.get(version).cloned()
    }

    /// Every loaded version, by name then version.
    pub fn list(&self) -> Vec<PluginSummary> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner
            .values()
            .flat_map(|entry| {
                entry
                    .versions
                    .iter()
                    .map(|(v, p)| p.summary(entry.active.as_ref() == Some(v)))
            })
            .collect()
    }
}
