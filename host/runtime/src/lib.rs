//! The Junction runtime: loads sandboxed connector and transform plugins
//! (WebAssembly components of the `junction:plugin` worlds) and calls them.
//!
//! The parts, from the bottom up:
//! - [`engine`]: one wasmtime [`Engine`](wasmtime::Engine) per process, the
//!   pooling allocator, epoch deadlines and per-call limits;
//! - [`capabilities`]: what a plugin may import (`log`, `config`, `kv`,
//!   filtered outbound `wasi:http`), one module per capability;
//! - [`plugins`]: loaded plugin versions, each validated and pre-instantiated;
//! - [`runtime`]: a call on a connection, from lookup to typed result;
//! - [`lifecycle`]: uploads, activation, pins and rollbacks of plugin versions;
//! - [`inbound`]: webhooks, verified by [`webhooks`] before a plugin parses them;
//! - [`watcher`]: the plugin directory, hot-loaded;
//! - [`metrics`]: the Prometheus metrics of the host.
//!
//! State lives in [`junction_store`]; this crate holds no SQL.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use junction_runtime::{RuntimeConfig, runtime::Runtime};
//! use junction_store::StoreConfig;
//!
//! let runtime = Runtime::open(&StoreConfig::default(), &RuntimeConfig::default()).await?;
//! let plugin = runtime.load_plugin(&std::fs::read("jira.wasm")?).await?;
//! println!("loaded {}@{}", plugin.name(), plugin.version());
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod bindings;
mod cache;
mod call;
pub mod capabilities;
pub mod config;
mod connections;
pub mod engine;
mod error;
pub mod inbound;
pub mod lifecycle;
pub mod metrics;
pub mod plugins;
mod pool;
mod read;
pub mod runtime;
pub mod trace;
pub mod watcher;
pub mod webhooks;

pub use config::RuntimeConfig;
pub use read::Page;
pub use runtime::Runtime;
