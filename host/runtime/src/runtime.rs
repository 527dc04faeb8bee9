//! A plugin call, from connection lookup to a typed result.
//!
//! Every call runs in a fresh store with the engine's limits, a wall-clock
//! deadline enforced by epoch interruption, and a cap on what it may return.
//! Whatever the guest does (trap, loop, exhaust memory, return garbage) ends
//! as a [`CallError`] on that call; the host keeps serving.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use junction_registry::World;
use wasmtime::component::Linker;
use wasmtime::{Store as WasmStore, UpdateDeadline};

use crate::bindings::junction::plugin::types::CallContext;
/// The error cases a plugin can answer with (the WIT `error` variant).
pub use crate::bindings::junction::plugin::types::Error as PluginError;
use crate::bindings::{ConnectorPre, PluginInfo, transform::TransformPre};
use crate::cache::{CompileCache, Origin};
pub(crate) use crate::call::{
    DeadlineExceeded, call_span, check_output, conclude, export, record_plugin, run_with_deadline,
    settle, traced, wrong_world,
};
use crate::capabilities::http::{Net, Outbound, Signals};
use crate::capabilities::quota::{LogRate, OutboundBudget, Refusals};
use crate::capabilities::{self, HostState, Imports, Scope};
use crate::config::RuntimeConfig;
pub use crate::connections::{ConnectionSpec, credential_targets};
use crate::engine::{Limits, Sandbox};
pub use crate::error::{CallError, ConnectionError, LoadError};
use crate::metrics::Metrics;
use crate::plugins::{Added, PackageInfo, Plugin, PluginSet, PluginSummary, Pre};
use crate::pool::Pool;
pub(crate) use crate::pool::admit;
use crate::trace::TraceContext;
use junction_store::{Connection, Store, StoreConfig};

/// Time the host allows past a call's deadline for the guest to be
/// interrupted before it gives up on the call from outside.
pub(crate) const DEADLINE_GRACE: Duration = Duration::from_millis(250);

/// Extra context of a call.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// Passed to the plugin so that retries of one logical call have one effect.
    pub idempotency_key: Option<String>,
    /// The flow run the call belongs to.
    pub run_id: Option<String>,
    /// 1 for a first attempt.
    pub attempt: u32,
    /// The trace the call belongs to when its span has none of its own
    /// (traces are not exported): passed to the plugin as its trace id and
    /// to the systems it calls as their `traceparent`.
    pub trace: Option<TraceContext>,
}

/// The successful result of a connector operation.
#[derive(Debug, Clone)]
pub struct Output {
    /// The output JSON text.
    pub json: String,
    /// The plugin version that produced it.
    pub plugin: Arc<Plugin>,
}

/// The host's runtime: engine, plugins, store.
pub struct Runtime {
    sandbox: Sandbox,
    pub(crate) store: Store,
    pub(crate) plugins: PluginSet,
    connector_linker: Linker<HostState>,
    transform_linker: Linker<HostState>,
    pub(crate) max_component_bytes: usize,
    pub(crate) cache: Option<CompileCache>,
    /// What uploads must satisfy; the trusted keys can be replaced while
    /// the host runs ([`Runtime::set_signature_policy`]).
    policy: std::sync::RwLock<Arc<junction_registry::Policy>>,
    /// Connections read through from the store; written through on change.
    pub(crate) connections: std::sync::RwLock<std::collections::HashMap<String, Arc<Connection>>>,
    /// What the calls on each connection share, keyed by connection name.
    pub(crate) nets: std::sync::Mutex<std::collections::HashMap<String, Arc<Bound>>>,
    pub(crate) metrics: Arc<Metrics>,
    /// The engine's instances, shared fairly by the versions that call.
    pub(crate) pool: Arc<Pool>,
}

/// What every call of one plugin version on one connection shares: its
/// network (pool, policy, credentials, tokens, rate gate) and its scope.
pub(crate) struct Bound {
    /// The connection change (`updated_at`) it was built for.
    pub(crate) updated_at: String,
    /// The plugin version it was built for.
    pub(crate) digest: junction_registry::Digest,
    pub(crate) net: Arc<Net>,
    pub(crate) scope: Arc<Scope>,
    /// For refusal logs.
    pub(crate) plugin: Arc<str>,
    /// For refusal logs.
    pub(crate) connection: Arc<str>,
}

impl Runtime {
    /// Opens the store `store` names and builds the engine `config` describes.
    pub async fn open(store: &StoreConfig, config: &RuntimeConfig) -> anyhow::Result<Arc<Runtime>> {
        let store = Store::open(store).await?;
        let runtime = Arc::new(Runtime::new(store, config)?);
        runtime.restore().await?;
        Ok(runtime)
    }

    /// A runtime over `store` with the limits, cache and signature policy of `config`.
    pub fn new(store: Store, config: &RuntimeConfig) -> anyhow::Result<Runtime> {
        let sandbox = Sandbox::new(config.limits.clone())
            .map_err(|e| anyhow::anyhow!("creating the engine: {e:?}"))?;
        let cache = config
            .cache_dir
            .as_deref()
            .map(|dir| CompileCache::open(dir, sandbox.engine()))
            .transpose()
            .map_err(|e| anyhow::anyhow!("opening the compiled-code cache: {e}"))?;
        let trusted = junction_registry::TrustedKeys::parse(&config.trusted_keys)
            .map_err(|e| anyhow::anyhow!("trusted_keys: {e}"))?;
        let policy = junction_registry::Policy {
            max_component_bytes: config.max_component_bytes,
            require_signatures: config.require_signatures,
            trusted,
        };
        let connector_linker = capabilities::linker(sandbox.engine(), Imports::Connector)
            .map_err(|e| anyhow::anyhow!("linking connector capabilities: {e:?}"))?;
        let transform_linker = capabilities::linker(sandbox.engine(), Imports::Transform)
            .map_err(|e| anyhow::anyhow!("linking transform capabilities: {e:?}"))?;
        let metrics = Arc::new(Metrics::new(store.commit_seconds()));
        Ok(Runtime {
            sandbox,
            store,
            plugins: PluginSet::default(),
            connector_linker,
            transform_linker,
            max_component_bytes: config.max_component_bytes,
            cache,
            policy: std::sync::RwLock::new(Arc::new(policy)),
            connections: Default::default(),
            nets: Default::default(),
            pool: Pool::new(config.limits.pooled_instances),
            metrics,
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The largest component this runtime accepts, in bytes.
    pub fn max_component_bytes(&self) -> usize {
        self.max_component_bytes
    }

    /// The limits calls run under.
    pub fn limits(&self) -> &Limits {
        self.sandbox.limits()
    }

    /// Whether the runtime can run plugins (its deadline ticker is alive).
    pub fn healthy(&self) -> bool {
        self.sandbox.ticking()
    }

    /// Every loaded plugin version.
    pub fn plugins(&self) -> Vec<PluginSummary> {
        self.plugins.list()
    }

    /// The active (or pinned) version of a plugin.
    pub fn plugin(&self, name: &str, version: Option<&semver::Version>) -> Option<Arc<Plugin>> {
        self.plugins.get(name, version)
    }

    /// Loads a component the host trusts without a package (the plugins it
    /// ships, test guests): validated, compiled, linked and described like any
    /// other, and active when it is its plugin's first version.
    pub async fn load_plugin(&self, bytes: &[u8]) -> Result<Arc<Plugin>, LoadError> {
        let inspection = junction_registry::inspect_with_limit(bytes, self.max_component_bytes)?;
        let (plugin, _) = self.install(bytes, inspection, None).await?;
        Ok(plugin)
    }

    /// Compiles (or takes from the cache), links and describes a validated
    /// component, then adds it to the plugin set.
    pub(crate) async fn install(
        &self,
        bytes: &[u8],
        inspection: junction_registry::Inspection,
        package: Option<PackageInfo>,
    ) -> Result<(Arc<Plugin>, Added), LoadError> {
        let (plugin, origin) = self.prepare(bytes, inspection, package).await?;
        let added = self.plugins.insert(plugin.clone())?;
        if let Added::New { activated } = added {
            tracing::info!(
                plugin = %plugin.name(),
                version = %plugin.version(),
                world = %plugin.world(),
                digest = %plugin.digest(),
                activated,
                cached = origin == Origin::Cached,
                "plugin loaded"
            );
        }
        let plugin = self
            .plugins
            .get(plugin.name(), Some(plugin.version()))
            .unwrap_or(plugin);
        Ok((plugin, added))
    }

    /// Everything of loading but adding to the set.
    pub(crate) async fn prepare(
        &self,
        bytes: &[u8],
        inspection: junction_registry::Inspection,
        package: Option<PackageInfo>,
    ) -> Result<(Arc<Plugin>, Origin), LoadError> {
        let engine = self.sandbox.engine().clone();
        let owned = bytes.to_vec();
        let cache = self.cache.clone();
        let digest = inspection.digest.clone();
        // Compilation is CPU-bound: keep it off the executor threads.
        let (component, origin) = tokio::task::spawn_blocking(move || {
            crate::cache::compile(&engine, cache.as_ref(), &digest, &owned)
        })
        .await
        .map_err(|e| LoadError::Invalid(format!("compilation task failed: {e}")))?
        .map_err(|e| LoadError::Invalid(format!("compilation failed: {e:?}")))?;
        let linker = match inspection.world {
            World::Connector => &self.connector_linker,
            World::Transform => &self.transform_linker,
        };
        let instance_pre = linker.instantiate_pre(&component).map_err(|e| {
            LoadError::Invalid(format!("its imports do not match the host's: {e:?}"))
        })?;
        let pre = match inspection.world {
            World::Connector => Pre::Connector(ConnectorPre::new(instance_pre).map_err(|e| {
                LoadError::Invalid(format!(
                    "its exports do not match the connector world: {e:?}"
                ))
            })?),
            World::Transform => Pre::Transform(TransformPre::new(instance_pre).map_err(|e| {
                LoadError::Invalid(format!(
                    "its exports do not match the transform world: {e:?}"
                ))
            })?),
        };
        let info = self
            .describe(&pre)
            .await
            .map_err(|e| LoadError::Invalid(format!("its `info` export failed: {e}")))?;
        let version = check_info(&info, inspection.world)?;
        let limits = match &package {
            Some(p) => self.limits().narrowed_by(&p.limits),
            None => self.limits().clone(),
        };
        let slots = Arc::new(tokio::sync::Semaphore::new(
            usize::try_from(limits.concurrency.max(1)).unwrap_or(1),
        ));
        let plugin = Arc::new(Plugin {
            info,
            version,
            world: inspection.world,
            digest: inspection.digest,
            pre,
            package,
            in_pool: Arc::default(),
            log_rate: Arc::new(LogRate::new(&limits)),
            limits,
            slots,
        });
        Ok((plugin, origin))
    }

    async fn describe(&self, pre: &Pre) -> Result<PluginInfo, CallError> {
        let scope = Arc::new(Scope {
            plugin: "(loading)".into(),
            version: String::new(),
            connection: None,
            config: BTreeMap::new(),
        });
        let mut store = self.new_store(scope, Outbound::default(), false, self.limits(), None);
        let deadline = self.limits().deadline();
        let result = run_with_deadline(&mut store, deadline, async |store| match pre {
            Pre::Connector(pre) => {
                pre.instantiate_async(&mut *store)
                    .await?
                    .call_info(&mut *store)
                    .await
            }
            Pre::Transform(pre) => {
                pre.instantiate_async(&mut *store)
                    .await?
                    .call_info(&mut *store)
                    .await
            }
        })
        .await;
        settle(result, &store, self.limits().deadline_ms)
    }

    /// The connection and the plugin version it is bound to (its pin, or the
    /// active version), as a call on it would resolve them.
    pub async fn connector_for(
        &self,
        connection: &str,
    ) -> Result<(Arc<Connection>, Arc<Plugin>), CallError> {
        let conn = self.connection(connection).await?;
        let version = conn
            .version
            .as_deref()
            .map(semver::Version::parse)
            .transpose()
            .map_err(|e| CallError::Internal(format!("stored version pin is not semver: {e}")))?;
        let plugin = self
            .plugins
            .get(&conn.plugin, version.as_ref())
            .ok_or_else(|| CallError::UnknownPlugin(conn.plugin.clone()))?;
        Ok((conn, plugin))
    }

    /// Runs `operation` of the connection's plugin on `input` (JSON text).
    pub async fn invoke(
        &self,
        connection: &str,
        operation: &str,
        input: &str,
        options: CallOptions,
    ) -> Result<Output, CallError> {
        let (started, mut seen) = (Instant::now(), None);
        let span = call_span("invoke", connection, operation);
        let call = self.invoke_on(connection, operation, input, options, &mut seen);
        let result = traced(span, call).await;
        let m = &self.metrics;
        m.record_call(seen.as_deref(), connection, operation, started, &result);
        result
    }

    /// [`invoke`](Self::invoke); `seen` is set to the plugin once it resolves.
    async fn invoke_on(
        &self,
        connection: &str,
        operation: &str,
        input: &str,
        options: CallOptions,
        seen: &mut Option<Arc<Plugin>>,
    ) -> Result<Output, CallError> {
        serde_json::from_str::<serde::de::IgnoredAny>(input)
            .map_err(|e| CallError::InvalidJson(e.to_string()))?;
        let (conn, plugin) = self.connector_for(connection).await?;
        record_plugin(&plugin);
        *seen = Some(plugin.clone());
        if plugin.operation(operation).is_none() {
            return Err(CallError::UnknownOperation {
                plugin: plugin.name().to_string(),
                operation: operation.to_string(),
                offered: plugin
                    .info()
                    .operations
                    .iter()
                    .map(|o| o.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let Pre::Connector(pre) = &plugin.pre else {
            return Err(wrong_world(&plugin, World::Connector));
        };
        let _admitted = admit(&plugin, &self.pool).await?;
        let (mut store, ctx) = self.connector_store(&conn, &plugin, options)?;
        let result = run_with_deadline(&mut store, plugin.limits.deadline(), async |store| {
            let invoke = export::<(&CallContext, &str, &str), (Result<String, PluginError>,)>(
                pre.instance_pre(),
                store,
                "invoke",
            )
            .await?;
            Ok(invoke
                .call_async(&mut *store, (&ctx, operation, input))
                .await?
                .0)
        })
        .await;
        let json = conclude(settle(result, &store, plugin.limits.deadline_ms), &store)?;
        check_output(&plugin.limits, [json.as_str()])?;
        Ok(Output { json, plugin })
    }

    /// Runs the connection's `check`: can the system be reached with these credentials?
    pub async fn check(&self, connection: &str) -> Result<Arc<Plugin>, CallError> {
        let (started, mut seen) = (Instant::now(), None);
        let span = call_span("check", connection, "check");
        let result = traced(span, self.check_on(connection, &mut seen)).await;
        let m = &self.metrics;
        m.record_call(seen.as_deref(), connection, "check", started, &result);
        if !matches!(result, Err(CallError::UnknownConnection(_))) {
            let check = junction_store::CheckRow {
                checked_at: junction_store::now_ms(),
                ok: result.is_ok(),
                message: result.as_ref().err().map(ToString::to_string),
            };
            if let Err(e) = self.store().record_check(connection, &check).await {
                tracing::warn!(connection, error = %e, "could not keep the check's outcome");
            }
        }
        result
    }

    /// What is left of the pause this host learned from `connection`'s
    /// rate-limit answers (`Retry-After`, a 429, an allocation used up).
    pub fn rate_pause(&self, connection: &str) -> Duration {
        self.nets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(connection)
            .and_then(|bound| bound.net.rate.as_ref().map(|r| r.pause_remaining()))
            .unwrap_or_default()
    }

    /// [`check`](Self::check); `seen` is set to the plugin once it resolves.
    async fn check_on(
        &self,
        connection: &str,
        seen: &mut Option<Arc<Plugin>>,
    ) -> Result<Arc<Plugin>, CallError> {
        let (conn, plugin) = self.connector_for(connection).await?;
        record_plugin(&plugin);
        *seen = Some(plugin.clone());
        let Pre::Connector(pre) = &plugin.pre else {
            return Err(wrong_world(&plugin, World::Connector));
        };
        let _admitted = admit(&plugin, &self.pool).await?;
        let (mut store, ctx) = self.connector_store(&conn, &plugin, CallOptions::default())?;
        let result = run_with_deadline(&mut store, plugin.limits.deadline(), async |store| {
            let check = export::<(&CallContext,), (Result<(), PluginError>,)>(
                pre.instance_pre(),
                store,
                "check",
            )
            .await?;
            Ok(check.call_async(&mut *store, (&ctx,)).await?.0)
        })
        .await;
        conclude(settle(result, &store, plugin.limits.deadline_ms), &store)?;
        Ok(plugin)
    }

    /// Runs the active version of transform `plugin` on `input` (JSON text).
    pub async fn apply(
        &self,
        plugin: &str,
        input: &str,
    ) -> Result<(Vec<String>, Arc<Plugin>), CallError> {
        let (started, mut seen) = (Instant::now(), None);
        let span = call_span("apply", "", "apply");
        let result = traced(span, self.apply_on(plugin, input, &mut seen)).await;
        let m = &self.metrics;
        m.record_call(seen.as_deref(), "", "apply", started, &result);
        result
    }

    /// [`apply`](Self::apply); `seen` is set to the plugin once it resolves.
    async fn apply_on(
        &self,
        plugin: &str,
        input: &str,
        seen: &mut Option<Arc<Plugin>>,
    ) -> Result<(Vec<String>, Arc<Plugin>), CallError> {
        serde_json::from_str::<serde::de::IgnoredAny>(input)
            .map_err(|e| CallError::InvalidJson(e.to_string()))?;
        let plugin = self
            .plugins
            .get(plugin, None)
            .ok_or_else(|| CallError::UnknownPlugin(plugin.to_string()))?;
        record_plugin(&plugin);
        *seen = Some(plugin.clone());
        let Pre::Transform(pre) = &plugin.pre else {
            return Err(wrong_world(&plugin, World::Transform));
        };
        let scope = Arc::new(Scope {
            plugin: plugin.name().to_string(),
            version: plugin.version().to_string(),
            connection: None,
            config: BTreeMap::new(),
        });
        let _admitted = admit(&plugin, &self.pool).await?;
        let outbound = Outbound {
            signals: self.signals(&plugin, plugin.name().into()),
            ..Outbound::default()
        };
        let mut store = self.new_store(
            scope,
            outbound,
            false,
            &plugin.limits,
            Some(plugin.log_rate.clone()),
        );
        let result = run_with_deadline(&mut store, plugin.limits.deadline(), async |store| {
            let apply = export::<(&str,), (Result<Vec<String>, PluginError>,)>(
                pre.instance_pre(),
                store,
                "apply",
            )
            .await?;
            Ok(apply.call_async(&mut *store, (input,)).await?.0)
        })
        .await;
        let outputs = conclude(settle(result, &store, plugin.limits.deadline_ms), &store)?;
        check_output(&plugin.limits, outputs.iter().map(String::as_str))?;
        Ok((outputs, plugin))
    }

    pub(crate) fn connector_store(
        &self,
        conn: &Connection,
        plugin: &Plugin,
        options: CallOptions,
    ) -> Result<(WasmStore<HostState>, CallContext), CallError> {
        let bound = self.bound(conn, plugin)?;
        let limits = &plugin.limits;
        let trace = TraceContext::of_or(&tracing::Span::current(), options.trace.as_ref());
        let outbound = Outbound {
            net: Some(bound.net.clone()),
            plugin: bound.plugin.clone(),
            connection: bound.connection.clone(),
            deadline: Some(Instant::now() + limits.deadline()),
            signals: self.signals(plugin, bound.plugin.clone()),
            trace: Some(trace.clone()),
            metrics: Some(self.metrics.clone()),
        };
        let store = self.new_store(
            bound.scope.clone(),
            outbound,
            true,
            limits,
            Some(plugin.log_rate.clone()),
        );
        let ctx = CallContext {
            tenant: "default".into(),
            connection: conn.name.clone(),
            run_id: options.run_id,
            idempotency_key: options.idempotency_key,
            attempt: options.attempt.max(1),
            trace_id: Some(trace.trace_id()),
            deadline_ms: limits.deadline_ms,
        };
        Ok((store, ctx))
    }

    /// What uploads must satisfy now.
    pub(crate) fn policy(&self) -> Arc<junction_registry::Policy> {
        self.policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces whether signatures are required and which keys are trusted
    /// (a reload of the configuration); returns how many keys are trusted.
    /// Versions already loaded stay loaded.
    pub fn set_signature_policy(
        &self,
        require_signatures: bool,
        trusted_keys: &[String],
    ) -> Result<usize, String> {
        let trusted = junction_registry::TrustedKeys::parse(trusted_keys)
            .map_err(|e| format!("trusted_keys: {e}"))?;
        let mut policy = self.policy.write().unwrap_or_else(|e| e.into_inner());
        let count = trusted.iter().count();
        *policy = Arc::new(junction_registry::Policy {
            max_component_bytes: policy.max_component_bytes,
            require_signatures,
            trusted,
        });
        Ok(count)
    }

    /// A fresh budget and refusal record for one call of `plugin` (`name`).
    fn signals(&self, plugin: &Plugin, name: Arc<str>) -> Arc<Signals> {
        Arc::new(Signals {
            budget: OutboundBudget::new(&plugin.limits),
            refusals: Refusals::new(name, Some(self.metrics.clone())),
            ..Signals::default()
        })
    }

    pub(crate) fn new_store(
        &self,
        scope: Arc<Scope>,
        outbound: Outbound,
        with_kv: bool,
        limits: &Limits,
        log_rate: Option<Arc<LogRate>>,
    ) -> WasmStore<HostState> {
        let kv_store = with_kv.then(|| self.store.clone());
        let state = HostState::new(scope, limits, outbound, kv_store, log_rate);
        let mut store = WasmStore::new(self.sandbox.engine(), state);
        store.limiter(|state| &mut state.limiter);
        let deadline = Instant::now() + limits.deadline();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(wasmtime::Error::new(DeadlineExceeded))
            } else {
                // Give the executor thread back once per tick, then carry on.
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }
}

/// Checks what a plugin says about itself; returns its version.
fn check_info(info: &PluginInfo, world: World) -> Result<semver::Version, LoadError> {
    if !valid_name(&info.name) {
        return Err(LoadError::Invalid(format!(
            "its name `{}` must be 1-64 characters of a-z, 0-9, `-` and `_`",
            info.name
        )));
    }
    let version = semver::Version::parse(&info.version).map_err(|e| {
        LoadError::Invalid(format!("its version `{}` is not semver: {e}", info.version))
    })?;
    if world == World::Connector {
        let mut seen = std::collections::BTreeSet::new();
        for op in &info.operations {
            if !seen.insert(op.name.as_str()) {
                return Err(LoadError::Invalid(format!(
                    "operation `{}` is declared twice",
                    op.name
                )));
            }
        }
    }
    Ok(version)
}

pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connections::credential_headers;
    use junction_store::Auth;

    #[test]
    fn basic_auth_header_is_rfc7617() {
        let headers = credential_headers(&Auth::Basic {
            username: "Aladdin".into(),
            password: "open sesame".into(),
        })
        .unwrap();
        assert_eq!(headers[0].0, "authorization");
        assert_eq!(headers[0].1, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert!(headers[0].1.is_sensitive());
    }

    #[test]
    fn bad_api_key_header_name_is_refused() {
        let err = credential_headers(&Auth::ApiKey {
            header: "bad header".into(),
            value: "v".into(),
        })
        .unwrap_err();
        assert!(err.contains("not a valid header name"));
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("jira-prod_1"));
        assert!(!valid_name(""));
        assert!(!valid_name("Jira"));
        assert!(!valid_name("a/b"));
    }
}
