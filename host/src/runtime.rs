//! A plugin call, from connection lookup to a typed result.
//!
//! Every call runs in a fresh store with the engine's limits, a wall-clock
//! deadline enforced by epoch interruption, and a cap on what it may return.
//! Whatever the guest does (trap, loop, exhaust memory, return garbage) ends
//! as a [`CallError`] on that call; the host keeps serving.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use http::{HeaderName, HeaderValue};
use junction_registry::{Refusal, World};
use serde::Deserialize;
use wasmtime::component::{ComponentNamedList, InstancePre, Lift, Linker, Lower, TypedFunc};
use wasmtime::{Store as WasmStore, UpdateDeadline};

use crate::bindings::junction::plugin::types::CallContext;
/// The error cases a plugin can answer with (the WIT `error` variant).
pub use crate::bindings::junction::plugin::types::Error as PluginError;
use crate::bindings::{ConnectorPre, PluginInfo, transform::TransformPre};
use crate::cache::{CompileCache, Origin};
use crate::capabilities::egress::EgressPolicy;
use crate::capabilities::http::{Net, Outbound, normalize_host_entry};
use crate::capabilities::oauth::TokenSource;
use crate::capabilities::ratelimit::RateGate;
use crate::capabilities::{self, HostState, Imports, Scope};
use crate::config::Config;
use crate::engine::{Limits, Sandbox};
use crate::plugins::{Added, Conflict, PackageInfo, Plugin, PluginSet, PluginSummary, Pre};
use crate::store::{self, Auth, Connection, Store};

/// Time the host allows past a call's deadline for the guest to be
/// interrupted before it gives up on the call from outside.
const DEADLINE_GRACE: Duration = Duration::from_millis(250);

/// Why a plugin version was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The registry refused the component before compiling it.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// It compiled but could not be linked or described itself wrongly.
    #[error("the component cannot be loaded: {0}")]
    Invalid(String),
    /// A different component with the same name and version is loaded.
    #[error(transparent)]
    Conflict(#[from] Conflict),
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No connection has that name.
    #[error("no connection named `{0}`")]
    UnknownConnection(String),
    /// No plugin (or no such version) is loaded.
    #[error("no plugin `{0}` is loaded")]
    UnknownPlugin(String),
    /// The plugin has no such operation.
    #[error("plugin `{plugin}` has no operation `{operation}`; it offers: {offered}")]
    UnknownOperation {
        /// Plugin name.
        plugin: String,
        /// The operation asked for.
        operation: String,
        /// What it offers, comma-separated.
        offered: String,
    },
    /// The plugin is of the other world (a transform used as a connector or the reverse).
    #[error("plugin `{plugin}` is a {actual}, not a {expected}")]
    WrongWorld {
        /// Plugin name.
        plugin: String,
        /// The world the call needs.
        expected: World,
        /// The plugin's world.
        actual: World,
    },
    /// The input is not JSON.
    #[error("the input is not valid JSON: {0}")]
    InvalidJson(String),
    /// The plugin answered with one of the WIT error cases.
    #[error("{}", describe_plugin_error(.0))]
    Plugin(PluginError),
    /// The call ran past its deadline and was interrupted.
    #[error("the plugin did not finish within its deadline of {deadline_ms} ms and was stopped")]
    Timeout {
        /// The deadline.
        deadline_ms: u64,
    },
    /// The call hit a resource limit and was stopped.
    #[error("the plugin exceeded its {what} limit and was stopped")]
    LimitExceeded {
        /// Which limit: `memory`, `table`, ...
        what: String,
    },
    /// The plugin trapped (a panic, an `unreachable`, a bad memory access).
    #[error("the plugin crashed: {0}")]
    Trap(String),
    /// The plugin returned more than the host accepts.
    #[error("the plugin returned {size} bytes; the limit is {limit}")]
    OutputTooLarge {
        /// What it returned.
        size: usize,
        /// The cap.
        limit: u64,
    },
    /// The plugin returned something that is not JSON.
    #[error("the plugin returned invalid JSON: {0}")]
    BadOutput(String),
    /// Every slot of the plugin version was busy for longer than the queue allows.
    #[error(
        "plugin `{plugin}` is running its maximum of {concurrency} calls at once; retry after {retry_after_ms} ms"
    )]
    Busy {
        /// Plugin name.
        plugin: String,
        /// Its concurrency limit.
        concurrency: u32,
        /// When to retry.
        retry_after_ms: u64,
    },
    /// The host failed (store, instantiation); not the caller's nor the plugin's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

fn describe_plugin_error(e: &PluginError) -> String {
    match e {
        PluginError::InvalidInput(m) => format!("invalid input: {m}"),
        PluginError::Unauthorized(m) => format!("the remote system refused the credentials: {m}"),
        PluginError::NotFound(m) => format!("not found: {m}"),
        PluginError::Conflict(m) => format!("conflict: {m}"),
        PluginError::RateLimited(ms) => {
            format!("rate limited by the remote system; retry after {ms} ms")
        }
        PluginError::Unavailable(m) => format!("the remote system is unavailable: {m}"),
        PluginError::Internal(m) => format!("the plugin failed: {m}"),
    }
}

impl From<store::Error> for CallError {
    fn from(e: store::Error) -> Self {
        CallError::Internal(e.to_string())
    }
}

/// Why a connection was not saved.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The request names something that does not exist or is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// What an operator sends to create or replace a connection.
#[derive(Debug, Clone, Default, Deserialize)]
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
    /// Outbound rate limit.
    #[serde(default)]
    pub rate_limit: Option<store::RateLimit>,
    /// Inbound webhook verification.
    #[serde(default)]
    pub webhook: Option<store::WebhookSettings>,
}

/// Extra context of a call.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// Passed to the plugin so that retries of one logical call have one effect.
    pub idempotency_key: Option<String>,
    /// The flow run the call belongs to.
    pub run_id: Option<String>,
    /// 1 for a first attempt.
    pub attempt: u32,
    /// W3C trace id.
    pub trace_id: Option<String>,
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
    store: Store,
    pub(crate) plugins: PluginSet,
    connector_linker: Linker<HostState>,
    transform_linker: Linker<HostState>,
    pub(crate) max_component_bytes: usize,
    pub(crate) cache: Option<CompileCache>,
    pub(crate) policy: junction_registry::Policy,
    /// Connections read through from the store; written through on change.
    connections: std::sync::RwLock<std::collections::HashMap<String, Arc<Connection>>>,
    /// What the calls on each connection share, keyed by connection name.
    nets: std::sync::Mutex<std::collections::HashMap<String, Arc<Bound>>>,
}

/// What every call of one plugin version on one connection shares: its
/// network (pool, policy, credentials, tokens, rate gate) and its scope.
struct Bound {
    /// The connection change (`updated_at`) it was built for.
    updated_at: String,
    /// The plugin version it was built for.
    digest: junction_registry::Digest,
    net: Arc<Net>,
    scope: Arc<Scope>,
    /// For refusal logs.
    plugin: Arc<str>,
    /// For refusal logs.
    connection: Arc<str>,
}

impl Runtime {
    /// Opens the store named by `config` and builds the engine.
    pub async fn open(config: &Config) -> anyhow::Result<Arc<Runtime>> {
        let store = Store::open(config).await?;
        let runtime = Arc::new(Runtime::new(store, config)?);
        runtime.restore().await?;
        Ok(runtime)
    }

    /// A runtime over `store` with the limits, cache and signature policy of `config`.
    pub fn new(store: Store, config: &Config) -> anyhow::Result<Runtime> {
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
        Ok(Runtime {
            sandbox,
            store,
            plugins: PluginSet::default(),
            connector_linker,
            transform_linker,
            max_component_bytes: config.max_component_bytes,
            cache,
            policy,
            connections: Default::default(),
            nets: Default::default(),
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
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
        let mut store = self.new_store(scope, Outbound::default(), false, self.limits());
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
        EgressPolicy::new(&spec.allowed_hosts, &spec.private_hosts)
            .map_err(|e| ConnectionError::Invalid(e.to_string()))?;
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
            rate_limit: spec.rate_limit,
            webhook: spec.webhook,
            created_at,
            updated_at: now,
        };
        let created = self.store.put_connection(&connection).await?;
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

    async fn connection(&self, name: &str) -> Result<Arc<Connection>, CallError> {
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

    pub(crate) async fn connector_for(
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
        serde_json::from_str::<serde::de::IgnoredAny>(input)
            .map_err(|e| CallError::InvalidJson(e.to_string()))?;
        let (conn, plugin) = self.connector_for(connection).await?;
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
        let _slot = admit(&plugin).await?;
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
        let (conn, plugin) = self.connector_for(connection).await?;
        let Pre::Connector(pre) = &plugin.pre else {
            return Err(wrong_world(&plugin, World::Connector));
        };
        let _slot = admit(&plugin).await?;
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
        serde_json::from_str::<serde::de::IgnoredAny>(input)
            .map_err(|e| CallError::InvalidJson(e.to_string()))?;
        let plugin = self
            .plugins
            .get(plugin, None)
            .ok_or_else(|| CallError::UnknownPlugin(plugin.to_string()))?;
        let Pre::Transform(pre) = &plugin.pre else {
            return Err(wrong_world(&plugin, World::Transform));
        };
        let scope = Arc::new(Scope {
            plugin: plugin.name().to_string(),
            version: plugin.version().to_string(),
            connection: None,
            config: BTreeMap::new(),
        });
        let _slot = admit(&plugin).await?;
        let mut store = self.new_store(scope, Outbound::default(), false, &plugin.limits);
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
        let outbound = Outbound {
            net: Some(bound.net.clone()),
            plugin: bound.plugin.clone(),
            connection: bound.connection.clone(),
            deadline: Some(Instant::now() + limits.deadline()),
            signals: Arc::default(),
        };
        let store = self.new_store(bound.scope.clone(), outbound, true, limits);
        let ctx = CallContext {
            tenant: "default".into(),
            connection: conn.name.clone(),
            run_id: options.run_id,
            idempotency_key: options.idempotency_key,
            attempt: options.attempt.max(1),
            trace_id: options.trace_id,
            deadline_ms: limits.deadline_ms,
        };
        Ok((store, ctx))
    }

    /// What every call of `plugin` on `conn` shares (network, credentials,
    /// scope): built on the first call after the connection or the plugin
    /// version changed, then reused, so a call only clones `Arc`s.
    fn bound(&self, conn: &Connection, plugin: &Plugin) -> Result<Arc<Bound>, CallError> {
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
        let (inject, oauth) = match &conn.auth {
            Some(auth) => (
                credential_headers(auth).map_err(CallError::Internal)?,
                TokenSource::from_auth(auth).map_err(|e| CallError::Internal(e.to_string()))?,
            ),
            None => (Vec::new(), None),
        };
        let net = Arc::new(Net::new(
            policy,
            inject,
            oauth,
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

    pub(crate) fn new_store(
        &self,
        scope: Arc<Scope>,
        outbound: Outbound,
        with_kv: bool,
        limits: &Limits,
    ) -> WasmStore<HostState> {
        let kv_store = with_kv.then(|| self.store.clone());
        let state = HostState::new(scope, limits, outbound, kv_store);
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

/// Checks what a call returned: within the output cap (each output also
/// counts a few bytes, so a flood of empty strings is capped too) and JSON.
pub(crate) fn check_output<'a>(
    limits: &Limits,
    outputs: impl IntoIterator<Item = &'a str>,
) -> Result<(), CallError> {
    const PER_OUTPUT_BYTES: usize = 8;
    let limit = limits.output_bytes;
    let mut size = 0usize;
    for output in outputs {
        size += output.len() + PER_OUTPUT_BYTES;
        if u64::try_from(size).unwrap_or(u64::MAX) > limit {
            return Err(CallError::OutputTooLarge { size, limit });
        }
        serde_json::from_str::<serde::de::IgnoredAny>(output)
            .map_err(|e| CallError::BadOutput(e.to_string()))?;
    }
    Ok(())
}

/// Waits (at most the plugin's queue time) for one of its call slots.
pub(crate) async fn admit(plugin: &Plugin) -> Result<tokio::sync::OwnedSemaphorePermit, CallError> {
    let queue = Duration::from_millis(plugin.limits.queue_ms);
    match tokio::time::timeout(queue, plugin.slots.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => {
            tracing::warn!(plugin = %plugin.name(), concurrency = plugin.limits.concurrency, "call refused: every slot busy");
            Err(CallError::Busy {
                plugin: plugin.name().to_string(),
                concurrency: plugin.limits.concurrency,
                retry_after_ms: plugin.limits.queue_ms.max(1_000),
            })
        }
    }
}

/// The result of a call that can fail with a plugin error. When the host's
/// rate gate refused one of the call's requests and the call then failed,
/// the caller is told `rate-limited` with the wait, whatever the plugin
/// made of the refused request.
pub(crate) fn conclude<T>(
    outcome: Result<Result<T, PluginError>, CallError>,
    store: &WasmStore<HostState>,
) -> Result<T, CallError> {
    if let Ok(Ok(value)) = outcome {
        return Ok(value);
    }
    let limited = *store
        .data()
        .outbound
        .signals
        .rate_limited
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(wait) = limited {
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
        return Err(CallError::Plugin(PluginError::RateLimited(ms)));
    }
    outcome?.map_err(CallError::Plugin)
}

fn wrong_world(plugin: &Plugin, expected: World) -> CallError {
    CallError::WrongWorld {
        plugin: plugin.name().to_string(),
        expected,
        actual: plugin.world(),
    }
}

/// Instantiates `pre` in `store` and returns its export `name` as a typed
/// function. The generated bindings' `instantiate` would look up and
/// type-check every export of the world on each call; a call needs one.
async fn export<P, R>(
    pre: &InstancePre<HostState>,
    store: &mut WasmStore<HostState>,
    name: &str,
) -> wasmtime::Result<TypedFunc<P, R>>
where
    P: ComponentNamedList + Lower + Send + Sync,
    R: ComponentNamedList + Lift + Send + Sync,
{
    pre.instantiate_async(&mut *store)
        .await?
        .get_typed_func::<P, R>(&mut *store, name)
}

/// The marker error of an epoch deadline.
#[derive(Debug)]
struct DeadlineExceeded;

impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// The outcome of running guest code: `None` when the outer timeout fired.
pub(crate) type Ran<T> = Option<wasmtime::Result<T>>;

/// Runs `f` on the store, giving up from outside shortly after the deadline
/// in case the guest is parked in a host call that epochs cannot interrupt.
pub(crate) async fn run_with_deadline<T>(
    store: &mut WasmStore<HostState>,
    deadline: Duration,
    f: impl AsyncFnOnce(&mut WasmStore<HostState>) -> wasmtime::Result<T>,
) -> Ran<T> {
    tokio::time::timeout(deadline + DEADLINE_GRACE, f(store))
        .await
        .ok()
}

/// Turns the outcome of guest code into the call's result, classifying traps.
pub(crate) fn settle<T>(
    ran: Ran<T>,
    store: &WasmStore<HostState>,
    deadline_ms: u64,
) -> Result<T, CallError> {
    let state = store.data();
    let err = match ran {
        None => return Err(CallError::Timeout { deadline_ms }),
        Some(Ok(value)) => return Ok(value),
        Some(Err(err)) => err,
    };
    if err.downcast_ref::<DeadlineExceeded>().is_some() {
        return Err(CallError::Timeout { deadline_ms });
    }
    if state.limiter.memory_refused {
        return Err(CallError::LimitExceeded {
            what: "memory".into(),
        });
    }
    if err.chain().any(|e| {
        matches!(
            e.downcast_ref::<wasmtime::component::ResourceTableError>(),
            Some(wasmtime::component::ResourceTableError::Full)
        )
    }) {
        return Err(CallError::LimitExceeded {
            what: "resource handle".into(),
        });
    }
    if state.limiter.table_refused {
        return Err(CallError::LimitExceeded {
            what: "table".into(),
        });
    }
    let output = state.captured_output();
    let detail = if let Some(trap) = err.downcast_ref::<wasmtime::Trap>() {
        trap.to_string()
    } else {
        format!("{err:?}")
    };
    let last_lines: Vec<&str> = output.lines().rev().take(5).collect();
    let said = last_lines.into_iter().rev().collect::<Vec<_>>().join(" | ");
    tracing::warn!(plugin = %state.scope.plugin, error = %detail, output = %said, "plugin call trapped");
    Err(CallError::Trap(if said.is_empty() {
        detail
    } else {
        format!("{detail}; the plugin said: {said}")
    }))
}

/// The headers that carry `auth` on an outbound request.
fn credential_headers(auth: &Auth) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
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

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

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
