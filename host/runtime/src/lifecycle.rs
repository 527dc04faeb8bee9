//! Plugin lifecycle on a running host: upload a package, activate a
//! version, roll back, delete, restore everything after a restart, and
//! follow what the other hosts sharing the database do.
//! Every action, refused ones included, goes to the audit log.

use std::sync::Arc;

use junction_registry::{Package, Refusal};
use serde::Serialize;

use crate::plugins::{Added, Conflict, PackageInfo, Plugin};
use crate::runtime::{LoadError, Runtime};
use junction_store::audit::{Outcome, Record};
use junction_store::{self as store, Change, StoredVersion};

/// Why a lifecycle action was refused.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The package or component was refused.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The action conflicts with the plugin set (not loaded, in use, other digest).
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
}

impl From<Refusal> for LifecycleError {
    fn from(r: Refusal) -> Self {
        LifecycleError::Load(LoadError::Refused(r))
    }
}

/// What an upload did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Uploaded {
    /// Plugin name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// Component digest.
    pub digest: String,
    /// Package digest.
    pub package_digest: String,
    /// Key id of the signer.
    pub signer: Option<String>,
    /// Whether the version became active (it is the plugin's first).
    pub active: bool,
    /// False when exactly this package was already loaded.
    pub created: bool,
}

/// One version in a plugin's detail.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VersionDetail {
    /// Version.
    pub version: String,
    /// Component digest.
    pub digest: String,
    /// Package digest; absent for plugins the host ships.
    pub package_digest: Option<String>,
    /// Key id of the signer.
    pub signer: Option<String>,
    /// Who uploaded it.
    pub uploaded_by: Option<String>,
    /// Whether it is the active version.
    pub active: bool,
    /// Connections pinned to it.
    pub pinned_by: Vec<String>,
    /// Operation names.
    pub operations: Vec<String>,
}

/// A plugin with all its loaded versions.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PluginDetail {
    /// Plugin name.
    pub name: String,
    /// `connector` or `transform` (of the active version).
    pub world: String,
    /// The active version.
    pub active: Option<String>,
    /// The version a rollback would activate; absent when there is none.
    pub rollback_to: Option<String>,
    /// Connections following the active version.
    pub following_active: Vec<String>,
    /// Loaded versions, oldest first.
    pub versions: Vec<VersionDetail>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Runtime {
    async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        digest: Option<&str>,
        result: Result<(), String>,
    ) {
        let (outcome, detail) = match &result {
            Ok(()) => (Outcome::Ok, String::new()),
            Err(reason) => (Outcome::Refused, reason.clone()),
        };
        let record = Record {
            actor,
            action,
            target,
            digest,
            outcome,
            detail: &detail,
        };
        self.store().audit_or_log(record).await;
    }

    /// Validates a package (format, manifest, component, signature policy),
    /// loads it beside the plugin's other versions and persists it. The new
    /// version becomes active only when it is the plugin's first.
    pub async fn upload_package(
        &self,
        bytes: &[u8],
        actor: &str,
    ) -> Result<Uploaded, LifecycleError> {
        let result = self.upload_inner(bytes, actor).await;
        match &result {
            Ok(up) => {
                let target = format!("{}@{}", up.name, up.version);
                self.audit(
                    actor,
                    "plugin.upload",
                    &target,
                    Some(&up.package_digest),
                    Ok(()),
                )
                .await;
            }
            Err(err) => {
                let digest = junction_registry::Digest::of(bytes);
                self.audit(
                    actor,
                    "plugin.upload",
                    "(refused package)",
                    Some(digest.as_str()),
                    Err(err.to_string()),
                )
                .await;
            }
        }
        result
    }

    async fn upload_inner(&self, bytes: &[u8], actor: &str) -> Result<Uploaded, LifecycleError> {
        let package = Package::from_bytes(bytes)?;
        let validated = junction_registry::validate(&package, &self.policy())?;
        let info = PackageInfo {
            package_digest: validated.package_digest.to_string(),
            signer: validated.signer.clone(),
            uploaded_by: actor.to_string(),
            capabilities: validated.manifest.capabilities.clone(),
            limits: validated.manifest.limits,
        };
        // Refuse a new digest under a released name and version before compiling.
        let manifest = &validated.manifest;
        if let Some(existing) = self
            .plugins
            .get(&manifest.plugin.name, Some(&manifest.plugin.version))
            && existing.digest() != &validated.inspection.digest
        {
            return Err(Conflict::DigestMismatch {
                name: manifest.plugin.name.clone(),
                version: manifest.plugin.version.to_string(),
                existing: existing.digest().to_string(),
            }
            .into());
        }
        let (plugin, _) = self
            .prepare(
                package.wasm(),
                validated.inspection.clone(),
                Some(info.clone()),
            )
            .await?;
        let operations: Vec<String> = plugin
            .info()
            .operations
            .iter()
            .map(|o| o.name.clone())
            .collect();
        junction_registry::check_info(
            manifest,
            plugin.name(),
            &plugin.version().to_string(),
            &operations,
        )?;
        let added = self.plugins.insert(plugin.clone())?;
        let created = matches!(added, Added::New { .. });
        let activated = matches!(added, Added::New { activated: true });
        if created {
            self.store()
                .put_package(&info.package_digest, bytes)
                .await?;
            self.store()
                .put_plugin_version(&StoredVersion {
                    name: plugin.name().to_string(),
                    version: plugin.version().to_string(),
                    world: plugin.world().to_string(),
                    component_digest: plugin.digest().to_string(),
                    package_digest: info.package_digest.clone(),
                    signer: info.signer.clone(),
                    uploaded_at: now(),
                    uploaded_by: actor.to_string(),
                })
                .await?;
            if activated {
                self.store()
                    .record_activation(plugin.name(), &plugin.version().to_string(), actor)
                    .await?;
            }
            self.announce(Change::Plugins).await;
        }
        let plugin = self
            .plugins
            .get(plugin.name(), Some(plugin.version()))
            .unwrap_or(plugin);
        let active = self
            .plugins
            .get(plugin.name(), None)
            .is_some_and(|a| a.version() == plugin.version());
        Ok(Uploaded {
            name: plugin.name().to_string(),
            version: plugin.version().to_string(),
            digest: plugin.digest().to_string(),
            package_digest: info.package_digest,
            signer: info.signer,
            active,
            created,
        })
    }

    /// Makes `version` the active version of `name`: calls that start after
    /// this use it, calls in flight finish on the version they started on.
    pub async fn activate(
        &self,
        name: &str,
        version: &str,
        actor: &str,
    ) -> Result<Arc<Plugin>, LifecycleError> {
        let target = format!("{name}@{version}");
        let result = self.activate_inner(name, version, actor).await;
        let digest = result.as_ref().ok().map(|p| p.digest().to_string());
        self.audit(
            actor,
            "plugin.activate",
            &target,
            digest.as_deref(),
            result.as_ref().map(|_| ()).map_err(|e| e.to_string()),
        )
        .await;
        result
    }

    async fn activate_inner(
        &self,
        name: &str,
        version: &str,
        actor: &str,
    ) -> Result<Arc<Plugin>, LifecycleError> {
        let parsed = parse_version(name, version)?;
        self.plugins.activate(name, &parsed)?;
        self.store().record_activation(name, version, actor).await?;
        self.announce(Change::Plugins).await;
        self.plugins.get(name, Some(&parsed)).ok_or_else(|| {
            Conflict::NotLoaded(format!("plugin `{name}` has no loaded version {version}")).into()
        })
    }

    /// Re-activates the version that was active before the current one.
    pub async fn rollback(&self, name: &str, actor: &str) -> Result<Arc<Plugin>, LifecycleError> {
        let result = self.rollback_inner(name, actor).await;
        let (target, digest) = match &result {
            Ok(p) => (
                format!("{name}@{}", p.version()),
                Some(p.digest().to_string()),
            ),
            Err(_) => (name.to_string(), None),
        };
        self.audit(
            actor,
            "plugin.rollback",
            &target,
            digest.as_deref(),
            result.as_ref().map(|_| ()).map_err(|e| e.to_string()),
        )
        .await;
        result
    }

    async fn rollback_inner(&self, name: &str, actor: &str) -> Result<Arc<Plugin>, LifecycleError> {
        let (versions, active) = self
            .plugins
            .versions(name)
            .ok_or_else(|| Conflict::NotLoaded(format!("no plugin `{name}` is loaded")))?;
        let previous = self
            .rollback_target(name, &versions, active.as_ref())
            .await?
            .ok_or_else(|| {
                Conflict::NotLoaded(format!(
                    "plugin `{name}` has no earlier active version to roll back to"
                ))
            })?;
        self.activate_inner(name, &previous, actor).await
    }

    /// The version a rollback of `name` would activate: the last one active
    /// before the current one that is still loaded.
    async fn rollback_target(
        &self,
        name: &str,
        versions: &[Arc<Plugin>],
        active: Option<&semver::Version>,
    ) -> Result<Option<String>, LifecycleError> {
        let active = active.map(ToString::to_string).unwrap_or_default();
        let loaded: Vec<String> = versions.iter().map(|p| p.version().to_string()).collect();
        let history = self.store().activation_history(name).await?;
        Ok(history
            .iter()
            .rev()
            .find(|v| **v != active && loaded.contains(v))
            .cloned())
    }

    /// Unloads and forgets a version that is neither active nor pinned.
    pub async fn delete_version(
        &self,
        name: &str,
        version: &str,
        actor: &str,
    ) -> Result<(), LifecycleError> {
        let target = format!("{name}@{version}");
        let result = self.delete_inner(name, version).await;
        let digest = result.as_ref().ok().cloned();
        self.audit(
            actor,
            "plugin.delete",
            &target,
            digest.as_deref(),
            result.as_ref().map(|_| ()).map_err(|e| e.to_string()),
        )
        .await;
        result.map(|_| ())
    }

    async fn delete_inner(&self, name: &str, version: &str) -> Result<String, LifecycleError> {
        let parsed = parse_version(name, version)?;
        let pinned: Vec<String> = self
            .store()
            .connections()
            .await?
            .into_iter()
            .filter(|c| c.plugin == name && c.version.as_deref() == Some(version))
            .map(|c| c.name)
            .collect();
        if !pinned.is_empty() {
            return Err(Conflict::InUse(format!(
                "{name}@{version} is pinned by connection(s) {}; change their version first",
                pinned.join(", ")
            ))
            .into());
        }
        let (versions, active) = self
            .plugins
            .versions(name)
            .ok_or_else(|| Conflict::NotLoaded(format!("no plugin `{name}` is loaded")))?;
        if active.as_ref() == Some(&parsed) && versions.len() > 1 {
            return Err(Conflict::InUse(format!(
                "{name}@{version} is the active version; activate another version first"
            ))
            .into());
        }
        let removed = self.plugins.remove(name, &parsed)?;
        self.store().delete_plugin_version(name, version).await?;
        self.announce(Change::Plugins).await;
        Ok(removed.digest().to_string())
    }

    /// A plugin, its versions, and which connections use which.
    pub async fn plugin_detail(&self, name: &str) -> Result<PluginDetail, LifecycleError> {
        let (versions, active) = self
            .plugins
            .versions(name)
            .ok_or_else(|| Conflict::NotLoaded(format!("no plugin `{name}` is loaded")))?;
        let connections: Vec<_> = self
            .store()
            .connections()
            .await?
            .into_iter()
            .filter(|c| c.plugin == name)
            .collect();
        let world = versions
            .iter()
            .find(|p| Some(p.version()) == active.as_ref())
            .or(versions.first())
            .map(|p| p.world().to_string())
            .unwrap_or_default();
        let rollback_to = self
            .rollback_target(name, &versions, active.as_ref())
            .await?;
        Ok(PluginDetail {
            name: name.to_string(),
            world,
            active: active.as_ref().map(ToString::to_string),
            rollback_to,
            following_active: connections
                .iter()
                .filter(|c| c.version.is_none())
                .map(|c| c.name.clone())
                .collect(),
            versions: versions
                .iter()
                .map(|p| VersionDetail {
                    version: p.version().to_string(),
                    digest: p.digest().to_string(),
                    package_digest: p.package().map(|i| i.package_digest.clone()),
                    signer: p.package().and_then(|i| i.signer.clone()),
                    uploaded_by: p.package().map(|i| i.uploaded_by.clone()),
                    active: Some(p.version()) == active.as_ref(),
                    pinned_by: connections
                        .iter()
                        .filter(|c| c.version.as_deref() == Some(&p.version().to_string()))
                        .map(|c| c.name.clone())
                        .collect(),
                    operations: p.info().operations.iter().map(|o| o.name.clone()).collect(),
                })
                .collect(),
        })
    }

    /// Loads every stored plugin version and re-activates the stored active
    /// ones; returns how many versions loaded.
    pub async fn restore(&self) -> Result<usize, LifecycleError> {
        self.sync_plugins().await
    }

    /// Brings the loaded plugin versions in line with the store, as another
    /// host sharing it left them: loads the versions it lacks (compiled, or
    /// taken from the compiled-code cache), activates what the store says is
    /// active, and unloads uploaded versions the store no longer has. Calls
    /// in flight finish on the version they started on. Returns how many
    /// versions it loaded.
    pub async fn sync_plugins(&self) -> Result<usize, LifecycleError> {
        let stored = self.store().plugin_versions().await?;
        let active = self.store().active_versions().await?;
        let mut loaded = 0;
        for v in &stored {
            let known = semver::Version::parse(&v.version)
                .ok()
                .and_then(|parsed| self.plugins.get(&v.name, Some(&parsed)))
                .is_some();
            if known {
                continue;
            }
            match self.load_stored(v).await {
                Ok(()) => loaded += 1,
                Err(err) => {
                    tracing::error!(plugin = %v.name, version = %v.version, error = %err, "stored plugin version no longer loads; skipped")
                }
            }
        }
        for (name, version) in &active {
            let current = self.plugins.versions(name).and_then(|(_, a)| a);
            if let Ok(parsed) = semver::Version::parse(version)
                && current.as_ref() != Some(&parsed)
                && let Err(err) = self.plugins.activate(name, &parsed)
            {
                tracing::error!(plugin = %name, %version, error = %err, "could not re-activate");
            }
        }
        // Versions uploaded here or by another host and since deleted; a
        // component loaded without a package is this host's own business.
        for (name, versions) in self.plugins.all() {
            for plugin in versions {
                let deleted = plugin.package().is_some()
                    && !stored
                        .iter()
                        .any(|v| v.name == name && v.version == plugin.version().to_string());
                if deleted && let Err(err) = self.plugins.remove(&name, plugin.version()) {
                    tracing::warn!(plugin = %name, version = %plugin.version(), error = %err, "a version deleted elsewhere stays loaded");
                }
            }
        }
        Ok(loaded)
    }

    /// Loads one stored version from its package.
    async fn load_stored(&self, v: &StoredVersion) -> Result<(), LifecycleError> {
        let Some(bytes) = self.store().package(&v.package_digest).await? else {
            return Err(Conflict::NotLoaded(format!(
                "the stored package {} is missing",
                v.package_digest
            ))
            .into());
        };
        let package = Package::from_bytes(&bytes)?;
        let validated = junction_registry::validate(&package, &self.policy())?;
        let info = PackageInfo {
            package_digest: v.package_digest.clone(),
            signer: validated.signer.clone(),
            uploaded_by: v.uploaded_by.clone(),
            capabilities: validated.manifest.capabilities.clone(),
            limits: validated.manifest.limits,
        };
        self.install(package.wasm(), validated.inspection, Some(info))
            .await?;
        Ok(())
    }

    /// Follows the other hosts' changes (PostgreSQL only): plugin changes
    /// are synced from the store, connection changes drop the cached
    /// connections. Runs until the runtime is dropped; `None` on SQLite.
    pub async fn follow_changes(
        self: &Arc<Self>,
    ) -> Result<Option<tokio::task::JoinHandle<()>>, LifecycleError> {
        let Some(mut feed) = self.store().changes().await? else {
            return Ok(None);
        };
        let runtime = Arc::downgrade(self);
        Ok(Some(tokio::spawn(async move {
            loop {
                let change = feed.next().await;
                let Some(runtime) = runtime.upgrade() else {
                    return;
                };
                match change {
                    Ok(Change::Connections) => runtime.refresh_connections().await,
                    Ok(Change::Plugins) => runtime.sync_logged().await,
                    Ok(Change::Unknown) => {
                        runtime.refresh_connections().await;
                        runtime.sync_logged().await;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "listening for other hosts' changes failed; retrying");
                        drop(runtime);
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        })))
    }

    async fn sync_logged(&self) {
        match self.sync_plugins().await {
            Ok(loaded) if loaded > 0 => {
                tracing::info!(loaded, "loaded plugin versions another host uploaded")
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "syncing plugin versions failed"),
        }
    }

    /// Tells the other hosts that `change` happened here.
    pub(crate) async fn announce(&self, change: Change) {
        if let Err(err) = self.store().announce(change).await {
            tracing::warn!(error = %err, "telling the other hosts of a change failed");
        }
    }
}

fn parse_version(name: &str, version: &str) -> Result<semver::Version, LifecycleError> {
    semver::Version::parse(version).map_err(|e| {
        LifecycleError::Conflict(Conflict::NotLoaded(format!(
            "`{version}` is not a version of `{name}`: {e}"
        )))
    })
}
