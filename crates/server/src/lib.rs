//! vigil's server: the HTTP API and ingest endpoints, rules, and the processing pipeline,
//! wired over one [`vigil_store::Store`]. See ARCHITECTURE.md for the flow.

pub mod access;
pub mod alarm_engine;
pub mod api;
pub mod auth;
pub mod bus;
pub mod chart_history;
pub mod clock;
pub mod config;
pub mod data_lock;
pub mod escalation;
pub mod fault;
pub mod forward;
pub mod jobs;
pub mod metric_sources;
pub mod metrics;
pub mod ownership;
pub mod pipeline;
pub mod rules;
pub mod runner;
pub mod series_table;
pub mod service;
mod sns_confirm;
pub mod sns_signature;
pub mod tls;
pub mod ui;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vigil_store::{Store, StoreLocation};

pub use clock::{now, now_ms};
pub use config::{Config, ConfigError};

/// Shared by every request handler.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub auth: Arc<auth::Auth>,
    pub ingest: pipeline::Ingest,
    pub metrics: Arc<metrics::Metrics>,
    pub jobs: Arc<jobs::JobHub>,
    pub engine: Arc<alarm_engine::Engine>,
    pub ownership: Arc<ownership::Ownership>,
    pub runner: Arc<runner::Runner>,
    /// Rung after events are stored outside the ingest writer (escalations).
    pub processor: pipeline::Wake,
    /// Rung when an incident is acknowledged, so the escalation sweeper looks again.
    pub escalation: pipeline::Wake,
    /// Offset added to the wall clock by the test-only clock endpoint (see `clock`).
    pub clock: Arc<clock::Clock>,
    /// Checks SNS messages' signatures, keeping the certificates it fetched.
    pub sns_signatures: Arc<sns_signature::Verifier>,
    /// Sends accepted samples on to a time-series database (`[metrics.forward]`).
    pub forward: Arc<forward::Forwarder>,
    /// Where charts read their history, when not from vigil's own.
    pub query_api: Option<Arc<forward::QueryApi>>,
    /// The other members of a cluster (`[bus] url`); alone, signals stay in this process.
    pub bus: bus::Bus,
}

/// Where the CLI finds a running server: written at every start, next to the token.
pub const SERVER_URL_FILE: &str = "server.url";
const DATABASE_FILE: &str = "vigil.db";
const MEMBER_ID_FILE: &str = "member.id";

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
    DataDirLock(#[from] data_lock::DataDirLockError),
    #[error(transparent)]
    Store(#[from] vigil_store::StoreError),
    #[error("cannot listen on {addr}: {source} (is another vigil running? choose another with --listen)")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Bus(#[from] bus::BusError),
    #[error("a cluster needs a shared store: `[bus] url` is set but the store is the SQLite file {0}; set `[store] url = \"postgres://…\"` (or VIGIL_STORE_URL) on every member")]
    ClusterWithoutSharedStore(String),
    #[error("the store already holds the admin token of another member and {0} has none; copy admin.token from the first member's data directory into this one (mode 0600), so every member answers to the same admin token")]
    AdminTokenElsewhere(PathBuf),
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

/// How long connections still open at shutdown (an agent's job long poll holds one for
/// 25 s) get to finish before the server stops anyway.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// How long shutdown waits for the samples still queued for the time-series database.
const FORWARD_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs the server until `shutdown` completes ([`shutdown_signal`]: Ctrl-C or SIGTERM),
/// then at most [`SHUTDOWN_GRACE`] longer for requests in flight. `on_start` is called
/// once it listens.
pub async fn serve(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_start: impl FnOnce(&Started),
) -> Result<(), ServerError> {
    // A rule that does not compile is the operator's to fix before anything is opened.
    let rules = Arc::new(rules::Rules::from_config(&config)?);
    let storm = config
        .storm
        .clone()
        .with_env(|key| std::env::var(key).ok())?;
    let data_dir = config.server.data_dir.clone();
    let dir_error = |source| ServerError::DataDir {
        path: data_dir.clone(),
        source,
    };
    std::fs::create_dir_all(&data_dir).map_err(dir_error)?;
    // One vigil per data directory, held until serve() returns (the kernel frees it on exit).
    let _data_lock = data_lock::DataDirLock::acquire(&data_dir)?;
    let location = store_location(&config);
    let member = member_id(&data_dir).map_err(dir_error)?;
    // The bus is checked before the store is touched: a member that cannot join its
    // cluster must not start working alone.
    let bus = match bus_url(&config) {
        Some(url) => {
            if let StoreLocation::Sqlite(path) = &location {
                return Err(ServerError::ClusterWithoutSharedStore(
                    path.display().to_string(),
                ));
            }
            bus::Bus::connect(&url, &config.bus.cluster, &member).await?
        }
        None => bus::Bus::alone(),
    };
    let store = vigil_store::open(&location).await?;
    tracing::info!(store = %location, "store open");
    if bus.is_cluster() && !data_dir.join(auth::ADMIN_TOKEN_FILE).exists() {
        let admin_elsewhere = store
            .tokens()
            .await?
            .iter()
            .any(|t| t.name == "admin" && t.revoked_at.is_none());
        if admin_elsewhere {
            return Err(ServerError::AdminTokenElsewhere(data_dir.clone()));
        }
    }
    let (admin_token, token_created) = auth::ensure_admin_token(store.as_ref(), &data_dir)
        .await
        .map_err(dir_error)?;
    let metrics = Arc::new(metrics::Metrics::default());
    let forward = Arc::new(
        forward::Forwarder::start(&config.metrics.forward, metrics.clone())
            .map_err(ConfigError::from)?,
    );
    let query_api = forward::QueryApi::from_config(&config.metrics.forward)
        .map_err(ConfigError::from)?
        .map(Arc::new);

    let engine = Arc::new(load_alarms(&config, store.as_ref()).await?);
    let ownership =
        Arc::new(ownership::Ownership::load(store.as_ref(), config.host_bindings.clone()).await?);
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
    let runner = Arc::new(
        runner::Runner::new(
            store.clone(),
            integrations.trackers,
            integrations.notifiers,
            member,
            std::time::Duration::from_secs(config.incidents.diagnostics_wait_secs),
            std::time::Duration::from_secs(storm.group_wait_secs),
        )
        .with_bus(bus.clone()),
    );
    let hub = Arc::new(jobs::JobHub::with_bus(bus.clone()));
    let times = jobs::JobTimes::default();
    let renewed = store.renew_job_deadlines(now(), times.claim_within).await?;
    if renewed > 0 {
        tracing::info!(
            jobs = renewed,
            "probe jobs from before the restart wait for their agents again"
        );
    }
    let processor_wake = pipeline::Wake::shared(bus.clone(), bus::Signal::Processor);
    let escalation_wake = pipeline::Wake::shared(bus.clone(), bus::Signal::Escalation);
    let ingest = pipeline::start_ingest(store.clone(), processor_wake.clone());
    let processor = pipeline::Processor {
        store: store.clone(),
        rules: rules.clone(),
        group_by: config.incidents.group_by.clone(),
        storm,
        metrics: metrics.clone(),
        responder: jobs::Responder {
            store: store.clone(),
            times,
        },
        hub: hub.clone(),
        runner: runner.clone(),
        ownership: ownership.clone(),
        escalation: escalation_wake.clone(),
        bus: bus.clone(),
    };
    if fault::processing_held() {
        tracing::warn!(
            "{} is set: events are accepted but not processed",
            fault::HOLD_PROCESSING_ENV
        );
    } else {
        processor.spawn(processor_wake.clone());
    }

    // A certificate that does not load is found before anything listens.
    let tls = match (&config.server.tls_cert, &config.server.tls_key) {
        (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
        (None, None) => None,
        _ => return Err(tls::TlsError::Incomplete.into()),
    };
    let listen = config.server.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| ServerError::Listen {
            addr: listen,
            source,
        })?;
    let local = listener.local_addr().map_err(ServerError::Serve)?;
    let url = format!("{}://{local}", if tls.is_some() { "https" } else { "http" });
    runner.set_base_url(config.server.public_url.as_deref().unwrap_or(&url));
    runner.clone().spawn();
    write_private_file(&data_dir.join(SERVER_URL_FILE), &url).map_err(dir_error)?;

    let sns_signatures = sns_signature::Verifier::new(
        config.ingest.sns.signing_cert_url_hosts.clone(),
    )
    .map_err(|e| {
        ServerError::Config(ConfigError::Invalid(format!(
            "cannot set up the HTTP client for SNS signing certificates: {e}"
        )))
    })?;
    let state = AppState {
        config: Arc::new(config),
        store: store.clone(),
        auth: Arc::new(auth::Auth::new(store.clone()).with_bus(bus.clone())),
        ingest,
        metrics,
        jobs: hub,
        engine: engine.clone(),
        ownership: ownership.clone(),
        clock: clock.clone(),
        runner: runner.clone(),
        processor: processor_wake.clone(),
        escalation: escalation_wake.clone(),
        sns_signatures: Arc::new(sns_signatures),
        forward: forward.clone(),
        query_api,
        bus: bus.clone(),
    };
    bus.listen(bus::Targets {
        processor: processor_wake.clone(),
        escalation: escalation_wake.clone(),
        runner: runner.clone(),
        jobs: state.jobs.clone(),
        auth: state.auth.clone(),
        ownership: ownership.clone(),
        engine: engine.clone(),
        store: store.clone(),
    })
    .await?;
    {
        let bus = bus.clone();
        bus.clone()
            .spawn_heartbeat(url.clone(), move || bus.is_connected());
    }
    jobs::spawn_sweeper(store.clone(), runner.clone(), state.jobs.clone());
    escalation::spawn(
        store.clone(),
        ownership.clone(),
        clock.clone(),
        escalation_wake,
        processor_wake.clone(),
        state.metrics.clone(),
        state.config.escalation.after_minutes.clone(),
    );
    metric_sources::spawn_ticker(
        engine.clone(),
        store.clone(),
        processor_wake,
        state.metrics.clone(),
    );
    let history = chart_history::Saver::new(engine.clone(), store.clone());
    history.spawn(
        state.metrics.clone(),
        std::time::Duration::from_secs(state.config.metrics.history_save_secs.max(1)),
    );
    let graphite = state.config.metrics.graphite_listen.clone();
    if !graphite.is_empty() {
        metric_sources::spawn_graphite(
            graphite,
            engine,
            ownership.clone(),
            forward.clone(),
            state.metrics.clone(),
            data_dir.clone(),
        )
        .await;
    }
    tracing::info!(url = %url, rules = rules.len(), data_dir = %data_dir.display(), "vigil is listening");
    on_start(&Started {
        url,
        admin_token,
        token_created,
        token_path: data_dir.join(auth::ADMIN_TOKEN_FILE),
    });
    let router = api::router(state);
    let (stopping_tx, mut stopping_rx) = tokio::sync::watch::channel(false);
    let stopping = async move {
        shutdown.await;
        let _ = stopping_tx.send(true);
    };
    let server = async move {
        match tls {
            Some(tls) => axum::serve(
                tls::TlsListener::new(listener, tls).map_err(ServerError::Serve)?,
                router,
            )
            .with_graceful_shutdown(stopping)
            .await
            .map_err(ServerError::Serve),
            None => axum::serve(listener, router)
                .with_graceful_shutdown(stopping)
                .await
                .map_err(ServerError::Serve),
        }
    };
    let grace = async move {
        if stopping_rx.wait_for(|stopping| *stopping).await.is_err() {
            // The server ended on its own; it decides the outcome.
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    let served = tokio::select! {
        served = server => served,
        () = grace => {
            tracing::info!("closed the connections still open at shutdown");
            Ok(())
        }
    };
    match history.save(now_ms()).await {
        Ok(blocks) => tracing::info!(blocks, "chart history saved"),
        Err(e) => tracing::error!(error = %e, "chart history not saved at shutdown"),
    }
    forward.drain(FORWARD_DRAIN).await;
    bus.leave().await;
    served
}

/// This server's name among members (step leases), kept in the data directory so it
/// survives restarts.
fn member_id(data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join(MEMBER_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
        Ok(_) | Err(_) => {
            let id = format!("vigil-{}", uuid::Uuid::new_v4().simple());
            write_private_file(&path, &id)?;
            Ok(id)
        }
    }
}

/// `VIGIL_BUS_URL`, else `[bus] url`; none for a server alone.
fn bus_url(config: &Config) -> Option<String> {
    std::env::var("VIGIL_BUS_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| config.bus.url.clone())
}

/// `VIGIL_STORE_URL`, else `[store] url`, else `vigil.db` in the data directory.
fn store_location(config: &Config) -> StoreLocation {
    match std::env::var("VIGIL_STORE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| config.store.url.clone())
    {
        Some(url) => StoreLocation::parse(&url),
        None => StoreLocation::Sqlite(config.server.data_dir.join(DATABASE_FILE)),
    }
}

/// Built-in alarms, then config's, then those made through the API (which win), and the
/// states every instance had when vigil stopped.
async fn load_alarms(
    config: &Config,
    store: &dyn Store,
) -> Result<alarm_engine::Engine, ServerError> {
    let engine = alarm_engine::Engine::new(
        now_ms(),
        alarm_engine::SeriesCaps::new(config.metrics.max_series, &config.metrics.series_caps),
    );
    let mut definitions = Vec::new();
    if config.metrics.default_alarms {
        definitions.extend(alarm_engine::default_alarms());
    }
    definitions.extend(config.alarms.iter().cloned());
    for (name, text) in store.alarms().await? {
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
    for record in store.alarm_states().await? {
        engine.restore_state(
            &record.alarm,
            &record.series,
            alarm_engine::RestoredState {
                state: record.state,
                since_ms: record.since.timestamp_millis(),
                reason: record.reason,
                reason_data: record.reason_data,
                value: record.value,
            },
        );
    }
    Ok(engine)
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
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
