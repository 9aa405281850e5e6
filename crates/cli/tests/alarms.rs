//! vigil's own alarms end to end: Graphite lines over TCP and a real remote_write request
//! drive alarms to ALARM and back; a real agent with a CPU burner opens an incident whose
//! diagnostics name the burner; a restart does not invent INSUFFICIENT_DATA.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::{temp_dir, Server, VIGIL};
use serde_json::{json, Value};

fn alarm(name: &str, metric: &str, dimensions: Value, threshold: f64, periods: u32) -> Value {
    json!({
        "AlarmName": name,
        "AlarmDescription": "test alarm",
        "ActionsEnabled": true,
        "AlarmActions": ["arn:aws:sns:us-east-1:123456789012:ignored"],
        "MetricName": metric,
        "Namespace": "Test",
        "Dimensions": dimensions,
        "Statistic": "Maximum",
        "Period": 1,
        "EvaluationPeriods": periods,
        "DatapointsToAlarm": periods,
        "Threshold": threshold,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "missing",
        "Severity": "critical",
        "Appcode": "test_app"
    })
}

async fn define(server: &Server, definition: &Value) {
    let (status, body) = server.post("/api/v1/alarms", definition.to_string()).await;
    assert!(status == 201 || status == 200, "{body}");
}

/// The instances the alarms list shows for `alarm`.
fn instances_of<'a>(list: &'a Value, alarm: &str) -> Vec<&'a Value> {
    list["alarms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["AlarmName"] == alarm)
        .flat_map(|a| a["instances"].as_array().into_iter().flatten())
        .collect()
}

async fn instance_state(server: &Server, alarm: &str) -> Option<String> {
    let (_, body) = server.get("/api/v1/alarms").await;
    instances_of(&body, alarm)
        .first()
        .and_then(|i| i["state"].as_str())
        .map(str::to_string)
}

async fn wait_state(server: &Server, alarm: &str, state: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if instance_state(server, alarm).await.as_deref() == Some(state) {
            return;
        }
        let (_, body) = server.get("/api/v1/alarms").await;
        assert!(
            Instant::now() < deadline,
            "{alarm} never reached {state}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Sends `path value now` lines over one TCP connection every 200 ms while `run` holds,
/// reconnecting when the server goes away; the value comes from `value`.
fn graphite_sender(
    addr_file: std::path::PathBuf,
    path: &'static str,
    value: Arc<AtomicU64>,
    run: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut stream: Option<TcpStream> = None;
        while run.load(Ordering::SeqCst) {
            if stream.is_none() {
                stream = std::fs::read_to_string(&addr_file)
                    .ok()
                    .and_then(|a| TcpStream::connect(a.trim()).ok());
            }
            if let Some(s) = stream.as_mut() {
                let line = format!(
                    "{path} {} {}\n",
                    f64::from_bits(value.load(Ordering::SeqCst)),
                    unix_secs()
                );
                if s.write_all(line.as_bytes()).is_err() {
                    stream = None;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphite_lines_drive_an_alarm_to_alarm_and_back() {
    let dir = temp_dir();
    let server = Server::start_with(dir.path(), &["--no-agent"]).await;
    define(
        &server,
        &alarm(
            "graphite-cpu",
            "servers.web01.cpu.total",
            json!([]),
            50.0,
            2,
        ),
    )
    .await;
    let value = Arc::new(AtomicU64::new(90f64.to_bits()));
    let run = Arc::new(AtomicBool::new(true));
    let sender = graphite_sender(
        dir.path().join("graphite.addr"),
        "servers.web01.cpu.total",
        value.clone(),
        run.clone(),
    );

    wait_state(&server, "graphite-cpu", "ALARM", Duration::from_secs(20)).await;
    let incidents = server
        .wait_for_incidents("an incident for the alarm", |all| {
            all.iter().any(|i| i["alarm_name"] == "graphite-cpu")
        })
        .await;
    let incident = incidents
        .iter()
        .find(|i| i["alarm_name"] == "graphite-cpu")
        .expect("incident");
    assert_eq!(incident["source"], "vigil.alarms");
    assert_eq!(incident["severity"], "critical");
    assert_eq!(incident["threshold"], 50.0);
    assert_eq!(incident["value"], 90.0);
    assert!(
        incident["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("Threshold Crossed: 2 out of the last 2 datapoints")),
        "{incident}"
    );

    value.store(10f64.to_bits(), Ordering::SeqCst);
    wait_state(&server, "graphite-cpu", "OK", Duration::from_secs(20)).await;
    server
        .wait_for_incidents("the incident resolved by recovery", |all| {
            all.iter()
                .any(|i| i["alarm_name"] == "graphite-cpu" && i["status"] == "resolved")
        })
        .await;
    run.store(false, Ordering::SeqCst);
    sender.join().expect("sender");

    let (status, series) = server
        .get("/api/v1/series?name=servers.web01.cpu.total")
        .await;
    assert_eq!(status, 200);
    // One point per second (Graphite's resolution; a repeated timestamp replaces the value).
    let values: Vec<f64> = series["series"][0]["points"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p[1].as_f64())
        .collect();
    assert!(
        values.contains(&90.0) && values.contains(&10.0),
        "the series keeps its points for charts: {series}"
    );
    let listed = server.cli(&["alarms"]);
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        listed.contains("graphite-cpu") && listed.contains("OK"),
        "{listed}"
    );
    let metrics = server
        .http
        .get(format!("{}/metrics", server.url))
        .bearer_auth(&server.token)
        .send()
        .await
        .expect("metrics");
    let metrics = metrics.text().await.unwrap_or_default();
    assert!(
        metrics.contains("vigil_samples_accepted_total{source=\"graphite\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vigil_alarm_transitions_total{state=\"ALARM\"}"),
        "{metrics}"
    );
}

/// Protobuf encoding, just enough for a remote_write WriteRequest.
fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn field_bytes(field: u64, bytes: &[u8], out: &mut Vec<u8>) {
    varint(field << 3 | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn write_request(name: &str, labels: &[(&str, &str)], value: f64, timestamp_ms: i64) -> Vec<u8> {
    let mut series = Vec::new();
    let mut all = vec![("__name__", name)];
    all.extend_from_slice(labels);
    for (k, v) in all {
        let mut label = Vec::new();
        field_bytes(1, k.as_bytes(), &mut label);
        field_bytes(2, v.as_bytes(), &mut label);
        field_bytes(1, &label, &mut series);
    }
    let mut sample = Vec::new();
    varint(1 << 3 | 1, &mut sample);
    sample.extend_from_slice(&value.to_le_bytes());
    varint(2 << 3, &mut sample);
    varint(timestamp_ms as u64, &mut sample);
    field_bytes(2, &sample, &mut series);
    let mut request = Vec::new();
    field_bytes(1, &series, &mut request);
    snap::raw::Encoder::new()
        .compress_vec(&request)
        .expect("snappy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_drives_an_alarm_to_alarm_and_back() {
    let dir = temp_dir();
    let server = Server::start_with(dir.path(), &["--no-agent"]).await;
    define(
        &server,
        &alarm(
            "prom-latency",
            "http_request_seconds",
            json!([{"Name": "job", "Value": "web"}]),
            0.5,
            2,
        ),
    )
    .await;
    let send = |value: f64| {
        let body = write_request(
            "http_request_seconds",
            &[("job", "web"), ("instance", "web-1:9090")],
            value,
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        );
        let request = server
            .http
            .post(format!("{}/api/v1/write", server.url))
            .bearer_auth(&server.token)
            .header("content-encoding", "snappy")
            .header("content-type", "application/x-protobuf")
            .header("x-prometheus-remote-write-version", "0.1.0")
            .body(body);
        async move {
            let answer = request.send().await.expect("remote_write");
            assert_eq!(
                answer.status(),
                202,
                "{}",
                answer.text().await.unwrap_or_default()
            );
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while instance_state(&server, "prom-latency").await.as_deref() != Some("ALARM") {
        assert!(
            Instant::now() < deadline,
            "prom-latency never reached ALARM"
        );
        send(2.5).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while instance_state(&server, "prom-latency").await.as_deref() != Some("OK") {
        assert!(
            Instant::now() < deadline,
            "prom-latency never went back to OK"
        );
        send(0.1).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let incidents = server
        .wait_for_incidents("the latency incident resolved", |all| {
            all.iter()
                .any(|i| i["alarm_name"] == "prom-latency" && i["status"] == "resolved")
        })
        .await;
    let incident = incidents
        .iter()
        .find(|i| i["alarm_name"] == "prom-latency")
        .expect("incident");
    assert_eq!(incident["dimensions"]["instance"], "web-1:9090");

    let (status, body) = server.post("/api/v1/write", vec![0xffu8, 0x00, 0x13]).await;
    assert_eq!(status, 400, "{body}");
}

/// Sends one remote_write sample stamped now.
async fn push_sample(server: &Server, name: &str, labels: &[(&str, &str)], value: f64) {
    let body = write_request(name, labels, value, unix_ms());
    let answer = server
        .http
        .post(format!("{}/api/v1/write", server.url))
        .bearer_auth(&server.token)
        .header("content-encoding", "snappy")
        .header("content-type", "application/x-protobuf")
        .header("x-prometheus-remote-write-version", "0.1.0")
        .body(body)
        .send()
        .await
        .expect("remote_write");
    assert_eq!(
        answer.status(),
        202,
        "{}",
        answer.text().await.unwrap_or_default()
    );
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

const LIST_TREE: &str = r#"
[[apps]]
appcode = "pay"
name = "Payments"
kind = "application"

[[apps]]
appcode = "shop"
name = "Shop"
kind = "application"

[[hosts]]
name = "web-1"
appcode = "pay"

[[hosts]]
name = "web-2"
appcode = "shop"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alarms_list_shows_each_instances_state_value_reason_and_since() {
    let dir = temp_dir();
    let server = Server::start_with(dir.path(), &["--no-agent"]).await;
    let tree = dir.path().join("tree.toml");
    std::fs::write(&tree, LIST_TREE).expect("tree file");
    let imported = server.cli(&["app", "import", tree.to_str().expect("path")]);
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    // One definition watching every host (its instances take their hosts' Appcodes), and
    // one whose metric never arrives.
    let mut by_host = alarm(
        "list-cpu",
        "list_cpu",
        json!([{"Name": "host", "Value": "*"}]),
        50.0,
        2,
    );
    by_host
        .as_object_mut()
        .expect("definition")
        .remove("Appcode");
    define(&server, &by_host).await;
    define(
        &server,
        &alarm("list-quiet", "list_never_sent", json!([]), 1.0, 1),
    )
    .await;

    let started_ms = unix_ms();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, list) = server.get("/api/v1/alarms").await;
        let state_of = |host: &str| {
            instances_of(&list, "list-cpu")
                .into_iter()
                .find(|i| i["host"] == host)
                .and_then(|i| i["state"].as_str())
                .map(str::to_string)
        };
        if state_of("web-1").as_deref() == Some("ALARM")
            && state_of("web-2").as_deref() == Some("OK")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "web-1 never reached ALARM with web-2 OK: {list}"
        );
        push_sample(&server, "list_cpu", &[("host", "web-1")], 90.0).await;
        push_sample(&server, "list_cpu", &[("host", "web-2")], 10.0).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listed_ms = unix_ms();

    let (status, list) = server.get("/api/v1/alarms").await;
    assert_eq!(status, 200, "{list}");
    let names: Vec<&str> = list["alarms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["AlarmName"].as_str())
        .filter(|n| n.starts_with("list-"))
        .collect();
    assert_eq!(names, ["list-cpu", "list-quiet"], "{list}");
    assert_eq!(instances_of(&list, "list-quiet").len(), 0, "{list}");
    let instances = instances_of(&list, "list-cpu");
    assert_eq!(instances.len(), 2, "{list}");
    let (web1, web2) = (instances[0], instances[1]);
    assert_eq!(web1["host"], "web-1", "{list}");
    assert_eq!(web2["host"], "web-2", "{list}");

    assert_eq!(web1["state"], "ALARM");
    assert_eq!(web1["value"], 90.0);
    assert_eq!(web1["threshold"], 50.0);
    assert_eq!(web1["appcode"], "pay", "the host's binding: {web1}");
    assert_eq!(web1["restored"], false);
    let reason = web1["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("Threshold Crossed: 2 out of the last 2 datapoints [90.0")
            && reason.contains("were greater than the threshold (50.0)"),
        "{web1}"
    );
    assert_eq!(
        web1["reason_data"]["evaluatedDatapoints"][0]["value"], 90.0,
        "{web1}"
    );
    assert_eq!(web1["reason_data"]["threshold"], 50.0, "{web1}");

    assert_eq!(web2["state"], "OK");
    assert_eq!(web2["value"], 10.0);
    assert_eq!(web2["appcode"], "shop", "{web2}");
    let reason = web2["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("Threshold Crossed: ")
            && reason.contains("[10.0")
            && reason.contains("not greater than the threshold (50.0)"),
        "{web2}"
    );

    for instance in [web1, web2] {
        let since_ms = instance["since_ms"].as_i64().expect("since_ms");
        assert!(
            (started_ms - 1_000..=listed_ms).contains(&since_ms),
            "the change happened while the test ran: {instance}"
        );
        let since = instance["since"].as_str().expect("since");
        let parsed = chrono::DateTime::parse_from_rfc3339(since).expect("since is RFC 3339");
        assert_eq!(parsed.timestamp_millis(), since_ms, "{instance}");
    }

    // Filters keep the matching instances; a state filter leaves out alarms with none.
    let hosts_in = |list: &Value, alarm: &str| -> Vec<String> {
        instances_of(list, alarm)
            .iter()
            .filter_map(|i| i["host"].as_str().map(str::to_string))
            .collect()
    };
    let (status, alarming) = server.get("/api/v1/alarms?state=ALARM").await;
    assert_eq!(status, 200, "{alarming}");
    assert_eq!(
        alarming["alarms"].as_array().map(Vec::len),
        Some(1),
        "{alarming}"
    );
    assert_eq!(hosts_in(&alarming, "list-cpu"), ["web-1"]);
    let (_, ok) = server.get("/api/v1/alarms?state=OK").await;
    assert_eq!(ok["alarms"].as_array().map(Vec::len), Some(1), "{ok}");
    assert_eq!(hosts_in(&ok, "list-cpu"), ["web-2"]);
    let (_, no_data) = server.get("/api/v1/alarms?state=INSUFFICIENT_DATA").await;
    assert_eq!(no_data["alarms"], json!([]), "{no_data}");
    let (_, shop) = server.get("/api/v1/alarms?appcode=shop").await;
    assert_eq!(shop["alarms"].as_array().map(Vec::len), Some(1), "{shop}");
    assert_eq!(hosts_in(&shop, "list-cpu"), ["web-2"]);
    let (_, pay_alarming) = server.get("/api/v1/alarms?state=ALARM&appcode=pay").await;
    assert_eq!(hosts_in(&pay_alarming, "list-cpu"), ["web-1"]);
    let (_, shop_alarming) = server.get("/api/v1/alarms?state=ALARM&appcode=shop").await;
    assert_eq!(shop_alarming["alarms"], json!([]), "{shop_alarming}");
    // The alarm's own Appcode lists it even before it has an instance.
    let (_, own) = server.get("/api/v1/alarms?appcode=test_app").await;
    let own_names: Vec<&str> = own["alarms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["AlarmName"].as_str())
        .collect();
    assert_eq!(own_names, ["list-quiet"], "{own}");

    let (status, bad) = server.get("/api/v1/alarms?state=alarm").await;
    assert_eq!(status, 400, "{bad}");
    assert!(
        bad["error"].as_str().is_some_and(|e| e.contains("`alarm`")
            && ["OK", "ALARM", "INSUFFICIENT_DATA"]
                .iter()
                .all(|state| e.contains(&format!("`{state}`")))),
        "{bad}"
    );
    let (status, bad) = server.get("/api/v1/alarms?colour=red").await;
    assert_eq!(status, 400, "{bad}");
    assert!(
        bad["error"].as_str().is_some_and(|e| e.contains("colour")),
        "{bad}"
    );

    // The CLI shows the same, with the state column first.
    let shown = server.cli(&["alarms", "--state", "ALARM"]);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let shown = String::from_utf8_lossy(&shown.stdout).to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert!(
        lines[0].starts_with("STATE") && lines[0].contains("REASON"),
        "{shown}"
    );
    assert_eq!(lines.len(), 2, "one ALARM instance: {shown}");
    for expected in [
        "ALARM",
        "90.00",
        "50.00",
        "list-cpu",
        "web-1",
        "pay",
        "Threshold Crossed: 2 out of",
    ] {
        assert!(lines[1].contains(expected), "{expected} in {shown}");
    }
    let all = server.cli(&["alarms"]);
    let all = String::from_utf8_lossy(&all.stdout).to_string();
    assert!(
        all.lines()
            .any(|l| l.starts_with("OK") && l.contains("web-2") && l.contains("shop")),
        "{all}"
    );
    assert!(
        all.lines()
            .any(|l| l.contains("list-quiet") && l.contains("no series to judge yet")),
        "{all}"
    );
    let refused = server.cli(&["alarms", "--state", "PURPLE"]);
    assert!(!refused.status.success());
    let refused = String::from_utf8_lossy(&refused.stderr).to_string();
    assert!(
        refused.contains("`PURPLE`")
            && ["OK", "ALARM", "INSUFFICIENT_DATA"]
                .iter()
                .all(|state| refused.contains(&format!("`{state}`"))),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_does_not_invent_insufficient_data() {
    let dir = temp_dir();
    let config = dir.path().join("vigil.toml");
    // Any INSUFFICIENT_DATA from vigil's own alarms opens an incident, so none may appear.
    std::fs::write(
        &config,
        r#"
[[rules]]
name = "watch-no-data"
pattern = '{"source": ["vigil.alarms"], "detail": {"state": {"value": ["INSUFFICIENT_DATA"]}, "previousState": {"value": ["OK", "ALARM"]}}}'
playbook = "respond"
"#,
    )
    .expect("config");
    let data = dir.path().join("data");
    let args = ["--no-agent", "--config", config.to_str().expect("path")];
    let mut server = Server::start_with(&data, &args).await;
    define(
        &server,
        &alarm("restart-high", "restart.high", json!([]), 50.0, 3),
    )
    .await;
    define(
        &server,
        &alarm("restart-low", "restart.low", json!([]), 50.0, 3),
    )
    .await;
    let high = Arc::new(AtomicU64::new(90f64.to_bits()));
    let low = Arc::new(AtomicU64::new(10f64.to_bits()));
    let run = Arc::new(AtomicBool::new(true));
    let senders = [
        graphite_sender(
            data.join("graphite.addr"),
            "restart.high",
            high,
            run.clone(),
        ),
        graphite_sender(data.join("graphite.addr"), "restart.low", low, run.clone()),
    ];
    wait_state(&server, "restart-high", "ALARM", Duration::from_secs(20)).await;
    wait_state(&server, "restart-low", "OK", Duration::from_secs(20)).await;

    let (_, list) = server.get("/api/v1/alarms").await;
    let before_restart = instances_of(&list, "restart-high")[0].clone();
    server.kill();
    let _ = std::fs::remove_file(data.join("graphite.addr"));
    let server = Server::start_with(&data, &args).await;
    // Watch for two full windows after the restart while data resumes.
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        for alarm in ["restart-high", "restart-low"] {
            let state = instance_state(&server, alarm).await;
            assert_ne!(
                state.as_deref(),
                Some("INSUFFICIENT_DATA"),
                "{alarm} went INSUFFICIENT_DATA after the restart"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        instance_state(&server, "restart-high").await.as_deref(),
        Some("ALARM")
    );
    // No change since the restart: the reason and its time are the ones saved before it.
    let (_, list) = server.get("/api/v1/alarms").await;
    let high = instances_of(&list, "restart-high")[0].clone();
    assert_eq!(high["since_ms"], before_restart["since_ms"], "{high}");
    assert_eq!(high["reason"], before_restart["reason"], "{high}");
    assert!(
        high["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("Threshold Crossed: 3 out of the last 3 datapoints")),
        "{high}"
    );
    assert_eq!(
        instance_state(&server, "restart-low").await.as_deref(),
        Some("OK")
    );
    let incidents = server.incidents().await;
    assert!(
        !incidents.iter().any(|i| i["state"] == "INSUFFICIENT_DATA"),
        "no INSUFFICIENT_DATA event after the restart: {incidents:?}"
    );
    // The one ALARM incident from before the restart is still the only one for it.
    assert_eq!(
        incidents
            .iter()
            .filter(|i| i["alarm_name"] == "restart-high")
            .count(),
        1,
        "{incidents:?}"
    );
    run.store(false, Ordering::SeqCst);
    for sender in senders {
        sender.join().expect("sender");
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_agent_and_a_cpu_burner_open_and_resolve_an_incident() {
    let dir = temp_dir();
    let server = Server::start_with(dir.path(), &["--no-agent"]).await;
    let token = server.cli_last_line(&["host", "add", "burner-host"]);
    let log = std::fs::File::create(dir.path().join("agent.log")).expect("log");
    let _agent = Killed(
        Command::new(VIGIL)
            .args([
                "agent",
                "--server",
                &server.url,
                "--token",
                &token,
                "--name",
                "burner-host",
                "--interval",
                "1",
            ])
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("agent"),
    );
    let mut definition = alarm(
        "burner CPU",
        "CPUUtilization",
        json!([{"Name": "host", "Value": "burner-host"}]),
        85.0,
        2,
    );
    definition["Statistic"] = json!("Average");
    definition["Period"] = json!(2);
    define(&server, &definition).await;
    wait_state(&server, "burner CPU", "OK", Duration::from_secs(60)).await;

    // One burner per core.
    let burners: Vec<Killed> = (0..2)
        .map(|_| {
            Killed(
                Command::new("/usr/bin/yes")
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("burner"),
            )
        })
        .collect();
    wait_state(&server, "burner CPU", "ALARM", Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let diagnostics = loop {
        let incidents = server.incidents().await;
        let key = incidents
            .iter()
            .find(|i| i["alarm_name"] == "burner CPU" && i["status"] == "open")
            .and_then(|i| i["key"].as_str().map(str::to_string));
        if let Some(key) = key {
            let (_, incident) = server.get(&format!("/api/v1/incidents/{key}")).await;
            let found = incident["timeline"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["kind"] == "diagnostics")
                .cloned();
            if let Some(found) = found {
                break found["message"].as_str().unwrap_or_default().to_string();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no diagnostics on the burner incident: {incidents:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        diagnostics.starts_with("top_cpu on burner-host"),
        "{diagnostics}"
    );
    let pids: Vec<String> = burners.iter().map(|b| b.0.id().to_string()).collect();
    let top_rows: Vec<&str> = diagnostics
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|f| f.parse::<u32>().is_ok())
        })
        .take(4)
        .collect();
    assert!(
        top_rows.iter().any(|row| pids
            .iter()
            .any(|pid| row.split_whitespace().nth(1) == Some(pid.as_str()))),
        "a burner ({pids:?}) among the first rows:\n{diagnostics}"
    );
    drop(burners);
    wait_state(&server, "burner CPU", "OK", Duration::from_secs(60)).await;
    server
        .wait_for_incidents("the burner incident resolved", |all| {
            all.iter()
                .any(|i| i["alarm_name"] == "burner CPU" && i["status"] == "resolved")
        })
        .await;
}
