//! vigil's server: the HTTP API and ingest endpoints, rules, and the processing pipeline,
//! wired over one [`vigil_store::Store`]. See ARCHITECTURE.md for the flow.

pub mod alarm_engine;
pub mod api;
pub mod auth;
pub mod clock;
pub mod config;
pub mod escalation;
pub mod jobs;
pub mod metric_sources;
pub mod metrics;
pub mod ownership;
pub mod pipeline;
pub mod rules;
pub mod runner;
mod sns_confirm;
pub mod ui;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vigil_store::Store;

pub use config::{Config, ConfigError};

/// Shared by every request handler.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<Store>,
    pub auth: Arc<auth::Auth>,
    pub ingest: pipeline::Ingest,
    pub metrics: Arc<metrics::Metrics>,
    pub jobs: Arc<jobs::JobHub>,
    pub engine: Arc<alarm_engine::Engine>,
    pub ownership: Arc<ownership::Ownership>,
    pub runner: Arc<runner::Runner>,
    /// Offset added to the wall clock by the test-only clock endpoint (see `clock`).
    pub clock: Arc<clock::Clock>,
}

/// Where the CLI finds a running server: written at every start, next to the token.
pub const SERVER_URL_FILE: &str = "server.url";
const DATABASE_FILE: &str = "vigil.db";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] vigil_store::StoreError),
    #[error("cannot listen on {addr}: {source} (is another vigil running? choose another with --listen)")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// What a started server tells its caller (the CLI prints it).
pub struct Started {
    pub url: String,
    pub admin_token: String,
    pub token_created: bool,
    pub token_path: PathBuf,
}

/// Runs the server until Ctrl-C or SIGTERM. `on_start` is called once it listens.
pub async fn serve(config: Config, on_start: impl FnOnce(&Started)) -> Result<(), ServerError> {
    let data_dir = config.server.data_dir.clone();
    let dir_error = |source| ServerError::DataDir {
        path: data_dir.clone(),
        source,
    };
    std::fs::create_dir_all(&data_dir).map_err(dir_error)?;
    let store = Arc::new(Store::open(&data_dir.join(DATABASE_FILE))?);
    let (admin_token, token_created) =
        auth::ensure_admin_token(&store, &data_dir, &now()).map_err(dir_error)?;
    let rules = Arc::new(rules::Rules::from_config(&config)?);
    let metrics = Arc::new(metrics::Metrics::default());

    let engine = Arc::new(load_alarms(&config, &store)?);
    let ownership = Arc::new(ownership::Ownership::load(
        &store,
        config.host_bindings.clone(),
    )?);
    let clock = Arc::new(clock::Clock::from_env());
    let mut integrations_config = config.integrations.clone();
    if integrations_config.public_url.is_none() {
        integrations_config.public_url = config.server.public_url.clone();
    }
    let integrations = integrations_config
        .with_env(|key| std::env::var(key).ok())
        .and_then(|c| c.build())
        .map_err(|e| ServerError::Config(ConfigError::Invalid(format!("integrations: {e}"))))?;
    tracing::info!(
        trackers = integrations.trackers.len(),
        channels = integrations.notifiers.len(),
        "integrations ready"
    );
    let runner = Arc::new(runner::Runner::new(
        store.clone(),
        integrations.trackers,
        integrations.notifiers,
        now,
    ));
    let hub = Arc::new(jobs::JobHub::default());
    let times = jobs::JobTimes::default();
    let renewed = store.renew_job_deadlines(jobs::now_ms(), times.claim_within_ms as i64)?;
    if renewed > 0 {
        tracing::info!(
            jobs = renewed,
            "probe jobs from before the restart wait for their agents again"
        );
    }
    let (wake, woken) = pipeline::Wake::new();
    let ingest = pipeline::start_ingest(&store, wake, now)?;
    pipeline::Processor {
        store: store.clone(),
        rules: rules.clone(),
        group_by: config.incidents.group_by.clone(),
        metrics: metrics.clone(),
        now,
        responder: jobs::Responder {
            store: store.clone(),
            hub: hub.clone(),
            times,
        },
        runner: runner.clone(),
        ownership: ownership.clone(),
    }
    .start(woken)
    .map_err(|e| {
        ServerError::Serve(std::io::Error::other(format!(
            "cannot start the processor: {e}"
        )))
    })?;

    let listen = config.server.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| ServerError::Listen {
            addr: listen,
            source,
        })?;
    let local = listener.local_addr().map_err(ServerError::Serve)?;
    let url = format!("http://{local}");
    runner.set_base_url(config.server.public_url.as_deref().unwrap_or(&url));
    runner.clone().spawn();
    write_private_file(&data_dir.join(SERVER_URL_FILE), &url).map_err(dir_error)?;

    let state = AppState {
        config: Arc::new(config),
        store: store.clone(),
        auth: Arc::new(auth::Auth::new(store.clone())),
        ingest,
        metrics,
        jobs: hub,
        engine: engine.clone(),
        ownership: ownership.clone(),
        clock: clock.clone(),
        runner: runner.clone(),
    };
    jobs::spawn_sweeper(store.clone(), times, now);
    escalation::spawn(
        store.clone(),
        ownership.clone(),
        clock.clone(),
        state.ingest.clone(),
        state.config.escalation.after_minutes.clone(),
        now,
    );
    metric_sources::spawn_ticker(
        engine.clone(),
        store.clone(),
        state.ingest.clone(),
        state.metrics.clone(),
        now,
    );
    let graphite = state.config.metrics.graphite_listen.clone();
    if !graphite.is_empty() {
        metric_sources::spawn_graphite(graphite, engine, state.metrics.clone(), data_dir.clone())
            .await;
    }
    tracing::info!(url = %url, rules = rules.len(), data_dir = %data_dir.display(), "vigil is listening");
    on_start(&Started {
        url,
        admin_token,
        token_created,
        token_path: data_dir.join(auth::ADMIN_TOKEN_FILE),
    });
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(ServerError::Serve)
}

/// Built-in alarms, then config's, then those made through the API (which win), and the
/// states every instance had when vigil stopped.
fn load_alarms(config: &Config, store: &Store) -> Result<alarm_engine::Engine, ServerError> {
    let engine = alarm_engine::Engine::new(jobs::now_ms(), config.metrics.max_series);
    let mut definitions = Vec::new();
    if config.metrics.default_alarms {
        definitions.extend(alarm_engine::default_alarms());
    }
    definitions.extend(config.alarms.iter().cloned());
    for (name, text) in store.alarms()? {
        match serde_json::from_str::<alarm_engine::AlarmDefinition>(&text) {
            Ok(definition) => definitions.push(definition),
            Err(e) => {
                tracing::error!(alarm = %name, error = %e, "stored alarm definition unreadable; skipped")
            }
        }
    }
    for definition in definitions {
        match definition.compile() {
            Ok(alarm) => engine.put_alarm(alarm),
            Err(e) => {
                tracing::error!(alarm = %definition.alarm_name, error = %e, "alarm definition refused")
            }
        }
    }
    for record in store.alarm_states()? {
        if let Some(state) = alarm_engine::parse_state(&record.state) {
            engine.restore_state(&record.alarm, &record.series, state, record.since_ms);
        }
    }
    Ok(engine)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}

/// The current time as RFC 3339 UTC with milliseconds: sortable as text.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn fresh_event_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Writes a file readable by its owner only, replacing it atomically.
pub fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
