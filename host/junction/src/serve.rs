//! `junction serve`: the host as an HTTP service, from its configuration.
//!
//! The binary's `serve` command is [`run`] after [`log_to_stderr`]; tests that
//! need the host as a process of its own (to kill it) call the same function.

use std::future::Future;

use anyhow::Context;

use crate::config::Config;
use crate::telemetry::TelemetryConfig;
use junction_runtime::Runtime;

/// Sends logs to stderr, filtered by `JUNCTION_LOG` (`default` when unset),
/// in the format [`telemetry`](crate::telemetry) describes, without trace
/// export. Does nothing when a subscriber is already installed.
pub fn log_to_stderr(default: &str) {
    let off = TelemetryConfig {
        traces: Some(false),
        ..TelemetryConfig::default()
    };
    if let Err(e) = crate::telemetry::init(&off, default)
        && !e.to_string().contains("installing the log subscriber")
    {
        eprintln!("warning: {e:#}");
    }
}

/// Opens the store named by `config` (restoring its plugins), watches
/// `plugin_dir`, starts the flow workers and serves the API on `listen`
/// until `shutdown` completes.
pub async fn run(
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if config.api.tokens.is_empty() {
        tracing::warn!("no API tokens are configured: every /v1 endpoint will answer 401");
    }
    let runtime = Runtime::open(&config.store, &config.runtime).await?;
    let _watch = match &config.runtime.plugin_dir {
        Some(dir) => Some(
            junction_runtime::watcher::watch(runtime.clone(), dir.clone())
                .await
                .with_context(|| format!("watching plugin directory {}", dir.display()))?,
        ),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .with_context(|| format!("listening on {}", config.api.listen))?;
    tracing::info!(address = %listener.local_addr()?, "junction is serving");
    let app = junction_api::router(runtime, &config.api, config.flows.options());
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
