//! The agent's network side: sends metric batches and heartbeats to the server, buffering
//! while it is unreachable, and holds a long poll for probe jobs, runs them and answers.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use serde_json::{json, Value};
use vigil_core::{Heartbeat, Job, JobResult, JobStatus, MetricBatch, MetricSample};

use crate::allowlist::{AllowList, AllowListError};
use crate::collect::Collector;
use crate::probes::{self, CollectorHealth, ProbeContext, ProbeError};
use crate::redact::{RedactError, Redactor};

/// Agent settings. Every key but `server`, the token (`token_file`, or `token`) and `name`
/// has a default; flags on `vigil agent` override the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Server URL, e.g. `http://10.0.0.5:8080`; for a cluster, several separated by commas
    /// (`http://10.0.0.5:8080,http://10.0.0.6:8080`): the agent talks to the first that
    /// answers and moves to the next when it stops answering.
    pub server: String,
    /// This host's token, from `vigil host add NAME`. Prefer `token_file`: a config file
    /// is often shared or checked in, a token file can stay mode 0600.
    pub token: String,
    /// A file holding this host's token (surrounding blanks ignored). Default: none.
    pub token_file: Option<PathBuf>,
    /// PEM file of certificates to trust for an `https://` server besides the usual public
    /// roots, e.g. the server's own self-signed `tls_cert`. Default: none.
    pub ca_cert: Option<PathBuf>,
    /// This host's name, as enrolled. Default: the kernel's host name.
    pub name: String,
    /// Seconds between metric samples and heartbeats. Default 10.
    pub interval_secs: u64,
    pub labels: BTreeMap<String, String>,
    pub appcode: Option<String>,
    /// TOML file of commands `command:NAME` may run (see `allowlist`). Default: none.
    pub allow_list: Option<PathBuf>,
    /// Bytes of probe output returned at most. Default 65536.
    pub output_cap_bytes: usize,
    /// Seconds a probe may run. Default 10.
    pub probe_timeout_secs: u64,
    /// Metric batches kept while the server is unreachable; the oldest are dropped (and
    /// counted) beyond this. Default 360 (an hour at 10 s).
    pub buffer_batches: usize,
    /// Regular expressions whose matches in probe output become `***`, on top of the
    /// built-in secret shapes (see `redact`). Default: none.
    pub redact_patterns: Vec<String>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            server: String::new(),
            token: String::new(),
            token_file: None,
            ca_cert: None,
            name: local_host_name(),
            interval_secs: 10,
            labels: BTreeMap::new(),
            appcode: None,
            allow_list: None,
            output_cap_bytes: 64 * 1024,
            probe_timeout_secs: 10,
            buffer_batches: 360,
            redact_patterns: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("agent config {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("agent setting `{0}` is missing: set it in the config file or with --{0}")]
    Missing(&'static str),
    #[error("no token for the agent: give --token-file PATH (or `token_file` in the config file), or set VIGIL_AGENT_TOKEN")]
    NoToken,
    #[error("the agent config sets both `token` and `token_file`; keep one")]
    TwoTokens,
    #[error("token file {path}: {message}")]
    TokenFile { path: PathBuf, message: String },
    #[error("ca_cert {path}: {message}")]
    CaCert { path: PathBuf, message: String },
    #[error(transparent)]
    AllowList(#[from] AllowListError),
    #[error("{0}; fix the pattern in the agent config or --redact")]
    Redact(#[from] RedactError),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    #[error("interval_secs {0} is over a day; report at most every 86400 seconds")]
    Interval(u64),
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<AgentConfig, AgentError> {
        let error = |message: String| AgentError::Config {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        toml::from_str(&text).map_err(|e| error(e.to_string()))
    }

    /// The server URLs, in the order they are tried.
    pub fn servers(&self) -> Vec<String> {
        self.server
            .split(',')
            .map(|url| url.trim().trim_end_matches('/'))
            .filter(|url| !url.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Checks the settings and reads the token from `token_file` when that is where it is.
    fn check(&mut self) -> Result<(), AgentError> {
        if self.servers().is_empty() {
            return Err(AgentError::Missing("server"));
        }
        // The server takes heartbeats at most a day apart.
        if self.interval_secs > 86_400 {
            return Err(AgentError::Interval(self.interval_secs));
        }
        match (self.token.is_empty(), self.token_file.take()) {
            (false, Some(_)) => return Err(AgentError::TwoTokens),
            (false, None) => {}
            (true, None) => return Err(AgentError::NoToken),
            (true, Some(path)) => {
                let error = |message: String| AgentError::TokenFile {
                    path: path.clone(),
                    message,
                };
                let text = std::fs::read_to_string(&path).map_err(|e| error(e.to_string()))?;
                let token = text.trim();
                if token.is_empty() || token.contains(char::is_whitespace) {
                    return Err(error("expected one token (vgl_…) and nothing else".into()));
                }
                self.token = token.to_string();
            }
        }
        if self.name.is_empty() {
            return Err(AgentError::Missing("name"));
        }
        Ok(())
    }

    /// The HTTP client, trusting `ca_cert`'s certificates too when it is set.
    fn http_client(&self) -> Result<reqwest::Client, AgentError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(POLL_WAIT_SECS + 10));
        if let Some(path) = &self.ca_cert {
            let error = |message: String| AgentError::CaCert {
                path: path.clone(),
                message,
            };
            let pem = std::fs::read(path).map_err(|e| error(e.to_string()))?;
            let certificates =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| error(e.to_string()))?;
            if certificates.is_empty() {
                return Err(error("no PEM certificate in it".into()));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        builder.build().map_err(|e| AgentError::Http(e.to_string()))
    }
}

/// The kernel's host name, or "localhost" when it cannot be read.
pub fn local_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
/// How long a job poll is held open by the server; the client waits a little longer.
const POLL_WAIT_SECS: u64 = 25;

/// Handles for stopping the collector from outside (a signal in `vigil agent`), so the
/// no-data playbook can be exercised on a real host.
#[derive(Clone)]
pub struct AgentHandle {
    stop_collector: Arc<AtomicBool>,
    pub health: Arc<CollectorHealth>,
}

impl AgentHandle {
    /// Stops metric collection until a `collector_restart` probe starts it again.
    pub fn stop_collector(&self) {
        self.stop_collector.store(true, Ordering::SeqCst);
    }
}

/// Starts the agent's loops; returns a handle and the future that drives the network side.
pub fn start(
    mut config: AgentConfig,
) -> Result<(AgentHandle, impl std::future::Future<Output = ()>), AgentError> {
    config.check()?;
    let allow_list = match &config.allow_list {
        Some(path) => AllowList::load(path)?,
        None => AllowList::default(),
    };
    let redactor = Redactor::new(&config.redact_patterns)?;
    let http = config.http_client()?;
    let health = Arc::new(CollectorHealth::new());
    health.set_interval(Duration::from_secs(config.interval_secs.max(1)));
    let handle = AgentHandle {
        stop_collector: Arc::new(AtomicBool::new(false)),
        health: health.clone(),
    };
    let (batches_tx, batches_rx) = tokio::sync::mpsc::channel(16);
    spawn_collector(&config, handle.clone(), batches_tx);
    let context = Arc::new(ProbeContext {
        collector: health.clone(),
        allow_list,
        output_cap: config.output_cap_bytes,
        timeout: Duration::from_secs(config.probe_timeout_secs.max(1)),
        redactor,
    });
    let link = Link {
        http,
        servers: Arc::new(config.servers()),
        current: Arc::new(AtomicUsize::new(0)),
        token: config.token.clone(),
    };
    let started = Instant::now();
    let reporter = report_loop(link.clone(), config.clone(), health, batches_rx, started);
    let jobs = job_loop(link, config.name.clone(), context);
    let task = async move {
        tokio::join!(reporter, jobs);
    };
    Ok((handle, task))
}

/// The agent's way to the server: one of the configured URLs at a time, the next one when
/// it stops answering. Every member of a cluster takes every agent call.
#[derive(Clone)]
struct Link {
    http: reqwest::Client,
    servers: Arc<Vec<String>>,
    /// Index of the server in use; shared by heartbeats, metrics and the job poll.
    current: Arc<AtomicUsize>,
    token: String,
}

impl Link {
    /// The server in use and its index.
    fn base(&self) -> (usize, &str) {
        let at = self.current.load(Ordering::Relaxed) % self.servers.len().max(1);
        (at, self.servers.get(at).map(String::as_str).unwrap_or(""))
    }

    /// The server at `from` did not answer: the next one is tried (unless another task
    /// moved on already).
    fn fail_over(&self, from: usize, error: &str) {
        if self.servers.len() < 2 {
            return;
        }
        let next = (from + 1) % self.servers.len();
        if self
            .current
            .compare_exchange(from, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            tracing::warn!(from = %self.servers[from], to = %self.servers[next], error, "server not answering; moving to the next one");
        }
    }

    /// Posts to the server in use, moving through the others while they do not answer.
    /// An answer (even a refusal) ends the tour: another member would answer the same.
    async fn post(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<reqwest::Response, String> {
        let mut last = String::new();
        for _ in 0..self.servers.len() {
            let (at, base) = self.base();
            match self
                .http
                .post(format!("{base}{path}"))
                .bearer_auth(&self.token)
                .json(body)
                .send()
                .await
            {
                Ok(answer) => return check_status(answer).await,
                Err(e) => {
                    last = e.to_string();
                    self.fail_over(at, &last);
                }
            }
        }
        Err(last)
    }
}

async fn check_status(answer: reqwest::Response) -> Result<reqwest::Response, String> {
    let status = answer.status();
    if status.is_success() {
        return Ok(answer);
    }
    let body = answer.text().await.unwrap_or_default();
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Err(format!("the server refused this host's token (401: {body}); was it revoked? enroll again with `vigil host add`"));
    }
    Err(format!("server answered {status}: {body}"))
}

/// Collects on a thread of its own: reading /proc is blocking work, and a slow disk must
/// not stall the job channel.
fn spawn_collector(
    config: &AgentConfig,
    handle: AgentHandle,
    batches: tokio::sync::mpsc::Sender<Vec<MetricSample>>,
) {
    let interval = Duration::from_secs(config.interval_secs.max(1));
    let spawned = std::thread::Builder::new()
        .name("vigil-collector".into())
        .spawn(move || {
            let health = handle.health.clone();
            let mut collector = Collector::new();
            health.set_running(true);
            loop {
                if handle.stop_collector.swap(false, Ordering::SeqCst) {
                    health.set_running(false);
                    tracing::warn!(
                        "metric collector stopped; a collector_restart probe starts it again"
                    );
                }
                if !health.is_running() {
                    if health.wait_restart(interval) {
                        collector = Collector::new();
                        health.set_running(true);
                        tracing::info!("metric collector restarted");
                    }
                    continue;
                }
                if health.take_restart_request() {
                    collector = Collector::new();
                    tracing::info!("metric collector restarted");
                }
                let tick = Instant::now();
                match collector.collect() {
                    Ok(samples) => {
                        let at = SystemTime::now();
                        health.record_success(at, samples.len());
                        let stamp = unix_ms(at);
                        let batch: Vec<MetricSample> = samples
                            .into_iter()
                            .map(|s| MetricSample {
                                name: s.name,
                                value: s.value,
                                dimensions: s.dimensions,
                                timestamp_ms: stamp,
                            })
                            .collect();
                        if batches.blocking_send(batch).is_err() {
                            return; // the agent is shutting down
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "metric collection failed");
                        health.record_error(SystemTime::now(), e.to_string());
                    }
                }
                let rest = interval.saturating_sub(tick.elapsed());
                // A restart request cuts the wait short so it is honoured at once.
                if health.wait_restart(rest) {
                    collector = Collector::new();
                    health.set_running(true);
                    tracing::info!("metric collector restarted");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the metric collector thread");
    }
}

fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Sends heartbeats and metric batches; keeps batches while the server is unreachable.
async fn report_loop(
    link: Link,
    config: AgentConfig,
    health: Arc<CollectorHealth>,
    mut batches: tokio::sync::mpsc::Receiver<Vec<MetricSample>>,
    started: Instant,
) {
    let mut buffer: VecDeque<Vec<MetricSample>> = VecDeque::new();
    let dropped = AtomicU64::new(0);
    let interval = Duration::from_secs(config.interval_secs.max(1));
    let mut next_heartbeat = tokio::time::Instant::now();
    loop {
        tokio::select! {
            batch = batches.recv() => match batch {
                Some(batch) => {
                    if buffer.len() >= config.buffer_batches.max(1) {
                        buffer.pop_front();
                        let total = dropped.fetch_add(1, Ordering::Relaxed) + 1;
                        tracing::warn!(dropped_total = total, "metric buffer full; dropped the oldest batch");
                    }
                    buffer.push_back(batch);
                }
                None => return,
            },
            _ = tokio::time::sleep_until(next_heartbeat) => {}
        }
        if tokio::time::Instant::now() >= next_heartbeat {
            next_heartbeat = tokio::time::Instant::now() + interval;
            let heartbeat = Heartbeat {
                agent_version: AGENT_VERSION.to_string(),
                uptime_secs: started.elapsed().as_secs(),
                interval_secs: config.interval_secs,
                collector: serde_json::to_value(health.snapshot()).ok().map(|mut c| {
                    c["dropped_batches"] = json!(dropped.load(Ordering::Relaxed));
                    c
                }),
                labels: config.labels.clone(),
                appcode: config.appcode.clone(),
            };
            if let Err(e) = link.post("/api/v1/agent/heartbeat", &heartbeat).await {
                tracing::warn!(error = %e, "heartbeat not delivered");
                continue;
            }
        }
        while let Some(batch) = buffer.front() {
            let body = MetricBatch {
                samples: batch.clone(),
            };
            match link.post("/api/v1/agent/metrics", &body).await {
                Ok(_) => {
                    buffer.pop_front();
                }
                // The server kept what it could and refused the rest (a series cap, a bad
                // value): sending it again would be refused again.
                Err(e) if e.contains("answered 400") => {
                    tracing::warn!(error = %e, "metrics batch refused by the server; dropped");
                    buffer.pop_front();
                }
                Err(e) => {
                    tracing::warn!(error = %e, buffered = buffer.len(), "metrics not delivered; will resend");
                    break;
                }
            }
        }
    }
}

/// Holds a long poll for jobs; each job runs on the blocking pool and answers on its own,
/// so a slow probe never delays the next job's pickup.
async fn job_loop(link: Link, host: String, context: Arc<ProbeContext>) {
    let mut backoff = Duration::from_millis(250);
    let ran = Arc::new(std::sync::Mutex::new(RanJobs::default()));
    loop {
        let (at, base) = link.base();
        let answer = link
            .http
            .get(format!("{base}/api/v1/agent/jobs?wait={POLL_WAIT_SECS}"))
            .bearer_auth(&link.token)
            .send()
            .await
            .map_err(|e| {
                let error = e.to_string();
                link.fail_over(at, &error);
                error
            });
        let jobs = match answer {
            Ok(answer) => match check_status(answer).await {
                Ok(answer) => answer.json::<Value>().await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let jobs: Vec<Job> = match jobs
            .and_then(|v| serde_json::from_value(v["jobs"].clone()).map_err(|e| e.to_string()))
        {
            Ok(jobs) => {
                backoff = Duration::from_millis(250);
                jobs
            }
            Err(e) => {
                tracing::warn!(host = %host, error = %e, retry_in_ms = backoff.as_millis() as u64, "job poll failed");
                tokio::time::sleep(backoff).await;
                // Capped low: after a server restart, queued probes wait for this poll.
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        // One batch runs in the order the server queued it (a status before a restart),
        // while the next poll goes out at once.
        let link = link.clone();
        let context = context.clone();
        let host = host.clone();
        let ran = ran.clone();
        tokio::spawn(async move {
            for job in jobs {
                let id = job.id;
                // A server that restarted offers again what it handed out before: run a
                // job once, and re-send its answer if it is offered again.
                let earlier = ran.lock().unwrap_or_else(|p| p.into_inner()).start(id);
                match earlier {
                    Earlier::Finished(result) => {
                        tracing::info!(host = %host, job = id, "job offered again; re-sending its answer");
                        deliver_result(&link, id, &result).await;
                        continue;
                    }
                    // Its first run answers when it ends.
                    Earlier::Running => continue,
                    Earlier::Never => {}
                }
                let probe = job.probe.clone();
                let result = run_job(job, context.clone()).await;
                tracing::info!(host = %host, job = id, probe = %probe, status = result.status.as_str(), "probe finished");
                ran.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .finish(id, result.clone());
                deliver_result(&link, id, &result).await;
            }
        });
    }
}

/// Job ids this agent has started, newest last, with their answers once they end.
/// Bounded: a job is offered again only right after a server restart.
#[derive(Default)]
struct RanJobs {
    order: VecDeque<i64>,
    answers: std::collections::HashMap<i64, Option<JobResult>>,
}

enum Earlier {
    Never,
    Running,
    Finished(JobResult),
}

/// Job ids remembered; far more than a host is sent between two server restarts.
const RAN_JOBS_KEPT: usize = 512;

impl RanJobs {
    /// Records that `id` starts now, or says what became of it before.
    fn start(&mut self, id: i64) -> Earlier {
        match self.answers.get(&id) {
            Some(Some(result)) => return Earlier::Finished(result.clone()),
            Some(None) => return Earlier::Running,
            None => {}
        }
        self.answers.insert(id, None);
        self.order.push_back(id);
        while self.order.len() > RAN_JOBS_KEPT {
            if let Some(oldest) = self.order.pop_front() {
                self.answers.remove(&oldest);
            }
        }
        Earlier::Never
    }

    fn finish(&mut self, id: i64, result: JobResult) {
        if let Some(slot) = self.answers.get_mut(&id) {
            *slot = Some(result);
        }
    }
}

/// Posts a probe's answer. The server may be restarting: keep the answer for a while
/// rather than lose the evidence. A 4xx (job expired, token revoked) will not get better.
async fn deliver_result(link: &Link, id: i64, result: &JobResult) {
    let mut wait = Duration::from_secs(1);
    for attempt in 1..=6 {
        match link
            .post(&format!("/api/v1/agent/jobs/{id}/result"), result)
            .await
        {
            Ok(_) => return,
            Err(e) if e.contains("answered 4") || e.contains("(401") || attempt == 6 => {
                tracing::warn!(job = id, error = %e, "probe result not delivered");
                return;
            }
            Err(e) => {
                tracing::info!(job = id, error = %e, attempt, "probe result not delivered yet; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(8));
            }
        }
    }
}

async fn run_job(job: Job, context: Arc<ProbeContext>) -> JobResult {
    let queued_ms = Some(
        (chrono::Utc::now() - job.created_at)
            .num_milliseconds()
            .max(0) as u64,
    );
    let started = Instant::now();
    let probe = job.probe.clone();
    let args = job.args.clone();
    let outcome = tokio::task::spawn_blocking(move || probes::run(&probe, &args, &context)).await;
    let duration_ms = started.elapsed().as_millis() as u64;
    let base = JobResult {
        status: JobStatus::Done,
        output: String::new(),
        exit_code: None,
        truncated: false,
        error: None,
        queued_ms,
        duration_ms,
    };
    match outcome {
        Ok(Ok(output)) => JobResult {
            output: output.output,
            exit_code: output.exit_code,
            truncated: output.truncated,
            ..base
        },
        Ok(Err(error)) => {
            let status = match error {
                ProbeError::Unknown(_) | ProbeError::NotAllowed(_) => JobStatus::Refused,
                ProbeError::TimedOut(_) => JobStatus::TimedOut,
                ProbeError::Failed(_) => JobStatus::Failed,
            };
            JobResult {
                status,
                error: Some(error.to_string()),
                ..base
            }
        }
        Err(e) => JobResult {
            status: JobStatus::Failed,
            error: Some(format!("probe task failed: {e}")),
            ..base
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml_text: &str) -> AgentConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn the_token_comes_from_token_file() {
        let path = std::env::temp_dir().join(format!("vigil-agent-token-{}", std::process::id()));
        std::fs::write(&path, "  vgl_AbCdEfGhIjKl\n").unwrap();
        let mut agent = config(&format!(
            "server = \"http://127.0.0.1:1\"\nname = \"web-01\"\ntoken_file = {:?}\n",
            path.display().to_string()
        ));
        agent.check().unwrap();
        assert_eq!(agent.token, "vgl_AbCdEfGhIjKl");
        std::fs::write(&path, "vgl_a vgl_b\n").unwrap();
        agent.token.clear();
        agent.token_file = Some(path.clone());
        let err = agent.check().unwrap_err().to_string();
        assert!(err.contains("expected one token"), "{err}");
        std::fs::remove_file(&path).unwrap();
        agent.token_file = Some(path.clone());
        let err = agent.check().unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("token file {}", path.display())),
            "{err}"
        );
    }

    #[test]
    fn several_servers_are_tried_in_the_order_given() {
        let several = config(
            "server = \" http://10.0.0.5:8080/ , http://10.0.0.6:8080,,\"\nname = \"w\"\ntoken = \"vgl_x\"\n",
        );
        assert_eq!(
            several.servers(),
            ["http://10.0.0.5:8080", "http://10.0.0.6:8080"]
        );
        let mut none = config("server = \" , \"\nname = \"w\"\ntoken = \"vgl_x\"\n");
        assert!(matches!(none.check(), Err(AgentError::Missing("server"))));
    }

    #[test]
    fn a_token_is_required_once() {
        let mut none = config("server = \"http://127.0.0.1:1\"\nname = \"web-01\"\n");
        assert!(matches!(none.check(), Err(AgentError::NoToken)));
        let mut both = config(
            "server = \"http://127.0.0.1:1\"\nname = \"w\"\ntoken = \"vgl_x\"\ntoken_file = \"/t\"\n",
        );
        assert!(matches!(both.check(), Err(AgentError::TwoTokens)));
        assert!(toml::from_str::<AgentConfig>("tokenfile = \"/t\"\n").is_err());
    }

    fn answer(output: &str) -> JobResult {
        JobResult {
            status: JobStatus::Done,
            output: output.into(),
            exit_code: Some(0),
            truncated: false,
            error: None,
            queued_ms: None,
            duration_ms: 1,
        }
    }

    #[test]
    fn a_job_offered_again_is_not_run_again() {
        let mut ran = RanJobs::default();
        assert!(matches!(ran.start(7), Earlier::Never));
        assert!(matches!(ran.start(7), Earlier::Running));
        ran.finish(7, answer("top"));
        match ran.start(7) {
            Earlier::Finished(result) => assert_eq!(result.output, "top"),
            _ => panic!("a finished job is answered from memory"),
        }
    }

    #[test]
    fn the_memory_of_jobs_is_bounded() {
        let mut ran = RanJobs::default();
        for id in 0..(RAN_JOBS_KEPT as i64 + 10) {
            assert!(matches!(ran.start(id), Earlier::Never));
        }
        assert_eq!(ran.answers.len(), RAN_JOBS_KEPT);
        assert!(
            matches!(ran.start(0), Earlier::Never),
            "the oldest is forgotten"
        );
    }
}
