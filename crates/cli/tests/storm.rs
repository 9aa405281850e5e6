//! Exactly once at scale: 2,000 distinct CloudWatch alarms posted within seconds, with
//! Jira (jira_fake.py) and a real SMTP server configured and storm grouping off, become
//! exactly 2,000 Jira issues and 2,000 emails — each step acted on by one worker, nothing
//! sent twice. (With storm grouping on, the same alarms make one storm: `storm_grouping.rs`.)
//!
//! Distinct alarm names never group (`alarm_name` + `resource`), so every event opens an
//! incident of its own.
//!
//! It runs alone (nextest test group `machine-load`): its load must not decide other
//! tests' timings, nor theirs its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::stack::*;
use serde_json::Value;

const ALARMS: usize = 2_000;
const REQUESTS: usize = 20;
const PER_REQUEST: usize = ALARMS / REQUESTS;

/// Labels of the form `vigil-INC-n` on jira_fake's issues.
fn incident_labels(issues: &[Value]) -> Vec<String> {
    issues
        .iter()
        .flat_map(|i| {
            i["fields"]["labels"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|l| l.as_str().map(str::to_string))
        .filter(|l| l.starts_with("vigil-INC-"))
        .collect()
}

/// Seconds since `start`, for the progress lines in the test's output.
fn secs(start: Instant) -> f64 {
    (start.elapsed().as_millis() as f64) / 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_storm_grouping_two_thousand_alarms_make_two_thousand_issues_and_emails_once_each()
{
    let stack = Stack::start(&[], true, false, &[("VIGIL_STORM_THRESHOLD", "0")]).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client");
    let run = std::process::id();
    let template = common::fixture("cloudwatch-alarm-ok-to-alarm.json");
    let alarm_of = |n: usize| format!("StormAlarm-{n:04}");

    // 20 concurrent requests of 100 distinct alarms each.
    let started = Instant::now();
    let mut posts = Vec::new();
    for r in 0..REQUESTS {
        let events: Vec<Value> = (r * PER_REQUEST..(r + 1) * PER_REQUEST)
            .map(|n| {
                let mut event = template.clone();
                let alarm = alarm_of(n);
                event["id"] = Value::from(format!("storm-{run}-{n}"));
                event["detail"]["alarmName"] = Value::from(alarm.as_str());
                event["resources"] = serde_json::json!([format!(
                    "arn:aws:cloudwatch:us-east-1:123456789012:alarm:{alarm}"
                )]);
                event
            })
            .collect();
        let body = Value::Array(events).to_string();
        let request = http
            .post(format!("{}/api/v1/events", stack.server.url))
            .bearer_auth(&stack.server.token)
            .header("content-type", "application/json")
            .body(body);
        posts.push(tokio::spawn(async move {
            let answer = request.send().await.expect("request reaches vigil");
            let status = answer.status().as_u16();
            let body: Value = answer.json().await.unwrap_or(Value::Null);
            (status, body)
        }));
    }
    let mut accepted = 0;
    for post in posts {
        let (status, body) = post.await.expect("post task");
        assert_eq!(status, 202, "{body}");
        accepted += body["accepted"].as_array().map_or(0, Vec::len);
    }
    assert_eq!(accepted, ALARMS, "every event accepted");
    let posted = secs(started);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "posting {ALARMS} events took {posted} s"
    );
    eprintln!("storm: {ALARMS} events accepted in {posted:.1} s");

    // Bounded wait: 2,000 emails and 2,000 issues.
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut last_report = Instant::now();
    let (mails_seen, issues_seen) = loop {
        let mails = mails(&stack.mail_dir);
        let state = jira_state(&http, &stack.jira_url).await;
        let issues = state["issues"].as_array().cloned().unwrap_or_default();
        if mails.len() >= ALARMS && issues.len() >= ALARMS {
            break (mails, issues);
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            eprintln!(
                "storm: {:.1} s: {} emails, {} issues",
                secs(started),
                mails.len(),
                issues.len()
            );
            last_report = Instant::now();
        }
        if Instant::now() > deadline {
            let log =
                std::fs::read_to_string(stack.server.data.join("server.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "after {:.1} s only {} of {ALARMS} emails and {} of {ALARMS} issues; the server log ends:\n{}",
                secs(started),
                mails.len(),
                issues.len(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let delivered = secs(started);
    eprintln!("storm: {ALARMS} emails and {ALARMS} issues after {delivered:.1} s");

    assert_eq!(mails_seen.len(), ALARMS, "exactly one email per incident");
    let message_ids: BTreeSet<&str> = mails_seen
        .iter()
        .filter_map(|m| m["message_id"].as_str())
        .collect();
    assert_eq!(message_ids.len(), ALARMS, "2,000 distinct Message-IDs");
    assert_eq!(issues_seen.len(), ALARMS, "exactly one issue per incident");
    let labels = incident_labels(&issues_seen);
    let distinct: BTreeSet<&str> = labels.iter().map(String::as_str).collect();
    assert_eq!(labels.len(), ALARMS, "one vigil-INC-n label per issue");
    assert_eq!(distinct.len(), ALARMS, "2,000 distinct incident labels");

    // Nothing late: once the runner has nothing left to do, no duplicate has turned up.
    stack.server.runner_idle().await;
    assert_eq!(
        mails(&stack.mail_dir).len(),
        ALARMS,
        "no late duplicate email"
    );
    let state = jira_state(&http, &stack.jira_url).await;
    assert_eq!(
        state["issues"].as_array().map(Vec::len),
        Some(ALARMS),
        "no late duplicate issue"
    );

    // Two workers on one ticket step would show as the tracker finding the issue an earlier
    // attempt made.
    let log = std::fs::read_to_string(stack.server.data.join("server.log")).expect("server log");
    let again: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("already exists"))
        .take(5)
        .collect();
    assert!(
        again.is_empty(),
        "a ticket step ran twice:\n{}",
        again.join("\n")
    );
    let troubles: Vec<&str> = log
        .lines()
        // The level may be wrapped in colour codes: match the word.
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    eprintln!(
        "storm: {} WARN/ERROR lines in the server log{}",
        troubles.len(),
        troubles
            .iter()
            .take(5)
            .map(|l| format!("\n  {l}"))
            .collect::<String>()
    );

    // Every incident's delivery log: its email notify step done, once. The labels name
    // the incidents (`vigil-INC-n`); eight readers share them.
    let keys: Vec<String> = distinct
        .iter()
        .map(|l| l.trim_start_matches("vigil-").to_string())
        .collect();
    let mut readers = Vec::new();
    for chunk in keys.chunks(ALARMS.div_ceil(8)) {
        let chunk = chunk.to_vec();
        let http = http.clone();
        let url = stack.server.url.clone();
        let token = stack.server.token.clone();
        readers.push(tokio::spawn(async move {
            let mut found = Vec::with_capacity(chunk.len());
            for key in chunk {
                let answer = http
                    .get(format!("{url}/api/v1/incidents/{key}"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("request reaches vigil");
                let status = answer.status().as_u16();
                let body: Value = answer.json().await.unwrap_or(Value::Null);
                found.push((key, status, body));
            }
            found
        }));
    }
    let mut alarm_names = BTreeSet::new();
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for reader in readers {
        for (key, status, incident) in reader.await.expect("reader task") {
            assert_eq!(status, 200, "{key}: {incident}");
            if let Some(name) = incident["alarm_name"].as_str() {
                alarm_names.insert(name.to_string());
            }
            let deliveries = incident["deliveries"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let notify: Vec<&Value> = deliveries
                .iter()
                .filter(|d| d["name"] == "notify" && d["channel"] == "email")
                .collect();
            assert_eq!(
                notify.len(),
                1,
                "{key}: one email notify step: {deliveries:?}"
            );
            assert_eq!(notify[0]["status"], "done", "{key}: {deliveries:?}");
            assert_eq!(notify[0]["kind"], "opened", "{key}: {deliveries:?}");
            let tickets: Vec<&Value> = deliveries
                .iter()
                .filter(|d| d["name"] == "ticket")
                .collect();
            assert_eq!(tickets.len(), 1, "{key}: one ticket step: {deliveries:?}");
            assert_eq!(tickets[0]["status"], "done", "{key}: {deliveries:?}");
            for d in &deliveries {
                *by_status
                    .entry(format!("{} {} {}", d["name"], d["status"], d["attempts"]))
                    .or_default() += 1;
            }
        }
    }
    let expected: BTreeSet<String> = (0..ALARMS).map(alarm_of).collect();
    assert_eq!(alarm_names, expected, "one incident per posted alarm");
    eprintln!("storm: delivery log (step status attempts: count) {by_status:?}");
    eprintln!(
        "storm: total {:.1} s (posted in {posted:.1} s, delivered after {delivered:.1} s)",
        secs(started)
    );
}
