//! JiraTracker against jira_fake.py (and, for what the fake does not cover, a scripted receiver).

use serde_json::{json, Value};
use vigil_actions::{IdempotencyKey, Tracker};
use vigil_core::Severity;
use vigil_integrations::jira::TEXT_MAX;
use vigil_integrations::sample_incident;

use crate::support::http_receiver::{Answer, Receiver};
use crate::support::{bounded, expect_permanent, expect_transient, process, JiraFake, JIRA_TOKEN};

fn comments(issue: &Value) -> Vec<String> {
    issue["fields"]["comment"]["comments"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|c| c["body"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn open_creates_an_issue_carrying_every_alarm_detail() {
    bounded(async {
        let fake = JiraFake::start(&[]);
        let tracker = fake
            .tracker(|_| {})
            .with_incident_links("https://vigil.example.com/");
        let incident = sample_incident();
        let ticket = tracker
            .open(&incident, &IdempotencyKey::new("INC-7", "ticket"))
            .await
            .expect("open");
        assert_eq!(ticket.tracker, "jira");
        assert_eq!(ticket.id, "OPS-1");
        assert_eq!(ticket.url, format!("{}/browse/OPS-1", fake.url));

        let issues = fake.issues().await;
        assert_eq!(issues.len(), 1);
        let f = &issues[0]["fields"];
        assert_eq!(
            f["summary"],
            "123456789012 | web-01 | %CPU Utilization | Metric Value: 91.2"
        );
        assert_eq!(f["labels"], json!(["vigil", "vigil-INC-7"]));
        assert_eq!(f["priority"]["name"], "High");
        assert_eq!(f["issuetype"]["name"], "Incident");
        assert_eq!(f["status"]["name"], "To Do");
        let description = f["description"].as_str().expect("description");
        for detail in [
            "ServerCpuTooHigh on web-01: CPUUtilization 91.2 (threshold 80)",
            "Severity:",
            "high",
            "State:             ALARM",
            "Previous state:    OK",
            "Threshold Crossed: 3 out of the last 3 datapoints",
            "123456789012",
            "us-east-1",
            "web-01",
            "i-0abc123def4567890",
            "AWS/EC2",
            "CPUUtilization",
            "InstanceId=i-0abc123def4567890",
            "Average",
            "60 s",
            "Threshold:         80",
            "Value:             91.2",
            "appcode=hotel_booking_api",
            "runbook=https://wiki.example.com/cpu",
            "Source: https://grafana.example.com/alerting/list",
            "2024-08-23T06:00:33Z",
            "Incident INC-7: https://vigil.example.com/ui/incidents/INC-7",
        ] {
            assert!(
                description.contains(detail),
                "description lacks {detail:?}:\n{description}"
            );
        }

        // Severity decides the priority; an assignee goes by name on Data Center.
        let mut critical = sample_incident();
        critical.key = "INC-8".into();
        critical.severity = Severity::Critical;
        let dc = fake.tracker(|c| {
            c.user = None;
            c.assignee = Some("oncall".into());
            c.issue_type = "Bug".into();
        });
        let ticket = dc
            .open(&critical, &IdempotencyKey::new("INC-8", "ticket"))
            .await
            .expect("open with a bearer token");
        let issues = fake.issues().await;
        let created = issues
            .iter()
            .find(|i| i["key"] == ticket.id.as_str())
            .expect("second issue");
        assert_eq!(created["fields"]["priority"]["name"], "Highest");
        assert_eq!(created["fields"]["assignee"]["name"], "oncall");
        assert_eq!(created["fields"]["issuetype"]["name"], "Bug");
    })
    .await;
}

#[tokio::test]
async fn opening_again_finds_the_issue_instead_of_creating_one() {
    bounded(async {
        let fake = JiraFake::start(&[]);
        let tracker = fake.tracker(|_| {});
        let incident = sample_incident();
        let key = IdempotencyKey::new("INC-7", "ticket");
        let first = tracker.open(&incident, &key).await.expect("first open");
        // A second process (after a crash) searches before it creates.
        let again = fake
            .tracker(|_| {})
            .open(&incident, &key)
            .await
            .expect("second open");
        assert_eq!(first, again);
        assert_eq!(fake.issues().await.len(), 1);

        // Another incident gets its own issue.
        let mut other = sample_incident();
        other.key = "INC-9".into();
        let third = tracker
            .open(&other, &IdempotencyKey::new("INC-9", "ticket"))
            .await
            .expect("other incident");
        assert_ne!(third.id, first.id);
        assert_eq!(fake.issues().await.len(), 2);
    })
    .await;
}

#[tokio::test]
async fn a_comment_is_posted_once_per_key_in_a_noformat_block() {
    bounded(async {
        let fake = JiraFake::start(&[]);
        let tracker = fake.tracker(|_| {});
        let ticket = tracker
            .open(&sample_incident(), &IdempotencyKey::new("INC-7", "ticket"))
            .await
            .expect("open");
        let text = "  PID USER     %CPU COMMAND\n 4242 app      97.0 java\n";
        let key = IdempotencyKey::new("INC-7", "comment");
        tracker.comment(&ticket, text, &key).await.expect("comment");
        tracker.comment(&ticket, text, &key).await.expect("repeat");
        let issues = fake.issues().await;
        let posted = comments(&issues[0]);
        assert_eq!(posted.len(), 1, "{posted:?}");
        assert_eq!(
            posted[0],
            "{noformat}\n  PID USER     %CPU COMMAND\n 4242 app      97.0 java\n{noformat}\n[vigil:vigil-INC-7-comment]"
        );

        tracker
            .comment(&ticket, "other", &IdempotencyKey::new("INC-7", "comment-2"))
            .await
            .expect("another key");
        assert_eq!(comments(&fake.issues().await[0]).len(), 2);
    })
    .await;
}

#[tokio::test]
async fn a_long_comment_is_trimmed_to_jiras_limit() {
    bounded(async {
        let fake = JiraFake::start(&[]);
        let tracker = fake.tracker(|_| {});
        let ticket = tracker
            .open(&sample_incident(), &IdempotencyKey::new("INC-7", "ticket"))
            .await
            .expect("open");
        let line = format!("{:<78}|", "1234 app 12.5 /usr/bin/some-process --with --arguments");
        let text = vec![line.as_str(); 1000].join("\n"); // 79,999 characters
        tracker
            .comment(&ticket, &text, &IdempotencyKey::new("INC-7", "comment"))
            .await
            .expect("the fake refuses bodies over 32,767 characters; this one must fit");
        let posted = comments(&fake.issues().await[0]);
        assert_eq!(posted.len(), 1);
        let body = &posted[0];
        assert!(body.chars().count() <= TEXT_MAX);
        let kept = body
            .strip_prefix("{noformat}\n")
            .and_then(|b| b.split("\n{noformat}\n").next())
            .expect("noformat block");
        let omitted = text.chars().count() - kept.chars().count();
        assert!(omitted > 40_000, "{omitted}");
        assert!(
            body.ends_with(&format!(
                "[trimmed: {omitted} more characters; the full output is on the incident]\n[vigil:vigil-INC-7-comment]"
            )),
            "{}",
            &body[body.len() - 300..]
        );
    })
    .await;
}

#[tokio::test]
async fn resolve_comments_and_transitions_once() {
    bounded(async {
        let fake = JiraFake::start(&[]);
        let tracker = fake.tracker(|_| {});
        let mut incident = sample_incident();
        let ticket = tracker
            .open(&incident, &IdempotencyKey::new("INC-7", "ticket"))
            .await
            .expect("open");
        incident.resolved_at = "2024-08-23T06:20:00Z".parse().ok();
        let key = IdempotencyKey::new("INC-7", "resolve_ticket");
        tracker
            .resolve(&ticket, &incident, &key)
            .await
            .expect("resolve");
        let state = fake.state().await;
        let issue = &state["issues"][0];
        assert_eq!(issue["fields"]["status"]["name"], "Done");
        let posted = comments(issue);
        assert_eq!(posted.len(), 1);
        assert!(posted[0].contains("back to OK"), "{}", posted[0]);
        assert!(posted[0].contains("2024-08-23T06:20:00Z"), "{}", posted[0]);
        assert!(posted[0].ends_with("\n[vigil:vigil-INC-7-resolve_ticket]"));

        // Repeating it writes nothing: the comment is there, the status reached.
        let writes = state["write_requests"].as_u64().expect("counter");
        tracker
            .resolve(&ticket, &incident, &key)
            .await
            .expect("resolve again");
        let state = fake.state().await;
        assert_eq!(state["write_requests"].as_u64(), Some(writes));
        assert_eq!(comments(&state["issues"][0]).len(), 1);

        // The target status is matched ignoring case; one that no transition reaches is a
        // configuration error.
        let mut second = sample_incident();
        second.key = "INC-8".into();
        let ticket = tracker
            .open(&second, &IdempotencyKey::new("INC-8", "ticket"))
            .await
            .expect("open");
        fake.tracker(|c| c.resolve_status = "in progress".into())
            .resolve(&ticket, &second, &IdempotencyKey::new("INC-8", "r"))
            .await
            .expect("resolve to In Progress");
        let issues = fake.issues().await;
        let moved = issues.iter().find(|i| i["key"] == "OPS-2").expect("OPS-2");
        assert_eq!(moved["fields"]["status"]["name"], "In Progress");
        let error = expect_permanent(
            fake.tracker(|c| c.resolve_status = "Closed".into())
                .resolve(&ticket, &second, &IdempotencyKey::new("INC-8", "r2"))
                .await,
        );
        assert!(
            error.contains("\"Closed\"") && error.contains("Done"),
            "{error}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_wrong_token_is_permanent_and_not_repeated_in_the_error() {
    bounded(async {
        let fake = JiraFake::start(&[]);
        for user in [Some("bot@example.com".to_string()), None] {
            let tracker = fake.tracker(|c| {
                c.user = user;
                c.token = "wrong-token-123".into();
            });
            let error = expect_permanent(
                tracker
                    .open(&sample_incident(), &IdempotencyKey::new("INC-7", "ticket"))
                    .await,
            );
            assert!(error.contains("401"), "{error}");
            assert!(error.contains("not authenticated"), "{error}");
            assert!(!error.contains("wrong-token-123"), "{error}");
            assert!(!error.contains(JIRA_TOKEN), "{error}");
        }
        assert!(fake.issues().await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn validation_errors_are_permanent_with_jiras_words() {
    bounded(async {
        let fake = JiraFake::start(&[]);
        let tracker = fake.tracker(|c| c.issue_type = "Epic".into());
        let error = expect_permanent(
            tracker
                .open(&sample_incident(), &IdempotencyKey::new("INC-7", "ticket"))
                .await,
        );
        assert!(error.contains("400"), "{error}");
        assert!(
            error.contains("issuetype: valid issue type is required"),
            "{error}"
        );
    })
    .await;
}

#[tokio::test]
async fn unavailable_and_rate_limited_jira_is_transient() {
    bounded(async {
        let fake = JiraFake::start(&["--fail-first", "1"]);
        let tracker = fake.tracker(|_| {});
        let incident = sample_incident();
        let key = IdempotencyKey::new("INC-7", "ticket");
        // The search is a read; the create is the first write and gets the 503.
        let (what, retry_after) = expect_transient(tracker.open(&incident, &key).await);
        assert!(what.contains("503"), "{what}");
        assert!(what.contains("temporarily unavailable"), "{what}");
        assert_eq!(retry_after, None, "jira_fake's 503 has no Retry-After");
        assert!(fake.issues().await.is_empty());
        tracker.open(&incident, &key).await.expect("retry succeeds");
        assert_eq!(fake.issues().await.len(), 1);

        fake.reset(json!({ "fail_first": 0, "rate_limit_every": 1 }))
            .await;
        let (what, retry_after) = expect_transient(tracker.open(&incident, &key).await);
        assert!(what.contains("429"), "{what}");
        assert_eq!(retry_after, Some(1000));
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_jira_is_transient() {
    bounded(async {
        let port = process::closed_port();
        let tracker = vigil_integrations::JiraTracker::new(&vigil_integrations::JiraConfig {
            url: format!("http://127.0.0.1:{port}"),
            token: "t".into(),
            project: "OPS".into(),
            ..Default::default()
        })
        .expect("settings");
        let (what, _) = expect_transient(
            tracker
                .open(&sample_incident(), &IdempotencyKey::new("INC-7", "ticket"))
                .await,
        );
        assert!(what.contains("Jira"), "{what}");
    })
    .await;
}

#[tokio::test]
async fn jira_cloud_search_moves_to_search_jql_when_search_is_gone() {
    bounded(async {
        // Jira Cloud answers the retired /search with 410 (CHANGE-2046).
        let mut receiver = Receiver::start(vec![
            Answer::new(
                410,
                r#"{"errorMessages":["The requested API has been removed. Please migrate to the /rest/api/3/search/jql API."],"errors":{}}"#,
            ),
            Answer::new(200, r#"{"issues":[{"id":"10005","key":"OPS-5","fields":{}}],"isLast":true}"#),
        ])
        .await;
        let tracker = vigil_integrations::JiraTracker::new(&vigil_integrations::JiraConfig {
            url: receiver.base.clone(),
            user: Some("bot@example.com".into()),
            token: "t".into(),
            project: "OPS".into(),
            ..Default::default()
        })
        .expect("settings");
        let ticket = tracker
            .open(&sample_incident(), &IdempotencyKey::new("INC-7", "ticket"))
            .await
            .expect("found through /search/jql");
        assert_eq!(ticket.id, "OPS-5");
        assert_eq!(receiver.next().await.path, "/rest/api/2/search");
        let retried = receiver.next().await;
        assert_eq!(retried.path, "/rest/api/2/search/jql");
        assert_eq!(
            retried.json()["jql"],
            r#"project = "OPS" AND labels = "vigil-INC-7" ORDER BY created ASC"#
        );
    })
    .await;
}
