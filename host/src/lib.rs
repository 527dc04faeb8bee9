//! The Junction host: loads sandboxed connector and transform plugins
//! (WebAssembly components of the `junction:plugin` worlds) and serves them
//! over HTTP.
//!
//! The parts, from the bottom up:
//! - [`engine`]: one wasmtime [`Engine`](wasmtime::Engine) per process, the
//!   pooling allocator, epoch deadlines and per-call limits;
//! - [`capabilities`]: what a plugin may import (`log`, `config`, `kv`,
//!   filtered outbound `wasi:http`), one module per capability;
//! - [`plugins`]: loaded plugin versions, each validated and pre-instantiated;
//! - [`store`]: connections and plugin state in SQLite;
//! - [`runtime`]: a call on a connection, from lookup to typed result;
//! - [`flows`]: durable flows (TOML definitions, runs, retries, sagas, dead letters);
//! - [`inbound`]: webhooks, verified by [`webhooks`] before a plugin parses them;
//! - [`api`]: the `/v1` HTTP API.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use junction_host::{config::Config, runtime::Runtime};
//!
//! let runtime = Runtime::open(&Config::default()).await?;
//! let plugin = runtime.load_plugin(&std::fs::read("jira.wasm")?).await?;
//! println!("loaded {}@{}", plugin.name(), plugin.version());
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod api;
pub mod audit;
mod bindings;
mod cache;
pub mod capabilities;
pub mod config;
pub mod demo;
pub mod engine;
pub mod flows;
pub mod inbound;
mod lifecycle;
pub mod plugins;
pub mod runtime;
pub mod scaffold;
pub mod secrets;
pub mod serve;
pub mod shipped;
pub mod store;
pub mod watcher;
pub mod webhooks;
