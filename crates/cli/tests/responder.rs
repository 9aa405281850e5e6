//! The original design's promise, end to end with real parts: an alarm for a host with a
//! real agent becomes one Jira issue (against jira_fake.py) with the diagnostics as a
//! comment, one email (through a real aiosmtpd server), and on recovery a comment, a
//! transition and a "Resolved" email — exactly once, whatever fails on the way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::stack::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_original_scenario_ticket_comment_email_and_recovery() {
    let stack = Stack::start(&[], true, true, &[]).await;
    let http = reqwest::Client::new();
    let server = &stack.server;

    // OK → ALARM on CPU for the agent's host.
    let (status, _) = server
        .post(
            "/api/v1/events",
            event("cloudwatch-alarm-ok-to-alarm.json", "cpu-alarm").to_string(),
        )
        .await;
    assert_eq!(status, 202);
    let issues = until(
        "a Jira issue with the top_cpu comment",
        Duration::from_secs(60),
        async || {
            let state = jira_state(&http, &stack.jira_url).await;
            let issues = state["issues"].as_array()?.clone();
            (issues.len() == 1
                && issues[0]["fields"]["comment"]["comments"]
                    .as_array()
                    .is_some_and(|c| !c.is_empty()))
            .then_some(issues)
        },
    )
    .await;
    let issue = &issues[0];
    let key = issue["key"].as_str().expect("issue key").to_string();
    let summary = issue["fields"]["summary"].as_str().unwrap_or_default();
    assert!(
        summary.contains("123456789012") && summary.contains("CPU"),
        "{summary}"
    );
    let description = issue["fields"]["description"].as_str().unwrap_or_default();
    for detail in ["ServerCpuTooHigh", "us-east-1", INSTANCE, "50", "99.5"] {
        assert!(
            description.contains(detail),
            "description has {detail}: {description}"
        );
    }
    let comments = issue["fields"]["comment"]["comments"]
        .as_array()
        .expect("comments");
    assert_eq!(comments.len(), 1, "one comment: {comments:?}");
    assert!(
        comments[0]["body"]
            .as_str()
            .is_some_and(|b| b.contains("top_cpu") && b.contains("%CPU")),
        "{comments:?}"
    );

    let mail = until("the alarm email", Duration::from_secs(60), async || {
        let all = mails(&stack.mail_dir);
        (!all.is_empty()).then(|| all[0].clone())
    })
    .await;
    let text = mail["text"].as_str().unwrap_or_default();
    assert!(
        mail["subject"].as_str().is_some_and(|s| s.contains("CPU")),
        "{mail}"
    );
    for detail in [
        "ServerCpuTooHigh",
        "top_cpu",
        key.as_str(),
        &stack.jira_url,
        "99.5",
    ] {
        assert!(text.contains(detail), "email has {detail}:\n{text}");
    }
    assert!(
        mail["message_id"]
            .as_str()
            .is_some_and(|m| m.contains("INC-1")),
        "{mail}"
    );

    // OK → INSUFFICIENT_DATA on memory: its own issue, comment (collector probes) and email.
    let (status, _) = server
        .post(
            "/api/v1/events",
            event(
                "cloudwatch-alarm-ok-to-insufficient-data.json",
                "mem-nodata",
            )
            .to_string(),
        )
        .await;
    assert_eq!(status, 202);
    until(
        "the second issue with its comment and email",
        Duration::from_secs(60),
        async || {
            let state = jira_state(&http, &stack.jira_url).await;
            let issues = state["issues"].as_array()?.clone();
            let second = issues.iter().find(|i| i["key"] != key.as_str())?;
            let commented = second["fields"]["comment"]["comments"]
                .as_array()
                .is_some_and(|c| c.len() == 1);
            let mails = mails(&stack.mail_dir);
            (issues.len() == 2
                && commented
                && mails.len() == 2
                && mails.iter().any(|m| {
                    m["subject"]
                        .as_str()
                        .is_some_and(|s| s.contains("Insufficient"))
                }))
            .then_some(())
        },
    )
    .await;

    // Recovery: a comment, the transition to Done, a "Resolved" email.
    let (status, _) = server
        .post(
            "/api/v1/events",
            event("cloudwatch-alarm-alarm-to-ok.json", "cpu-ok").to_string(),
        )
        .await;
    assert_eq!(status, 202);
    until(
        "the recovery in Jira and by email",
        Duration::from_secs(60),
        async || {
            let state = jira_state(&http, &stack.jira_url).await;
            let issue = state["issues"]
                .as_array()?
                .iter()
                .find(|i| i["key"] == key.as_str())?
                .clone();
            let done = issue["fields"]["status"]["name"] == "Done";
            let comments = issue["fields"]["comment"]["comments"]
                .as_array()
                .map_or(0, Vec::len);
            let resolved_mail = mails(&stack.mail_dir).iter().any(|m| {
                m["subject"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("Resolved"))
            });
            (done && comments == 2 && resolved_mail).then_some(())
        },
    )
    .await;
    let state = jira_state(&http, &stack.jira_url).await;
    assert_eq!(
        state["issues"].as_array().map(Vec::len),
        Some(2),
        "no extra issues"
    );
    assert_eq!(
        mails(&stack.mail_dir).len(),
        3,
        "alarm, no-data and resolved emails, once each"
    );

    let (_, incident) = server.get("/api/v1/incidents/INC-1").await;
    assert_eq!(incident["tickets"][0]["id"], key.as_str());
    let deliveries = incident["deliveries"].as_array().expect("delivery log");
    assert!(
        deliveries
            .iter()
            .any(|d| d["channel"] == "email" && d["status"] == "done" && d["kind"] == "resolved"),
        "{deliveries:?}"
    );
    let shown = server.cli(&["incident", "show", "INC-1"]);
    let shown = String::from_utf8_lossy(&shown.stdout).to_string();
    assert!(
        shown.contains("deliveries:") && shown.contains(&key),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_repeats_make_one_issue_and_one_email() {
    let stack = Stack::start(&[], true, false, &[]).await;
    let http = reqwest::Client::new();
    let server = std::sync::Arc::new(stack.server);
    let mut posts = Vec::new();
    for n in 0..1000 {
        let server = server.clone();
        posts.push(tokio::spawn(async move {
            server
                .post(
                    "/api/v1/events",
                    event("cloudwatch-alarm-ok-to-alarm.json", &format!("repeat-{n}")).to_string(),
                )
                .await
                .0
        }));
    }
    for post in posts {
        assert_eq!(post.await.expect("post"), 202);
    }
    server
        .wait_for_incidents("1000 repeats counted", |all| {
            all.iter().any(|i| i["count"] == 1000)
        })
        .await;
    until(
        "the one issue and the one email",
        Duration::from_secs(60),
        async || {
            let state = jira_state(&http, &stack.jira_url).await;
            (state["issues"].as_array().map(Vec::len) == Some(1)
                && mails(&stack.mail_dir).len() == 1)
                .then_some(())
        },
    )
    .await;
    // Repeats journal nothing: once the opening's steps are done, nothing more goes out.
    server.settled("INC-1").await;
    let state = jira_state(&http, &stack.jira_url).await;
    assert_eq!(state["issues"].as_array().map(Vec::len), Some(1));
    assert_eq!(mails(&stack.mail_dir).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jira_faults_and_an_smtp_outage_still_deliver_exactly_once() {
    // 503 for the first 5 writes, 429 for every 3rd request; SMTP down until the email
    // has failed twice.
    let mut stack = Stack::start(
        &["--fail-first", "5", "--rate-limit-every", "3"],
        false,
        true,
        &[],
    )
    .await;
    let http = reqwest::Client::new();
    let (status, _) = stack
        .server
        .post(
            "/api/v1/events",
            event("cloudwatch-alarm-ok-to-alarm.json", "faulty-1").to_string(),
        )
        .await;
    assert_eq!(status, 202);
    let stack_ref = &stack;
    until(
        "one issue with one comment despite the faults",
        Duration::from_secs(150),
        async || {
            let state = jira_state(&http, &stack_ref.jira_url).await;
            let issues = state["issues"].as_array()?.clone();
            (issues.len() == 1
                && issues[0]["fields"]["comment"]["comments"]
                    .as_array()
                    .is_some_and(|c| c.len() == 1))
            .then_some(())
        },
    )
    .await;
    // SMTP stays down until the email has failed twice: a retry, not just one attempt.
    until(
        "two failed email attempts",
        Duration::from_secs(60),
        async || {
            let (_, incident) = stack_ref.server.get("/api/v1/incidents/INC-1").await;
            incident["deliveries"]
                .as_array()?
                .iter()
                .any(|d| {
                    d["channel"] == "email"
                        && d["status"] == "pending"
                        && d["attempts"].as_i64().unwrap_or(0) >= 2
                })
                .then_some(())
        },
    )
    .await;
    assert!(mails(&stack.mail_dir).is_empty());
    stack.smtp = Some(smtp_sink(&stack.mail_dir, stack.smtp_port));
    let stack_ref = &stack;
    until(
        "the email after the outage",
        Duration::from_secs(90),
        async || (mails(&stack_ref.mail_dir).len() == 1).then_some(()),
    )
    .await;
    stack.server.settled("INC-1").await;
    assert_eq!(mails(&stack.mail_dir).len(), 1, "delivered once");
    let state = jira_state(&http, &stack.jira_url).await;
    assert_eq!(state["issues"].as_array().map(Vec::len), Some(1));
    assert!(
        state["write_requests"].as_u64().unwrap_or(0) > 2,
        "the faults were exercised: {state}"
    );

    let (_, incident) = stack.server.get("/api/v1/incidents/INC-1").await;
    let deliveries = incident["deliveries"].as_array().expect("deliveries");
    let email = deliveries
        .iter()
        .find(|d| d["channel"] == "email")
        .expect("email delivery");
    assert_eq!(email["status"], "done");
    assert!(
        email["attempts"].as_i64().unwrap_or(0) > 1,
        "the attempts show: {email}"
    );
    let ticket = deliveries
        .iter()
        .find(|d| d["name"] == "ticket")
        .expect("ticket delivery");
    assert!(ticket["attempts"].as_i64().unwrap_or(0) > 1, "{ticket}");
    let timeline = incident["timeline"].as_array().expect("timeline");
    assert!(
        timeline.iter().any(|t| t["message"]
            .as_str()
            .is_some_and(|m| m.contains("notify via email: attempt 1 failed"))),
        "{timeline:?}"
    );
    stack.restart(&[]).await; // the journal is closed: a restart sends nothing again
    stack.server.runner_idle().await;
    assert_eq!(mails(&stack.mail_dir).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_between_the_issue_and_the_comment_resumes_without_a_duplicate() {
    let mut stack = Stack::start(
        &[],
        true,
        true,
        &[("VIGIL_FAULT_CRASH_AFTER", "after_call:ticket")],
    )
    .await;
    let http = reqwest::Client::new();
    let (status, _) = stack
        .server
        .post(
            "/api/v1/events",
            event("cloudwatch-alarm-ok-to-alarm.json", "crash-1").to_string(),
        )
        .await;
    assert_eq!(status, 202);
    let stack_ref = &stack;
    until(
        "the issue created, then the server dead",
        Duration::from_secs(60),
        async || {
            let state = jira_state(&http, &stack_ref.jira_url).await;
            (state["issues"].as_array().map(Vec::len) == Some(1) && !stack_ref.server.is_running())
                .then_some(())
        },
    )
    .await;
    let state = jira_state(&http, &stack.jira_url).await;
    assert!(
        state["issues"][0]["fields"]["comment"]["comments"]
            .as_array()
            .is_none_or(|c| c.is_empty()),
        "crashed before the comment"
    );
    stack.restart(&[]).await;
    let stack_ref = &stack;
    until(
        "the comment after the restart",
        Duration::from_secs(60),
        async || {
            let state = jira_state(&http, &stack_ref.jira_url).await;
            let issues = state["issues"].as_array()?.clone();
            (issues[0]["fields"]["comment"]["comments"]
                .as_array()
                .is_some_and(|c| c.len() == 1)
                && mails(&stack_ref.mail_dir).len() == 1)
                .then_some(issues.len())
        },
    )
    .await;
    let state = jira_state(&http, &stack.jira_url).await;
    assert_eq!(
        state["issues"].as_array().map(Vec::len),
        Some(1),
        "no second issue"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slack_and_a_signed_webhook_get_one_message_each() {
    let (url, seen) = receiver().await;
    let slack = format!("{url}/slack");
    let hook = format!("{url}/hook");
    let stack = Stack::start(
        &[],
        true,
        false,
        &[
            ("VIGIL_SLACK_WEBHOOK_URL", slack.as_str()),
            ("VIGIL_WEBHOOK_URL", hook.as_str()),
            ("VIGIL_WEBHOOK_SECRET", "s3cret"),
        ],
    )
    .await;
    for n in 0..3 {
        let (status, _) = stack
            .server
            .post(
                "/api/v1/events",
                event("cloudwatch-alarm-ok-to-alarm.json", &format!("chat-{n}")).to_string(),
            )
            .await;
        assert_eq!(status, 202);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = {
            let seen = seen.lock().expect("lock");
            seen.iter().any(|(p, ..)| p == "/slack") && seen.iter().any(|(p, ..)| p == "/hook")
        };
        if done {
            break;
        }
        if Instant::now() > deadline {
            let (_, incident) = stack.server.get("/api/v1/incidents/INC-1").await;
            let paths: Vec<String> = seen
                .lock()
                .expect("lock")
                .iter()
                .map(|(p, ..)| p.clone())
                .collect();
            let log =
                std::fs::read_to_string(stack.server.data.join("server.log")).unwrap_or_default();
            panic!(
                "no Slack message and webhook: {paths:?} {} {incident}\n{log}",
                incident["deliveries"]
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stack
        .server
        .wait_for_incidents("the repeats grouped", |all| {
            all.len() == 1 && all[0]["count"] == 3
        })
        .await;
    stack.server.settled("INC-1").await;
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(
        seen.iter().filter(|(p, ..)| p == "/slack").count(),
        1,
        "repeats send nothing"
    );
    assert_eq!(seen.iter().filter(|(p, ..)| p == "/hook").count(), 1);
    let (_, _, slack_body) = seen.iter().find(|(p, ..)| p == "/slack").expect("slack");
    let slack: Value = serde_json::from_slice(slack_body).expect("slack JSON");
    assert!(
        slack["text"].as_str().is_some_and(|t| t.contains("CPU")),
        "{slack}"
    );
    assert!(
        slack["blocks"].to_string().contains("ServerCpuTooHigh"),
        "{slack}"
    );
    assert!(slack["blocks"].is_array());
    let (_, headers, body) = seen.iter().find(|(p, ..)| p == "/hook").expect("webhook");
    let signature = headers
        .iter()
        .find(|(k, _)| {
            k == vigil_integrations::webhook::SIGNATURE_HEADER
                .to_ascii_lowercase()
                .as_str()
        })
        .map(|(_, v)| v.clone())
        .expect("signature header");
    assert_eq!(
        signature,
        vigil_integrations::webhook::signature(b"s3cret", body),
        "the signature verifies"
    );
    let payload: Value = serde_json::from_slice(body).expect("webhook JSON");
    assert_eq!(payload["incident"]["key"], "INC-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolving_by_hand_is_told_like_a_recovery() {
    let stack = Stack::start(&[], true, false, &[]).await;
    let http = reqwest::Client::new();
    let (status, _) = stack
        .server
        .post(
            "/api/v1/events",
            event("cloudwatch-alarm-ok-to-alarm.json", "by-hand").to_string(),
        )
        .await;
    assert_eq!(status, 202);
    until("the alarm email", Duration::from_secs(60), async || {
        (mails(&stack.mail_dir).len() == 1).then_some(())
    })
    .await;
    let resolved = stack.server.cli(&["incident", "resolve", "INC-1"]);
    assert!(
        resolved.status.success(),
        "{}",
        String::from_utf8_lossy(&resolved.stderr)
    );
    until(
        "the Resolved email and the Jira transition",
        Duration::from_secs(60),
        async || {
            let state = jira_state(&http, &stack.jira_url).await;
            let done = state["issues"][0]["fields"]["status"]["name"] == "Done";
            let mails = mails(&stack.mail_dir);
            (done
                && mails.len() == 2
                && mails.iter().any(|m| {
                    m["subject"]
                        .as_str()
                        .is_some_and(|s| s.starts_with("Resolved"))
                }))
            .then_some(())
        },
    )
    .await;
}

/// A resolution by hand commits with its notifications: a crash right after the commit
/// still tells the tracker and the mailbox once the server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_right_after_a_resolution_by_hand_still_tells_everyone() {
    let mut stack = Stack::start(
        &[],
        true,
        false,
        &[("VIGIL_FAULT_CRASH_AFTER", "manual_resolve")],
    )
    .await;
    let http = reqwest::Client::new();
    let (status, _) = stack
        .server
        .post(
            "/api/v1/events",
            event("cloudwatch-alarm-ok-to-alarm.json", "by-hand-crash").to_string(),
        )
        .await;
    assert_eq!(status, 202);
    until("the alarm email", Duration::from_secs(60), async || {
        (mails(&stack.mail_dir).len() == 1).then_some(())
    })
    .await;
    // The server aborts inside this request, after the commit: no answer comes back.
    let _ = stack
        .server
        .http
        .post(format!(
            "{}/api/v1/incidents/INC-1/resolve",
            stack.server.url
        ))
        .bearer_auth(&stack.server.token)
        .send()
        .await;
    let stack_ref = &stack;
    until(
        "the server dead after the resolution",
        Duration::from_secs(20),
        async || (!stack_ref.server.is_running()).then_some(()),
    )
    .await;

    stack.restart(&[]).await;
    let (_, incident) = stack.server.get("/api/v1/incidents/INC-1").await;
    assert_eq!(incident["status"], "resolved", "{incident}");
    let stack_ref = &stack;
    until(
        "the Resolved email and the Jira transition after the restart",
        Duration::from_secs(60),
        async || {
            let state = jira_state(&http, &stack_ref.jira_url).await;
            let done = state["issues"][0]["fields"]["status"]["name"] == "Done";
            let mails = mails(&stack_ref.mail_dir);
            (done
                && mails.len() == 2
                && mails.iter().any(|m| {
                    m["subject"]
                        .as_str()
                        .is_some_and(|s| s.starts_with("Resolved"))
                }))
            .then_some(())
        },
    )
    .await;
}
