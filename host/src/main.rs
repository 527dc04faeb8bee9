//! `junction`: the Junction host and its command line.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use junction_host::config::Config;
use junction_host::runtime::Runtime;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "junction",
    version,
    about = "WebAssembly plugin-hosted connector runtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the host as an HTTP service.
    Serve {
        /// Configuration file (TOML); `JUNCTION_*` variables override it.
        #[arg(long, short, env = "JUNCTION_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run the quote-to-project demo on the embedded defaults, against loopback stand-ins.
    Demo {
        /// Keep the host and stand-ins running after the demo, until Ctrl-C.
        #[arg(long)]
        keep_running: bool,
    },
    /// Work with plugin components.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Check a component the way the host does before loading it, and print what it is.
    Inspect {
        /// The component (.wasm).
        file: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let quiet_default = matches!(cli.command, Command::Demo { .. } | Command::Plugin { .. });
    let filter = EnvFilter::try_from_env("JUNCTION_LOG")
        .unwrap_or_else(|_| EnvFilter::new(if quiet_default { "warn" } else { "info" }));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => serve(config).await,
        Command::Demo { keep_running } => junction_host::demo::run(keep_running).await.map(|_| ()),
        Command::Plugin {
            command: PluginCommand::Inspect { file },
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let inspection = junction_registry::inspect(&bytes)
                .with_context(|| format!("{} cannot be loaded", file.display()))?;
            println!("world:   {}", inspection.world);
            println!("digest:  {}", inspection.digest);
            println!("imports: {}", inspection.imports.join(", "));
            println!("exports: {}", inspection.exports.join(", "));
            Ok(())
        }
    }
}

async fn serve(config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = Config::load(config_path.as_deref())?;
    if config.tokens.is_empty() {
        tracing::warn!("no API tokens are configured: every /v1 endpoint will answer 401");
    }
    let runtime = Runtime::open(&config).await?;
    if let Some(dir) = &config.plugin_dir {
        load_dir(&runtime, dir).await?;
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    tracing::info!(address = %listener.local_addr()?, "junction is serving");
    let app = junction_host::api::router(runtime, &config);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// Loads every `*.wasm` in `dir`; a component that fails is reported and skipped.
async fn load_dir(runtime: &Arc<Runtime>, dir: &std::path::Path) -> anyhow::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading plugin directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    entries.sort();
    for path in entries {
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        match runtime.load_plugin(&bytes).await {
            Ok(p) => {
                tracing::info!(file = %path.display(), plugin = %p.name(), version = %p.version(), "loaded")
            }
            Err(e) => tracing::error!(file = %path.display(), error = %e, "plugin refused"),
        }
    }
    Ok(())
}
