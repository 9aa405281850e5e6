//! Metric series' compressed chart history, in opaque blocks.
//!
//! Blocks are written with the busy journal's durability (NORMAL, see the module above):
//! they are the server's own record of what it has seen, written again at its next flush,
//! and a power cut can only lose the latest of them.

use async_trait::async_trait;
use rusqlite::params;

use super::SqliteStore;
use crate::{latest_series_blocks, Result, SeriesBlock, SeriesHistoryStore};

/// The first page. `+end_ms`: the filter must not use the `end_ms` index, which would
/// read every block since `since_ms` and sort them all for each page; the primary key
/// answers in order and stops at the limit.
const FIRST_PAGE: &str = "SELECT series, start_ms, end_ms, data FROM series_blocks
     WHERE +end_ms > ?1
     ORDER BY series, start_ms LIMIT ?2";

/// A page after the keyset cursor `(?2, ?3)`.
const NEXT_PAGE: &str = "SELECT series, start_ms, end_ms, data FROM series_blocks
     WHERE +end_ms > ?1 AND (series, start_ms) > (?2, ?3)
     ORDER BY series, start_ms LIMIT ?4";

#[async_trait]
impl SeriesHistoryStore for SqliteStore {
    async fn put_series_blocks(&self, blocks: Vec<SeriesBlock>) -> Result<()> {
        if blocks.is_empty() {
            return Ok(());
        }
        let blocks = latest_series_blocks(blocks);
        self.blocking(move |db| {
            db.write_journal(|tx| {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO series_blocks (series, start_ms, end_ms, data)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (series, start_ms) DO UPDATE SET end_ms = excluded.end_ms,
                       data = excluded.data",
                )?;
                for b in &blocks {
                    stmt.execute(params![b.series, b.start_ms, b.end_ms, b.data])?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn series_blocks(
        &self,
        since_ms: i64,
        after: Option<(String, i64)>,
        limit: usize,
    ) -> Result<Vec<SeriesBlock>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.blocking(move |db| {
            db.read(|tx| {
                let block = |r: &rusqlite::Row<'_>| {
                    Ok(SeriesBlock {
                        series: r.get(0)?,
                        start_ms: r.get(1)?,
                        end_ms: r.get(2)?,
                        data: r.get(3)?,
                    })
                };
                let rows = match &after {
                    None => tx
                        .prepare_cached(FIRST_PAGE)?
                        .query_map(params![since_ms, limit], block)?
                        .collect::<rusqlite::Result<_>>()?,
                    Some((series, start_ms)) => tx
                        .prepare_cached(NEXT_PAGE)?
                        .query_map(params![since_ms, series, start_ms, limit], block)?
                        .collect::<rusqlite::Result<_>>()?,
                };
                Ok(rows)
            })
        })
        .await
    }

    async fn delete_series_blocks_before(&self, before_ms: i64) -> Result<u64> {
        self.blocking(move |db| {
            db.write_journal(|tx| {
                let deleted = tx
                    .prepare_cached("DELETE FROM series_blocks WHERE end_ms <= ?1")?
                    .execute([before_ms])?;
                Ok(deleted as u64)
            })
        })
        .await
    }
}
