//! Confirming SNS subscriptions: an HTTP GET of the SubscribeURL from the confirmation
//! message. The URL comes from a request body, so it is checked against the configured
//! hosts before vigil fetches it (no server-side request forgery through this endpoint).

use std::time::Duration;

use vigil_store::{SnsStatus, SnsSubscription};

use crate::metrics::labels;
use crate::AppState;

const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// Which SNS URL is being checked, for refusals that name the field and the setting.
#[derive(Debug, Clone, Copy)]
pub enum SnsUrl {
    Subscribe,
    SigningCert,
}

impl SnsUrl {
    fn field(self) -> &'static str {
        match self {
            SnsUrl::Subscribe => "SubscribeURL",
            SnsUrl::SigningCert => "SigningCertURL",
        }
    }

    fn setting(self) -> &'static str {
        match self {
            SnsUrl::Subscribe => "ingest.sns.confirm_url_hosts",
            SnsUrl::SigningCert => "ingest.sns.signing_cert_url_hosts",
        }
    }
}

/// The parsed `url` when it may be fetched: https on a host matching one of `hosts`, or
/// plain http on a listed loopback host. A pattern is `HOST` (any port) or `HOST:PORT`;
/// `*` stands for one DNS label.
pub fn check_url(kind: SnsUrl, url: &str, hosts: &[String]) -> Result<reqwest::Url, String> {
    let field = kind.field();
    let parsed =
        reqwest::Url::parse(url).map_err(|e| format!("{field} `{url}` is not a URL: {e}"))?;
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    let port = parsed.port_or_known_default();
    let listed = hosts
        .iter()
        .any(|pattern| pattern_matches(pattern, &host, port));
    if !listed {
        let shown = match parsed.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        };
        return Err(format!(
            "{field} host `{shown}` is not in {}",
            kind.setting()
        ));
    }
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if loopback => Ok(parsed),
        other => Err(format!(
            "{field} scheme `{other}` is not allowed; SNS uses https"
        )),
    }
}

fn pattern_matches(pattern: &str, host: &str, port: Option<u16>) -> bool {
    let (pattern_host, pattern_port) = match pattern.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') => match p.parse::<u16>() {
            Ok(p) => (h, Some(p)),
            Err(_) => (pattern, None),
        },
        _ => (pattern, None),
    };
    pattern_port.is_none_or(|p| Some(p) == port) && host_matches(pattern_host, host)
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
        let check = |url| check_url(SnsUrl::Subscribe, url, &hosts);
        assert!(check("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription").is_ok());
        assert!(check("https://sns.evil.com/").is_err());
        assert!(check("https://sns.us-east-1.amazonaws.com.evil.com/").is_err());
        assert!(check("http://sns.us-east-1.amazonaws.com/").is_err());
        assert!(check("http://127.0.0.1:9/confirm").is_ok());
        assert!(check("file:///etc/passwd").is_err());
    }

    #[test]
    fn a_pattern_with_a_port_allows_only_that_port() {
        let hosts = vec!["127.0.0.1:4443".to_string(), "[::1]:8080".to_string()];
        let check = |url| check_url(SnsUrl::SigningCert, url, &hosts);
        assert!(check("http://127.0.0.1:4443/cert.pem").is_ok());
        let err = check("http://127.0.0.1:4444/cert.pem").unwrap_err();
        assert_eq!(
            err,
            "SigningCertURL host `127.0.0.1:4444` is not in ingest.sns.signing_cert_url_hosts"
        );
        assert!(check("http://127.0.0.1/cert.pem").is_err());
        assert!(check("http://[::1]:8080/cert.pem").is_ok());
        assert!(check("http://[::1]:8081/cert.pem").is_err());
        // Default SNS hosts: any region, https on its usual port.
        let sns = vec!["sns.*.amazonaws.com".to_string()];
        assert!(check_url(
            SnsUrl::SigningCert,
            "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem",
            &sns
        )
        .is_ok());
        assert!(check_url(
            SnsUrl::SigningCert,
            "http://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem",
            &sns
        )
        .is_err());
    }
}
