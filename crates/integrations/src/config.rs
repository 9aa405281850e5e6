//! The `[integrations]` settings: which trackers and channels exist and how to reach them.
//! Every section is optional; a missing section means that integration is off. Secrets may
//! come from the environment instead of the file ([`IntegrationsConfig::with_env`]), and never
//! appear in `Debug` output.
//!
//! ```toml
//! [integrations]
//! public_url = "https://vigil.example.com"
//!
//! [integrations.jira]
//! url = "https://example.atlassian.net"
//! user = "vigil-bot@example.com"   # Cloud; leave out for a Data Center PAT
//! project = "OPS"                  # token from VIGIL_JIRA_TOKEN
//!
//! [integrations.email]
//! smtp_url = "smtp://mail.example.com:587?tls=starttls"
//! from = "vigil <vigil@example.com>"
//! to = ["oncall@example.com"]
//! ```

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use vigil_actions::{Notifier, Tracker};

use crate::email::{redact_smtp_url, EmailNotifier, SmtpEndpoint};
use crate::http::{parse_http_url, redact_url};
use crate::jira::JiraTracker;
use crate::slack::SlackNotifier;
use crate::webhook::WebhookNotifier;
use crate::IntegrationError;

const REDACTED: &str = "<redacted>";

/// All integrations. Build them with [`IntegrationsConfig::build`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationsConfig {
    /// vigil's address as people reach it, e.g. `https://vigil.example.com`. When set, Jira
    /// issues link to the incident page, `{public_url}/ui/incidents/<key>`. Default: unset
    /// (issues name the incident key only). Env: `VIGIL_PUBLIC_URL`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Jira issues for incidents. Default: off.
    #[serde(default)]
    pub jira: Option<JiraConfig>,
    /// E-mail over SMTP. Default: off.
    #[serde(default)]
    pub email: Option<EmailConfig>,
    /// Slack incoming webhook. Default: off.
    #[serde(default)]
    pub slack: Option<SlackConfig>,
    /// Signed JSON webhook. Default: off.
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
}

/// Jira (Cloud or Data Center), REST API v2.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JiraConfig {
    /// The site's base URL, e.g. `https://example.atlassian.net` or
    /// `https://jira.example.com/jira`. Required. Env: `VIGIL_JIRA_URL`.
    pub url: String,
    /// Jira Cloud: the bot account's e-mail; requests then use Basic auth with `token` as
    /// the API token. Unset (the default): `token` is a Data Center personal access token,
    /// sent as `Bearer`. Env: `VIGIL_JIRA_USER`.
    pub user: Option<String>,
    /// API token (Cloud) or personal access token (Data Center). Required; best given
    /// through the environment. Env: `VIGIL_JIRA_TOKEN`.
    pub token: String,
    /// Key of the project issues are created in, e.g. `OPS`. Required.
    /// Env: `VIGIL_JIRA_PROJECT`.
    pub project: String,
    /// Issue type of new issues. Default: `Incident`. Env: `VIGIL_JIRA_ISSUE_TYPE`.
    pub issue_type: String,
    /// Status a resolved incident's issue is moved to, through whichever transition leads
    /// there (matched by target status or transition name, ignoring case). Default: `Done`.
    pub resolve_status: String,
    /// Assignee of new issues: an account id on Cloud (`user` set), a user name on Data
    /// Center. Default: unset (the project's default assignee).
    pub assignee: Option<String>,
}

impl Default for JiraConfig {
    fn default() -> Self {
        JiraConfig {
            url: String::new(),
            user: None,
            token: String::new(),
            project: String::new(),
            issue_type: "Incident".into(),
            resolve_status: "Done".into(),
            assignee: None,
        }
    }
}

impl fmt::Debug for JiraConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JiraConfig")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("token", &redacted(&self.token))
            .field("project", &self.project)
            .field("issue_type", &self.issue_type)
            .field("resolve_status", &self.resolve_status)
            .field("assignee", &self.assignee)
            .finish()
    }
}

/// E-mail over SMTP.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// Where to send: `smtp://[user:password@]host[:port]` (no TLS, port 25),
    /// `smtp://…?tls=starttls` (STARTTLS required, port 587), `smtp://…?tls=opportunistic`
    /// (STARTTLS when offered, port 25) or `smtps://…` (TLS from the first byte, port 465).
    /// Percent-encode `@`, `:` and `/` in the user and password. Required.
    /// Env: `VIGIL_SMTP_URL`.
    pub smtp_url: String,
    /// Sender, `vigil@example.com` or `vigil <vigil@example.com>`. Required.
    /// Env: `VIGIL_EMAIL_FROM`.
    pub from: String,
    /// Recipients of messages whose playbook names none. Default: none.
    /// Env: `VIGIL_EMAIL_TO` (comma-separated).
    pub to: Vec<String>,
    /// Replacements for the built-in templates. Default: none.
    pub templates: EmailTemplates,
}

impl fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailConfig")
            .field("smtp_url", &redact_smtp_url(&self.smtp_url))
            .field("from", &self.from)
            .field("to", &self.to)
            .field("templates", &self.templates)
            .finish()
    }
}

/// minijinja templates replacing the built-in ones. They see `kind` (`opened`/`resolved`),
/// `key`, `incident` (every incident and alarm field), `diagnostics` (probe, host, output),
/// `tickets` (tracker, id, url), `incident_url` and `facts` (subject, target, metric, value,
/// threshold, appcode, state, impact, observed, desired, context rows of name/label/value).
/// Blocks trim their own line. Each is checked at start by rendering a sample incident.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailTemplates {
    /// Subject line; newlines collapse to spaces. Default: `{{ facts.subject }}`, e.g.
    /// `High CPU Utilization Alert : web-01`, `Resolved: …` on recovery.
    pub subject: Option<String>,
    /// The text/plain part. Default: the built-in responder summary.
    pub text: Option<String>,
    /// The text/html part (values are HTML-escaped). Default: the built-in summary.
    pub html: Option<String>,
}

/// Slack incoming webhook.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlackConfig {
    /// The incoming webhook's URL (`https://hooks.slack.com/services/…`); it is a secret.
    /// Required. Env: `VIGIL_SLACK_WEBHOOK_URL`.
    pub webhook_url: String,
    /// minijinja template for the message's main text, in Slack mrkdwn (the `mrkdwn` filter
    /// escapes values); it sees what the e-mail templates see. Default: title, impact,
    /// observed and desired state.
    pub template: Option<String>,
}

impl fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackConfig")
            .field("webhook_url", &redact_url(&self.webhook_url))
            .field("template", &self.template)
            .finish()
    }
}

/// A JSON POST per notification, signed with HMAC-SHA256.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Receiver's URL. Required. Env: `VIGIL_WEBHOOK_URL`.
    pub url: String,
    /// Key for `X-Vigil-Signature: sha256=<hex HMAC-SHA256(secret, body)>`. Default: unset
    /// (deliveries are unsigned). Env: `VIGIL_WEBHOOK_SECRET`.
    pub secret: Option<String>,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &redact_url(&self.url))
            .field("secret", &self.secret.as_deref().map(redacted))
            .finish()
    }
}

fn redacted(secret: &str) -> &'static str {
    if secret.is_empty() {
        ""
    } else {
        REDACTED
    }
}

/// The built integrations, ready for the playbook runner.
pub struct Integrations {
    pub trackers: Vec<Arc<dyn Tracker>>,
    pub notifiers: Vec<Arc<dyn Notifier>>,
}

impl fmt::Debug for Integrations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Integrations")
            .field(
                "trackers",
                &self.trackers.iter().map(|t| t.name()).collect::<Vec<_>>(),
            )
            .field(
                "notifiers",
                &self
                    .notifiers
                    .iter()
                    .map(|n| n.channel())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl IntegrationsConfig {
    /// Overlays `VIGIL_*` variables read through `env` (pass `|k| std::env::var(k).ok()`);
    /// a variable set to an empty string counts as unset. A variable for a section that the
    /// file does not have turns that section on. `VIGIL_SMTP_URL` is checked here so a
    /// malformed one is reported under its own name.
    pub fn with_env(
        mut self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, IntegrationError> {
        let var = |name: &str| {
            env(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if let Some(v) = var("VIGIL_PUBLIC_URL") {
            self.public_url = Some(v);
        }
        if let Some(v) = var("VIGIL_JIRA_URL") {
            self.jira_mut().url = v;
        }
        if let Some(v) = var("VIGIL_JIRA_USER") {
            self.jira_mut().user = Some(v);
        }
        if let Some(v) = var("VIGIL_JIRA_TOKEN") {
            self.jira_mut().token = v;
        }
        if let Some(v) = var("VIGIL_JIRA_PROJECT") {
            self.jira_mut().project = v;
        }
        if let Some(v) = var("VIGIL_JIRA_ISSUE_TYPE") {
            self.jira_mut().issue_type = v;
        }
        if let Some(v) = var("VIGIL_SMTP_URL") {
            SmtpEndpoint::parse("VIGIL_SMTP_URL", &v)?;
            self.email_mut().smtp_url = v;
        }
        if let Some(v) = var("VIGIL_EMAIL_FROM") {
            self.email_mut().from = v;
        }
        if let Some(v) = var("VIGIL_EMAIL_TO") {
            self.email_mut().to = v
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect();
        }
        if let Some(v) = var("VIGIL_SLACK_WEBHOOK_URL") {
            self.slack_mut().webhook_url = v;
        }
        if let Some(v) = var("VIGIL_WEBHOOK_URL") {
            self.webhook_mut().url = v;
        }
        if let Some(v) = var("VIGIL_WEBHOOK_SECRET") {
            self.webhook_mut().secret = Some(v);
        }
        Ok(self)
    }

    fn jira_mut(&mut self) -> &mut JiraConfig {
        self.jira.get_or_insert_with(JiraConfig::default)
    }

    fn email_mut(&mut self) -> &mut EmailConfig {
        self.email.get_or_insert_with(EmailConfig::default)
    }

    fn slack_mut(&mut self) -> &mut SlackConfig {
        self.slack.get_or_insert_with(SlackConfig::default)
    }

    fn webhook_mut(&mut self) -> &mut WebhookConfig {
        self.webhook.get_or_insert_with(WebhookConfig::default)
    }

    /// Checks every section (required fields, URLs, addresses, templates) and builds the
    /// trackers and notifiers. Nothing is contacted: a Jira or mail server that is down at
    /// start is the runner's to retry, not a reason to refuse to start.
    pub fn build(&self) -> Result<Integrations, IntegrationError> {
        let public_url = match &self.public_url {
            Some(url) => Some(parse_http_url("public_url", url)?),
            None => None,
        };
        let mut trackers: Vec<Arc<dyn Tracker>> = Vec::new();
        let mut notifiers: Vec<Arc<dyn Notifier>> = Vec::new();
        if let Some(jira) = &self.jira {
            let mut tracker = JiraTracker::new(jira)?;
            if let Some(url) = &public_url {
                tracker = tracker.with_incident_links(url.as_str());
            }
            trackers.push(Arc::new(tracker));
        }
        if let Some(email) = &self.email {
            notifiers.push(Arc::new(EmailNotifier::new(email)?));
        }
        if let Some(slack) = &self.slack {
            notifiers.push(Arc::new(SlackNotifier::new(slack)?));
        }
        if let Some(webhook) = &self.webhook {
            notifiers.push(Arc::new(WebhookNotifier::new(webhook)?));
        }
        Ok(Integrations {
            trackers,
            notifiers,
        })
    }
}
