//! The `vigil` binary: the server (`up`, `server`) and a client for its API.

mod client;
mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "vigil", version, about = "Automatic first responder for servers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// All-in-one on this machine: server, embedded SQLite store, default rules.
    Up {
        /// Address to listen on [default: 127.0.0.1:8080, or the config's server.listen]
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Data directory [default: ./vigil-data, or the config's server.data_dir]
        #[arg(long)]
        data: Option<PathBuf>,
        /// Config file (TOML); see vigil.example.toml
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// The server alone, configured by file (production).
    Server {
        #[arg(long)]
        config: PathBuf,
    },
    /// List incidents, newest first.
    Incidents {
        /// open, acknowledged, resolved or all
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show, acknowledge or resolve one incident.
    Incident {
        #[command(subcommand)]
        action: IncidentAction,
    },
    /// Send events to the server.
    Event {
        #[command(subcommand)]
        action: EventAction,
    },
    /// Test and benchmark EventBridge event patterns.
    Rule {
        #[command(subcommand)]
        action: RuleAction,
    },
}

#[derive(Subcommand)]
enum IncidentAction {
    /// Show an incident with its timeline.
    Show {
        key: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Acknowledge an incident: someone is on it.
    Ack {
        key: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Resolve an incident by hand.
    Resolve {
        key: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand)]
enum EventAction {
    /// Send a file of events (one event or an array, EventBridge envelope); `-` reads stdin.
    Send {
        file: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand)]
enum RuleAction {
    /// Does PATTERN match EVENT? Exit 0 match, 1 no match, 2 invalid. Each is JSON or @FILE.
    Test {
        #[arg(long)]
        pattern: String,
        #[arg(long)]
        event: String,
    },
    /// Measure matching speed over a corpus of events and rule sets.
    Bench(vigil_rule_cli::BenchArgs),
}

/// Where the server is and how to authenticate. Found in this order: flags, environment,
/// then `server.url` and `admin.token` in the data directory.
#[derive(Args, Clone)]
pub struct ClientArgs {
    /// Server URL, e.g. http://127.0.0.1:8080
    #[arg(long, env = "VIGIL_SERVER")]
    server: Option<String>,
    /// API token
    #[arg(long, env = "VIGIL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Data directory to read server.url and admin.token from
    #[arg(long, default_value = "./vigil-data")]
    data: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return report(Err(anyhow::anyhow!("cannot start the async runtime: {e}"))),
    };
    report(runtime.block_on(commands::run(cli.command)))
}

fn report(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigil: {e:#}");
            ExitCode::FAILURE
        }
    }
}
