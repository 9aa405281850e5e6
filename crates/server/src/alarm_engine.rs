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
use vigil_history::Block;
pub use vigil_history::Rollup;

use crate::series_table::SeriesTable;
pub use crate::series_table::{
    labels_of_key, series_key, CapReached, MetricSource, SeriesCaps, SeriesId, SeriesTop,
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

struct InstanceEntry {
    instance: AlarmInstance,
    /// The datapoint that decided the last change.
    last_value: Option<f64>,
    /// CloudWatch's `StateReason` and `StateReasonData` (as JSON text) of the last change;
    /// text, not a parsed tree, because 400,000 of them live in memory.
    reason: Option<Box<str>>,
    reason_data: Option<Box<str>>,
    /// Recent transitions (Unix ms, new state), oldest first, so charts can mark them.
    changes: Vec<(i64, State)>,
}

impl InstanceEntry {
    fn fresh(now_ms: i64) -> InstanceEntry {
        InstanceEntry {
            instance: AlarmInstance::new(now_ms),
            last_value: None,
            reason: None,
            reason_data: None,
            changes: Vec::new(),
        }
    }

    fn restored(restored: RestoredState, started_ms: i64) -> InstanceEntry {
        InstanceEntry {
            instance: AlarmInstance::restored(restored.state, restored.since_ms, started_ms),
            last_value: restored.value,
            reason: restored.reason.map(String::into_boxed_str),
            reason_data: restored.reason_data.map(|d| d.to_string().into_boxed_str()),
            changes: Vec::new(),
        }
    }

    fn reason_data(&self) -> Option<Value> {
        self.reason_data
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
    }
}

/// Transitions kept per instance for charts.
const CHANGES_KEPT: usize = 64;

/// What a push did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    pub accepted: usize,
    pub rejected: usize,
    /// Points of new series refused because a series cap was reached.
    pub over_cap: usize,
    /// The first cap that refused a series, for the answer to the sender.
    pub cap: Option<CapReached>,
    /// Refused points per cap (`total`, a source's name, `appcode`), for `/metrics`.
    pub over_cap_by: BTreeMap<&'static str, usize>,
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
    /// Raw points of the window the alarms judging this series look at: (Unix ms, value).
    /// Empty for a series no alarm judges; its chart is the rollups.
    pub points: Vec<(i64, f64)>,
    /// One-minute summaries of the last 24 hours.
    pub rollups: Vec<Rollup>,
}

/// Most instance state changes one tick makes (see [`Engine::tick`]).
pub const MAX_CHANGES_PER_TICK: usize = 10_000;

/// What one tick changed.
pub struct TickOutcome {
    pub changes: Vec<AlarmChange>,
    /// The tick stopped at its limit of changes: instances are left to judge.
    pub more: bool,
}

/// Series idle this long are dropped; charts show this far back.
const IDLE_MS: i64 = 24 * 3600 * 1000;

pub struct Engine {
    inner: Mutex<Inner>,
    started_ms: i64,
    caps: SeriesCaps,
}

/// An alarm and the instances it judges, one per series it selects.
struct AlarmSlot {
    compiled: CompiledAlarm,
    instances: HashMap<SeriesId, InstanceEntry>,
}

struct Inner {
    series: SeriesTable,
    alarms: BTreeMap<String, AlarmSlot>,
    /// The raw window every judged series keeps: the longest any alarm needs.
    retention_secs: u32,
    /// The latest time the engine was told (a push or a tick), for instances an alarm
    /// put between ticks creates.
    now_ms: i64,
    /// When idle series were last looked for.
    swept_ms: i64,
    /// States loaded at start, waiting for their series to report again.
    restored: HashMap<(String, String), RestoredState>,
}

impl Engine {
    pub fn new(started_ms: i64, caps: SeriesCaps) -> Engine {
        Engine {
            inner: Mutex::new(Inner {
                series: SeriesTable::default(),
                alarms: BTreeMap::new(),
                retention_secs: 0,
                now_ms: started_ms,
                swept_ms: 0,
                restored: HashMap::new(),
            }),
            started_ms,
            caps,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn caps(&self) -> &SeriesCaps {
        &self.caps
    }

    /// Adds or replaces an alarm; a changed definition judges afresh.
    pub fn put_alarm(&self, alarm: CompiledAlarm) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let name = alarm.spec.name.clone();
        let previous = inner.alarms.remove(&name);
        let mut slot = AlarmSlot {
            compiled: alarm,
            instances: HashMap::new(),
        };
        inner.retention_secs = required_retention(&inner.alarms, &slot.compiled);
        let candidates: Vec<SeriesId> = inner
            .series
            .named(&slot.compiled.definition.metric_name)
            .to_vec();
        for id in candidates {
            let Some(entry) = inner.series.get(id) else {
                continue;
            };
            if entry.source.is_none()
                || !slot
                    .compiled
                    .definition
                    .selects(&entry.name(), &entry.labels())
            {
                continue;
            }
            let key = entry.key.to_string();
            let instance = match inner.restored.remove(&(name.clone(), key)) {
                Some(restored) => InstanceEntry::restored(restored, self.started_ms),
                None => InstanceEntry::fresh(inner.now_ms),
            };
            slot.instances.insert(id, instance);
        }
        inner.alarms.insert(name, slot);
        if let Some(previous) = previous {
            inner.release_unjudged(previous.instances.keys().copied());
        }
        inner.fit_retention();
    }

    pub fn delete_alarm(&self, name: &str) -> bool {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(slot) = inner.alarms.remove(name) else {
            return false;
        };
        inner.retention_secs = inner
            .alarms
            .values()
            .map(|s| s.compiled.spec.required_retention_secs())
            .max()
            .unwrap_or(0);
        inner.release_unjudged(slot.instances.keys().copied());
        inner.fit_retention();
        true
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
            .map(|a| a.compiled.definition.clone())
            .collect()
    }

    pub fn definition(&self, name: &str) -> Option<AlarmDefinition> {
        self.lock()
            .alarms
            .get(name)
            .map(|a| a.compiled.definition.clone())
    }

    pub fn series_count(&self) -> usize {
        self.lock().series.len()
    }

    /// Alarm instances judged now.
    pub fn instance_count(&self) -> usize {
        self.lock().alarms.values().map(|s| s.instances.len()).sum()
    }

    /// Takes `points` from `source` into their series; `points` is left holding exactly the
    /// points accepted, in order (what forwarding passes on). `appcode_of` names the
    /// Appcode of a new series (for its cap); it is asked once per new series.
    pub fn push(
        &self,
        points: &mut Vec<MetricPoint>,
        now_ms: i64,
        source: MetricSource,
        appcode_of: &mut dyn FnMut(&BTreeMap<String, String>) -> Option<String>,
    ) -> PushOutcome {
        let mut outcome = PushOutcome::default();
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.now_ms = inner.now_ms.max(now_ms);
        points.retain(|point| {
            // A point from the future would push real ones out of the window; one older
            // than the charts keep has nowhere to go.
            if point.timestamp_ms > now_ms + 60_000
                || point.timestamp_ms < now_ms - IDLE_MS
                || !point.value.is_finite()
            {
                outcome.rejected += 1;
                return false;
            }
            let (id, new) = match inner
                .series
                .find_or_insert(point, source, &self.caps, now_ms, appcode_of)
            {
                Ok(found) => found,
                Err(cap) => {
                    outcome.over_cap += 1;
                    *outcome.over_cap_by.entry(cap.label()).or_insert(0) += 1;
                    outcome.cap.get_or_insert(cap);
                    return false;
                }
            };
            // A series loaded from the store at start is judged from its first report on.
            let loaded = !new && inner.series.get(id).is_some_and(|e| e.source.is_none());
            if loaded {
                inner
                    .series
                    .mark_reported(id, point, source, &mut *appcode_of);
            }
            if new || loaded {
                inner.attach(id, point, self.started_ms);
            }
            let Some(entry) = inner.series.get_mut(id) else {
                return false;
            };
            if let Some(raw) = entry.raw.as_mut() {
                // A point older than the alarms look back is still good for the charts.
                if let Err(vigil_alarm::SampleError::NotFinite { .. }) =
                    raw.push(point.timestamp_ms, point.value)
                {
                    outcome.rejected += 1;
                    return false;
                }
            }
            entry.history.add(point.timestamp_ms, point.value);
            entry.last_seen_ms = now_ms;
            outcome.accepted += 1;
            true
        });
        outcome
    }

    /// The state changes of a tick without a limit that matters, for tests.
    #[cfg(test)]
    fn tick(&self, now_ms: i64, now: &str) -> Vec<AlarmChange> {
        self.tick_bounded(now_ms, now, usize::MAX).changes
    }

    /// Judges every instance at `now_ms`; returns the state changes.
    ///
    /// At most `max_changes` instances change per tick (the server uses
    /// [`MAX_CHANGES_PER_TICK`]): when more would (a new alarm over 400,000 series, all
    /// leaving INSUFFICIENT_DATA at once), the rest are judged by the following ticks, so
    /// the events a tick writes stay bounded in memory and in one store transaction.
    /// [`TickOutcome::more`] says to tick again at once.
    pub fn tick_bounded(&self, now_ms: i64, now: &str, max_changes: usize) -> TickOutcome {
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.now_ms = inner.now_ms.max(now_ms);
        let mut changes = Vec::new();
        if now_ms - inner.swept_ms >= 60_000 {
            inner.swept_ms = now_ms;
            for gone in inner.drop_idle(now_ms, self.started_ms) {
                if let Some(change) = inner.close(gone, now_ms, now) {
                    changes.push(change);
                }
            }
        }
        let Inner { series, alarms, .. } = inner;
        for slot in alarms.values_mut() {
            let alarm = &slot.compiled;
            for (id, instance) in slot.instances.iter_mut() {
                if changes.len() >= max_changes {
                    return TickOutcome {
                        changes,
                        more: true,
                    };
                }
                let Some(entry) = series.get(*id) else {
                    continue;
                };
                let Some(raw) = entry.raw.as_ref() else {
                    continue;
                };
                let Some(transition) = instance.instance.evaluate(&alarm.spec, raw, now_ms) else {
                    continue;
                };
                instance.last_value = transition.evaluated.iter().find_map(|d| d.value);
                instance.reason = Some(transition.reason.as_str().into());
                instance.reason_data = Some(transition.reason_data.to_string().into());
                if instance.changes.len() == CHANGES_KEPT {
                    instance.changes.remove(0);
                }
                instance.changes.push((transition.at_ms, transition.state));
                let labels = entry.labels();
                let event = alarm_event(alarm, &labels, &entry.key, &transition, now);
                changes.push(AlarmChange {
                    alarm: alarm.spec.name.clone(),
                    series: entry.key.to_string(),
                    state: transition.state,
                    since_ms: transition.at_ms,
                    reason: transition.reason,
                    reason_data: transition.reason_data,
                    value: instance.last_value,
                    event,
                });
            }
        }
        TickOutcome {
            changes,
            more: false,
        }
    }

    /// Every instance's current state: those judged since the start, and those restored
    /// at start whose series has not reported since (their state is still the one saved).
    pub fn instances(&self) -> Vec<InstanceView> {
        let inner = self.lock();
        let judged = inner.alarms.iter().flat_map(|(alarm, slot)| {
            let series = &inner.series;
            slot.instances.iter().filter_map(move |(id, entry)| {
                let data = series.get(*id)?;
                let labels = data.labels();
                Some(InstanceView {
                    alarm: alarm.clone(),
                    series: data.key.to_string(),
                    metric: data.name().into_owned(),
                    host: host_of(&labels),
                    dimensions: labels,
                    appcode: None,
                    state: entry.instance.state,
                    since: chrono::DateTime::from_timestamp_millis(entry.instance.state_since_ms),
                    since_ms: entry.instance.state_since_ms,
                    value: entry.last_value.or_else(|| {
                        data.raw
                            .as_ref()
                            .and_then(|raw| raw.iter().last().map(|(_, v)| v))
                    }),
                    threshold: slot.compiled.spec.threshold,
                    comparison: slot.compiled.spec.comparison.as_str(),
                    reason: entry.reason.as_deref().map(str::to_string),
                    reason_data: entry.reason_data(),
                    restored: false,
                })
            })
        });
        let waiting = inner
            .restored
            .iter()
            .filter_map(|((alarm, series), restored)| {
                let slot = inner.alarms.get(alarm)?;
                let labels = labels_of_key(series);
                Some(InstanceView {
                    alarm: alarm.clone(),
                    series: series.clone(),
                    metric: slot.compiled.definition.metric_name.clone(),
                    host: host_of(&labels),
                    dimensions: labels,
                    appcode: None,
                    state: restored.state,
                    since: chrono::DateTime::from_timestamp_millis(restored.since_ms),
                    since_ms: restored.since_ms,
                    value: restored.value,
                    threshold: slot.compiled.spec.threshold,
                    comparison: slot.compiled.spec.comparison.as_str(),
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
        let inner = self.lock();
        inner
            .series
            .id_of(series)
            .and_then(|id| inner.alarms.get(alarm)?.instances.get(&id))
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
        let since_ms = inner.now_ms - IDLE_MS;
        inner
            .series
            .named(name)
            .iter()
            .filter_map(|id| inner.series.get(*id))
            .map(|e| (e, e.labels()))
            .filter(|(_, labels)| filter.iter().all(|(k, v)| labels.get(k) == Some(v)))
            .take(limit)
            .map(|(e, labels)| SeriesView {
                name: name.to_string(),
                labels,
                points: e
                    .raw
                    .as_ref()
                    .map(|raw| raw.iter().collect())
                    .unwrap_or_default(),
                rollups: e.history.rollups(since_ms),
            })
            .collect()
    }

    /// The series-heaviest metric names, Appcodes and sources.
    pub fn top(&self, limit: usize) -> SeriesTop {
        self.lock().series.top(limit, &self.caps)
    }

    /// Chart history changed since the last call, per series key: what the store keeps so
    /// a restart keeps the charts.
    pub fn take_history_blocks(&self) -> Vec<(String, Block)> {
        let mut inner = self.lock();
        let mut blocks = Vec::new();
        inner.series.for_each_mut(|entry| {
            for block in entry.history.take_dirty_blocks() {
                blocks.push((entry.key.to_string(), block));
            }
        });
        blocks
    }

    /// Chart history read back from the store at start. A series not known yet is held
    /// for its charts, counted against `max_series`, and judged once it reports again.
    pub fn load_history(&self, key: &str, block: &Block) -> Result<(), HistoryLoadError> {
        let mut inner = self.lock();
        let now_ms = inner.now_ms;
        let id = match inner.series.id_of(key) {
            Some(id) => id,
            None => inner
                .series
                .insert_loaded(key, &self.caps, now_ms)
                .map_err(HistoryLoadError::Cap)?,
        };
        let Some(entry) = inner.series.get_mut(id) else {
            return Ok(());
        };
        entry
            .history
            .load(block)
            .map_err(HistoryLoadError::Decode)?;
        if let Some(newest) = entry.history.newest_minute_ms() {
            entry.last_seen_ms = entry.last_seen_ms.max(newest);
        }
        Ok(())
    }
}

/// Why a stored history block was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum HistoryLoadError {
    #[error("{0}")]
    Cap(CapReached),
    #[error("the block is corrupt: {0}")]
    Decode(vigil_history::DecodeError),
}

/// The raw window the alarms need, `alarm` included.
fn required_retention(alarms: &BTreeMap<String, AlarmSlot>, alarm: &CompiledAlarm) -> u32 {
    alarms
        .values()
        .map(|s| s.compiled.spec.required_retention_secs())
        .chain([alarm.spec.required_retention_secs()])
        .max()
        .unwrap_or(0)
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
    /// Creates the instances of every alarm that selects the series `id`, which reported
    /// for the first time (since it was created or loaded), and gives it raw points if
    /// any alarm judges it.
    fn attach(&mut self, id: SeriesId, point: &MetricPoint, started_ms: i64) {
        let mut judged = false;
        let mut key: Option<String> = None;
        for (name, slot) in self.alarms.iter_mut() {
            if !slot.compiled.definition.selects(&point.name, &point.labels) {
                continue;
            }
            judged = true;
            let key = key.get_or_insert_with(|| series_key(&point.name, &point.labels));
            let instance = match self.restored.remove(&(name.clone(), key.clone())) {
                Some(restored) => InstanceEntry::restored(restored, started_ms),
                None => InstanceEntry::fresh(self.now_ms),
            };
            slot.instances.insert(id, instance);
        }
        if judged {
            if let Some(entry) = self.series.get_mut(id) {
                entry
                    .raw
                    .get_or_insert_with(|| Series::new(self.retention_secs));
            }
        }
    }

    /// Drops the raw points of those of `ids` no alarm judges any more.
    fn release_unjudged(&mut self, ids: impl Iterator<Item = SeriesId>) {
        for id in ids {
            if self.alarms.values().any(|s| s.instances.contains_key(&id)) {
                continue;
            }
            if let Some(entry) = self.series.get_mut(id) {
                entry.raw = None;
            }
        }
    }

    /// Gives every judged series the raw window the alarms need now, and raw points to
    /// a series an alarm began judging.
    fn fit_retention(&mut self) {
        let retention = self.retention_secs;
        let judged: Vec<SeriesId> = self
            .alarms
            .values()
            .flat_map(|s| s.instances.keys().copied())
            .collect();
        for id in judged {
            if let Some(entry) = self.series.get_mut(id) {
                match entry.raw.as_mut() {
                    Some(raw) if raw.retention_secs() != retention => {
                        raw.set_retention_secs(retention)
                    }
                    Some(_) => {}
                    None => entry.raw = Some(Series::new(retention)),
                }
            }
        }
    }

    /// Forgets series silent for a day, with their alarm instances, and states restored at
    /// start whose series has not reported in a day since. Old chart history goes too.
    /// Returns the instances forgotten.
    fn drop_idle(&mut self, now_ms: i64, started_ms: i64) -> Vec<Gone> {
        let mut gone = Vec::new();
        let mut idle = Vec::new();
        self.series.for_each_mut_with_id(|id, entry| {
            if now_ms - entry.last_seen_ms > IDLE_MS {
                idle.push(id);
            } else {
                entry.history.prune(now_ms - IDLE_MS);
            }
        });
        if !idle.is_empty() {
            let removed = self.series.remove(&idle);
            for (id, entry) in &removed {
                for (alarm, slot) in self.alarms.iter_mut() {
                    if let Some(instance) = slot.instances.remove(id) {
                        gone.push(Gone {
                            alarm: alarm.clone(),
                            series: entry.key.to_string(),
                            labels: entry.labels(),
                            state: instance.instance.state,
                            value: instance.last_value,
                        });
                    }
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
        let alarm = &self.alarms.get(&gone.alarm)?.compiled;
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

    const MINUTE_MS: i64 = vigil_history::MINUTE_MS;

    fn engine(started_ms: i64, max_series: usize) -> Engine {
        Engine::new(
            started_ms,
            SeriesCaps {
                total: max_series,
                ..Default::default()
            },
        )
    }

    fn push(engine: &Engine, mut points: Vec<MetricPoint>, now_ms: i64) -> PushOutcome {
        engine.push(&mut points, now_ms, MetricSource::Graphite, &mut |_| None)
    }

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
        let engine = engine(0, 100);
        let mut definition = default_alarms().remove(0);
        definition.period = 1;
        definition.evaluation_periods = 1;
        definition.datapoints_to_alarm = Some(1);
        engine.put_alarm(definition.compile().unwrap());
        let start = 1_700_000_000_000;
        push(
            &engine,
            vec![point("CPUUtilization", "a", 95.0, start)],
            start,
        );
        engine.tick(start + 1_000, "t");
        push(
            &engine,
            vec![point("CPUUtilization", "b", 10.0, start + 1_000)],
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
    fn a_tick_changes_a_bounded_number_of_instances_and_the_next_ticks_judge_the_rest() {
        let start = 1_700_000_000_000;
        let engine = engine(start, 1_000);
        let mut definition = default_alarms().remove(0);
        definition.period = 1;
        definition.evaluation_periods = 1;
        definition.datapoints_to_alarm = Some(1);
        engine.put_alarm(definition.compile().unwrap());
        let points = (0..250)
            .map(|h| point("CPUUtilization", &format!("h{h}"), 95.0, start))
            .collect();
        push(&engine, points, start);
        let mut seen = std::collections::BTreeSet::new();
        let mut ticks = 0;
        loop {
            let outcome = engine.tick_bounded(start + 1_000 + ticks, "t", 100);
            ticks += 1;
            assert!(outcome.changes.len() <= 100);
            for change in outcome.changes {
                assert_eq!(change.state, State::Alarm);
                assert!(seen.insert(change.series), "each instance changes once");
            }
            if !outcome.more {
                break;
            }
        }
        assert_eq!(seen.len(), 250, "every instance judged");
        assert_eq!(ticks, 3);
    }

    #[test]
    fn a_series_gone_for_a_day_closes_its_alarm_instead_of_leaving_it_in_alarm() {
        let start = 1_700_000_000_000;
        let engine = engine(start, 100);
        let mut definition = default_alarms().remove(0);
        definition.period = 1;
        definition.evaluation_periods = 1;
        definition.datapoints_to_alarm = Some(1);
        engine.put_alarm(definition.compile().unwrap());
        push(
            &engine,
            vec![point("CPUUtilization", "a", 95.0, start)],
            start,
        );
        push(
            &engine,
            vec![point("CPUUtilization", "b", 5.0, start)],
            start,
        );
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
        let engine = engine(0, 2);
        let outcome = push(
            &engine,
            vec![
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
        let engine = engine(0, 10);
        let now = 1_700_000_000_000;
        let outcome = push(
            &engine,
            vec![
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
        let engine = engine(0, 10);
        let base = 1_700_000_040_000 - 1_700_000_040_000 % MINUTE_MS;
        push(
            &engine,
            vec![
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

    fn cpu_alarm() -> CompiledAlarm {
        let mut definition = default_alarms().remove(0);
        definition.period = 60;
        definition.evaluation_periods = 3;
        definition.datapoints_to_alarm = Some(3);
        definition.compile().unwrap()
    }

    #[test]
    fn only_series_an_alarm_judges_keep_raw_points_and_only_its_window() {
        let now = 1_700_000_000_000;
        let engine = engine(now, 100);
        engine.put_alarm(cpu_alarm());
        let points = (0..120)
            .flat_map(|i| {
                let at = now - 3_600_000 + i * 30_000;
                [
                    point("CPUUtilization", "a", 50.0, at),
                    point("load1", "a", 1.0, at),
                ]
            })
            .collect();
        push(&engine, points, now);
        let judged = engine.series("CPUUtilization", &BTreeMap::new(), 10);
        let window_ms = i64::from(cpu_alarm().spec.required_retention_secs()) * 1000;
        let oldest = judged[0].points.first().unwrap().0;
        let newest = judged[0].points.last().unwrap().0;
        assert!(
            newest - oldest <= window_ms,
            "raw points beyond the alarm's window"
        );
        assert!(judged[0].points.len() < 120);
        let unjudged = engine.series("load1", &BTreeMap::new(), 10);
        assert!(unjudged[0].points.is_empty(), "no alarm judges load1");
        assert_eq!(unjudged[0].rollups.len(), 60, "charts keep every minute");

        // An alarm on load1 gives it a raw window; deleting the CPU alarm takes CPU's away.
        let mut load = default_alarms().remove(0);
        load.alarm_name = "load".into();
        load.metric_name = "load1".into();
        engine.put_alarm(load.compile().unwrap());
        engine.delete_alarm("High CPU Utilization");
        push(
            &engine,
            vec![point("load1", "a", 2.0, now + 1_000)],
            now + 1_000,
        );
        push(
            &engine,
            vec![point("CPUUtilization", "a", 2.0, now + 1_000)],
            now + 1_000,
        );
        assert_eq!(
            engine.series("load1", &BTreeMap::new(), 10)[0].points.len(),
            1
        );
        assert!(engine.series("CPUUtilization", &BTreeMap::new(), 10)[0]
            .points
            .is_empty());
        assert_eq!(engine.instance_count(), 1);
    }

    #[test]
    fn chart_history_saved_from_one_engine_reads_back_into_the_next() {
        let now = 1_700_000_000_000 - 1_700_000_000_000 % MINUTE_MS;
        let before = engine(now, 100);
        before.put_alarm(cpu_alarm());
        let points = (0..180)
            .map(|i| {
                point(
                    "CPUUtilization",
                    "a",
                    90.0 + (i % 7) as f64 / 10.0,
                    now - 180 * MINUTE_MS + i * MINUTE_MS,
                )
            })
            .collect();
        push(&before, points, now);
        let expected = before.series("CPUUtilization", &BTreeMap::new(), 10)[0]
            .rollups
            .clone();
        assert_eq!(expected.len(), 180);
        let blocks = before.take_history_blocks();
        assert!(!blocks.is_empty());
        assert!(
            before.take_history_blocks().is_empty(),
            "nothing changed since the last save"
        );

        let after = engine(now + 60_000, 100);
        after.put_alarm(cpu_alarm());
        after.restore_state(
            "High CPU Utilization",
            "CPUUtilization{host=a}",
            RestoredState {
                state: State::Alarm,
                since_ms: now - 60_000,
                reason: None,
                reason_data: None,
                value: Some(90.5),
            },
        );
        for (key, block) in &blocks {
            after.load_history(key, block).unwrap();
        }
        let view = after.series("CPUUtilization", &BTreeMap::new(), 10);
        assert_eq!(view[0].rollups, expected, "the charts survive the restart");
        assert_eq!(view[0].labels.get("host").map(String::as_str), Some("a"));
        assert!(
            view[0].points.is_empty(),
            "raw points are not kept across restarts"
        );
        assert_eq!(after.instance_count(), 0, "not judged before it reports");
        assert!(engine_instances_restored(&after));

        // It reports: judged from now on, from the state saved before the restart.
        push(
            &after,
            vec![point("CPUUtilization", "a", 91.0, now + 60_000)],
            now + 60_000,
        );
        let instances = after.instances();
        assert_eq!(instances.len(), 1);
        assert_eq!(
            (instances[0].state, instances[0].restored),
            (State::Alarm, false)
        );
        assert_eq!(
            after.series("CPUUtilization", &BTreeMap::new(), 10)[0]
                .rollups
                .len(),
            181
        );
        // A garbled block is refused, not a panic.
        let (key, block) = &blocks[0];
        let mut garbled = block.clone();
        garbled.data.truncate(garbled.data.len() / 2);
        assert!(after.load_history(key, &garbled).is_err());
    }

    fn engine_instances_restored(engine: &Engine) -> bool {
        engine.instances().iter().all(|i| i.restored) && !engine.instances().is_empty()
    }

    #[test]
    fn a_capped_appcode_loses_new_series_while_others_and_known_series_go_on() {
        let engine = Engine::new(
            0,
            SeriesCaps {
                per_appcode: 2,
                ..Default::default()
            },
        );
        let appcode_of = |labels: &BTreeMap<String, String>| {
            labels
                .get("host")
                .map(|h| h.split('-').next().unwrap_or("").to_string())
        };
        let mut points = vec![
            point("m", "pay-1", 1.0, 1_000),
            point("m", "pay-2", 1.0, 1_000),
            point("m", "pay-3", 1.0, 1_000),
            point("m", "web-1", 1.0, 1_000),
            point("m", "pay-1", 2.0, 2_000),
        ];
        let outcome = engine.push(&mut points, 2_000, MetricSource::RemoteWrite, &mut |l| {
            appcode_of(l)
        });
        assert_eq!((outcome.accepted, outcome.over_cap), (4, 1));
        assert_eq!(points.len(), 4, "left holding exactly what was accepted");
        assert!(points.iter().all(|p| p.labels["host"] != "pay-3"));
        assert_eq!(
            outcome.cap,
            Some(CapReached::Appcode {
                appcode: "pay".into(),
                cap: 2
            })
        );
        assert_eq!(outcome.over_cap_by.get("appcode"), Some(&1));
        let top = engine.top(10);
        assert_eq!(top.appcodes[0].appcode, "pay");
        assert_eq!(top.appcodes[0].series, 2);
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
