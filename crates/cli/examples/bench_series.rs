//! Load generator for `scripts/bench-series`: metric series sent to a running vigil through
//! one of its real ingest paths, as fast as it takes them.
//!
//! ```text
//! cargo run --release -p vigil --example bench_series -- \
//!     --url http://127.0.0.1:PORT --token-file DATA/admin.token \
//!     --source remote_write --series 1000000 --minutes 1
//! ```
//!
//! Series `i` is `bench_metric_{i % metrics}{host="host-{i / metrics}"}`: a few metric names,
//! many hosts, as fleets look. `--minutes M` sends M one-minute points per series ending
//! now (24 h of history with `--minutes 1440`), one series' minutes together; values follow
//! a documented mix, so compression is measured on data shaped like real metrics:
//!
//! * 60 % noisy gauges with one decimal (CPU %, memory %): a random walk in 0..100,
//!   steps of up to ±5.0;
//! * 20 % slow drifters with two decimals (disk %, temperature): steps of ±0.01;
//! * 20 % counters (bytes, requests): integers growing ~1,234 a minute with jitter.
//!
//! `--source graphite` writes tagged plaintext lines (`name;host=h value ts`) over TCP;
//! `--source agent` enrolls `--hosts` hosts and posts each one's series with its token, as
//! agents do. Prints samples sent, samples/s and errors. A benchmark: it reports figures
//! and judges nothing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use vigil_ingest::MetricPoint;

#[derive(Parser)]
struct Args {
    /// The server, on loopback: http://127.0.0.1:PORT
    #[arg(long)]
    url: String,
    /// File holding the admin token (DATA/admin.token)
    #[arg(long)]
    token_file: PathBuf,
    /// remote_write, graphite or agent
    #[arg(long)]
    source: String,
    /// Graphite listener address (for --source graphite)
    #[arg(long, default_value = "127.0.0.1:2003")]
    graphite: String,
    /// Distinct series
    #[arg(long)]
    series: usize,
    /// One-minute points per series, ending now
    #[arg(long, default_value_t = 1)]
    minutes: usize,
    /// Distinct metric names the series are spread over
    #[arg(long, default_value_t = 50)]
    metrics: usize,
    /// Series numbered from here (to add series to a server that holds some)
    #[arg(long, default_value_t = 0)]
    first: usize,
    /// Metric name prefix
    #[arg(long, default_value = "bench_metric")]
    prefix: String,
    /// Hosts enrolled for --source agent
    #[arg(long, default_value_t = 100)]
    hosts: usize,
    /// Concurrent requests
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
}

const MINUTE_MS: i64 = 60_000;
/// Samples per remote_write request, as Prometheus sends (`max_samples_per_send` is 2,000
/// by default; a backfill sends larger).
const REMOTE_WRITE_SAMPLES: usize = 20_000;
const AGENT_SAMPLES: usize = 10_000;

/// A small deterministic generator, so every run sends the same data.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// In [-1, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// The values of series `i` for `minutes` minutes, per the documented mix.
fn values(i: usize, minutes: usize) -> Vec<f64> {
    let mut rng =
        XorShift(0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
    let kind = i % 10;
    let mut out = Vec::with_capacity(minutes);
    match kind {
        0..=5 => {
            let mut tenths: i64 = 200 + (rng.next() % 600) as i64;
            for _ in 0..minutes {
                tenths = (tenths + (rng.unit() * 50.0) as i64).clamp(0, 1000);
                out.push(tenths as f64 / 10.0);
            }
        }
        6 | 7 => {
            let mut hundredths: i64 = 1000 + (rng.next() % 8000) as i64;
            for _ in 0..minutes {
                hundredths += (rng.next() % 3) as i64 - 1;
                out.push(hundredths as f64 / 100.0);
            }
        }
        _ => {
            let mut count: i64 = (rng.next() % 1_000_000_000) as i64;
            for _ in 0..minutes {
                count += 1_234 + (rng.next() % 41) as i64 - 20;
                out.push(count as f64);
            }
        }
    }
    out
}

fn series_of(args: &Args, i: usize) -> (String, String) {
    (
        format!("{}_{}", args.prefix, i % args.metrics),
        format!("host-{}", i / args.metrics),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let token = std::fs::read_to_string(&args.token_file)?
        .trim()
        .to_string();
    let now_ms = chrono::Utc::now().timestamp_millis();
    // The newest minute is the current one's start: never in the future.
    let last_minute = now_ms - now_ms % MINUTE_MS;
    let first_minute = last_minute - (args.minutes as i64 - 1) * MINUTE_MS;
    let started = Instant::now();
    let (sent, errors) = match args.source.as_str() {
        "remote_write" => remote_write(&args, &token, first_minute).await?,
        "graphite" => graphite(&args, first_minute).await?,
        "agent" => agent(&args, &token, first_minute).await?,
        other => anyhow::bail!("--source {other}: give remote_write, graphite or agent"),
    };
    let took = started.elapsed().as_secs_f64();
    println!(
        "source={} series={} minutes={} samples={} errors={} seconds={:.1} samples/s={:.0}",
        args.source,
        args.series,
        args.minutes,
        sent,
        errors,
        took,
        sent as f64 / took
    );
    Ok(())
}

/// Every sample, series by series, in chunks of at most `chunk` points.
fn chunks(
    args: &Args,
    first_minute: i64,
    chunk: usize,
) -> impl Iterator<Item = Vec<MetricPoint>> + '_ {
    let mut i = args.first;
    let end = args.first + args.series;
    let mut pending: Vec<MetricPoint> = Vec::new();
    std::iter::from_fn(move || {
        while pending.len() < chunk && i < end {
            let (name, host) = series_of(args, i);
            let labels = std::collections::BTreeMap::from([("host".to_string(), host)]);
            for (m, value) in values(i, args.minutes).into_iter().enumerate() {
                pending.push(MetricPoint {
                    name: name.clone(),
                    labels: labels.clone(),
                    value,
                    timestamp_ms: first_minute + m as i64 * MINUTE_MS,
                });
            }
            i += 1;
        }
        if pending.is_empty() {
            return None;
        }
        let take = pending.len().min(chunk);
        let rest = pending.split_off(take);
        Some(std::mem::replace(&mut pending, rest))
    })
}

async fn remote_write(args: &Args, token: &str, first_minute: i64) -> anyhow::Result<(u64, u64)> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let url = format!("{}/api/v1/write", args.url);
    let mut sent = 0u64;
    let mut errors = 0u64;
    let mut in_flight = tokio::task::JoinSet::new();
    for points in chunks(args, first_minute, REMOTE_WRITE_SAMPLES) {
        let body = vigil_ingest::remote_write::encode(&points);
        let count = points.len() as u64;
        let request = http
            .post(&url)
            .bearer_auth(token)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .body(body);
        in_flight.spawn(async move {
            match request.send().await {
                Ok(answer) if answer.status().is_success() => Ok(count),
                Ok(answer) => Err(format!(
                    "{}: {}",
                    answer.status(),
                    answer.text().await.unwrap_or_default()
                )),
                Err(e) => Err(e.to_string()),
            }
        });
        while in_flight.len() >= args.concurrency {
            tally(in_flight.join_next().await, &mut sent, &mut errors);
        }
    }
    while let Some(done) = in_flight.join_next().await {
        tally(Some(done), &mut sent, &mut errors);
    }
    Ok((sent, errors))
}

fn tally(
    done: Option<Result<Result<u64, String>, tokio::task::JoinError>>,
    sent: &mut u64,
    errors: &mut u64,
) {
    match done {
        Some(Ok(Ok(count))) => *sent += count,
        Some(Ok(Err(e))) => {
            if *errors < 5 {
                eprintln!("request failed: {e}");
            }
            *errors += 1;
        }
        Some(Err(e)) => {
            eprintln!("sender failed: {e}");
            *errors += 1;
        }
        None => {}
    }
}

async fn graphite(args: &Args, first_minute: i64) -> anyhow::Result<(u64, u64)> {
    let mut socket = tokio::net::TcpStream::connect(&args.graphite).await?;
    let mut sent = 0u64;
    let mut buffer = Vec::with_capacity(1 << 20);
    for points in chunks(args, first_minute, 10_000) {
        buffer.clear();
        for point in &points {
            let host = point.labels.get("host").map_or("", String::as_str);
            use std::io::Write;
            writeln!(
                buffer,
                "{};host={} {} {}",
                point.name,
                host,
                point.value,
                point.timestamp_ms / 1000
            )?;
        }
        socket.write_all(&buffer).await?;
        sent += points.len() as u64;
    }
    socket.shutdown().await?;
    Ok((sent, 0))
}

async fn agent(args: &Args, token: &str, first_minute: i64) -> anyhow::Result<(u64, u64)> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let mut tokens = Vec::with_capacity(args.hosts);
    for h in 0..args.hosts {
        let answer: Value = http
            .post(format!("{}/api/v1/hosts", args.url))
            .bearer_auth(token)
            .json(&json!({"name": format!("bench-agent-{h}")}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let Some(host_token) = answer["token"].as_str() else {
            anyhow::bail!("enrolling a host answered no token: {answer}");
        };
        tokens.push(host_token.to_string());
    }
    let url = format!("{}/api/v1/agent/metrics", args.url);
    let mut sent = 0u64;
    let mut errors = 0u64;
    let mut in_flight = tokio::task::JoinSet::new();
    // Each agent reports its own series: the series' `host` label becomes a dimension
    // (`n`), the agent adds its own host.
    for (k, points) in chunks(args, first_minute, AGENT_SAMPLES).enumerate() {
        let samples: Vec<Value> = points
            .iter()
            .map(|p| {
                json!({
                    "name": p.name,
                    "value": p.value,
                    "dimensions": {"n": p.labels.get("host")},
                    "timestamp_ms": p.timestamp_ms,
                })
            })
            .collect();
        let count = samples.len() as u64;
        let request = http
            .post(&url)
            .bearer_auth(&tokens[k % tokens.len()])
            .json(&json!({"samples": samples}));
        in_flight.spawn(async move {
            match request.send().await {
                Ok(answer) if answer.status().is_success() => Ok(count),
                Ok(answer) => Err(format!(
                    "{}: {}",
                    answer.status(),
                    answer.text().await.unwrap_or_default()
                )),
                Err(e) => Err(e.to_string()),
            }
        });
        while in_flight.len() >= args.concurrency {
            tally(in_flight.join_next().await, &mut sent, &mut errors);
        }
    }
    while let Some(done) = in_flight.join_next().await {
        tally(Some(done), &mut sent, &mut errors);
    }
    Ok((sent, errors))
}
