//! A database written by the previous release (schema 5: `fixtures/schema-v5.db`, made by
//! running that release's `vigil up`, sending the fixture alarms, acknowledging INC-1,
//! resolving INC-2, adding an application with two owners, a token, an alarm and a refused
//! SNS subscription) opens under this code, migrates, and keeps everything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use vigil_core::{HostLifecycle, IncidentStatus};
use vigil_store::{
    AccessStore, AlarmStore, Channel, EventStore, HostStore, IncidentFilter, IncidentStore,
    RunKind, RunStore, SeriesBlock, SeriesHistoryStore, SnsStatus, SqliteStore, StepName,
    StepStatus, TokenRole,
};

/// sha256 of the token `alice` was given by the old release.
const ALICE_HASH: &str = "1556cebf44b4aa1882d0fe070f4dcf0280d94e9fd81ec9fc0482431d33d8bf3d";

#[tokio::test]
async fn a_schema_5_database_migrates_with_nothing_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vigil.db");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/schema-v5.db"),
        &path,
    )
    .expect("copy the fixture");
    let store = SqliteStore::open(&path).await.expect("open and migrate");
    assert_eq!(store.schema_version().await.expect("version"), 11);

    assert_eq!(store.event_count().await.expect("events"), 5);
    assert!(store.pending_events(10).await.expect("pending").is_empty());

    let incidents = store
        .list_incidents(IncidentFilter::default())
        .await
        .expect("incidents");
    let status = |key: &str| {
        incidents
            .iter()
            .find(|i| i.key == key)
            .map(|i| i.status)
            .unwrap_or_else(|| panic!("{key} is missing"))
    };
    assert_eq!(status("INC-1"), IncidentStatus::Acknowledged);
    assert_eq!(status("INC-2"), IncidentStatus::Resolved);
    assert_eq!(status("INC-3"), IncidentStatus::Open);
    assert_eq!(status("INC-4"), IncidentStatus::Open);
    let inc1 = store.incident("INC-1").await.expect("read").expect("INC-1");
    assert!(inc1.acknowledged_at.is_some());
    assert!(inc1.timeline.len() >= 3, "{:?}", inc1.timeline);
    // Incidents from before storms are alarms' incidents of no storm.
    assert!(incidents
        .iter()
        .all(|i| i.kind == vigil_core::IncidentKind::Alarm && i.storm.is_none()));

    // Comma-separated recipients became lists; steps are typed and still claimable.
    let steps = store.run_steps("INC-4").await.expect("steps");
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].name, StepName::Notify);
    assert_eq!(steps[0].channel, Channel::Email);
    assert_eq!(steps[0].kind, RunKind::Opened);
    assert_eq!(
        steps[0].recipients,
        vec![
            "carol@example.com".to_string(),
            "dan@example.com".to_string()
        ]
    );
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let claimed = store
        .claim_steps("upgrade-test", later, Duration::from_secs(60), 100)
        .await
        .expect("claim");
    // Runs 1, 2, 3 and 5 were pending (run 4 was skipped); each is claimable once.
    assert_eq!(claimed.len(), 4, "{claimed:?}");
    assert!(claimed.iter().all(|s| s.status == StepStatus::Pending));

    let alice = store
        .token_by_hash(ALICE_HASH)
        .await
        .expect("token")
        .expect("alice's token survives");
    assert_eq!(alice.name, "alice");
    assert_eq!(alice.role, TokenRole::Admin);

    let hosts = store.hosts().await.expect("hosts");
    assert!(hosts.iter().any(|h| h.name == "web-01"
        && h.appcode.as_deref() == Some("shop_web")
        && h.instance_id.as_deref() == Some("i-0abc")));
    // The old release wrote a host bound by the tree but never enrolled as enrolled and
    // revoked; it is declared now, and the enrolled one stays enrolled.
    let now = vigil_store::to_millis(chrono::Utc::now());
    let lifecycle = |name: &str| {
        hosts
            .iter()
            .find(|h| h.name == name)
            .map(|h| h.lifecycle(now))
            .unwrap_or_else(|| panic!("{name} is missing"))
    };
    assert_eq!(lifecycle("web-01"), HostLifecycle::Enrolled);
    assert_eq!(lifecycle("i-12345678901234567"), HostLifecycle::Declared);
    assert_eq!(
        store
            .apps()
            .await
            .expect("apps")
            .iter()
            .map(|a| a.0.as_str())
            .collect::<Vec<_>>(),
        vec!["shop"]
    );
    assert_eq!(store.alarms().await.expect("alarms")[0].0, "api-latency");

    // "refused: <reason>" became the status `refused`.
    let subscriptions = store.sns_subscriptions().await.expect("sns");
    assert_eq!(subscriptions.len(), 1);
    assert_eq!(subscriptions[0].1, SnsStatus::Refused);

    // Chart history starts empty and takes blocks.
    assert!(store
        .series_blocks(i64::MIN, None, 10)
        .await
        .expect("series blocks")
        .is_empty());
    let block = SeriesBlock {
        series: "web-01|cpu".into(),
        start_ms: 0,
        end_ms: 7_200_000,
        data: vec![0xff, 0x00, 0x80],
    };
    store
        .put_series_blocks(vec![block.clone()])
        .await
        .expect("put series blocks");
    assert_eq!(
        store
            .series_blocks(0, None, 10)
            .await
            .expect("series blocks"),
        [block]
    );
}

#[tokio::test]
async fn a_newer_schema_is_refused_with_a_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vigil.db");
    {
        let conn = rusqlite::Connection::open(&path).expect("create");
        conn.pragma_update(None, "user_version", 99)
            .expect("set version");
    }
    let error = SqliteStore::open(&path)
        .await
        .err()
        .expect("a newer schema must be refused");
    let message = error.to_string();
    assert!(
        message.contains("99") && message.contains("upgrade vigil"),
        "{message}"
    );
}
