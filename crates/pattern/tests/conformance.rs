//! Conformance suite for vigil's implementation of the AWS EventBridge event-pattern language.
//!
//! The authority for every expected value below is `shared/specs/event-patterns.md` ("the spec");
//! where the spec is silent, the expectation follows AWS's own rule engine (aws/event-ruler), which
//! the spec says wins on disagreement. Comments cite the spec line a case relies on.
//!
//! Every match case is checked four ways, all of which must agree with the expectation:
//!   1. `Pattern::from_value(..).matches(&event)`   (tree walk)
//!   2. `Pattern::matches_json(event_bytes)`        (byte scan of the event text exactly as written)
//!   3. `Matcher::matches_value` of ONE shared matcher holding every valid case's pattern at once
//!   4. `Matcher::matches_json` of that same shared matcher (one reused `MatchState`)
//!
//! On top of that, the shared matcher's answer for every event must equal the set of single
//! patterns that match that event (rules must not interfere with each other).
//!
//! Failures are collected and reported together, so one run shows every disagreement.
//!
//! Events written as `@relative/path` are read from `shared/fixtures/` (see `fixtures_dir`). A
//! missing fixtures directory is a test FAILURE, never a silent skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::Value;
use vigil_pattern::{MatchState, Matcher, Pattern};

// ---------------------------------------------------------------------------------------------
// The match table: (name, pattern JSON, event JSON or @fixture, expected)
// ---------------------------------------------------------------------------------------------

const CW_PATTERN: &str = r#"{"source":["aws.cloudwatch"],"detail-type":["CloudWatch Alarm State Change"],"detail":{"state":{"value":["ALARM"]},"previousState":{"value":["OK"]}}}"#;
const CW_OK_TO_ALARM: &str = "@events/cloudwatch-alarm-ok-to-alarm.json";
const CW_ALARM_TO_OK: &str = "@events/cloudwatch-alarm-alarm-to-ok.json";
const CW_OK_TO_INSUFFICIENT: &str = "@events/cloudwatch-alarm-ok-to-insufficient-data.json";
const SNS_ALARM: &str = "@events/sns-notification-cloudwatch-alarm.json";
const ALERTMANAGER: &str = "@events/alertmanager-webhook-v4.json";
const Q_STATUS: &str = "@patterns/quamina-testdata/status.json";
const Q_CL0: &str = "@patterns/quamina-testdata/cl-sample-0";
const Q_CL1: &str = "@patterns/quamina-testdata/cl-sample-1";
const Q_CL2: &str = "@patterns/quamina-testdata/cl-sample-2";

type Case = (&'static str, &'static str, &'static str, bool);

#[rustfmt::skip]
const CASES: &[Case] = &[
    // ---- exact strings (spec: "exact string | Byte-exact and case-sensitive") -----------------
    ("exact/string", r#"{"source":["aws.ec2"]}"#, r#"{"source":"aws.ec2"}"#, true),
    ("exact/string-case-sensitive", r#"{"source":["aws.ec2"]}"#, r#"{"source":"AWS.EC2"}"#, false),
    ("exact/string-no-partial", r#"{"source":["aws.ec2"]}"#, r#"{"source":"aws.ec2x"}"#, false),
    ("exact/string-no-substring", r#"{"source":["ec2"]}"#, r#"{"source":"aws.ec2"}"#, false),
    ("exact/missing-field", r#"{"source":["aws.ec2"]}"#, r#"{"detail-type":"aws.ec2"}"#, false),
    ("exact/one-of-list", r#"{"state":["pending","running"]}"#, r#"{"state":"running"}"#, true),
    ("exact/none-of-list", r#"{"state":["pending","running"]}"#, r#"{"state":"stopped"}"#, false),
    // spec: "Fields are ANDed."
    ("exact/fields-anded-fail", r#"{"source":["aws.ec2"],"detail-type":["EC2 Instance State-change Notification"]}"#, r#"{"source":"aws.ec2","detail-type":"Other"}"#, false),
    ("exact/fields-anded-ok", r#"{"source":["aws.ec2"],"detail-type":["EC2 Instance State-change Notification"]}"#, r#"{"source":"aws.ec2","detail-type":"EC2 Instance State-change Notification"}"#, true),
    // spec: "Fields that the pattern does not mention are ignored."
    ("exact/extra-event-fields-ignored", r#"{"source":["aws.ec2"]}"#, r#"{"account":"1","source":"aws.ec2","detail":{"x":[1,2,{"y":null}]}}"#, true),
    // spec: "Key names are case-sensitive."
    ("exact/key-case-sensitive", r#"{"Source":["aws.ec2"]}"#, r#"{"source":"aws.ec2"}"#, false),
    ("exact/escaped-quote", r#"{"msg":["say \"hi\""]}"#, r#"{"msg":"say \"hi\""}"#, true),
    ("exact/escaped-backslash", r#"{"path":["C:\\temp"]}"#, r#"{"path":"C:\\temp"}"#, true),
    ("exact/escaped-slash-in-event", r#"{"url":["a/b"]}"#, r#"{"url":"a\/b"}"#, true),
    ("exact/unicode-escape-in-event", r#"{"city":["東京"]}"#, r#"{"city":"\u6771\u4eac"}"#, true),
    ("exact/unicode-escape-in-pattern", r#"{"city":["\u6771\u4eac"]}"#, r#"{"city":"東京"}"#, true),
    ("exact/escaped-key-in-event", r#"{"detail":{"x":["1"]}}"#, r#"{"d\u0065tail":{"x":"1"}}"#, true),
    ("exact/tab-escape", r#"{"s":["a\tb"]}"#, r#"{"s":"a\u0009b"}"#, true),
    // leaves only: a value pattern never matches an object, and a nested pattern never a scalar
    ("exact/string-vs-object", r#"{"detail":["x"]}"#, r#"{"detail":{"a":"x"}}"#, false),
    ("exact/object-pattern-vs-scalar", r#"{"detail":{"state":["x"]}}"#, r#"{"detail":"x"}"#, false),
    // spec: "Strings inside strings are opaque."
    ("exact/string-inside-string-opaque", r#"{"detail":{"k":["v"]}}"#, r#"{"detail":"{\"k\":\"v\"}"}"#, false),
    ("exact/string-holding-json-matches-as-string", r#"{"detail":["{\"k\":\"v\"}"]}"#, r#"{"detail":"{\"k\":\"v\"}"}"#, true),

    // ---- null / "" / "null" / booleans (spec: "Null vs empty string", "Type-strict matching") --
    ("null/matches-null", r#"{"r":[null]}"#, r#"{"r":null}"#, true),
    ("null/not-string-null", r#"{"r":[null]}"#, r#"{"r":"null"}"#, false),
    ("null/not-empty-string", r#"{"r":[null]}"#, r#"{"r":""}"#, false),
    ("null/not-missing", r#"{"r":[null]}"#, r#"{"other":1}"#, false),
    ("null/not-empty-array", r#"{"r":[null]}"#, r#"{"r":[]}"#, false),
    ("null/array-containing-null", r#"{"r":[null]}"#, r#"{"r":["a",null]}"#, true),
    ("null/not-false", r#"{"r":[null]}"#, r#"{"r":false}"#, false),
    ("null/responseElements", r#"{"detail":{"responseElements":[null]}}"#, r#"{"detail":{"eventName":"X","responseElements":null}}"#, true),
    ("empty-string/matches-empty", r#"{"r":[""]}"#, r#"{"r":""}"#, true),
    ("empty-string/not-null", r#"{"r":[""]}"#, r#"{"r":null}"#, false),
    ("empty-string/not-space", r#"{"r":[""]}"#, r#"{"r":" "}"#, false),
    ("empty-string/not-missing", r#"{"r":[""]}"#, r#"{}"#, false),
    ("string-null/not-json-null", r#"{"r":["null"]}"#, r#"{"r":null}"#, false),
    ("string-null/matches-string", r#"{"r":["null"]}"#, r#"{"r":"null"}"#, true),
    ("bool/true", r#"{"b":[true]}"#, r#"{"b":true}"#, true),
    ("bool/true-vs-string", r#"{"b":[true]}"#, r#"{"b":"true"}"#, false),
    ("bool/string-true-vs-true", r#"{"b":["true"]}"#, r#"{"b":true}"#, false),
    ("bool/true-vs-1", r#"{"b":[true]}"#, r#"{"b":1}"#, false),
    ("bool/false", r#"{"b":[false]}"#, r#"{"b":false}"#, true),
    ("bool/false-vs-0", r#"{"b":[false]}"#, r#"{"b":0}"#, false),
    ("bool/false-vs-null", r#"{"b":[false]}"#, r#"{"b":null}"#, false),
    ("bool/false-vs-empty-string", r#"{"b":[false]}"#, r#"{"b":""}"#, false),
    ("bool/false-vs-true", r#"{"b":[false]}"#, r#"{"b":true}"#, false),
    ("bool/false-vs-string-false", r#"{"b":[false]}"#, r#"{"b":"false"}"#, false),

    // ---- numbers (spec: "Numeric equality: 300 == 300.0 == 3e2"; "numbers compare by value") ---
    ("num/int", r#"{"x":[300]}"#, r#"{"x":300}"#, true),
    ("num/300.0", r#"{"x":[300]}"#, r#"{"x":300.0}"#, true),
    ("num/3e2", r#"{"x":[300]}"#, r#"{"x":3e2}"#, true),
    ("num/3.0e2", r#"{"x":[300]}"#, r#"{"x":3.0e2}"#, true),
    ("num/3E+2", r#"{"x":[300]}"#, r#"{"x":3E+2}"#, true),
    ("num/30000e-2", r#"{"x":[300]}"#, r#"{"x":30000e-2}"#, true),
    ("num/pattern-3e2", r#"{"x":[3e2]}"#, r#"{"x":300}"#, true),
    ("num/pattern-300.0", r#"{"x":[300.0]}"#, r#"{"x":300}"#, true),
    ("num/pattern-3.0e2-event-300.00", r#"{"x":[3.0e2]}"#, r#"{"x":300.00}"#, true),
    ("num/string-event", r#"{"x":[300]}"#, r#"{"x":"300"}"#, false),
    ("num/string-pattern", r#"{"x":["300"]}"#, r#"{"x":300}"#, false),
    ("num/different", r#"{"x":[300]}"#, r#"{"x":301}"#, false),
    ("num/neg-zero-event", r#"{"x":[0]}"#, r#"{"x":-0}"#, true),
    ("num/neg-zero-pattern", r#"{"x":[-0]}"#, r#"{"x":0}"#, true),
    ("num/neg-zero-float-event", r#"{"x":[0]}"#, r#"{"x":-0.0}"#, true),
    ("num/negative", r#"{"x":[-5]}"#, r#"{"x":-5.0}"#, true),
    ("num/negative-vs-positive", r#"{"x":[-5]}"#, r#"{"x":5}"#, false),
    ("num/fraction", r#"{"x":[1.5]}"#, r#"{"x":1.50}"#, true),
    ("num/fraction-exp", r#"{"x":[0.015]}"#, r#"{"x":1.5e-2}"#, true),
    ("num/tenth", r#"{"x":[0.1]}"#, r#"{"x":0.1}"#, true),
    ("num/account-number", r#"{"account":[123456789012]}"#, r#"{"account":123456789012}"#, true),
    ("num/account-string-vs-number", r#"{"account":["123456789012"]}"#, r#"{"account":123456789012}"#, false),
    ("num/in-event-array", r#"{"x":[300]}"#, r#"{"x":[1,2,3e2]}"#, true),
    ("num/vs-bool", r#"{"x":[1]}"#, r#"{"x":true}"#, false),

    // ---- prefix (spec: "Strings only. {\"prefix\":\"\"} matches any string.") ------------------
    ("prefix/match", r#"{"time":[{"prefix":"2017-10-02"}]}"#, r#"{"time":"2017-10-02T10:00:00Z"}"#, true),
    ("prefix/no-match", r#"{"time":[{"prefix":"2017-10-02"}]}"#, r#"{"time":"2017-10-03T10:00:00Z"}"#, false),
    ("prefix/whole-string", r#"{"time":[{"prefix":"2017-10-02"}]}"#, r#"{"time":"2017-10-02"}"#, true),
    ("prefix/longer-than-value", r#"{"time":[{"prefix":"2017-10-02"}]}"#, r#"{"time":"2017-10"}"#, false),
    ("prefix/case-sensitive", r#"{"name":[{"prefix":"Eve"}]}"#, r#"{"name":"event"}"#, false),
    ("prefix/number-event", r#"{"code":[{"prefix":"20"}]}"#, r#"{"code":200}"#, false),
    ("prefix/empty-any-string", r#"{"name":[{"prefix":""}]}"#, r#"{"name":"anything"}"#, true),
    ("prefix/empty-matches-empty", r#"{"name":[{"prefix":""}]}"#, r#"{"name":""}"#, true),
    ("prefix/empty-not-number", r#"{"name":[{"prefix":""}]}"#, r#"{"name":5}"#, false),
    ("prefix/empty-not-null", r#"{"name":[{"prefix":""}]}"#, r#"{"name":null}"#, false),
    ("prefix/empty-not-missing", r#"{"name":[{"prefix":""}]}"#, r#"{}"#, false),
    ("prefix/event-array-any", r#"{"tags":[{"prefix":"ad"}]}"#, r#"{"tags":["user","admin"]}"#, true),
    ("prefix/ignore-case", r#"{"service":[{"prefix":{"equals-ignore-case":"EventB"}}]}"#, r#"{"service":"EvEnTbridge"}"#, true),
    ("prefix/ignore-case-too-short", r#"{"service":[{"prefix":{"equals-ignore-case":"EventB"}}]}"#, r#"{"service":"Event"}"#, false),
    ("prefix/ignore-case-non-ascii", r#"{"w":[{"prefix":{"equals-ignore-case":"ÉC"}}]}"#, r#"{"w":"école"}"#, true),
    ("prefix/cjk", r#"{"city":[{"prefix":"東"}]}"#, r#"{"city":"東京"}"#, true),
    ("prefix/cjk-not-prefix", r#"{"city":[{"prefix":"京"}]}"#, r#"{"city":"東京"}"#, false),

    // ---- suffix (spec: "Strings only and case-sensitive: \".PNG\" does not match \".png\"") ----
    ("suffix/match", r#"{"FileName":[{"suffix":".png"}]}"#, r#"{"FileName":"image.png"}"#, true),
    ("suffix/case-sensitive", r#"{"FileName":[{"suffix":".png"}]}"#, r#"{"FileName":"image.PNG"}"#, false),
    ("suffix/not-at-end", r#"{"FileName":[{"suffix":".png"}]}"#, r#"{"FileName":"image.png.txt"}"#, false),
    ("suffix/number-event", r#"{"v":[{"suffix":"0"}]}"#, r#"{"v":100}"#, false),
    ("suffix/empty-any-string", r#"{"v":[{"suffix":""}]}"#, r#"{"v":"x"}"#, true),
    ("suffix/ignore-case", r#"{"FileName":[{"suffix":{"equals-ignore-case":".png"}}]}"#, r#"{"FileName":"image.PNG"}"#, true),
    ("suffix/ignore-case-no", r#"{"FileName":[{"suffix":{"equals-ignore-case":".png"}}]}"#, r#"{"FileName":"image.jpg"}"#, false),
    ("suffix/emoji", r#"{"m":[{"suffix":"🚀"}]}"#, r#"{"m":"launch 🚀"}"#, true),

    // ---- equals-ignore-case (spec: "Strings only. \"\" matches only the empty string.
    //      Use Unicode simple case folding.") ----------------------------------------------------
    ("eic/upper", r#"{"Name":[{"equals-ignore-case":"alice"}]}"#, r#"{"Name":"ALICE"}"#, true),
    ("eic/mixed", r#"{"Name":[{"equals-ignore-case":"alice"}]}"#, r#"{"Name":"aLiCe"}"#, true),
    ("eic/longer", r#"{"Name":[{"equals-ignore-case":"alice"}]}"#, r#"{"Name":"alice2"}"#, false),
    ("eic/not-prefix", r#"{"Name":[{"equals-ignore-case":"ab"}]}"#, r#"{"Name":"ABC"}"#, false),
    ("eic/empty-matches-empty", r#"{"Name":[{"equals-ignore-case":""}]}"#, r#"{"Name":""}"#, true),
    ("eic/empty-not-nonempty", r#"{"Name":[{"equals-ignore-case":""}]}"#, r#"{"Name":"a"}"#, false),
    ("eic/french", r#"{"w":[{"equals-ignore-case":"ÉCOLE"}]}"#, r#"{"w":"école"}"#, true),
    ("eic/cyrillic", r#"{"w":[{"equals-ignore-case":"ПРИВЕТ"}]}"#, r#"{"w":"привет"}"#, true),
    ("eic/greek", r#"{"w":[{"equals-ignore-case":"ΑΘΗΝΑ"}]}"#, r#"{"w":"αθηνα"}"#, true),
    ("eic/number-event", r#"{"w":[{"equals-ignore-case":"5"}]}"#, r#"{"w":5}"#, false),

    // ---- wildcard (spec: "`*` matches 0 or more characters. `\*` is a literal `*` and `\\` a
    //      literal `\` ... `\"\"` matches only the empty string.") --------------------------------
    ("wc/eventbus-arn", r#"{"EventBusArn":[{"wildcard":"arn:aws:events:us-east-1:*:event-bus/*"}]}"#, r#"{"EventBusArn":"arn:aws:events:us-east-1:123456789012:event-bus/default"}"#, true),
    ("wc/eventbus-arn-other-region", r#"{"EventBusArn":[{"wildcard":"arn:aws:events:us-east-1:*:event-bus/*"}]}"#, r#"{"EventBusArn":"arn:aws:events:us-west-2:123456789012:event-bus/default"}"#, false),
    ("wc/leading", r#"{"f":[{"wildcard":"*.png"}]}"#, r#"{"f":"dir/a.png"}"#, true),
    ("wc/leading-zero-chars", r#"{"f":[{"wildcard":"*.png"}]}"#, r#"{"f":".png"}"#, true),
    ("wc/leading-no", r#"{"f":[{"wildcard":"*.png"}]}"#, r#"{"f":"a.png.bak"}"#, false),
    ("wc/trailing", r#"{"f":[{"wildcard":"img-*"}]}"#, r#"{"f":"img-001"}"#, true),
    ("wc/trailing-no", r#"{"f":[{"wildcard":"img-*"}]}"#, r#"{"f":"im-001"}"#, false),
    ("wc/middle", r#"{"f":[{"wildcard":"a*c"}]}"#, r#"{"f":"abbbc"}"#, true),
    ("wc/middle-zero-chars", r#"{"f":[{"wildcard":"a*c"}]}"#, r#"{"f":"ac"}"#, true),
    ("wc/middle-no", r#"{"f":[{"wildcard":"a*c"}]}"#, r#"{"f":"acb"}"#, false),
    ("wc/star-only-empty", r#"{"f":[{"wildcard":"*"}]}"#, r#"{"f":""}"#, true),
    ("wc/star-only-any", r#"{"f":[{"wildcard":"*"}]}"#, r#"{"f":"xyz"}"#, true),
    ("wc/escaped-star-literal", r#"{"f":[{"wildcard":"a\\*b"}]}"#, r#"{"f":"a*b"}"#, true),
    ("wc/escaped-star-not-wild", r#"{"f":[{"wildcard":"a\\*b"}]}"#, r#"{"f":"axb"}"#, false),
    ("wc/escaped-backslash", r#"{"f":[{"wildcard":"a\\\\b"}]}"#, r#"{"f":"a\\b"}"#, true),
    ("wc/escaped-backslash-no", r#"{"f":[{"wildcard":"a\\\\b"}]}"#, r#"{"f":"a\\\\b"}"#, false),
    ("wc/empty-matches-empty", r#"{"f":[{"wildcard":""}]}"#, r#"{"f":""}"#, true),
    ("wc/empty-not-nonempty", r#"{"f":[{"wildcard":""}]}"#, r#"{"f":"x"}"#, false),
    ("wc/case-sensitive", r#"{"f":[{"wildcard":"A*"}]}"#, r#"{"f":"abc"}"#, false),
    ("wc/no-star-is-exact", r#"{"f":[{"wildcard":"abc"}]}"#, r#"{"f":"abc"}"#, true),
    ("wc/no-star-not-prefix", r#"{"f":[{"wildcard":"abc"}]}"#, r#"{"f":"abcd"}"#, false),
    ("wc/multi", r#"{"f":[{"wildcard":"*/lib/*.so"}]}"#, r#"{"f":"/usr/lib/libc.so"}"#, true),
    ("wc/cjk", r#"{"f":[{"wildcard":"東*"}]}"#, r#"{"f":"東京"}"#, true),
    ("wc/backtrack-leading", r#"{"f":[{"wildcard":"*ab"}]}"#, r#"{"f":"aab"}"#, true),
    ("wc/backtrack-middle", r#"{"f":[{"wildcard":"a*ab*c"}]}"#, r#"{"f":"aabxabyc"}"#, true),

    // ---- anything-but (spec: "It matches when the event value is null. It does NOT match when
    //      the field is missing.") ---------------------------------------------------------------
    ("ab/string-other", r#"{"state":[{"anything-but":"initializing"}]}"#, r#"{"state":"running"}"#, true),
    ("ab/string-same", r#"{"state":[{"anything-but":"initializing"}]}"#, r#"{"state":"initializing"}"#, false),
    ("ab/string-null-value", r#"{"state":[{"anything-but":"initializing"}]}"#, r#"{"state":null}"#, true),
    ("ab/string-missing", r#"{"state":[{"anything-but":"initializing"}]}"#, r#"{"other":"running"}"#, false),
    ("ab/string-vs-number", r#"{"state":[{"anything-but":"initializing"}]}"#, r#"{"state":5}"#, true),
    ("ab/string-case-sensitive", r#"{"state":[{"anything-but":"initializing"}]}"#, r#"{"state":"Initializing"}"#, true),
    ("ab/number-other", r#"{"x":[{"anything-but":123}]}"#, r#"{"x":124}"#, true),
    ("ab/number-same", r#"{"x":[{"anything-but":123}]}"#, r#"{"x":123}"#, false),
    ("ab/number-same-other-form", r#"{"x":[{"anything-but":123}]}"#, r#"{"x":1.23e2}"#, false),
    ("ab/number-vs-string", r#"{"x":[{"anything-but":123}]}"#, r#"{"x":"123"}"#, true),
    ("ab/number-null-value", r#"{"x":[{"anything-but":123}]}"#, r#"{"x":null}"#, true),
    ("ab/list-strings-other", r#"{"state":[{"anything-but":["stopped","overloaded"]}]}"#, r#"{"state":"running"}"#, true),
    ("ab/list-strings-in", r#"{"state":[{"anything-but":["stopped","overloaded"]}]}"#, r#"{"state":"stopped"}"#, false),
    ("ab/list-numbers-other", r#"{"x":[{"anything-but":[100,200,300]}]}"#, r#"{"x":150}"#, true),
    ("ab/list-numbers-in", r#"{"x":[{"anything-but":[100,200,300]}]}"#, r#"{"x":200.0}"#, false),
    ("ab/list-numbers-in-exp", r#"{"x":[{"anything-but":[100,200,300]}]}"#, r#"{"x":3e2}"#, false),
    // spec: event arrays match when any element matches
    ("ab/event-array-some-other", r#"{"state":[{"anything-but":"initializing"}]}"#, r#"{"state":["initializing","running"]}"#, true),
    ("ab/event-array-all-excluded", r#"{"state":[{"anything-but":"initializing"}]}"#, r#"{"state":["initializing"]}"#, false),
    ("ab/event-empty-array", r#"{"state":[{"anything-but":"initializing"}]}"#, r#"{"state":[]}"#, false),
    // spec: "Comparison operators work only on leaves"
    ("ab/event-object", r#"{"state":[{"anything-but":"initializing"}]}"#, r#"{"state":{"a":"b"}}"#, false),
    ("ab/prefix-has", r#"{"state":[{"anything-but":{"prefix":"init"}}]}"#, r#"{"state":"initializing"}"#, false),
    ("ab/prefix-other", r#"{"state":[{"anything-but":{"prefix":"init"}}]}"#, r#"{"state":"running"}"#, true),
    ("ab/prefix-number", r#"{"state":[{"anything-but":{"prefix":"init"}}]}"#, r#"{"state":5}"#, true),
    ("ab/prefix-missing", r#"{"state":[{"anything-but":{"prefix":"init"}}]}"#, r#"{}"#, false),
    ("ab/prefix-list-in", r#"{"state":[{"anything-but":{"prefix":["init","error"]}}]}"#, r#"{"state":"error: x"}"#, false),
    ("ab/prefix-list-out", r#"{"state":[{"anything-but":{"prefix":["init","error"]}}]}"#, r#"{"state":"ok"}"#, true),
    ("ab/suffix-has", r#"{"f":[{"anything-but":{"suffix":".txt"}}]}"#, r#"{"f":"a.txt"}"#, false),
    ("ab/suffix-other", r#"{"f":[{"anything-but":{"suffix":".txt"}}]}"#, r#"{"f":"a.doc"}"#, true),
    ("ab/suffix-number", r#"{"f":[{"anything-but":{"suffix":".txt"}}]}"#, r#"{"f":7}"#, true),
    ("ab/suffix-list-in", r#"{"f":[{"anything-but":{"suffix":[".txt",".log"]}}]}"#, r#"{"f":"a.log"}"#, false),
    ("ab/eic-same", r#"{"state":[{"anything-but":{"equals-ignore-case":"Stopped"}}]}"#, r#"{"state":"STOPPED"}"#, false),
    ("ab/eic-other", r#"{"state":[{"anything-but":{"equals-ignore-case":"Stopped"}}]}"#, r#"{"state":"running"}"#, true),
    ("ab/eic-list-in", r#"{"state":[{"anything-but":{"equals-ignore-case":["Stopped","Overloaded"]}}]}"#, r#"{"state":"overloaded"}"#, false),
    ("ab/eic-list-out", r#"{"state":[{"anything-but":{"equals-ignore-case":["Stopped","Overloaded"]}}]}"#, r#"{"state":"ok"}"#, true),
    ("ab/wildcard-matches", r#"{"path":[{"anything-but":{"wildcard":"*/lib/*"}}]}"#, r#"{"path":"/usr/lib/x"}"#, false),
    ("ab/wildcard-other", r#"{"path":[{"anything-but":{"wildcard":"*/lib/*"}}]}"#, r#"{"path":"/usr/bin/x"}"#, true),
    ("ab/wildcard-number", r#"{"path":[{"anything-but":{"wildcard":"*/lib/*"}}]}"#, r#"{"path":5}"#, true),
    // spec: anything-but wildcard "\"\" is allowed and matches any non-empty string"
    ("ab/wildcard-empty-vs-nonempty", r#"{"path":[{"anything-but":{"wildcard":""}}]}"#, r#"{"path":"a"}"#, true),
    ("ab/wildcard-empty-vs-empty", r#"{"path":[{"anything-but":{"wildcard":""}}]}"#, r#"{"path":""}"#, false),
    ("ab/wildcard-list-in", r#"{"path":[{"anything-but":{"wildcard":["*.txt","*.log"]}}]}"#, r#"{"path":"a.log"}"#, false),
    ("ab/wildcard-list-out", r#"{"path":[{"anything-but":{"wildcard":["*.txt","*.log"]}}]}"#, r#"{"path":"a.csv"}"#, true),

    // ---- numeric (spec: "Operators are = < <= > >=. A range is one lower bound followed by one
    //      upper bound. Only JSON numbers match"; "Numbers are IEEE binary64 values") -------------
    ("n/gt", r#"{"c":[{"numeric":[">",0]}]}"#, r#"{"c":0.0001}"#, true),
    ("n/gt-boundary", r#"{"c":[{"numeric":[">",0]}]}"#, r#"{"c":0}"#, false),
    ("n/ge-boundary", r#"{"c":[{"numeric":[">=",0]}]}"#, r#"{"c":0}"#, true),
    ("n/ge-below", r#"{"c":[{"numeric":[">=",0]}]}"#, r#"{"c":-0.5}"#, false),
    ("n/lt", r#"{"c":[{"numeric":["<",5]}]}"#, r#"{"c":4.999}"#, true),
    ("n/lt-boundary", r#"{"c":[{"numeric":["<",5]}]}"#, r#"{"c":5}"#, false),
    ("n/le-boundary", r#"{"c":[{"numeric":["<=",5]}]}"#, r#"{"c":5}"#, true),
    ("n/le-above", r#"{"c":[{"numeric":["<=",5]}]}"#, r#"{"c":5.01}"#, false),
    ("n/eq", r#"{"c":[{"numeric":["=",100]}]}"#, r#"{"c":100.0}"#, true),
    ("n/eq-exp", r#"{"c":[{"numeric":["=",100]}]}"#, r#"{"c":1e2}"#, true),
    ("n/eq-no", r#"{"c":[{"numeric":["=",100]}]}"#, r#"{"c":100.5}"#, false),
    ("n/range-top-inclusive", r#"{"c":[{"numeric":[">",0,"<=",5]}]}"#, r#"{"c":5}"#, true),
    ("n/range-bottom-exclusive", r#"{"c":[{"numeric":[">",0,"<=",5]}]}"#, r#"{"c":0}"#, false),
    ("n/range-just-above", r#"{"c":[{"numeric":[">",0,"<=",5]}]}"#, r#"{"c":5.0000001}"#, false),
    ("n/range-inside", r#"{"c":[{"numeric":[">",0,"<=",5]}]}"#, r#"{"c":2.5}"#, true),
    ("n/range-negative", r#"{"c":[{"numeric":[">=",-10,"<",-5]}]}"#, r#"{"c":-7.5}"#, true),
    ("n/range-negative-top-exclusive", r#"{"c":[{"numeric":[">=",-10,"<",-5]}]}"#, r#"{"c":-5}"#, false),
    ("n/range-negative-bottom-inclusive", r#"{"c":[{"numeric":[">=",-10,"<",-5]}]}"#, r#"{"c":-10}"#, true),
    ("n/range-negative-below", r#"{"c":[{"numeric":[">=",-10,"<",-5]}]}"#, r#"{"c":-10.5}"#, false),
    ("n/eq-float", r#"{"x":[{"numeric":["=",3.018e2]}]}"#, r#"{"x":301.8}"#, true),
    ("n/string-value", r#"{"c":[{"numeric":[">",0]}]}"#, r#"{"c":"5"}"#, false),
    ("n/null-value", r#"{"c":[{"numeric":[">",0]}]}"#, r#"{"c":null}"#, false),
    ("n/bool-value", r#"{"c":[{"numeric":[">",0]}]}"#, r#"{"c":true}"#, false),
    ("n/missing", r#"{"c":[{"numeric":[">",0]}]}"#, r#"{}"#, false),
    ("n/beyond-old-5e9-limit", r#"{"c":[{"numeric":[">",5e9]}]}"#, r#"{"c":6e9}"#, true),
    ("n/seven-decimals", r#"{"c":[{"numeric":[">",0.1]}]}"#, r#"{"c":0.1000001}"#, true),
    ("n/neg-zero-not-below-zero", r#"{"c":[{"numeric":["<",0]}]}"#, r#"{"c":-0.0}"#, false),
    ("n/neg-zero-ge-zero", r#"{"c":[{"numeric":[">=",0]}]}"#, r#"{"c":-0.0}"#, true),
    ("n/large-negative", r#"{"c":[{"numeric":["<",-1e9]}]}"#, r#"{"c":-2e9}"#, true),
    ("n/event-array-any", r#"{"vals":[{"numeric":[">",0,"<",10]}]}"#, r#"{"vals":[100,5,200]}"#, true),
    ("n/event-array-none", r#"{"vals":[{"numeric":[">",0,"<",10]}]}"#, r#"{"vals":[100,50,200]}"#, false),

    // ---- exists (spec: "Leaf only. When the path ends at an object, exists:true does not match
    //      and exists:false does; exists:false also matches an absent path."; "exists:true on an
    //      empty array does not match; exists:false does.") ----------------------------------------
    ("ex/true-present", r#"{"detail":{"c-count":[{"exists":true}]}}"#, r#"{"detail":{"c-count":5}}"#, true),
    ("ex/true-missing", r#"{"detail":{"c-count":[{"exists":true}]}}"#, r#"{"detail":{"d-count":5}}"#, false),
    ("ex/true-null", r#"{"f":[{"exists":true}]}"#, r#"{"f":null}"#, true),
    ("ex/true-empty-string", r#"{"f":[{"exists":true}]}"#, r#"{"f":""}"#, true),
    ("ex/true-false-value", r#"{"f":[{"exists":true}]}"#, r#"{"f":false}"#, true),
    ("ex/true-object", r#"{"f":[{"exists":true}]}"#, r#"{"f":{"a":1}}"#, false),
    ("ex/true-empty-object", r#"{"f":[{"exists":true}]}"#, r#"{"f":{}}"#, false),
    ("ex/true-empty-array", r#"{"f":[{"exists":true}]}"#, r#"{"f":[]}"#, false),
    ("ex/true-array", r#"{"f":[{"exists":true}]}"#, r#"{"f":["a"]}"#, true),
    ("ex/false-missing", r#"{"f":[{"exists":false}]}"#, r#"{"g":1}"#, true),
    ("ex/false-null", r#"{"f":[{"exists":false}]}"#, r#"{"f":null}"#, false),
    ("ex/false-value", r#"{"f":[{"exists":false}]}"#, r#"{"f":"x"}"#, false),
    ("ex/false-object", r#"{"f":[{"exists":false}]}"#, r#"{"f":{"a":1}}"#, true),
    ("ex/false-empty-array", r#"{"f":[{"exists":false}]}"#, r#"{"f":[]}"#, true),
    ("ex/false-array", r#"{"f":[{"exists":false}]}"#, r#"{"f":["a"]}"#, false),
    ("ex/false-missing-parent", r#"{"detail":{"f":[{"exists":false}]}}"#, r#"{"source":"x"}"#, true),
    ("ex/false-with-other-field", r#"{"a":["1"],"b":[{"exists":false}]}"#, r#"{"a":"1"}"#, true),
    ("ex/false-with-other-field-present", r#"{"a":["1"],"b":[{"exists":false}]}"#, r#"{"a":"1","b":2}"#, false),
    ("ex/object-array-any-element", r#"{"automations":{"id":[{"exists":true}]}}"#, r#"{"automations":[{"x":1},{"id":"a1"}]}"#, true),
    ("ex/object-array-no-element", r#"{"automations":{"id":[{"exists":true}]}}"#, r#"{"automations":[{"x":1},{"y":2}]}"#, false),
    ("ex/path-ends-at-object", r#"{"detail":{"state":[{"exists":true}]}}"#, r#"{"detail":{"state":{"value":"ALARM"}}}"#, false),

    // ---- cidr (spec: "IPv4 and IPv6 (\"2001:db8:1234:1a00::/64\" matches the fully expanded form).
    //      \"10.0.0.256\" and non-strings do not match.") ------------------------------------------
    ("cidr/in", r#"{"sourceIPAddress":[{"cidr":"10.0.0.0/24"}]}"#, r#"{"sourceIPAddress":"10.0.0.255"}"#, true),
    ("cidr/network-address", r#"{"sourceIPAddress":[{"cidr":"10.0.0.0/24"}]}"#, r#"{"sourceIPAddress":"10.0.0.0"}"#, true),
    ("cidr/out", r#"{"sourceIPAddress":[{"cidr":"10.0.0.0/24"}]}"#, r#"{"sourceIPAddress":"10.0.1.0"}"#, false),
    ("cidr/octet-256", r#"{"sourceIPAddress":[{"cidr":"10.0.0.0/24"}]}"#, r#"{"sourceIPAddress":"10.0.0.256"}"#, false),
    ("cidr/number-event", r#"{"sourceIPAddress":[{"cidr":"10.0.0.0/24"}]}"#, r#"{"sourceIPAddress":10}"#, false),
    ("cidr/not-an-ip", r#"{"sourceIPAddress":[{"cidr":"10.0.0.0/24"}]}"#, r#"{"sourceIPAddress":"not-an-ip"}"#, false),
    ("cidr/slash8", r#"{"ip":[{"cidr":"10.0.0.0/8"}]}"#, r#"{"ip":"10.200.3.4"}"#, true),
    ("cidr/slash31-in", r#"{"ip":[{"cidr":"192.168.1.0/31"}]}"#, r#"{"ip":"192.168.1.1"}"#, true),
    ("cidr/slash31-out", r#"{"ip":[{"cidr":"192.168.1.0/31"}]}"#, r#"{"ip":"192.168.1.2"}"#, false),
    ("cidr/slash0-all", r#"{"ip":[{"cidr":"0.0.0.0/0"}]}"#, r#"{"ip":"255.255.255.255"}"#, true),
    ("cidr/v6-in", r#"{"ip":[{"cidr":"2001:db8:1234:1a00::/64"}]}"#, r#"{"ip":"2001:db8:1234:1a00::1"}"#, true),
    ("cidr/v6-expanded-event", r#"{"ip":[{"cidr":"2001:db8:1234:1a00::/64"}]}"#, r#"{"ip":"2001:0db8:1234:1a00:0000:0000:0000:0001"}"#, true),
    ("cidr/v6-uppercase-event", r#"{"ip":[{"cidr":"2001:db8:1234:1a00::/64"}]}"#, r#"{"ip":"2001:DB8:1234:1A00::9"}"#, true),
    ("cidr/v6-out", r#"{"ip":[{"cidr":"2001:db8:1234:1a00::/64"}]}"#, r#"{"ip":"2001:db8:1234:1a01::1"}"#, false),
    ("cidr/v6-expanded-pattern", r#"{"ip":[{"cidr":"2001:0db8:1234:1a00:0000:0000:0000:0000/64"}]}"#, r#"{"ip":"2001:db8:1234:1a00::5"}"#, true),
    ("cidr/v4-pattern-v6-event", r#"{"ip":[{"cidr":"10.0.0.0/8"}]}"#, r#"{"ip":"::1"}"#, false),
    ("cidr/event-array", r#"{"ip":[{"cidr":"10.0.0.0/24"}]}"#, r#"{"ip":["1.1.1.1","10.0.0.9"]}"#, true),

    // ---- $or (spec: "Can nest and sit at any level. It applies only if the value is an array of
    //      2 or more objects whose keys are not reserved operator names; otherwise `$or` is an
    //      ordinary field name.") ------------------------------------------------------------------
    ("or/top-first-branch", r#"{"source":["aws.cloudwatch"],"$or":[{"metricName":["CPU"]},{"namespace":["AWS/EC2"]}]}"#, r#"{"source":"aws.cloudwatch","metricName":"CPU"}"#, true),
    ("or/top-second-branch", r#"{"source":["aws.cloudwatch"],"$or":[{"metricName":["CPU"]},{"namespace":["AWS/EC2"]}]}"#, r#"{"source":"aws.cloudwatch","namespace":"AWS/EC2"}"#, true),
    ("or/top-neither", r#"{"source":["aws.cloudwatch"],"$or":[{"metricName":["CPU"]},{"namespace":["AWS/EC2"]}]}"#, r#"{"source":"aws.cloudwatch","metricName":"Mem","namespace":"AWS/RDS"}"#, false),
    ("or/top-and-still-applies", r#"{"source":["aws.cloudwatch"],"$or":[{"metricName":["CPU"]},{"namespace":["AWS/EC2"]}]}"#, r#"{"source":"aws.ec2","namespace":"AWS/EC2"}"#, false),
    ("or/in-detail-match", r#"{"detail":{"$or":[{"c":[{"numeric":[">",0]}]},{"d":[{"numeric":["<",10]}]}]}}"#, r#"{"detail":{"c":-5,"d":5}}"#, true),
    ("or/in-detail-neither", r#"{"detail":{"$or":[{"c":[{"numeric":[">",0]}]},{"d":[{"numeric":["<",10]}]}]}}"#, r#"{"detail":{"c":-5,"d":20}}"#, false),
    ("or/in-detail-wrong-level", r#"{"detail":{"$or":[{"c":[{"numeric":[">",0]}]},{"d":[{"numeric":["<",10]}]}]}}"#, r#"{"c":1,"d":1,"detail":{"e":1}}"#, false),
    ("or/nested-inner-branch", r#"{"$or":[{"a":["1"]},{"$or":[{"b":["2"]},{"c":["3"]}]}]}"#, r#"{"c":"3"}"#, true),
    ("or/nested-none", r#"{"$or":[{"a":["1"]},{"$or":[{"b":["2"]},{"c":["3"]}]}]}"#, r#"{"d":"4"}"#, false),
    ("or/branch-fields-anded-fail", r#"{"$or":[{"a":["1"],"b":["2"]},{"c":["3"]}]}"#, r#"{"a":"1"}"#, false),
    ("or/branch-fields-anded-ok", r#"{"$or":[{"a":["1"],"b":["2"]},{"c":["3"]}]}"#, r#"{"a":"1","b":"2"}"#, true),
    ("or/exists-false-branch-fail", r#"{"$or":[{"a":[{"exists":false}]},{"b":["x"]}]}"#, r#"{"a":1,"b":"y"}"#, false),
    ("or/exists-false-branch-absent", r#"{"$or":[{"a":[{"exists":false}]},{"b":["x"]}]}"#, r#"{"b":"y"}"#, true),
    ("or/three-branches-last", r#"{"$or":[{"n":[{"numeric":[">",100]}]},{"flag":[true]},{"s":[{"prefix":"x"}]}]}"#, r#"{"n":50,"flag":false,"s":"xyz"}"#, true),
    ("or/as-field-array-of-strings", r#"{"$or":["a","b"]}"#, r#"{"$or":"a"}"#, true),
    ("or/as-field-array-of-strings-no", r#"{"$or":["a","b"]}"#, r#"{"a":"a"}"#, false),
    ("or/as-field-operator-objects-prefix", r#"{"$or":[{"prefix":"a"},{"suffix":"z"}]}"#, r#"{"$or":"abc"}"#, true),
    ("or/as-field-operator-objects-suffix", r#"{"$or":[{"prefix":"a"},{"suffix":"z"}]}"#, r#"{"$or":"xyz"}"#, true),
    ("or/as-field-operator-objects-none", r#"{"$or":[{"prefix":"a"},{"suffix":"z"}]}"#, r#"{"$or":"mmm"}"#, false),
    ("or/as-field-object", r#"{"$or":{"x":["1"]}}"#, r#"{"$or":{"x":"1"}}"#, true),
    ("or/as-field-object-no-or-semantics", r#"{"$or":{"x":["1"]}}"#, r#"{"x":"1"}"#, false),

    // ---- arrays in events (spec: "Arrays in events") -------------------------------------------
    ("arr/resources-any-element", r#"{"resources":["arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f"]}"#, r#"{"resources":["arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:x","arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f"]}"#, true),
    ("arr/intersect", r#"{"t":["a","b"]}"#, r#"{"t":["c","b"]}"#, true),
    ("arr/disjoint", r#"{"t":["a","b"]}"#, r#"{"t":["c","d"]}"#, false),
    ("arr/empty-event-array", r#"{"t":["a","b"]}"#, r#"{"t":[]}"#, false),
    ("arr/crushed-objects", r#"{"employees":{"firstName":["Anna"]}}"#, r#"{"employees":[{"firstName":"John"},{"firstName":"Anna"}]}"#, true),
    ("arr/consistency-split", r#"{"employees":{"firstName":["Anna"],"lastName":["Jones"]}}"#, r#"{"employees":[{"firstName":"Anna","lastName":"Smith"},{"firstName":"John","lastName":"Jones"}]}"#, false),
    ("arr/consistency-same-element", r#"{"employees":{"firstName":["Anna"],"lastName":["Jones"]}}"#, r#"{"employees":[{"firstName":"John","lastName":"Smith"},{"firstName":"Anna","lastName":"Jones"}]}"#, true),
    ("arr/nested-object-arrays", r#"{"a":{"b":{"c":["x"]}}}"#, r#"{"a":[{"b":[{"c":"y"},{"c":"x"}]}]}"#, true),
    ("arr/consistency-nested-split", r#"{"a":{"b":{"x":["1"],"y":["2"]}}}"#, r#"{"a":[{"b":[{"x":"1"}]},{"b":[{"y":"2"}]}]}"#, false),
    ("arr/consistency-outer-same-inner-any", r#"{"a":{"k":["1"],"b":{"y":["2"]}}}"#, r#"{"a":[{"k":"1","b":[{"y":"3"},{"y":"2"}]}]}"#, true),
    ("arr/independent-arrays", r#"{"x":{"a":["1"]},"y":{"b":["2"]}}"#, r#"{"x":[{"a":"0"},{"a":"1"}],"y":[{"b":"2"}]}"#, true),
    ("arr/alertmanager-split", r#"{"alerts":{"status":["firing"],"labels":{"device":["/dev/sdb1"]}}}"#, ALERTMANAGER, false),
    ("arr/alertmanager-same-element", r#"{"alerts":{"status":["resolved"],"labels":{"device":["/dev/sdb1"]}}}"#, ALERTMANAGER, true),
    ("arr/alertmanager-prefix-same-element", r#"{"alerts":{"labels":{"instance":[{"prefix":"app-12."}],"mountpoint":["/"]}}}"#, ALERTMANAGER, true),
    ("arr/alertmanager-prefix-split", r#"{"alerts":{"labels":{"instance":[{"prefix":"app-12."}],"mountpoint":["/data"]}}}"#, ALERTMANAGER, false),
    ("arr/alertmanager-scalar-and-array", r#"{"status":["firing"],"alerts":{"labels":{"fstype":["xfs"]}}}"#, ALERTMANAGER, true),

    // ---- dots in keys (spec: "AWS confirms this both ways") ------------------------------------
    ("dot/pattern-dotted", r#"{"detail":{"state.status":["running"]}}"#, r#"{"detail":{"state":{"status":"running"}}}"#, true),
    ("dot/event-dotted", r#"{"detail":{"state":{"status":["running"]}}}"#, r#"{"detail":{"state.status":"running"}}"#, true),
    ("dot/top-level-dotted-pattern", r#"{"detail.state":["x"]}"#, r#"{"detail":{"state":"x"}}"#, true),
    ("dot/both-dotted", r#"{"a.b":["1"]}"#, r#"{"a.b":"1"}"#, true),
    ("dot/dotted-value-mismatch", r#"{"detail":{"state.status":["running"]}}"#, r#"{"detail":{"state":{"status":"stopped"}}}"#, false),

    // ---- nested multi-level fields -------------------------------------------------------------
    ("nest/five-levels", r#"{"a":{"b":{"c":{"d":{"e":["deep"]}}}}}"#, r#"{"a":{"b":{"c":{"d":{"e":"deep"}}}}}"#, true),
    ("nest/five-levels-wrong-depth", r#"{"a":{"b":{"c":{"d":{"e":["deep"]}}}}}"#, r#"{"a":{"b":{"c":{"e":"deep"}}}}"#, false),
    ("nest/multi-level-and", r#"{"source":["x"],"detail":{"a":["1"],"b":{"c":[2]}}}"#, r#"{"source":"x","detail":{"a":"1","b":{"c":2}}}"#, true),
    ("nest/multi-level-and-fail", r#"{"source":["x"],"detail":{"a":["1"],"b":{"c":[2]}}}"#, r#"{"source":"x","detail":{"a":"1","b":{"c":3}}}"#, false),
    ("nest/sibling-same-leaf-name", r#"{"a":{"x":["1"]},"b":{"x":["2"]}}"#, r#"{"a":{"x":"2"},"b":{"x":"1"}}"#, false),

    // ---- unicode (spec: "Unicode is literal, e.g. an emoji plus trailing space.") -------------
    ("uni/emoji-trailing-space", r#"{"m":["😀 "]}"#, r#"{"m":"😀 "}"#, true),
    ("uni/emoji-missing-trailing-space", r#"{"m":["😀 "]}"#, r#"{"m":"😀"}"#, false),
    ("uni/emoji-escaped-surrogates", r#"{"m":["😀"]}"#, r#"{"m":"\ud83d\ude00"}"#, true),
    ("uni/cjk", r#"{"city":["東京都"]}"#, r#"{"city":"東京都"}"#, true),
    ("uni/cjk-different", r#"{"city":["東京都"]}"#, r#"{"city":"京都"}"#, false),
    ("uni/precomposed-matches-precomposed", r#"{"w":["\u00e9"]}"#, r#"{"w":"é"}"#, true),
    ("uni/nfc-vs-nfd-byte-exact", r#"{"w":["\u00e9"]}"#, r#"{"w":"e\u0301"}"#, false),
    ("uni/unicode-key", r#"{"名前":["太郎"]}"#, r#"{"名前":"太郎"}"#, true),

    // ---- several operators in one array are ORed ----------------------------------------------
    ("multi/exists-or-prefix-present", r#"{"my_key":[{"exists":true},{"prefix":"IGNORED"}]}"#, r#"{"my_key":"anything"}"#, true),
    ("multi/exists-or-prefix-missing", r#"{"my_key":[{"exists":true},{"prefix":"IGNORED"}]}"#, r#"{"other":1}"#, false),
    ("multi/mixed-number", r#"{"v":[{"prefix":"a"},{"suffix":"z"},"exact",5]}"#, r#"{"v":5.0}"#, true),
    ("multi/mixed-suffix", r#"{"v":[{"prefix":"a"},{"suffix":"z"},"exact",5]}"#, r#"{"v":"xyz"}"#, true),
    ("multi/mixed-exact", r#"{"v":[{"prefix":"a"},{"suffix":"z"},"exact",5]}"#, r#"{"v":"exact"}"#, true),
    ("multi/mixed-none", r#"{"v":[{"prefix":"a"},{"suffix":"z"},"exact",5]}"#, r#"{"v":"mmm"}"#, false),
    ("multi/exists-false-or-value-absent", r#"{"k":[{"exists":false},"x"]}"#, r#"{}"#, true),
    ("multi/exists-false-or-value-x", r#"{"k":[{"exists":false},"x"]}"#, r#"{"k":"x"}"#, true),
    ("multi/exists-false-or-value-y", r#"{"k":[{"exists":false},"x"]}"#, r#"{"k":"y"}"#, false),
    ("multi/numeric-or-anything-but-excluded", r#"{"n":[{"numeric":[">",10]},{"anything-but":[1,2,3]}]}"#, r#"{"n":2}"#, false),
    ("multi/numeric-or-anything-but-ok", r#"{"n":[{"numeric":[">",10]},{"anything-but":[1,2,3]}]}"#, r#"{"n":4}"#, true),
    ("multi/null-or-empty", r#"{"r":[null,""]}"#, r#"{"r":""}"#, true),
    ("multi/cidr-or-exact", r#"{"ip":[{"cidr":"10.0.0.0/24"},"localhost"]}"#, r#"{"ip":"localhost"}"#, true),

    // ---- the byte scanner must read JSON exactly as a parser would ------------------------------
    ("bytes/whitespace-everywhere", r#"{"a":{"b":["x"]}}"#, "{ \"a\" :\n [ { \"b\" :\t\"x\" } ] \r\n}", true),
    ("bytes/backslash-before-quote", r#"{"s":["a\\"]}"#, r#"{"s":"a\\"}"#, true),
    ("bytes/escaped-quote-after-backslash", r#"{"s":["a\\\"b"]}"#, r#"{"s":"a\\\"b"}"#, true),
    ("bytes/brackets-inside-strings", r#"{"t":["x"]}"#, r#"{"s":"}]{[","t":"x"}"#, true),
    ("bytes/skip-tricky-subtree", r#"{"t":["x"]}"#, r#"{"skip":{"q":"he said \"}\"","arr":[1,{"z":"]"},[],{}],"n":-1.5e-3},"t":"x"}"#, true),
    ("bytes/skip-tricky-subtree-no", r#"{"t":["x"]}"#, r#"{"skip":{"t":"x","q":"\"t\":\"x\""},"t":"y"}"#, false),
    ("bytes/number-1.0E+0", r#"{"x":[1]}"#, r#"{"x":1.0E+0}"#, true),
    ("bytes/prefix-on-escaped-event", r#"{"city":[{"prefix":"東"}]}"#, r#"{"city":"\u6771\u4eac"}"#, true),
    ("bytes/prefix-escaped-in-pattern", r#"{"city":[{"prefix":"\u6771"}]}"#, r#"{"city":"東京"}"#, true),
    ("bytes/suffix-escaped-quote", r#"{"s":[{"suffix":"\""}]}"#, r#"{"s":"say \"hi\""}"#, true),
    ("bytes/eic-escaped-event", r#"{"w":[{"equals-ignore-case":"école"}]}"#, r#"{"w":"\u00c9COLE"}"#, true),
    ("bytes/wildcard-backslash-escaped-event", r#"{"f":[{"wildcard":"*\\\\*"}]}"#, r#"{"f":"a\\b"}"#, true),
    ("bytes/wildcard-backslash-absent", r#"{"f":[{"wildcard":"*\\\\*"}]}"#, r#"{"f":"a/b"}"#, false),
    ("bytes/cidr-escaped-event", r#"{"ip":[{"cidr":"10.0.0.0/24"}]}"#, r#"{"ip":"10.0.0.\u0039"}"#, true),

    // ---- more numbers: IEEE binary64 range, zero signs, types -----------------------------------
    ("n/huge-exponent", r#"{"c":[{"numeric":["<",1e300]}]}"#, r#"{"c":1e299}"#, true),
    ("n/tiny-positive", r#"{"c":[{"numeric":[">",0]}]}"#, r#"{"c":1e-300}"#, true),
    ("n/tiny-negative", r#"{"c":[{"numeric":[">=",0]}]}"#, r#"{"c":-1e-300}"#, false),
    ("n/eq-neg-zero-operand", r#"{"c":[{"numeric":["=",-0]}]}"#, r#"{"c":0}"#, true),
    ("ab/number-zero-vs-neg-zero", r#"{"x":[{"anything-but":0}]}"#, r#"{"x":-0.0}"#, false),
    ("ab/string-vs-bool", r#"{"x":[{"anything-but":"x"}]}"#, r#"{"x":true}"#, true),
    ("ab/number-list-vs-string", r#"{"x":[{"anything-but":[100,200]}]}"#, r#"{"x":"100"}"#, true),
    ("num/exp-string-event", r#"{"x":[100]}"#, r#"{"x":"1e2"}"#, false),
    ("prefix/event-array-mixed-types", r#"{"v":[{"prefix":"a"}]}"#, r#"{"v":[1,null,true,"abc"]}"#, true),
    ("null/array-of-nulls", r#"{"r":[null]}"#, r#"{"r":[null,null]}"#, true),
    ("dot/dotted-and-nested-both-present", r#"{"a":{"b":["1"]}}"#, r#"{"a.b":"1","a":{"b":"2"}}"#, true),

    // ---- more $or --------------------------------------------------------------------------------
    ("or/two-levels-both-satisfied", r#"{"$or":[{"a":["1"]},{"b":["2"]}],"detail":{"$or":[{"c":["3"]},{"d":["4"]}]}}"#, r#"{"b":"2","detail":{"c":"3"}}"#, true),
    ("or/two-levels-inner-unsatisfied", r#"{"$or":[{"a":["1"]},{"b":["2"]}],"detail":{"$or":[{"c":["3"]},{"d":["4"]}]}}"#, r#"{"b":"2","detail":{"e":"5"}}"#, false),
    ("or/branch-array-consistency-split", r#"{"$or":[{"x":{"a":["1"],"b":["2"]}},{"y":["z"]}]}"#, r#"{"x":[{"a":"1"},{"b":"2"}]}"#, false),
    ("or/branch-array-consistency-same", r#"{"$or":[{"x":{"a":["1"],"b":["2"]}},{"y":["z"]}]}"#, r#"{"x":[{"a":"1","b":"2"}]}"#, true),
    ("or/as-field-single-operator-object", r#"{"$or":[{"prefix":"a"}]}"#, r#"{"$or":"abc"}"#, true),

    // ---- the original design's CloudWatch pattern against real CloudWatch events ---------------
    ("cw/ok-to-alarm", CW_PATTERN, CW_OK_TO_ALARM, true),
    ("cw/alarm-to-ok", CW_PATTERN, CW_ALARM_TO_OK, false),
    ("cw/ok-to-insufficient-data", CW_PATTERN, CW_OK_TO_INSUFFICIENT, false),
    ("cw/inline-ok-to-alarm", CW_PATTERN, r#"{"version":"0","id":"1","detail-type":"CloudWatch Alarm State Change","source":"aws.cloudwatch","account":"123456789012","time":"2026-10-02T17:04:40Z","region":"us-east-1","resources":["arn:aws:cloudwatch:us-east-1:123456789012:alarm:X"],"detail":{"alarmName":"X","previousState":{"value":"OK","timestamp":"2026-10-01T13:56:40.985+0000"},"state":{"value":"ALARM","reasonData":"{\"version\":\"1.0\"}"}}}"#, true),
    ("cw/inline-alarm-to-ok", CW_PATTERN, r#"{"version":"0","id":"2","detail-type":"CloudWatch Alarm State Change","source":"aws.cloudwatch","account":"123456789012","time":"2026-10-02T17:14:40Z","region":"us-east-1","resources":["arn:aws:cloudwatch:us-east-1:123456789012:alarm:X"],"detail":{"alarmName":"X","previousState":{"value":"ALARM"},"state":{"value":"OK"}}}"#, false),
    ("cw/metric-through-array", r#"{"source":["aws.cloudwatch"],"detail":{"configuration":{"metrics":{"metricStat":{"metric":{"namespace":["AWS/EC2"],"name":["CPUUtilization"]}}}}}}"#, CW_OK_TO_ALARM, true),
    ("cw/metric-through-array-cwagent", r#"{"source":["aws.cloudwatch"],"detail":{"configuration":{"metrics":{"metricStat":{"metric":{"namespace":["AWS/EC2"],"name":["CPUUtilization"]}}}}}}"#, CW_OK_TO_INSUFFICIENT, false),
    ("cw/reasonData-opaque", r#"{"detail":{"state":{"reasonData":{"version":["1.0"]}}}}"#, CW_OK_TO_ALARM, false),
    ("cw/reasonData-prefix", r#"{"detail":{"state":{"reasonData":[{"prefix":"{\"version\":\"1.0\""}]}}}"#, CW_OK_TO_ALARM, true),
    ("cw/resources-suffix", r#"{"resources":[{"suffix":":alarm:ServerCpuTooHigh"}]}"#, CW_OK_TO_ALARM, true),
    ("cw/returnData-bool-in-array", r#"{"detail":{"configuration":{"metrics":{"returnData":[true]}}}}"#, CW_OK_TO_ALARM, true),
    ("cw/period-numeric-in-array", r#"{"detail":{"configuration":{"metrics":{"metricStat":{"period":[{"numeric":[">=",60,"<=",300]}]}}}}}"#, CW_OK_TO_ALARM, true),
    ("cw/time-prefix", r#"{"time":[{"prefix":"2026-10-02T17"}]}"#, CW_OK_TO_ALARM, true),
    ("cw/alarmName-anything-but-prefix", r#"{"detail":{"alarmName":[{"anything-but":{"prefix":"Server"}}]}}"#, CW_OK_TO_ALARM, false),
    ("cw/state-anything-but-ok", r#"{"source":["aws.cloudwatch"],"detail":{"state":{"value":[{"anything-but":"OK"}]}}}"#, CW_OK_TO_INSUFFICIENT, true),
    ("sns/message-is-opaque-string", r#"{"Type":["Notification"],"Message":{"NewStateValue":["ALARM"]}}"#, SNS_ALARM, false),
    ("sns/message-wildcard", r#"{"Type":["Notification"],"Message":[{"wildcard":"*\"NewStateValue\":\"ALARM\"*"}]}"#, SNS_ALARM, true),
    ("sns/subject-prefix-with-quote", r#"{"Subject":[{"prefix":"ALARM: \""}]}"#, SNS_ALARM, true),

    // ---- quamina test data (status.json, city lots) --------------------------------------------
    ("q/status-context-number", r#"{"context":{"user_id":[9034]}}"#, Q_STATUS, true),
    ("q/status-url-crushed", r#"{"payload":{"user":{"entities":{"url":{"urls":{"display_url":["twpf.jp/yuttari1998"]}}}}}}"#, Q_STATUS, true),
    ("q/status-description-urls-split", r#"{"payload":{"retweeted_status":{"user":{"entities":{"description":{"urls":{"url":["http://t.co/QMLJeFmfMT"],"display_url":["ask.fm/KATANA77"]}}}}}}}"#, Q_STATUS, false),
    ("q/status-description-urls-same", r#"{"payload":{"retweeted_status":{"user":{"entities":{"description":{"urls":{"url":["http://t.co/LU8T7vmU3h"],"display_url":["ask.fm/KATANA77"]}}}}}}}"#, Q_STATUS, true),
    ("q/status-null-field", r#"{"payload":{"in_reply_to_status_id":[null]}}"#, Q_STATUS, true),
    ("q/status-exists-false-on-null", r#"{"payload":{"geo":[{"exists":false}]}}"#, Q_STATUS, false),
    ("q/status-location-prefix-cjk", r#"{"payload":{"user":{"location":[{"prefix":"関西"}]}}}"#, Q_STATUS, true),
    ("q/status-text-wildcard", r#"{"payload":{"text":[{"wildcard":"RT @KATANA77: *"}]}}"#, Q_STATUS, true),
    ("q/status-retweet-count-range", r#"{"payload":{"retweet_count":[{"numeric":[">",80,"<",83]}]}}"#, Q_STATUS, true),
    ("q/status-hashtags", r##"{"payload":{"entities":{"hashtags":["#empty"]}}}"##, Q_STATUS, true),
    ("q/status-lang-ignore-case", r#"{"payload":{"metadata":{"iso_language_code":[{"equals-ignore-case":"JA"}]}}}"#, Q_STATUS, true),
    ("q/status-user-mentions-same-element", r#"{"payload":{"entities":{"user_mentions":{"screen_name":["KATANA77"],"id":[77915997]}}}}"#, Q_STATUS, true),
    ("q/cl0-street", r#"{"properties":{"STREET":["GREENWICH"]}}"#, Q_CL0, true),
    ("q/cl1-street", r#"{"properties":{"STREET":["GREENWICH"]}}"#, Q_CL1, false),
    ("q/cl0-coordinates-nested-arrays", r#"{"geometry":{"coordinates":[{"numeric":["<",-122.45]}]}}"#, Q_CL0, false),
    ("q/cl1-coordinates-nested-arrays", r#"{"geometry":{"coordinates":[{"numeric":["<",-122.45]}]}}"#, Q_CL1, true),
    ("q/cl2-type-and-block-prefix", r#"{"type":["Feature"],"properties":{"BLOCK_NUM":[{"prefix":"16"}]}}"#, Q_CL2, true),
];

// ---------------------------------------------------------------------------------------------
// The invalid-pattern table: (name, pattern JSON, substrings the error's Display must contain).
// The first substring is normally the field path (WHERE); the second, when the spec gives AWS's
// wording, the reason (WHY). Where the spec gives no wording only the path is required.
// ---------------------------------------------------------------------------------------------

type Invalid = (&'static str, &'static str, &'static [&'static str]);

#[rustfmt::skip]
const INVALID: &[Invalid] = &[
    // spec: "A bare scalar leaf is an error: {\"int\": 1} fails with `\"int\" must be an object or an array`"
    ("scalar-leaf-number", r#"{"detail":{"int":1}}"#, &["detail.int", r#""int" must be an object or an array"#]),
    ("scalar-leaf-string", r#"{"source":"aws.ec2"}"#, &["source", "must be an object or an array"]),
    ("scalar-leaf-null", r#"{"detail":{"x":null}}"#, &["detail.x", "must be an object or an array"]),
    ("scalar-leaf-bool", r#"{"flag":true}"#, &["flag", "must be an object or an array"]),
    // spec: "An empty array is an error: \"x\": [] fails with `Empty arrays are not allowed`"
    ("empty-array", r#"{"detail":{"state":[]}}"#, &["detail.state", "Empty arrays are not allowed"]),
    // spec: "Operators are lowercase. EXISTS and NUMERIC are errors (Unrecognized match type EXISTS)"
    ("uppercase-EXISTS", r#"{"detail":{"c":[{"EXISTS":true}]}}"#, &["detail.c", "Unrecognized match type EXISTS"]),
    ("uppercase-NUMERIC", r#"{"detail":{"n":[{"NUMERIC":[">",1]}]}}"#, &["detail.n", "Unrecognized match type NUMERIC"]),
    ("capitalised-Prefix", r#"{"detail":{"n":[{"Prefix":"a"}]}}"#, &["detail.n", "Unrecognized match type Prefix"]),
    ("unknown-operator", r#"{"detail":{"n":[{"contains":"x"}]}}"#, &["detail.n", "Unrecognized match type contains"]),
    // spec: prefix "A non-string operand is an error (prefix match pattern must be a string)"
    ("prefix-number", r#"{"time":[{"prefix":2017}]}"#, &["time", "prefix match pattern must be a string"]),
    ("prefix-null", r#"{"time":[{"prefix":null}]}"#, &["time", "prefix match pattern must be a string"]),
    ("prefix-unsupported-nested-op", r#"{"name":[{"prefix":{"wildcard":"a*"}}]}"#, &["name"]),
    ("suffix-number", r#"{"file":[{"suffix":5}]}"#, &["file"]),
    // spec: equals-ignore-case "A list operand is an error."
    ("eic-list", r#"{"name":[{"equals-ignore-case":["a","b"]}]}"#, &["name"]),
    ("eic-number", r#"{"name":[{"equals-ignore-case":5}]}"#, &["name"]),
    // spec: wildcard "`**` is an error (Consecutive wildcard characters at pos N)"; "any other \x is an error"
    ("wildcard-consecutive", r#"{"arn":[{"wildcard":"a**b"}]}"#, &["arn", "Consecutive wildcard characters at pos"]),
    ("wildcard-bad-escape", r#"{"arn":[{"wildcard":"a\\db"}]}"#, &["arn"]),
    ("wildcard-trailing-backslash", r#"{"arn":[{"wildcard":"ab\\"}]}"#, &["arn"]),
    ("wildcard-number", r#"{"arn":[{"wildcard":5}]}"#, &["arn"]),
    // spec: numeric "Operand errors: `Value of numeric must be an array.`, `Bad numeric range operator`,
    // `Value of < must be numeric`"; "A range is one lower bound followed by one upper bound."
    ("numeric-not-array", r#"{"count":[{"numeric":">"}]}"#, &["count", "Value of numeric must be an array."]),
    ("numeric-two-lower-bounds", r#"{"count":[{"numeric":[">",0,">",5]}]}"#, &["count", "Bad numeric range operator"]),
    ("numeric-lower-then-equals", r#"{"count":[{"numeric":[">",0,"=",5]}]}"#, &["count", "Bad numeric range operator"]),
    ("numeric-string-operand", r#"{"count":[{"numeric":["<","10"]}]}"#, &["count", "Value of < must be numeric"]),
    ("numeric-missing-upper-value", r#"{"count":[{"numeric":[">",1,"<"]}]}"#, &["count", "Value of < must be numeric"]),
    ("numeric-bool-operand", r#"{"count":[{"numeric":[">",true]}]}"#, &["count", "Value of > must be numeric"]),
    ("numeric-upper-then-lower", r#"{"count":[{"numeric":["<",10,">",1]}]}"#, &["count"]),
    ("numeric-unknown-operator", r#"{"count":[{"numeric":["!=",5]}]}"#, &["count"]),
    ("numeric-empty", r#"{"count":[{"numeric":[]}]}"#, &["count"]),
    ("numeric-too-many-terms", r#"{"count":[{"numeric":[">",0,"<",5,"<",6]}]}"#, &["count"]),
    // AWS (event-ruler Range): "Bottom must be less than top"
    ("numeric-bottom-above-top", r#"{"count":[{"numeric":[">",5,"<",1]}]}"#, &["count"]),
    // spec: cidr "Errors: `Malformed CIDR, one '/' required`, `Nonstandard IP address: …`,
    // `mask bits must be an integer`"
    ("cidr-no-slash", r#"{"ip":[{"cidr":"10.0.0.0"}]}"#, &["ip", "Malformed CIDR, one '/' required"]),
    ("cidr-two-slashes", r#"{"ip":[{"cidr":"10.0.0.0/8/9"}]}"#, &["ip", "Malformed CIDR, one '/' required"]),
    ("cidr-empty", r#"{"ip":[{"cidr":""}]}"#, &["ip", "Malformed CIDR, one '/' required"]),
    ("cidr-mask-not-integer", r#"{"ip":[{"cidr":"10.0.0.0/abc"}]}"#, &["ip", "mask bits must be an integer"]),
    ("cidr-not-an-ip", r#"{"ip":[{"cidr":"hello/24"}]}"#, &["ip", "Nonstandard IP address"]),
    ("cidr-octet-out-of-range", r#"{"ip":[{"cidr":"10.0.0.256/24"}]}"#, &["ip"]),
    ("cidr-negative-mask", r#"{"ip":[{"cidr":"10.0.0.0/-1"}]}"#, &["ip"]),
    // AWS (event-ruler CIDR.cidr): "IPv4 mask bits must be < 32" / "IPv6 mask bits must be < 128"
    ("cidr-v4-slash32", r#"{"ip":[{"cidr":"10.0.0.1/32"}]}"#, &["ip"]),
    ("cidr-v4-slash33", r#"{"ip":[{"cidr":"10.0.0.0/33"}]}"#, &["ip"]),
    ("cidr-v6-slash128", r#"{"ip":[{"cidr":"2001:db8::1/128"}]}"#, &["ip"]),
    ("cidr-number", r#"{"ip":[{"cidr":5}]}"#, &["ip"]),
    // spec: anything-but prefix/suffix "\"\" is an error (Null prefix/suffix not allowed)"
    ("ab-prefix-empty", r#"{"state":[{"anything-but":{"prefix":""}}]}"#, &["state", "Null prefix/suffix not allowed"]),
    ("ab-suffix-empty", r#"{"state":[{"anything-but":{"suffix":""}}]}"#, &["state", "Null prefix/suffix not allowed"]),
    ("ab-prefix-list-with-empty", r#"{"state":[{"anything-but":{"prefix":["a",""]}}]}"#, &["state"]),
    // spec: "{\"anything-but\":null} is an error."
    ("ab-null", r#"{"state":[{"anything-but":null}]}"#, &["state"]),
    ("ab-bool", r#"{"state":[{"anything-but":true}]}"#, &["state"]),
    // spec: "The list must be all strings or all numbers. null and booleans inside it are errors."
    ("ab-list-with-null", r#"{"state":[{"anything-but":["a",null]}]}"#, &["state"]),
    ("ab-list-with-bool", r#"{"state":[{"anything-but":[true]}]}"#, &["state"]),
    ("ab-list-mixed-types", r#"{"state":[{"anything-but":["a",1]}]}"#, &["state"]),
    ("ab-list-empty", r#"{"state":[{"anything-but":[]}]}"#, &["state"]),
    // spec: anything-but ignore case "Numbers in the list are errors. {anything-but:{prefix/suffix:
    // {equals-ignore-case:…}}} is an error."
    ("ab-eic-list-with-number", r#"{"state":[{"anything-but":{"equals-ignore-case":["a",1]}}]}"#, &["state"]),
    ("ab-prefix-eic", r#"{"state":[{"anything-but":{"prefix":{"equals-ignore-case":"a"}}}]}"#, &["state"]),
    ("ab-suffix-eic", r#"{"state":[{"anything-but":{"suffix":{"equals-ignore-case":"a"}}}]}"#, &["state"]),
    ("ab-wildcard-consecutive", r#"{"state":[{"anything-but":{"wildcard":"a**"}}]}"#, &["state", "Consecutive wildcard characters at pos"]),
    // AWS (event-ruler): "Unsupported anything-but pattern: numeric"
    ("ab-unsupported-numeric", r#"{"state":[{"anything-but":{"numeric":[">",1]}}]}"#, &["state"]),
    ("exists-not-bool", r#"{"c-count":[{"exists":"true"}]}"#, &["c-count"]),
    ("operator-two-keys", r#"{"name":[{"prefix":"a","suffix":"b"}]}"#, &["name"]),
    ("operator-empty-object", r#"{"name":[{}]}"#, &["name"]),
    ("nested-array-value", r#"{"name":[["a"]]}"#, &["name"]),
    // AWS (event-ruler): "Empty objects are not allowed"
    ("empty-object", r#"{"detail":{}}"#, &["detail"]),
    ("empty-top-level-object", r#"{}"#, &[]),
    // spec: "A pattern is a JSON object"
    ("top-level-array", r#"[{"a":["x"]}]"#, &[]),
    ("top-level-string", r#""x""#, &[]),
    ("top-level-null", r#"null"#, &[]),
    // $or: errors inside a branch are reported at the branch's field
    ("or-branch-empty-array", r#"{"$or":[{"a":["x"]},{"bogus":[]}]}"#, &["bogus", "Empty arrays are not allowed"]),
    ("or-branch-scalar", r#"{"detail":{"$or":[{"a":["x"]},{"bogus":5}]}}"#, &["bogus", "must be an object or an array"]),
    // spec: $or with ONE object is an ordinary field, so its element is an operator object with an
    // unknown operator name (event-ruler's wrongOrRelationshipRules.json rejects it too)
    ("or-single-object-is-ordinary-field", r#"{"$or":[{"metricName":["CPU"]}]}"#, &["Unrecognized match type metricName"]),
];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn fixtures_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures");
    assert!(
        dir.is_dir(),
        "FIXTURES MISSING: the conformance suite needs {} (shared/fixtures next to the workspace). \
         It is required, not optional; this test fails rather than skipping.",
        dir.display()
    );
    dir
}

fn read_fixture(rel: &str) -> String {
    let path = fixtures_dir().join(rel);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("FIXTURE MISSING: cannot read {}: {e}", path.display()))
}

fn fixture_json(rel: &str) -> Value {
    let text = read_fixture(rel);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture {rel} is not JSON: {e}"))
}

/// Event text as written in a table: inline JSON, or `@path` under shared/fixtures.
fn event_text(spec: &str) -> String {
    match spec.strip_prefix('@') {
        Some(rel) => read_fixture(rel),
        None => spec.to_string(),
    }
}

fn show_event(spec: &str, text: &str) -> String {
    if spec.starts_with('@') {
        format!("{spec} (fixture file, {} bytes)", text.len())
    } else {
        text.to_string()
    }
}

fn fmt_json_result<E: std::fmt::Display>(r: &Result<bool, E>) -> String {
    match r {
        Ok(b) => b.to_string(),
        Err(e) => format!("Err({e})"),
    }
}

fn finish(title: &str, failures: Vec<String>) {
    if !failures.is_empty() {
        let mut msg = format!("\n{} {title} failure(s):\n", failures.len());
        for f in &failures {
            msg.push_str(f);
            msg.push('\n');
        }
        panic!("{msg}");
    }
}

/// Runs one single-rule check (tree + bytes) and returns a failure description if any path
/// disagrees with `expected`.
fn check_single(name: &str, pattern: &Value, event_spec: &str, expected: bool) -> Option<String> {
    let text = event_text(event_spec);
    let event: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return Some(format!("[{name}] TEST BUG: event is not JSON: {e}")),
    };
    let compiled = match Pattern::from_value(pattern) {
        Ok(p) => p,
        Err(e) => {
            return Some(format!(
                "[{name}] valid pattern rejected\n    pattern : {pattern}\n    error   : {e}"
            ))
        }
    };
    let tree = compiled.matches(&event);
    let bytes = compiled.matches_json(text.as_bytes());
    let bytes_ok = matches!(bytes, Ok(b) if b == expected);
    if tree != expected || !bytes_ok {
        return Some(format!(
            "[{name}]\n    pattern : {pattern}\n    event   : {}\n    expected: {expected}\n    Pattern::matches      = {tree}\n    Pattern::matches_json = {}",
            show_event(event_spec, &text),
            fmt_json_result(&bytes)
        ));
    }
    None
}

// ---------------------------------------------------------------------------------------------
// The main table
// ---------------------------------------------------------------------------------------------

struct Prepared {
    name: &'static str,
    pattern_text: &'static str,
    event_spec: &'static str,
    expected: bool,
    event_text: String,
    event: Value,
    /// index in the shared matcher, if the pattern compiled
    rule: Option<usize>,
    single: Option<Pattern>,
}

#[test]
fn conformance_table() {
    let mut failures = Vec::new();

    // Table sanity: enough cases, both outcomes, unique names.
    assert!(
        CASES.len() >= 170,
        "the table must hold at least 170 cases, has {}",
        CASES.len()
    );
    let mut names = BTreeSet::new();
    for (name, ..) in CASES {
        assert!(names.insert(*name), "duplicate case name {name}");
    }
    let positives = CASES.iter().filter(|c| c.3).count();
    assert!(
        positives > 50 && CASES.len() - positives > 50,
        "table is lopsided"
    );

    // Prepare events and single patterns.
    let mut cases: Vec<Prepared> = Vec::new();
    for &(name, pattern_text, event_spec, expected) in CASES {
        let text = event_text(event_spec);
        let event: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("TEST BUG: event of case {name} is not JSON: {e}"));
        let pattern_value: Value = serde_json::from_str(pattern_text)
            .unwrap_or_else(|e| panic!("TEST BUG: pattern of case {name} is not JSON: {e}"));
        let single = match (
            Pattern::parse(pattern_text),
            Pattern::from_value(&pattern_value),
        ) {
            (Ok(_), Ok(p)) => Some(p),
            (parsed, from_value) => {
                failures.push(format!(
                    "[{name}] valid pattern rejected\n    pattern : {pattern_text}\n    Pattern::parse      -> {}\n    Pattern::from_value -> {}",
                    parsed.err().map(|e| e.to_string()).unwrap_or_else(|| "Ok".into()),
                    from_value.err().map(|e| e.to_string()).unwrap_or_else(|| "Ok".into()),
                ));
                None
            }
        };
        cases.push(Prepared {
            name,
            pattern_text,
            event_spec,
            expected,
            event_text: text,
            event,
            rule: None,
            single,
        });
    }

    // One shared matcher with every valid pattern, keyed by case index. Failed adds (invalid
    // patterns) are interleaved: they must not consume an index or leave anything behind.
    let mut matcher: Matcher<usize> = Matcher::new();
    let mut rule_to_case: Vec<usize> = Vec::new();
    for (ci, case) in cases.iter_mut().enumerate() {
        let (bad_name, bad_text, _) = INVALID[ci % INVALID.len()];
        let bad: Value = serde_json::from_str(bad_text).unwrap();
        let before = matcher.len();
        if matcher.add(usize::MAX, &bad).is_ok() {
            failures.push(format!(
                "[shared matcher] Matcher::add accepted invalid pattern {bad_name}: {bad_text}"
            ));
        } else if matcher.len() != before {
            failures.push(format!(
                "[shared matcher] failed add of {bad_name} changed len {before} -> {}",
                matcher.len()
            ));
        }
        if case.single.is_none() {
            continue;
        }
        let value: Value = serde_json::from_str(case.pattern_text).unwrap();
        let expected_index = matcher.len();
        match matcher.add(ci, &value) {
            Ok(index) => {
                if index != expected_index {
                    failures.push(format!(
                        "[shared matcher] add of {} returned index {index}, expected {expected_index}",
                        case.name
                    ));
                }
                case.rule = Some(index);
                rule_to_case.resize(rule_to_case.len().max(index + 1), usize::MAX);
                rule_to_case[index] = ci;
            }
            Err(e) => failures.push(format!(
                "[{}] Matcher::add rejected a pattern Pattern::from_value accepted: {e}",
                case.name
            )),
        }
    }
    let valid_rules = cases.iter().filter(|c| c.rule.is_some()).count();
    if matcher.len() != valid_rules {
        failures.push(format!(
            "[shared matcher] len() = {}, expected {valid_rules}",
            matcher.len()
        ));
    }

    // Evaluate every case four ways.
    let mut state = MatchState::default();
    let mut out: Vec<usize> = vec![usize::MAX, 7, 7]; // junk: must be cleared by matches_json
    let mut cross_failures = Vec::new();
    for (ci, case) in cases.iter().enumerate() {
        let Some(single) = &case.single else { continue };
        let tree = single.matches(&case.event);
        let bytes = single.matches_json(case.event_text.as_bytes());

        // Keys of usize::MAX belong to "invalid" patterns the matcher wrongly accepted; that is
        // reported above, and they are left out of the per-case comparisons below.
        let mv: Vec<usize> = matcher
            .matches_value(&case.event)
            .into_iter()
            .filter(|&k| k != usize::MAX)
            .collect();
        let mj = matcher.matches_json(case.event_text.as_bytes(), &mut state, &mut out);
        let mj_cases: Option<Vec<usize>> = match &mj {
            Ok(()) => Some(
                out.iter()
                    .map(|&r| rule_to_case.get(r).copied().unwrap_or(usize::MAX))
                    .filter(|&c| c != usize::MAX)
                    .collect(),
            ),
            Err(_) => None,
        };
        let mv_has = mv.contains(&ci);
        let mj_has = mj_cases.as_ref().map(|v| v.contains(&ci));

        let ok = tree == case.expected
            && matches!(bytes, Ok(b) if b == case.expected)
            && mv_has == case.expected
            && mj_has == Some(case.expected);
        if !ok {
            failures.push(format!(
                "[{}]\n    pattern : {}\n    event   : {}\n    expected: {}\n    Pattern::matches        = {tree}\n    Pattern::matches_json   = {}\n    Matcher::matches_value  = {mv_has}\n    Matcher::matches_json   = {}",
                case.name,
                case.pattern_text,
                show_event(case.event_spec, &case.event_text),
                case.expected,
                fmt_json_result(&bytes),
                match &mj {
                    Ok(()) => mj_has.unwrap().to_string(),
                    Err(e) => format!("Err({e})"),
                },
            ));
        }

        // Shape of the matcher's answers: matches_value in insertion order, each key once;
        // matches_json ascending rule indexes, each once; both the same set.
        if !mv.windows(2).all(|w| w[0] < w[1]) {
            cross_failures.push(format!(
                "[{}] Matcher::matches_value not in insertion order / has duplicates: {mv:?}",
                case.name
            ));
        }
        if mj.is_ok() {
            if !out.windows(2).all(|w| w[0] < w[1]) || out.iter().any(|&r| r >= matcher.len()) {
                cross_failures.push(format!(
                    "[{}] Matcher::matches_json rule indexes not ascending / duplicated: {out:?}",
                    case.name
                ));
            }
            let a: BTreeSet<usize> = mv.iter().copied().collect();
            let b: BTreeSet<usize> = mj_cases.clone().unwrap().into_iter().collect();
            if a != b {
                cross_failures.push(format!(
                    "[{}] shared matcher: matches_value and matches_json disagree for this event\n    only in matches_value: {:?}\n    only in matches_json : {:?}",
                    case.name,
                    a.difference(&b).map(|&i| cases.get(i).map(|c| c.name).unwrap_or("?")).collect::<Vec<_>>(),
                    b.difference(&a).map(|&i| cases.get(i).map(|c| c.name).unwrap_or("?")).collect::<Vec<_>>(),
                ));
            }
        }

        // Interference check: for this event, the shared matcher must report exactly the rules
        // whose single compiled pattern matches it.
        let singles: BTreeSet<usize> = cases
            .iter()
            .enumerate()
            .filter(|(_, c)| c.rule.is_some())
            .filter(|(_, c)| c.single.as_ref().unwrap().matches(&case.event))
            .map(|(i, _)| i)
            .collect();
        let shared: BTreeSet<usize> = mv.iter().copied().collect();
        if singles != shared {
            cross_failures.push(format!(
                "[{}] event: shared matcher and single patterns disagree (rule interference)\n    matched only by the single pattern: {:?}\n    matched only in the shared matcher: {:?}",
                case.name,
                singles.difference(&shared).map(|&i| cases[i].name).collect::<Vec<_>>(),
                shared.difference(&singles).map(|&i| cases.get(i).map(|c| c.name).unwrap_or("?")).collect::<Vec<_>>(),
            ));
        }
    }
    failures.extend(cross_failures);

    if !failures.is_empty() {
        let mut summary = String::new();
        let _ = writeln!(
            summary,
            "conformance table: {} cases, {} valid rules in the shared matcher",
            CASES.len(),
            valid_rules
        );
        failures.insert(0, summary);
    }
    finish("conformance-table", failures);
}

// ---------------------------------------------------------------------------------------------
// Invalid patterns
// ---------------------------------------------------------------------------------------------

#[test]
#[allow(clippy::len_zero)] // the API under test promises len(), not is_empty()
fn invalid_patterns_are_rejected_with_where_and_why() {
    assert!(
        INVALID.len() >= 30,
        "need at least 30 invalid patterns, have {}",
        INVALID.len()
    );
    let mut names = BTreeSet::new();
    let mut failures = Vec::new();
    for &(name, text, needles) in INVALID {
        assert!(names.insert(name), "duplicate invalid-case name {name}");
        let value: Value = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("TEST BUG: invalid case {name} is not JSON: {e}"));

        let parsed = Pattern::parse(text);
        let from_value = Pattern::from_value(&value);
        let mut matcher: Matcher<&str> = Matcher::new();
        let added = matcher.add(name, &value);

        let mut problems = Vec::new();
        let mut check = |label: &str, err: Option<String>| match err {
            None => problems.push(format!("{label} accepted the pattern")),
            Some(msg) => {
                let missing: Vec<&&str> = needles.iter().filter(|n| !msg.contains(**n)).collect();
                if !missing.is_empty() {
                    problems.push(format!("{label} error `{msg}` lacks {missing:?}"));
                }
            }
        };
        check("Pattern::parse", parsed.err().map(|e| e.to_string()));
        check(
            "Pattern::from_value",
            from_value.err().map(|e| e.to_string()),
        );
        check("Matcher::add", added.err().map(|e| e.to_string()));
        if matcher.len() != 0 {
            problems.push(format!(
                "Matcher::len() is {} after a failed add",
                matcher.len()
            ));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "[{name}]\n    pattern : {text}\n    must contain: {needles:?}\n    {}",
                problems.join("\n    ")
            ));
        }
    }
    // Text that is not JSON at all.
    for text in ["{", r#"{"a":["x"]"#, "", r#"{"a":["x"]} trailing"#] {
        if Pattern::parse(text).is_ok() {
            failures.push(format!("[not-json] Pattern::parse accepted {text:?}"));
        }
    }
    finish("invalid-pattern", failures);
}

// ---------------------------------------------------------------------------------------------
// Malformed events
// ---------------------------------------------------------------------------------------------

#[test]
fn malformed_event_json_is_an_error() {
    let pattern = Pattern::parse(r#"{"a":[{"exists":false}]}"#).expect("valid pattern");
    let mut matcher: Matcher<u8> = Matcher::new();
    matcher
        .add(1, &serde_json::json!({"a":[{"exists":false}]}))
        .unwrap();
    let mut state = MatchState::default();
    let mut out = Vec::new();
    let mut failures = Vec::new();
    for text in [
        &b""[..],
        b"{",
        b"{\"a\":",
        b"{\"a\":1",
        b"{\"a\":\"unterminated}",
        b"not json",
        b"{\"a\":tru}",
        b"{\"a\":1,}",
    ] {
        let shown = String::from_utf8_lossy(text);
        if let Ok(b) = pattern.matches_json(text) {
            failures.push(format!(
                "Pattern::matches_json({shown:?}) = Ok({b}), expected Err"
            ));
        }
        if matcher.matches_json(text, &mut state, &mut out).is_ok() {
            failures.push(format!(
                "Matcher::matches_json({shown:?}) = Ok({out:?}), expected Err"
            ));
        }
    }
    // And a good event still works with the same state afterwards.
    match matcher.matches_json(br#"{"b":1}"#, &mut state, &mut out) {
        Ok(()) if out == vec![0] => {}
        other => failures.push(format!(
            "after malformed events, matches_json on a good event gave {:?} / {out:?}",
            other.map_err(|e| e.to_string())
        )),
    }
    finish("malformed-event", failures);
}

// ---------------------------------------------------------------------------------------------
// Fixture files from other implementations
// ---------------------------------------------------------------------------------------------

/// Expected results for event-ruler-testdata/correctness-cases.json, decided from the spec:
/// "split" = the fields come from different elements of one object array, which must NOT match
/// (spec: "Array-consistency ... two fields cannot match from objects in different elements").
#[rustfmt::skip]
const CORRECTNESS_EXPECTED: &[(&str, bool)] = &[
    ("flat: 2-field exists, both present", true),
    ("flat: 2-field exists, one missing", false),
    ("flat: exact match", true),
    ("flat: exact mismatch", false),
    ("flat: prefix", true),
    ("flat: numeric range", true),
    ("flat: anything-but", true),
    ("objarray: same element", true),
    ("objarray: split", false),
    ("objarray: 3 elem, last valid", true),
    ("objarray: 3-field, all in one", true),
    ("objarray: 3-field, split 3 ways", false),
    ("objarray: exact same elem", true),
    ("objarray: exact split", false),
    ("objarray: prefix same", true),
    ("objarray: prefix split", false),
    ("primarray: exists", true),
    ("primarray: exact match", true),
    ("primarray: no match", false),
    ("nested: inner same", true),
    ("nested: inner split", false),
    ("nested: outer split", false),
    ("nested: outer same", true),
    ("nested2: same leaf", true),
    ("nested2: split leaf", false),
    ("mixed: array+scalar match", true),
    ("mixed: array+scalar fail", false),
    ("exists-false: absent", true),
    ("exists-false: present", false),
    ("empty object", false),
    // spec: "exists:true on an empty array does not match"
    ("empty array", false),
    ("single-field rule", true),
    ("many elem one valid", true),
    ("numeric+exists array", true),
    ("anything-but array", true),
    ("primarray: large + scalar, exists", true),
    ("primarray: large + scalar, prefix", true),
    ("primarray: large + scalar, no match", false),
    ("primarray: nested under object", true),
    ("primarray: two prim arrays + scalar", true),
    ("primarray: exact match among many", true),
    ("primarray: numeric in array", true),
    ("primarray: anything-but in array", true),
    ("primarray: single value array", true),
    ("primarray: empty prim array", false),
    ("mixed: obj-array + prim-array", true),
    ("mixed: obj-array split + prim-array", false),
    ("deep prim: nested 3 levels", true),
    ("suffix match in array", true),
    ("N emails, only last element has name — dedup loses the only valid match", true),
    ("suffix match split", false),
];

#[test]
fn fixture_event_ruler_correctness_cases() {
    let cases = fixture_json("patterns/event-ruler-testdata/correctness-cases.json");
    let cases = cases
        .as_array()
        .expect("correctness-cases.json is an array");
    let mut failures = Vec::new();

    let fixture_names: BTreeSet<&str> = cases.iter().map(|c| c["name"].as_str().unwrap()).collect();
    let table_names: BTreeSet<&str> = CORRECTNESS_EXPECTED.iter().map(|c| c.0).collect();
    for missing in fixture_names.difference(&table_names) {
        failures.push(format!(
            "[table] fixture case {missing:?} has no expected value in CORRECTNESS_EXPECTED"
        ));
    }
    for extra in table_names.difference(&fixture_names) {
        failures.push(format!(
            "[table] CORRECTNESS_EXPECTED names {extra:?}, which the fixture lacks"
        ));
    }

    let mut matcher: Matcher<usize> = Matcher::new();
    let mut rules = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        match matcher.add(i, &case["rule"]) {
            Ok(r) => rules.push(Some(r)),
            Err(e) => {
                failures.push(format!("[{}] rule rejected: {e}", case["name"]));
                rules.push(None);
            }
        }
    }
    let mut state = MatchState::default();
    let mut out = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let name = case["name"].as_str().unwrap();
        let Some(&(_, expected)) = CORRECTNESS_EXPECTED.iter().find(|c| c.0 == name) else {
            continue;
        };
        let event_text = serde_json::to_string(&case["event"]).unwrap();
        if let Some(f) = check_single(name, &case["rule"], &event_text, expected) {
            failures.push(f);
        }
        let Some(rule) = rules[i] else { continue };
        let mv = matcher.matches_value(&case["event"]).contains(&i);
        let mj = matcher
            .matches_json(event_text.as_bytes(), &mut state, &mut out)
            .map(|()| out.contains(&rule));
        if mv != expected || !matches!(mj, Ok(b) if b == expected) {
            failures.push(format!(
                "[{name}] (shared matcher of all {} fixture rules)\n    rule    : {}\n    event   : {event_text}\n    expected: {expected}\n    Matcher::matches_value = {mv}\n    Matcher::matches_json  = {}",
                cases.len(),
                case["rule"],
                fmt_json_result(&mj)
            ));
        }
    }
    finish("correctness-cases.json", failures);
}

/// arrayRule{1..4}.json × arrayEvent{1..4}.json: the expected rule set per event
/// (event-ruler GenericMachineTest.nestedArraysTest for rules 1-3 with array consistency on;
/// rule 4 decided from the spec: event3's first element has CPUUtilization + AWS/EC2).
fn check_array_fixtures(dir: &str, failures: &mut Vec<String>) {
    let rules: Vec<Value> = (1..=4)
        .map(|i| fixture_json(&format!("patterns/{dir}/arrayRule{i}.json")))
        .collect();
    let events: Vec<String> = (1..=4)
        .map(|i| read_fixture(&format!("patterns/{dir}/arrayEvent{i}.json")))
        .collect();
    // expected[event] = rule numbers (1-based) that match
    let expected: [&[usize]; 4] = [&[1, 2], &[], &[4], &[3, 4]];

    let mut matcher: Matcher<usize> = Matcher::new();
    for (i, rule) in rules.iter().enumerate() {
        if let Err(e) = matcher.add(i + 1, rule) {
            failures.push(format!("[{dir}/arrayRule{}] rejected: {e}", i + 1));
        }
    }
    let mut state = MatchState::default();
    let mut out = Vec::new();
    for (ei, text) in events.iter().enumerate() {
        let event: Value = serde_json::from_str(text).unwrap();
        for (ri, rule) in rules.iter().enumerate() {
            let want = expected[ei].contains(&(ri + 1));
            let name = format!("{dir}/arrayRule{} x arrayEvent{}", ri + 1, ei + 1);
            if let Some(f) = check_single(&name, rule, text, want) {
                failures.push(f);
            }
        }
        let mv = matcher.matches_value(&event);
        let mj = matcher
            .matches_json(text.as_bytes(), &mut state, &mut out)
            .map(|()| out.iter().map(|r| r + 1).collect::<Vec<_>>());
        if mv != expected[ei] || mj.as_deref().ok() != Some(expected[ei]) {
            failures.push(format!(
                "[{dir}/arrayEvent{}] shared matcher of arrayRule1-4: expected rules {:?}, matches_value {mv:?}, matches_json {:?}",
                ei + 1,
                expected[ei],
                mj.map_err(|e| e.to_string())
            ));
        }
    }
}

#[test]
fn fixture_array_rules_and_events() {
    let mut failures = Vec::new();
    check_array_fixtures("event-ruler-testdata", &mut failures);
    check_array_fixtures("quamina-testdata", &mut failures);
    finish("array fixture", failures);
}

#[test]
fn fixture_or_relationship_rules() {
    let rules = fixture_json("patterns/event-ruler-testdata/orRelationshipRules.json");
    let rules = rules.as_array().expect("array of rules");
    assert_eq!(rules.len(), 5, "orRelationshipRules.json changed shape");
    // (event, indexes of the rules in the file that must match it). Derived from the spec:
    // $or branches are ORed, everything else ANDed, $or nests.
    #[rustfmt::skip]
    let events: &[(&str, &[usize])] = &[
        (r#"{"metricName":"CPUUtilization"}"#, &[0]),
        (r#"{"namespace":"AWS/ES"}"#, &[0]),
        (r#"{"metricName":"Other","namespace":"AWS/Lambda"}"#, &[]),
        (r#"{"metricName":"ReadLatency","detail":{"source":"aws.cloudwatch"}}"#, &[0, 1]),
        (r#"{"metricName":"ReadLatency","detail":{"source":"aws.ec2"}}"#, &[0]),
        (r#"{"namespace":"AWS/EC2","detail":{"detail-type":"CloudWatch Alarm State Change"}}"#, &[0, 1]),
        (r#"{"source":"aws.cloudwatch","metricType":"MetricType","namespace":"AWS/EC2"}"#, &[0, 2]),
        (r#"{"source":"aws.cloudwatch","metricType":"MetricType"}"#, &[]),
        (r#"{"source":"aws.cloudwatch","scope":"Service"}"#, &[2, 3]),
        (r#"{"source":"aws.ec2","scope":"Service"}"#, &[]),
        (r#"{"source":"aws.cloudwatch","metricType":"MetricType","namespace":"AWS/ES","spaceId":1000}"#, &[0, 2, 3]),
        (r#"{"source":"aws.cloudwatch","metricType":"MetricType","namespace":"AWS/ES","metricId":1234.0}"#, &[0, 2, 3]),
        (r#"{"source":"aws.cloudwatch","metricType":"MetricType","namespace":"AWS/ES","metricId":"1234"}"#, &[0, 2]),
        (r#"{"source":"aws.cloudwatch","detail":{"state":{"value":"ALARM"}},"withConfiguration":{"metrics":[{"metricStat":{"metric":{"namespace":"AWS/EC2"}}}]}}"#, &[4]),
        (r#"{"source":"aws.cloudwatch","detail":{"state":{"value":"ALARM"}},"withoutConfiguration":{"metric":{"name":"AWS/Default"}}}"#, &[4]),
        (r#"{"source":"aws.cloudwatch","detail":{"state":{"value":"OK"}},"withoutConfiguration":{"metric":{"name":"AWS/Default"}}}"#, &[]),
        (r#"{"source":"aws.cloudwatch","detail":{"state":{"value":"ALARM"}}}"#, &[]),
    ];
    let mut failures = Vec::new();
    check_rule_file("orRelationshipRules.json", rules, events, &mut failures);
    finish("orRelationshipRules.json", failures);
}

#[test]
fn fixture_normal_rules_with_or_wording() {
    // spec: "$or ... applies only if the value is an array of 2 or more objects whose keys are not
    // reserved operator names; otherwise `$or` is an ordinary field name." Every rule in this file
    // uses "$or" as an ordinary field, so all compile and match a field literally named "$or".
    let rules = fixture_json("patterns/event-ruler-testdata/normalRulesWithOrWording.json");
    let rules = rules.as_array().expect("array of rules");
    assert_eq!(
        rules.len(),
        4,
        "normalRulesWithOrWording.json changed shape"
    );
    #[rustfmt::skip]
    let events: &[(&str, &[usize])] = &[
        (r#"{"$or":"10.0.0.7"}"#, &[0]),
        (r#"{"$or":"10.0.1.7"}"#, &[]),
        (r#"{"source":"aws.cloudwatch","$or":{"metricType":"MetricType","namespace":"AWS/ES"}}"#, &[1]),
        (r#"{"source":"aws.cloudwatch","metricType":"MetricType","namespace":"AWS/ES"}"#, &[]),
        (r#"{"time":"2017-10-02T00:00:00Z","detail":{"$or":3}}"#, &[2, 3]),
        (r#"{"time":"2017-10-02T00:00:00Z","detail":{"$or":"10.1.2.3"}}"#, &[2]),
        (r#"{"time":"2017-10-03T00:00:00Z","detail":{"$or":3}}"#, &[3]),
        (r#"{"time":"2017-10-02T00:00:00Z","detail":{"c":3}}"#, &[]),
        (r#"{"detail":{"$or":11}}"#, &[3]),
        (r#"{"detail":{"$or":7}}"#, &[]),
    ];
    let mut failures = Vec::new();
    check_rule_file(
        "normalRulesWithOrWording.json",
        rules,
        events,
        &mut failures,
    );
    finish("normalRulesWithOrWording.json", failures);
}

fn check_rule_file(
    file: &str,
    rules: &[Value],
    events: &[(&str, &[usize])],
    failures: &mut Vec<String>,
) {
    let mut matcher: Matcher<usize> = Matcher::new();
    let mut index_of = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        match matcher.add(i, rule) {
            Ok(r) => index_of.push(Some(r)),
            Err(e) => {
                failures.push(format!(
                    "[{file} rule {i}] valid rule rejected: {e}\n    rule: {rule}"
                ));
                index_of.push(None);
            }
        }
    }
    let mut state = MatchState::default();
    let mut out = Vec::new();
    for &(event_text, want) in events {
        let event: Value = serde_json::from_str(event_text).unwrap();
        for (i, rule) in rules.iter().enumerate() {
            if index_of[i].is_none() {
                continue;
            }
            let name = format!("{file} rule {i}");
            if let Some(f) = check_single(&name, rule, event_text, want.contains(&i)) {
                failures.push(f);
            }
        }
        let mv = matcher.matches_value(&event);
        let mj = matcher
            .matches_json(event_text.as_bytes(), &mut state, &mut out)
            .map(|()| {
                out.iter()
                    .map(|r| {
                        index_of
                            .iter()
                            .position(|x| *x == Some(*r))
                            .unwrap_or(usize::MAX)
                    })
                    .collect::<Vec<_>>()
            });
        let want_present: Vec<usize> = want
            .iter()
            .copied()
            .filter(|&i| index_of[i].is_some())
            .collect();
        if mv != want_present || mj.as_deref().ok() != Some(&want_present[..]) {
            failures.push(format!(
                "[{file}] shared matcher, event {event_text}\n    expected rules {want_present:?}, matches_value {mv:?}, matches_json {:?}",
                mj.map_err(|e| e.to_string())
            ));
        }
    }
}

#[test]
fn fixture_wrong_or_relationship_rules_are_rejected() {
    // Rule 0: "$or" with ONE object is an ordinary field whose value holds an operator object
    // named "metricName" -> "Unrecognized match type metricName".
    // Rule 1: detail."$or" holds a non-object element, so "$or" is an ordinary field again and its
    // elements are not valid match values. event-ruler rejects both (testWrongOrRelationshipRules).
    let rules = fixture_json("patterns/event-ruler-testdata/wrongOrRelationshipRules.json");
    let rules = rules.as_array().expect("array of rules");
    assert_eq!(
        rules.len(),
        2,
        "wrongOrRelationshipRules.json changed shape"
    );
    let needles: [&[&str]; 2] = [&["Unrecognized match type metricName"], &["$or"]];
    let mut failures = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let mut m: Matcher<usize> = Matcher::new();
        for (label, res) in [
            (
                "Pattern::from_value",
                Pattern::from_value(rule).err().map(|e| e.to_string()),
            ),
            (
                "Pattern::parse",
                Pattern::parse(&rule.to_string())
                    .err()
                    .map(|e| e.to_string()),
            ),
            ("Matcher::add", m.add(i, rule).err().map(|e| e.to_string())),
        ] {
            match res {
                None => failures.push(format!("[wrongOr rule {i}] {label} accepted {rule}")),
                Some(msg) => {
                    for n in needles[i] {
                        if !msg.contains(n) {
                            failures.push(format!(
                                "[wrongOr rule {i}] {label} error `{msg}` lacks {n:?}"
                            ));
                        }
                    }
                }
            }
        }
    }
    finish("wrongOrRelationshipRules.json", failures);
}

#[test]
fn fixture_big_event() {
    // bigEventRule.json: every element of changeBatch.changes has an action starting "CREATE" and
    // a resourceRecordSet.type starting "A", and hostedZoneId is "" -> the rule matches.
    let rule = fixture_json("patterns/event-ruler-testdata/bigEventRule.json");
    let event = "@patterns/event-ruler-testdata/bigEvent.json";
    let mut failures = Vec::new();
    if let Some(f) = check_single("bigEventRule x bigEvent", &rule, event, true) {
        failures.push(f);
    }
    // The same rule but requiring a record type no element has: must not match.
    let mut no_type = rule.clone();
    no_type["detail"]["requestParameters"]["changeBatch"]["changes"]["resourceRecordSet"]["type"] =
        serde_json::json!([{"prefix": "AAAA"}]);
    if let Some(f) = check_single("bigEventRule(type AAAA) x bigEvent", &no_type, event, false) {
        failures.push(f);
    }
    // hostedZoneId is "" in the event: [null] must not match it (spec: null vs empty string).
    let mut null_zone = rule.clone();
    null_zone["detail"]["requestParameters"]["hostedZoneId"] = serde_json::json!([null]);
    if let Some(f) = check_single(
        "bigEventRule(hostedZoneId null) x bigEvent",
        &null_zone,
        event,
        false,
    ) {
        failures.push(f);
    }
    finish("bigEvent", failures);
}
