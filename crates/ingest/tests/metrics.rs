//! Metric decoders: Graphite plaintext lines and Prometheus remote_write bodies.
//!
//! remote_write bodies are built with a small protobuf encoder below, so every byte the
//! decoder sees is visible in the test, including the malformed ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use vigil_ingest::graphite::{self, GraphiteError, MAX_LINE_BYTES};
use vigil_ingest::remote_write::{self, Decoded, Limits, RemoteWriteError, STALE_NAN_BITS};
use vigil_ingest::MetricPoint;

const NOW_MS: i64 = 1_700_000_123_456;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ---------------------------------------------------------------- Graphite

#[test]
fn graphite_collectd_line() {
    let point = graphite::parse_line("servers.web01.cpu.total.user 12.5 1700000000", NOW_MS)
        .expect("a collectd line parses");
    assert_eq!(
        point,
        MetricPoint {
            name: "servers.web01.cpu.total.user".into(),
            labels: BTreeMap::new(),
            value: 12.5,
            timestamp_ms: 1_700_000_000_000,
        }
    );
}

#[test]
fn graphite_line_terminators_and_extra_spaces_are_tolerated() {
    for line in [
        "servers.web01.load.shortterm 0.42 1700000000\r\n",
        "servers.web01.load.shortterm 0.42 1700000000\n",
        "servers.web01.load.shortterm 0.42 1700000000\r",
        "servers.web01.load.shortterm\t0.42   1700000000  ",
    ] {
        let point = graphite::parse_line(line, NOW_MS).expect(line);
        assert_eq!(point.name, "servers.web01.load.shortterm");
        assert_eq!(point.value, 0.42);
        assert_eq!(point.timestamp_ms, 1_700_000_000_000);
    }
}

#[test]
fn graphite_tagged_line_becomes_sorted_labels() {
    let point = graphite::parse_line(
        "disk.used;host=web01;mount=/var;dc=eu-west-1 81.25 1700000000",
        NOW_MS,
    )
    .expect("a tagged line parses");
    assert_eq!(point.name, "disk.used");
    assert_eq!(
        point.labels,
        labels(&[("dc", "eu-west-1"), ("host", "web01"), ("mount", "/var")])
    );
    assert_eq!(
        point.labels.keys().collect::<Vec<_>>(),
        ["dc", "host", "mount"]
    );
    // Graphite splits a tag at its first `=`, so values may contain `=`.
    let point = graphite::parse_line("q;expr=a=b 1 1700000000", NOW_MS).unwrap();
    assert_eq!(point.labels, labels(&[("expr", "a=b")]));
}

#[test]
fn graphite_float_timestamps_keep_milliseconds() {
    let point = graphite::parse_line("app.latency 0.003 1700000000.25", NOW_MS).unwrap();
    assert_eq!(point.timestamp_ms, 1_700_000_000_250);
    let point = graphite::parse_line("app.latency 3e-3 1700000000.123", NOW_MS).unwrap();
    assert_eq!(point.timestamp_ms, 1_700_000_000_123);
    assert_eq!(point.value, 0.003);
}

#[test]
fn graphite_missing_or_minus_one_timestamp_means_now() {
    for line in ["app.requests 7", "app.requests 7 -1", "app.requests 7 -1.0"] {
        let point = graphite::parse_line(line, NOW_MS).expect(line);
        assert_eq!(point.timestamp_ms, NOW_MS, "{line}");
    }
}

#[test]
fn graphite_negative_and_exponent_values_parse() {
    let point = graphite::parse_line("temp.outside -4.5 1700000000", NOW_MS).unwrap();
    assert_eq!(point.value, -4.5);
    let point = graphite::parse_line("bytes.sent 1.5e9 1700000000", NOW_MS).unwrap();
    assert_eq!(point.value, 1.5e9);
}

#[test]
fn graphite_missing_value_is_refused() {
    let err = graphite::parse_line("servers.web01.cpu.total.user", NOW_MS).unwrap_err();
    assert!(
        matches!(err, GraphiteError::FieldCount { fields: 1, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("path value [timestamp]"), "{message}");
    assert!(
        message.contains("servers.web01.cpu.total.user"),
        "{message}"
    );
}

#[test]
fn graphite_too_many_fields_are_refused() {
    let err = graphite::parse_line("a.b 1 1700000000 extra", NOW_MS).unwrap_err();
    assert!(
        matches!(err, GraphiteError::FieldCount { fields: 4, .. }),
        "{err:?}"
    );
}

#[test]
fn graphite_non_numeric_value_is_refused() {
    let err = graphite::parse_line("servers.web01.cpu idle 1700000000", NOW_MS).unwrap_err();
    assert!(matches!(err, GraphiteError::BadValue { .. }), "{err:?}");
    assert!(err.to_string().contains("`idle` is not a number"), "{err}");
}

#[test]
fn graphite_non_finite_values_are_refused_as_such() {
    for value in ["nan", "NaN", "inf", "-inf", "infinity", "1e999"] {
        let line = format!("app.ratio {value} 1700000000");
        let err = graphite::parse_line(&line, NOW_MS).unwrap_err();
        assert!(
            matches!(err, GraphiteError::NonFinite { .. }),
            "{line}: {err:?}"
        );
        assert!(err.to_string().contains("not finite"), "{err}");
    }
}

#[test]
fn graphite_empty_path_is_refused() {
    for line in [";host=web01 1 1700000000", " 12.5 1700000000", "\t1 2"] {
        let err = graphite::parse_line(line, NOW_MS).unwrap_err();
        assert!(
            matches!(err, GraphiteError::EmptyPath { .. }),
            "{line:?}: {err:?}"
        );
    }
}

#[test]
fn graphite_empty_line_is_refused() {
    for line in ["", "\r\n", "   "] {
        assert_eq!(
            graphite::parse_line(line, NOW_MS),
            Err(GraphiteError::Empty),
            "{line:?}"
        );
    }
}

#[test]
fn graphite_bad_tags_are_refused_with_the_rule_broken() {
    let cases = [
        ("m;host 1 1", "name=value"),
        ("m;=web01 1 1", "tag name is empty"),
        ("m;ho!st=web01 1 1", "may not contain"),
        ("m;ho^st=web01 1 1", "may not contain"),
        ("m;host= 1 1", "tag value is empty"),
        ("m;host=~web01 1 1", "may not start with `~`"),
        ("m; 1 1", "name=value"),
        ("m;host=a;host=b 1 1", "more than once"),
        ("m;name=other 1 1", "reserved"),
    ];
    for (line, reason) in cases {
        let err = graphite::parse_line(line, NOW_MS).unwrap_err();
        assert!(
            matches!(err, GraphiteError::BadTag { .. }),
            "{line}: {err:?}"
        );
        assert!(err.to_string().contains(reason), "{line}: {err}");
    }
    // `~` is only forbidden at the start of a value.
    assert!(graphite::parse_line("m;host=web~01 1 1", NOW_MS).is_ok());
}

#[test]
fn graphite_bad_timestamps_are_refused() {
    for ts in [
        "yesterday",
        "-5",
        "1e300",
        "nan",
        "inf",
        "99999999999999999999",
    ] {
        let line = format!("app.requests 7 {ts}");
        let err = graphite::parse_line(&line, NOW_MS).unwrap_err();
        assert!(
            matches!(err, GraphiteError::BadTimestamp { .. }),
            "{line}: {err:?}"
        );
    }
}

#[test]
fn graphite_long_lines_are_refused_and_quoted_briefly() {
    let path = "a".repeat(MAX_LINE_BYTES);
    let line = format!("{path} 1 1700000000");
    let err = graphite::parse_line(&line, NOW_MS).unwrap_err();
    assert!(matches!(err, GraphiteError::TooLong { .. }), "{err:?}");
    assert!(err.to_string().len() < 300, "{err}");

    // Exactly at the limit (terminator excluded) is fine.
    let path = "a".repeat(MAX_LINE_BYTES - " 1 1700000000".len());
    let line = format!("{path} 1 1700000000\r\n");
    assert!(graphite::parse_line(&line, NOW_MS).is_ok());
}

#[test]
fn graphite_errors_quote_a_bounded_prefix_of_long_lines() {
    let line = format!("{} idle 1700000000", "é".repeat(1000));
    let message = graphite::parse_line(&line, NOW_MS).unwrap_err().to_string();
    assert!(message.contains('…'), "{message}");
    assert!(message.len() < 400, "{} bytes: {message}", message.len());
}

// ---------------------------------------------------------------- protobuf encoder

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_key(out: &mut Vec<u8>, field: u64, wire_type: u8) {
    put_varint(out, (field << 3) | u64::from(wire_type));
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_key(out, field, LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_fixed64(out: &mut Vec<u8>, field: u64, bits: u64) {
    put_key(out, field, FIXED64);
    out.extend_from_slice(&bits.to_le_bytes());
}

fn put_uint(out: &mut Vec<u8>, field: u64, value: u64) {
    put_key(out, field, VARINT);
    put_varint(out, value);
}

fn label(name: &str, value: &str) -> Vec<u8> {
    let mut out = Vec::new();
    put_bytes(&mut out, 1, name.as_bytes());
    put_bytes(&mut out, 2, value.as_bytes());
    out
}

fn sample_bits(bits: u64, timestamp_ms: i64) -> Vec<u8> {
    let mut out = Vec::new();
    put_fixed64(&mut out, 1, bits);
    put_uint(&mut out, 2, timestamp_ms as u64);
    out
}

fn series_bits(pairs: &[(&str, &str)], samples: &[(u64, i64)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in pairs {
        put_bytes(&mut out, 1, &label(name, value));
    }
    for &(bits, ts) in samples {
        put_bytes(&mut out, 2, &sample_bits(bits, ts));
    }
    out
}

fn series(pairs: &[(&str, &str)], samples: &[(f64, i64)]) -> Vec<u8> {
    let samples: Vec<(u64, i64)> = samples.iter().map(|&(v, t)| (v.to_bits(), t)).collect();
    series_bits(pairs, &samples)
}

fn request(all_series: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for one in all_series {
        put_bytes(&mut out, 1, one);
    }
    out
}

fn compress(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(raw)
        .expect("snappy compresses any input")
}

fn decode_raw(raw: &[u8]) -> Result<Decoded, RemoteWriteError> {
    remote_write::decode(&compress(raw), &Limits::default())
}

/// node_exporter-like request with two series, labels deliberately unsorted on the wire.
fn two_series_request() -> Vec<u8> {
    request(&[
        series(
            &[
                ("instance", "web01:9100"),
                ("__name__", "node_load1"),
                ("job", "node"),
            ],
            &[(0.42, 1_700_000_000_000), (0.57, 1_700_000_015_000)],
        ),
        series(
            &[
                ("__name__", "node_filesystem_avail_bytes"),
                ("mountpoint", "/"),
                ("instance", "web01:9100"),
            ],
            &[(1.25e9, 1_700_000_000_000)],
        ),
    ])
}

// ---------------------------------------------------------------- remote_write

#[test]
fn remote_write_decodes_names_labels_values_and_timestamps() {
    let decoded = decode_raw(&two_series_request()).expect("a valid request decodes");
    assert_eq!(decoded.rejected_non_finite, 0);
    let node = labels(&[("instance", "web01:9100"), ("job", "node")]);
    assert_eq!(
        decoded.points,
        vec![
            MetricPoint {
                name: "node_load1".into(),
                labels: node.clone(),
                value: 0.42,
                timestamp_ms: 1_700_000_000_000,
            },
            MetricPoint {
                name: "node_load1".into(),
                labels: node,
                value: 0.57,
                timestamp_ms: 1_700_000_015_000,
            },
            MetricPoint {
                name: "node_filesystem_avail_bytes".into(),
                labels: labels(&[("instance", "web01:9100"), ("mountpoint", "/")]),
                value: 1.25e9,
                timestamp_ms: 1_700_000_000_000,
            },
        ]
    );
}

#[test]
fn remote_write_negative_timestamps_and_utf8_labels_round_trip() {
    let raw = request(&[series(
        &[("__name__", "température"), ("site", "Zürich")],
        &[(-3.5, -1_000)],
    )]);
    let decoded = decode_raw(&raw).unwrap();
    assert_eq!(decoded.points[0].name, "température");
    assert_eq!(decoded.points[0].labels, labels(&[("site", "Zürich")]));
    assert_eq!(decoded.points[0].value, -3.5);
    assert_eq!(decoded.points[0].timestamp_ms, -1_000);
}

#[test]
fn remote_write_empty_request_has_no_points() {
    assert_eq!(decode_raw(&[]), Ok(Decoded::default()));
    // A series without samples yields nothing, but must still be well-formed.
    let raw = request(&[series(&[("__name__", "up")], &[])]);
    assert_eq!(decode_raw(&raw).unwrap().points, vec![]);
}

#[test]
fn remote_write_skips_unknown_fields_of_every_wire_type() {
    let mut lbl = label("__name__", "up");
    put_uint(&mut lbl, 7, 99);
    put_key(&mut lbl, 8, FIXED32);
    lbl.extend_from_slice(&[1, 2, 3, 4]);

    let mut sample = sample_bits(1f64.to_bits(), 1_700_000_000_000);
    put_fixed64(&mut sample, 9, 0xdead_beef);
    put_bytes(&mut sample, 10, b"future");

    // An exemplar (field 3) and a native histogram (field 4) in the series.
    let mut exemplar = Vec::new();
    put_bytes(&mut exemplar, 1, &label("trace_id", "abc123"));
    put_fixed64(&mut exemplar, 2, 2f64.to_bits());
    put_uint(&mut exemplar, 3, 1_700_000_000_000);
    let mut histogram = Vec::new();
    put_uint(&mut histogram, 1, 10);
    put_fixed64(&mut histogram, 3, 5f64.to_bits());

    let mut one = Vec::new();
    put_bytes(&mut one, 3, &exemplar);
    put_bytes(&mut one, 1, &lbl);
    put_bytes(&mut one, 4, &histogram);
    put_bytes(&mut one, 1, &label("job", "node"));
    put_bytes(&mut one, 2, &sample);
    put_uint(&mut one, 15, 1);

    // Metadata (field 3) before and after the series, plus an unknown 32-bit field.
    let mut metadata = Vec::new();
    put_uint(&mut metadata, 1, 1);
    put_bytes(&mut metadata, 2, b"up");
    put_bytes(&mut metadata, 4, b"1 if the target is reachable");
    let mut raw = Vec::new();
    put_bytes(&mut raw, 3, &metadata);
    put_bytes(&mut raw, 1, &one);
    put_bytes(&mut raw, 3, &metadata);
    put_key(&mut raw, 20, FIXED32);
    raw.extend_from_slice(&[0, 0, 0x80, 0x3f]);

    let decoded = decode_raw(&raw).expect("unknown fields are skipped");
    assert_eq!(
        decoded.points,
        vec![MetricPoint {
            name: "up".into(),
            labels: labels(&[("job", "node")]),
            value: 1.0,
            timestamp_ms: 1_700_000_000_000,
        }]
    );
}

#[test]
fn remote_write_staleness_markers_are_skipped_and_other_non_finite_values_counted() {
    let raw = request(&[series_bits(
        &[("__name__", "node_load1")],
        &[
            (1.0f64.to_bits(), 1),
            (STALE_NAN_BITS, 2),
            (f64::NAN.to_bits(), 3),
            (f64::INFINITY.to_bits(), 4),
            (f64::NEG_INFINITY.to_bits(), 5),
            (2.0f64.to_bits(), 6),
        ],
    )]);
    let decoded = decode_raw(&raw).unwrap();
    let kept: Vec<(f64, i64)> = decoded
        .points
        .iter()
        .map(|p| (p.value, p.timestamp_ms))
        .collect();
    assert_eq!(kept, [(1.0, 1), (2.0, 6)]);
    assert_eq!(decoded.rejected_non_finite, 3);
}

#[test]
fn remote_write_series_without_name_is_refused_by_index() {
    let raw = request(&[
        series(&[("__name__", "up")], &[(1.0, 1)]),
        series(&[("job", "node")], &[(1.0, 1)]),
    ]);
    let err = decode_raw(&raw).unwrap_err();
    assert_eq!(err, RemoteWriteError::MissingName { series: 1 });
    assert!(err.to_string().contains("timeseries[1]"), "{err}");
    // An empty `__name__` is no name at all.
    let raw = request(&[series(&[("__name__", "")], &[(1.0, 1)])]);
    assert_eq!(
        decode_raw(&raw),
        Err(RemoteWriteError::MissingName { series: 0 })
    );
}

#[test]
fn remote_write_label_rules() {
    // Empty value: the label is absent (Prometheus semantics).
    let raw = request(&[series(&[("__name__", "up"), ("zone", "")], &[(1.0, 1)])]);
    assert!(decode_raw(&raw).unwrap().points[0].labels.is_empty());

    let raw = request(&[series(
        &[("__name__", "up"), ("job", "a"), ("job", "b")],
        &[(1.0, 1)],
    )]);
    let err = decode_raw(&raw).unwrap_err();
    assert!(matches!(err, RemoteWriteError::BadLabels { series: 0, .. }));
    assert!(
        err.to_string().contains("`job` appears more than once"),
        "{err}"
    );

    let raw = request(&[series(&[("__name__", "up"), ("", "x")], &[(1.0, 1)])]);
    assert!(matches!(
        decode_raw(&raw),
        Err(RemoteWriteError::BadLabels { series: 0, .. })
    ));
}

#[test]
fn remote_write_truncated_protobuf_is_refused_at_every_offset() {
    // One top-level field, so no proper prefix is itself a complete message.
    let raw = request(&[series(
        &[("__name__", "node_load1"), ("instance", "web01:9100")],
        &[(0.42, 1_700_000_000_000), (-1.0, -5)],
    )]);
    for cut in 1..raw.len() {
        let result = decode_raw(&raw[..cut]);
        assert!(
            matches!(result, Err(RemoteWriteError::Malformed { .. })),
            "prefix of {cut}/{} bytes: {result:?}",
            raw.len()
        );
    }
}

#[test]
fn remote_write_truncated_snappy_body_is_refused_at_every_offset() {
    let body = compress(&two_series_request());
    for cut in 0..body.len() {
        let result = remote_write::decode(&body[..cut], &Limits::default());
        assert!(result.is_err(), "prefix of {cut}/{} bytes", body.len());
    }
    assert_eq!(
        remote_write::decode(&[], &Limits::default()),
        Err(RemoteWriteError::Empty)
    );
}

#[test]
fn remote_write_framed_snappy_is_refused() {
    use std::io::Write;
    let mut framed = snap::write::FrameEncoder::new(Vec::new());
    framed.write_all(&two_series_request()).unwrap();
    let body = framed.into_inner().unwrap();
    assert!(remote_write::decode(&body, &Limits::default()).is_err());
}

#[test]
fn remote_write_decompression_bomb_is_refused_before_decompressing() {
    // A snappy header claiming 1 GiB, followed by almost nothing.
    let mut body = Vec::new();
    put_varint(&mut body, 1 << 30);
    body.extend_from_slice(&[0x00, 0x00]);
    let err = remote_write::decode(&body, &Limits::default()).unwrap_err();
    assert_eq!(
        err,
        RemoteWriteError::TooLarge {
            len: 1 << 30,
            limit: 32 << 20
        }
    );

    // A genuine body just over a small limit is refused the same way.
    let raw = two_series_request();
    let limits = Limits {
        max_decompressed_bytes: raw.len() - 1,
        ..Limits::default()
    };
    assert!(matches!(
        remote_write::decode(&compress(&raw), &limits),
        Err(RemoteWriteError::TooLarge { .. })
    ));
    let limits = Limits {
        max_decompressed_bytes: raw.len(),
        ..Limits::default()
    };
    assert!(remote_write::decode(&compress(&raw), &limits).is_ok());
}

#[test]
fn remote_write_point_and_label_limits() {
    let raw = two_series_request();
    let limits = Limits {
        max_points: 2,
        ..Limits::default()
    };
    assert_eq!(
        remote_write::decode(&compress(&raw), &limits),
        Err(RemoteWriteError::TooManyPoints { limit: 2 })
    );
    let limits = Limits {
        max_points: 3,
        ..Limits::default()
    };
    assert_eq!(
        remote_write::decode(&compress(&raw), &limits)
            .unwrap()
            .points
            .len(),
        3
    );

    // One series with a 1 KiB label and many samples: small on the wire, large once each
    // point has its own copy of the labels.
    let big = "x".repeat(1024);
    let samples: Vec<(f64, i64)> = (0..100).map(|i| (1.0, i)).collect();
    let raw = request(&[series(&[("__name__", "up"), ("blob", &big)], &samples)]);
    let limits = Limits {
        max_label_bytes: 50 * 1024,
        ..Limits::default()
    };
    assert_eq!(
        remote_write::decode(&compress(&raw), &limits),
        Err(RemoteWriteError::TooMuchLabelData { limit: 50 * 1024 })
    );
}

#[test]
fn remote_write_wrong_wire_types_are_refused() {
    // Sample value sent as a varint instead of a double.
    let mut sample = Vec::new();
    put_uint(&mut sample, 1, 42);
    let mut one = series(&[("__name__", "up")], &[]);
    put_bytes(&mut one, 2, &sample);
    let err = decode_raw(&request(&[one])).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("timeseries[0].samples[0]"), "{message}");
    assert!(message.contains("`value`"), "{message}");
    assert!(message.contains("expected 64-bit"), "{message}");

    // Label name as a varint.
    let mut lbl = Vec::new();
    put_uint(&mut lbl, 1, 5);
    let mut one = Vec::new();
    put_bytes(&mut one, 1, &lbl);
    let err = decode_raw(&request(&[one])).unwrap_err();
    assert!(err.to_string().contains("timeseries[0].labels[0]"), "{err}");

    // Sample timestamp as a double.
    let mut sample = Vec::new();
    put_fixed64(&mut sample, 2, 7);
    let mut one = series(&[("__name__", "up")], &[]);
    put_bytes(&mut one, 2, &sample);
    assert!(matches!(
        decode_raw(&request(&[one])),
        Err(RemoteWriteError::Malformed { .. })
    ));

    // The timeseries field itself as a 64-bit value.
    let mut raw = Vec::new();
    put_fixed64(&mut raw, 1, 0);
    assert!(matches!(
        decode_raw(&raw),
        Err(RemoteWriteError::Malformed { .. })
    ));
}

#[test]
fn remote_write_invalid_utf8_is_refused_with_its_offset() {
    let mut lbl = Vec::new();
    put_bytes(&mut lbl, 1, b"__name__");
    put_bytes(&mut lbl, 2, &[b'u', 0xff, b'p']);
    let mut one = Vec::new();
    put_bytes(&mut one, 1, &lbl);
    let raw = request(&[one]);
    let bad_at = raw.iter().position(|&b| b == 0xff).unwrap();
    match decode_raw(&raw) {
        Err(RemoteWriteError::Malformed {
            offset, problem, ..
        }) => {
            assert_eq!(offset, bad_at);
            assert!(problem.contains("UTF-8"), "{problem}");
        }
        other => panic!("invalid UTF-8 must be refused, got {other:?}"),
    }
}

#[test]
fn remote_write_lengths_past_the_end_are_refused() {
    // Claims a 2^40-byte series in a 10-byte body: must not allocate or panic.
    let mut raw = Vec::new();
    put_key(&mut raw, 1, LEN);
    put_varint(&mut raw, 1 << 40);
    raw.extend_from_slice(&[0; 4]);
    let err = decode_raw(&raw).unwrap_err();
    assert!(err.to_string().contains("runs past the end"), "{err}");
    // And the largest possible length.
    let mut raw = Vec::new();
    put_key(&mut raw, 1, LEN);
    put_varint(&mut raw, u64::MAX);
    assert!(decode_raw(&raw).is_err());
}

// ---------------------------------------------------------------- random input

/// xorshift64: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn random_input_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let limits = Limits::default();
    let valid = two_series_request();
    // Pieces that steer random Graphite lines into the interesting branches.
    let pieces = [
        "a.b",
        " ",
        ";",
        "=",
        "~",
        "!",
        "^",
        "1",
        "-1",
        ".5",
        "e9",
        "nan",
        "inf",
        "é",
        "\r",
        "\t",
        "1700000000",
        "host",
        "name",
    ];

    for _ in 0..2_000 {
        // Arbitrary bytes, as a body and as a line.
        let noise = rng.bytes(64);
        let _ = remote_write::decode(&noise, &limits).map_err(|e| e.to_string());
        let _ = graphite::parse_line(&String::from_utf8_lossy(&noise), NOW_MS)
            .map_err(|e| e.to_string());

        // Validly compressed random protobuf, so the wire decoder itself gets exercised.
        let _ = decode_raw(&noise).map_err(|e| e.to_string());

        // A valid request with a few bytes flipped.
        let mut mutated = valid.clone();
        for _ in 0..=rng.below(3) {
            let at = rng.below(mutated.len());
            mutated[at] = rng.next() as u8;
        }
        let _ = decode_raw(&mutated).map_err(|e| e.to_string());

        // Lines stitched from meaningful pieces.
        let line: String = (0..rng.below(12))
            .map(|_| pieces[rng.below(pieces.len())])
            .collect();
        let _ = graphite::parse_line(&line, NOW_MS).map_err(|e| e.to_string());
    }
}
