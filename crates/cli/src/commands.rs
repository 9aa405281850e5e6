use std::io::Read;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use serde_json::Value;
use vigil_agent::runtime::AgentHandle;
use vigil_server::Config;

use crate::client::Client;
use crate::{
    AgentArgs, AppAction, ClientArgs, Command, EventAction, HostAction, IncidentAction, RuleAction,
    TokenAction,
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
                client,
            } => {
                let body = serde_json::json!({ "appcode": appcode });
                post_and_print(
                    &client,
                    &format!("/api/v1/hosts/{}/bind", urlencode(&host)),
                    &body,
                )
                .await
            }
        },
        Command::Status { json, client } => status(&client, json).await,
        Command::Hosts {
            state,
            json,
            client,
        } => list_hosts(&client, state, json).await,
        Command::App { action } => app_command(action).await,
        Command::Report {
            appcode,
            since,
            client,
        } => {
            let client = Client::from_args(&client)?;
            let body = client
                .get(&format!(
                    "/api/v1/reports?appcode={}&since={}",
                    urlencode(&appcode),
                    urlencode(&since)
                ))
                .await?;
            println!("{}", serde_json::to_string_pretty(&body)?);
            Ok(())
        }
        Command::Token {
            action:
                TokenAction::Add {
                    name,
                    scope,
                    client,
                },
        } => {
            let client = Client::from_args(&client)?;
            let body = serde_json::json!({ "name": name, "scope": scope });
            let answer = client
                .post("/api/v1/tokens", Some(serde_json::to_vec(&body)?))
                .await?;
            let token = answer
                .get("token")
                .and_then(Value::as_str)
                .context("the server returned no token")?;
            println!(
                "token {name} (scope {}); shown once:",
                scope.as_deref().unwrap_or("everything")
            );
            println!("{token}");
            Ok(())
        }
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
    if with_agent {
        // Over HTTPS the built-in agent trusts the server's own certificate.
        let ca_cert = config.server.tls_cert.clone();
        tokio::spawn(async move {
            if let Ok((url, admin_token)) = started_rx.await {
                if let Err(e) = run_local_agent(url, admin_token, ca_cert, agent).await {
                    tracing::error!(error = %format!("{e:#}"), "the local agent could not start");
                }
            }
        });
    }
    vigil_server::serve(config, move |started| {
        let _ = started_tx.send((started.url.clone(), started.admin_token.clone()));
        println!("vigil is up at {}", started.url);
        if started.token_created {
            println!("admin token (saved in {}):", started.token_path.display());
            println!("{}", started.admin_token);
        } else {
            println!("admin token: in {}", started.token_path.display());
        }
    })
    .await?;
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
    println!(
        "{} host {name}; its agent token (shown once) follows:",
        if renewed { "re-enrolled" } else { "enrolled" }
    );
    println!("{token}");
    Ok(())
}

async fn revoke_host(args: &ClientArgs, name: &str) -> anyhow::Result<()> {
    let client = Client::from_args(args)?;
    client
        .post(&format!("/api/v1/hosts/{}/revoke", urlencode(name)), None)
        .await?;
    println!("host {name} revoked: its agent's token no longer works");
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

async fn list_hosts(args: &ClientArgs, state: Option<String>, json: bool) -> anyhow::Result<()> {
    let client = Client::from_args(args)?;
    let path = match &state {
        Some(state) => format!("/api/v1/hosts?state={}", urlencode(state)),
        None => "/api/v1/hosts".to_string(),
    };
    let body = client.get(&path).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let hosts = body
        .get("hosts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if hosts.is_empty() {
        match state {
            Some(state) => println!("no {state} hosts"),
            None => println!("no hosts; add one with `vigil host add NAME`"),
        }
        return Ok(());
    }
    println!(
        "{:<24} {:<10} {:<20} {:<8} {:<9} APPCODE",
        "HOST", "STATE", "LAST SEEN", "AGENT", "COLLECTOR"
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
        println!(
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

async fn post_and_print(args: &ClientArgs, path: &str, body: &Value) -> anyhow::Result<()> {
    let client = Client::from_args(args)?;
    let answer = client.post(path, Some(serde_json::to_vec(body)?)).await?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
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
            client,
        } => {
            if parent.is_none() && !root {
                anyhow::bail!("give the new parent, or --root to make {appcode} a root");
            }
            let body = serde_json::json!({ "parent": parent });
            post_and_print(
                &client,
                &format!("/api/v1/apps/{}/move", urlencode(&appcode)),
                &body,
            )
            .await
        }
        AppAction::Show { appcode, client } => {
            let client = Client::from_args(&client)?;
            let body = client
                .get(&format!("/api/v1/apps/{}", urlencode(&appcode)))
                .await?;
            println!("{}", serde_json::to_string_pretty(&body)?);
            Ok(())
        }
        AppAction::Ls { client } => {
            let client = Client::from_args(&client)?;
            let body = client.get("/api/v1/apps").await?;
            println!(
                "{:<32} {:<14} {:<24} {:>6}  OWNERS (inherited from)",
                "APPCODE", "KIND", "PARENT", "HOSTS"
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
                println!(
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
            println!(
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
            print!(
                "{}",
                client
                    .get_text(&format!("/api/v1/apps/export?format={format}"))
                    .await?
            );
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
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let alarms = body
        .get("alarms")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if alarms.is_empty() {
        println!("no alarms");
        return Ok(());
    }
    println!(
        "{:<18} {:>10} {:>10}  {:<20} {:<28} {:<20} {:<16} REASON",
        "STATE", "VALUE", "THRESHOLD", "SINCE", "ALARM", "HOST", "APPCODE"
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
            println!(
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
            println!(
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
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let incidents = body
        .get("incidents")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if incidents.is_empty() {
        println!("no incidents");
        return Ok(());
    }
    println!(
        "{:<10} {:<13} {:<9} {:>6}  {:<20} TITLE",
        "KEY", "STATUS", "SEVERITY", "COUNT", "OPENED"
    );
    for incident in incidents {
        let text = |field: &str| {
            incident
                .get(field)
                .and_then(Value::as_str)
                .unwrap_or("-")
                .to_string()
        };
        println!(
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
        println!("{}", serde_json::to_string_pretty(&incident)?);
        return Ok(());
    }
    let text = |field: &str| match incident.get(field) {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    println!("{}  {}", text("key"), text("title"));
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
        println!("  {field:<17} {}", text(field));
    }
    for field in ["dimensions", "labels", "annotations"] {
        if let Some(map) = incident
            .get(field)
            .and_then(Value::as_object)
            .filter(|m| !m.is_empty())
        {
            println!("  {field}:");
            for (k, v) in map {
                println!(
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
        println!(
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
        println!("deliveries:");
        for d in deliveries {
            let field = |f: &str| d.get(f).and_then(Value::as_str).unwrap_or("").to_string();
            let attempts = d.get("attempts").and_then(Value::as_i64).unwrap_or(0);
            let outcome = match field("status").as_str() {
                "done" => format!("done {}", field("external_id")),
                "pending" if attempts > 0 => format!("retrying: {}", field("last_error")),
                "pending" => "pending".to_string(),
                other => format!("{other}: {}", field("last_error")),
            };
            println!(
                "  {:<9} {:<15} {:<8} attempts {:<3} {}",
                field("kind"),
                field("name"),
                field("channel"),
                attempts,
                outcome
            );
        }
    }
    println!("timeline:");
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
        println!(
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
    println!(
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
        println!("accepted {}", id.as_str().unwrap_or_default());
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
