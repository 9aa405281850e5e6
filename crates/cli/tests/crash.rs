//! The crash-point matrix: the real binary is killed at every boundary of the flow — after
//! the incident commits with its jobs and run, after a probe's answer commits, after steps
//! are claimed, after each external call (before its outcome is journaled) and after each
//! journal write, after an escalation commits, after a resolution by hand commits — and
//! restarted. Whatever the point, the incident ends with its diagnostics, exactly one Jira
//! issue (one diagnostics comment, resolved), and exactly one message per change (one
//! Message-ID), against jira_fake.py, a real SMTP server and a real agent. The one window
//! no store can close — killed after the SMTP server accepted a message, before the journal
//! records it — re-sends that same message (same Message-ID) after the restart; the
//! `after_call:notify` case checks that this is all that happens.
//!
//! `VIGIL_FAULT_CRASH_AFTER=<point>` makes the server abort (no destructors, no flush) the
//! first time it passes the point; the restart runs without it. The suite runs on SQLite,
//! and on PostgreSQL when `VIGIL_TEST_STORE_URL` is set (scripts/test does both).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::stack::*;
use serde_json::{json, Value};

/// How the incident ends in a scenario.
#[derive(Clone, Copy, PartialEq)]
enum Ending {
    /// An OK event from CloudWatch.
    Recovery,
    /// `POST /api/v1/incidents/INC-1/resolve`.
    ByHand,
}

/// Which emails a change sends, told apart by their Message-IDs
/// (`<vigil-INC-1-notify-email-KIND@vigil>`).
fn emails_of(dir: &Path, kind: &str) -> Vec<Value> {
    mails(dir)
        .into_iter()
        .filter(|m| {
            m["message_id"]
                .as_str()
                .is_some_and(|id| id.contains(&format!("-notify-email-{kind}@")))
        })
        .collect()
}

async fn issues(http: &reqwest::Client, url: &str) -> Vec<Value> {
    jira_state(http, url).await["issues"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn comments(issue: &Value) -> Vec<String> {
    issue["fields"]["comment"]["comments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["body"].as_str().map(str::to_string))
        .collect()
}

const CLOCK: (&str, &str) = ("VIGIL_TEST_CLOCK", "1");

/// Waits until `done` holds; if the server died on the way (the crash point), restarts it
/// without the fault and waits again. Returns whether it crashed.
async fn phase(stack: &mut Stack, what: &str, done: impl AsyncFn(&Stack) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut crashed = false;
    loop {
        if done(stack).await {
            // A crash point right after the effect that made `done` true: let it fire
            // before the next step talks to the server.
            tokio::time::sleep(Duration::from_millis(500)).await;
            if stack.server.is_running() {
                return crashed;
            }
        }
        if !stack.server.is_running() {
            assert!(
                !crashed,
                "the server died again during {what} after its restart"
            );
            crashed = true;
            stack.restart(&[CLOCK]).await;
            continue;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn crash_at(point: &str, escalate: bool, ending: Ending) {
    let mut stack = Stack::start(
        &[],
        true,
        true,
        &[("VIGIL_FAULT_CRASH_AFTER", point), CLOCK],
    )
    .await;
    let http = reqwest::Client::new();
    let (status, _) = stack
        .server
        .post(
            "/api/v1/events",
            event("cloudwatch-alarm-ok-to-alarm.json", "crash-open").to_string(),
        )
        .await;
    assert_eq!(status, 202);

    let mut crashed = phase(
        &mut stack,
        "the issue, its diagnostics comment and the email",
        async |stack: &Stack| {
            let found = issues(&http, &stack.jira_url).await;
            found.len() == 1
                && !comments(&found[0]).is_empty()
                && emails_of(&stack.mail_dir, "opened").len() == 1
        },
    )
    .await;

    if escalate {
        // Past the first escalation level (15 minutes) on the test clock.
        let (status, _) = stack
            .server
            .post(
                "/api/v1/test/clock",
                json!({"seconds": 16 * 60}).to_string(),
            )
            .await;
        assert_eq!(status, 200);
        crashed |= phase(&mut stack, "the escalation email", async |stack: &Stack| {
            emails_of(&stack.mail_dir, "escalated-1").len() == 1
        })
        .await;
    }

    match ending {
        Ending::Recovery => {
            let (status, _) = stack
                .server
                .post(
                    "/api/v1/events",
                    event("cloudwatch-alarm-alarm-to-ok.json", "crash-recover").to_string(),
                )
                .await;
            assert_eq!(status, 202);
        }
        Ending::ByHand => {
            let answer = stack
                .server
                .http
                .post(format!(
                    "{}/api/v1/incidents/INC-1/resolve",
                    stack.server.url
                ))
                .bearer_auth(&stack.server.token)
                .send()
                .await;
            // The crash may come before the answer: then the connection breaks.
            if let Ok(answer) = answer {
                assert_eq!(answer.status(), 200, "resolving by hand");
            }
        }
    }
    crashed |= phase(
        &mut stack,
        "the resolved email and the issue done",
        async |stack: &Stack| {
            let found = issues(&http, &stack.jira_url).await;
            emails_of(&stack.mail_dir, "resolved").len() == 1
                && found.len() == 1
                && found[0]["fields"]["status"]["name"] == "Done"
        },
    )
    .await;
    assert!(crashed, "the flow never passed the crash point `{point}`");

    // Anything a restart would send twice goes out before the journal is done with it.
    stack.server.settled("INC-1").await;
    let found = issues(&http, &stack.jira_url).await;
    assert_eq!(found.len(), 1, "exactly one Jira issue");
    let notes = comments(&found[0]);
    assert_eq!(
        notes.iter().filter(|c| c.contains("top_cpu")).count(),
        1,
        "one diagnostics comment: {notes:?}"
    );
    assert_eq!(
        notes.len(),
        2,
        "diagnostics and resolution comments: {notes:?}"
    );
    let all = mails(&stack.mail_dir);
    let ids: Vec<&str> = all
        .iter()
        .filter_map(|m| m["message_id"].as_str())
        .collect();
    let distinct: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
    let expected = if escalate { 3 } else { 2 };
    assert_eq!(distinct.len(), expected, "one message per change: {ids:?}");
    // SMTP has no idempotency of its own: killed after the server accepted a message and
    // before the journal says so, the restart sends that message again — the same message,
    // with the same Message-ID, which mail systems treat as one. Every other point sends
    // each message once.
    let resent = if point == "after_call:notify" { 1 } else { 0 };
    assert_eq!(ids.len(), expected + resent, "deliveries: {ids:?}");
    let opened = emails_of(&stack.mail_dir, "opened");
    assert!(
        opened[0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("top_cpu")),
        "the email carries the diagnostics: {}",
        opened[0]["text"]
    );
    let (_, incident) = stack.server.get("/api/v1/incidents/INC-1").await;
    assert_eq!(incident["status"], "resolved");
    assert!(
        incident["timeline"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["kind"] == "diagnostics"),
        "the incident has its diagnostics: {incident}"
    );
    assert_eq!(
        stack.server.incidents().await.len(),
        1,
        "no second incident"
    );
}

macro_rules! crash_points {
    ($($name:ident: $point:literal, escalate $escalate:literal, $ending:ident;)+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                crash_at($point, $escalate, Ending::$ending).await;
            }
        )+
    };
}

crash_points! {
    after_the_incident_commits: "processed", escalate false, Recovery;
    after_a_probe_answer_commits: "job_finished", escalate false, Recovery;
    after_steps_are_claimed: "claimed", escalate false, Recovery;
    after_the_issue_is_created: "after_call:ticket", escalate false, Recovery;
    after_the_issue_is_journaled: "journaled:ticket", escalate false, Recovery;
    after_the_comment_is_posted: "after_call:comment", escalate false, Recovery;
    after_the_comment_is_journaled: "journaled:comment", escalate false, Recovery;
    after_the_email_is_accepted: "after_call:notify", escalate false, Recovery;
    after_the_email_is_journaled: "journaled:notify", escalate false, Recovery;
    after_an_escalation_commits: "escalated", escalate true, Recovery;
    after_a_resolution_by_hand_commits: "manual_resolve", escalate false, ByHand;
    after_the_issue_is_resolved: "after_call:resolve_ticket", escalate false, Recovery;
    after_the_resolution_is_journaled: "journaled:resolve_ticket", escalate false, Recovery;
}
