//! Forwarding to a time-series database (`[metrics.forward]`): every sample the engine
//! accepted is sent on with Prometheus remote_write, in order, each once; and charts read
//! their history from a Prometheus-compatible query API. vigil stays an alarm engine: the
//! database is where long history lives.
//!
//! Ingest never waits for the database. Accepted samples go to a bounded queue that one
//! task drains in batches; a database that is down or slow fills the queue, and samples
//! beyond it are counted as dropped rather than held without bound.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};
use vigil_history::Rollup;
use vigil_ingest::{remote_write, MetricPoint};

use crate::config::{ConfigError, ForwardConfig};
use crate::metrics::{labels, Metrics};

/// A batch smaller than `batch_samples` is sent after waiting this long for more.
const FLUSH_AFTER: Duration = Duration::from_secs(1);
/// Retries of a failed send wait twice as long each time, up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const TIMEOUT: Duration = Duration::from_secs(30);
/// How far back the charts go.
const HISTORY_MS: i64 = 24 * 3600 * 1000;
const MINUTE_MS: i64 = 60_000;

enum Message {
    Points(Vec<MetricPoint>),
    /// Send everything queued (used at shutdown), then answer.
    Drain(oneshot::Sender<()>),
}

/// The sending side of forwarding: cheap to call from every ingest path.
pub struct Forwarder {
    sender: Option<mpsc::UnboundedSender<Message>>,
    /// Samples offered and not yet sent or given up, held against `capacity`.
    queued: Arc<AtomicUsize>,
    capacity: usize,
    metrics: Arc<Metrics>,
}

/// Why forwarding could not be set up: the operator's to fix in `[metrics.forward]`.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("metrics.forward.{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl From<ForwardError> for ConfigError {
    fn from(e: ForwardError) -> Self {
        ConfigError::Invalid(e.to_string())
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ForwardError {
    ForwardError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Checks that `url` is an absolute http(s) URL. Errors never repeat the URL: it may hold
/// a credential.
fn parse_url(field: &'static str, url: &str) -> Result<Url, ForwardError> {
    let parsed = Url::parse(url).map_err(|e| invalid(field, format!("not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(invalid(
            field,
            "must be an http:// or https:// URL with a host",
        ));
    }
    Ok(parsed)
}

/// The bearer token header both URLs get, from `bearer_token_file`.
fn auth_headers(token_file: Option<&Path>) -> Result<HeaderMap, ForwardError> {
    let mut headers = HeaderMap::new();
    if let Some(path) = token_file {
        let token = std::fs::read_to_string(path).map_err(|e| {
            invalid(
                "bearer_token_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let mut value = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
            .map_err(|_| invalid("bearer_token_file", "the token is not a valid header value"))?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    Ok(headers)
}

fn client(headers: HeaderMap) -> Result<reqwest::Client, ForwardError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(TIMEOUT)
        .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
        .default_headers(headers)
        .build()
        .map_err(|e| invalid("remote_write_url", format!("cannot set up HTTP: {e}")))
}

impl Forwarder {
    /// Forwarding off: `offer` does nothing.
    pub fn disabled(metrics: Arc<Metrics>) -> Self {
        Forwarder {
            sender: None,
            queued: Arc::default(),
            capacity: 0,
            metrics,
        }
    }

    /// Starts the sending task when `remote_write_url` is set.
    pub fn start(config: &ForwardConfig, metrics: Arc<Metrics>) -> Result<Self, ForwardError> {
        let Some(url) = &config.remote_write_url else {
            return Ok(Self::disabled(metrics));
        };
        let url = parse_url("remote_write_url", url)?;
        if config.batch_samples == 0 || config.queue_samples < config.batch_samples {
            return Err(invalid(
                "batch_samples",
                "must be at least 1 and at most queue_samples",
            ));
        }
        let mut headers = auth_headers(config.bearer_token_file.as_deref())?;
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("snappy"));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        headers.insert(
            "X-Prometheus-Remote-Write-Version",
            HeaderValue::from_static("0.1.0"),
        );
        let (sender, receiver) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let sending = Sending {
            client: client(headers)?,
            origin: url.origin().ascii_serialization(),
            url,
            batch: config.batch_samples,
            queued: queued.clone(),
            metrics: metrics.clone(),
        };
        tokio::spawn(sending.run(receiver));
        tracing::info!(to = %sending_origin(config), "forwarding samples with remote_write");
        Ok(Forwarder {
            sender: Some(sender),
            queued,
            capacity: config.queue_samples,
            metrics,
        })
    }

    /// Queues accepted samples for the database; drops (and counts) them when the queue is
    /// full. Never waits.
    pub fn offer(&self, points: &[MetricPoint]) {
        let Some(sender) = &self.sender else {
            return;
        };
        if points.is_empty() {
            return;
        }
        let n = points.len();
        let room = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued + n <= self.capacity).then_some(queued + n)
            });
        if room.is_err() || sender.send(Message::Points(points.to_vec())).is_err() {
            if room.is_ok() {
                self.queued.fetch_sub(n, Ordering::AcqRel);
            }
            self.metrics.add(
                "vigil_forward_samples_total",
                labels(&[("outcome", "dropped")]),
                n as u64,
            );
        }
    }

    /// Sends what is queued, waiting at most `limit` (at shutdown).
    pub async fn drain(&self, limit: Duration) {
        let Some(sender) = &self.sender else {
            return;
        };
        let (done, wait) = oneshot::channel();
        if sender.send(Message::Drain(done)).is_err() {
            return;
        }
        let queued = self.queued.load(Ordering::Acquire);
        match tokio::time::timeout(limit, wait).await {
            Ok(_) => tracing::info!(samples = queued, "forwarded the queued samples"),
            Err(_) => tracing::warn!(
                left = self.queued.load(Ordering::Acquire),
                "shutdown did not wait for every queued sample to be forwarded"
            ),
        }
    }
}

fn sending_origin(config: &ForwardConfig) -> String {
    config
        .remote_write_url
        .as_deref()
        .and_then(|u| Url::parse(u).ok())
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

/// The task that sends: one at a time, so each series' samples arrive in order.
struct Sending {
    client: reqwest::Client,
    url: Url,
    /// Scheme, host and port: what logs name (the path or query may hold a secret).
    origin: String,
    batch: usize,
    queued: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

/// How one send ended.
enum Sent {
    Ok,
    /// The database refused the request for good (a 4xx other than 429): retrying the same
    /// samples would fail again.
    Refused,
}

impl Sending {
    async fn run(self, mut receiver: mpsc::UnboundedReceiver<Message>) {
        let mut pending: Vec<MetricPoint> = Vec::new();
        let mut drains: Vec<oneshot::Sender<()>> = Vec::new();
        loop {
            let message = if pending.is_empty() {
                receiver.recv().await
            } else {
                match tokio::time::timeout(FLUSH_AFTER, receiver.recv()).await {
                    Ok(message) => message,
                    Err(_) => {
                        self.send_all(&mut pending).await;
                        continue;
                    }
                }
            };
            match message {
                Some(Message::Points(points)) => pending.extend(points),
                Some(Message::Drain(done)) => drains.push(done),
                None => {
                    self.send_all(&mut pending).await;
                    return;
                }
            }
            // Whatever else is already waiting joins this batch.
            while pending.len() < self.batch && drains.is_empty() {
                match receiver.try_recv() {
                    Ok(Message::Points(points)) => pending.extend(points),
                    Ok(Message::Drain(done)) => drains.push(done),
                    Err(_) => break,
                }
            }
            if pending.len() >= self.batch {
                self.send_full_batches(&mut pending).await;
            }
            if !drains.is_empty() {
                while let Ok(message) = receiver.try_recv() {
                    match message {
                        Message::Points(points) => pending.extend(points),
                        Message::Drain(done) => drains.push(done),
                    }
                }
                self.send_all(&mut pending).await;
                for done in drains.drain(..) {
                    let _ = done.send(());
                }
            }
        }
    }

    async fn send_full_batches(&self, pending: &mut Vec<MetricPoint>) {
        while pending.len() >= self.batch {
            let rest = pending.split_off(self.batch);
            let batch = std::mem::replace(pending, rest);
            self.send(batch).await;
        }
    }

    async fn send_all(&self, pending: &mut Vec<MetricPoint>) {
        self.send_full_batches(pending).await;
        if !pending.is_empty() {
            let batch = std::mem::take(pending);
            self.send(batch).await;
        }
    }

    /// Sends one batch, retrying until the database takes or refuses it.
    async fn send(&self, batch: Vec<MetricPoint>) {
        let n = batch.len();
        let body = remote_write::encode(&batch);
        drop(batch);
        let mut backoff = FIRST_BACKOFF;
        let outcome = loop {
            match self.try_send(&body).await {
                Ok(sent) => break sent,
                Err(reason) => {
                    self.metrics
                        .inc("vigil_forward_retries_total", String::new());
                    tracing::warn!(to = %self.origin, samples = n, error = %reason, retry_in_ms = backoff.as_millis() as u64, "remote_write failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        };
        let left = self.queued.fetch_sub(n, Ordering::AcqRel) - n;
        self.metrics.set("vigil_forward_queue_samples", left as i64);
        let outcome = match outcome {
            Sent::Ok => "sent",
            Sent::Refused => "refused",
        };
        self.metrics.add(
            "vigil_forward_samples_total",
            labels(&[("outcome", outcome)]),
            n as u64,
        );
    }

    async fn try_send(&self, body: &[u8]) -> Result<Sent, String> {
        let answer = self
            .client
            .post(self.url.clone())
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = answer.status();
        if status.is_success() {
            return Ok(Sent::Ok);
        }
        let text = answer.text().await.unwrap_or_default();
        let text: String = text.chars().take(300).collect();
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(format!("{status}: {}", text.trim()));
        }
        // As Prometheus' own sender does: a 4xx will not get better; the database has
        // stored what it could of the request (out-of-order samples are the usual cause).
        tracing::warn!(to = %self.origin, %status, answer = %text.trim(), "remote_write refused samples");
        Ok(Sent::Refused)
    }
}

/// Reads chart history from a Prometheus-compatible query API.
pub struct QueryApi {
    client: reqwest::Client,
    base: Url,
}

/// Why the query API gave no history; charts fall back to vigil's own.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("the query API did not answer: {0}")]
    Unreachable(String),
    #[error("the query API answered {status}: {answer}")]
    Status { status: StatusCode, answer: String },
    #[error("the query API's answer is not a Prometheus matrix: {0}")]
    Malformed(String),
}

#[derive(Deserialize)]
struct QueryAnswer {
    status: String,
    #[serde(default)]
    data: Option<Matrix>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Matrix {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<MatrixSeries>,
}

#[derive(Deserialize)]
struct MatrixSeries {
    metric: BTreeMap<String, String>,
    values: Vec<(f64, String)>,
}

/// A series' history as the query API has it: its labels (without the name) and minutes.
pub type RemoteHistory = Vec<(BTreeMap<String, String>, Vec<Rollup>)>;

impl QueryApi {
    pub fn from_config(config: &ForwardConfig) -> Result<Option<Self>, ForwardError> {
        let Some(url) = &config.query_url else {
            return Ok(None);
        };
        let mut base = parse_url("query_url", url)?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let client = client(auth_headers(config.bearer_token_file.as_deref())?)?;
        Ok(Some(QueryApi { client, base }))
    }

    /// The last 24 hours of the series named `name` with every label of `filter`, as
    /// one-minute rollups (min, max, sum and count of the samples in each minute), at most
    /// `limit` series.
    pub async fn history(
        &self,
        name: &str,
        filter: &BTreeMap<String, String>,
        now_ms: i64,
        limit: usize,
    ) -> Result<RemoteHistory, QueryError> {
        let selector = selector(name, filter);
        // Evaluated 1 ms before each minute's end, a `[1m]` range covers that minute's
        // samples exactly as vigil's own rollups do: [start, start + 60 s).
        let last_minute = now_ms.div_euclid(MINUTE_MS) * MINUTE_MS;
        let first_minute = last_minute - HISTORY_MS + MINUTE_MS;
        let at = |minute: i64| format!("{:.3}", (minute + MINUTE_MS - 1) as f64 / 1000.0);
        let (start, end) = (at(first_minute), at(last_minute));
        let run = |function: &'static str| {
            let query = format!("{function}({selector}[1m])");
            self.range(query, start.clone(), end.clone())
        };
        let (min, max, sum, count) = tokio::try_join!(
            run("min_over_time"),
            run("max_over_time"),
            run("sum_over_time"),
            run("count_over_time")
        )?;
        let mut by_series: BTreeMap<BTreeMap<String, String>, BTreeMap<i64, Rollup>> =
            BTreeMap::new();
        for series in count {
            if !filter.iter().all(|(k, v)| series.metric.get(k) == Some(v)) {
                continue;
            }
            let minutes = by_series.entry(series.metric).or_default();
            for (at, value) in series.values {
                let minute_ms = minute_of(at);
                let count = parse_value(&value)?;
                minutes.insert(
                    minute_ms,
                    Rollup {
                        minute_ms,
                        min: f64::NAN,
                        max: f64::NAN,
                        sum: f64::NAN,
                        count: count as u32,
                    },
                );
            }
        }
        for (part, answer) in [(0, min), (1, max), (2, sum)] {
            for series in answer {
                let Some(minutes) = by_series.get_mut(&series.metric) else {
                    continue;
                };
                for (at, value) in series.values {
                    if let Some(rollup) = minutes.get_mut(&minute_of(at)) {
                        let value = parse_value(&value)?;
                        match part {
                            0 => rollup.min = value,
                            1 => rollup.max = value,
                            _ => rollup.sum = value,
                        }
                    }
                }
            }
        }
        Ok(by_series
            .into_iter()
            .take(limit)
            .map(|(labels, minutes)| {
                let rollups = minutes
                    .into_values()
                    .filter(|r| r.min.is_finite() && r.max.is_finite() && r.sum.is_finite())
                    .collect();
                (labels, rollups)
            })
            .collect())
    }

    async fn range(
        &self,
        query: String,
        start: String,
        end: String,
    ) -> Result<Vec<MatrixSeries>, QueryError> {
        let url = self
            .base
            .join("api/v1/query_range")
            .map_err(|e| QueryError::Malformed(e.to_string()))?;
        let answer = self
            .client
            .get(url)
            .query(&[
                ("query", query.as_str()),
                ("start", start.as_str()),
                ("end", end.as_str()),
                ("step", "60"),
            ])
            .send()
            .await
            .map_err(|e| QueryError::Unreachable(e.without_url().to_string()))?;
        let status = answer.status();
        let text = answer
            .text()
            .await
            .map_err(|e| QueryError::Unreachable(e.without_url().to_string()))?;
        let parsed: Result<QueryAnswer, _> = serde_json::from_str(&text);
        match parsed {
            Ok(QueryAnswer {
                status: ok,
                data: Some(matrix),
                ..
            }) if status.is_success() && ok == "success" => {
                if matrix.result_type != "matrix" {
                    return Err(QueryError::Malformed(format!(
                        "result type `{}`",
                        matrix.result_type
                    )));
                }
                Ok(matrix.result)
            }
            Ok(QueryAnswer { error, .. }) if !status.is_success() => Err(QueryError::Status {
                status,
                answer: error.unwrap_or_default(),
            }),
            Ok(QueryAnswer { error, .. }) => Err(QueryError::Malformed(
                error.unwrap_or_else(|| "no data".into()),
            )),
            Err(_) if !status.is_success() => Err(QueryError::Status {
                status,
                answer: text.chars().take(300).collect(),
            }),
            Err(e) => Err(QueryError::Malformed(e.to_string())),
        }
    }
}

fn minute_of(at_seconds: f64) -> i64 {
    ((at_seconds * 1000.0).round() as i64).div_euclid(MINUTE_MS) * MINUTE_MS
}

fn parse_value(value: &str) -> Result<f64, QueryError> {
    // Prometheus writes NaN and infinities as `NaN`, `+Inf`, `-Inf`, which Rust parses.
    value
        .parse()
        .map_err(|_| QueryError::Malformed(format!("`{value}` is not a number")))
}

/// A PromQL selector for the name and labels: `{__name__="…", label="…"}`, so names PromQL
/// could not spell bare (a Graphite path with dots) still match. Labels whose names PromQL
/// cannot spell are matched on the answer instead.
fn selector(name: &str, filter: &BTreeMap<String, String>) -> String {
    let mut matchers = vec![format!("__name__={}", promql_string(name))];
    for (label, value) in filter {
        if is_label_name(label) {
            matchers.push(format!("{label}={}", promql_string(value)));
        }
    }
    format!("{{{}}}", matchers.join(", "))
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn promql_string(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_quote_names_and_values_and_leave_out_labels_promql_cannot_spell() {
        let filter = BTreeMap::from([
            ("host".to_string(), "web \"01\"\\".to_string()),
            ("bad-label".to_string(), "x".to_string()),
        ]);
        assert_eq!(
            selector("carbon.agents.cpu", &filter),
            r#"{__name__="carbon.agents.cpu", host="web \"01\"\\"}"#
        );
    }

    /// A remote_write receiver that answers 503 to its first request (so the sender must
    /// retry) and keeps every sample of the requests it takes.
    async fn receiver() -> (String, Arc<std::sync::Mutex<Vec<MetricPoint>>>) {
        use axum::body::Bytes;
        use axum::http::{HeaderMap as Headers, StatusCode as Status};
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let calls = Arc::new(AtomicUsize::new(0));
        let kept = got.clone();
        let app = axum::Router::new().route(
            "/api/v1/write",
            axum::routing::post(move |headers: Headers, body: Bytes| {
                let kept = kept.clone();
                let calls = calls.clone();
                async move {
                    if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                        return Status::SERVICE_UNAVAILABLE;
                    }
                    if headers.get("content-encoding").map(|v| v.as_bytes()) != Some(b"snappy") {
                        return Status::BAD_REQUEST;
                    }
                    match remote_write::decode(&body, &remote_write::Limits::default()) {
                        Ok(decoded) => {
                            kept.lock().unwrap().extend(decoded.points);
                            Status::NO_CONTENT
                        }
                        Err(_) => Status::BAD_REQUEST,
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api/v1/write", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, got)
    }

    fn point(series: usize, minute: i64) -> MetricPoint {
        MetricPoint {
            name: "load1".into(),
            labels: BTreeMap::from([("host".to_string(), format!("web-{series:02}"))]),
            value: (series as f64) + minute as f64 / 100.0,
            timestamp_ms: 1_700_000_000_000 + minute * MINUTE_MS,
        }
    }

    #[tokio::test]
    async fn every_offered_sample_arrives_once_in_order_across_a_failed_send() {
        let (url, got) = receiver().await;
        let metrics = Arc::new(Metrics::default());
        let config = ForwardConfig {
            remote_write_url: Some(url),
            batch_samples: 7,
            queue_samples: 1_000,
            ..ForwardConfig::default()
        };
        let forwarder = Forwarder::start(&config, metrics.clone()).unwrap();
        let mut offered = Vec::new();
        for minute in 0..10 {
            let batch: Vec<MetricPoint> = (0..5).map(|series| point(series, minute)).collect();
            forwarder.offer(&batch);
            offered.extend(batch);
        }
        forwarder.drain(Duration::from_secs(20)).await;
        let mut got = got.lock().unwrap().clone();
        assert_eq!(got.len(), offered.len(), "each sample exactly once");
        for series in 0..5 {
            let host = format!("web-{series:02}");
            let times: Vec<i64> = got
                .iter()
                .filter(|p| p.labels["host"] == host)
                .map(|p| p.timestamp_ms)
                .collect();
            assert!(
                times.windows(2).all(|w| w[0] < w[1]),
                "{host} in order: {times:?}"
            );
        }
        let key = |p: &MetricPoint| (p.labels["host"].clone(), p.timestamp_ms, p.value.to_bits());
        got.sort_by_key(key);
        offered.sort_by_key(key);
        assert!(got.iter().zip(&offered).all(|(a, b)| key(a) == key(b)));
        let rendered = metrics.render();
        assert!(
            rendered.contains("vigil_forward_samples_total{outcome=\"sent\"} 50"),
            "{rendered}"
        );
        assert!(
            rendered.contains("vigil_forward_retries_total 1"),
            "{rendered}"
        );
    }

    #[tokio::test]
    async fn samples_beyond_the_queue_are_dropped_and_counted_not_held() {
        // Nothing listens there: every send fails and is retried, so the queue only fills.
        let metrics = Arc::new(Metrics::default());
        let config = ForwardConfig {
            remote_write_url: Some("http://127.0.0.1:9/api/v1/write".into()),
            batch_samples: 10,
            queue_samples: 20,
            ..ForwardConfig::default()
        };
        let forwarder = Forwarder::start(&config, metrics.clone()).unwrap();
        for minute in 0..5 {
            let batch: Vec<MetricPoint> = (0..10).map(|series| point(series, minute)).collect();
            forwarder.offer(&batch);
        }
        assert_eq!(forwarder.queued.load(Ordering::Acquire), 20);
        let rendered = metrics.render();
        assert!(
            rendered.contains("vigil_forward_samples_total{outcome=\"dropped\"} 30"),
            "{rendered}"
        );
    }

    #[test]
    fn a_url_that_is_not_http_is_refused_without_repeating_it() {
        let config = ForwardConfig {
            remote_write_url: Some("ftp://user:secret@tsdb/write".into()),
            ..ForwardConfig::default()
        };
        let error = Forwarder::start(&config, Arc::new(Metrics::default()))
            .err()
            .expect("refused")
            .to_string();
        assert!(
            error.starts_with("metrics.forward.remote_write_url"),
            "{error}"
        );
        assert!(!error.contains("secret"), "{error}");
    }

    #[test]
    fn evaluation_times_fall_in_the_minute_they_summarise() {
        assert_eq!(minute_of(119.999), 60_000);
        assert_eq!(minute_of(120.0), 120_000);
    }
}
