//! `junction`: the Junction host and its command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use junction::config::Config;

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
    /// Watch a plugin crate: on every change run its tests, build it and
    /// hot-swap it into a host (the one `--url` names, or a local one).
    Dev {
        /// The plugin crate.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The host's base URL; none: start a local host in memory.
        #[arg(long, env = "JUNCTION_URL")]
        url: Option<String>,
        /// A token of that host with operator scope.
        #[arg(long, env = "JUNCTION_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Swap once and exit (for scripts).
        #[arg(long)]
        once: bool,
    },
    /// A host's connections: put, list, show, check.
    Connection {
        #[command(subcommand)]
        command: ConnectionCommand,
    },
    /// Call an operation of a connection and print its output.
    Invoke {
        /// Connection name.
        connection: String,
        /// Operation name.
        operation: String,
        /// The input (JSON).
        #[arg(long, default_value = "{}")]
        input: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Read a stream of a connection (the connector's incremental `read`):
    /// records as JSON lines on stdout, the cursor to read on from on stderr.
    Read {
        /// Connection name.
        connection: String,
        /// Stream name, as the connector documents it.
        stream: String,
        /// Read on after this cursor (from a page before); absent: from the start.
        #[arg(long)]
        cursor: Option<String>,
        /// Follow the pages until the stream is done.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Print the shell completion script for SHELL (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
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
    /// Deploy, list and start flows on a running host.
    Flow {
        #[command(subcommand)]
        command: FlowCommand,
    },
    /// Deploy and show the governance document: which system owns which
    /// field of each canonical entity.
    Governance {
        #[command(subcommand)]
        command: GovernanceCommand,
    },
    /// Show an entity's ids in every system (the cross-system id map): by
    /// its canonical key, or by one system's id (`--system S --id ID`).
    Xref {
        /// A canonical entity, e.g. `project`.
        entity: String,
        /// Its canonical key.
        key: Option<String>,
        /// The system (connection) whose id is given.
        #[arg(long, requires = "id", conflicts_with = "key")]
        system: Option<String>,
        /// The record's id in that system.
        #[arg(long, requires = "system")]
        id: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Look at a host's flow runs.
    Run {
        #[command(subcommand)]
        command: RunCommand,
    },
    /// List, replay and discard a host's dead letters.
    DeadLetter {
        #[command(subcommand)]
        command: DeadLetterCommand,
    },
    /// Print the API's OpenAPI 3.1 document (the one a host serves at `/v1/openapi.json`).
    Openapi,
}

#[derive(Subcommand)]
enum FlowCommand {
    /// Deploy a flow file (TOML); a changed file becomes the flow's next version.
    Deploy {
        /// The flow file.
        file: PathBuf,
        /// Flow name (default: the file name without `.toml`).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List deployed flows.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Start a run by hand.
    Run {
        /// Flow name.
        name: String,
        /// The trigger event (JSON).
        #[arg(long, default_value = "{}")]
        event: String,
        /// Wait until the run ends (or waits for a signal), then show it.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Subcommand)]
enum GovernanceCommand {
    /// Deploy a governance document (TOML); a changed one becomes the next version.
    Deploy {
        /// The document, e.g. `flows/governance.toml`.
        file: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
    /// Print the current version.
    Show {
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Subcommand)]
enum ConnectionCommand {
    /// Create or replace a connection from its JSON document (see the README's Connections).
    Put {
        /// Connection name.
        name: String,
        /// The document, from a file (`-` for stdin).
        #[arg(long, conflicts_with = "json")]
        file: Option<PathBuf>,
        /// The document, inline.
        #[arg(long)]
        json: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List connections.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Show a connection (credentials only as their kind).
    Show {
        /// Connection name.
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Run the connector's health check against its system.
    Check {
        /// Connection name.
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Subcommand)]
enum RunCommand {
    /// List runs, newest first.
    List {
        /// Only this flow's.
        #[arg(long)]
        flow: Option<String>,
        /// Only runs with this status.
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show a run and its steps.
    Show {
        /// Run id.
        id: String,
        /// Wait until the run ends (or waits for a signal), showing progress.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Send a signal to a run that waits for it (an approval): `approve` or `reject`.
    Signal {
        /// Run id.
        id: String,
        /// The signal the run waits for (`junction run show` names it under `waiting_for`).
        name: String,
        /// `approve` or `reject`.
        #[arg(long, value_parser = ["approve", "reject"])]
        decision: String,
        /// Kept with the decision.
        #[arg(long)]
        comment: Option<String>,
        /// JSON for the steps after the wait.
        #[arg(long)]
        data: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Subcommand)]
enum DeadLetterCommand {
    /// List dead letters.
    List {
        /// Only this flow's.
        #[arg(long)]
        flow: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Replay a dead-lettered run from its failed step.
    Replay {
        /// Dead letter id.
        id: String,
        /// A corrected input for the failed step (JSON).
        #[arg(long)]
        input: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Discard a dead letter.
    Discard {
        /// Dead letter id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Check a component or package the way the host does before loading it, and print what it is.
    Inspect {
        /// A component (.wasm) or a package (.jpkg).
        file: PathBuf,
    },
    /// Create a plugin crate that builds for wasm32-wasip2 and passes its own test.
    New {
        /// Plugin name (a-z, 0-9, `-`, `_`).
        name: String,
        /// What the plugin is.
        #[arg(long, value_enum, default_value = "connector")]
        kind: Kind,
        /// The language it is written in.
        #[arg(long, value_enum, default_value = "rust")]
        lang: Lang,
        /// Directory to create (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Use the junction-sdk crate at this path (SDK development) instead
        /// of the SDK this binary carries, which is written to
        /// $JUNCTION_SDK_DIR, else ~/.local/share/junction/sdk-<version>.
        #[arg(long)]
        sdk_path: Option<PathBuf>,
    },
    /// Build a plugin crate for wasm32-wasip2 (release).
    Build {
        /// The plugin crate (default: the current directory).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Run the plugin's test cases (DIR/tests/cases.toml) on the host's
    /// engine, with the host's checks and limits, against the cassettes in
    /// DIR/tests/cassettes or a running system.
    Test {
        /// The plugin crate (default: the current directory); built first
        /// unless --wasm names the component.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The cases, when not DIR/tests/cases.toml.
        #[arg(long)]
        cases: Option<PathBuf>,
        /// Call this system (a stand-in, say) for `{server}` instead of
        /// replaying the cassettes.
        #[arg(long)]
        server: Option<String>,
        /// With --server: write each case's exchanges with that system to
        /// its cassette (secrets and `[record] redact` fields redacted).
        #[arg(long, requires = "server")]
        record: bool,
        /// The component, instead of building DIR.
        #[arg(long)]
        wasm: Option<PathBuf>,
    },
    /// Pack a manifest and a component into a package (.jpkg).
    Pack {
        /// The plugin crate: reads DIR/plugin.toml and the built component.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The component, when not DIR/target/wasm32-wasip2/release/<crate>.wasm.
        #[arg(long)]
        wasm: Option<PathBuf>,
        /// Output file (default: NAME-VERSION.jpkg in the current directory).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Create an ed25519 signing key; prints its public key for `trusted_keys`.
    Keygen {
        /// Where to write the private key (mode 0600).
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Sign a package with a private key (replaces any earlier signature).
    Sign {
        /// The package.
        package: PathBuf,
        /// The private key file from `junction plugin keygen`.
        #[arg(long, short)]
        key: PathBuf,
        /// Output file (default: overwrite the package).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Upload a package to a running host.
    Push {
        /// The package.
        package: PathBuf,
        /// Make the uploaded version active.
        #[arg(long)]
        activate: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// List a host's plugins.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Make a loaded version the active one.
    Activate {
        /// Plugin name.
        name: String,
        /// Version.
        version: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Re-activate the version that was active before the current one.
    Rollback {
        /// Plugin name.
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Kind {
    Connector,
    Transform,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Lang {
    /// A Rust crate using junction-sdk.
    Rust,
    /// JavaScript, built by ComponentizeJS (npm).
    Js,
    /// Python, built by componentize-py (PyPI); transforms only.
    Python,
}

/// Where the host is and who we are.
#[derive(clap::Args)]
struct Remote {
    /// The host's base URL.
    #[arg(long, env = "JUNCTION_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A bearer token of the host.
    #[arg(long, env = "JUNCTION_TOKEN", hide_env_values = true)]
    token: String,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // `serve` sets up its logs and traces from its configuration.
    if !matches!(cli.command, Command::Serve { .. }) {
        let quiet_default = matches!(
            cli.command,
            Command::Demo { .. } | Command::Plugin { .. } | Command::Dev { .. }
        );
        junction::serve::log_to_stderr(if quiet_default { "warn" } else { "info" });
    }

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
        Command::Demo { keep_running } => junction::demo::run(keep_running).await.map(|_| ()),
        Command::Plugin { command } => cli::plugin(command).await,
        Command::Dev {
            dir,
            url,
            token,
            once,
        } => dev::dev(dir, url, token, once).await,
        Command::Flow { command } => cli::flow(command).await,
        Command::Connection { command } => commands::connection(command).await,
        Command::Invoke {
            connection,
            operation,
            input,
            remote,
        } => commands::invoke(&remote, &connection, &operation, &input).await,
        Command::Read {
            connection,
            stream,
            cursor,
            all,
            remote,
        } => commands::read(&remote, &connection, &stream, cursor, all).await,
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "junction",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Governance { command } => commands::governance(command).await,
        Command::Xref {
            entity,
            key,
            system,
            id,
            remote,
        } => commands::xref(&remote, &entity, key, system.zip(id)).await,
        Command::Run { command } => cli::run(command).await,
        Command::DeadLetter { command } => cli::dead_letter(command).await,
        Command::Openapi => {
            println!("{}", junction_api::openapi_document().to_pretty_json()?);
            Ok(())
        }
    }
}

mod cli;
mod commands;
mod dev;
mod plugin_crate;
mod plugin_test;

async fn serve(config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = Config::load(config_path.as_deref())?;
    let telemetry = junction::telemetry::init(&config.telemetry, "info")?;
    if telemetry.exporting() {
        tracing::info!("exporting traces over OTLP");
    }
    junction::serve::run(&config, config_path.as_deref(), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
