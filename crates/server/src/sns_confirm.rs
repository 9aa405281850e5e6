//! Confirming SNS subscriptions: an HTTP GET of the SubscribeURL from the confirmation
//! message. The URL comes from a request body, so it is checked against the configured
//! hosts before vigil fetches it (no server-side request forgery through this endpoint).

use std::time::Duration;

use vigil_store::{SnsStatus, SnsSubscription};

use crate::metrics::labels;
use crate::AppState;

const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// `Ok` when `url` may be fetched: https on a host matching one of `hosts` (`*` stands for
/// one DNS label), or plain http on a listed loopback host.
pub fn check_url(url: &str, hosts: &[String]) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("SubscribeURL is not a URL: {e}"))?;
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    let listed = hosts.iter().any(|pattern| host_matches(pattern, &host));
    if !listed {
        return Err(format!(
            "SubscribeURL host `{host}` is not in ingest.sns.confirm_url_hosts"
        ));
    }
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        other => Err(format!(
            "SubscribeURL scheme `{other}` is not allowed; SNS uses https"
        )),
    }
}

fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern_labels: Vec<&str> = pattern.split('.').collect();
    let host_labels: Vec<&str> = host.split('.').collect();
    pattern_labels.len() == host_labels.len()
        && pattern_labels
            .iter()
            .zip(&host_labels)
            .all(|(p, h)| *p == "*" && !h.is_empty() || p.eq_ignore_ascii_case(h))
}

pub fn spawn(state: AppState, subscription: SnsSubscription) {
    tokio::spawn(async move {
        let outcome = match reqwest::Client::builder().timeout(CONFIRM_TIMEOUT).build() {
            Ok(client) => match client.get(&subscription.subscribe_url).send().await {
                Ok(response) if response.status().is_success() => Ok(()),
                Ok(response) => Err(format!("SNS answered {}", response.status())),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        let (status, detail) = match &outcome {
            Ok(()) => (SnsStatus::Confirmed, String::new()),
            Err(e) => (SnsStatus::Failed, e.clone()),
        };
        state.metrics.inc(
            "vigil_sns_subscriptions_total",
            labels(&[("outcome", status.as_str())]),
        );
        match &outcome {
            Ok(()) => tracing::info!(topic = %subscription.topic_arn, "SNS subscription confirmed"),
            Err(e) => {
                tracing::warn!(topic = %subscription.topic_arn, error = %e, "SNS subscription confirmation failed")
            }
        }
        if let Err(e) = state
            .store
            .set_sns_subscription_status(&subscription.message_id, status, &detail)
            .await
        {
            tracing::error!(error = %e, "could not record the SNS confirmation outcome");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_hosts_over_https() {
        let hosts = vec!["sns.*.amazonaws.com".to_string(), "127.0.0.1".to_string()];
        assert!(check_url(
            "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
            &hosts
        )
        .is_ok());
        assert!(check_url("https://sns.evil.com/", &hosts).is_err());
        assert!(check_url("https://sns.us-east-1.amazonaws.com.evil.com/", &hosts).is_err());
        assert!(check_url("http://sns.us-east-1.amazonaws.com/", &hosts).is_err());
        assert!(check_url("http://127.0.0.1:9/confirm", &hosts).is_ok());
        assert!(check_url("file:///etc/passwd", &hosts).is_err());
    }
}
