//! Prometheus remote_write v1: the body is a snappy *block* (not framed) compressed
//! protobuf `prometheus.WriteRequest`. Only the fields vigil needs are read:
//!
//! ```text
//! message WriteRequest { repeated TimeSeries timeseries = 1; }          // metadata = 3 skipped
//! message TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//!                                                 // exemplars = 3, histograms = 4 skipped
//! message Label        { string name = 1; string value = 2; }
//! message Sample       { double value = 1; int64 timestamp = 2; }        // timestamp in ms
//! ```
//!
//! The protobuf is decoded by hand: four small messages do not justify a code generator,
//! and a hand decoder makes every bound explicit. Unknown fields of any wire type are
//! skipped, so newer senders keep working. [`encode`] is the inverse, for forwarding.

use std::collections::BTreeMap;

use crate::MetricPoint;

/// Prometheus marks "this series ended" with this exact NaN. It is not a measurement, so
/// it is dropped without being counted as a rejected value.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The label that carries the metric name; it becomes [`MetricPoint::name`].
pub const NAME_LABEL: &str = "__name__";

/// Protobuf field numbers are 29-bit.
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

/// Bounds on what one request may cost. The defaults are far above what Prometheus' own
/// sender batches (`max_samples_per_send`, 2,000 by default) while still bounding memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Checked against snappy's length header before anything is decompressed.
    pub max_decompressed_bytes: usize,
    /// Points returned (rejected and staleness samples are not points).
    pub max_points: usize,
    /// Sum over returned points of the bytes of their name, label names and label values.
    /// Every point carries its own copy of its series' labels, so one series with large
    /// labels and many samples would otherwise expand far past `max_decompressed_bytes`.
    pub max_label_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_decompressed_bytes: 32 << 20,
            max_points: 1_000_000,
            max_label_bytes: 256 << 20,
        }
    }
}

/// What a body held.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decoded {
    /// Every finite sample, in request order (series by series, samples in order).
    pub points: Vec<MetricPoint>,
    /// Samples whose value was NaN or ±infinity (other than staleness markers). They are
    /// not errors: the request is otherwise good, so the caller counts and reports them.
    pub rejected_non_finite: usize,
}

/// Why a body was refused. Positions are byte offsets in the *decompressed* body and
/// paths name the protobuf element, e.g. `timeseries[3].labels[0]` (0-based).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RemoteWriteError {
    #[error("body is empty; remote_write sends a snappy-compressed WriteRequest")]
    Empty,
    #[error("body is not snappy block-compressed data (remote_write uses the block format, not the framed one): {0}")]
    Snappy(String),
    #[error("body would decompress to {len} bytes, over the {limit}-byte limit")]
    TooLarge { len: usize, limit: usize },
    #[error("WriteRequest is malformed at byte {offset} (decompressed), in {at}: {problem}")]
    Malformed {
        at: String,
        offset: usize,
        problem: String,
    },
    #[error("timeseries[{series}] has no `__name__` label, so it names no metric")]
    MissingName { series: usize },
    #[error("timeseries[{series}]: {problem}")]
    BadLabels { series: usize, problem: String },
    #[error("request holds more than {limit} points")]
    TooManyPoints { limit: usize },
    #[error("request's points carry more than {limit} bytes of names and labels")]
    TooMuchLabelData { limit: usize },
}

/// Decodes one remote_write body. Fails on the first malformed byte or invalid series:
/// a sender that produced one bad series has a bug, and accepting the rest would hide it.
pub fn decode(body: &[u8], limits: &Limits) -> Result<Decoded, RemoteWriteError> {
    if body.is_empty() {
        return Err(RemoteWriteError::Empty);
    }
    let snappy = |e: snap::Error| RemoteWriteError::Snappy(e.to_string());
    let len = snap::raw::decompress_len(body).map_err(snappy)?;
    // decompress_vec allocates the header's length up front, so refuse a bomb before that.
    if len > limits.max_decompressed_bytes {
        return Err(RemoteWriteError::TooLarge {
            len,
            limit: limits.max_decompressed_bytes,
        });
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(snappy)?;

    let mut out = Decoded::default();
    let mut label_bytes = 0usize;
    let mut request = Reader::new(&raw, 0);
    let mut index = 0;
    while let Some(field) = request.field().map_err(|e| e.at("WriteRequest"))? {
        // Field 3 is metadata; anything else is newer than v1. Neither carries samples.
        if field.number != 1 {
            continue;
        }
        let reader = field
            .bytes("timeseries")
            .map_err(|e| e.at("WriteRequest"))?;
        let series =
            read_series(reader, index).map_err(|e| e.at(format!("timeseries[{index}]")))?;
        emit(series, index, limits, &mut out, &mut label_bytes)?;
        index += 1;
    }
    Ok(out)
}

/// Encodes points as one remote_write body: a snappy block of a `WriteRequest`, as
/// Prometheus sends it. Points of one series (name and labels) become one `TimeSeries`,
/// series in the order they first appear; its labels, `__name__` with the others, are
/// sorted by name and its samples by timestamp, as receivers require. Two
/// points of one series with the same timestamp keep the later one, as vigil's own series
/// do: a receiver refuses a batch holding two values for one instant.
pub fn encode(points: &[MetricPoint]) -> Vec<u8> {
    // Series key → position in `series`; keys borrow from `points`.
    let mut index: std::collections::HashMap<(&str, &BTreeMap<String, String>), usize> =
        std::collections::HashMap::new();
    let mut series: Vec<(&MetricPoint, Vec<(i64, f64)>)> = Vec::new();
    for point in points {
        let at = *index
            .entry((point.name.as_str(), &point.labels))
            .or_insert_with(|| {
                series.push((point, Vec::new()));
                series.len() - 1
            });
        if let Some((_, samples)) = series.get_mut(at) {
            samples.push((point.timestamp_ms, point.value));
        }
    }
    let mut request = Vec::new();
    let mut message = Vec::new();
    let mut inner = Vec::new();
    for (first, mut samples) in series {
        // Stable: of equal timestamps the later point stays last, and is the one kept.
        samples.sort_by_key(|&(timestamp_ms, _)| timestamp_ms);
        let mut kept: Vec<(i64, f64)> = Vec::with_capacity(samples.len());
        for sample in samples {
            match kept.last_mut() {
                Some(last) if last.0 == sample.0 => *last = sample,
                _ => kept.push(sample),
            }
        }
        message.clear();
        // The remote_write spec wants every series' labels sorted by name, byte-wise,
        // `__name__` among them: it comes first unless a label starts with an upper-case
        // letter or a character below `_` (CloudWatch's `InstanceId` sorts before it).
        let mut labels: Vec<(&str, &str)> = first
            .labels
            .iter()
            .filter(|(k, _)| k.as_str() != NAME_LABEL)
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let at = labels.partition_point(|(k, _)| *k < NAME_LABEL);
        labels.insert(at, (NAME_LABEL, first.name.as_str()));
        for (name, value) in labels {
            inner.clear();
            put_bytes(1, name.as_bytes(), &mut inner);
            put_bytes(2, value.as_bytes(), &mut inner);
            put_bytes(1, &inner, &mut message);
        }
        for (timestamp_ms, value) in kept {
            inner.clear();
            put_varint(1 << 3 | 1, &mut inner);
            inner.extend_from_slice(&value.to_bits().to_le_bytes());
            put_varint(2 << 3, &mut inner);
            // int64 is a plain varint: negatives as their two's complement.
            put_varint(timestamp_ms as u64, &mut inner);
            put_bytes(2, &inner, &mut message);
        }
        put_bytes(1, &message, &mut request);
    }
    // The raw encoder only fails on input over its ~4 GiB limit; callers batch far below.
    snap::raw::Encoder::new()
        .compress_vec(&request)
        .unwrap_or_default()
}

fn put_varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(field: u64, bytes: &[u8], out: &mut Vec<u8>) {
    put_varint(field << 3 | 2, out);
    put_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// One TimeSeries as it appears on the wire, borrowing strings from the decompressed body.
struct Series<'a> {
    labels: Vec<Label<'a>>,
    /// Values stay as raw bits until the staleness check: converting a signalling NaN to
    /// `f64` and back is not guaranteed to keep its payload on every platform.
    samples: Vec<(u64, i64)>,
}

struct Label<'a> {
    name: &'a str,
    value: &'a str,
}

fn read_series(mut reader: Reader<'_>, series: usize) -> Result<Series<'_>, WireError> {
    let mut out = Series {
        labels: Vec::new(),
        samples: Vec::new(),
    };
    while let Some(field) = reader.field()? {
        match field.number {
            1 => {
                let at = out.labels.len();
                let label = field
                    .bytes("labels")
                    .and_then(read_label)
                    .map_err(|e| e.within(format!("timeseries[{series}].labels[{at}]")))?;
                out.labels.push(label);
            }
            2 => {
                let at = out.samples.len();
                let sample = field
                    .bytes("samples")
                    .and_then(read_sample)
                    .map_err(|e| e.within(format!("timeseries[{series}].samples[{at}]")))?;
                out.samples.push(sample);
            }
            // exemplars (3), native histograms (4) and anything newer.
            _ => {}
        }
    }
    Ok(out)
}

fn read_label(mut reader: Reader<'_>) -> Result<Label<'_>, WireError> {
    // proto3: an absent string is empty; a repeated scalar field keeps its last value.
    let mut label = Label {
        name: "",
        value: "",
    };
    while let Some(field) = reader.field()? {
        match field.number {
            1 => label.name = field.string("name")?,
            2 => label.value = field.string("value")?,
            _ => {}
        }
    }
    Ok(label)
}

fn read_sample(mut reader: Reader<'_>) -> Result<(u64, i64), WireError> {
    // proto3 defaults: absent value is 0.0, absent timestamp is 0.
    let (mut bits, mut timestamp) = (0u64, 0i64);
    while let Some(field) = reader.field()? {
        match field.number {
            1 => bits = field.fixed64("value")?,
            // int64 is a plain (not zigzag) varint; negatives are two's complement.
            2 => timestamp = field.varint("timestamp")? as i64,
            _ => {}
        }
    }
    Ok((bits, timestamp))
}

/// Turns one wire series into points, applying Prometheus' label rules and the limits.
fn emit(
    series: Series<'_>,
    index: usize,
    limits: &Limits,
    out: &mut Decoded,
    label_bytes: &mut usize,
) -> Result<(), RemoteWriteError> {
    let mut name = None;
    let mut labels = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    for label in &series.labels {
        if label.name.is_empty() {
            return Err(RemoteWriteError::BadLabels {
                series: index,
                problem: "a label has an empty name".into(),
            });
        }
        // Prometheus refuses duplicate label names: the series would be ambiguous.
        if !seen.insert(label.name) {
            return Err(RemoteWriteError::BadLabels {
                series: index,
                problem: format!("label `{}` appears more than once", label.name),
            });
        }
        // In Prometheus an empty label value means the label is absent.
        if label.value.is_empty() {
            continue;
        }
        if label.name == NAME_LABEL {
            name = Some(label.value);
        } else {
            labels.insert(label.name.to_string(), label.value.to_string());
        }
    }
    let Some(name) = name else {
        return Err(RemoteWriteError::MissingName { series: index });
    };
    let cost = labels
        .iter()
        .fold(name.len(), |sum, (k, v)| sum + k.len() + v.len());

    for &(bits, timestamp_ms) in &series.samples {
        if bits == STALE_NAN_BITS {
            continue;
        }
        let value = f64::from_bits(bits);
        if !value.is_finite() {
            out.rejected_non_finite += 1;
            continue;
        }
        if out.points.len() >= limits.max_points {
            return Err(RemoteWriteError::TooManyPoints {
                limit: limits.max_points,
            });
        }
        *label_bytes = label_bytes.saturating_add(cost);
        if *label_bytes > limits.max_label_bytes {
            return Err(RemoteWriteError::TooMuchLabelData {
                limit: limits.max_label_bytes,
            });
        }
        out.points.push(MetricPoint {
            name: name.to_string(),
            labels: labels.clone(),
            value,
            timestamp_ms,
        });
    }
    Ok(())
}

/// A wire-level problem, before the caller adds which element it was reading.
#[derive(Debug)]
struct WireError {
    offset: usize,
    problem: String,
    /// The innermost element named so far; outer callers only fill it if still empty.
    at: Option<String>,
}

impl WireError {
    fn within(mut self, at: String) -> Self {
        self.at.get_or_insert(at);
        self
    }

    fn at(self, at: impl Into<String>) -> RemoteWriteError {
        RemoteWriteError::Malformed {
            at: self.at.unwrap_or_else(|| at.into()),
            offset: self.offset,
            problem: self.problem,
        }
    }
}

/// A cursor over one message's bytes. `base` is where `buf` starts in the decompressed
/// body, so errors point at absolute offsets the sender can find.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

/// One field's payload, already consumed from the reader according to its wire type.
enum Payload<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(Reader<'a>),
    /// 32-bit fields are only ever skipped: no field vigil reads has this type.
    Fixed32,
}

struct Field<'a> {
    number: u64,
    /// Absolute offset of the field's key, for "wrong wire type" errors.
    offset: usize,
    payload: Payload<'a>,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    fn error(&self, pos: usize, problem: impl Into<String>) -> WireError {
        WireError {
            offset: self.base + pos,
            problem: problem.into(),
            at: None,
        }
    }

    /// The next field, or `None` at the end of the message.
    fn field(&mut self) -> Result<Option<Field<'a>>, WireError> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let key_pos = self.pos;
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 || number > MAX_FIELD_NUMBER {
            return Err(self.error(key_pos, format!("field number {number} is invalid")));
        }
        let payload = match key & 7 {
            0 => Payload::Varint(self.varint()?),
            1 => Payload::Fixed64(u64::from_le_bytes(self.take()?)),
            2 => Payload::Bytes(self.bytes()?),
            5 => {
                self.take::<4>()?;
                Payload::Fixed32
            }
            // Groups are deprecated since proto2 and never used by remote_write.
            3 | 4 => {
                return Err(self.error(
                    key_pos,
                    format!("field {number} uses the unsupported group wire type"),
                ))
            }
            other => {
                return Err(self.error(
                    key_pos,
                    format!("field {number} has unknown wire type {other}"),
                ))
            }
        };
        Ok(Some(Field {
            number,
            offset: self.base + key_pos,
            payload,
        }))
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let start = self.pos;
        let mut value = 0u64;
        let mut shift = 0;
        loop {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(self.error(start, "varint is cut off by the end of its message"));
            };
            self.pos += 1;
            // The 10th byte may only contribute the 64th bit.
            if shift == 63 && byte > 1 {
                return Err(self.error(start, "varint does not fit in 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
            shift += 7;
        }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let bytes = self
            .buf
            .get(self.pos..)
            .and_then(|rest| rest.first_chunk::<N>())
            .ok_or_else(|| {
                self.error(
                    self.pos,
                    format!("{N}-byte value is cut off by the end of its message"),
                )
            })?;
        self.pos += N;
        Ok(*bytes)
    }

    fn bytes(&mut self) -> Result<Reader<'a>, WireError> {
        let len_pos = self.pos;
        let len = self.varint()?;
        let remaining = self.buf.len() - self.pos;
        // Compare as u64 first: on 32-bit targets a huge length must not wrap.
        let len = usize::try_from(len)
            .ok()
            .filter(|&len| len <= remaining)
            .ok_or_else(|| {
                self.error(
                    len_pos,
                    format!(
                        "length {len} runs past the end of its message ({remaining} bytes left)"
                    ),
                )
            })?;
        let start = self.pos;
        self.pos += len;
        Ok(Reader::new(
            &self.buf[start..start + len],
            self.base + start,
        ))
    }
}

impl<'a> Field<'a> {
    fn wrong_type(&self, name: &str, expected: &str) -> WireError {
        let found = match self.payload {
            Payload::Varint(_) => "varint",
            Payload::Fixed64(_) => "64-bit",
            Payload::Bytes(_) => "length-delimited",
            Payload::Fixed32 => "32-bit",
        };
        WireError {
            offset: self.offset,
            problem: format!(
                "field {} (`{name}`) has wire type {found}; expected {expected}",
                self.number
            ),
            at: None,
        }
    }

    fn bytes(self, name: &str) -> Result<Reader<'a>, WireError> {
        match self.payload {
            Payload::Bytes(reader) => Ok(reader),
            _ => Err(self.wrong_type(name, "length-delimited")),
        }
    }

    fn string(self, name: &str) -> Result<&'a str, WireError> {
        let reader = self.bytes(name)?;
        std::str::from_utf8(reader.buf).map_err(|e| WireError {
            offset: reader.base + e.valid_up_to(),
            problem: format!("`{name}` is not valid UTF-8"),
            at: None,
        })
    }

    fn fixed64(self, name: &str) -> Result<u64, WireError> {
        match self.payload {
            Payload::Fixed64(bits) => Ok(bits),
            _ => Err(self.wrong_type(name, "64-bit")),
        }
    }

    fn varint(self, name: &str) -> Result<u64, WireError> {
        match self.payload {
            Payload::Varint(value) => Ok(value),
            _ => Err(self.wrong_type(name, "varint")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(bytes: &[u8]) -> Result<u64, String> {
        Reader::new(bytes, 0).varint().map_err(|e| e.problem)
    }

    #[test]
    fn varints_decode_to_the_64_bit_limit() {
        assert_eq!(varint(&[0x00]), Ok(0));
        assert_eq!(varint(&[0x96, 0x01]), Ok(150));
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(varint(&max), Ok(u64::MAX));
    }

    #[test]
    fn varints_that_overflow_or_stop_early_are_refused() {
        let too_big = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(varint(&too_big).unwrap_err().contains("64 bits"));
        let eleven = [0xff; 11];
        assert!(varint(&eleven).is_err());
        assert!(varint(&[0x80]).unwrap_err().contains("cut off"));
        assert!(varint(&[]).is_err());
    }

    #[test]
    fn field_zero_and_groups_are_refused() {
        assert!(Reader::new(&[0x00, 0x00], 0).field().is_err());
        // field 1, wire type 3 (start group)
        assert!(Reader::new(&[0x0b], 0).field().is_err());
        // field 1, wire type 6 does not exist
        assert!(Reader::new(&[0x0e], 0).field().is_err());
    }

    #[test]
    fn offsets_are_absolute() {
        // field 1, length 2, but only one byte follows; the reader starts at body byte 10.
        let err = match Reader::new(&[0x0a, 0x02, 0x00], 10).field() {
            Err(e) => e,
            Ok(_) => panic!("a length past the end must be refused"),
        };
        assert_eq!(err.offset, 11);
    }

    fn point(name: &str, labels: &[(&str, &str)], value: f64, timestamp_ms: i64) -> MetricPoint {
        MetricPoint {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
            timestamp_ms,
        }
    }

    #[test]
    fn encoded_points_decode_to_the_same_points_grouped_and_in_time_order() {
        let points = vec![
            point("load1", &[("host", "web-1")], 0.5, 2_000),
            point("up", &[], 1.0, 1_000),
            point("load1", &[("host", "web-1")], 0.25, 1_000),
            point("load1", &[("host", "web-2"), ("az", "a")], -3.5, -5),
            point("load1", &[("host", "web-1")], 1e300, 3_000),
        ];
        let body = encode(&points);
        let decoded = decode(&body, &Limits::default()).unwrap();
        assert_eq!(decoded.rejected_non_finite, 0);
        assert_eq!(
            decoded.points,
            vec![
                point("load1", &[("host", "web-1")], 0.25, 1_000),
                point("load1", &[("host", "web-1")], 0.5, 2_000),
                point("load1", &[("host", "web-1")], 1e300, 3_000),
                point("up", &[], 1.0, 1_000),
                point("load1", &[("host", "web-2"), ("az", "a")], -3.5, -5),
            ]
        );
        assert!(encode(&[]).len() < 4);
        assert_eq!(
            decode(&encode(&[]), &Limits::default()).unwrap().points,
            vec![]
        );
    }

    #[test]
    fn encoded_labels_are_sorted_with_the_name_among_them_and_one_instant_keeps_the_last_value() {
        let points = vec![
            point("m", &[("b", "2"), ("a", "1"), ("Z", "z")], 1.0, 10),
            point("m", &[("a", "1"), ("b", "2"), ("Z", "z")], 2.0, 10),
        ];
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&encode(&points))
            .unwrap();
        let mut request = Reader::new(&raw, 0);
        let Some(Field {
            payload: Payload::Bytes(mut series),
            ..
        }) = request.field().unwrap()
        else {
            panic!("one timeseries");
        };
        assert!(request.field().unwrap().is_none(), "a single series");
        let mut names = Vec::new();
        let mut samples = Vec::new();
        while let Some(field) = series.field().unwrap() {
            match field.number {
                1 => names.push(read_label(field.bytes("labels").unwrap()).unwrap().name),
                2 => samples.push(read_sample(field.bytes("samples").unwrap()).unwrap()),
                _ => panic!("unexpected field"),
            }
        }
        assert_eq!(names, vec!["Z", "__name__", "a", "b"]);
        assert_eq!(samples, vec![(2.0f64.to_bits(), 10)]);
    }
}
