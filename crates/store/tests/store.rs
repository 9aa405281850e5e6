use serde_json::json;
use vigil_core::{AlarmFacts, AlarmState, Event, IncidentStatus, Severity};
use vigil_store::{AlarmAction, IncidentChange, IncidentFilter, Store};

fn event(id: &str) -> Event {
    Event {
        version: "0".into(),
        id: id.into(),
        detail_type: "CloudWatch Alarm State Change".into(),
        source: "aws.cloudwatch".into(),
        account: "1".into(),
        time: "t".into(),
        region: "r".into(),
        resources: vec!["arn:a".into()],
        detail: json!({"alarmName": "cpu"}),
    }
}

fn facts(state: AlarmState) -> AlarmFacts {
    AlarmFacts {
        alarm_name: "cpu".into(),
        state: Some(state),
        resource: "arn:a".into(),
        ..Default::default()
    }
}

fn open_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("vigil.db")).unwrap();
    (dir, store)
}

#[test]
fn duplicate_event_ids_are_stored_once() {
    let (_dir, store) = open_store();
    let mut writer = store.ingest_writer().unwrap();
    let batch = [event("a"), event("b"), event("a")];
    let fresh = writer
        .insert_batches(&[("events", &batch[..])], "now")
        .unwrap();
    assert_eq!(fresh, vec![vec![true, true, false]]);
    assert_eq!(store.event_count().unwrap(), 2);
    assert_eq!(store.pending_events(10).unwrap().len(), 2);
}

#[test]
fn grouping_repeats_and_resolution() {
    let (_dir, store) = open_store();
    let mut writer = store.ingest_writer().unwrap();
    let batch: Vec<Event> = (0..4).map(|i| event(&format!("e{i}"))).collect();
    writer
        .insert_batches(&[("events", &batch[..])], "now")
        .unwrap();
    let pending = store.pending_events(10).unwrap();
    let alarm = facts(AlarmState::Alarm);
    let apply = |i: usize, f: &AlarmFacts, action| {
        store
            .apply_alarm(
                pending[i].seq,
                &pending[i].event.id,
                f,
                "cpu|arn:a",
                Severity::High,
                action,
                "now",
            )
            .unwrap()
    };
    assert_eq!(
        apply(0, &alarm, AlarmAction::OpenOrRepeat),
        IncidentChange::Opened {
            key: "INC-1".into()
        }
    );
    assert_eq!(
        apply(1, &alarm, AlarmAction::OpenOrRepeat),
        IncidentChange::Repeated {
            key: "INC-1".into(),
            count: 2
        }
    );
    assert_eq!(
        apply(2, &facts(AlarmState::Ok), AlarmAction::Resolve),
        IncidentChange::Resolved {
            key: "INC-1".into()
        }
    );
    assert_eq!(
        apply(3, &alarm, AlarmAction::OpenOrRepeat),
        IncidentChange::Opened {
            key: "INC-2".into()
        }
    );
    assert!(store.pending_events(10).unwrap().is_empty());

    let inc = store.incident("INC-1").unwrap().unwrap();
    assert_eq!(inc.status, IncidentStatus::Resolved);
    assert_eq!(inc.count, 2);
    assert_eq!(inc.timeline.len(), 3);
    let open = store
        .list_incidents(&IncidentFilter {
            status: Some(IncidentStatus::Open),
            limit: 0,
            appcodes: None,
        })
        .unwrap();
    assert_eq!(
        open.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(),
        ["INC-2"]
    );
}

#[test]
fn acknowledge_then_resolve_by_hand() {
    let (_dir, store) = open_store();
    let mut writer = store.ingest_writer().unwrap();
    writer
        .insert_batches(&[("events", &[event("x")][..])], "now")
        .unwrap();
    let seq = store.pending_events(1).unwrap()[0].seq;
    store
        .apply_alarm(
            seq,
            "x",
            &facts(AlarmState::Alarm),
            "g",
            Severity::High,
            AlarmAction::OpenOrRepeat,
            "t0",
        )
        .unwrap();
    let (inc, changed) = store.acknowledge("INC-1", "admin", "t1").unwrap().unwrap();
    assert!(changed);
    assert_eq!(inc.status, IncidentStatus::Acknowledged);
    assert_eq!(inc.acknowledged_at.as_deref(), Some("t1"));
    let (inc, _) = store.resolve("INC-1", "admin", "t2").unwrap().unwrap();
    assert_eq!(inc.status, IncidentStatus::Resolved);
    // A second acknowledgement changes nothing.
    let (inc, changed) = store.acknowledge("INC-1", "admin", "t3").unwrap().unwrap();
    assert!(!changed);
    assert_eq!(inc.status, IncidentStatus::Resolved);
    assert_eq!(inc.timeline.len(), 3);
    assert!(store.acknowledge("INC-9", "admin", "t").unwrap().is_none());
}

#[test]
fn tokens_by_hash() {
    let (_dir, store) = open_store();
    store.put_token("admin", "h1", "admin", "now").unwrap();
    assert_eq!(store.token_by_hash("h1").unwrap().unwrap().name, "admin");
    assert!(store.token_by_hash("h2").unwrap().is_none());
}

#[test]
fn reopening_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vigil.db");
    {
        let store = Store::open(&path).unwrap();
        store
            .ingest_writer()
            .unwrap()
            .insert_batches(&[("events", &[event("k")][..])], "now")
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.event_count().unwrap(), 1);
}
