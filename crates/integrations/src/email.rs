//! [`EmailNotifier`]: one multipart (text + HTML) message per notification over SMTP.
//!
//! The Message-ID is `<{idempotency key}@vigil>`, so a message sent twice after an unknown
//! outcome is recognisably the same message to mail systems and people (and threads).

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use reqwest::Url;
use vigil_actions::{ActionError, BoxFuture, Delivery, Message, Notifier};

use crate::config::EmailConfig;
use crate::render::{self, one_line, Templates};
use crate::IntegrationError;

/// How long one message may take, connection to final reply. lettre's own timeout covers
/// only the connect, so a server that stalls mid-conversation is cut off by this; the
/// runner then retries (the Message-ID stays the same).
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Connecting takes at most this (lettre's timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

const SUBJECT: &str = "email.templates.subject";
const TEXT: &str = "email.templates.text";
// The `.html` ending turns on HTML escaping in minijinja.
const HTML: &str = "email.templates.html";

const DEFAULT_SUBJECT: &str = "{{ facts.subject }}";

const DEFAULT_TEXT: &str = r#"{{ facts.subject }}

{% if facts.lead %}
{{ facts.lead }}

{% endif %}
{{ incident.title }}

Severity:       {{ incident.severity }}
Status:         {{ incident.status }}
Impact:         {{ facts.impact }}
Observed state: {{ facts.observed }}
Desired state:  {{ facts.desired }}

Context
{% for row in facts.context %}
  {{ row.label }} {{ row.value }}
{% endfor %}
{% if diagnostics %}

Diagnostics
{% for d in diagnostics %}

--- {{ d.probe }} on {{ d.host }} ---
{{ d.output }}
{% endfor %}
{% elif facts.host_checks %}

Diagnostics
{% for check in facts.host_checks %}
  {{ check }}
{% endfor %}
{% endif %}
{% if pending_note %}

{{ pending_note }}
{% endif %}

Links
  Incident {{ incident.key }}: {{ incident_url }}
{% for t in tickets %}
  {{ t.tracker|capitalize }} {{ t.id }}: {{ t.url }}
{% endfor %}
{% if incident.annotations.runbook_url or incident.annotations.runbook %}
  Runbook: {{ incident.annotations.runbook_url or incident.annotations.runbook }}
{% endif %}
{% if incident.generator_url %}
  Source: {{ incident.generator_url }}
{% endif %}

-- 
vigil, incident {{ incident.key }}
"#;

const DEFAULT_HTML: &str = r#"<!DOCTYPE html>
<html>
<body style="font-family: Arial, Helvetica, sans-serif; font-size: 14px; color: #222;">
<h2 style="margin: 0 0 6px 0;">{{ facts.subject }}</h2>
{% if facts.lead %}
<p style="margin: 0 0 6px 0;">{{ facts.lead }}</p>
{% endif %}
<p style="margin: 0 0 12px 0;">{{ incident.title }}</p>
<table cellpadding="4" style="border-collapse: collapse;">
<tr><th align="left">Severity</th><td>{{ incident.severity }}</td></tr>
<tr><th align="left">Status</th><td>{{ incident.status }}</td></tr>
<tr><th align="left">Impact</th><td>{{ facts.impact }}</td></tr>
<tr><th align="left">Observed state</th><td>{{ facts.observed }}</td></tr>
<tr><th align="left">Desired state</th><td>{{ facts.desired }}</td></tr>
</table>
<h3>Context</h3>
<table cellpadding="4" style="border-collapse: collapse;">
{% for row in facts.context %}
<tr><th align="left">{{ row.name }}</th><td>{{ row.value }}</td></tr>
{% endfor %}
</table>
{% if diagnostics %}
<h3>Diagnostics</h3>
{% for d in diagnostics %}
<p style="margin: 8px 0 4px 0;"><b>{{ d.probe }}</b> on {{ d.host }}</p>
<pre style="font-family: Consolas, Menlo, monospace; font-size: 12px; background: #f4f4f4; padding: 8px; margin: 0;">{{ d.output }}</pre>
{% endfor %}
{% elif facts.host_checks %}
<h3>Diagnostics</h3>
<ul>
{% for check in facts.host_checks %}
<li>{{ check }}</li>
{% endfor %}
</ul>
{% endif %}
{% if pending_note %}
<p style="margin: 12px 0;"><b>{{ pending_note }}</b></p>
{% endif %}
<h3>Links</h3>
<ul>
<li><a href="{{ incident_url }}">Incident {{ incident.key }}</a></li>
{% for t in tickets %}
<li><a href="{{ t.url }}">{{ t.tracker|capitalize }} {{ t.id }}</a></li>
{% endfor %}
{% if incident.annotations.runbook_url or incident.annotations.runbook %}
<li><a href="{{ incident.annotations.runbook_url or incident.annotations.runbook }}">Runbook</a></li>
{% endif %}
{% if incident.generator_url %}
<li><a href="{{ incident.generator_url }}">Source</a></li>
{% endif %}
</ul>
<p style="color: #888; font-size: 12px;">vigil, incident {{ incident.key }}</p>
</body>
</html>
"#;

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Security {
    /// No TLS (a relay on the same host or network).
    Plain,
    /// STARTTLS, refusing to go on without it.
    StartTls,
    /// STARTTLS when the server offers it.
    Opportunistic,
    /// TLS from the first byte (`smtps://`).
    Tls,
}

/// A parsed `smtp_url`.
pub(crate) struct SmtpEndpoint {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub credentials: Option<(String, String)>,
}

impl SmtpEndpoint {
    /// Reads `smtp[s]://[user[:password]@]host[:port][?tls=starttls|opportunistic|none]`.
    /// Errors describe the problem, never echo the URL: it may hold a password.
    pub(crate) fn parse(field: &str, url: &str) -> Result<SmtpEndpoint, IntegrationError> {
        let parsed = Url::parse(url.trim())
            .map_err(|e| IntegrationError::invalid(field, format!("not a URL ({e})")))?;
        let mut security = match parsed.scheme() {
            "smtp" => Security::Plain,
            "smtps" => Security::Tls,
            other => {
                return Err(IntegrationError::invalid(
                    field,
                    format!("scheme {other:?} is not smtp:// or smtps://"),
                ))
            }
        };
        for (name, value) in parsed.query_pairs() {
            match (name.as_ref(), value.as_ref(), security) {
                ("tls", "starttls" | "required", Security::Plain) => security = Security::StartTls,
                ("tls", "opportunistic", Security::Plain) => security = Security::Opportunistic,
                ("tls", "none", Security::Plain) => {}
                ("tls", _, Security::Tls) => {
                    return Err(IntegrationError::invalid(
                        field,
                        "smtps:// is TLS already; `tls=` belongs to smtp:// URLs",
                    ))
                }
                ("tls", other, _) => {
                    return Err(IntegrationError::invalid(
                        field,
                        format!("tls={other:?}: use starttls, opportunistic or none"),
                    ))
                }
                (other, ..) => {
                    return Err(IntegrationError::invalid(
                        field,
                        format!("unknown parameter {other:?}; only tls= is read"),
                    ))
                }
            }
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| IntegrationError::invalid(field, "names no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = parsed.port().unwrap_or(match security {
            Security::Plain | Security::Opportunistic => 25,
            Security::StartTls => 587,
            Security::Tls => 465,
        });
        let credentials = if parsed.username().is_empty() {
            None
        } else {
            let user = percent_decode(parsed.username())
                .ok_or_else(|| IntegrationError::invalid(field, "user is not valid UTF-8"))?;
            let password = percent_decode(parsed.password().unwrap_or(""))
                .ok_or_else(|| IntegrationError::invalid(field, "password is not valid UTF-8"))?;
            Some((user, password))
        };
        Ok(SmtpEndpoint {
            host,
            port,
            security,
            credentials,
        })
    }
}

/// The URL with its password replaced, for `Debug`.
pub(crate) fn redact_smtp_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Cannot fail: a URL that has a password can hold another one.
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) if url.is_empty() => String::new(),
        Err(_) => "<redacted>".into(),
    }
}

/// `%40` → `@`; `None` when the bytes are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h)? * 16 + hex(l)?) as u8);
                i += 3;
            }
            (b, ..) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Sends notifications as e-mail. Built from [`EmailConfig`].
pub struct EmailNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// `host:port`, for delivery notes and errors.
    server: String,
    send_timeout: Duration,
    from: Mailbox,
    to: Vec<Mailbox>,
    templates: Templates,
}

impl EmailNotifier {
    /// Checks the settings (URL, addresses, templates) and prepares the transport; no
    /// connection is made until the first message.
    pub fn new(config: &EmailConfig) -> Result<EmailNotifier, IntegrationError> {
        if config.smtp_url.trim().is_empty() {
            return Err(IntegrationError::Missing {
                field: "email.smtp_url",
                env: "VIGIL_SMTP_URL",
            });
        }
        if config.from.trim().is_empty() {
            return Err(IntegrationError::Missing {
                field: "email.from",
                env: "VIGIL_EMAIL_FROM",
            });
        }
        let endpoint = SmtpEndpoint::parse("email.smtp_url", &config.smtp_url)?;
        let from =
            parse_mailbox(&config.from).map_err(|e| IntegrationError::invalid("email.from", e))?;
        let to = config
            .to
            .iter()
            .map(|a| parse_mailbox(a).map_err(|e| IntegrationError::invalid("email.to", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let t = &config.templates;
        let pick = |custom: &Option<String>, default: &str| {
            custom.clone().unwrap_or_else(|| default.to_string())
        };
        let templates = Templates::new(vec![
            (SUBJECT, pick(&t.subject, DEFAULT_SUBJECT)),
            (TEXT, pick(&t.text, DEFAULT_TEXT)),
            (HTML, pick(&t.html, DEFAULT_HTML)),
        ])?;
        let sample = render::context(&crate::sample_message(vigil_actions::MessageKind::Opened));
        let subject =
            templates
                .try_render(SUBJECT, &sample)
                .map_err(|error| IntegrationError::Template {
                    name: SUBJECT.into(),
                    error,
                })?;
        if one_line(&subject).is_empty() {
            return Err(IntegrationError::Template {
                name: SUBJECT.into(),
                error: "renders an empty subject".into(),
            });
        }

        let tls = || {
            TlsParameters::new(endpoint.host.clone()).map_err(|e| {
                IntegrationError::invalid("email.smtp_url", format!("cannot set up TLS: {e}"))
            })
        };
        let security = match endpoint.security {
            Security::Plain => Tls::None,
            Security::StartTls => Tls::Required(tls()?),
            Security::Opportunistic => Tls::Opportunistic(tls()?),
            Security::Tls => Tls::Wrapper(tls()?),
        };
        // `builder_dangerous` only means "you choose the TLS mode": it is chosen just above.
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&endpoint.host)
            .port(endpoint.port)
            .tls(security)
            .timeout(Some(CONNECT_TIMEOUT));
        if let Some((user, password)) = &endpoint.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(EmailNotifier {
            transport: builder.build(),
            server: format!("{}:{}", endpoint.host, endpoint.port),
            send_timeout: SEND_TIMEOUT,
            from,
            to,
            templates,
        })
    }

    /// Replaces the 60 s limit on one message (connection to final reply).
    pub fn with_send_timeout(mut self, limit: Duration) -> EmailNotifier {
        self.send_timeout = limit;
        self
    }

    fn compose(&self, message: &Message) -> Result<(lettre::Message, String, usize), ActionError> {
        let ctx = render::context(message);
        let subject = one_line(&self.templates.render(SUBJECT, &ctx)?);
        let text = self.templates.render(TEXT, &ctx)?;
        let html = self.templates.render(HTML, &ctx)?;
        let recipients = if message.recipients.is_empty() {
            self.to.clone()
        } else {
            message
                .recipients
                .iter()
                .map(|a| parse_mailbox(a).map_err(ActionError::Permanent))
                .collect::<Result<Vec<_>, _>>()?
        };
        if recipients.is_empty() {
            return Err(ActionError::Permanent(
                "no e-mail recipients: the playbook names none and email.to is empty".into(),
            ));
        }
        let message_id = message_id(&message.key.0);
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .message_id(Some(message_id.clone()))
            .date_now();
        for recipient in &recipients {
            builder = builder.to(recipient.clone());
        }
        let email = builder
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| ActionError::Permanent(format!("cannot build the e-mail: {e}")))?;
        Ok((email, message_id, recipients.len()))
    }
}

impl Notifier for EmailNotifier {
    fn channel(&self) -> &str {
        "email"
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Delivery, ActionError>> {
        Box::pin(async move {
            let (email, message_id, count) = self.compose(message)?;
            let response = tokio::time::timeout(self.send_timeout, self.transport.send(email))
                .await
                .map_err(|_| ActionError::Transient {
                    what: format!(
                        "SMTP server {}: no answer within {} s",
                        self.server,
                        self.send_timeout.as_secs_f64()
                    ),
                    retry_after_ms: None,
                })?
                .map_err(|e| smtp_error(&self.server, e))?;
            let reply = one_line(&response.message().collect::<Vec<_>>().join(" "));
            tracing::info!(incident = %message.incident.key, %message_id, server = %self.server,
                "email: message accepted");
            Ok(Delivery {
                channel: "email".into(),
                external_id: Some(message_id),
                detail: Some(format!(
                    "accepted by {} for {count} recipient{} ({} {reply})",
                    self.server,
                    if count == 1 { "" } else { "s" },
                    response.code()
                )),
            })
        })
    }
}

fn parse_mailbox(address: &str) -> Result<Mailbox, String> {
    address
        .trim()
        .parse::<Mailbox>()
        .map_err(|e| format!("{address:?} is not an e-mail address ({e})"))
}

/// `<vigil-INC-7-notify@vigil>`. Characters a Message-ID cannot hold become `-`.
fn message_id(key: &str) -> String {
    let local: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("<{local}@vigil>")
}

/// 5xx replies (and TLS or client-side problems) will not change on retry; 4xx replies,
/// refused connections and timeouts may.
fn smtp_error(server: &str, err: lettre::transport::smtp::Error) -> ActionError {
    let what = format!("SMTP server {server}: {err}");
    if err.is_permanent() || err.is_tls() || err.is_client() {
        ActionError::Permanent(what)
    } else {
        ActionError::Transient {
            what,
            retry_after_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_choose_security_port_and_credentials() {
        let e = SmtpEndpoint::parse("f", "smtp://mail.example.com").unwrap();
        assert_eq!(
            (e.port, e.security, e.credentials),
            (25, Security::Plain, None)
        );
        let e = SmtpEndpoint::parse(
            "f",
            "smtp://bot%40example.com:p%3Ass@mail:2525?tls=starttls",
        )
        .unwrap();
        assert_eq!(e.host, "mail");
        assert_eq!(e.port, 2525);
        assert_eq!(e.security, Security::StartTls);
        assert_eq!(
            e.credentials,
            Some(("bot@example.com".into(), "p:ss".into()))
        );
        let e = SmtpEndpoint::parse("f", "smtp://mail?tls=starttls").unwrap();
        assert_eq!(e.port, 587);
        let e = SmtpEndpoint::parse("f", "smtps://u:p@mail").unwrap();
        assert_eq!((e.port, e.security), (465, Security::Tls));
        assert_eq!(
            SmtpEndpoint::parse("f", "smtp://[::1]:2525").unwrap().host,
            "::1"
        );
        for bad in [
            "http://mail",
            "smtp://mail?tls=maybe",
            "smtps://mail?tls=starttls",
            "smtp://mail?x=1",
            "mail:25",
        ] {
            assert!(SmtpEndpoint::parse("f", bad).is_err(), "{bad}");
        }
        let err = SmtpEndpoint::parse("f", "smtp://u:hunter2@mail?tls=maybe")
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn smtp_url_passwords_are_redacted() {
        let shown = redact_smtp_url("smtps://bot:hunter2@mail.example.com:465");
        assert_eq!(shown, "smtps://bot:***@mail.example.com:465");
        assert_eq!(redact_smtp_url("smtp://mail"), "smtp://mail");
    }

    #[test]
    fn message_ids_come_from_the_key() {
        assert_eq!(
            message_id("vigil-INC-7-notify"),
            "<vigil-INC-7-notify@vigil>"
        );
        assert_eq!(message_id("a b<c>@d"), "<a-b-c--d@vigil>");
    }
}
