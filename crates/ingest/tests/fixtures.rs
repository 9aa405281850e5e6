//! The real payloads in shared/fixtures/events decode to what responders need.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use vigil_core::{AlarmFacts, AlarmState};
use vigil_ingest::{alertmanager, envelope, sns};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/events")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "fixture {} is missing ({e}); shared/ must sit beside the repo",
            path.display()
        )
    })
}

fn ids() -> impl FnMut() -> String {
    let mut n = 0;
    move || {
        n += 1;
        format!("gen-{n}")
    }
}

#[test]
fn cloudwatch_ok_to_alarm() {
    let events = envelope::decode(
        &fixture("cloudwatch-alarm-ok-to-alarm.json"),
        &mut ids(),
        "now",
    )
    .unwrap();
    let facts = AlarmFacts::from_event(&events[0]).unwrap();
    assert_eq!(facts.alarm_name, "ServerCpuTooHigh");
    assert_eq!(facts.state, Some(AlarmState::Alarm));
    assert_eq!(facts.previous_state, Some(AlarmState::Ok));
    assert_eq!(facts.account, "123456789012");
    assert_eq!(facts.region, "us-east-1");
    assert_eq!(facts.metric_name.as_deref(), Some("CPUUtilization"));
    assert_eq!(facts.metric_namespace.as_deref(), Some("AWS/EC2"));
    assert_eq!(facts.instance_id.as_deref(), Some("i-12345678901234567"));
    assert_eq!(facts.threshold, Some(50.0));
    assert_eq!(facts.value, Some(99.50160229693434));
    assert_eq!(
        facts.resource,
        "arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh"
    );
}

#[test]
fn cloudwatch_insufficient_data_has_no_value() {
    let events = envelope::decode(
        &fixture("cloudwatch-alarm-ok-to-insufficient-data.json"),
        &mut ids(),
        "now",
    )
    .unwrap();
    let facts = AlarmFacts::from_event(&events[0]).unwrap();
    assert_eq!(facts.state, Some(AlarmState::InsufficientData));
    assert_eq!(facts.value, None);
    assert_eq!(facts.metric_name.as_deref(), Some("mem_used_percent"));
}

#[test]
fn sns_notification_becomes_a_cloudwatch_event() {
    let msg = sns::decode(&fixture("sns-notification-cloudwatch-alarm.json")).unwrap();
    assert_eq!(
        msg.signature,
        sns::SignatureFields {
            signature_version: Some("1".into()),
            signature: Some("EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQvi2egU3N858fiTDN6bkkOxYDVrY0Ad8L10Hs3zH81mtnPk5uvvolIC1CXGu43obcgFxeL3khZl8IKvO61GWB6jI9b5+gLPoBc1Q=".into()),
            signing_cert_url: Some("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem".into()),
        }
    );
    assert!(
        msg.string_to_sign.starts_with("Message\n{\"AlarmName\":\"cpu-high-web-3\"")
            && msg.string_to_sign.ends_with(
                "\nMessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\nSubject\nALARM: \"cpu-high-web-3\" in US East (N. Virginia)\nTimestamp\n2026-11-20T10:05:00.200Z\nTopicArn\narn:aws:sns:us-east-1:123456789012:ops-alarms\nType\nNotification\n"
            ),
        "{}",
        msg.string_to_sign
    );
    let sns::SnsMessage::Notification { topic_arn, event } =
        msg.read(Some("Notification")).unwrap()
    else {
        panic!("expected a notification");
    };
    assert_eq!(topic_arn, "arn:aws:sns:us-east-1:123456789012:ops-alarms");
    assert_eq!(event.id, "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324");
    assert_eq!(event.source, "aws.cloudwatch");
    assert_eq!(event.detail_type, "CloudWatch Alarm State Change");
    assert_eq!(event.region, "us-east-1");
    assert_eq!(event.time, "2026-11-20T10:05:00Z");
    let facts = AlarmFacts::from_event(&event).unwrap();
    assert_eq!(facts.alarm_name, "cpu-high-web-3");
    assert_eq!(facts.state, Some(AlarmState::Alarm));
    assert_eq!(facts.previous_state, Some(AlarmState::Ok));
    assert_eq!(facts.threshold, Some(80.0));
    assert_eq!(facts.value, Some(91.5));
    assert_eq!(facts.statistic.as_deref(), Some("Average"));
    assert_eq!(facts.instance_id.as_deref(), Some("i-0abc123def4567890"));
}

#[test]
fn sns_subscription_confirmation() {
    let msg = sns::decode(&fixture("sns-subscription-confirmation.json")).unwrap();
    assert!(
        msg.string_to_sign.starts_with("Message\nYou have chosen to subscribe to the topic arn:aws:sns:us-east-1:123456789012:ops-alarms.\nTo confirm the subscription, visit the SubscribeURL included in this message.\nMessageId\n165545c9-2a5c-472c-8df2-7ff2be2b3b1b\nSubscribeURL\nhttps://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&")
            && msg.string_to_sign.ends_with("\nTimestamp\n2026-11-20T09:00:00.000Z\nToken\n2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736\nTopicArn\narn:aws:sns:us-east-1:123456789012:ops-alarms\nType\nSubscriptionConfirmation\n"),
        "{}",
        msg.string_to_sign
    );
    let sns::SnsMessage::SubscriptionConfirmation {
        topic_arn,
        subscribe_url,
        ..
    } = msg.read(Some("SubscriptionConfirmation")).unwrap()
    else {
        panic!("expected a subscription confirmation");
    };
    assert_eq!(topic_arn, "arn:aws:sns:us-east-1:123456789012:ops-alarms");
    assert!(subscribe_url
        .starts_with("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"));
}

#[test]
fn alertmanager_webhook() {
    let events =
        alertmanager::decode(&fixture("alertmanager-webhook-v4.json"), &mut ids(), "now").unwrap();
    assert_eq!(events.len(), 2);
    let firing = AlarmFacts::from_event(&events[0]).unwrap();
    assert_eq!(firing.alarm_name, "NodeFilesystemAlmostOutOfSpace");
    assert_eq!(firing.state, Some(AlarmState::Alarm));
    assert_eq!(firing.host.as_deref(), Some("app-12.example.com"));
    assert_eq!(firing.labels["mountpoint"], "/");
    assert_eq!(firing.severity.as_deref(), Some("critical"));
    assert_eq!(
        firing.annotations["summary"],
        "Filesystem has less than 5% space left."
    );
    assert!(firing
        .generator_url
        .as_deref()
        .unwrap_or_default()
        .starts_with("http://prometheus"));
    let resolved = AlarmFacts::from_event(&events[1]).unwrap();
    assert_eq!(resolved.state, Some(AlarmState::Ok));
    assert_ne!(firing.resource, resolved.resource);
}
