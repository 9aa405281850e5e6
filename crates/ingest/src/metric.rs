//! The one shape every metric decoder produces, whatever the wire format.

use std::collections::BTreeMap;

/// One sample of one series. A series is `name` plus its sorted labels.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    pub timestamp_ms: i64,
}
