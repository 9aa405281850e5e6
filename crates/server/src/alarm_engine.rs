//! vigil's own alarms: metric series held in memory, alarm definitions in CloudWatch's
//! PutMetricAlarm shape, and a tick that judges every alarm instance (alarm × matching
//! series) with `vigil-alarm` and turns each state change into a `vigil.alarms` event.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use vigil_alarm::{
    AlarmInstance, AlarmSpec, Comparison, Series, State, Statistic, TreatMissingData,
};
use vigil_core::{Event, ALARM_STATE_CHANGE};
use vigil_ingest::MetricPoint;

/// A dimension filter: `Value` `*` matches any value of that dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Dimension {
    #[serde(alias = "name")]
    pub name: String,
    #[serde(alias = "value")]
    pub value: String,
}

/// An alarm as CloudWatch's PutMetricAlarm takes it (so `aws cloudwatch put-metric-alarm
/// --cli-input-json` files work unchanged), plus vigil's `Severity` and `Appcode`. Config
/// files use the same names in snake_case. AWS fields vigil has no use for are accepted
/// and kept, unknown ones are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AlarmDefinition {
    /// 1 to 255 bytes once trimmed.
    #[serde(alias = "alarm_name")]
    #[schema(min_length = 1, max_length = 255, pattern = r"\S")]
    pub alarm_name: String,
    #[serde(alias = "metric_name")]
    #[schema(min_length = 1, pattern = r"\S")]
    pub metric_name: String,
    #[serde(default, alias = "namespace", skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, alias = "dimensions")]
    pub dimensions: Vec<Dimension>,
    /// `Statistic` or `ExtendedStatistic`, exactly one.
    #[serde(default, alias = "statistic", skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = statistic_schema)]
    pub statistic: Option<String>,
    #[serde(
        default,
        alias = "extended_statistic",
        skip_serializing_if = "Option::is_none"
    )]
    /// A percentile such as `p99`; empty (as the CLI skeleton has it) is the same as absent.
    #[schema(pattern = r"^(p[0-9]+(\.[0-9]+)?)?$")]
    pub extended_statistic: Option<String>,
    #[serde(alias = "period")]
    #[schema(minimum = 1, maximum = 4294967295_u64)]
    pub period: u32,
    #[serde(alias = "evaluation_periods")]
    #[schema(minimum = 1, maximum = 4294967295_u64)]
    pub evaluation_periods: u32,
    #[serde(
        default,
        alias = "datapoints_to_alarm",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 0, maximum = 4294967295_u64)]
    pub datapoints_to_alarm: Option<u32>,
    #[serde(alias = "threshold")]
    pub threshold: f64,
    #[serde(alias = "comparison_operator")]
    #[schema(schema_with = comparison_schema)]
    pub comparison_operator: String,
    #[serde(
        default,
        alias = "treat_missing_data",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(schema_with = treat_missing_data_schema)]
    pub treat_missing_data: Option<String>,
    #[serde(default, alias = "severity", skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(default, alias = "appcode", skip_serializing_if = "Option::is_none")]
    pub appcode: Option<String>,
    #[serde(
        default,
        alias = "alarm_description",
        skip_serializing_if = "Option::is_none"
    )]
    pub alarm_description: Option<String>,
    #[serde(
        default,
        alias = "actions_enabled",
        skip_serializing_if = "Option::is_none"
    )]
    pub actions_enabled: Option<Value>,
    #[serde(
        default,
        rename = "OKActions",
        alias = "ok_actions",
        skip_serializing_if = "Option::is_none"
    )]
    pub ok_actions: Option<Value>,
    #[serde(
        default,
        alias = "alarm_actions",
        skip_serializing_if = "Option::is_none"
    )]
    pub alarm_actions: Option<Value>,
    #[serde(
        default,
        alias = "insufficient_data_actions",
        skip_serializing_if = "Option::is_none"
    )]
    pub insufficient_data_actions: Option<Value>,
    #[serde(default, alias = "unit", skip_serializing_if = "Option::is_none")]
    pub unit: Option<Value>,
    #[serde(default, alias = "tags", skip_serializing_if = "Option::is_none")]
    pub tags: Option<Value>,
    #[serde(
        default,
        alias = "evaluate_low_sample_count_percentile",
        skip_serializing_if = "Option::is_none"
    )]
    pub evaluate_low_sample_count_percentile: Option<Value>,
    /// Metric math. Read so that the JSON `aws cloudwatch put-metric-alarm
    /// --generate-cli-skeleton` prints is taken with these left empty; filled in, the alarm
    /// is refused naming them (vigil judges one metric per alarm).
    #[serde(default, alias = "metrics", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub metrics: Option<Value>,
    #[serde(
        default,
        alias = "threshold_metric_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub threshold_metric_id: Option<String>,
}

/// A text field as the CLI skeleton leaves it: empty means not given.
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// Whether `Metrics` names anything: an entry with an `Id`, an `Expression` or a metric.
fn names_metric_math(metrics: &Value) -> bool {
    let named = |entry: &Value, pointer: &str| {
        entry
            .pointer(pointer)
            .and_then(Value::as_str)
            .is_some_and(|text| !text.trim().is_empty())
    };
    match metrics {
        Value::Array(entries) => entries.iter().any(|entry| {
            ["/Id", "/Expression", "/MetricStat/Metric/MetricName"]
                .iter()
                .any(|pointer| named(entry, pointer))
        }),
        Value::Null => false,
        _ => true,
    }
}

/// The words `Statistic` takes; percentiles go in `ExtendedStatistic`.
fn statistic_schema() -> utoipa::openapi::schema::Object {
    string_enum(
        &["Average", "Sum", "Minimum", "Maximum", "SampleCount", ""],
        true,
    )
}

fn comparison_schema() -> utoipa::openapi::schema::Object {
    string_enum(
        &[
            "GreaterThanThreshold",
            "GreaterThanOrEqualToThreshold",
            "LessThanThreshold",
            "LessThanOrEqualToThreshold",
        ],
        false,
    )
}

fn treat_missing_data_schema() -> utoipa::openapi::schema::Object {
    string_enum(
        &["missing", "ignore", "breaching", "notBreaching", ""],
        true,
    )
}

/// A string schema listing the words a field takes (and `null`, for an optional one).
fn string_enum(words: &[&str], nullable: bool) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    let mut values: Vec<Value> = words.iter().map(|w| json!(w)).collect();
    let schema_type = if nullable {
        values.push(Value::Null);
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    };
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(schema_type)
        .enum_values(Some(values))
        .build()
}

/// A definition checked and ready to judge series.
#[derive(Debug, Clone)]
pub struct CompiledAlarm {
    pub definition: AlarmDefinition,
    pub spec: AlarmSpec,
}

impl AlarmDefinition {
    pub fn compile(&self) -> Result<CompiledAlarm, String> {
        let name = self.alarm_name.trim();
        if name.is_empty() || name.len() > 255 {
            return Err("AlarmName must be 1 to 255 characters".into());
        }
        if self.metric_name.trim().is_empty() {
            return Err("MetricName must not be empty".into());
        }
        if self.metrics.as_ref().is_some_and(names_metric_math)
            || given(&self.threshold_metric_id).is_some()
        {
            return Err("Metrics and ThresholdMetricId (metric math) are not supported: give MetricName, Namespace, Statistic and Dimensions of one metric instead".into());
        }
        let statistic: Statistic = match (given(&self.statistic), given(&self.extended_statistic)) {
            (Some(s), None) | (None, Some(s)) => s.parse().map_err(|e| format!("Statistic: {e}"))?,
            (Some(_), Some(_)) => return Err("give Statistic or ExtendedStatistic, not both".into()),
            (None, None) => return Err("Statistic (Average, Sum, Minimum, Maximum, SampleCount) or ExtendedStatistic (p99) is required".into()),
        };
        let comparison: Comparison = self
            .comparison_operator
            .parse()
            .map_err(|e| format!("ComparisonOperator: {e}"))?;
        let treat_missing_data: TreatMissingData = match given(&self.treat_missing_data) {
            Some(t) => t.parse().map_err(|e| format!("TreatMissingData: {e}"))?,
            None => TreatMissingData::Missing,
        };
        let spec = AlarmSpec {
            name: name.to_string(),
            statistic,
            period_secs: self.period,
            evaluation_periods: self.evaluation_periods,
            // The skeleton's 0 means not given, as an empty field does.
            datapoints_to_alarm: self
                .datapoints_to_alarm
                .filter(|n| *n > 0)
                .unwrap_or(self.evaluation_periods),
            comparison,
            threshold: self.threshold,
            treat_missing_data,
        };
        spec.validate().map_err(|e| e.to_string())?;
        Ok(CompiledAlarm {
            definition: self.clone(),
            spec,
        })
    }

    fn selects(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.metric_name == name
            && self
                .dimensions
                .iter()
                .filter(|d| !d.name.is_empty())
                .all(|d| {
                    d.value == "*" && labels.contains_key(&d.name)
                        || labels.get(&d.name).is_some_and(|v| *v == d.value)
                })
    }
}

/// The alarms `vigil up` watches every host with (DESIGN: CPU, memory, disk; no data for
/// three periods is INSUFFICIENT_DATA under the default `missing` treatment).
pub fn default_alarms() -> Vec<AlarmDefinition> {
    let alarm = |name: &str, metric: &str, threshold: f64, description: &str| AlarmDefinition {
        alarm_name: name.into(),
        metric_name: metric.into(),
        namespace: Some("vigil".into()),
        dimensions: vec![Dimension {
            name: "host".into(),
            value: "*".into(),
        }],
        statistic: Some("Average".into()),
        extended_statistic: None,
        period: 60,
        evaluation_periods: 3,
        datapoints_to_alarm: Some(3),
        threshold,
        comparison_operator: "GreaterThanThreshold".into(),
        treat_missing_data: Some("missing".into()),
        severity: Some("high".into()),
        appcode: None,
        alarm_description: Some(description.into()),
        actions_enabled: None,
        ok_actions: None,
        alarm_actions: None,
        insufficient_data_actions: None,
        unit: None,
        tags: None,
        evaluate_low_sample_count_percentile: None,
        metrics: None,
        threshold_metric_id: None,
    };
    vec![
        alarm(
            "High CPU Utilization",
            "CPUUtilization",
            80.0,
            "CPU above 80 % for 3 minutes",
        ),
        alarm(
            "High Memory Utilization",
            "mem_used_percent",
            80.0,
            "memory above 80 % for 3 minutes",
        ),
        alarm(
            "High Disk Utilization",
            "disk_used_percent",
            85.0,
            "a filesystem above 85 % for 3 minutes",
        ),
    ]
}

/// The canonical text of a series: `name{k=v,…}` with labels sorted.
pub fn series_key(name: &str, labels: &BTreeMap<String, String>) -> String {
    let mut key = String::with_capacity(name.len() + 16 * labels.len());
    key.push_str(name);
    key.push('{');
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            key.push(',');
        }
        key.push_str(k);
        key.push('=');
        key.push_str(v);
    }
    key.push('}');
    key
}

struct SeriesEntry {
    name: String,
    labels: BTreeMap<String, String>,
    series: Series,
    last_seen_ms: i64,
    rollups: Rollups,
}

/// One-minute summaries of the last 24 hours, for charts longer than the raw window.
#[derive(Default)]
struct Rollups {
    minutes: std::collections::VecDeque<Rollup>,
}

#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Rollup {
    pub minute_ms: i64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub count: u32,
}

const MINUTE_MS: i64 = 60_000;
const ROLLUP_MINUTES: usize = 24 * 60;

impl Rollups {
    fn add(&mut self, timestamp_ms: i64, value: f64) {
        let minute_ms = timestamp_ms.div_euclid(MINUTE_MS) * MINUTE_MS;
        let position = self.minutes.iter().rposition(|r| r.minute_ms <= minute_ms);
        match position {
            Some(i) if self.minutes[i].minute_ms == minute_ms => {
                let r = &mut self.minutes[i];
                r.min = r.min.min(value);
                r.max = r.max.max(value);
                r.sum += value;
                r.count += 1;
            }
            _ => {
                let at = position.map_or(0, |i| i + 1);
                self.minutes.insert(
                    at,
                    Rollup {
                        minute_ms,
                        min: value,
                        max: value,
                        sum: value,
                        count: 1,
                    },
                );
                while self.minutes.len() > ROLLUP_MINUTES {
                    self.minutes.pop_front();
                }
            }
        }
    }
}

struct InstanceEntry {
    instance: AlarmInstance,
    /// The datapoint that decided the last change.
    last_value: Option<f64>,
    /// CloudWatch's `StateReason` and `StateReasonData` of the last change.
    reason: Option<String>,
    reason_data: Option<Value>,
    /// Recent transitions (Unix ms, new state), oldest first, so charts can mark them.
    changes: std::collections::VecDeque<(i64, State)>,
}

/// Transitions kept per instance for charts.
const CHANGES_KEPT: usize = 64;

/// What a push did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PushOutcome {
    pub accepted: usize,
    pub rejected: usize,
    /// Points of new series refused because the series cap was reached.
    pub over_cap: usize,
}

/// One state change, ready to become an event and a stored state.
pub struct AlarmChange {
    pub alarm: String,
    pub series: String,
    pub state: State,
    pub since_ms: i64,
    pub reason: String,
    pub reason_data: Value,
    pub value: Option<f64>,
    pub event: Event,
}

/// A state saved before a restart, held until its series reports again.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoredState {
    pub state: State,
    pub since_ms: i64,
    pub reason: Option<String>,
    pub reason_data: Option<Value>,
    pub value: Option<f64>,
}

/// One alarm instance as the alarms list shows it (a row of `vigil alarms`): the engine's
/// current state, with what CloudWatch's DescribeAlarms tells of an alarm.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InstanceView {
    pub alarm: String,
    pub series: String,
    pub metric: String,
    pub dimensions: BTreeMap<String, String>,
    /// The host the series is about, read as an incident reads it: the `host` dimension,
    /// else `InstanceId`.
    pub host: Option<String>,
    /// The alarm's Appcode, else the host's binding; filled in by the caller, which holds
    /// the application tree.
    pub appcode: Option<String>,
    pub state: State,
    /// When the instance entered its state (CloudWatch's `StateUpdatedTimestamp`).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub since_ms: i64,
    /// The datapoint that decided the last change, else the latest raw point.
    pub value: Option<f64>,
    pub threshold: f64,
    #[schema(schema_with = comparison_schema)]
    pub comparison: &'static str,
    /// CloudWatch's `StateReason` of the last change; `None` when it is not known (a state
    /// saved before reasons were kept, or a new instance not judged yet).
    pub reason: Option<String>,
    /// CloudWatch's `StateReasonData`.
    pub reason_data: Option<Value>,
    /// The state was saved before the last restart and its series has not reported since.
    pub restored: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SeriesView {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Raw points of the recent window: (Unix ms, value).
    pub points: Vec<(i64, f64)>,
    /// One-minute summaries of the last 24 hours.
    pub rollups: Vec<Rollup>,
}

/// Series idle this long are dropped.
const IDLE_MS: i64 = 24 * 3600 * 1000;
/// Points kept per series at least, whatever the alarms need: enough for charts of the
/// last quarter hour.
const MIN_RETENTION_SECS: u32 = 900;

pub struct Engine {
    inner: Mutex<Inner>,
    started_ms: i64,
    max_series: usize,
}

#[derive(Default)]
struct Inner {
    series: HashMap<String, SeriesEntry>,
    by_name: HashMap<String, Vec<String>>,
    alarms: BTreeMap<String, CompiledAlarm>,
    /// Alarm name → series key → instance: looked up by `&str` each tick, so a steady
    /// tick allocates nothing for bookkeeping.
    instances: HashMap<String, HashMap<String, InstanceEntry>>,
    /// When idle series were last looked for.
    swept_ms: i64,
    /// States loaded at start, waiting for their series to report again.
    restored: HashMap<(String, String), RestoredState>,
}

impl Engine {
    pub fn new(started_ms: i64, max_series: usize) -> Engine {
        Engine {
            inner: Mutex::new(Inner::default()),
            started_ms,
            max_series,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn put_alarm(&self, alarm: CompiledAlarm) {
        let mut inner = self.lock();
        let name = alarm.spec.name.clone();
        // A changed definition judges afresh.
        inner.instances.remove(&name);
        inner.alarms.insert(name, alarm);
    }

    pub fn delete_alarm(&self, name: &str) -> bool {
        let mut inner = self.lock();
        inner.instances.remove(name);
        inner.alarms.remove(name).is_some()
    }

    pub fn restore_state(&self, alarm: &str, series: &str, restored: RestoredState) {
        self.lock()
            .restored
            .insert((alarm.to_string(), series.to_string()), restored);
    }

    pub fn definitions(&self) -> Vec<AlarmDefinition> {
        self.lock()
            .alarms
            .values()
            .map(|a| a.definition.clone())
            .collect()
    }

    pub fn definition(&self, name: &str) -> Option<AlarmDefinition> {
        self.lock().alarms.get(name).map(|a| a.definition.clone())
    }

    pub fn series_count(&self) -> usize {
        self.lock().series.len()
    }

    /// Takes `points` into their series; `points` is left holding exactly the points
    /// accepted, in order (what forwarding passes on).
    pub fn push(&self, points: &mut Vec<MetricPoint>, now_ms: i64) -> PushOutcome {
        let mut outcome = PushOutcome::default();
        let mut inner = self.lock();
        let retention = inner
            .alarms
            .values()
            .map(|a| a.spec.required_retention_secs())
            .max()
            .unwrap_or(0)
            .max(MIN_RETENTION_SECS);
        points.retain(|point| {
            // A point from the future would push real ones out of the window; one older
            // than anything is kept (the day of rollups) has nowhere to go.
            if point.timestamp_ms > now_ms + 60_000 || point.timestamp_ms < now_ms - IDLE_MS {
                outcome.rejected += 1;
                return false;
            }
            let key = series_key(&point.name, &point.labels);
            if !inner.series.contains_key(&key) {
                if inner.series.len() >= self.max_series {
                    outcome.over_cap += 1;
                    return false;
                }
                inner
                    .by_name
                    .entry(point.name.clone())
                    .or_default()
                    .push(key.clone());
                inner.series.insert(
                    key.clone(),
                    SeriesEntry {
                        name: point.name.clone(),
                        labels: point.labels.clone(),
                        series: Series::new(retention),
                        last_seen_ms: now_ms,
                        rollups: Rollups::default(),
                    },
                );
            }
            let Some(entry) = inner.series.get_mut(&key) else {
                return false;
            };
            match entry.series.push(point.timestamp_ms, point.value) {
                Ok(()) => {
                    entry.rollups.add(point.timestamp_ms, point.value);
                    entry.last_seen_ms = now_ms;
                    outcome.accepted += 1;
                    true
                }
                Err(_) => {
                    outcome.rejected += 1;
                    false
                }
            }
        });
        outcome
    }

    /// Judges every instance at `now_ms`; returns the state changes.
    pub fn tick(&self, now_ms: i64, now: &str) -> Vec<AlarmChange> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let mut changes = Vec::new();
        if now_ms - inner.swept_ms >= 60_000 {
            inner.swept_ms = now_ms;
            for gone in inner.drop_idle(now_ms, self.started_ms) {
                if let Some(change) = inner.close(gone, now_ms, now) {
                    changes.push(change);
                }
            }
        }
        for alarm in inner.alarms.values() {
            let Some(keys) = inner.by_name.get(&alarm.definition.metric_name) else {
                continue;
            };
            for key in keys {
                let Some(entry) = inner.series.get(key) else {
                    continue;
                };
                if !alarm.definition.selects(&entry.name, &entry.labels) {
                    continue;
                }
                let per_alarm = match inner.instances.get_mut(alarm.spec.name.as_str()) {
                    Some(per_alarm) => per_alarm,
                    None => inner.instances.entry(alarm.spec.name.clone()).or_default(),
                };
                if !per_alarm.contains_key(key.as_str()) {
                    let id = (alarm.spec.name.clone(), key.clone());
                    let entry = match inner.restored.remove(&id) {
                        Some(restored) => InstanceEntry {
                            instance: AlarmInstance::restored(
                                restored.state,
                                restored.since_ms,
                                self.started_ms,
                            ),
                            last_value: restored.value,
                            reason: restored.reason,
                            reason_data: restored.reason_data,
                            changes: std::collections::VecDeque::new(),
                        },
                        None => InstanceEntry {
                            instance: AlarmInstance::new(now_ms),
                            last_value: None,
                            reason: None,
                            reason_data: None,
                            changes: std::collections::VecDeque::new(),
                        },
                    };
                    per_alarm.insert(key.clone(), entry);
                }
                let Some(instance) = per_alarm.get_mut(key.as_str()) else {
                    continue;
                };
                if let Some(transition) =
                    instance
                        .instance
                        .evaluate(&alarm.spec, &entry.series, now_ms)
                {
                    instance.last_value = transition.evaluated.iter().find_map(|d| d.value);
                    instance.reason = Some(transition.reason.clone());
                    instance.reason_data = Some(transition.reason_data.clone());
                    if instance.changes.len() == CHANGES_KEPT {
                        instance.changes.pop_front();
                    }
                    instance
                        .changes
                        .push_back((transition.at_ms, transition.state));
                    let event = alarm_event(alarm, &entry.labels, key, &transition, now);
                    changes.push(AlarmChange {
                        alarm: alarm.spec.name.clone(),
                        series: key.clone(),
                        state: transition.state,
                        since_ms: transition.at_ms,
                        reason: transition.reason,
                        reason_data: transition.reason_data,
                        value: instance.last_value,
                        event,
                    });
                }
            }
        }
        changes
    }

    /// Every instance's current state: those judged since the start, and those restored
    /// at start whose series has not reported since (their state is still the one saved).
    pub fn instances(&self) -> Vec<InstanceView> {
        let inner = self.lock();
        let judged = inner
            .instances
            .iter()
            .flat_map(|(alarm, per_alarm)| {
                per_alarm
                    .iter()
                    .map(move |(series, entry)| (alarm, series, entry))
            })
            .filter_map(|(alarm, series, entry)| {
                let definition = inner.alarms.get(alarm)?;
                let data = inner.series.get(series)?;
                Some(InstanceView {
                    alarm: alarm.clone(),
                    series: series.clone(),
                    metric: data.name.clone(),
                    host: host_of(&data.labels),
                    dimensions: data.labels.clone(),
                    appcode: None,
                    state: entry.instance.state,
                    since: chrono::DateTime::from_timestamp_millis(entry.instance.state_since_ms),
                    since_ms: entry.instance.state_since_ms,
                    value: entry
                        .last_value
                        .or_else(|| data.series.iter().last().map(|(_, v)| v)),
                    threshold: definition.spec.threshold,
                    comparison: definition.spec.comparison.as_str(),
                    reason: entry.reason.clone(),
                    reason_data: entry.reason_data.clone(),
                    restored: false,
                })
            });
        let waiting = inner
            .restored
            .iter()
            .filter_map(|((alarm, series), restored)| {
                let definition = inner.alarms.get(alarm)?;
                let labels = labels_of_key(series);
                Some(InstanceView {
                    alarm: alarm.clone(),
                    series: series.clone(),
                    metric: definition.definition.metric_name.clone(),
                    host: host_of(&labels),
                    dimensions: labels,
                    appcode: None,
                    state: restored.state,
                    since: chrono::DateTime::from_timestamp_millis(restored.since_ms),
                    since_ms: restored.since_ms,
                    value: restored.value,
                    threshold: definition.spec.threshold,
                    comparison: definition.spec.comparison.as_str(),
                    reason: restored.reason.clone(),
                    reason_data: restored.reason_data.clone(),
                    restored: true,
                })
            });
        let mut rows: Vec<InstanceView> = judged.chain(waiting).collect();
        rows.sort_by(|a, b| (&a.alarm, &a.series).cmp(&(&b.alarm, &b.series)));
        rows
    }

    /// The recent transitions of one instance (Unix ms, state), oldest first.
    pub fn state_changes(&self, alarm: &str, series: &str) -> Vec<(i64, &'static str)> {
        self.lock()
            .instances
            .get(alarm)
            .and_then(|per_alarm| per_alarm.get(series))
            .map(|e| e.changes.iter().map(|(at, s)| (*at, s.as_str())).collect())
            .unwrap_or_default()
    }

    /// Series named `name` whose labels include every `filter` pair, with their points.
    pub fn series(
        &self,
        name: &str,
        filter: &BTreeMap<String, String>,
        limit: usize,
    ) -> Vec<SeriesView> {
        let inner = self.lock();
        let Some(keys) = inner.by_name.get(name) else {
            return Vec::new();
        };
        keys.iter()
            .filter_map(|k| inner.series.get(k))
            .filter(|e| filter.iter().all(|(k, v)| e.labels.get(k) == Some(v)))
            .take(limit)
            .map(|e| SeriesView {
                name: e.name.clone(),
                labels: e.labels.clone(),
                points: e.series.iter().collect(),
                rollups: e.rollups.minutes.iter().copied().collect(),
            })
            .collect()
    }
}

/// An alarm instance whose series stopped existing: what is needed to close it.
struct Gone {
    alarm: String,
    series: String,
    labels: BTreeMap<String, String>,
    state: State,
    value: Option<f64>,
}

impl Inner {
    /// Forgets series silent for a day, with their alarm instances, and states restored at
    /// start whose series has not reported in a day since. Returns the instances forgotten.
    fn drop_idle(&mut self, now_ms: i64, started_ms: i64) -> Vec<Gone> {
        let mut gone = Vec::new();
        let idle: Vec<String> = self
            .series
            .iter()
            .filter(|(_, e)| now_ms - e.last_seen_ms > IDLE_MS)
            .map(|(k, _)| k.clone())
            .collect();
        for key in idle {
            let Some(entry) = self.series.remove(&key) else {
                continue;
            };
            if let Some(keys) = self.by_name.get_mut(&entry.name) {
                keys.retain(|k| *k != key);
            }
            for (alarm, per_alarm) in self.instances.iter_mut() {
                if let Some(instance) = per_alarm.remove(&key) {
                    gone.push(Gone {
                        alarm: alarm.clone(),
                        series: key.clone(),
                        labels: entry.labels.clone(),
                        state: instance.instance.state,
                        value: instance.last_value,
                    });
                }
            }
        }
        if now_ms - started_ms > IDLE_MS {
            for ((alarm, series), restored) in self.restored.drain() {
                gone.push(Gone {
                    labels: labels_of_key(&series),
                    alarm,
                    series,
                    state: restored.state,
                    value: restored.value,
                });
            }
        }
        gone
    }

    /// The last word on an instance whose series is gone: an instance in ALARM or
    /// INSUFFICIENT_DATA goes to OK, saying why, so its incident resolves rather than
    /// staying open with nothing left to judge it. An instance already OK needs nothing.
    fn close(&self, gone: Gone, now_ms: i64, now: &str) -> Option<AlarmChange> {
        if gone.state == State::Ok {
            return None;
        }
        let alarm = self.alarms.get(&gone.alarm)?;
        let reason = format!(
            "No data for {} hours: the series {} stopped reporting, so vigil no longer judges it and closes the alarm.",
            IDLE_MS / 3_600_000,
            gone.series
        );
        let transition = vigil_alarm::Transition {
            previous: gone.state,
            state: State::Ok,
            at_ms: now_ms,
            reason: reason.clone(),
            reason_data: Value::Null,
            evaluated: Vec::new(),
        };
        let event = alarm_event(alarm, &gone.labels, &gone.series, &transition, now);
        Some(AlarmChange {
            alarm: gone.alarm,
            series: gone.series,
            state: State::Ok,
            since_ms: now_ms,
            reason,
            reason_data: Value::Null,
            value: gone.value,
            event,
        })
    }
}

/// The host a series is about, as an incident reads it from the alarm's dimensions.
fn host_of(labels: &BTreeMap<String, String>) -> Option<String> {
    labels
        .get("host")
        .or_else(|| labels.get("InstanceId"))
        .cloned()
}

/// The labels of a [`series_key`], for a restored state whose series has not reported
/// since the restart. Keys hold no escaping, so a label value containing `,` or `=` reads
/// back split; host names and instance ids never do.
fn labels_of_key(key: &str) -> BTreeMap<String, String> {
    let inner = key
        .split_once('{')
        .and_then(|(_, rest)| rest.strip_suffix('}'))
        .unwrap_or_default();
    inner
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// CloudWatch's timestamp form inside `detail`: `2026-10-02T17:04:40.989+0000`.
fn cloudwatch_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
        .to_string()
}

/// The `vigil.alarms` event for a transition, its `detail` shaped like CloudWatch's so
/// rules and code written for CloudWatch work on both.
fn alarm_event(
    alarm: &CompiledAlarm,
    labels: &BTreeMap<String, String>,
    series: &str,
    transition: &vigil_alarm::Transition,
    now: &str,
) -> Event {
    let definition = &alarm.definition;
    let stat = definition
        .extended_statistic
        .clone()
        .or_else(|| definition.statistic.clone())
        .unwrap_or_default();
    let mut detail = json!({
        "alarmName": alarm.spec.name,
        "state": {
            "value": transition.state.as_str(),
            "reason": transition.reason,
            "reasonData": transition.reason_data.to_string(),
            "timestamp": cloudwatch_time(transition.at_ms),
        },
        "previousState": {"value": transition.previous.as_str()},
        "configuration": {
            "description": definition.alarm_description,
            "threshold": alarm.spec.threshold,
            "metrics": [{
                "id": "m1",
                "metricStat": {
                    "metric": {
                        "namespace": definition.namespace.clone().unwrap_or_else(|| "vigil".into()),
                        "name": definition.metric_name,
                        "dimensions": labels,
                    },
                    "period": alarm.spec.period_secs,
                    "stat": stat,
                },
                "returnData": true,
            }],
        },
        "series": series,
    });
    if let Some(severity) = &definition.severity {
        detail["severity"] = json!(severity);
    }
    if let Some(appcode) = &definition.appcode {
        detail["appcode"] = json!(appcode);
    }
    Event {
        version: "0".into(),
        id: crate::fresh_event_id(),
        detail_type: ALARM_STATE_CHANGE.into(),
        source: "vigil.alarms".into(),
        account: "vigil".into(),
        time: now.to_string(),
        region: "local".into(),
        resources: vec![format!("vigil:alarm/{}/{series}", alarm.spec.name)],
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(name: &str, host: &str, value: f64, timestamp_ms: i64) -> MetricPoint {
        MetricPoint {
            name: name.into(),
            labels: BTreeMap::from([("host".to_string(), host.to_string())]),
            value,
            timestamp_ms,
        }
    }

    #[test]
    fn one_template_watches_every_host_and_new_hosts() {
        let engine = Engine::new(0, 100);
        let mut definition = default_alarms().remove(0);
        definition.period = 1;
        definition.evaluation_periods = 1;
        definition.datapoints_to_alarm = Some(1);
        engine.put_alarm(definition.compile().unwrap());
        let start = 1_700_000_000_000;
        engine.push(&mut vec![point("CPUUtilization", "a", 95.0, start)], start);
        engine.tick(start + 1_000, "t");
        engine.push(
            &mut vec![point("CPUUtilization", "b", 10.0, start + 1_000)],
            start + 1_000,
        );
        let changes = engine.tick(start + 2_000, "t");
        let instances = engine.instances();
        assert_eq!(instances.len(), 2, "one instance per host");
        assert!(changes
            .iter()
            .any(|c| c.series.contains("host=b") && c.state == State::Ok));
        let a = instances
            .iter()
            .find(|i| i.series.contains("host=a"))
            .unwrap();
        assert_eq!(a.state, State::Alarm);
        assert_eq!(a.host.as_deref(), Some("a"));
        assert!(
            a.reason
                .as_deref()
                .is_some_and(|r| r.starts_with("Threshold Crossed: 1 out of the last 1 datapoints")),
            "{a:?}"
        );
        assert_eq!(a.value, Some(95.0));
        assert_eq!(a.since_ms, start + 1_000);
        assert_eq!(
            engine.state_changes(&a.alarm, &a.series),
            [(start + 1_000, "ALARM")]
        );
    }

    #[test]
    fn a_series_gone_for_a_day_closes_its_alarm_instead_of_leaving_it_in_alarm() {
        let start = 1_700_000_000_000;
        let engine = Engine::new(start, 100);
        let mut definition = default_alarms().remove(0);
        definition.period = 1;
        definition.evaluation_periods = 1;
        definition.datapoints_to_alarm = Some(1);
        engine.put_alarm(definition.compile().unwrap());
        engine.push(&mut vec![point("CPUUtilization", "a", 95.0, start)], start);
        engine.push(&mut vec![point("CPUUtilization", "b", 5.0, start)], start);
        let opened = engine.tick(start + 1_000, "t");
        assert!(opened.iter().any(|c| c.state == State::Alarm));
        // A restored ALARM whose series never reports again is closed too, a day after start.
        engine.restore_state(
            "High CPU Utilization",
            "CPUUtilization{host=c}",
            RestoredState {
                state: State::Alarm,
                since_ms: start - 5_000,
                reason: None,
                reason_data: None,
                value: Some(97.0),
            },
        );
        // Without data the judged ones go INSUFFICIENT_DATA (missing data is missing), and
        // stay there while the series lingers.
        let silent = engine.tick(start + IDLE_MS / 2, "t");
        assert!(silent.iter().all(|c| c.state == State::InsufficientData));
        let closed = engine.tick(start + IDLE_MS + 120_000, "t");
        let mut closed_series: Vec<&str> = closed.iter().map(|c| c.series.as_str()).collect();
        closed_series.sort();
        assert_eq!(
            closed_series,
            [
                "CPUUtilization{host=a}",
                "CPUUtilization{host=b}",
                "CPUUtilization{host=c}"
            ]
        );
        for change in &closed {
            assert_eq!(change.state, State::Ok);
            assert!(
                change.reason.starts_with("No data for 24 hours"),
                "{}",
                change.reason
            );
            assert_eq!(change.event.detail["state"]["value"], "OK");
        }
        let restored = closed.iter().find(|c| c.series.contains("host=c")).unwrap();
        assert_eq!(restored.event.detail["previousState"]["value"], "ALARM");
        // Closed once: the next sweep has nothing left.
        assert!(engine.tick(start + IDLE_MS + 300_000, "t").is_empty());
        assert!(engine.instances().is_empty(), "nothing left to judge");
    }

    #[test]
    fn the_series_cap_drops_new_series_and_counts_them() {
        let engine = Engine::new(0, 2);
        let outcome = engine.push(
            &mut vec![
                point("m", "a", 1.0, 1_000),
                point("m", "b", 1.0, 1_000),
                point("m", "c", 1.0, 1_000),
            ],
            1_000,
        );
        assert_eq!((outcome.accepted, outcome.over_cap), (2, 1));
        assert_eq!(engine.series_count(), 2);
    }

    #[test]
    fn points_from_far_past_or_future_are_refused_not_a_panic() {
        let engine = Engine::new(0, 10);
        let now = 1_700_000_000_000;
        let outcome = engine.push(
            &mut vec![
                point("m", "a", 1.0, i64::MIN + 1),
                point("m", "a", 1.0, i64::MAX),
                point("m", "a", 1.0, now - IDLE_MS - 1),
                point("m", "a", 1.0, now),
            ],
            now,
        );
        assert_eq!((outcome.accepted, outcome.rejected), (1, 3));
    }

    #[test]
    fn rollups_summarise_each_minute() {
        let engine = Engine::new(0, 10);
        let base = 1_700_000_040_000 - 1_700_000_040_000 % MINUTE_MS;
        engine.push(
            &mut vec![
                point("m", "a", 1.0, base),
                point("m", "a", 3.0, base + 1_000),
                point("m", "a", 5.0, base + MINUTE_MS),
            ],
            base + MINUTE_MS,
        );
        let view = engine.series("m", &BTreeMap::new(), 10);
        let rollups = &view[0].rollups;
        assert_eq!(rollups.len(), 2);
        assert_eq!(
            (
                rollups[0].min,
                rollups[0].max,
                rollups[0].sum,
                rollups[0].count
            ),
            (1.0, 3.0, 4.0, 2)
        );
        assert_eq!(rollups[1].count, 1);
    }

    /// What `aws cloudwatch put-metric-alarm --generate-cli-skeleton` prints.
    const CLI_SKELETON: &str = r#"{
        "AlarmName": "", "AlarmDescription": "", "ActionsEnabled": true,
        "OKActions": [""], "AlarmActions": [""], "InsufficientDataActions": [""],
        "MetricName": "", "Namespace": "", "Statistic": "SampleCount", "ExtendedStatistic": "",
        "Dimensions": [{"Name": "", "Value": ""}], "Period": 0, "Unit": "Seconds",
        "EvaluationPeriods": 0, "DatapointsToAlarm": 0, "Threshold": 0.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "",
        "EvaluateLowSampleCountPercentile": "",
        "Metrics": [{"Id": "", "MetricStat": {"Metric": {"Namespace": "", "MetricName": "",
            "Dimensions": [{"Name": "", "Value": ""}]}, "Period": 0, "Stat": "", "Unit": "Seconds"},
            "Expression": "", "Label": "", "ReturnData": true, "Period": 0, "AccountId": ""}],
        "Tags": [{"Key": "", "Value": ""}], "ThresholdMetricId": ""
    }"#;

    #[test]
    fn the_cli_skeleton_is_taken_with_its_empty_fields_ignored_and_metric_math_named() {
        let mut skeleton: Value = serde_json::from_str(CLI_SKELETON).unwrap();
        let raw: AlarmDefinition = serde_json::from_value(skeleton.clone()).unwrap();
        assert!(raw.compile().unwrap_err().contains("AlarmName"));
        for (field, value) in [
            ("AlarmName", json!("disk-full")),
            ("MetricName", json!("disk_used_percent")),
            ("Namespace", json!("vigil")),
            ("Period", json!(60)),
            ("EvaluationPeriods", json!(3)),
            ("Threshold", json!(90.0)),
        ] {
            skeleton[field] = value;
        }
        let filled: AlarmDefinition = serde_json::from_value(skeleton.clone()).unwrap();
        let alarm = filled.compile().unwrap();
        assert_eq!(alarm.spec.datapoints_to_alarm, 3, "0 reads as not given");
        assert!(
            filled.selects("disk_used_percent", &BTreeMap::new()),
            "the empty dimension filters nothing"
        );
        skeleton["Metrics"][0]["Id"] = json!("m1");
        skeleton["Metrics"][0]["Expression"] = json!("m1 * 100");
        let math: AlarmDefinition = serde_json::from_value(skeleton.clone()).unwrap();
        let refused = math.compile().unwrap_err();
        assert!(
            refused.contains("Metrics") && refused.contains("metric math"),
            "{refused}"
        );
        skeleton["Metrics"] = json!([]);
        skeleton["ThresholdMetricId"] = json!("m1");
        let anomaly: AlarmDefinition = serde_json::from_value(skeleton).unwrap();
        assert!(anomaly.compile().unwrap_err().contains("ThresholdMetricId"));
    }

    #[test]
    fn put_metric_alarm_json_with_aws_only_fields_is_accepted() {
        let definition: AlarmDefinition = serde_json::from_value(serde_json::json!({
            "AlarmName": "cpu", "MetricName": "CPUUtilization", "Namespace": "AWS/EC2",
            "Dimensions": [{"Name": "InstanceId", "Value": "i-1"}], "Statistic": "Average",
            "Period": 300, "EvaluationPeriods": 2, "Threshold": 80.0,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "AlarmActions": ["arn:aws:sns:us-east-1:1:x"], "OKActions": [], "Unit": "Percent",
            "Tags": [{"Key": "team", "Value": "ops"}], "ActionsEnabled": true
        }))
        .unwrap();
        let alarm = definition.compile().unwrap();
        assert_eq!(alarm.spec.datapoints_to_alarm, 2);
        let unknown = serde_json::from_value::<AlarmDefinition>(serde_json::json!({
            "AlarmName": "x", "MetricName": "m", "Period": 1, "EvaluationPeriods": 1,
            "Threshold": 1.0, "ComparisonOperator": "GreaterThanThreshold", "Bogus": 1
        }));
        assert!(unknown.unwrap_err().to_string().contains("Bogus"));
        let mut bad = definition.clone();
        bad.statistic = None;
        assert!(bad.compile().unwrap_err().contains("Statistic"));
    }
}
