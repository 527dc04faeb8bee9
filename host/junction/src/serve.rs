//! `junction serve`: the host as an HTTP service, from its configuration.
//!
//! The binary's `serve` command is [`run`] after [`log_to_stderr`]; tests that
//! need the host as a process of its own (to kill it) call the same function.

use std::future::Future;

use anyhow::Context;

use crate::config::Config;
use crate::telemetry::TelemetryConfig;
use junction_runtime::Runtime;
use junction_store::DatabaseLocation;

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
/// until `shutdown` completes. The trusted keys and API tokens are reloaded
/// from `config_path` (and the environment, as at start) on SIGHUP and on
/// `POST /v1/admin/reload`.
pub async fn run(
    config: &Config,
    config_path: Option<&std::path::Path>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if config.api.tokens.is_empty() {
        tracing::warn!("no API tokens are configured: every /v1 endpoint will answer 401");
    }
    let _sole_host = match config.store.database_location() {
        DatabaseLocation::Sqlite(path) => Some(sole_host(path)?),
        _ => None,
    };
    let runtime = Runtime::open(&config.store, &config.runtime).await?;
    // Hosts sharing PostgreSQL see each other's plugin and connection changes.
    let _follow = runtime
        .follow_changes()
        .await
        .context("listening for the other hosts' changes")?;
    let _watch = match &config.runtime.plugin_dir {
        Some(dir) => Some(
            junction_runtime::watcher::watch(runtime.clone(), dir.clone())
                .await
                .with_context(|| format!("watching plugin directory {}", dir.display()))?,
        ),
        None => None,
    };
    // Events out: the outbox to NATS JetStream, or kept for the feed.
    let _events = junction_flows::events::spawn(
        runtime.store().clone(),
        config.events.clone(),
        Some(runtime.metrics().clone()),
    );
    let listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .with_context(|| format!("listening on {}", config.api.listen))?;
    tracing::info!(address = %listener.local_addr()?, "junction is serving");
    let flows = junction_flows::Flows::new(runtime, config.flows.options());
    flows.spawn_workers();
    // Streams that start runs: each message once, acknowledged after its run commits.
    let _triggers = flows.spawn_stream_triggers(config.events.nats_url.as_deref());
    let (app, reloader) =
        junction_api::router_with_reload(flows, &config.api, Some(reload_source(config_path)));
    reload_on_hangup(reloader)?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Takes the lock that makes this the only host serving the SQLite file at
/// `database` (`<file>.lock`, an advisory lock the system drops when the
/// process ends, however it ends); held while the returned file is open.
fn sole_host(database: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use std::io::{Read as _, Seek as _, Write as _};
    if let Some(dir) = database.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the database directory {}", dir.display()))?;
    }
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    let path = std::path::PathBuf::from(name);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening the host lock {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            anyhow::bail!(
                "another junction host (pid {}) is serving the SQLite database {}; SQLite is for \
                 one host: stop that one, or share a PostgreSQL database between hosts \
                 (`database = \"postgres://...\"`)",
                holder.trim(),
                database.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    Ok(file)
}

/// What a reload reads: the configuration file at `path` (none: the
/// defaults) and the environment, as at start.
pub fn reload_source(path: Option<&std::path::Path>) -> junction_api::ReloadSource {
    let path = path.map(std::path::Path::to_path_buf);
    std::sync::Arc::new(move || {
        Config::load(path.as_deref())
            .map(|c| (c.api, c.runtime))
            .map_err(|e| format!("{e:#}"))
    })
}

/// Reloads on every SIGHUP, as `POST /v1/admin/reload` does.
fn reload_on_hangup(reloader: junction_api::Reloader) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                if let Err(e) = reloader.reload("SIGHUP").await {
                    tracing::error!(error = %e.message(), "reloading the configuration failed; nothing changed");
                }
            }
        });
    }
    #[cfg(not(unix))]
    drop(reloader);
    Ok(())
}
