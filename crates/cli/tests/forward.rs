//! Forwarding to a time-series database, against a real Prometheus (Debian's `prometheus`,
//! with its remote_write receiver on): every sample vigil accepted arrives once, samples
//! vigil refused do not, and charts read their history from Prometheus' query API when
//! `query_url` is set, falling back to vigil's own when it does not answer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::{temp_dir, Server};
use serde_json::Value;
use vigil_ingest::MetricPoint;

const MINUTE_MS: i64 = 60_000;
/// Minutes of history sent: within the hour Prometheus' head takes samples for.
const MINUTES: i64 = 30;

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A real Prometheus on a free port, storing in `dir`; stopped when dropped.
struct Prometheus {
    child: Child,
    url: String,
}

impl Prometheus {
    async fn start(dir: &Path) -> Prometheus {
        let binary = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect(
                "the forwarding tests need Prometheus (Debian package `prometheus`); scripts/test installs it",
            );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 1m\n").expect("prometheus.yml");
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        let prometheus = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = http
                .get(format!("{}/-/ready", prometheus.url))
                .send()
                .await
                .is_ok_and(|a| a.status().is_success());
            if ready {
                return prometheus;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus not ready after 30 s: {}",
                std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// An instant query's vector as (labels, value).
    async fn query(&self, query: &str) -> Vec<(Value, f64)> {
        let answer: Value = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", query)])
            .send()
            .await
            .expect("Prometheus answers")
            .json()
            .await
            .expect("JSON");
        assert_eq!(answer["status"], "success", "{answer}");
        answer["data"]["result"]
            .as_array()
            .expect("a vector")
            .iter()
            .map(|r| {
                let value = r["value"][1]
                    .as_str()
                    .expect("value")
                    .parse()
                    .expect("number");
                (r["metric"].clone(), value)
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &Path, forward: &str) -> std::path::PathBuf {
    let path = dir.join("vigil.toml");
    std::fs::write(
        &path,
        format!(
            "[metrics]\ngraphite_listen = \"127.0.0.1:0\"\n\n[metrics.series_caps]\nremote_write = 3\n\n[metrics.forward]\n{forward}\n"
        ),
    )
    .expect("config");
    path
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

/// Two samples a minute for the last `MINUTES` minutes: value `base + minute` at the
/// minute's start and `base + minute + 0.5` 30 s in.
fn history(name: &str, host: &str, base: f64, newest: i64) -> Vec<MetricPoint> {
    (0..MINUTES)
        .flat_map(|m| {
            let minute = newest - (MINUTES - 1 - m) * MINUTE_MS;
            [(0, 0.0), (30_000, 0.5)].map(|(offset, extra)| MetricPoint {
                name: name.into(),
                labels: [("host".to_string(), host.to_string())].into(),
                value: base + m as f64 + extra,
                timestamp_ms: minute + offset,
            })
        })
        .collect()
}

async fn wait_sent(server: &Server, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = server
            .http
            .get(format!("{}/metrics", server.url))
            .bearer_auth(&server.token)
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .unwrap_or_default();
        let sent = text
            .lines()
            .find_map(|l| l.strip_prefix("vigil_forward_samples_total{outcome=\"sent\"} "))
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0);
        if sent >= want {
            assert_eq!(sent, want, "each accepted sample is sent once");
            assert!(
                !text.contains("outcome=\"dropped\"") && !text.contains("outcome=\"refused\""),
                "{text}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sent} of {want} samples forwarded after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn series(server: &Server, name: &str) -> Value {
    let (status, body) = server.get(&format!("/api/v1/series?name={name}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The minute rollups each series must show: min, max, count and sum of its two samples.
fn assert_history(body: &Value, hosts: &[(&str, f64)], newest: i64) {
    for (host, base) in hosts {
        let series = body["series"]
            .as_array()
            .expect("series")
            .iter()
            .find(|s| s["labels"]["host"] == *host)
            .unwrap_or_else(|| panic!("no series for {host}: {body}"));
        let rollups = series["rollups"].as_array().expect("rollups");
        assert_eq!(rollups.len(), MINUTES as usize, "{host}: {rollups:?}");
        for (m, rollup) in rollups.iter().enumerate() {
            let low = base + m as f64;
            assert_eq!(
                rollup["minute_ms"].as_i64(),
                Some(newest - (MINUTES - 1 - m as i64) * MINUTE_MS),
                "{host}: {rollup}"
            );
            assert_eq!(rollup["count"], 2, "{host}: {rollup}");
            assert_eq!(rollup["min"].as_f64(), Some(low), "{host}: {rollup}");
            assert_eq!(rollup["max"].as_f64(), Some(low + 0.5), "{host}: {rollup}");
            assert_eq!(
                rollup["sum"].as_f64(),
                Some(2.0 * low + 0.5),
                "{host}: {rollup}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_sample_reaches_prometheus_once_and_charts_read_it_back() {
    let dir = temp_dir();
    let prometheus = Prometheus::start(dir.path()).await;
    let forward = format!(
        "remote_write_url = \"{0}/api/v1/write\"\nquery_url = \"{0}\"\nbatch_samples = 50",
        prometheus.url
    );
    let config = config(dir.path(), &forward);
    let data = dir.path().join("data");
    let args = ["--no-agent", "--config", config.to_str().expect("path")];
    let server = Server::start_with(&data, &args).await;

    let now = unix_ms();
    let newest = now - now % MINUTE_MS - MINUTE_MS;
    let hosts = [("web-01", 10.0), ("web-02", 100.0), ("web-03", 1000.0)];
    let mut points: Vec<MetricPoint> = hosts
        .iter()
        .flat_map(|(host, base)| history("fwd_load", host, *base, newest))
        .collect();
    // Refused by vigil, so never forwarded: a point from two days ago.
    let mut stale = history("fwd_load", "web-01", 0.0, newest)[0].clone();
    stale.timestamp_ms -= 48 * 3600 * 1000;
    points.push(stale);
    let (status, answer) = remote_write(&server, &points).await;
    assert_eq!(status, 202, "{answer}");
    let answer: Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(answer["accepted"], 3 * 2 * MINUTES, "{answer}");
    assert_eq!(answer["rejected"], 1, "{answer}");

    // A fourth remote_write series is over the cap of 3: the request is answered 400, the
    // known series' points in it are kept, and forwarded; the new series' are not.
    let next = newest + MINUTE_MS;
    let known = MetricPoint {
        name: "fwd_load".into(),
        labels: [("host".to_string(), "web-01".to_string())].into(),
        value: 10.0 + MINUTES as f64,
        timestamp_ms: next,
    };
    let over = MetricPoint {
        labels: [("host".to_string(), "web-04".to_string())].into(),
        ..known.clone()
    };
    let (status, answer) = remote_write(&server, &[known, over]).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("remote_write"), "{answer}");

    // Graphite lines are forwarded too.
    let addr = std::fs::read_to_string(data.join("graphite.addr")).expect("graphite.addr");
    let mut socket = std::net::TcpStream::connect(addr.trim()).expect("graphite listener");
    let lines: String = (0..MINUTES)
        .map(|m| {
            let at = newest - (MINUTES - 1 - m) * MINUTE_MS;
            format!("fwd_graphite;host=db-01 {} {}\n", 5.0 + m as f64, at / 1000)
        })
        .collect();
    socket.write_all(lines.as_bytes()).expect("graphite lines");
    drop(socket);

    let accepted = 3 * 2 * MINUTES + 1 + MINUTES;
    wait_sent(&server, accepted).await;
    let counts = prometheus
        .query("count_over_time({host=~\".+\"}[2h])")
        .await;
    let count_of = |host: &str| {
        counts
            .iter()
            .find(|(labels, _)| labels["host"] == host)
            .map(|(_, n)| *n)
    };
    assert_eq!(
        count_of("web-01"),
        Some((2 * MINUTES + 1) as f64),
        "{counts:?}"
    );
    assert_eq!(count_of("web-02"), Some((2 * MINUTES) as f64), "{counts:?}");
    assert_eq!(count_of("web-03"), Some((2 * MINUTES) as f64), "{counts:?}");
    assert_eq!(count_of("db-01"), Some(MINUTES as f64), "{counts:?}");
    assert_eq!(
        count_of("web-04"),
        None,
        "a refused series is not forwarded: {counts:?}"
    );

    // Charts come from the query API; a second vigil that never saw the samples, with only
    // `query_url`, charts the same history.
    let body = series(&server, "fwd_load").await;
    assert_eq!(body["history_source"], "query_api", "{body}");
    assert_history(&without_minute(&body, next), &hosts, newest);

    let other_dir = temp_dir();
    let other_config = other_dir.path().join("vigil.toml");
    std::fs::write(
        &other_config,
        format!(
            "[metrics]\ngraphite_listen = \"\"\n\n[metrics.forward]\nquery_url = \"{}\"\n",
            prometheus.url
        ),
    )
    .expect("config");
    let other = Server::start_with(
        &other_dir.path().join("data"),
        &[
            "--no-agent",
            "--config",
            other_config.to_str().expect("path"),
        ],
    )
    .await;
    let charted = series(&other, "fwd_load").await;
    assert_eq!(charted["history_source"], "query_api", "{charted}");
    assert_eq!(
        charted["series"].as_array().map(Vec::len),
        Some(3),
        "{charted}"
    );
    assert_history(&without_minute(&charted, next), &hosts, newest);
    let graphite = series(&other, "fwd_graphite").await;
    assert_eq!(
        graphite["series"][0]["rollups"].as_array().map(Vec::len),
        Some(MINUTES as usize),
        "{graphite}"
    );

    // Prometheus gone: the charts fall back to vigil's own history and say why.
    drop(prometheus);
    let body = series(&server, "fwd_load").await;
    assert_eq!(body["history_source"], "local", "{body}");
    assert!(
        body["history_error"]
            .as_str()
            .is_some_and(|e| e.contains("did not answer")),
        "{body}"
    );
    assert_history(&without_minute(&body, next), &hosts, newest);
    let (_, unknown) = other.get("/api/v1/series?name=fwd_load").await;
    assert_eq!(unknown["series"], Value::Array(Vec::new()), "{unknown}");
}

/// The series without the minute the over-cap request added to web-01.
fn without_minute(body: &Value, minute_ms: i64) -> Value {
    let mut body = body.clone();
    for s in body["series"].as_array_mut().expect("series") {
        let rollups = s["rollups"].as_array_mut().expect("rollups");
        rollups.retain(|r| r["minute_ms"].as_i64() != Some(minute_ms));
    }
    body
}
