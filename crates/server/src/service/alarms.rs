//! vigil's own alarms: definitions with their instances' states (as CloudWatch's
//! DescribeAlarms answers), and the series behind them for charts.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, PartialSchema, ToSchema};
use vigil_core::AlarmState;

use super::{given, ServiceError};
use crate::access::{Denied, Principal};
use crate::alarm_engine::{AlarmDefinition, InstanceView, SeriesView};
use crate::AppState;

/// Most series one series query returns.
pub const MAX_SERIES: usize = 100;

/// `?state=ALARM&appcode=CODE`: DescribeAlarms' `StateValue` and vigil's Appcode.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlarmQuery {
    pub state: Option<AlarmState>,
    pub appcode: Option<String>,
}

/// A definition with its instances.
#[derive(Debug, Serialize)]
pub struct AlarmWithInstances {
    #[serde(flatten)]
    pub definition: AlarmDefinition,
    pub instances: Vec<InstanceView>,
}

/// The definition's own schema refuses unknown fields, as PutMetricAlarm does; this answer
/// is that object with `instances` beside its fields.
impl utoipa::PartialSchema for AlarmWithInstances {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, Schema};
        use utoipa::openapi::{Ref, RefOr};
        let mut object = match AlarmDefinition::schema() {
            RefOr::T(Schema::Object(object)) => object,
            other => return other,
        };
        object.additional_properties = None;
        object.properties.insert(
            "instances".into(),
            ArrayBuilder::new()
                .items(Ref::from_schema_name(InstanceView::name()))
                .into(),
        );
        object.required.push("instances".into());
        RefOr::T(Schema::Object(object))
    }
}

impl ToSchema for AlarmWithInstances {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((InstanceView::name().into(), InstanceView::schema()));
        InstanceView::schemas(schemas);
    }
}

fn no_alarm(name: &str) -> impl FnOnce() -> String + '_ {
    move || format!("alarm named `{name}`")
}

/// The definitions `who` may see: by the alarm's Appcode.
pub fn definitions(state: &AppState, who: &Principal) -> Vec<AlarmDefinition> {
    state
        .engine
        .definitions()
        .into_iter()
        .filter(|d| who.sees(&state.ownership, d.appcode.as_deref()))
        .collect()
}

/// A definition `who` may see, or 404.
pub fn definition(
    state: &AppState,
    who: &Principal,
    name: &str,
) -> Result<AlarmDefinition, ServiceError> {
    let definition = state
        .engine
        .definition(name)
        .ok_or_else(|| Denied::Hidden(no_alarm(name)()))?;
    who.check(
        &state.ownership,
        definition.appcode.as_deref(),
        no_alarm(name),
    )?;
    Ok(definition)
}

/// Every instance of `definitions`, each with its Appcode (the alarm's, else its host's
/// binding), as the engine judges it now.
pub fn instances(state: &AppState, definitions: &[AlarmDefinition]) -> Vec<InstanceView> {
    let appcodes: HashMap<&str, Option<&str>> = definitions
        .iter()
        .map(|d| (d.alarm_name.as_str(), d.appcode.as_deref()))
        .collect();
    let mut instances = state.engine.instances();
    instances.retain_mut(|i| {
        let Some(appcode) = appcodes.get(i.alarm.as_str()) else {
            return false;
        };
        i.appcode = appcode.map(str::to_string).or_else(|| {
            i.host
                .as_deref()
                .and_then(|host| state.ownership.appcode_for_host(host, &i.dimensions))
        });
        true
    });
    instances
}

/// Like DescribeAlarms: each definition `who` may see with its instances' state, value,
/// reason and time of the last change. A filter keeps the matching instances; a definition
/// none of whose instances match is left out, unless only `appcode` is asked and it is the
/// definition's own.
pub fn list(state: &AppState, who: &Principal, query: &AlarmQuery) -> Vec<AlarmWithInstances> {
    let wanted_appcode = given(query.appcode.as_deref());
    let definitions = definitions(state, who);
    let mut by_alarm: HashMap<String, Vec<InstanceView>> = HashMap::new();
    for instance in instances(state, &definitions) {
        if query.state.is_some_and(|s| s != instance.state)
            || wanted_appcode.is_some_and(|c| instance.appcode.as_deref() != Some(c))
        {
            continue;
        }
        by_alarm
            .entry(instance.alarm.clone())
            .or_default()
            .push(instance);
    }
    definitions
        .into_iter()
        .filter_map(|definition| {
            let instances = by_alarm.remove(&definition.alarm_name).unwrap_or_default();
            let listed = !instances.is_empty()
                || query.state.is_none()
                    && wanted_appcode.is_none_or(|c| definition.appcode.as_deref() == Some(c));
            listed.then_some(AlarmWithInstances {
                definition,
                instances,
            })
        })
        .collect()
}

/// One definition `who` may see with its instances.
pub fn detail(
    state: &AppState,
    who: &Principal,
    name: &str,
) -> Result<AlarmWithInstances, ServiceError> {
    let definition = definition(state, who, name)?;
    let instances = instances(state, std::slice::from_ref(&definition));
    Ok(AlarmWithInstances {
        definition,
        instances,
    })
}

/// Points of the series named `name` whose labels include `labels`, among those `who` may
/// see: a series belongs to its `appcode` label, else to its `host`'s application.
/// Where a series list's chart history came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HistorySource {
    /// vigil's own one-minute history of the last 24 hours.
    Local,
    /// The query API of `[metrics.forward] query_url`.
    QueryApi,
}

/// Series for charts: raw points of the alarm windows and one-minute history.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesList {
    pub series: Vec<SeriesView>,
    /// Where `rollups` came from.
    pub history_source: HistorySource,
    /// Why the configured query API gave no history, when it failed (the rollups are then
    /// vigil's own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_error: Option<String>,
}

pub async fn series(
    state: &AppState,
    who: &Principal,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> Result<SeriesList, ServiceError> {
    if name.is_empty() {
        return Err(ServiceError::Invalid(
            "query parameter `name` (the metric name) is required".into(),
        ));
    }
    let mut series = state.engine.series(name, labels, MAX_SERIES);
    let mut history_source = HistorySource::Local;
    let mut history_error = None;
    if let Some(query_api) = &state.query_api {
        match query_api
            .history(name, labels, crate::now_ms(), MAX_SERIES)
            .await
        {
            Ok(remote) => {
                history_source = HistorySource::QueryApi;
                series = with_remote_history(name, series, remote);
            }
            Err(e) => {
                tracing::warn!(metric = name, error = %e, "chart history from the query API failed; showing vigil's own");
                history_error = Some(e.to_string());
            }
        }
    }
    if who.scope.is_some() {
        series.retain(|s| {
            let appcode = s.labels.get("appcode").cloned().or_else(|| {
                s.labels
                    .get("host")
                    .and_then(|host| state.ownership.appcode_for_host(host, &s.labels))
            });
            who.sees(&state.ownership, appcode.as_deref())
        });
    }
    Ok(SeriesList {
        series,
        history_source,
        history_error,
    })
}

/// The query API's history in place of vigil's: every series it knows (vigil may have let
/// an idle one go), with vigil's raw points where vigil holds the series too.
fn with_remote_history(
    name: &str,
    local: Vec<SeriesView>,
    remote: crate::forward::RemoteHistory,
) -> Vec<SeriesView> {
    let mut by_labels: BTreeMap<BTreeMap<String, String>, SeriesView> = local
        .into_iter()
        .map(|mut s| {
            s.rollups.clear();
            (s.labels.clone(), s)
        })
        .collect();
    for (labels, rollups) in remote {
        by_labels
            .entry(labels.clone())
            .or_insert_with(|| SeriesView {
                name: name.to_string(),
                labels,
                points: Vec::new(),
                rollups: Vec::new(),
            })
            .rollups = rollups;
    }
    by_labels.into_values().take(MAX_SERIES).collect()
}
