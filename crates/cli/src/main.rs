//! The `vigil` binary: the server (`up`, `server`) and a client for its API.

mod client;
mod commands;
mod output;

/// A storm is hundreds of thousands of short-lived JSON values a minute; glibc's allocator
/// spent a fifth of processing time consolidating and freeing them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "Automatic first responder for servers"
)]
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
        /// Do not run an agent for this host alongside the server
        #[arg(long)]
        no_agent: bool,
        /// Graphite plaintext listener address [default: 127.0.0.1:2003]; "" disables it
        #[arg(long)]
        graphite: Option<String>,
    },
    /// The host agent: metrics, heartbeats and diagnostics for one host.
    Agent(AgentArgs),
    /// Enroll or revoke a host.
    Host {
        #[command(subcommand)]
        action: HostAction,
    },
    /// The application tree: Appcodes, owners, approvers, on-call.
    App {
        #[command(subcommand)]
        action: AppAction,
    },
    /// Incidents, MTTA, MTTR, open count and noisiest alarms of an Appcode's subtree.
    Report {
        #[arg(long)]
        appcode: String,
        /// Period: 30d, 12h, 90m
        #[arg(long, default_value = "30d")]
        since: String,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Create, list and revoke API tokens, optionally limited to an Appcode's subtree.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// List hosts: lifecycle state (declared, enrolled, reporting, silent, revoked), last
    /// seen, agent version, collector state.
    /// Whether the server keeps up: events waiting to be processed, and for how long.
    Status {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    Hosts {
        /// Only hosts in this state: declared, enrolled, reporting, silent or revoked
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The server alone, configured by file (production).
    Server {
        #[arg(long)]
        config: PathBuf,
        /// Graphite plaintext listener address, overriding the config's metrics.graphite_listen
        #[arg(long)]
        graphite: Option<String>,
    },
    /// List alarms with each instance's state, value, reason and last change.
    Alarms {
        /// Only instances in this state: OK, ALARM or INSUFFICIENT_DATA
        #[arg(long)]
        state: Option<String>,
        /// Only instances of this Appcode (the alarm's, else its host's binding)
        #[arg(long)]
        appcode: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Metric series: `vigil series top` shows where they are.
    Series {
        #[command(subcommand)]
        action: SeriesAction,
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

/// Agent settings; flags override the config file, so an agent can start with no file.
#[derive(Args)]
pub struct AgentArgs {
    /// Agent config file (TOML): server, token_file (or token), name, interval_secs, labels,
    /// appcode, allow_list, output_cap_bytes, probe_timeout_secs, buffer_batches,
    /// redact_patterns, ca_cert
    #[arg(long)]
    config: Option<PathBuf>,
    /// Server URL, e.g. http://10.0.0.5:8080; for a cluster, several separated by commas,
    /// tried in turn when one stops answering
    #[arg(long)]
    server: Option<String>,
    /// This host's token (from `vigil host add NAME`). On the command line it shows in
    /// `ps`: prefer --token-file or the environment, VIGIL_AGENT_TOKEN (read after both
    /// flags, before the config file) or, when nothing else names a token, VIGIL_TOKEN
    #[arg(long)]
    token: Option<String>,
    /// File holding this host's token
    #[arg(long, value_name = "PATH", conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// PEM certificates to trust for an https server (e.g. its self-signed tls_cert)
    #[arg(long, env = "VIGIL_CA_CERT", value_name = "PATH")]
    ca_cert: Option<PathBuf>,
    /// This host's name as enrolled [default: the kernel's host name]
    #[arg(long)]
    name: Option<String>,
    /// Seconds between samples and heartbeats [default: 10]
    #[arg(long)]
    interval: Option<u64>,
    /// A regular expression whose matches in probe output become `***`, besides the
    /// built-in secret shapes; repeat for several (added to the file's redact_patterns)
    #[arg(long = "redact", value_name = "REGEX")]
    redact: Vec<String>,
}

#[derive(Subcommand)]
enum SeriesAction {
    /// Series per source against its cap, and the metric names and Appcodes with the
    /// most series (label cardinality), with the memory their chart history takes.
    Top {
        /// Rows per list
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand)]
enum AppAction {
    /// Add a node: business unit, department, application, …
    Add {
        appcode: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "application")]
        kind: String,
        #[arg(long)]
        parent: Option<String>,
        /// Repeat for several
        #[arg(long = "owner")]
        owners: Vec<String>,
        #[arg(long = "approver")]
        approvers: Vec<String>,
        #[arg(long)]
        oncall: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Move a node (and everything under it) to a new parent; `--root` makes it a root.
    Mv {
        appcode: String,
        parent: Option<String>,
        #[arg(long)]
        root: bool,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a node with its inherited owners, children, hosts and escalation chain.
    Show {
        appcode: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List the tree.
    Ls {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Import the tree, owners and host bindings from TOML or CSV (idempotent).
    Import {
        file: PathBuf,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Export the tree and bindings (TOML, or CSV with --csv).
    Export {
        #[arg(long)]
        csv: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Create a token; prints it alone on the last line.
    Add {
        name: String,
        /// Limit it to this Appcode's subtree
        #[arg(long)]
        scope: Option<String>,
        /// Print JSON (the token included) instead of a table
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List tokens: name, kind, scope, created, revoked. Never a secret.
    Ls {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke a token made with `token add`: refused from the next request on. (Host
    /// tokens go with `vigil host revoke`; the admin token cannot be revoked.)
    Revoke {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand)]
enum HostAction {
    /// Enroll a host; prints its agent token alone on the last line.
    Add {
        name: String,
        /// The application the host belongs to
        #[arg(long)]
        appcode: Option<String>,
        /// Its EC2 instance id, so CloudWatch alarms on InstanceId map to it
        #[arg(long)]
        instance_id: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Bind a host to an application.
    Bind {
        host: String,
        appcode: String,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke a host's token: its agent is refused from now on.
    Revoke {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
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
    /// Approve the incident's remediations waiting for an approver.
    Approve {
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

/// Where the server is and how to authenticate: `--server`/`VIGIL_SERVER`, else `--data
/// DIR`, else the user config file (`$XDG_CONFIG_HOME/vigil/cli.toml` or
/// `~/.config/vigil/cli.toml`: `server`, `token` or `token_file`), else `./vigil-data`.
/// See client::discover.
#[derive(Args, Clone)]
pub struct ClientArgs {
    /// Server URL, e.g. http://127.0.0.1:8080
    #[arg(long, env = "VIGIL_SERVER")]
    server: Option<String>,
    /// API token
    #[arg(long, env = "VIGIL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Data directory of a `vigil up` to read server.url and admin.token from [default:
    /// the user config file, else ./vigil-data]
    #[arg(long)]
    data: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return report(Err(anyhow::anyhow!("cannot start the async runtime: {e}"))),
    };
    report(runtime.block_on(commands::run(cli.command)))
}

fn report(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        // `vigil incidents | head -1`: the reader had what it wanted.
        Err(e) if output::is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil: {e:#}");
            ExitCode::FAILURE
        }
    }
}
