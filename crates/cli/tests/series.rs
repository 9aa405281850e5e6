//! Series from outside: charts that survive a restart, and caps that refuse new series
//! with an answer naming the cap. The real binary on a free port, real Graphite and
//! remote_write senders.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use common::{temp_dir, Server};
use serde_json::{json, Value};
use vigil_ingest::MetricPoint;

const MINUTE_MS: i64 = 60_000;

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One Graphite line a minute for the last `minutes` minutes, values 10.5, 11.5, …
fn send_history(server: &Server, name: &str, host: &str, minutes: i64) -> i64 {
    let addr = std::fs::read_to_string(server.data.join("graphite.addr")).expect("graphite.addr");
    let mut socket = std::net::TcpStream::connect(addr.trim()).expect("graphite listener");
    let now = unix_ms();
    let newest = now - now % MINUTE_MS;
    let mut lines = String::new();
    for m in 0..minutes {
        let at = newest - (minutes - 1 - m) * MINUTE_MS;
        lines.push_str(&format!(
            "{name};host={host} {} {}\n",
            10.5 + m as f64,
            at / 1000
        ));
    }
    socket.write_all(lines.as_bytes()).expect("send lines");
    newest
}

async fn rollups(server: &Server, name: &str) -> Vec<Value> {
    let (status, body) = server.get(&format!("/api/v1/series?name={name}")).await;
    assert_eq!(status, 200, "{body}");
    body["series"][0]["rollups"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn wait_rollups(server: &Server, name: &str, want: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = rollups(server, name).await;
        if got.len() >= want || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn config(dir: &std::path::Path, metrics: &str) -> std::path::PathBuf {
    let path = dir.join("vigil.toml");
    std::fs::write(
        &path,
        format!("[metrics]\ngraphite_listen = \"127.0.0.1:0\"\n{metrics}\n"),
    )
    .expect("config");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charts_keep_their_history_across_a_restart() {
    let dir = temp_dir();
    // Saved only at shutdown: an hour between saves is longer than the test.
    let config = config(dir.path(), "history_save_secs = 3600");
    let data = dir.path().join("data");
    let args = ["--no-agent", "--config", config.to_str().expect("path")];
    let mut server = Server::start_with(&data, &args).await;
    send_history(&server, "kept.load", "h1", 90);
    let before = wait_rollups(&server, "kept.load", 90).await;
    assert_eq!(before.len(), 90, "{before:?}");
    assert_eq!(before[0]["min"], 10.5);

    let (_, ended) = server
        .terminate(Duration::from_secs(20))
        .expect("vigil stops on SIGTERM");
    assert!(ended.success(), "{ended}");
    let _ = std::fs::remove_file(data.join("graphite.addr"));
    let server = Server::start_with(&data, &args).await;
    let after = wait_rollups(&server, "kept.load", 90).await;
    assert_eq!(
        after, before,
        "the series posted before the restart shows its earlier points after it"
    );
    let (_, body) = server.get("/api/v1/series?name=kept.load").await;
    assert_eq!(body["series"][0]["labels"]["host"], "h1");

    // It reports again: the new minute joins the old ones.
    let newest = send_history(&server, "kept.load", "h1", 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = rollups(&server, "kept.load").await;
        if now.last().and_then(|r| r["minute_ms"].as_i64()) == Some(newest) && now.len() >= 90 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new point not in the chart: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loses_at_most_the_charts_since_the_last_save() {
    let dir = temp_dir();
    let config = config(dir.path(), "history_save_secs = 1");
    let data = dir.path().join("data");
    let args = ["--no-agent", "--config", config.to_str().expect("path")];
    let mut server = Server::start_with(&data, &args).await;
    send_history(&server, "crash.load", "h1", 30);
    assert_eq!(wait_rollups(&server, "crash.load", 30).await.len(), 30);
    // Two saves' time, then SIGKILL: no shutdown path runs.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server
        .metric("vigil_history_blocks_saved")
        .await
        .unwrap_or(0)
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "no periodic save of the chart history"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.kill();
    let _ = std::fs::remove_file(data.join("graphite.addr"));
    let server = Server::start_with(&data, &args).await;
    assert_eq!(wait_rollups(&server, "crash.load", 30).await.len(), 30);
}

async fn remote_write(server: &Server, points: &[MetricPoint]) -> (u16, String) {
    let answer = server
        .http
        .post(format!("{}/api/v1/write", server.url))
        .bearer_auth(&server.token)
        .header("content-encoding", "snappy")
        .header("content-type", "application/x-protobuf")
        .body(vigil_ingest::remote_write::encode(points))
        .send()
        .await
        .expect("remote_write");
    (
        answer.status().as_u16(),
        answer.text().await.unwrap_or_default(),
    )
}

fn point(name: &str, host: &str, value: f64) -> MetricPoint {
    MetricPoint {
        name: name.into(),
        labels: BTreeMap::from([("host".to_string(), host.to_string())]),
        value,
        timestamp_ms: unix_ms(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_caps_refuse_new_series_naming_the_cap_and_series_top_shows_where_they_are() {
    let dir = temp_dir();
    let config = config(
        dir.path(),
        "[metrics.series_caps]\nremote_write = 3\nper_appcode = 2\n",
    );
    let data = dir.path().join("data");
    let server = Server::start_with(
        &data,
        &["--no-agent", "--config", config.to_str().expect("path")],
    )
    .await;

    // remote_write: three series fit, the fourth is refused; known series still go in.
    let (status, body) = remote_write(
        &server,
        &[
            point("net_bytes", "a", 1.0),
            point("net_bytes", "b", 1.0),
            point("net_bytes", "c", 1.0),
        ],
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = remote_write(
        &server,
        &[point("net_bytes", "a", 2.0), point("net_bytes", "d", 1.0)],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("metrics.series_caps.remote_write") && body.contains("1 samples kept"),
        "{body}"
    );
    let (_, series) = server.get("/api/v1/series?name=net_bytes&host=a").await;
    let points = series["series"][0]["rollups"].as_array().unwrap();
    assert_eq!(
        points
            .iter()
            .map(|r| r["count"].as_u64().unwrap())
            .sum::<u64>(),
        2,
        "the known series' point was kept: {series}"
    );
    let (_, none) = server.get("/api/v1/series?name=net_bytes&host=d").await;
    assert_eq!(none["series"], json!([]));

    // An agent whose host belongs to a capped Appcode: its third series is refused, and
    // the agent is told which cap.
    let (status, body) = server
        .post(
            "/api/v1/apps",
            json!({"appcode": "pay", "name": "Payments", "kind": "application"}).to_string(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, enrolled) = server
        .post(
            "/api/v1/hosts",
            json!({"name": "pay-1", "appcode": "pay"}).to_string(),
        )
        .await;
    assert_eq!(status, 201, "{enrolled}");
    let host_token = enrolled["token"].as_str().unwrap();
    let samples = |names: &[&str]| {
        json!({"samples": names.iter().map(|n| json!({
            "name": n, "value": 1.0, "timestamp_ms": unix_ms()
        })).collect::<Vec<_>>()})
    };
    let answer = server
        .http
        .post(format!("{}/api/v1/agent/metrics", server.url))
        .bearer_auth(host_token)
        .json(&samples(&["cpu", "mem", "disk"]))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 400);
    let text = answer.text().await.unwrap();
    assert!(
        text.contains("Appcode pay") && text.contains("metrics.series_caps.per_appcode"),
        "{text}"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    while server
        .metric("vigil_series_over_cap_total{cap=\"appcode\"}")
        .await
        != Some(1)
    {
        assert!(Instant::now() < deadline, "over-cap not counted per cap");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        server
            .metric("vigil_series_over_cap_total{cap=\"remote_write\"}")
            .await,
        Some(1)
    );

    // `vigil series top`: where the series are.
    let (status, top) = server.get("/api/v1/series/top").await;
    assert_eq!(status, 200, "{top}");
    assert_eq!(top["total"], 5);
    assert_eq!(top["metrics"][0]["name"], "net_bytes");
    assert_eq!(top["metrics"][0]["series"], 3);
    assert_eq!(top["appcodes"][0]["appcode"], "pay");
    assert_eq!(top["appcodes"][0]["series"], 2);
    let output = server.cli(&["series", "top"]);
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("5 series of at most 1000000"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("remote_write") && l.contains(" 3 ") && l.ends_with(" 3")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("pay") && l.contains(" 2 ") && l.ends_with(" 2")),
        "{text}"
    );
}
