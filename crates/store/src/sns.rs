use rusqlite::params;

use crate::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsSubscription {
    pub topic_arn: String,
    pub message_id: String,
    pub subscribe_url: String,
}

impl Store {
    /// Records a SubscriptionConfirmation with its decision (`pending`, `refused: …`).
    pub fn record_sns_subscription(
        &self,
        sub: &SnsSubscription,
        status: &str,
        now: &str,
    ) -> Result<()> {
        self.writer().execute(
            "INSERT INTO sns_subscriptions (topic_arn, message_id, subscribe_url, received_at, status)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (message_id) DO NOTHING",
            params![sub.topic_arn, sub.message_id, sub.subscribe_url, now, status],
        )?;
        Ok(())
    }

    pub fn set_sns_subscription_status(
        &self,
        message_id: &str,
        status: &str,
        detail: &str,
    ) -> Result<()> {
        self.writer().execute(
            "UPDATE sns_subscriptions SET status = ?2, detail = ?3 WHERE message_id = ?1",
            params![message_id, status, detail],
        )?;
        Ok(())
    }

    /// `(topic_arn, status)` of every recorded subscription, newest first.
    pub fn sns_subscriptions(&self) -> Result<Vec<(String, String)>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT topic_arn, status FROM sns_subscriptions ORDER BY received_at DESC",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
