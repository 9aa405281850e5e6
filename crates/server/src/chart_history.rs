//! Chart history across restarts: the engine's compressed one-minute history is written to
//! the store in blocks (every `metrics.history_save_secs` and at shutdown) and read back at
//! start, so a restart keeps the last 24 hours of charts. Alarms do not depend on it: they
//! judge raw points, and states survive through the alarm-state table.

use std::sync::Arc;
use std::time::Duration;

use vigil_store::{SeriesBlock, Store};

use crate::alarm_engine::Engine;
use crate::metrics::Metrics;

/// Blocks read per page at start.
const LOAD_PAGE: usize = 10_000;
/// Blocks written per store call.
const SAVE_BATCH: usize = 20_000;
/// How far back charts go.
const HISTORY_MS: i64 = 24 * 3600 * 1000;

/// Reads back the history saved before the last stop; returns the blocks loaded. A block
/// that cannot be read is skipped and logged: charts lose it, nothing else does.
async fn load(engine: &Arc<Engine>, store: &dyn Store, now_ms: i64) -> usize {
    let since_ms = now_ms - HISTORY_MS;
    let mut after = None;
    let mut loaded = 0;
    loop {
        let page = match store
            .series_blocks(since_ms, after.clone(), LOAD_PAGE)
            .await
        {
            Ok(page) => page,
            Err(e) => {
                tracing::error!(error = %e, loaded, "chart history could not be read; charts start from now");
                return loaded;
            }
        };
        let Some(last) = page.last() else {
            return loaded;
        };
        after = Some((last.series.clone(), last.start_ms));
        let done = page.len() < LOAD_PAGE;
        let engine = engine.clone();
        let installed = tokio::task::spawn_blocking(move || {
            let mut installed = 0;
            for block in page {
                let history = vigil_history::Block {
                    start_ms: block.start_ms,
                    end_ms: block.end_ms,
                    data: block.data,
                };
                match engine.load_history(&block.series, &history) {
                    Ok(()) => installed += 1,
                    Err(e) => {
                        tracing::warn!(series = %block.series, start_ms = block.start_ms, error = %e, "chart history block skipped")
                    }
                }
            }
            installed
        })
        .await
        .unwrap_or(0);
        loaded += installed;
        if done {
            return loaded;
        }
    }
}

/// Writes chart history to the store. Blocks a failed write did not store are kept and
/// written by the next save, so a store outage loses no history (up to `MAX_PENDING`).
pub struct Saver {
    engine: Arc<Engine>,
    store: Arc<dyn Store>,
    pending: tokio::sync::Mutex<Vec<SeriesBlock>>,
    /// Set once the history saved before the start is back in memory. Until then nothing
    /// is saved: a block written before its stored copy is merged would replace it.
    loaded: std::sync::atomic::AtomicBool,
}

/// Blocks held for a store that keeps failing; beyond it the oldest are dropped.
const MAX_PENDING: usize = 2_000_000;

impl Saver {
    pub fn new(engine: Arc<Engine>, store: Arc<dyn Store>) -> Arc<Saver> {
        Arc::new(Saver {
            engine,
            store,
            pending: tokio::sync::Mutex::new(Vec::new()),
            loaded: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Writes the history changed since the last save, and forgets blocks older than the
    /// charts show. Returns the blocks written.
    pub async fn save(&self, now_ms: i64) -> Result<usize, vigil_store::StoreError> {
        if !self.loaded.load(std::sync::atomic::Ordering::Acquire) {
            tracing::warn!(
                "chart history not saved: the history saved before the start was still loading"
            );
            return Ok(0);
        }
        let mut pending = self.pending.lock().await;
        let taken = {
            let engine = self.engine.clone();
            tokio::task::spawn_blocking(move || engine.take_history_blocks())
                .await
                .unwrap_or_default()
        };
        pending.extend(taken.into_iter().map(|(series, block)| SeriesBlock {
            series,
            start_ms: block.start_ms,
            end_ms: block.end_ms,
            data: block.data,
        }));
        if pending.len() > MAX_PENDING {
            let dropped = pending.len() - MAX_PENDING;
            pending.drain(..dropped);
            tracing::error!(
                dropped,
                "chart history blocks dropped: the store has refused them too long"
            );
        }
        let mut written = 0;
        while !pending.is_empty() {
            let batch: Vec<SeriesBlock> = pending.iter().take(SAVE_BATCH).cloned().collect();
            let len = batch.len();
            self.store.put_series_blocks(batch).await?;
            pending.drain(..len);
            written += len;
        }
        self.store
            .delete_series_blocks_before(now_ms - HISTORY_MS)
            .await?;
        Ok(written)
    }

    /// Loads what was saved before the start, then saves every `every`.
    pub fn spawn(self: &Arc<Self>, metrics: Arc<Metrics>, every: Duration) {
        let saver = self.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let blocks = load(&saver.engine, saver.store.as_ref(), crate::now_ms()).await;
            saver
                .loaded
                .store(true, std::sync::atomic::Ordering::Release);
            tracing::info!(
                blocks,
                took_ms = started.elapsed().as_millis() as u64,
                "chart history loaded"
            );
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                match saver.save(crate::now_ms()).await {
                    Ok(written) => metrics.set("vigil_history_blocks_saved", written as i64),
                    Err(e) => {
                        tracing::error!(error = %e, "chart history not saved; the next save retries")
                    }
                }
            }
        });
    }
}
