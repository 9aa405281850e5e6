//! A server and three real agent processes on loopback: diagnostics from real probes on
//! real load, the no-data playbook, an unreachable host, and what must be refused; each
//! host's lifecycle (declared, enrolled, reporting, silent, revoked) in the API, the CLI
//! and on incident timelines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{fixture, temp_dir, Server, VIGIL};
use serde_json::{json, Value};

struct Agent {
    child: Child,
}

impl Agent {
    fn start(server: &Server, name: &str, token: &str, config: Option<&Path>, log: &Path) -> Agent {
        let log = std::fs::File::create(log).expect("agent log");
        let mut command = Command::new(VIGIL);
        command.arg("agent");
        if let Some(config) = config {
            command.arg("--config").arg(config);
        } else {
            command.args([
                "--server",
                &server.url,
                "--token",
                token,
                "--name",
                name,
                "--interval",
                "1",
            ]);
        }
        let child = command
            .env("VIGIL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start an agent");
        Agent { child }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process the test owns, killed when dropped.
struct Load(Child);

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cpu_burner() -> Load {
    Load(
        Command::new("/usr/bin/yes")
            .stdout(Stdio::null())
            .spawn()
            .expect("start /usr/bin/yes as a CPU burner"),
    )
}

/// Allocates and touches 600 MiB, then waits.
fn memory_hog() -> Load {
    let child = Command::new("python3")
        .args(["-c", "import time\nb = bytearray(600 * 1024 * 1024)\nfor i in range(0, len(b), 4096): b[i] = 1\nprint('ready', flush=True)\ntime.sleep(120)"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python3 as a memory hog");
    let mut hog = Load(child);
    let mut line = String::new();
    let stdout = hog.0.stdout.take().expect("hog stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
        .expect("hog ready");
    assert_eq!(line.trim(), "ready");
    hog
}

/// A CloudWatch-shaped alarm about `host`: `metric` in `state`, under `alarm`.
fn alarm_about(id: &str, alarm: &str, host: &str, metric: &str, state: &str) -> Value {
    let mut event = fixture("cloudwatch-alarm-ok-to-alarm.json");
    event["id"] = json!(id);
    event["detail"]["alarmName"] = json!(alarm);
    event["resources"] = json!([format!(
        "arn:aws:cloudwatch:us-east-1:123456789012:alarm:{alarm}"
    )]);
    event["detail"]["state"]["value"] = json!(state);
    let metric_stat = &mut event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"];
    metric_stat["name"] = json!(metric);
    metric_stat["namespace"] = json!("CWAgent");
    metric_stat["dimensions"] = json!({"host": host});
    event
}

async fn enroll(server: &Server, name: &str) -> String {
    // The application first: a host is enrolled only into one that exists.
    let (status, body) = server
        .post(
            "/api/v1/apps",
            json!({"appcode": "test_fleet", "name": "Test fleet", "kind": "application"})
                .to_string(),
        )
        .await;
    assert!(status == 201 || status == 409, "{status}: {body}");
    let output = server.cli(&["host", "add", name, "--appcode", "test_fleet"]);
    assert!(
        output.status.success(),
        "host add: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let token = stdout
        .lines()
        .last()
        .expect("token line")
        .trim()
        .to_string();
    assert!(
        token.starts_with("vgl_"),
        "the token is alone on the last line: {stdout}"
    );
    token
}

/// Waits until the incident for `alarm` has timeline entries satisfying `done`.
async fn timeline_of(
    server: &Server,
    alarm: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let incidents = server.incidents().await;
        if let Some(key) = incidents
            .iter()
            .find(|i| i["alarm_name"] == alarm)
            .and_then(|i| i["key"].as_str())
        {
            let (_, incident) = server.get(&format!("/api/v1/incidents/{key}")).await;
            let timeline = incident["timeline"].as_array().cloned().unwrap_or_default();
            if done(&timeline) {
                return timeline;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} on {alarm}: {}",
                serde_json::to_string_pretty(&timeline).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for an incident for {alarm}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn entries<'a>(timeline: &'a [Value], kind: &str) -> Vec<&'a str> {
    timeline
        .iter()
        .filter(|t| t["kind"] == kind)
        .filter_map(|t| t["message"].as_str())
        .collect()
}

/// Is `pid` among the first `rows` process rows of a ps-style probe output?
fn pid_in_top_rows(output: &str, pid: u32, rows: usize) -> bool {
    output
        .lines()
        .filter(|line| {
            line.split_whitespace()
                .nth(1)
                .is_some_and(|f| f.parse::<u32>().is_ok())
        })
        .take(rows)
        .any(|line| line.split_whitespace().nth(1) == Some(&pid.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agents_diagnose_refuse_and_report_unreachable_hosts() {
    let dir = temp_dir();
    let config = dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        r#"
[[rules]]
name = "refusal-test"
pattern = '{"detail": {"alarmName": [{"prefix": "refusal-test"}]}}'
playbook = "refusals"

[playbooks.refusals]
steps = [{ type = "incident" }, { type = "diagnose", probes = ["command:not_allowed", "command:kernel"] }]
"#,
    )
    .expect("server config");
    let data = dir.path().join("data");
    let server = Server::start_with(
        &data,
        &["--config", config.to_str().expect("path"), "--no-agent"],
    )
    .await;

    let tokens: Vec<String> = {
        let mut tokens = Vec::new();
        for n in 1..=3 {
            tokens.push(enroll(&server, &format!("agent-{n}")).await);
        }
        tokens
    };
    // agent-2 starts from a file with an allow-list; the others from flags alone.
    let allow_list = dir.path().join("allow.toml");
    std::fs::write(
        &allow_list,
        "[commands]\nkernel = [\"/usr/bin/uname\", \"-s\"]\n",
    )
    .expect("allow-list");
    let agent2_config = dir.path().join("agent-2.toml");
    std::fs::write(
        &agent2_config,
        format!(
            "server = \"{}\"\ntoken = \"{}\"\nname = \"agent-2\"\ninterval_secs = 1\nallow_list = \"{}\"\n",
            server.url,
            tokens[1],
            allow_list.display()
        ),
    )
    .expect("agent config");
    let agent1 = Agent::start(
        &server,
        "agent-1",
        &tokens[0],
        None,
        &dir.path().join("agent-1.log"),
    );
    let _agent2 = Agent::start(
        &server,
        "agent-2",
        &tokens[1],
        Some(&agent2_config),
        &dir.path().join("agent-2.log"),
    );
    let mut agent3 = Agent::start(
        &server,
        "agent-3",
        &tokens[2],
        None,
        &dir.path().join("agent-3.log"),
    );

    // All three report: heartbeats, versions, running collectors, metrics.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, hosts) = server.get("/api/v1/hosts").await;
        let reporting = hosts["hosts"]
            .as_array()
            .map(|h| {
                h.iter()
                    .filter(|h| h["last_seen_at"].is_string() && h["collector"]["running"] == true)
                    .count()
            })
            .unwrap_or(0);
        if reporting == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "agents did not all report: {hosts}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // CPU and network rates need two readings, so they start with the second batch.
    let has_cpu = |host: &Value| {
        host["last_metrics"]["samples"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["name"] == "CPUUtilization"))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let host2 = loop {
        let (_, host2) = server.get("/api/v1/hosts/agent-2").await;
        if has_cpu(&host2) {
            break host2;
        }
        assert!(
            Instant::now() < deadline,
            "agent-2 sent no CPU metrics: {host2}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let samples = host2["last_metrics"]["samples"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for metric in [
        "CPUUtilization",
        "mem_used_percent",
        "disk_used_percent",
        "load1",
    ] {
        assert!(
            samples.iter().any(|s| s["name"] == metric),
            "agent-2 sends {metric}: {host2}"
        );
    }
    let listed = server.cli(&["hosts"]);
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        listed.contains("agent-1") && listed.contains("running"),
        "{listed}"
    );

    // A CPU alarm on agent-2 while a burner runs: top_cpu names the burner.
    let burner = cpu_burner();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _) = server
        .post(
            "/api/v1/events",
            alarm_about(
                "cpu-1",
                "agent-2 CPU high",
                "agent-2",
                "CPUUtilization",
                "ALARM",
            )
            .to_string(),
        )
        .await;
    assert_eq!(status, 202);
    let timeline = timeline_of(&server, "agent-2 CPU high", "top_cpu output", |t| {
        !entries(t, "diagnostics").is_empty()
    })
    .await;
    let output = entries(&timeline, "diagnostics")[0];
    assert!(output.starts_with("top_cpu on agent-2"), "{output}");
    assert!(
        pid_in_top_rows(output, burner.0.id(), 3),
        "burner pid {} in the first rows of:\n{output}",
        burner.0.id()
    );
    assert!(
        entries(&timeline, "host_check")
            .iter()
            .any(|m| m.contains("agent-2 is reporting")),
        "{timeline:?}"
    );
    eprintln!("top_cpu: {}", output.lines().next().unwrap_or_default());
    drop(burner);

    // A memory alarm while a hog holds 600 MiB: top_mem names the hog.
    let hog = memory_hog();
    let (status, _) = server
        .post(
            "/api/v1/events",
            alarm_about(
                "mem-1",
                "agent-2 memory high",
                "agent-2",
                "mem_used_percent",
                "ALARM",
            )
            .to_string(),
        )
        .await;
    assert_eq!(status, 202);
    let timeline = timeline_of(&server, "agent-2 memory high", "top_mem output", |t| {
        !entries(t, "diagnostics").is_empty()
    })
    .await;
    let output = entries(&timeline, "diagnostics")[0];
    assert!(output.starts_with("top_mem on agent-2"), "{output}");
    assert!(
        pid_in_top_rows(output, hog.0.id(), 3),
        "hog pid {} in the first rows of:\n{output}",
        hog.0.id()
    );
    drop(hog);

    // agent-1's collector stops: no data → collector_status says stopped, the restart brings it back.
    agent1.signal("-USR1");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, host) = server.get("/api/v1/hosts/agent-1").await;
        if host["collector"]["running"] == false {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "agent-1 never reported its collector stopped: {host}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _) = server
        .post(
            "/api/v1/events",
            alarm_about(
                "nodata-1",
                "agent-1 no data",
                "agent-1",
                "CPUUtilization",
                "INSUFFICIENT_DATA",
            )
            .to_string(),
        )
        .await;
    assert_eq!(status, 202);
    let timeline = timeline_of(
        &server,
        "agent-1 no data",
        "collector status and restart",
        |t| entries(t, "diagnostics").len() >= 2,
    )
    .await;
    let diagnostics = entries(&timeline, "diagnostics");
    let status_output = diagnostics
        .iter()
        .find(|m| m.starts_with("collector_status"))
        .expect("collector_status output");
    assert!(status_output.contains("stopped"), "{status_output}");
    let restart_output = diagnostics
        .iter()
        .find(|m| m.starts_with("collector_restart"))
        .expect("collector_restart output");
    assert!(
        restart_output.contains("restarted"),
        "the incident says the collector recovered: {restart_output}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, host) = server.get("/api/v1/hosts/agent-1").await;
        if host["collector"]["running"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "agent-1's collector did not come back: {host}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // agent-3 killed outright: the incident says the host is unreachable, with its last-seen time.
    let _ = agent3.child.kill();
    let _ = agent3.child.wait();
    let (status, _) = server
        .post(
            "/api/v1/events",
            alarm_about(
                "nodata-3",
                "agent-3 no data",
                "agent-3",
                "CPUUtilization",
                "INSUFFICIENT_DATA",
            )
            .to_string(),
        )
        .await;
    assert_eq!(status, 202);
    let timeline = timeline_of(&server, "agent-3 no data", "unreachable", |t| {
        entries(t, "host_check")
            .iter()
            .any(|m| m.contains("host unreachable"))
    })
    .await;
    let (_, host3) = server.get("/api/v1/hosts/agent-3").await;
    let last_seen = host3["last_seen_at"].as_str().expect("agent-3 was seen");
    // The API writes whole seconds without a fraction; the timeline always has milliseconds.
    let last_seen = chrono::DateTime::parse_from_rfc3339(last_seen)
        .expect("last_seen_at is RFC 3339")
        .to_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let last_seen = last_seen.as_str();
    assert!(
        entries(&timeline, "host_check")
            .iter()
            .any(|m| m.contains("host unreachable") && m.contains(last_seen)),
        "unreachable with last seen {last_seen}: {timeline:?}"
    );

    // Refusals: a command outside the allow-list; an allowed one runs. (A probe no agent
    // knows is refused by the server at start, before any agent sees it.)
    let (status, _) = server
        .post(
            "/api/v1/events",
            alarm_about(
                "refuse-1",
                "refusal-test",
                "agent-2",
                "CPUUtilization",
                "ALARM",
            )
            .to_string(),
        )
        .await;
    assert_eq!(status, 202);
    let timeline = timeline_of(&server, "refusal-test", "refusals", |t| {
        entries(t, "host_check")
            .iter()
            .any(|m| m.contains("refused"))
            && entries(t, "diagnostics")
                .iter()
                .any(|m| m.starts_with("command:kernel"))
    })
    .await;
    let refusals = entries(&timeline, "host_check");
    assert!(
        refusals
            .iter()
            .any(|m| m.contains("command:not_allowed") && m.contains("allow-list")),
        "{refusals:?}"
    );
    assert!(
        entries(&timeline, "diagnostics")
            .iter()
            .any(|m| m.contains("Linux")),
        "the allowed command ran: {timeline:?}"
    );

    // Shell metacharacters in alarm names, labels and dimensions never execute.
    let marker = std::process::id();
    let victim = std::env::temp_dir().join(format!("vigil-victim-{marker}"));
    std::fs::create_dir_all(&victim).expect("victim dir");
    let pwned = std::env::temp_dir().join(format!("vigil-pwned-{marker}"));
    let backtick = std::env::temp_dir().join(format!("vigil-backtick-{marker}"));
    let nasty = format!(
        "cpu; rm -rf {} $(touch {}) `touch {}`",
        victim.display(),
        pwned.display(),
        backtick.display()
    );
    let mut event = alarm_about("nasty-1", &nasty, "agent-2", "CPUUtilization", "ALARM");
    event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"]["extra"] =
        json!(nasty);
    let (status, _) = server.post("/api/v1/events", event.to_string()).await;
    assert_eq!(status, 202);
    let mut hosty = alarm_about("nasty-2", "nasty host", &nasty, "CPUUtilization", "ALARM");
    hosty["detail"]["alarmName"] = json!(format!("nasty host {nasty}"));
    let (status, _) = server.post("/api/v1/events", hosty.to_string()).await;
    assert_eq!(status, 202);
    let mut webhook = fixture("alertmanager-webhook-v4.json");
    webhook["alerts"][0]["labels"]["alertname"] = json!(nasty);
    webhook["alerts"][0]["labels"]["instance"] = json!("agent-2");
    webhook["alerts"][0]["annotations"]["summary"] = json!(nasty);
    let (status, _) = server
        .post("/api/v1/ingest/alertmanager", webhook.to_string())
        .await;
    assert_eq!(status, 202);
    timeline_of(&server, &nasty, "probes for the nasty alarm", |t| {
        !entries(t, "diagnostics").is_empty()
    })
    .await;
    timeline_of(
        &server,
        &format!("nasty host {nasty}"),
        "the unknown host noted",
        |t| {
            entries(t, "host_check")
                .iter()
                .any(|m| m.contains("no agent is enrolled"))
        },
    )
    .await;
    // Everything the incidents caused has gone out (tickets, messages) once the runner
    // rests; any of it that ran a shell would have left its mark by then.
    server.runner_idle().await;
    assert!(victim.exists(), "rm -rf ran");
    assert!(!pwned.exists(), "$(…) ran");
    assert!(!backtick.exists(), "backticks ran");
    let _ = std::fs::remove_dir_all(&victim);

    // A revoked host's token is refused.
    let revoked = enroll(&server, "agent-revoked").await;
    let before = server
        .http
        .post(format!("{}/api/v1/agent/heartbeat", server.url))
        .bearer_auth(&revoked)
        .json(&json!({"agent_version": "test", "uptime_secs": 1, "interval_secs": 10}))
        .send()
        .await
        .expect("heartbeat");
    assert_eq!(before.status(), 204);
    let output = server.cli(&["host", "revoke", "agent-revoked"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let after = server
        .http
        .post(format!("{}/api/v1/agent/heartbeat", server.url))
        .bearer_auth(&revoked)
        .json(&json!({"agent_version": "test", "uptime_secs": 1, "interval_secs": 10}))
        .send()
        .await
        .expect("heartbeat");
    assert_eq!(after.status(), 401);
    // A host token cannot use the admin API, nor the admin token the agent API.
    let admin_call = server
        .http
        .get(format!("{}/api/v1/incidents", server.url))
        .bearer_auth(&tokens[1])
        .send()
        .await
        .expect("call");
    assert_eq!(admin_call.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_buffers_while_the_server_is_down_and_resends() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let mut server = Server::start_with(&data, &["--no-agent"]).await;
    let token = enroll(&server, "buffering-host").await;
    // An alarm judges load1, so the server keeps its raw points (the ones checked below).
    let (status, body) = server
        .post(
            "/api/v1/alarms",
            serde_json::json!({
                "AlarmName": "buffering load", "MetricName": "load1", "Namespace": "vigil",
                "Dimensions": [{"Name": "host", "Value": "buffering-host"}],
                "Statistic": "Average", "Period": 60, "EvaluationPeriods": 3,
                "Threshold": 1000.0, "ComparisonOperator": "GreaterThanThreshold"
            })
            .to_string(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let agent = Agent::start(
        &server,
        "buffering-host",
        &token,
        None,
        &dir.path().join("agent.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, host) = server.get("/api/v1/hosts/buffering-host").await;
        if host["last_metrics"].is_object() {
            break;
        }
        assert!(Instant::now() < deadline, "no metrics: {host}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Down for four collection intervals, then back on the same address.
    let address = server.url.trim_start_matches("http://").to_string();
    server.kill();
    let down_from = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let down_until = down_from + 4_000;
    let server = Server::start_with(&data, &["--no-agent", "--listen", &address]).await;

    // Samples taken while it was down arrive: the series holds points from the outage.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, series) = server
            .get("/api/v1/series?name=load1&host=buffering-host")
            .await;
        let during: usize = series["series"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["points"].as_array().cloned().unwrap_or_default())
            .filter(|p| {
                p[0].as_i64()
                    .is_some_and(|t| t > down_from && t < down_until)
            })
            .count();
        if during >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no buffered samples from the outage arrived: {series}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_on_command_lines_never_reach_the_incident() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let server = Server::start_with(&data, &["--no-agent"]).await;
    let token = enroll(&server, "secret-host").await;
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "server = \"{}\"\ntoken = \"{token}\"\nname = \"secret-host\"\ninterval_secs = 1\nredact_patterns = [\"corp-[0-9]+\"]\n",
            server.url
        ),
    )
    .expect("agent config");
    let _agent = Agent::start(
        &server,
        "secret-host",
        &token,
        Some(&config),
        &dir.path().join("agent.log"),
    );
    // Burns CPU, so top_cpu lists it, with secrets in its arguments.
    let burner = Load(
        Command::new("/bin/sh")
            .args([
                "-c",
                "while :; do :; done",
                "sh",
                "--password=hunter2",
                "licence",
                "corp-4242",
            ])
            .spawn()
            .expect("start a CPU burner"),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _) = server
        .post(
            "/api/v1/events",
            alarm_about(
                "secret-1",
                "secret-host CPU high",
                "secret-host",
                "CPUUtilization",
                "ALARM",
            )
            .to_string(),
        )
        .await;
    assert_eq!(status, 202);
    let timeline = timeline_of(&server, "secret-host CPU high", "top_cpu output", |t| {
        !entries(t, "diagnostics").is_empty()
    })
    .await;
    let output = entries(&timeline, "diagnostics")[0].to_string();
    drop(burner);
    assert!(output.starts_with("top_cpu on secret-host"), "{output}");

    let key = server
        .incidents()
        .await
        .iter()
        .find(|i| i["alarm_name"] == "secret-host CPU high")
        .and_then(|i| i["key"].as_str())
        .map(String::from)
        .expect("the incident");
    let (status, incident) = server.get(&format!("/api/v1/incidents/{key}")).await;
    assert_eq!(status, 200);
    let json = incident.to_string();
    for secret in ["hunter2", "corp-4242", &token] {
        assert!(
            !json.contains(secret),
            "{secret} is on the incident:\n{output}"
        );
    }
    assert!(
        output
            .lines()
            .any(|l| l.ends_with("sh -c while :; do :; done sh --password=*** licence ***")),
        "the burner's row, masked, in:\n{output}"
    );
}

#[test]
fn an_invalid_redact_pattern_stops_the_agent_at_start() {
    let output = Command::new(VIGIL)
        .args([
            "agent",
            "--server",
            "http://127.0.0.1:9",
            "--token",
            "vgl_not-a-real-token",
            "--name",
            "bad-pattern",
            "--redact",
            "corp-[0-9",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run vigil agent");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("redact_patterns[0] `corp-[0-9` is not a valid regular expression"),
        "{stderr}"
    );
}

fn send_usr1(pid: u32) {
    let status = Command::new("kill")
        .args(["-USR1", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

async fn assert_healthy(server: &Server) {
    assert!(server.is_running(), "the server died of SIGUSR1");
    let answer = server
        .http
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .expect("/healthz answers after SIGUSR1");
    assert!(
        answer.status().is_success(),
        "/healthz: {}",
        answer.status()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usr1_on_vigil_up_stops_its_built_in_collector_not_the_server() {
    let dir = temp_dir();
    let server = Server::start(dir.path()).await;
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_string();
    let collector_running = |host: &Value| host["collector"]["running"].as_bool();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (_, host) = server.get(&format!("/api/v1/hosts/{hostname}")).await;
        if collector_running(&host) == Some(true) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the built-in agent never reported a running collector: {host}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    send_usr1(server.pid());
    // The collector notices at its next round and the heartbeat after that says so,
    // each at most one interval (10 s) away.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (_, host) = server.get(&format!("/api/v1/hosts/{hostname}")).await;
        if collector_running(&host) == Some(false) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the built-in agent never reported its collector stopped: {host}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_healthy(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usr1_on_vigil_up_without_an_agent_is_logged_not_fatal() {
    let dir = temp_dir();
    let server = Server::start_with(dir.path(), &["--no-agent"]).await;
    send_usr1(server.pid());
    let log = dir.path().join("server.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("there is no metric collector to stop") {
            break;
        }
        assert!(Instant::now() < deadline, "SIGUSR1 was not logged:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_healthy(&server).await;
}

const LIFECYCLE_TREE: &str = r#"
[[apps]]
appcode = "fleet"
name = "Fleet"
kind = "application"

[[hosts]]
name = "web-07"
appcode = "fleet"
"#;

/// Each host's `state` in `GET /api/v1/hosts`.
async fn host_states(server: &Server) -> std::collections::BTreeMap<String, String> {
    let (status, body) = server.get("/api/v1/hosts").await;
    assert_eq!(status, 200, "{body}");
    body["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| {
            Some((
                h["name"].as_str()?.to_string(),
                h["state"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// Each host's STATE column in `vigil hosts`.
fn cli_host_states(server: &Server, args: &[&str]) -> std::collections::BTreeMap<String, String> {
    let output = server.cli(&[&["hosts"], args].concat());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let mut lines = stdout.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with("HOST") && header.contains("STATE"),
        "{stdout}"
    );
    lines
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            Some((fields.next()?.to_string(), fields.next()?.to_string()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_show_their_lifecycle_in_the_api_the_cli_and_incident_timelines() {
    let dir = temp_dir();
    let server = Server::start_env(dir.path(), &["--no-agent"], &[("VIGIL_TEST_CLOCK", "1")]).await;
    let tree = dir.path().join("tree.toml");
    std::fs::write(&tree, LIFECYCLE_TREE).expect("tree file");
    let imported = server.cli(&["app", "import", tree.to_str().expect("path")]);
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    enroll(&server, "web-enrolled").await;
    let live_token = enroll(&server, "web-live").await;
    let agent = Agent::start(
        &server,
        "web-live",
        &live_token,
        None,
        &dir.path().join("web-live.log"),
    );
    enroll(&server, "web-gone").await;
    let revoked = server.cli(&["host", "revoke", "web-gone"]);
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while host_states(&server)
        .await
        .get("web-live")
        .map(String::as_str)
        != Some("reporting")
    {
        assert!(
            Instant::now() < deadline,
            "web-live never reported: {:?}",
            host_states(&server).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let expected: std::collections::BTreeMap<String, String> = [
        ("web-07", "declared"),
        ("web-enrolled", "enrolled"),
        ("web-gone", "revoked"),
        ("web-live", "reporting"),
    ]
    .into_iter()
    .map(|(h, s)| (h.to_string(), s.to_string()))
    .collect();
    assert_eq!(host_states(&server).await, expected);
    assert_eq!(cli_host_states(&server, &[]), expected);
    let (_, declared) = server.get("/api/v1/hosts/web-07").await;
    assert_eq!(declared["state"], "declared", "{declared}");
    assert_eq!(declared["enrolled_at"], Value::Null, "{declared}");
    assert_eq!(
        declared["revoked_at"],
        Value::Null,
        "never enrolled, so never revoked: {declared}"
    );
    let (_, only) = server.get("/api/v1/hosts?state=declared").await;
    let names: Vec<&str> = only["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["name"].as_str())
        .collect();
    assert_eq!(names, ["web-07"]);
    let (status, bad) = server.get("/api/v1/hosts?state=lost").await;
    assert_eq!(status, 400, "{bad}");
    assert!(
        bad["error"].as_str().is_some_and(|e| e.contains("`lost`")
            && ["declared", "enrolled", "reporting", "silent", "revoked"]
                .iter()
                .all(|state| e.contains(&format!("`{state}`")))),
        "{bad}"
    );
    // Revoking a host that was only declared changes nothing: it has no token.
    let (status, answer) = server.post("/api/v1/hosts/web-07/revoke", "").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["changed"], false, "{answer}");
    assert_eq!(
        host_states(&server).await.get("web-07").map(String::as_str),
        Some("declared")
    );

    // Incidents about hosts no agent can answer for say why on their timelines.
    for (id, alarm, host) in [
        ("life-1", "web-07 cpu", "web-07"),
        ("life-2", "web-gone cpu", "web-gone"),
        ("life-3", "web-live cpu", "web-live"),
    ] {
        let (status, body) = server
            .post(
                "/api/v1/events",
                alarm_about(id, alarm, host, "CPUUtilization", "ALARM").to_string(),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }
    let timeline = timeline_of(&server, "web-07 cpu", "the declared host noted", |t| {
        !entries(t, "host_check").is_empty()
    })
    .await;
    let checks = entries(&timeline, "host_check");
    assert!(
        checks
            .iter()
            .any(|m| m.starts_with("host web-07 is declared but no agent has enrolled")),
        "{checks:?}"
    );
    let timeline = timeline_of(&server, "web-gone cpu", "the revoked host noted", |t| {
        !entries(t, "host_check").is_empty()
    })
    .await;
    let checks = entries(&timeline, "host_check");
    assert!(
        checks
            .iter()
            .any(|m| m.starts_with("host web-gone is revoked")),
        "{checks:?}"
    );
    let timeline = timeline_of(&server, "web-live cpu", "the live host's probes", |t| {
        !entries(t, "diagnostics").is_empty()
    })
    .await;
    assert!(
        entries(&timeline, "host_check")
            .iter()
            .any(|m| m.starts_with("host web-live is reporting")),
        "{timeline:?}"
    );
    // No probe was queued for the hosts without an agent.
    for alarm in ["web-07 cpu", "web-gone cpu"] {
        let key = server
            .incidents()
            .await
            .iter()
            .find(|i| i["alarm_name"] == alarm)
            .and_then(|i| i["key"].as_str().map(str::to_string))
            .expect("incident");
        let (_, incident) = server.get(&format!("/api/v1/incidents/{key}")).await;
        assert_eq!(
            entries(
                incident["timeline"].as_array().expect("timeline"),
                "diagnostics"
            )
            .len(),
            0,
            "{incident}"
        );
    }

    // The agent stops; a minute later on the test clock its host is silent.
    drop(agent);
    let (status, body) = server
        .post("/api/v1/test/clock", json!({"seconds": 60}).to_string())
        .await;
    assert_eq!(status, 200, "{body}");
    let mut silent = expected.clone();
    silent.insert("web-live".into(), "silent".into());
    assert_eq!(host_states(&server).await, silent);
    assert_eq!(
        cli_host_states(&server, &["--state", "silent"]),
        [("web-live".to_string(), "silent".to_string())].into()
    );
    assert_eq!(cli_host_states(&server, &[]), silent);
}
