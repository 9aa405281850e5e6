//! Where metric points come from besides agents — the Graphite plaintext listener — and the
//! tick that judges alarms every second and feeds their state changes into the pipeline.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use vigil_ingest::{graphite, MetricPoint};
use vigil_store::{AlarmStateRecord, Store};

use crate::alarm_engine::{Engine, MetricSource, PushOutcome};
use crate::forward::Forwarder;
use crate::metrics::{labels, Metrics};
use crate::now_ms;
use crate::ownership::Ownership;
use crate::pipeline::Wake;

/// Where the Graphite listener's bound address is written (useful with port 0).
pub const GRAPHITE_ADDR_FILE: &str = "graphite.addr";

pub fn count_push(metrics: &Metrics, source: MetricSource, outcome: &PushOutcome) {
    let source = labels(&[("source", source.as_str())]);
    metrics.add(
        "vigil_samples_accepted_total",
        source.clone(),
        outcome.accepted as u64,
    );
    if outcome.rejected > 0 {
        metrics.add(
            "vigil_samples_rejected_total",
            source,
            outcome.rejected as u64,
        );
    }
    for (cap, refused) in &outcome.over_cap_by {
        metrics.add(
            "vigil_series_over_cap_total",
            labels(&[("cap", cap)]),
            *refused as u64,
        );
    }
}

/// Whose a new series is, for its Appcode's cap: its `appcode` label, else the binding of
/// its host (the `host` label, else `InstanceId`).
pub fn series_appcode(
    ownership: &Ownership,
    labels: &std::collections::BTreeMap<String, String>,
) -> Option<String> {
    if let Some(appcode) = labels.get("appcode") {
        return Some(appcode.clone());
    }
    let host = labels.get("host").or_else(|| labels.get("InstanceId"))?;
    ownership.appcode_for_host(host, labels)
}

/// Judges every alarm once a second. State changes and the `vigil.alarms` events that
/// announce them commit together: a crash loses neither, nor saves one without the other.
pub fn spawn_ticker(
    engine: Arc<Engine>,
    store: Arc<dyn Store>,
    processor: Wake,
    metrics: Arc<Metrics>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let judge = engine.clone();
            let now = crate::now();
            let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let changes = match tokio::task::spawn_blocking(move || {
                let started = std::time::Instant::now();
                let outcome = judge.tick_bounded(
                    now.timestamp_millis(),
                    &stamp,
                    crate::alarm_engine::MAX_CHANGES_PER_TICK,
                );
                (
                    outcome,
                    started.elapsed(),
                    judge.series_count(),
                    judge.instance_count(),
                )
            })
            .await
            {
                Ok((outcome, took, series, instances)) => {
                    metrics.set_float("vigil_alarm_tick_seconds", took.as_secs_f64());
                    metrics.set("vigil_series", series as i64);
                    metrics.set("vigil_alarm_instances", instances as i64);
                    if outcome.more {
                        // Instances are left to judge: the next tick comes once these
                        // changes are stored, not a second later.
                        tick.reset_immediately();
                    }
                    outcome.changes
                }
                Err(e) => {
                    tracing::error!(error = %e, "alarm tick failed");
                    continue;
                }
            };
            if changes.is_empty() {
                continue;
            }
            let mut records = Vec::with_capacity(changes.len());
            for change in &changes {
                metrics.inc(
                    "vigil_alarm_transitions_total",
                    labels(&[("state", change.state.as_str())]),
                );
                tracing::info!(alarm = %change.alarm, series = %change.series, state = change.state.as_str(), "alarm state changed");
                match chrono::DateTime::from_timestamp_millis(change.since_ms) {
                    Some(since) => records.push(AlarmStateRecord {
                        alarm: change.alarm.clone(),
                        series: change.series.clone(),
                        state: change.state,
                        since,
                        reason: Some(change.reason.clone()),
                        reason_data: Some(change.reason_data.clone()),
                        value: change.value,
                    }),
                    None => {
                        tracing::error!(alarm = %change.alarm, since_ms = change.since_ms, "alarm state time out of range; not saved")
                    }
                }
            }
            let events = changes.into_iter().map(|c| c.event).collect();
            match store.record_alarm_changes(records, events, now).await {
                Ok(()) => processor.poke(),
                Err(e) => tracing::error!(error = %e, "could not store alarm state changes"),
            }
        }
    });
}

/// Longest Graphite line read; longer ones are refused by the parser.
const MAX_LINE: usize = graphite::MAX_LINE_BYTES + 2;
/// Points gathered from one connection before they are pushed in one go.
const BATCH: usize = 1024;

/// Listens for Graphite plaintext lines. A failure to bind is logged, not fatal: the rest
/// of vigil works without it.
pub async fn spawn_graphite(
    addr: String,
    engine: Arc<Engine>,
    ownership: Arc<Ownership>,
    forward: Arc<Forwarder>,
    metrics: Arc<Metrics>,
    data_dir: PathBuf,
) {
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::warn!(addr = %addr, error = %e, "Graphite listener not started; set metrics.graphite_listen or --graphite");
            return;
        }
    };
    let local = match listener.local_addr() {
        Ok(local) => local,
        Err(e) => {
            tracing::warn!(error = %e, "Graphite listener has no address");
            return;
        }
    };
    if let Err(e) =
        crate::write_private_file(&data_dir.join(GRAPHITE_ADDR_FILE), &local.to_string())
    {
        tracing::warn!(error = %e, "could not write graphite.addr");
    }
    tracing::info!(addr = %local, "Graphite listener up");
    tokio::spawn(async move {
        loop {
            let (socket, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "Graphite accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let engine = engine.clone();
            let ownership = ownership.clone();
            let forward = forward.clone();
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(socket);
                let mut line = Vec::new();
                let mut batch: Vec<MetricPoint> = Vec::new();
                loop {
                    line.clear();
                    let read = (&mut reader)
                        .take(MAX_LINE as u64)
                        .read_until(b'\n', &mut line)
                        .await;
                    let done = match read {
                        Ok(0) => true,
                        Ok(_) => false,
                        Err(e) => {
                            tracing::debug!(peer = %peer, error = %e, "Graphite connection failed");
                            true
                        }
                    };
                    if !line.is_empty() {
                        match std::str::from_utf8(&line)
                            .map_err(|e| e.to_string())
                            .and_then(|text| {
                                graphite::parse_line(text, now_ms()).map_err(|e| e.to_string())
                            }) {
                            Ok(point) => batch.push(point),
                            Err(e) => {
                                metrics.inc(
                                    "vigil_samples_rejected_total",
                                    labels(&[("source", "graphite")]),
                                );
                                tracing::debug!(peer = %peer, error = %e, "Graphite line refused");
                            }
                        }
                    }
                    if batch.len() >= BATCH
                        || (done && !batch.is_empty())
                        || (!batch.is_empty() && reader.buffer().is_empty())
                    {
                        let outcome = engine.push(
                            &mut batch,
                            now_ms(),
                            MetricSource::Graphite,
                            &mut |labels| series_appcode(&ownership, labels),
                        );
                        forward.offer(&batch);
                        batch.clear();
                        if let Some(cap) = &outcome.cap {
                            tracing::warn!(peer = %peer, refused = outcome.over_cap, "Graphite series refused: {cap}");
                        }
                        count_push(&metrics, MetricSource::Graphite, &outcome);
                    }
                    if done {
                        return;
                    }
                }
            });
        }
    });
}
