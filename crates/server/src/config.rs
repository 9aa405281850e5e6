//! Configuration: TOML, every section optional, unknown keys refused so a typo is an error
//! at start, not a silently ignored setting. `vigil.example.toml` documents every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use vigil_actions::Playbook;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub bus: BusConfig,
    pub ingest: IngestConfig,
    pub incidents: IncidentsConfig,
    pub storm: StormConfig,
    /// Extra rules; a rule named like a default replaces it.
    pub rules: Vec<RuleConfig>,
    /// Extra playbooks; one named like a default (`respond`, `recover`) replaces it.
    pub playbooks: std::collections::BTreeMap<String, Playbook>,
    pub metrics: MetricsConfig,
    /// Alarm definitions, PutMetricAlarm's fields in snake_case. Alarms made through the
    /// API are stored and override a config alarm of the same name.
    pub alarms: Vec<crate::alarm_engine::AlarmDefinition>,
    /// Rules binding hosts that have no Appcode yet: first match wins
    /// (`{ host_glob = "web-*", appcode = "shop_web" }`, or `label = ["role", "db"]`).
    pub host_bindings: Vec<vigil_ownership::BindingRule>,
    pub escalation: EscalationConfig,
    /// Jira, email (SMTP), Slack and webhook; each also configurable from `VIGIL_*`
    /// environment variables, which override the file.
    pub integrations: vigil_integrations::IntegrationsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EscalationConfig {
    /// Minutes after opening at which an unacknowledged incident escalates, one level up
    /// the application tree per entry. Default `[15, 30]`; empty disables escalation.
    pub after_minutes: Vec<u64>,
}

impl Default for EscalationConfig {
    fn default() -> Self {
        EscalationConfig {
            after_minutes: vec![15, 30],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Graphite plaintext listener (`path value timestamp` lines over TCP). Default
    /// `127.0.0.1:2003`; empty disables it. `--graphite ADDR` overrides.
    pub graphite_listen: String,
    /// Most series held in memory; points of new series beyond it are dropped and counted
    /// (`vigil_series_over_cap_total`). Default 1,000,000.
    pub max_series: usize,
    /// Watch every host with the built-in alarms (CPU > 80 %, memory > 80 %, disk > 85 %,
    /// 3 of 3 periods of 60 s). Default true.
    pub default_alarms: bool,
    /// Caps on series per source and per Appcode, within `max_series`.
    pub series_caps: SeriesCapsConfig,
    /// How often the chart history (one-minute summaries of the last 24 h) is written to
    /// the store, besides at shutdown: a crash loses at most this much of the charts
    /// (never alarm states, which are saved as they change). Default 900.
    pub history_save_secs: u64,
    /// Sending samples on to a time-series database, and reading charts from one.
    pub forward: ForwardConfig,
}

/// `[metrics.forward]`: for sites that already run a time-series database. vigil stays an
/// alarm engine: every sample it accepted is sent on with Prometheus remote_write
/// (Prometheus, VictoriaMetrics, Mimir, Thanos receive), and charts can read their history
/// from a Prometheus-compatible query API instead of vigil's own 24 hours.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardConfig {
    /// Where to send every accepted sample, e.g.
    /// `http://prometheus:9090/api/v1/write`. Default none (no forwarding).
    pub remote_write_url: Option<String>,
    /// A Prometheus-compatible query API (the URL before `/api/v1/query_range`, e.g.
    /// `http://prometheus:9090`) the charts read their history from. Default none: charts
    /// show vigil's own history. When the query API fails, charts fall back to vigil's own
    /// history and say why.
    pub query_url: Option<String>,
    /// A file holding a bearer token sent to both URLs. Default none.
    pub bearer_token_file: Option<PathBuf>,
    /// Samples waiting to be sent, at most; beyond it (the database is down or slow) new
    /// samples are not forwarded and are counted in
    /// `vigil_forward_samples_total{outcome="dropped"}`. Alarms are not affected. Default
    /// 200,000.
    pub queue_samples: usize,
    /// Samples per remote_write request, at most. Default 5,000.
    pub batch_samples: usize,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        ForwardConfig {
            remote_write_url: None,
            query_url: None,
            bearer_token_file: None,
            queue_samples: 200_000,
            batch_samples: 5_000,
        }
    }
}

/// `[metrics.series_caps]`: most series one source or one Appcode may hold, so one noisy
/// sender cannot take the room of the others. A new series beyond a cap is refused: the
/// HTTP sources answer 400 naming the cap (the points of known series in the same request
/// are kept), and `vigil_series_over_cap_total{cap}` counts it. `vigil series top` shows
/// where the series are.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeriesCapsConfig {
    /// Series from vigil's agents. Default 1,000,000.
    pub agent: usize,
    /// Series from Graphite lines. Default 1,000,000.
    pub graphite: usize,
    /// Series from Prometheus remote_write. Default 1,000,000.
    pub remote_write: usize,
    /// Series of one Appcode (a series' `appcode` label, else its host's binding in the
    /// application tree). Default 250,000.
    pub per_appcode: usize,
}

impl Default for SeriesCapsConfig {
    fn default() -> Self {
        SeriesCapsConfig {
            agent: 1_000_000,
            graphite: 1_000_000,
            remote_write: 1_000_000,
            per_appcode: 250_000,
        }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            graphite_listen: "127.0.0.1:2003".into(),
            max_series: 1_000_000,
            default_alarms: true,
            series_caps: SeriesCapsConfig::default(),
            history_save_secs: 900,
            forward: ForwardConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Directory for the database and the admin token. Default `./vigil-data`.
    pub data_dir: PathBuf,
    /// Largest request body accepted, in bytes. Default 1 MiB.
    pub body_limit_bytes: usize,
    /// The URL people reach vigil at, for links in tickets and messages. Default: the
    /// listening address.
    pub public_url: Option<String>,
    /// PEM certificate chain (the server's certificate first). With `tls_key`, vigil serves
    /// HTTPS only on `listen`. Default: none (plain HTTP, e.g. behind a reverse proxy).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_cert`. Default: none.
    pub tls_key: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./vigil-data"),
            body_limit_bytes: 1024 * 1024,
            public_url: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Where state lives: `postgres://user@host:5432/db` for PostgreSQL, or a SQLite file
    /// path. Default: the SQLite file `vigil.db` in the data directory. `VIGIL_STORE_URL`
    /// overrides.
    pub url: Option<String>,
}

/// The bus between cluster members.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusConfig {
    /// `nats://host:4222` of a NATS server with JetStream: this server becomes one member of
    /// a cluster sharing `[store] url` (PostgreSQL). Default: none, a server alone.
    /// `VIGIL_BUS_URL` overrides.
    pub url: Option<String>,
    /// The cluster's name: members with the same name (and bus) work together; two
    /// clusters (staging, production) can share one NATS. Letters, digits, `-` and `_`.
    /// Default `main`.
    pub cluster: String,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            url: None,
            cluster: "main".to_string(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    pub sns: SnsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnsConfig {
    /// Topics whose SubscriptionConfirmation vigil confirms. Default: none — every
    /// confirmation is recorded and refused until its topic is listed here.
    pub allowed_topic_arns: Vec<String>,
    /// Hosts a SubscribeURL may point at. Default: SNS's own (`sns.<region>.amazonaws.com`).
    /// The URL comes from the request body, so it is never fetched from anywhere else.
    pub confirm_url_hosts: Vec<String>,
    /// Hosts a message's SigningCertURL may point at: every SNS message must be signed
    /// with the key of a certificate fetched (over https, path ending `.pem`) from one of
    /// them. Default: SNS's own (`sns.*.amazonaws.com`). Entries are `HOST` or
    /// `HOST:PORT`, `*` standing for one DNS label. Change it only to test against a
    /// stand-in for SNS on this machine (`127.0.0.1:PORT`, the one case where plain http
    /// is accepted); a wider list lets whoever serves a certificate there sign messages.
    pub signing_cert_url_hosts: Vec<String>,
}

impl Default for SnsConfig {
    fn default() -> Self {
        SnsConfig {
            allowed_topic_arns: Vec::new(),
            confirm_url_hosts: vec!["sns.*.amazonaws.com".to_string()],
            signing_cert_url_hosts: vec!["sns.*.amazonaws.com".to_string()],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentsConfig {
    /// Alarm fields whose values form the group key. Default `["alarm_name", "resource"]`.
    /// Known: alarm_name, resource, host, source, account, region, metric_name, label:NAME.
    pub group_by: Vec<String>,
    /// How long a new incident's ticket comment and messages wait for its probes. Past
    /// it they go out saying the probes are still running, and a follow-up carries the
    /// results. Default 30.
    pub diagnostics_wait_secs: u64,
}

impl Default for IncidentsConfig {
    fn default() -> Self {
        IncidentsConfig {
            group_by: vec!["alarm_name".to_string(), "resource".to_string()],
            diagnostics_wait_secs: 30,
        }
    }
}

/// Alarm storms: many new incidents of one rule under one scope at once are reported as one
/// storm incident — one ticket, one message per channel — instead of one each.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StormConfig {
    /// A storm forms when more than this many incidents of one rule and scope open within
    /// `window_secs`. Default 20; 0 turns storm grouping off. `VIGIL_STORM_THRESHOLD`
    /// overrides.
    pub threshold: u32,
    /// Default 60.
    pub window_secs: u64,
    /// Alarm fields that, with the rule, make a storm's scope. Default `["appcode"]` (the
    /// incident's application); add e.g. `label:zone` or `region` for a switch or a zone.
    /// Known: appcode, alarm_name, resource, host, source, account, region, metric_name,
    /// label:NAME.
    pub by: Vec<String>,
    /// How long a new incident's ticket and messages wait before they go out, so that a
    /// storm gathers before anyone is told (Alertmanager's group_wait). Default 10; 0 sends
    /// at once (the first incidents of a storm are then reported on their own).
    /// `VIGIL_STORM_GROUP_WAIT_SECS` overrides.
    pub group_wait_secs: u64,
    /// At most one digest of a storm's news per this many seconds (Alertmanager's
    /// group_interval). Default 300.
    pub group_interval_secs: u64,
}

impl Default for StormConfig {
    fn default() -> Self {
        StormConfig {
            threshold: 20,
            window_secs: 60,
            by: vec!["appcode".to_string()],
            group_wait_secs: 10,
            group_interval_secs: 300,
        }
    }
}

impl StormConfig {
    /// `VIGIL_STORM_THRESHOLD` and `VIGIL_STORM_GROUP_WAIT_SECS` override the file.
    pub fn with_env(mut self, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let number = |name: &str| -> Result<Option<u64>, ConfigError> {
            match env(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
            {
                None => Ok(None),
                Some(v) => v.parse().map(Some).map_err(|_| {
                    ConfigError::Invalid(format!("{name}: `{v}` is not a whole number"))
                }),
            }
        };
        if let Some(n) = number("VIGIL_STORM_THRESHOLD")? {
            self.threshold = u32::try_from(n).map_err(|_| {
                ConfigError::Invalid(format!("VIGIL_STORM_THRESHOLD: {n} is too large"))
            })?;
        }
        if let Some(n) = number("VIGIL_STORM_GROUP_WAIT_SECS")? {
            self.group_wait_secs = n;
        }
        Ok(self)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub name: String,
    /// An EventBridge event pattern: JSON text, or a TOML table of the same shape.
    pub pattern: toml::Value,
    /// The playbook to run for matching events.
    pub playbook: String,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config: {0}")]
    Invalid(String),
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text).map_err(|e| match e {
            ConfigError::Invalid(message) => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config =
            toml::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        vigil_core::group_key_fields_valid(&config.incidents.group_by)
            .map_err(|e| ConfigError::Invalid(format!("incidents.group_by: {e}")))?;
        vigil_core::group_key_fields_valid(&config.storm.by)
            .map_err(|e| ConfigError::Invalid(format!("storm.by: {e}")))?;
        if config.storm.window_secs == 0 && config.storm.threshold > 0 {
            return Err(ConfigError::Invalid(
                "storm.window_secs must be at least 1 (or set storm.threshold = 0 to turn storms off)".into(),
            ));
        }
        if config.incidents.group_by.is_empty() {
            return Err(ConfigError::Invalid(
                "incidents.group_by must name at least one field".into(),
            ));
        }
        for alarm in &config.alarms {
            alarm
                .compile()
                .map_err(|e| ConfigError::Invalid(format!("alarm `{}`: {e}", alarm.alarm_name)))?;
        }
        for (name, playbook) in &config.playbooks {
            for step in &playbook.steps {
                let probes: Vec<&String> = match step {
                    vigil_actions::Step::Diagnose { probes } => probes.iter().collect(),
                    vigil_actions::Step::Remediate { probe, .. } => vec![probe],
                    _ => Vec::new(),
                };
                if let Some(unknown) = probes.into_iter().find(|p| !vigil_core::is_known_probe(p)) {
                    return Err(ConfigError::Invalid(format!(
                        "playbook `{name}`: no probe named `{unknown}`; agents run {} and `command:NAME` for commands their config allows",
                        vigil_core::BUILT_IN_PROBES.join(", ")
                    )));
                }
            }
        }
        if config.server.body_limit_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "server.body_limit_bytes must be at least 1024".into(),
            ));
        }
        Ok(config)
    }
}

/// TOML has no null and spells keys differently; rules accept JSON text or a table.
pub fn pattern_json(pattern: &toml::Value) -> Result<serde_json::Value, String> {
    match pattern {
        toml::Value::String(text) => {
            serde_json::from_str(text).map_err(|e| format!("pattern is not valid JSON: {e}"))
        }
        toml::Value::Table(_) => serde_json::to_value(pattern).map_err(|e| e.to_string()),
        _ => Err("pattern must be JSON text or a table".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let text = include_str!("../../../vigil.example.toml");
        let config = Config::parse(text).unwrap();
        assert_eq!(config.server.body_limit_bytes, 1024 * 1024);
        assert!(!config.rules.is_empty());
    }

    /// Copied as is, the example turns on no tracker, mail server, chat or webhook: a new
    /// user's first alarm must not try to reach example.atlassian.net.
    #[test]
    fn the_example_config_reaches_nothing_external() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vigil.example.toml");
        let config = Config::load(&path).unwrap();
        let integrations = &config.integrations;
        assert!(integrations.jira.is_none(), "{:?}", integrations.jira);
        assert!(integrations.email.is_none(), "{:?}", integrations.email);
        assert!(integrations.slack.is_none(), "{:?}", integrations.slack);
        assert!(integrations.webhook.is_none(), "{:?}", integrations.webhook);
        // Its approval example is a playbook the server takes.
        assert!(config.playbooks.contains_key("careful-restart"));
    }

    #[test]
    fn a_playbook_naming_an_unknown_probe_is_refused_naming_it() {
        for (step, unknown) in [
            (
                r#"{ type = "diagnose", probes = ["top_cpu", "top_cpus"] }"#,
                "top_cpus",
            ),
            (r#"{ type = "remediate", probe = "reboot" }"#, "reboot"),
            (r#"{ type = "remediate", probe = "command:" }"#, "command:"),
        ] {
            let text = format!("[playbooks.careful]\nsteps = [{step}]\n");
            let error = Config::parse(&text).unwrap_err().to_string();
            assert!(
                error.contains(&format!("no probe named `{unknown}`")) && error.contains("careful"),
                "{error}"
            );
        }
        let fine = r#"[playbooks.careful]
steps = [{ type = "diagnose", probes = ["disk_usage", "command:df_inodes"] }, { type = "remediate", probe = "collector_restart", approval = true }]
"#;
        assert!(Config::parse(fine).is_ok());
    }

    #[test]
    fn sns_signing_certificates_come_only_from_sns_by_default() {
        let default = Config::parse("").unwrap();
        assert_eq!(
            default.ingest.sns.signing_cert_url_hosts,
            vec!["sns.*.amazonaws.com".to_string()]
        );
        let example = Config::parse(include_str!("../../../vigil.example.toml")).unwrap();
        assert_eq!(
            example.ingest.sns.signing_cert_url_hosts,
            default.ingest.sns.signing_cert_url_hosts
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = Config::parse("[server]\nlisten_addr = \"1.2.3.4:5\"\n").unwrap_err();
        assert!(err.to_string().contains("listen_addr"), "{err}");
        let err = Config::parse("[incidents]\ngroup_by = [\"colour\"]\n").unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn pattern_from_text_or_table() {
        let config = Config::parse(
            "[[rules]]\nname = \"a\"\npattern = '{\"source\": [\"x\"]}'\nplaybook = \"respond\"\n\
             [[rules]]\nname = \"b\"\npattern = { source = [\"x\"] }\nplaybook = \"respond\"\n",
        )
        .unwrap();
        let a = pattern_json(&config.rules[0].pattern).unwrap();
        let b = pattern_json(&config.rules[1].pattern).unwrap();
        assert_eq!(a, b);
    }
}
