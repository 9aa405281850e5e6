use std::io::Read;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use serde_json::Value;
use vigil_agent::runtime::AgentHandle;
use vigil_server::Config;

use crate::client::Client;
use crate::output::{self, outln};
use crate::{
    AgentArgs, AppAction, ClientArgs, Command, EventAction, HostAction, IncidentAction, RuleAction,
    SeriesAction, TokenAction,
};

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    let outcome = match command {
        Command::Rule {
            action: RuleAction::Test { pattern, event },
        } => {
            return Ok(ExitCode::from(vigil_rule_cli::rule_test(&pattern, &event)));
        }
        Command::Rule {
            action: RuleAction::Bench(args),
        } => vigil_rule_cli::rule_bench(&args),
        Command::Up {
            listen,
            data,
            config,
            no_agent,
            graphite,
        } => {
            let mut config = match config {
                Some(path) => Config::load(&path)?,
                None => Config::default(),
            };
            if let Some(listen) = listen {
                config.server.listen = listen;
            }
            if let Some(data) = data {
                config.server.data_dir = data;
            }
            if let Some(graphite) = graphite {
                config.metrics.graphite_listen = graphite;
            }
            start_server(config, !no_agent).await
        }
        Command::Server { config, graphite } => {
            let mut config = Config::load(&config)?;
            if let Some(graphite) = graphite {
                config.metrics.graphite_listen = graphite;
            }
            start_server(config, false).await
        }
        Command::Alarms {
            state,
            appcode,
            json,
            client,
        } => list_alarms(&client, state, appcode, json).await,
        Command::Agent(args) => run_agent(args).await,
        Command::Host { action } => match action {
            HostAction::Add {
                name,
                appcode,
                instance_id,
                client,
            } => add_host(&client, &name, appcode, instance_id).await,
            HostAction::Revoke { name, client } => revoke_host(&client, &name).await,
            HostAction::Bind {
                host,
                appcode,
                json,
                client,
            } => bind_host(&client, &host, &appcode, json).await,
        },
        Command::Status { json, client } => status(&client, json).await,
        Command::Series {
            action:
                SeriesAction::Top {
                    limit,
                    json,
                    client,
                },
        } => series_top(&client, limit, json).await,
        Command::Hosts {
            state,
            json,
            client,
        } => list_hosts(&client, state, json).await,
        Command::App { action } => app_command(action).await,
        Command::Report {
            appcode,
            since,
            json,
            client,
        } => show_report(&client, &appcode, &since, json).await,
        Command::Token { action } => token_command(action).await,
        Command::Incidents {
            status,
            limit,
            json,
            client,
        } => list_incidents(&client, status, limit, json).await,
        Command::Incident { action } => match action {
            IncidentAction::Show { key, json, client } => show_incident(&client, &key, json).await,
            IncidentAction::Ack { key, client } => change_incident(&client, &key, "ack").await,
            IncidentAction::Approve { key, client } => {
                post_and_print(
                    &client,
                    &format!("/api/v1/incidents/{}/approve", urlencode(&key)),
                    &serde_json::json!({}),
                )
                .await
            }
            IncidentAction::Resolve { key, client } => {
                change_incident(&client, &key, "resolve").await
            }
        },
        Command::Event {
            action: EventAction::Send { file, client },
        } => send_events(&client, &file).await,
    };
    outcome.map(|()| ExitCode::SUCCESS)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(output::stderr_colour())
        .try_init();
}

async fn start_server(config: Config, with_agent: bool) -> anyhow::Result<()> {
    init_logging();
    let agent = Arc::new(OnceLock::new());
    let without = if with_agent {
        "the built-in agent is not running (yet, or it could not start: see the log above)"
    } else {
        "this vigil runs no agent (--no-agent, or `vigil server`)"
    };
    stop_collector_on_usr1(agent.clone(), without)?;
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<(String, String)>();
    // Over HTTPS the built-in agent trusts the server's own certificate.
    let ca_cert = config.server.tls_cert.clone();
    let local_agent = with_agent.then(|| {
        tokio::spawn(async move {
            if let Ok((url, admin_token)) = started_rx.await {
                if let Err(e) = run_local_agent(url, admin_token, ca_cert, agent).await {
                    tracing::error!(error = %format!("{e:#}"), "the local agent could not start");
                }
            }
        })
    });
    let shutdown = async move {
        vigil_server::shutdown_signal().await;
        // The built-in agent goes first: left running, it would warn about every report
        // the closing server no longer takes, and its job long poll would hold the
        // shutdown open.
        if let Some(agent) = local_agent {
            agent.abort();
        }
    };
    vigil_server::serve(config, shutdown, move |started| {
        let _ = started_tx.send((started.url.clone(), started.admin_token.clone()));
        // The server runs on whether or not anyone reads this.
        let _ = announce(started);
    })
    .await?;
    Ok(())
}

fn announce(started: &vigil_server::Started) -> anyhow::Result<()> {
    outln!("vigil is up at {}", started.url);
    if started.token_created {
        outln!("admin token (saved in {}):", started.token_path.display());
        outln!("{}", started.admin_token);
    } else {
        outln!("admin token: in {}", started.token_path.display());
    }
    Ok(())
}

/// SIGUSR1 stops metric collection (as if the collector died), to exercise the no-data
/// playbook on a real host; a collector_restart probe starts it again. The handler is
/// installed before anything else: the signal's default action would end the process.
/// `without` says why there is nothing to stop while `agent` is unset.
fn stop_collector_on_usr1(
    agent: Arc<OnceLock<AgentHandle>>,
    without: &'static str,
) -> anyhow::Result<()> {
    let mut signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
        .context("installing the SIGUSR1 handler")?;
    tokio::spawn(async move {
        while signal.recv().await.is_some() {
            match agent.get() {
                Some(handle) => {
                    tracing::info!("SIGUSR1: stopping the metric collector");
                    handle.stop_collector();
                }
                None => {
                    tracing::warn!("SIGUSR1: {without}, so there is no metric collector to stop")
                }
            }
        }
    });
    Ok(())
}

/// `vigil up` watches its own host: it enrolls it (a fresh token each start) and runs the
/// agent in-process.
async fn run_local_agent(
    url: String,
    admin_token: String,
    ca_cert: Option<std::path::PathBuf>,
    agent: Arc<OnceLock<AgentHandle>>,
) -> anyhow::Result<()> {
    let client = Client::trusting(url.clone(), admin_token, ca_cert.as_deref())?;
    let name = vigil_agent::runtime::local_host_name();
    let enrolled = client
        .post(
            "/api/v1/hosts",
            Some(serde_json::to_vec(&serde_json::json!({"name": name}))?),
        )
        .await
        .context("enrolling this host")?;
    let token = enrolled
        .get("token")
        .and_then(Value::as_str)
        .context("the server returned no token")?
        .to_string();
    let config = vigil_agent::runtime::AgentConfig {
        server: url,
        token,
        name: name.clone(),
        ca_cert,
        ..Default::default()
    };
    let (handle, task) = vigil_agent::runtime::start(config)?;
    let _ = agent.set(handle);
    tracing::info!(host = %name, "local agent started");
    task.await;
    Ok(())
}

async fn run_agent(args: AgentArgs) -> anyhow::Result<()> {
    init_logging();
    let mut config = match &args.config {
        Some(path) => vigil_agent::runtime::AgentConfig::load(path)?,
        None => vigil_agent::runtime::AgentConfig::default(),
    };
    if let Some(server) = args.server {
        config.server = server;
    }
    // Flags, then VIGIL_AGENT_TOKEN, then the file; VIGIL_TOKEN (the CLI's token) only
    // when nothing else names one.
    let from_env = |name: &str| std::env::var(name).ok().filter(|t| !t.is_empty());
    if let Some(token) = args.token.or_else(|| {
        args.token_file
            .is_none()
            .then(|| from_env("VIGIL_AGENT_TOKEN"))
            .flatten()
    }) {
        config.token = token;
        config.token_file = None;
    } else if let Some(path) = args.token_file {
        config.token.clear();
        config.token_file = Some(path);
    } else if config.token.is_empty() && config.token_file.is_none() {
        config.token = from_env("VIGIL_TOKEN").unwrap_or_default();
    }
    if let Some(path) = args.ca_cert {
        config.ca_cert = Some(path);
    }
    if let Some(name) = args.name {
        config.name = name;
    }
    if let Some(interval) = args.interval {
        config.interval_secs = interval;
    }
    config.redact_patterns.extend(args.redact);
    let name = config.name.clone();
    let (handle, task) = vigil_agent::runtime::start(config)?;
    stop_collector_on_usr1(
        Arc::new(OnceLock::from(handle)),
        "the agent has not started",
    )?;
    tracing::info!(host = %name, "agent started");
    task.await;
    Ok(())
}

async fn add_host(
    args: &ClientArgs,
    name: &str,
    appcode: Option<String>,
    instance_id: Option<String>,
) -> anyhow::Result<()> {
    let client = Client::from_args(args)?;
    let body = serde_json::json!({"name": name, "appcode": appcode, "instance_id": instance_id});
    let answer = client
        .post("/api/v1/hosts", Some(serde_json::to_vec(&body)?))
        .await?;
    let token = answer
        .get("token")
        .and_then(Value::as_str)
        .context("the server returned no token")?;
    let renewed = answer
        .get("renewed")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    outln!(
        "{} host {name}; its agent token (shown once) follows:",
        if renewed { "re-enrolled" } else { "enrolled" }
    );
    outln!("{token}");
    Ok(())
}

async fn revoke_host(args: &ClientArgs, name: &str) -> anyhow::Result<()> {
    let client = Client::from_args(args)?;
    client
        .post(&format!("/api/v1/hosts/{}/revoke", urlencode(name)), None)
        .await?;
    outln!("host {name} revoked: its agent's token no longer works");
    Ok(())
}

async fn status(args: &ClientArgs, json: bool) -> anyhow::Result<()> {
    let client = Client::from_args(args)?;
    let body = client.get("/api/v1/status").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let processing = &body["processing"];
    let backlog = processing["backlog"].as_u64().unwrap_or(0);
    let lag = processing["lag_seconds"].as_f64().unwrap_or(0.0);
    println!("vigil {}", body["version"].as_str().unwrap_or("?"));
    if backlog == 0 {
        println!("processing: up to date");
    } else {
        println!(
            "processing: {backlog} events waiting, the oldest for {lag:.1} s{}",
            if processing["behind"] == true {
                " — behind: new alarms reach incidents late"
            } else {
                ""
            }
        );
    }
    Ok(())
}

async fn series_top(args: &ClientArgs, limit: usize, json: bool) -> anyhow::Result<()> {
    let client = Client::from_args(args)?;
    let body = client
        .get(&format!("/api/v1/series/top?limit={limit}"))
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let count = |v: &Value| v.as_u64().unwrap_or(0);
    println!(
        "{} series of at most {}; chart history {:.1} MiB",
        count(&body["total"]),
        count(&body["cap"]),
        count(&body["history_bytes"]) as f64 / (1024.0 * 1024.0)
    );
    println!();
    println!("{:<14} {:>10} {:>10}", "SOURCE", "SERIES", "CAP");
    for row in body["sources"].as_array().into_iter().flatten() {
        println!(
            "{:<14} {:>10} {:>10}",
            row["source"].as_str().unwrap_or("?"),
            count(&row["series"]),
            count(&row["cap"])
        );
    }
    println!();
    println!("{:<40} {:>10} {:>12}", "METRIC", "SERIES", "MEMORY");
    for row in body["metrics"].as_array().into_iter().flatten() {
        println!(
            "{:<40} {:>10} {:>10.1} K",
            row["name"].as_str().unwrap_or("?"),
            count(&row["series"]),
            count(&row["bytes"]) as f64 / 1024.0
        );
    }
    println!();
    println!("{:<24} {:>10} {:>10}", "APPCODE", "SERIES", "CAP");
    for row in body["appcodes"].as_array().into_iter().flatten() {
        println!(
            "{:<24} {:>10} {:>10}",
            row["appcode"].as_str().unwrap_or("?"),
            count(&row["series"]),
            count(&row["cap"])
        );
    }
    Ok(())
}

async fn list_hosts(args: &ClientArgs, state: Option<String>, json: bool) -> anyhow::Result<()> {
    let client = Client::from_args(args)?;
    let path = match &state {
        Some(state) => format!("/api/v1/hosts?state={}", urlencode(state)),
        None => "/api/v1/hosts".to_string(),
    };
    let body = client.get(&path).await?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let hosts = body
        .get("hosts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if hosts.is_empty() {
        match state {
            Some(state) => outln!("no {state} hosts"),
            None => outln!("no hosts; add one with `vigil host add NAME`"),
        }
        return Ok(());
    }
    outln!(
        "{:<24} {:<10} {:<20} {:<8} {:<9} APPCODE",
        "HOST",
        "STATE",
        "LAST SEEN",
        "AGENT",
        "COLLECTOR"
    );
    for host in hosts {
        let text = |field: &str| {
            host.get(field)
                .and_then(Value::as_str)
                .unwrap_or("-")
                .to_string()
        };
        let collector = match host.pointer("/collector/running").and_then(Value::as_bool) {
            Some(true) => "running",
            Some(false) => "stopped",
            None => "-",
        };
        outln!(
            "{:<24} {:<10} {:<20} {:<8} {:<9} {}",
            text("name"),
            text("state"),
            text("last_seen_at").chars().take(19).collect::<String>(),
            text("agent_version"),
            collector,
            text("appcode"),
        );
    }
    Ok(())
}

fn print_json(body: &Value) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(body)?);
    Ok(())
}

async fn bind_host(args: &ClientArgs, host: &str, appcode: &str, json: bool) -> anyhow::Result<()> {
    let client = Client::from_args(args)?;
    let body = serde_json::json!({ "appcode": appcode });
    let answer = client
        .post(
            &format!("/api/v1/hosts/{}/bind", urlencode(host)),
            Some(serde_json::to_vec(&body)?),
        )
        .await?;
    if json {
        return print_json(&answer);
    }
    outln!("{:<24} APPCODE", "HOST");
    outln!(
        "{:<24} {}",
        answer["host"].as_str().unwrap_or(host),
        answer["appcode"].as_str().unwrap_or(appcode)
    );
    Ok(())
}

async fn show_report(
    args: &ClientArgs,
    appcode: &str,
    since: &str,
    json: bool,
) -> anyhow::Result<()> {
    let client = Client::from_args(args)?;
    let body = client
        .get(&format!(
            "/api/v1/reports?appcode={}&since={}",
            urlencode(appcode),
            urlencode(since)
        ))
        .await?;
    if json {
        return print_json(&body);
    }
    let at = |field: &str| {
        body[field]
            .as_i64()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map_or("-".to_string(), |t| t.format("%Y-%m-%d %H:%M").to_string())
    };
    let duration = |field: &str| body[field].as_f64().map_or("-".to_string(), human_secs);
    outln!(
        "{} from {} to {}",
        body["appcode"].as_str().unwrap_or(appcode),
        at("since_ms"),
        at("now_ms")
    );
    outln!(
        "  {:<10} {}",
        "incidents",
        body["incidents"].as_u64().unwrap_or(0)
    );
    outln!("  {:<10} {}", "open", body["open"].as_u64().unwrap_or(0));
    outln!("  {:<10} {}", "MTTA", duration("mtta_secs"));
    outln!("  {:<10} {}", "MTTR", duration("mttr_secs"));
    let noisiest = body["noisiest"].as_array().cloned().unwrap_or_default();
    if noisiest.is_empty() {
        outln!("no incidents in the period");
        return Ok(());
    }
    outln!("{:>9}  NOISIEST ALARM", "INCIDENTS");
    for entry in noisiest {
        outln!(
            "{:>9}  {}",
            entry[1].as_u64().unwrap_or(0),
            entry[0].as_str().unwrap_or("-")
        );
    }
    Ok(())
}

/// `95` → `1m 35s`, `7260` → `2h 1m`: a mean duration as a person reads it.
fn human_secs(secs: f64) -> String {
    let secs = secs.max(0.0).round() as u64;
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m {}s", secs / 60, secs % 60),
        _ => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
    }
}

async fn token_command(action: TokenAction) -> anyhow::Result<()> {
    match action {
        TokenAction::Add {
            name,
            scope,
            json,
            client,
        } => {
            let client = Client::from_args(&client)?;
            let body = serde_json::json!({ "name": name, "scope": scope });
            let answer = client
                .post("/api/v1/tokens", Some(serde_json::to_vec(&body)?))
                .await?;
            if json {
                return print_json(&answer);
            }
            let token = answer
                .get("token")
                .and_then(Value::as_str)
                .context("the server returned no token")?;
            outln!("{:<24} SCOPE", "NAME");
            outln!(
                "{:<24} {}",
                name,
                scope.as_deref().unwrap_or("(everything)")
            );
            outln!("its token, shown once (only its hash is kept), is on the next line:");
            outln!("{token}");
            Ok(())
        }
        TokenAction::Ls { json, client } => {
            let client = Client::from_args(&client)?;
            let body = client.get("/api/v1/tokens").await?;
            if json {
                return print_json(&body);
            }
            let tokens = body["tokens"].as_array().cloned().unwrap_or_default();
            if tokens.is_empty() {
                outln!("no tokens you may see; make one with `vigil token add NAME`");
                return Ok(());
            }
            outln!(
                "{:<24} {:<6} {:<24} {:<17} REVOKED",
                "NAME",
                "KIND",
                "SCOPE",
                "CREATED"
            );
            for token in tokens {
                let text = |field: &str| token[field].as_str().unwrap_or("-").to_string();
                let time = |field: &str| {
                    token[field]
                        .as_str()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .map_or("-".to_string(), |t| t.format("%Y-%m-%d %H:%M").to_string())
                };
                outln!(
                    "{:<24} {:<6} {:<24} {:<17} {}",
                    text("name"),
                    text("kind"),
                    // A host token is good for its agent's routes only, scope or none.
                    match (token["kind"].as_str(), token["scope"].as_str()) {
                        (Some("host"), _) => "-",
                        (_, Some(scope)) => scope,
                        (_, None) => "(everything)",
                    },
                    time("created_at"),
                    time("revoked_at"),
                );
            }
            Ok(())
        }
        TokenAction::Revoke { name, client } => {
            let client = Client::from_args(&client)?;
            let answer = client
                .post(&format!("/api/v1/tokens/{}/revoke", urlencode(&name)), None)
                .await?;
            if answer["changed"].as_bool() == Some(false) {
                outln!("token {name} was revoked already");
            } else {
                outln!("token {name} revoked: it is refused from now on");
            }
            Ok(())
        }
    }
}

async fn post_and_print(args: &ClientArgs, path: &str, body: &Value) -> anyhow::Result<()> {
    let client = Client::from_args(args)?;
    let answer = client.post(path, Some(serde_json::to_vec(body)?)).await?;
    outln!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}

async fn app_command(action: AppAction) -> anyhow::Result<()> {
    match action {
        AppAction::Add {
            appcode,
            name,
            kind,
            parent,
            owners,
            approvers,
            oncall,
            client,
        } => {
            let body = serde_json::json!({
                "appcode": appcode, "name": name, "kind": kind, "parent": parent,
                "owners": owners, "approvers": approvers, "oncall": oncall,
            });
            post_and_print(&client, "/api/v1/apps", &body).await
        }
        AppAction::Mv {
            appcode,
            parent,
            root,
            json,
            client,
        } => {
            if parent.is_none() && !root {
                anyhow::bail!("give the new parent, or --root to make {appcode} a root");
            }
            let client = Client::from_args(&client)?;
            let body = serde_json::json!({ "parent": parent });
            let answer = client
                .post(
                    &format!("/api/v1/apps/{}/move", urlencode(&appcode)),
                    Some(serde_json::to_vec(&body)?),
                )
                .await?;
            if json {
                return print_json(&answer);
            }
            outln!("{:<32} PARENT", "APPCODE");
            outln!(
                "{:<32} {}",
                answer["appcode"].as_str().unwrap_or(&appcode),
                answer["parent"].as_str().unwrap_or("(root)")
            );
            Ok(())
        }
        AppAction::Show { appcode, client } => {
            let client = Client::from_args(&client)?;
            let body = client
                .get(&format!("/api/v1/apps/{}", urlencode(&appcode)))
                .await?;
            outln!("{}", serde_json::to_string_pretty(&body)?);
            Ok(())
        }
        AppAction::Ls { json, client } => {
            let client = Client::from_args(&client)?;
            let body = client.get("/api/v1/apps").await?;
            if json {
                return print_json(&body);
            }
            outln!(
                "{:<32} {:<14} {:<24} {:>6}  OWNERS (inherited from)",
                "APPCODE",
                "KIND",
                "PARENT",
                "HOSTS"
            );
            for app in body
                .get("apps")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let node = &app["node"];
                let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
                let owners = app["inherited"]["owners"]
                    .as_array()
                    .map(|o| {
                        o.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                outln!(
                    "{:<32} {:<14} {:<24} {:>6}  {} ({})",
                    text(&node["appcode"]),
                    text(&node["kind"]),
                    text(&node["parent"]),
                    app["subtree_hosts"].as_u64().unwrap_or(0),
                    if owners.is_empty() {
                        "-".into()
                    } else {
                        owners
                    },
                    text(&app["inherited"]["from"]),
                );
            }
            Ok(())
        }
        AppAction::Import { file, client } => {
            let text =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let client = Client::from_args(&client)?;
            let answer = client.post("/api/v1/apps/import", Some(text)).await?;
            outln!(
                "{}",
                answer
                    .get("report")
                    .and_then(Value::as_str)
                    .unwrap_or("imported")
            );
            Ok(())
        }
        AppAction::Export { csv, client } => {
            let client = Client::from_args(&client)?;
            let format = if csv { "csv" } else { "toml" };
            output::text(
                &client
                    .get_text(&format!("/api/v1/apps/export?format={format}"))
                    .await?,
            )?;
            Ok(())
        }
    }
}

/// Longest reason shown in the table; `--json` has the whole text.
const REASON_WIDTH: usize = 100;

async fn list_alarms(
    args: &ClientArgs,
    state: Option<String>,
    appcode: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let client = Client::from_args(args)?;
    let mut query = Vec::new();
    if let Some(state) = &state {
        query.push(format!("state={}", urlencode(state)));
    }
    if let Some(appcode) = &appcode {
        query.push(format!("appcode={}", urlencode(appcode)));
    }
    let path = if query.is_empty() {
        "/api/v1/alarms".to_string()
    } else {
        format!("/api/v1/alarms?{}", query.join("&"))
    };
    let body = client.get(&path).await?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let alarms = body
        .get("alarms")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if alarms.is_empty() {
        outln!("no alarms");
        return Ok(());
    }
    outln!(
        "{:<18} {:>10} {:>10}  {:<20} {:<28} {:<20} {:<16} REASON",
        "STATE",
        "VALUE",
        "THRESHOLD",
        "SINCE",
        "ALARM",
        "HOST",
        "APPCODE"
    );
    for alarm in alarms {
        let name = alarm
            .get("AlarmName")
            .and_then(Value::as_str)
            .unwrap_or("-");
        let instances = alarm
            .get("instances")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if instances.is_empty() {
            outln!(
                "{:<18} {:>10} {:>10}  {:<20} {:<28} {:<20} {:<16} no series to judge yet",
                "-",
                "-",
                alarm
                    .get("Threshold")
                    .and_then(Value::as_f64)
                    .map_or("-".to_string(), |v| format!("{v:.2}")),
                "-",
                name,
                "-",
                alarm.get("Appcode").and_then(Value::as_str).unwrap_or("-"),
            );
        }
        for row in instances {
            let text = |field: &str| {
                row.get(field)
                    .and_then(Value::as_str)
                    .unwrap_or("-")
                    .to_string()
            };
            let number = |field: &str| {
                row.get(field)
                    .and_then(Value::as_f64)
                    .map_or("-".to_string(), |v| format!("{v:.2}"))
            };
            let since = row
                .get("since_ms")
                .and_then(Value::as_i64)
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map_or("-".to_string(), |t| {
                    t.format("%Y-%m-%d %H:%M:%S").to_string()
                });
            let mut reason: String = text("reason").chars().take(REASON_WIDTH).collect();
            if row.get("restored").and_then(Value::as_bool) == Some(true) {
                reason.push_str(" (kept from before the restart; no data since)");
            }
            outln!(
                "{:<18} {:>10} {:>10}  {:<20} {:<28} {:<20} {:<16} {}",
                text("state"),
                number("value"),
                number("threshold"),
                since,
                name,
                text("host"),
                text("appcode"),
                reason,
            );
        }
    }
    Ok(())
}

async fn list_incidents(
    args: &ClientArgs,
    status: Option<String>,
    limit: usize,
    json: bool,
) -> anyhow::Result<()> {
    let client = Client::from_args(args)?;
    let mut path = format!("/api/v1/incidents?limit={limit}");
    if let Some(status) = status {
        path.push_str(&format!("&status={}", urlencode(&status)));
    }
    let body = client.get(&path).await?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let incidents = body
        .get("incidents")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if incidents.is_empty() {
        outln!("no incidents");
        return Ok(());
    }
    outln!(
        "{:<10} {:<13} {:<9} {:>6}  {:<20} TITLE",
        "KEY",
        "STATUS",
        "SEVERITY",
        "COUNT",
        "OPENED"
    );
    for incident in incidents {
        let text = |field: &str| {
            incident
                .get(field)
                .and_then(Value::as_str)
                .unwrap_or("-")
                .to_string()
        };
        outln!(
            "{:<10} {:<13} {:<9} {:>6}  {:<20} {}",
            text("key"),
            text("status"),
            text("severity"),
            incident.get("count").and_then(Value::as_u64).unwrap_or(0),
            text("opened_at").chars().take(19).collect::<String>(),
            text("title"),
        );
    }
    Ok(())
}

async fn show_incident(args: &ClientArgs, key: &str, json: bool) -> anyhow::Result<()> {
    let client = Client::from_args(args)?;
    let incident = client
        .get(&format!("/api/v1/incidents/{}", urlencode(key)))
        .await?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&incident)?);
        return Ok(());
    }
    let text = |field: &str| match incident.get(field) {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    outln!("{}  {}", text("key"), text("title"));
    for field in [
        "status",
        "severity",
        "count",
        "alarm_name",
        "state",
        "reason",
        "host",
        "resource",
        "account",
        "region",
        "metric_namespace",
        "metric_name",
        "value",
        "threshold",
        "opened_at",
        "acknowledged_at",
        "resolved_at",
    ] {
        outln!("  {field:<17} {}", text(field));
    }
    if let Some(storm) = incident.get("storm").and_then(Value::as_str) {
        outln!("  {:<17} {storm} (reported with it)", "storm");
    }
    let members = incident
        .get("members")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !members.is_empty() {
        outln!("  members ({}):", members.len());
        for member in &members {
            let field = |f: &str| member.get(f).and_then(Value::as_str).unwrap_or("-");
            outln!(
                "    {:<10} {:<24} {:<12} {}",
                field("key"),
                field("host"),
                field("status"),
                field("alarm_name")
            );
        }
    }
    for field in ["dimensions", "labels", "annotations"] {
        if let Some(map) = incident
            .get(field)
            .and_then(Value::as_object)
            .filter(|m| !m.is_empty())
        {
            outln!("  {field}:");
            for (k, v) in map {
                outln!(
                    "    {k} = {}",
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                );
            }
        }
    }
    for ticket in incident
        .get("tickets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let field = |f: &str| {
            ticket
                .get(f)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        outln!(
            "  ticket            {} {} {}",
            field("tracker"),
            field("id"),
            field("url")
        );
    }
    let deliveries = incident
        .get("deliveries")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !deliveries.is_empty() {
        outln!("deliveries:");
        for d in deliveries {
            let field = |f: &str| d.get(f).and_then(Value::as_str).unwrap_or("").to_string();
            let attempts = d.get("attempts").and_then(Value::as_i64).unwrap_or(0);
            let outcome = match field("status").as_str() {
                "done" => format!("done {}", field("external_id")),
                "pending" if attempts > 0 => format!("retrying: {}", field("last_error")),
                "pending" => "pending".to_string(),
                other => format!("{other}: {}", field("last_error")),
            };
            outln!(
                "  {:<9} {:<15} {:<8} attempts {:<3} {}",
                field("kind"),
                field("name"),
                field("channel"),
                attempts,
                outcome
            );
        }
    }
    outln!("timeline:");
    for entry in incident
        .get("timeline")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let field = |f: &str| {
            entry
                .get(f)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        outln!(
            "  {}  {:<12} {}",
            field("at"),
            field("kind"),
            field("message")
        );
    }
    Ok(())
}

async fn change_incident(args: &ClientArgs, key: &str, action: &str) -> anyhow::Result<()> {
    let client = Client::from_args(args)?;
    let incident = client
        .post(
            &format!("/api/v1/incidents/{}/{action}", urlencode(key)),
            None,
        )
        .await?;
    outln!(
        "{} is {}",
        incident.get("key").and_then(Value::as_str).unwrap_or(key),
        incident
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
    );
    Ok(())
}

async fn send_events(args: &ClientArgs, file: &str) -> anyhow::Result<()> {
    let body = if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading events from stdin")?;
        buf
    } else {
        std::fs::read(file).with_context(|| format!("reading {file}"))?
    };
    let client = Client::from_args(args)?;
    let answer = client.post("/api/v1/events", Some(body)).await?;
    for id in answer
        .get("accepted")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        outln!("accepted {}", id.as_str().unwrap_or_default());
    }
    Ok(())
}

/// Incident keys and statuses are plain words; escape anything else rather than trust it.
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
