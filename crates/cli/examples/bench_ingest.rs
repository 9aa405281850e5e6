//! Load generator for `scripts/bench-ingest`: unique CloudWatch alarm events posted to a
//! running vigil, one event per request, back to back, from N concurrent senders.
//!
//! ```text
//! cargo run --release -p vigil --example bench_ingest -- \
//!     --url http://127.0.0.1:PORT --token-file DATA/admin.token \
//!     --fixture ../shared/fixtures/events/cloudwatch-alarm-ok-to-alarm.json \
//!     --concurrency 16 --seconds 20
//! ```
//!
//! Every event gets a fresh `id`. With `--mode distinct` (the default) each also gets its own
//! alarm name, so each opens an incident (an alarm storm); with `--mode repeat` they all
//! name one alarm, so all but the first are repeats of one incident. `--batch N` sends N
//! events per request (as EventBridge and Alertmanager batch). Prints requests, errors
//! (non-2xx or no answer), events/s accepted, request latency p50/p99/p99.9/max; then what
//! processing did, from `GET /api/v1/status` sampled every 100 ms until nothing waits (at
//! most `--lag-limit` seconds after sending stops): events/s processed and incidents/s
//! opened from start to the end of the backlog, the peak backlog, and the lag of the
//! oldest waiting event at p50/p99/max over the samples. A benchmark: it reports figures
//! and judges nothing.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::Value;

/// Stands in for the event id and the alarm name in the serialized template.
const ID_MARK: &str = "__BENCH_EVENT_ID__";
const ALARM_MARK: &str = "__BENCH_ALARM_NAME__";
/// How often the processing lag is polled.
const LAG_POLL: Duration = Duration::from_millis(20);
/// A request unanswered for this long counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Parser)]
struct Args {
    /// The server, on loopback: http://127.0.0.1:PORT
    #[arg(long)]
    url: String,
    /// File holding the admin token (DATA/admin.token)
    #[arg(long)]
    token_file: PathBuf,
    /// CloudWatch alarm event used as the template
    #[arg(long)]
    fixture: PathBuf,
    /// Concurrent senders, each with one request in flight
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// How long to send, in seconds
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Prefix making this run's event ids unique (several phases share one server)
    #[arg(long, default_value = "bench")]
    run: String,
    /// Give up waiting for the last event to be processed after this many seconds
    #[arg(long, default_value_t = 120)]
    lag_limit: u64,
    /// Upper bound on requests, whatever the duration
    #[arg(long, default_value_t = 20_000_000)]
    max_requests: u64,
    /// distinct: a new alarm per event (each opens an incident); repeat: one alarm for all
    #[arg(long, value_enum, default_value_t = Mode::Distinct)]
    mode: Mode,
    /// Events per request (an array body when more than one)
    #[arg(long, default_value_t = 1)]
    batch: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    Distinct,
    Repeat,
}

/// What `GET /api/v1/status` said over the run.
#[derive(Default)]
struct Samples {
    /// The oldest waiting event's age at each sample, in milliseconds.
    lags_ms: Vec<u64>,
    peak_backlog: u64,
    /// When the backlog was last seen empty after sending stopped.
    drained: Option<Instant>,
}

#[derive(Default)]
struct SenderReport {
    /// Latency of every answered request, in microseconds.
    latencies_us: Vec<u64>,
    requests: u64,
    accepted: u64,
    rejected: u64,
    failed: u64,
    first_error: Option<String>,
    /// The last event this sender had accepted, and when the answer came.
    last_accepted: Option<(Instant, String)>,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let url = args.url.trim_end_matches('/').to_string();
    if !(url.starts_with("http://127.0.0.1:") || url.starts_with("http://[::1]:")) {
        return Err(
            format!("--url must be a loopback address (http://127.0.0.1:PORT), not {url}").into(),
        );
    }
    if args.concurrency == 0 || args.concurrency > 1024 {
        return Err("--concurrency must be between 1 and 1024".into());
    }
    if args.batch == 0 || args.batch > 1000 {
        return Err(
            "--batch must be between 1 and 1000 (vigil takes at most 1000 per request)".into(),
        );
    }
    let token = std::fs::read_to_string(&args.token_file)?
        .trim()
        .to_string();
    let template = Arc::new(template(&args.fixture)?);
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(args.concurrency)
        .no_proxy()
        .build()?;

    let opened_before = metric(&http, &url, &token, "vigil_incidents_opened_total").await;
    let started = Instant::now();
    let end = started + Duration::from_secs(args.seconds);
    let sending = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (http, url, token, sending) =
            (http.clone(), url.clone(), token.clone(), sending.clone());
        let limit = Duration::from_secs(args.lag_limit);
        tokio::spawn(async move { sample_status(&http, &url, &token, &sending, limit).await })
    };
    let issued = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::with_capacity(args.concurrency);
    for sender in 0..args.concurrency {
        let http = http.clone();
        let endpoint = format!("{url}/api/v1/events");
        let token = token.clone();
        let template = template.clone();
        let issued = issued.clone();
        let prefix = format!("{}-s{sender}", args.run);
        let max_requests = args.max_requests;
        let (mode, batch) = (args.mode, args.batch);
        senders.push(tokio::spawn(async move {
            let mut report = SenderReport::default();
            let mut n = 0u64;
            while Instant::now() < end && issued.fetch_add(1, Ordering::Relaxed) < max_requests {
                let mut events = Vec::with_capacity(batch);
                let mut id = String::new();
                for _ in 0..batch {
                    id = format!("{prefix}-{n}");
                    n += 1;
                    let alarm = match mode {
                        Mode::Distinct => id.as_str(),
                        Mode::Repeat => "bench repeat storm",
                    };
                    events.push(template.replace(ID_MARK, &id).replace(ALARM_MARK, alarm));
                }
                let body = if batch == 1 {
                    events.remove(0)
                } else {
                    format!("[{}]", events.join(","))
                };
                let sent = Instant::now();
                report.requests += 1;
                let answer = http
                    .post(&endpoint)
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match answer {
                    Ok(answer) => {
                        let status = answer.status();
                        let text = answer.text().await.unwrap_or_default();
                        let done = Instant::now();
                        report
                            .latencies_us
                            .push(done.duration_since(sent).as_micros() as u64);
                        if status.is_success() {
                            report.accepted += batch as u64;
                            report.last_accepted = Some((done, id));
                        } else {
                            report.rejected += 1;
                            report
                                .first_error
                                .get_or_insert_with(|| format!("{status}: {text}"));
                        }
                    }
                    Err(e) => {
                        report.failed += 1;
                        report.first_error.get_or_insert_with(|| e.to_string());
                        // Do not spin on a server that is gone.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            report
        }));
    }
    let mut total = SenderReport::default();
    for sender in senders {
        let report = sender.await?;
        total.latencies_us.extend(report.latencies_us);
        total.requests += report.requests;
        total.accepted += report.accepted;
        total.rejected += report.rejected;
        total.failed += report.failed;
        if total.first_error.is_none() {
            total.first_error = report.first_error;
        }
        if report.last_accepted.as_ref().map(|l| l.0) > total.last_accepted.as_ref().map(|l| l.0) {
            total.last_accepted = report.last_accepted;
        }
    }
    let elapsed = started.elapsed();
    sending.store(false, Ordering::SeqCst);
    let samples = sampler.await?;
    let opened = metric(&http, &url, &token, "vigil_incidents_opened_total").await - opened_before;

    let requests = total.requests;
    let errors = total.rejected + total.failed;
    total.latencies_us.sort_unstable();
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "concurrency {:>3}: {requests} requests of {} events, {errors} errors ({} non-2xx, {} unanswered), {:.0} events/s accepted over {:.1} s",
        args.concurrency,
        args.batch,
        total.rejected,
        total.failed,
        total.accepted as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
    );
    if !total.latencies_us.is_empty() {
        println!(
            "    latency ms: p50 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
            ms(percentile(&total.latencies_us, 0.50)),
            ms(percentile(&total.latencies_us, 0.99)),
            ms(percentile(&total.latencies_us, 0.999)),
            ms(*total.latencies_us.last().unwrap_or(&0)),
        );
    }
    if let Some(error) = &total.first_error {
        println!("    first error: {}", one_line(error, 300));
    }
    match samples.drained {
        Some(drained) => {
            let took = drained.duration_since(started).as_secs_f64();
            println!(
                "    processing: {} events in {took:.1} s ({:.0} events/s), {opened} incidents opened ({:.0}/s), peak backlog {}",
                total.accepted,
                total.accepted as f64 / took,
                opened as f64 / took,
                samples.peak_backlog,
            );
        }
        None => println!(
            "    processing: still behind {} s after sending stopped; {opened} incidents opened, peak backlog {}",
            args.lag_limit, samples.peak_backlog
        ),
    }
    let mut lags = samples.lags_ms;
    lags.sort_unstable();
    if !lags.is_empty() {
        println!(
            "    lag of the oldest waiting event, over {} samples: p50 {:.1} s  p99 {:.1} s  max {:.1} s",
            lags.len(),
            percentile(&lags, 0.50) as f64 / 1000.0,
            percentile(&lags, 0.99) as f64 / 1000.0,
            *lags.last().unwrap_or(&0) as f64 / 1000.0,
        );
    }
    match total.last_accepted {
        Some((accepted_at, id)) => {
            let limit = Duration::from_secs(args.lag_limit);
            match processed_after(&http, &url, &token, &id, accepted_at, limit).await {
                Ok(lag) => println!(
                    "    processing lag: {:.0} ms (last accepted event {id} processed)",
                    lag.as_secs_f64() * 1000.0
                ),
                Err(why) => println!("    processing lag: {why}"),
            }
        }
        None => println!("    processing lag: no event was accepted"),
    }
    Ok(())
}

/// Polls `GET /api/v1/status` every 100 ms while sending, then until nothing waits.
async fn sample_status(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    sending: &std::sync::atomic::AtomicBool,
    limit: Duration,
) -> Samples {
    let mut samples = Samples::default();
    let mut stopped: Option<Instant> = None;
    loop {
        let status: Option<Value> = match http
            .get(format!("{url}/api/v1/status"))
            .bearer_auth(token)
            .send()
            .await
        {
            Ok(answer) => answer.json().await.ok(),
            Err(_) => None,
        };
        if let Some(processing) = status.as_ref().map(|s| &s["processing"]) {
            let backlog = processing["backlog"].as_u64().unwrap_or(0);
            samples.peak_backlog = samples.peak_backlog.max(backlog);
            let lag = processing["lag_seconds"].as_f64().unwrap_or(0.0);
            samples.lags_ms.push((lag * 1000.0) as u64);
            if stopped.is_some() && backlog == 0 {
                samples.drained = Some(Instant::now());
                return samples;
            }
        }
        if stopped.is_none() && !sending.load(Ordering::SeqCst) {
            stopped = Some(Instant::now());
        }
        if stopped.is_some_and(|at| at.elapsed() > limit) {
            return samples;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A counter of the server's `/metrics`; 0 when absent.
async fn metric(http: &reqwest::Client, url: &str, token: &str, name: &str) -> u64 {
    let text = match http
        .get(format!("{url}/metrics"))
        .bearer_auth(token)
        .send()
        .await
    {
        Ok(answer) => answer.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

/// The fixture serialized once, with marks where each request's id and alarm name go.
fn template(fixture: &std::path::Path) -> Result<String, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(fixture)
        .map_err(|e| format!("fixture {}: {e}", fixture.display()))?;
    let mut event: Value = serde_json::from_str(&text)?;
    event["id"] = Value::from(ID_MARK);
    let detail = event
        .get_mut("detail")
        .and_then(Value::as_object_mut)
        .ok_or("the fixture has no detail object")?;
    detail.insert("alarmName".into(), Value::from(ALARM_MARK));
    event["resources"] = serde_json::json!([format!(
        "arn:aws:cloudwatch:us-east-1:123456789012:alarm:{ALARM_MARK}"
    )]);
    Ok(serde_json::to_string(&event)?)
}

/// Polls the event until it is processed; the lag counts from when it was accepted.
async fn processed_after(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    id: &str,
    accepted_at: Instant,
    limit: Duration,
) -> Result<Duration, String> {
    let deadline = Instant::now() + limit;
    let mut last_problem = String::new();
    while Instant::now() < deadline {
        let answer = http
            .get(format!("{url}/api/v1/events/{id}"))
            .bearer_auth(token)
            .send()
            .await;
        match answer {
            Ok(answer) if answer.status().is_success() => {
                let record: Value = answer.json().await.map_err(|e| e.to_string())?;
                if record["processed"] == Value::Bool(true) {
                    return Ok(accepted_at.elapsed());
                }
            }
            Ok(answer) => last_problem = format!(" (last answer {})", answer.status()),
            Err(e) => last_problem = format!(" (last error {e})"),
        }
        tokio::time::sleep(LAG_POLL).await;
    }
    Err(format!(
        "event {id} not processed within {} s{last_problem}",
        limit.as_secs()
    ))
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], q: f64) -> u64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c == '\n' { ' ' } else { c })
        .collect();
    flat.chars().take(max).collect()
}
