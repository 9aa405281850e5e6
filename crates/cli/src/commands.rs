use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::Value;
use vigil_server::Config;

use crate::client::Client;
use crate::{ClientArgs, Command, EventAction, IncidentAction, RuleAction};

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    let outcome = match command {
        Command::Rule { action: RuleAction::Test { pattern, event } } => {
            return Ok(ExitCode::from(vigil_rule_cli::rule_test(&pattern, &event)));
        }
        Command::Rule { action: RuleAction::Bench(args) } => vigil_rule_cli::rule_bench(&args.into()),
        Command::Up { listen, data, config } => {
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
            start_server(config).await
        }
        Command::Server { config } => start_server(Config::load(&config)?).await,
        Command::Incidents { status, limit, json, client } => list_incidents(&client, status, limit, json).await,
        Command::Incident { action } => match action {
            IncidentAction::Show { key, json, client } => show_incident(&client, &key, json).await,
            IncidentAction::Ack { key, client } => change_incident(&client, &key, "ack").await,
            IncidentAction::Resolve { key, client } => change_incident(&client, &key, "resolve").await,
        },
        Command::Event { action: EventAction::Send { file, client } } => send_events(&client, &file).await,
    };
    outcome.map(|()| ExitCode::SUCCESS)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

async fn start_server(config: Config) -> anyhow::Result<()> {
    init_logging();
    vigil_server::serve(config, |started| {
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

async fn list_incidents(args: &ClientArgs, status: Option<String>, limit: usize, json: bool) -> anyhow::Result<()> {
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
    let incidents = body.get("incidents").and_then(Value::as_array).cloned().unwrap_or_default();
    if incidents.is_empty() {
        println!("no incidents");
        return Ok(());
    }
    println!("{:<10} {:<13} {:<9} {:>6}  {:<20} TITLE", "KEY", "STATUS", "SEVERITY", "COUNT", "OPENED");
    for incident in incidents {
        let text = |field: &str| incident.get(field).and_then(Value::as_str).unwrap_or("-").to_string();
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
    let incident = client.get(&format!("/api/v1/incidents/{}", urlencode(key))).await?;
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
        "status", "severity", "count", "alarm_name", "state", "reason", "host", "resource", "account", "region",
        "metric_namespace", "metric_name", "value", "threshold", "opened_at", "acknowledged_at", "resolved_at",
    ] {
        println!("  {field:<17} {}", text(field));
    }
    for field in ["dimensions", "labels", "annotations"] {
        if let Some(map) = incident.get(field).and_then(Value::as_object).filter(|m| !m.is_empty()) {
            println!("  {field}:");
            for (k, v) in map {
                println!("    {k} = {}", v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
            }
        }
    }
    println!("timeline:");
    for entry in incident.get("timeline").and_then(Value::as_array).into_iter().flatten() {
        let field = |f: &str| entry.get(f).and_then(Value::as_str).unwrap_or("").to_string();
        println!("  {}  {:<12} {}", field("at"), field("kind"), field("message"));
    }
    Ok(())
}

async fn change_incident(args: &ClientArgs, key: &str, action: &str) -> anyhow::Result<()> {
    let client = Client::from_args(args)?;
    let incident = client.post(&format!("/api/v1/incidents/{}/{action}", urlencode(key)), None).await?;
    println!(
        "{} is {}",
        incident.get("key").and_then(Value::as_str).unwrap_or(key),
        incident.get("status").and_then(Value::as_str).unwrap_or("unknown")
    );
    Ok(())
}

async fn send_events(args: &ClientArgs, file: &str) -> anyhow::Result<()> {
    let body = if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).context("reading events from stdin")?;
        buf
    } else {
        std::fs::read(file).with_context(|| format!("reading {file}"))?
    };
    let client = Client::from_args(args)?;
    let answer = client.post("/api/v1/events", Some(body)).await?;
    for id in answer.get("accepted").and_then(Value::as_array).into_iter().flatten() {
        println!("accepted {}", id.as_str().unwrap_or_default());
    }
    Ok(())
}

/// Incident keys and statuses are plain words; escape anything else rather than trust it.
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
