//! The bus between the members of a cluster (`[bus] url`, NATS): wake-ups and cache
//! invalidations that must reach every member, and membership heartbeats in a JetStream
//! key-value bucket. A server alone has no bus: its signals stay in the process.
//!
//! What crosses the bus is a signal, never state: state lives in the store, and a signal
//! only says "look again" (a job was queued, a step journaled, a token revoked). Each
//! member rings its own in-process doorbells when one arrives, and ignores its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

const MEMBER_HEADER: &str = "Vigil-Member";
/// Signals waiting to be published; a bus that cannot keep up drops the rest (and says so).
const OUTBOX: usize = 16_384;
/// The JetStream key-value bucket members heartbeat into is this and the cluster's name.
pub const MEMBERS_BUCKET: &str = "vigil_members_";
/// How often a member says it is alive, and how long the bucket keeps what it said: a member
/// silent for this long is gone.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
pub const MEMBER_TTL: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A reason for other members to look again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// Events were accepted: the processor reads the pending ones.
    Processor,
    /// A run was journaled or a step finished: runners claim what is due.
    Runner,
    /// An incident opened or was acknowledged: the escalation sweeper looks again.
    Escalation,
    /// Jobs were queued for this host: its agent's long poll (on whichever member holds it)
    /// claims them.
    Jobs(String),
    /// Tokens were revoked or changed: cached ones are forgotten.
    Tokens,
    /// The application tree or host bindings changed: it is read again from the store.
    Tree,
    /// This alarm definition was put or deleted: it is read again from the store.
    Alarm(String),
}

impl Signal {
    /// The subject after `vigil.<cluster>.`.
    fn subject(&self) -> &'static str {
        match self {
            Signal::Processor => "wake.processor",
            Signal::Runner => "wake.runner",
            Signal::Escalation => "wake.escalation",
            Signal::Jobs(_) => "wake.jobs",
            Signal::Tokens => "invalidate.tokens",
            Signal::Tree => "invalidate.tree",
            Signal::Alarm(_) => "invalidate.alarms",
        }
    }

    /// Names travel in the payload, not the subject: a host name may hold dots, which NATS
    /// reads as subject separators.
    fn payload(&self) -> Bytes {
        match self {
            Signal::Jobs(name) | Signal::Alarm(name) => Bytes::from(name.clone()),
            _ => Bytes::new(),
        }
    }

    fn decode(subject: &str, payload: &[u8]) -> Option<Signal> {
        let name = || String::from_utf8(payload.to_vec()).ok();
        Some(match subject {
            "wake.processor" => Signal::Processor,
            "wake.runner" => Signal::Runner,
            "wake.escalation" => Signal::Escalation,
            "wake.jobs" => Signal::Jobs(name()?),
            "invalidate.tokens" => Signal::Tokens,
            "invalidate.tree" => Signal::Tree,
            "invalidate.alarms" => Signal::Alarm(name()?),
            _ => return None,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot reach NATS at {url}: {detail} (is nats-server running there? `[bus] url` or VIGIL_BUS_URL says where)")]
    Unreachable { url: String, detail: String },
    #[error("NATS at {url} has JetStream disabled ({detail}); start nats-server with `-js` (or `jetstream {{}}` in its config): members heartbeat into a JetStream key-value bucket")]
    NoJetStream { url: String, detail: String },
    #[error("NATS at {url}: cannot open the members' key-value bucket: {detail}")]
    Bucket { url: String, detail: String },
    #[error("`[bus] cluster` = {0:?}: a cluster's name is letters, digits, `-` and `_`")]
    ClusterName(String),
}

/// What a member says of itself in the members bucket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MemberInfo {
    pub member: String,
    /// Where it listens (`http://127.0.0.1:8080`).
    pub url: String,
    pub started_at_ms: i64,
    pub heartbeat_at_ms: i64,
    /// Whether it claims work now (false while it cannot reach the store).
    pub claiming: bool,
}

/// This member's link to the others. Cheap to clone; a server alone holds `Bus::alone()`.
#[derive(Clone, Default)]
pub struct Bus {
    link: Option<Arc<Link>>,
}

struct Link {
    url: String,
    /// `vigil.<cluster>.`: every subject of this cluster starts with it.
    prefix: String,
    member: String,
    client: async_nats::Client,
    outbox: mpsc::Sender<Signal>,
    connected: Arc<AtomicBool>,
    members: jetstream::kv::Store,
}

/// What a signal from another member rings in this one.
pub struct Targets {
    pub processor: crate::pipeline::Wake,
    pub escalation: crate::pipeline::Wake,
    pub runner: Arc<crate::runner::Runner>,
    pub jobs: Arc<crate::jobs::JobHub>,
    pub auth: Arc<crate::auth::Auth>,
    pub ownership: Arc<crate::ownership::Ownership>,
    pub engine: Arc<crate::alarm_engine::Engine>,
    pub store: Arc<dyn vigil_store::Store>,
}

impl Bus {
    /// No other member: signals ring only this process.
    pub fn alone() -> Bus {
        Bus { link: None }
    }

    /// Connects to NATS, checks JetStream and opens the members bucket; refuses with a
    /// message saying what to fix when any of that fails.
    pub async fn connect(url: &str, cluster: &str, member: &str) -> Result<Bus, BusError> {
        if cluster.is_empty()
            || !cluster
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(BusError::ClusterName(cluster.to_string()));
        }
        let connected = Arc::new(AtomicBool::new(true));
        let flag = connected.clone();
        let shown_url = url.to_string();
        let client = async_nats::ConnectOptions::new()
            .name(member)
            .connection_timeout(CONNECT_TIMEOUT)
            .max_reconnects(None)
            .event_callback(move |event| {
                let flag = flag.clone();
                let url = shown_url.clone();
                async move {
                    match event {
                        async_nats::Event::Disconnected => {
                            flag.store(false, Ordering::SeqCst);
                            tracing::error!(bus = %url, "lost the bus: this member stops claiming work and other members stop hearing from it until NATS answers again");
                        }
                        async_nats::Event::Connected => {
                            flag.store(true, Ordering::SeqCst);
                            tracing::info!(bus = %url, "bus connected");
                        }
                        other => tracing::warn!(bus = %url, event = %other, "bus"),
                    }
                }
            })
            .connect(url)
            .await
            .map_err(|e| BusError::Unreachable {
                url: url.to_string(),
                detail: e.to_string(),
            })?;
        let jetstream = jetstream::new(client.clone());
        let members = jetstream
            .create_key_value(jetstream::kv::Config {
                bucket: format!("{MEMBERS_BUCKET}{cluster}"),
                description: "vigil members and their heartbeats".to_string(),
                history: 1,
                max_age: MEMBER_TTL,
                ..Default::default()
            })
            .await
            .map_err(|e| {
                let detail = e.to_string();
                // A server without JetStream has no one answering its API subjects.
                if detail.contains("no responders") || detail.contains("not enabled") {
                    BusError::NoJetStream {
                        url: url.to_string(),
                        detail,
                    }
                } else {
                    BusError::Bucket {
                        url: url.to_string(),
                        detail,
                    }
                }
            })?;
        let (outbox, queued) = mpsc::channel(OUTBOX);
        let link = Arc::new(Link {
            url: url.to_string(),
            prefix: format!("vigil.{cluster}."),
            member: member.to_string(),
            client,
            outbox,
            connected,
            members,
        });
        tokio::spawn(publish_outbox(link.clone(), queued));
        tracing::info!(bus = %url, member, "joined the cluster bus");
        Ok(Bus { link: Some(link) })
    }

    pub fn is_cluster(&self) -> bool {
        self.link.is_some()
    }

    /// False while a cluster member cannot reach NATS; always true alone.
    pub fn is_connected(&self) -> bool {
        self.link
            .as_ref()
            .is_none_or(|link| link.connected.load(Ordering::SeqCst))
    }

    /// Tells the other members (this one rings its own doorbells itself).
    pub fn publish(&self, signal: Signal) {
        let Some(link) = &self.link else { return };
        if let Err(e) = link.outbox.try_send(signal) {
            tracing::warn!(bus = %link.url, error = %e, "bus outbox full; a wake-up for other members was dropped (they look again on their next timer)");
        }
    }

    /// Listens for other members' signals and rings this member's doorbells.
    pub async fn listen(&self, targets: Targets) -> Result<(), BusError> {
        let Some(link) = &self.link else {
            return Ok(());
        };
        let mut subscription = link
            .client
            .subscribe(format!("{}>", link.prefix))
            .await
            .map_err(|e| BusError::Unreachable {
                url: link.url.clone(),
                detail: e.to_string(),
            })?;
        let me = link.member.clone();
        let prefix = link.prefix.clone();
        let targets = Arc::new(targets);
        tokio::spawn(async move {
            while let Some(message) = subscription.next().await {
                let from = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(MEMBER_HEADER))
                    .map(|v| v.as_str().to_string());
                if from.as_deref() == Some(me.as_str()) {
                    continue;
                }
                let Some(signal) = message
                    .subject
                    .as_str()
                    .strip_prefix(prefix.as_str())
                    .and_then(|subject| Signal::decode(subject, &message.payload))
                else {
                    continue;
                };
                targets.ring(signal).await;
            }
        });
        Ok(())
    }

    /// Says, every [`HEARTBEAT`], that this member lives; the bucket forgets a member
    /// silent for [`MEMBER_TTL`].
    pub fn spawn_heartbeat(&self, url: String, claiming: impl Fn() -> bool + Send + 'static) {
        let Some(link) = self.link.clone() else {
            return;
        };
        let started_at_ms = crate::now_ms();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(HEARTBEAT);
            loop {
                ticks.tick().await;
                let info = MemberInfo {
                    member: link.member.clone(),
                    url: url.clone(),
                    started_at_ms,
                    heartbeat_at_ms: crate::now_ms(),
                    claiming: claiming(),
                };
                let Ok(body) = serde_json::to_vec(&info) else {
                    continue;
                };
                if let Err(e) = link.members.put(&link.member, Bytes::from(body)).await {
                    tracing::warn!(bus = %link.url, error = %e, "heartbeat not written");
                }
            }
        });
    }

    /// The live members, this one included when its heartbeat is in, by name.
    pub async fn members(&self) -> Result<Vec<MemberInfo>, BusError> {
        let Some(link) = &self.link else {
            return Ok(Vec::new());
        };
        let failed = |detail: String| BusError::Bucket {
            url: link.url.clone(),
            detail,
        };
        let mut keys = link
            .members
            .keys()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let mut members = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| failed(e.to_string()))?;
            if let Some(value) = link
                .members
                .get(&key)
                .await
                .map_err(|e| failed(e.to_string()))?
            {
                if let Ok(info) = serde_json::from_slice::<MemberInfo>(&value) {
                    members.push(info);
                }
            }
        }
        members.sort_by(|a, b| a.member.cmp(&b.member));
        Ok(members)
    }

    /// Says this member left, so the others need not wait for its heartbeat to run out.
    pub async fn leave(&self) {
        if let Some(link) = &self.link {
            if let Err(e) = link.members.purge(&link.member).await {
                tracing::warn!(bus = %link.url, error = %e, "could not say this member left; it drops out when its heartbeat runs out");
            }
            let _ = link.client.flush().await;
        }
    }
}

async fn publish_outbox(link: Arc<Link>, mut queued: mpsc::Receiver<Signal>) {
    while let Some(signal) = queued.recv().await {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(MEMBER_HEADER, link.member.as_str());
        if let Err(e) = link
            .client
            .publish_with_headers(
                format!("{}{}", link.prefix, signal.subject()),
                headers,
                signal.payload(),
            )
            .await
        {
            tracing::warn!(bus = %link.url, error = %e, subject = signal.subject(), "could not publish a wake-up");
        }
    }
}

impl Targets {
    async fn ring(&self, signal: Signal) {
        match signal {
            Signal::Processor => self.processor.poke_local(),
            Signal::Escalation => self.escalation.poke_local(),
            Signal::Runner => self.runner.wake_local(),
            Signal::Jobs(host) => self.jobs.ring_local(&host),
            Signal::Tokens => self.auth.forget_cached_local(),
            Signal::Tree => {
                if let Err(e) = self.ownership.reload(self.store.as_ref()).await {
                    tracing::error!(error = %e, "the application tree changed on another member and could not be read again; it is read on the next change");
                }
            }
            Signal::Alarm(name) => {
                if let Err(e) = self.reload_alarm(&name).await {
                    tracing::error!(alarm = %name, error = %e, "an alarm changed on another member and could not be read again");
                }
            }
        }
    }

    /// Puts the stored definition in the engine, or deletes the alarm when none is stored.
    async fn reload_alarm(&self, name: &str) -> Result<(), String> {
        let stored = self
            .store
            .alarms()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|(stored, _)| stored == name);
        match stored {
            Some((_, text)) => {
                let definition =
                    serde_json::from_str::<crate::alarm_engine::AlarmDefinition>(&text)
                        .map_err(|e| format!("stored definition unreadable: {e}"))?;
                let alarm = definition.compile().map_err(|e| e.to_string())?;
                self.engine.put_alarm(alarm);
            }
            None => {
                self.engine.delete_alarm(name);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signal_reads_back_from_its_subject_and_payload() {
        for signal in [
            Signal::Processor,
            Signal::Runner,
            Signal::Escalation,
            Signal::Jobs("web-01.example.com".into()),
            Signal::Tokens,
            Signal::Tree,
            Signal::Alarm("High CPU Utilization".into()),
        ] {
            assert_eq!(
                Signal::decode(signal.subject(), &signal.payload()),
                Some(signal.clone())
            );
        }
        assert_eq!(Signal::decode("wake.unknown", b""), None);
    }
}
