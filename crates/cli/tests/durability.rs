//! The real binary is SIGKILLed while clients post: every event that was answered 202 must
//! be there after a restart, and processing must not open an incident twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{alarm_event, temp_dir, Server};
use serde_json::Value;

const ALARMS: [&str; 4] = ["CpuHigh", "MemHigh", "DiskFull", "NetSaturated"];
const CLIENTS: usize = 6;

/// Posts events from several clients until the server dies; returns the ids answered 202.
async fn post_until_killed(
    server: &mut Server,
    round: usize,
    kill_after: usize,
) -> BTreeSet<String> {
    alarm_event("fixture-check", ALARMS[0]); // fails here, not inside a client, if fixtures are missing
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let url = server.url.clone();
    let token = server.token.clone();
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let acknowledged = acknowledged.clone();
        let (url, token) = (url.clone(), token.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client");
            // Bounded: a client stops at 5,000 posts even if the kill never came.
            for n in 0..5000 {
                let id = format!("r{round}-c{client}-n{n}");
                let alarm = ALARMS[n % ALARMS.len()];
                let body = if n % 7 == 0 {
                    // Some batches of several events in one request.
                    Value::Array(
                        (0..3)
                            .map(|k| alarm_event(&format!("{id}-{k}"), alarm))
                            .collect(),
                    )
                } else {
                    alarm_event(&id, alarm)
                };
                let ids: Vec<String> = match &body {
                    Value::Array(events) => events
                        .iter()
                        .map(|e| e["id"].as_str().unwrap_or_default().to_string())
                        .collect(),
                    event => vec![event["id"].as_str().unwrap_or_default().to_string()],
                };
                match http
                    .post(format!("{url}/api/v1/events"))
                    .bearer_auth(&token)
                    .body(body.to_string())
                    .send()
                    .await
                {
                    Ok(answer) if answer.status() == 202 => {
                        acknowledged.lock().expect("lock").extend(ids)
                    }
                    Ok(answer) => panic!("unexpected status {}", answer.status()),
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().expect("lock").len() < kill_after {
        assert!(
            std::time::Instant::now() < deadline,
            "clients made too little progress"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    for client in clients {
        client.await.expect("client task");
    }
    let ids = acknowledged.lock().expect("lock").clone();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_answered_202_survive_sigkill_and_incidents_are_not_duplicated() {
    let dir = temp_dir();
    let mut all_acknowledged = BTreeSet::new();
    for (round, kill_after) in [(0, 400), (1, 900)] {
        let mut server = Server::start(dir.path()).await;
        let acknowledged = post_until_killed(&mut server, round, kill_after).await;
        assert!(acknowledged.len() >= kill_after);
        all_acknowledged.extend(acknowledged);
        eprintln!(
            "round {round}: {} events acknowledged before SIGKILL",
            all_acknowledged.len()
        );
    }

    let server = Server::start(dir.path()).await;
    let mut missing = Vec::new();
    for id in &all_acknowledged {
        let (status, _) = server.get(&format!("/api/v1/events/{id}")).await;
        if status != 200 {
            missing.push(id.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );

    // Every stored event gets processed exactly once: each alarm has one open incident whose
    // count is the number of its events that were stored (acknowledged ones, plus any whose
    // commit finished just as the process died).
    let incidents = server
        .wait_for_incidents("every accepted event processed", |all| {
            let counted: u64 = all.iter().filter_map(|i| i["count"].as_u64()).sum();
            all.len() == ALARMS.len() && counted >= all_acknowledged.len() as u64
        })
        .await;
    for alarm in ALARMS {
        let open: Vec<&Value> = incidents
            .iter()
            .filter(|i| i["alarm_name"] == alarm)
            .collect();
        assert_eq!(open.len(), 1, "one incident for {alarm}: {open:?}");
    }
    let counted: u64 = incidents.iter().filter_map(|i| i["count"].as_u64()).sum();
    // Unacknowledged posts that still committed are at most one in-flight request per client
    // per round, each of up to 3 events.
    let slack = (2 * CLIENTS * 3) as u64;
    assert!(
        counted <= all_acknowledged.len() as u64 + slack,
        "{counted} alarm events counted but only {} acknowledged (+{slack} in flight): something was processed twice",
        all_acknowledged.len()
    );
    let (_, events) = server.get("/api/v1/events/r0-c0-n1").await;
    assert_eq!(events["processed"], true);
}
