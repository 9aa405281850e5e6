//! The metric series the server holds, and the caps that protect it.
//!
//! A million series must fit one server, so each costs little: one slot in a slab (its
//! id is a `u32` used everywhere instead of its key), one shared copy of its canonical key
//! (name and labels are read back from it when a chart or an event needs them), raw points
//! only when an alarm judges it ([`SeriesEntry::raw`]), and a compressed one-minute history
//! for charts ([`History`]). Caps per source and per Appcode keep one noisy sender from
//! taking the room of everyone else.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use vigil_alarm::Series;
use vigil_history::History;
use vigil_ingest::MetricPoint;

use crate::config::SeriesCapsConfig;

/// A series' slot in the table; stable while the series lives.
pub type SeriesId = u32;

/// Where a series' points come from: each has its own cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MetricSource {
    /// vigil's own agents (`POST /api/v1/agent/metrics`).
    Agent,
    /// Graphite plaintext lines.
    Graphite,
    /// Prometheus remote_write.
    RemoteWrite,
}

impl MetricSource {
    pub const ALL: [MetricSource; 3] = [
        MetricSource::Agent,
        MetricSource::Graphite,
        MetricSource::RemoteWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MetricSource::Agent => "agent",
            MetricSource::Graphite => "graphite",
            MetricSource::RemoteWrite => "remote_write",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The caps on new series: the server's (`metrics.max_series`) and those of
/// `[metrics.series_caps]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesCaps {
    pub total: usize,
    pub agent: usize,
    pub graphite: usize,
    pub remote_write: usize,
    pub per_appcode: usize,
}

impl SeriesCaps {
    pub fn new(total: usize, config: &SeriesCapsConfig) -> SeriesCaps {
        SeriesCaps {
            total,
            agent: config.agent,
            graphite: config.graphite,
            remote_write: config.remote_write,
            per_appcode: config.per_appcode,
        }
    }

    fn of_source(&self, source: MetricSource) -> usize {
        match source {
            MetricSource::Agent => self.agent,
            MetricSource::Graphite => self.graphite,
            MetricSource::RemoteWrite => self.remote_write,
        }
    }
}

impl Default for SeriesCaps {
    fn default() -> Self {
        SeriesCaps::new(1_000_000, &SeriesCapsConfig::default())
    }
}

/// Which cap refused a new series. Its text tells an operator which setting to raise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapReached {
    Total { cap: usize },
    Source { source: MetricSource, cap: usize },
    Appcode { appcode: String, cap: usize },
}

impl CapReached {
    /// The `cap` label of `vigil_series_over_cap_total`.
    pub fn label(&self) -> &'static str {
        match self {
            CapReached::Total { .. } => "total",
            CapReached::Source { source, .. } => source.as_str(),
            CapReached::Appcode { .. } => "appcode",
        }
    }
}

impl fmt::Display for CapReached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapReached::Total { cap } => write!(
                f,
                "the server holds its most series ({cap}, metrics.max_series); new series are refused until idle ones expire or the cap is raised"
            ),
            CapReached::Source { source, cap } => write!(
                f,
                "the {source} source holds its most series ({cap}, metrics.series_caps.{source}); new series from it are refused until idle ones expire or the cap is raised",
                source = source.as_str()
            ),
            CapReached::Appcode { appcode, cap } => write!(
                f,
                "Appcode {appcode} holds its most series ({cap}, metrics.series_caps.per_appcode); its new series are refused until idle ones expire or the cap is raised"
            ),
        }
    }
}

/// One series.
pub struct SeriesEntry {
    /// The canonical key, [`series_key`].
    pub key: Arc<str>,
    name_len: u32,
    /// `None` for a series loaded from the store at start that has not reported since:
    /// it counts against `max_series` only.
    pub source: Option<MetricSource>,
    /// Whose series it is, decided when it first reported (its `appcode` label, else its
    /// host's binding); counts against that Appcode's cap.
    pub appcode: Option<Arc<str>>,
    /// Recent raw points, held only while an alarm judges the series and only as far back
    /// as the longest such alarm looks.
    pub raw: Option<Series>,
    /// One-minute summaries for charts, compressed.
    pub history: History,
    pub last_seen_ms: i64,
}

impl SeriesEntry {
    pub fn name(&self) -> Cow<'_, str> {
        let escaped = self.key.get(..self.name_len as usize).unwrap_or_default();
        if escaped.contains('\\') {
            Cow::Owned(unescape(escaped))
        } else {
            Cow::Borrowed(escaped)
        }
    }

    pub fn labels(&self) -> BTreeMap<String, String> {
        labels_of_key(&self.key)
    }

    /// Heap bytes this series holds, near enough for `series top`.
    fn heap_bytes(&self) -> usize {
        self.key.len()
            + self.history.heap_bytes()
            + self
                .raw
                .as_ref()
                .map_or(0, |raw| raw.capacity() * std::mem::size_of::<(i64, f64)>())
    }
}

/// Every series, by id and by key.
#[derive(Default)]
pub struct SeriesTable {
    slots: Vec<Option<SeriesEntry>>,
    free: Vec<SeriesId>,
    index: HashMap<Arc<str>, SeriesId>,
    by_name: HashMap<Box<str>, Vec<SeriesId>>,
    per_source: [usize; 3],
    per_appcode: HashMap<Arc<str>, usize>,
    /// Reused to build keys, so looking up a known series allocates nothing.
    key_buf: String,
}

impl SeriesTable {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn get(&self, id: SeriesId) -> Option<&SeriesEntry> {
        self.slots.get(id as usize).and_then(Option::as_ref)
    }

    pub fn get_mut(&mut self, id: SeriesId) -> Option<&mut SeriesEntry> {
        self.slots.get_mut(id as usize).and_then(Option::as_mut)
    }

    pub fn id_of(&self, key: &str) -> Option<SeriesId> {
        self.index.get(key).copied()
    }

    /// The series named `name`.
    pub fn named(&self, name: &str) -> &[SeriesId] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }

    pub fn iter(&self) -> impl Iterator<Item = (SeriesId, &SeriesEntry)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(id, slot)| Some((id as SeriesId, slot.as_ref()?)))
    }

    /// The id of `point`'s series, and whether it is new; a new series is created unless a
    /// cap refuses it. `appcode_of` is asked only for a new series.
    pub fn find_or_insert(
        &mut self,
        point: &MetricPoint,
        source: MetricSource,
        caps: &SeriesCaps,
        now_ms: i64,
        appcode_of: &mut dyn FnMut(&BTreeMap<String, String>) -> Option<String>,
    ) -> Result<(SeriesId, bool), CapReached> {
        let mut key = std::mem::take(&mut self.key_buf);
        key.clear();
        write_series_key(&mut key, &point.name, &point.labels);
        let found = self.index.get(key.as_str()).copied();
        let result = match found {
            Some(id) => Ok((id, false)),
            None => self.insert(&key, point, source, caps, now_ms, appcode_of),
        };
        self.key_buf = key;
        result
    }

    fn insert(
        &mut self,
        key: &str,
        point: &MetricPoint,
        source: MetricSource,
        caps: &SeriesCaps,
        now_ms: i64,
        appcode_of: &mut dyn FnMut(&BTreeMap<String, String>) -> Option<String>,
    ) -> Result<(SeriesId, bool), CapReached> {
        if self.len() >= caps.total {
            return Err(CapReached::Total { cap: caps.total });
        }
        let source_cap = caps.of_source(source);
        if self.per_source[source.index()] >= source_cap {
            return Err(CapReached::Source {
                source,
                cap: source_cap,
            });
        }
        let appcode = self.appcode_with_room(appcode_of(&point.labels), caps)?;
        let Ok(name_len) = u32::try_from(escaped_len(&point.name)) else {
            return Err(CapReached::Total { cap: caps.total });
        };
        let shared_key: Arc<str> = Arc::from(key);
        let entry = SeriesEntry {
            key: shared_key.clone(),
            name_len,
            source: Some(source),
            appcode: appcode.clone(),
            raw: None,
            history: History::default(),
            last_seen_ms: now_ms,
        };
        let id = self.place(entry, caps)?;
        self.index.insert(shared_key, id);
        match self.by_name.get_mut(point.name.as_str()) {
            Some(ids) => ids.push(id),
            None => {
                self.by_name.insert(point.name.as_str().into(), vec![id]);
            }
        }
        self.per_source[source.index()] += 1;
        if let Some(appcode) = appcode {
            *self.per_appcode.entry(appcode).or_insert(0) += 1;
        }
        Ok((id, true))
    }

    /// `appcode`, shared, if it may take one more series.
    fn appcode_with_room(
        &self,
        appcode: Option<String>,
        caps: &SeriesCaps,
    ) -> Result<Option<Arc<str>>, CapReached> {
        let Some(appcode) = appcode else {
            return Ok(None);
        };
        let (shared, count) = match self.per_appcode.get_key_value(appcode.as_str()) {
            Some((shared, count)) => (shared.clone(), *count),
            None => (Arc::from(appcode.as_str()), 0),
        };
        if count >= caps.per_appcode {
            return Err(CapReached::Appcode {
                appcode,
                cap: caps.per_appcode,
            });
        }
        Ok(Some(shared))
    }

    /// Holds a series read back from the store at start, before it reports: it has a key
    /// and chart history, no source or Appcode yet.
    pub fn insert_loaded(
        &mut self,
        key: &str,
        caps: &SeriesCaps,
        now_ms: i64,
    ) -> Result<SeriesId, CapReached> {
        if self.len() >= caps.total {
            return Err(CapReached::Total { cap: caps.total });
        }
        let (name, _) = parse_series_key(key);
        let Ok(name_len) = u32::try_from(escaped_len(&name)) else {
            return Err(CapReached::Total { cap: caps.total });
        };
        let shared_key: Arc<str> = Arc::from(key);
        let entry = SeriesEntry {
            key: shared_key.clone(),
            name_len,
            source: None,
            appcode: None,
            raw: None,
            history: History::default(),
            last_seen_ms: now_ms,
        };
        let id = self.place(entry, caps)?;
        self.index.insert(shared_key, id);
        self.by_name
            .entry(name.into_boxed_str())
            .or_default()
            .push(id);
        Ok(id)
    }

    /// A loaded series reported: it now counts against its source's and Appcode's caps
    /// (it is not refused: it was held before the restart).
    pub fn mark_reported(
        &mut self,
        id: SeriesId,
        point: &MetricPoint,
        source: MetricSource,
        appcode_of: &mut dyn FnMut(&BTreeMap<String, String>) -> Option<String>,
    ) {
        let appcode: Option<Arc<str>> = appcode_of(&point.labels).map(|appcode| {
            match self.per_appcode.get_key_value(appcode.as_str()) {
                Some((shared, _)) => shared.clone(),
                None => Arc::from(appcode.as_str()),
            }
        });
        let Some(entry) = self.slots.get_mut(id as usize).and_then(Option::as_mut) else {
            return;
        };
        entry.source = Some(source);
        entry.appcode = appcode.clone();
        self.per_source[source.index()] += 1;
        if let Some(appcode) = appcode {
            *self.per_appcode.entry(appcode).or_insert(0) += 1;
        }
    }

    fn place(&mut self, entry: SeriesEntry, caps: &SeriesCaps) -> Result<SeriesId, CapReached> {
        match self.free.pop() {
            Some(id) => {
                if let Some(slot) = self.slots.get_mut(id as usize) {
                    *slot = Some(entry);
                }
                Ok(id)
            }
            None => {
                let Ok(id) = SeriesId::try_from(self.slots.len()) else {
                    return Err(CapReached::Total { cap: caps.total });
                };
                self.slots.push(Some(entry));
                Ok(id)
            }
        }
    }

    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut SeriesEntry)) {
        for entry in self.slots.iter_mut().flatten() {
            f(entry);
        }
    }

    pub fn for_each_mut_with_id(&mut self, mut f: impl FnMut(SeriesId, &mut SeriesEntry)) {
        for (id, slot) in self.slots.iter_mut().enumerate() {
            if let Some(entry) = slot {
                f(id as SeriesId, entry);
            }
        }
    }

    /// Forgets the series `ids`; returns their entries.
    pub fn remove(&mut self, ids: &[SeriesId]) -> Vec<(SeriesId, SeriesEntry)> {
        let mut removed = Vec::with_capacity(ids.len());
        for &id in ids {
            let Some(entry) = self.slots.get_mut(id as usize).and_then(Option::take) else {
                continue;
            };
            self.index.remove(&*entry.key);
            self.free.push(id);
            if let Some(source) = entry.source {
                self.per_source[source.index()] -= 1;
            }
            if let Some(appcode) = &entry.appcode {
                if let Some(count) = self.per_appcode.get_mut(&**appcode) {
                    *count -= 1;
                    if *count == 0 {
                        self.per_appcode.remove(&**appcode);
                    }
                }
            }
            removed.push((id, entry));
        }
        let names: HashSet<Cow<'_, str>> = removed.iter().map(|(_, entry)| entry.name()).collect();
        let gone: HashSet<SeriesId> = removed.iter().map(|(id, _)| *id).collect();
        for name in names {
            if let Some(ids) = self.by_name.get_mut(&*name) {
                ids.retain(|id| !gone.contains(id));
                if ids.is_empty() {
                    self.by_name.remove(&*name);
                }
            }
        }
        self.shrink_free_tail();
        removed
    }

    /// Gives back the slab's empty tail, so a table that shrank does not hold its peak.
    fn shrink_free_tail(&mut self) {
        while self.slots.last().is_some_and(Option::is_none) {
            self.slots.pop();
        }
        let len = self.slots.len();
        self.free.retain(|id| (*id as usize) < len);
        if self.slots.capacity() > 2 * self.slots.len() + 1024 {
            self.slots.shrink_to_fit();
        }
    }

    /// The series-heaviest metric names, Appcodes and sources.
    pub fn top(&self, limit: usize, caps: &SeriesCaps) -> SeriesTop {
        let mut by_metric: HashMap<Cow<'_, str>, (usize, usize)> = HashMap::new();
        let mut history_bytes = 0;
        for (_, entry) in self.iter() {
            let bytes = entry.heap_bytes();
            history_bytes += entry.history.heap_bytes();
            let slot = by_metric.entry(entry.name()).or_default();
            slot.0 += 1;
            slot.1 += bytes;
        }
        let mut metrics: Vec<MetricSeriesCount> = by_metric
            .into_iter()
            .map(|(name, (series, bytes))| MetricSeriesCount {
                name: name.into_owned(),
                series,
                bytes,
            })
            .collect();
        metrics.sort_by(|a, b| b.series.cmp(&a.series).then_with(|| a.name.cmp(&b.name)));
        metrics.truncate(limit);
        let mut appcodes: Vec<AppcodeSeriesCount> = self
            .per_appcode
            .iter()
            .map(|(appcode, series)| AppcodeSeriesCount {
                appcode: appcode.to_string(),
                series: *series,
                cap: caps.per_appcode,
            })
            .collect();
        appcodes.sort_by(|a, b| {
            b.series
                .cmp(&a.series)
                .then_with(|| a.appcode.cmp(&b.appcode))
        });
        appcodes.truncate(limit);
        SeriesTop {
            total: self.len(),
            cap: caps.total,
            history_bytes,
            sources: MetricSource::ALL
                .iter()
                .map(|source| SourceSeriesCount {
                    source: *source,
                    series: self.per_source[source.index()],
                    cap: caps.of_source(*source),
                })
                .collect(),
            metrics,
            appcodes,
        }
    }
}

/// Where the series are: `vigil series top`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SeriesTop {
    /// Series held.
    pub total: usize,
    /// `metrics.max_series`.
    pub cap: usize,
    /// Heap bytes of every series' compressed chart history.
    pub history_bytes: usize,
    pub sources: Vec<SourceSeriesCount>,
    /// The metric names with the most series, most first.
    pub metrics: Vec<MetricSeriesCount>,
    /// The Appcodes with the most series, most first.
    pub appcodes: Vec<AppcodeSeriesCount>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SourceSeriesCount {
    pub source: MetricSource,
    pub series: usize,
    pub cap: usize,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MetricSeriesCount {
    pub name: String,
    pub series: usize,
    /// Heap bytes of these series: keys, raw points, chart history.
    pub bytes: usize,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AppcodeSeriesCount {
    pub appcode: String,
    pub series: usize,
    pub cap: usize,
}

/// The canonical text of a series: `name{k=v,…}` with labels sorted. `\`, `,`, `=`, `{`
/// and `}` inside a name, label name or value are escaped with `\`, so the key reads
/// back into exactly the labels it was made from.
pub fn series_key(name: &str, labels: &BTreeMap<String, String>) -> String {
    let mut key = String::with_capacity(name.len() + 16 * labels.len());
    write_series_key(&mut key, name, labels);
    key
}

fn write_series_key(key: &mut String, name: &str, labels: &BTreeMap<String, String>) {
    escape_into(key, name);
    key.push('{');
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            key.push(',');
        }
        escape_into(key, k);
        key.push('=');
        escape_into(key, v);
    }
    key.push('}');
}

fn is_special(c: char) -> bool {
    matches!(c, '\\' | ',' | '=' | '{' | '}')
}

fn escape_into(out: &mut String, text: &str) {
    if !text.contains(is_special) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        if is_special(c) {
            out.push('\\');
        }
        out.push(c);
    }
}

fn escaped_len(text: &str) -> usize {
    text.len() + text.chars().filter(|c| is_special(*c)).count()
}

fn unescape(text: &str) -> String {
    if !text.contains('\\') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The name and labels of a [`series_key`].
pub fn parse_series_key(key: &str) -> (String, BTreeMap<String, String>) {
    let mut name = String::new();
    let mut labels = BTreeMap::new();
    let mut chars = key.chars();
    // Name, up to the first unescaped `{`.
    while let Some(c) = chars.next() {
        match c {
            '\\' => name.extend(chars.next()),
            '{' => break,
            c => name.push(c),
        }
    }
    let mut label = String::new();
    let mut value = String::new();
    let mut in_value = false;
    while let Some(c) = chars.next() {
        let target = if in_value { &mut value } else { &mut label };
        match c {
            '\\' => target.extend(chars.next()),
            '=' if !in_value => in_value = true,
            ',' | '}' => {
                if in_value {
                    labels.insert(std::mem::take(&mut label), std::mem::take(&mut value));
                }
                in_value = false;
                if c == '}' {
                    break;
                }
            }
            c => target.push(c),
        }
    }
    (name, labels)
}

/// The labels of a [`series_key`].
pub fn labels_of_key(key: &str) -> BTreeMap<String, String> {
    parse_series_key(key).1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(name: &str, labels: &[(&str, &str)]) -> MetricPoint {
        MetricPoint {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value: 1.0,
            timestamp_ms: 0,
        }
    }

    #[test]
    fn keys_read_back_into_the_labels_they_were_made_from() {
        let labels: BTreeMap<String, String> = [
            ("path", "/data,1=x"),
            ("weird{", "a}b\\c"),
            ("host", "web-1"),
            ("empty", ""),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let key = series_key("disk{used}", &labels);
        assert_eq!(parse_series_key(&key), ("disk{used}".to_string(), labels));
        assert_eq!(
            series_key("cpu", &BTreeMap::from([("host".into(), "a".into())])),
            "cpu{host=a}",
            "plain keys are what they always were, so saved alarm states still match"
        );
        assert_eq!(parse_series_key("m{}"), ("m".to_string(), BTreeMap::new()));
    }

    #[test]
    fn names_and_labels_are_read_from_the_shared_key() {
        let mut table = SeriesTable::default();
        let caps = SeriesCaps::default();
        let p = point("disk=used", &[("host", "a,b")]);
        let (id, new) = table
            .find_or_insert(&p, MetricSource::Graphite, &caps, 0, &mut |_| None)
            .unwrap();
        assert!(new);
        let entry = table.get(id).unwrap();
        assert_eq!(entry.name(), "disk=used");
        assert_eq!(entry.labels(), p.labels);
        let (again, new) = table
            .find_or_insert(&p, MetricSource::Graphite, &caps, 0, &mut |_| None)
            .unwrap();
        assert_eq!((again, new), (id, false));
        assert_eq!(table.named("disk=used"), [id]);
    }

    #[test]
    fn each_cap_refuses_new_series_and_says_which_setting_to_raise() {
        let caps = SeriesCaps {
            total: 4,
            agent: 2,
            graphite: 10,
            remote_write: 10,
            per_appcode: 1,
        };
        let mut table = SeriesTable::default();
        let insert = |table: &mut SeriesTable, host: &str, source, appcode: Option<&str>| {
            table.find_or_insert(
                &point("m", &[("host", host)]),
                source,
                &caps,
                0,
                &mut |_| appcode.map(str::to_string),
            )
        };
        insert(&mut table, "a", MetricSource::Agent, None).unwrap();
        insert(&mut table, "b", MetricSource::Agent, None).unwrap();
        let refused = insert(&mut table, "c", MetricSource::Agent, None).unwrap_err();
        assert_eq!(
            refused,
            CapReached::Source {
                source: MetricSource::Agent,
                cap: 2
            }
        );
        assert!(refused.to_string().contains("metrics.series_caps.agent"));
        insert(&mut table, "d", MetricSource::Graphite, Some("PAY")).unwrap();
        let refused = insert(&mut table, "e", MetricSource::Graphite, Some("PAY")).unwrap_err();
        assert!(refused.to_string().contains("Appcode PAY"), "{refused}");
        insert(&mut table, "f", MetricSource::Graphite, Some("WEB")).unwrap();
        let refused = insert(&mut table, "g", MetricSource::Graphite, None).unwrap_err();
        assert_eq!(refused, CapReached::Total { cap: 4 });
        // A known series is never refused, whatever the caps.
        insert(&mut table, "a", MetricSource::Agent, None).unwrap();

        let top = table.top(10, &caps);
        assert_eq!(top.total, 4);
        assert_eq!(top.metrics[0].name, "m");
        assert_eq!(top.metrics[0].series, 4);
        let agent = top
            .sources
            .iter()
            .find(|s| s.source == MetricSource::Agent)
            .unwrap();
        assert_eq!((agent.series, agent.cap), (2, 2));
        assert_eq!(top.appcodes.len(), 2);

        // Room comes back when series go.
        let pay = table.id_of("m{host=d}").unwrap();
        table.remove(&[pay]);
        insert(&mut table, "e", MetricSource::Graphite, Some("PAY")).unwrap();
        assert_eq!(table.len(), 4);
    }
}
