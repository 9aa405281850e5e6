//! Metric series' compressed chart history, in opaque blocks.

use async_trait::async_trait;

use super::{exec, query, PostgresStore};
use crate::contract::SeriesHistoryStore;
use crate::types::*;
use crate::{latest_series_blocks, Result};

/// Blocks per statement at most: each statement is one round trip carrying its blocks as
/// arrays.
const CHUNK_BLOCKS: usize = 5_000;
/// Bytes of block data per statement at most, so one statement stays a modest message
/// however large the blocks are.
const CHUNK_BYTES: usize = 16 << 20;

/// Upserts the blocks of four parallel arrays. The arrays never name a key twice (the
/// caller keeps the latest block of each), which `ON CONFLICT DO UPDATE` requires.
const UPSERT: &str = "INSERT INTO series_blocks (series, start_ms, end_ms, data)
     SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bytea[])
     ON CONFLICT (series, start_ms) DO UPDATE SET end_ms = EXCLUDED.end_ms,
       data = EXCLUDED.data";

const FIRST_PAGE: &str = "SELECT series, start_ms, end_ms, data FROM series_blocks
     WHERE end_ms > $1
     ORDER BY series, start_ms LIMIT $2";

/// A page after the keyset cursor `($2, $3)`.
const NEXT_PAGE: &str = "SELECT series, start_ms, end_ms, data FROM series_blocks
     WHERE end_ms > $1 AND (series, start_ms) > ($2, $3)
     ORDER BY series, start_ms LIMIT $4";

#[async_trait]
impl SeriesHistoryStore for PostgresStore {
    async fn put_series_blocks(&self, blocks: Vec<SeriesBlock>) -> Result<()> {
        if blocks.is_empty() {
            return Ok(());
        }
        let blocks = latest_series_blocks(blocks);
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut rest = blocks.as_slice();
        while !rest.is_empty() {
            let mut bytes = 0;
            let mut take = 0;
            for block in rest.iter().take(CHUNK_BLOCKS) {
                // At least one block per statement, however large.
                if take > 0 && bytes + block.data.len() > CHUNK_BYTES {
                    break;
                }
                bytes += block.data.len();
                take += 1;
            }
            let (chunk, tail) = rest.split_at(take);
            rest = tail;
            let series: Vec<&str> = chunk.iter().map(|b| b.series.as_str()).collect();
            let starts: Vec<i64> = chunk.iter().map(|b| b.start_ms).collect();
            let ends: Vec<i64> = chunk.iter().map(|b| b.end_ms).collect();
            let data: Vec<&[u8]> = chunk.iter().map(|b| b.data.as_slice()).collect();
            exec(&tx, UPSERT, &[&series, &starts, &ends, &data]).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn series_blocks(
        &self,
        since_ms: i64,
        after: Option<(String, i64)>,
        limit: usize,
    ) -> Result<Vec<SeriesBlock>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let rows = match &after {
            None => query(&client, FIRST_PAGE, &[&since_ms, &limit]).await?,
            Some((series, start_ms)) => {
                query(&client, NEXT_PAGE, &[&since_ms, series, start_ms, &limit]).await?
            }
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(SeriesBlock {
                series: row.try_get("series")?,
                start_ms: row.try_get("start_ms")?,
                end_ms: row.try_get("end_ms")?,
                data: row.try_get("data")?,
            });
        }
        Ok(out)
    }

    async fn delete_series_blocks_before(&self, before_ms: i64) -> Result<u64> {
        let client = self.client().await?;
        exec(
            &client,
            "DELETE FROM series_blocks WHERE end_ms <= $1",
            &[&before_ms],
        )
        .await
    }
}
