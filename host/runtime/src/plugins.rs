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
    pub(crate) package: Option<PackageInfo>,
    /// The operator's limits narrowed by the manifest's.
    pub(crate) limits: crate::engine::Limits,
    /// Slots for concurrent calls of this version.
    pub(crate) slots: Arc<tokio::sync::Semaphore>,
    /// Instances of the host-wide pool this version's calls hold.
    pub(crate) in_pool: Arc<std::sync::atomic::AtomicUsize>,
    /// The log rate all calls of this version share.
    pub(crate) log_rate: Arc<crate::capabilities::quota::LogRate>,
}

/// Where an uploaded plugin version came from.
#[derive(Debug, Clone, Serialize)]
pub struct PackageInfo {
    /// sha256 of the package (manifest + component).
    pub package_digest: String,
    /// Key id of the signer, when signed by a trusted key.
    pub signer: Option<String>,
    /// Token name of the uploader.
    pub uploaded_by: String,
    /// What the manifest asks for: outbound hosts, auth scheme, kv.
    pub capabilities: junction_registry::Capabilities,
    /// The limits the manifest asks for (narrowed by the operator's).
    pub limits: junction_registry::Limits,
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

    /// The package it was uploaded in; `None` for a plugin the host ships.
    pub fn package(&self) -> Option<&PackageInfo> {
        self.package.as_ref()
    }

    /// A JSON-friendly summary.
    pub fn summary(&self, active: bool) -> PluginSummary {
        PluginSummary {
            package_digest: self.package.as_ref().map(|p| p.package_digest.clone()),
            signer: self.package.as_ref().and_then(|p| p.signer.clone()),
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PluginSummary {
    /// Plugin name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// `connector` or `transform`.
    pub world: World,
    /// `sha256:<hex>` of the component.
    pub digest: String,
    /// `sha256:<hex>` of the package it was uploaded in.
    pub package_digest: Option<String>,
    /// Key id of the signer.
    pub signer: Option<String>,
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
    /// A new version.
    New {
        /// Whether it became the active version (it is the plugin's first).
        activated: bool,
    },
    /// The same name, version and digest were already loaded.
    Unchanged,
}

/// Why a change to the plugin set was refused.
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
    /// No such plugin or version.
    #[error("{0}")]
    NotLoaded(String),
    /// The version is in use.
    #[error("{0}")]
    InUse(String),
}

#[derive(Default)]
struct Versions {
    versions: BTreeMap<semver::Version, Arc<Plugin>>,
    active: Option<semver::Version>,
}

/// Loaded plugins by name and version, with one active version each.
///
/// Calls look a plugin up once and hold its `Arc` to the end, so swapping the
/// active version never disturbs a call in flight: calls that started on the
/// old version finish on it, calls that start after the swap get the new one.
#[derive(Default)]
pub struct PluginSet {
    inner: RwLock<BTreeMap<String, Versions>>,
}

impl PluginSet {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Versions>> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Versions>> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a version; it becomes active only when it is the plugin's first.
    pub fn insert(&self, plugin: Arc<Plugin>) -> Result<Added, Conflict> {
        let mut inner = self.write();
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
        let activated = entry.active.is_none();
        if activated {
            entry.active = Some(plugin.version().clone());
        }
        entry.versions.insert(plugin.version().clone(), plugin);
        Ok(Added::New { activated })
    }

    /// Makes `version` the active version of `name`; returns the previous one.
    pub fn activate(
        &self,
        name: &str,
        version: &semver::Version,
    ) -> Result<Option<semver::Version>, Conflict> {
        let mut inner = self.write();
        let entry = inner
            .get_mut(name)
            .ok_or_else(|| Conflict::NotLoaded(format!("no plugin `{name}` is loaded")))?;
        if !entry.versions.contains_key(version) {
            return Err(Conflict::NotLoaded(format!(
                "plugin `{name}` has no loaded version {version}"
            )));
        }
        Ok(entry.active.replace(version.clone()))
    }

    /// Unloads a version that is not active.
    pub fn remove(&self, name: &str, version: &semver::Version) -> Result<Arc<Plugin>, Conflict> {
        let mut inner = self.write();
        let entry = inner
            .get_mut(name)
            .ok_or_else(|| Conflict::NotLoaded(format!("no plugin `{name}` is loaded")))?;
        if entry.active.as_ref() == Some(version) && entry.versions.len() > 1 {
            return Err(Conflict::InUse(format!(
                "{name}@{version} is the active version; activate another version first"
            )));
        }
        let removed = entry.versions.remove(version).ok_or_else(|| {
            Conflict::NotLoaded(format!("plugin `{name}` has no loaded version {version}"))
        })?;
        if entry.versions.is_empty() {
            inner.remove(name);
        }
        Ok(removed)
    }

    /// The active version of `name`, or the pinned `version` when given.
    pub fn get(&self, name: &str, version: Option<&semver::Version>) -> Option<Arc<Plugin>> {
        let inner = self.read();
        let entry = inner.get(name)?;
        let version = version.or(entry.active.as_ref())?;
        entry.versions.get(version).cloned()
    }

    /// Every loaded version of `name` (oldest first) and the active one.
    pub fn versions(&self, name: &str) -> Option<(Vec<Arc<Plugin>>, Option<semver::Version>)> {
        let inner = self.read();
        let entry = inner.get(name)?;
        Some((
            entry.versions.values().cloned().collect(),
            entry.active.clone(),
        ))
    }

    /// Every plugin name with its loaded versions (oldest first).
    pub fn all(&self) -> Vec<(String, Vec<Arc<Plugin>>)> {
        self.read()
            .iter()
            .map(|(name, entry)| (name.clone(), entry.versions.values().cloned().collect()))
            .collect()
    }

    /// Every loaded version, by name then version.
    pub fn list(&self) -> Vec<PluginSummary> {
        self.read()
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
