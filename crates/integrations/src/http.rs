//! What the HTTP integrations (Jira, Slack, webhooks) share: one client setup, and the
//! rules that turn a failed call into a transient or a permanent [`ActionError`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use vigil_actions::ActionError;

use crate::IntegrationError;

/// A call that has not answered by then is treated as lost (and retried by the runner);
/// every integration call is safe to repeat.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn client(field: &str) -> Result<reqwest::Client, IntegrationError> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(TIMEOUT)
        .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| IntegrationError::invalid(field, format!("cannot set up HTTP: {e}")))
}

/// Checks that `url` is an absolute http(s) URL.
pub(crate) fn parse_http_url(field: &str, url: &str) -> Result<Url, IntegrationError> {
    // The URL itself may hold a secret (Slack's path, a token in a query): errors name only
    // what is wrong with it.
    let parsed = Url::parse(url)
        .map_err(|e| IntegrationError::invalid(field, format!("not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(IntegrationError::invalid(
            field,
            "must be an http:// or https:// URL with a host",
        ));
    }
    Ok(parsed)
}

/// `https://hooks.slack.com/…`: enough to tell which service is meant, nothing that could
/// be a credential (user info, path, query).
pub(crate) fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) if u.host_str().is_some() => {
            let origin = u.origin().ascii_serialization();
            if u.path() == "/" && u.query().is_none() {
                origin
            } else {
                format!("{origin}/…")
            }
        }
        _ if url.is_empty() => String::new(),
        _ => "<redacted>".into(),
    }
}

/// A call that got no HTTP answer: refused, reset, timed out. All worth retrying.
pub(crate) fn request_error(service: &str, action: &str, err: reqwest::Error) -> ActionError {
    // reqwest puts the URL into its messages; webhook URLs are secrets.
    let err = err.without_url();
    if err.is_builder() {
        return ActionError::Permanent(format!("{service}: cannot {action}: {}", chain(&err)));
    }
    let what = if err.is_timeout() {
        format!(
            "{service}: {action} got no answer within {} s",
            TIMEOUT.as_secs()
        )
    } else {
        format!("{service}: cannot {action}: {}", chain(&err))
    };
    ActionError::Transient {
        what,
        retry_after_ms: None,
    }
}

/// An HTTP answer that is not a success. 408, 425, 429 and 5xx are worth retrying (honouring
/// `Retry-After`); any other status means the request itself is wrong.
pub(crate) fn status_error(
    service: &str,
    action: &str,
    status: StatusCode,
    headers: &HeaderMap,
    detail: &str,
) -> ActionError {
    let mut what = format!("{service} answered {status} to {action}");
    if !detail.is_empty() {
        what.push_str(": ");
        what.push_str(detail);
    }
    let transient = status.is_server_error()
        || matches!(
            status,
            StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_EARLY | StatusCode::TOO_MANY_REQUESTS
        );
    if transient {
        ActionError::Transient {
            what,
            retry_after_ms: retry_after_ms(headers, Utc::now()),
        }
    } else {
        ActionError::Permanent(what)
    }
}

/// `Retry-After` as milliseconds from `now`: delay-seconds or an HTTP date (RFC 9110).
pub(crate) fn retry_after_ms(headers: &HeaderMap, now: DateTime<Utc>) -> Option<u64> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds.saturating_mul(1000));
    }
    // IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") is a valid RFC 2822 date.
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&Utc) - now;
    Some(u64::try_from(wait.num_milliseconds()).unwrap_or(0))
}

/// Reads at most `limit` bytes of a body; answers are parsed or quoted, never streamed, so
/// a misbehaving server cannot make vigil buffer without bound.
pub(crate) async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    Ok(body)
}

/// The start of an error body, on one line, for messages.
pub(crate) fn snippet(body: &[u8], max_chars: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::render::cut(&line, max_chars)
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn retry_after(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2024-08-23T06:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(retry_after_ms(&retry_after("7"), now), Some(7000));
        assert_eq!(
            retry_after_ms(&retry_after("Fri, 23 Aug 2024 06:00:30 GMT"), now),
            Some(30_000)
        );
        // A date already past means "now", not a negative wait.
        assert_eq!(
            retry_after_ms(&retry_after("Fri, 23 Aug 2024 05:00:00 GMT"), now),
            Some(0)
        );
        assert_eq!(retry_after_ms(&retry_after("soon"), now), None);
        assert_eq!(retry_after_ms(&HeaderMap::new(), now), None);
    }

    #[test]
    fn statuses_split_into_transient_and_permanent() {
        let headers = retry_after("2");
        for status in [429, 502, 503, 504, 500, 408] {
            let code = StatusCode::from_u16(status).unwrap();
            match status_error("Jira", "create", code, &headers, "x") {
                ActionError::Transient { retry_after_ms, .. } => {
                    assert_eq!(retry_after_ms, Some(2000), "{status}")
                }
                other => panic!("{status} should be transient, got {other:?}"),
            }
        }
        for status in [400, 401, 403, 404, 410, 413] {
            let code = StatusCode::from_u16(status).unwrap();
            assert!(
                matches!(
                    status_error("Jira", "create", code, &headers, "x"),
                    ActionError::Permanent(_)
                ),
                "{status} should be permanent"
            );
        }
    }

    #[test]
    fn redacted_urls_keep_only_the_origin() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            redact_url("https://user:pw@example.com:8443/hook?token=x"),
            "https://example.com:8443/…"
        );
        assert_eq!(redact_url("https://example.com"), "https://example.com");
        assert_eq!(redact_url("not a url with secret"), "<redacted>");
    }
}
