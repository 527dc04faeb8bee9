//! What a plugin can reach, one module per capability (`log`, `config`,
//! `kv`, outbound `http`), and the per-call store data that carries them.
//!
//! Everything here is scoped to one call on one connection: a plugin sees
//! the settings and state of the connection it is called on and nothing else.

pub mod config;
pub mod credentials;
pub mod egress;
pub mod http;
pub mod kv;
pub mod log;
pub mod oauth;
pub mod quota;
pub mod ratelimit;

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::bindings::junction::plugin as wit;
use crate::engine::{Limiter, Limits};
use junction_store::Store;

/// How much of a plugin's stdout/stderr is kept per call (panic messages land here).
const CAPTURED_OUTPUT_BYTES: usize = 64 * 1024;

/// Who a call runs as: the plugin version and, for connectors, the connection.
#[derive(Debug, Clone)]
pub struct Scope {
    /// Plugin name.
    pub plugin: String,
    /// Plugin version.
    pub version: String,
    /// Connection name; `None` for transforms and `info`.
    pub connection: Option<String>,
    /// The connection's non-secret settings.
    pub config: BTreeMap<String, String>,
}

/// The data of one call's [`wasmtime::Store`].
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    pub(crate) outbound: http::Outbound,
    pub(crate) limiter: Limiter,
    pub(crate) scope: Arc<Scope>,
    pub(crate) kv: Option<kv::Kv>,
    pub(crate) hostcall_bytes: usize,
    /// What is left of the call's log quota.
    pub(crate) log: quota::LogBudget,
    /// The plugin version's log rate, shared by its calls.
    pub(crate) log_rate: Option<Arc<quota::LogRate>>,
    output: MemoryOutputPipe,
}

impl HostState {
    /// Fresh state for one call: no arguments, no environment, no files, no
    /// sockets; stdout and stderr captured for the log.
    pub(crate) fn new(
        scope: Arc<Scope>,
        limits: &Limits,
        outbound: http::Outbound,
        store: Option<Store>,
        log_rate: Option<Arc<quota::LogRate>>,
    ) -> HostState {
        let output = MemoryOutputPipe::new(CAPTURED_OUTPUT_BYTES);
        let wasi = WasiCtx::builder()
            .stdout(output.clone())
            .stderr(output.clone())
            .allow_ip_name_lookup(false)
            .allow_tcp(false)
            .allow_udp(false)
            .build();
        let kv = match (&scope.connection, store) {
            (Some(connection), Some(store)) => Some(kv::Kv::new(
                store,
                scope.plugin.clone(),
                connection.clone(),
                limits,
            )),
            _ => None,
        };
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.resource_handles);
        HostState {
            wasi,
            table,
            http: WasiHttpCtx::new(),
            outbound,
            limiter: Limiter::new(limits),
            hostcall_bytes: usize::try_from(limits.hostcall_bytes).unwrap_or(usize::MAX),
            log: quota::LogBudget::new(limits),
            log_rate,
            scope,
            kv,
            output,
        }
    }

    /// The quotas that refused something in this call.
    pub(crate) fn refusals(&self) -> &quota::Refusals {
        &self.outbound.signals.refusals
    }

    /// What the plugin wrote to stdout/stderr during the call, lossily decoded.
    pub(crate) fn captured_output(&self) -> String {
        String::from_utf8_lossy(&self.output.contents()).into_owned()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_io::IoView for HostState {
    fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// Which world a linker is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Imports {
    /// log, config, kv and outbound HTTP.
    Connector,
    /// log and config only.
    Transform,
}

/// Builds a linker that defines exactly what the world offers: the WASI
/// pieces Rust's standard library needs (streams, clocks, random, an empty
/// environment), plus the world's own capabilities. No filesystem, no sockets.
pub(crate) fn linker(
    engine: &wasmtime::Engine,
    imports: Imports,
) -> wasmtime::Result<Linker<HostState>> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
    use wasmtime_wasi::p2::bindings::{cli, clocks, random};
    use wasmtime_wasi::random::{WasiRandom, WasiRandomView};

    let mut l = Linker::<HostState>::new(engine);
    wasmtime_wasi_io::add_to_linker_async(&mut l)?;
    clocks::wall_clock::add_to_linker::<HostState, WasiClocks>(&mut l, HostState::clocks)?;
    clocks::monotonic_clock::add_to_linker::<HostState, WasiClocks>(&mut l, HostState::clocks)?;
    random::random::add_to_linker::<HostState, WasiRandom>(&mut l, HostState::random)?;
    random::insecure::add_to_linker::<HostState, WasiRandom>(&mut l, HostState::random)?;
    random::insecure_seed::add_to_linker::<HostState, WasiRandom>(&mut l, HostState::random)?;
    cli::exit::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
    cli::environment::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
    cli::stdin::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
    cli::stdout::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
    cli::stderr::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
    cli::terminal_input::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
    cli::terminal_output::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
    cli::terminal_stdin::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
    cli::terminal_stdout::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
    cli::terminal_stderr::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;

    wit::types::add_to_linker::<HostState, HasSelf<HostState>>(&mut l, |s| s)?;
    wit::log::add_to_linker::<HostState, HasSelf<HostState>>(&mut l, |s| s)?;
    wit::config::add_to_linker::<HostState, HasSelf<HostState>>(&mut l, |s| s)?;
    if imports == Imports::Connector {
        wit::kv::add_to_linker::<HostState, HasSelf<HostState>>(&mut l, |s| s)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut l)?;
    }
    Ok(l)
}

impl wit::types::Host for HostState {}
