//! CloudWatch's "How alarm state is evaluated when data is missing", row by row.
//!
//! Patterns list the evaluation range oldest first, most recent on the right: `0` not
//! breaching, `X` breaching, `-` missing. Every row is judged under the four treatments
//! from each of the three starting states; "kept" means the starting state survives.

use vigil_alarm::{State, TreatMissingData};

use crate::common::{instance, judge, series, spec, MINUTE};

#[derive(Debug, Clone, Copy)]
enum Expect {
    Is(State),
    Kept,
}

use Expect::{Is, Kept};
const OK: Expect = Is(State::Ok);
const ALARM: Expect = Is(State::Alarm);
const INSUFFICIENT: Expect = Is(State::InsufficientData);

/// Treatments in the column order of CloudWatch's table.
const TREATMENTS: [TreatMissingData; 4] = [
    TreatMissingData::Missing,
    TreatMissingData::Ignore,
    TreatMissingData::Breaching,
    TreatMissingData::NotBreaching,
];

const STARTS: [State; 3] = [State::Ok, State::Alarm, State::InsufficientData];

/// (M, N, pattern, [missing, ignore, breaching, notBreaching])
type Row = (u32, u32, &'static str, [Expect; 4]);

fn check(rows: &[Row]) {
    let mut failures = Vec::new();
    for &(m, n, pattern, expected) in rows {
        for (treat, expect) in TREATMENTS.into_iter().zip(expected) {
            for start in STARTS {
                let got = judge(&spec(m, n, treat), pattern, start);
                let want = match expect {
                    Is(state) => state,
                    Kept => start,
                };
                if got != want {
                    failures.push(format!(
                        "{m} of {n} `{pattern}` {treat} from {start}: got {got}, want {want}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// First table: Datapoints to Alarm and Evaluation Periods both 3, evaluation range 5.
#[test]
fn documented_table_three_of_three() {
    check(&[
        (3, 3, "0 - X - X", [OK, OK, OK, OK]),
        (3, 3, "0 - - - -", [OK, OK, OK, OK]),
        (3, 3, "- - - - -", [INSUFFICIENT, Kept, ALARM, OK]),
        (3, 3, "0 X X - X", [ALARM, ALARM, ALARM, ALARM]),
        (3, 3, "- - X - -", [ALARM, Kept, ALARM, OK]),
    ]);
}

/// Second table: 2 out of 3, evaluation range 5.
#[test]
fn documented_table_two_of_three() {
    check(&[
        (2, 3, "0 - X - X", [ALARM, ALARM, ALARM, ALARM]),
        (2, 3, "0 0 X 0 X", [ALARM, ALARM, ALARM, ALARM]),
        (2, 3, "0 - X - -", [OK, OK, ALARM, OK]),
        (2, 3, "- - - - 0", [OK, OK, ALARM, OK]),
        (2, 3, "- - - X -", [ALARM, Kept, ALARM, OK]),
    ]);
}

/// "Avoiding premature transitions to alarm state": with 3 of 3, `- - - - X` and
/// `- - - X -` do "not go immediately into ALARM state". The documentation does not say
/// where they go instead; the state is kept (an earlier edition of the table gave
/// `- - - - X` as "Insufficient data | Retain current state | ALARM | OK", i.e. a new alarm
/// stays INSUFFICIENT_DATA). `breaching` / `notBreaching` just fill the two missing periods.
/// The same earlier edition gave `- - - - X` for 2 of 3 the same row.
#[test]
fn documented_premature_alarm_examples() {
    check(&[
        (3, 3, "- - - - X", [Kept, Kept, ALARM, OK]),
        (3, 3, "- - - X -", [Kept, Kept, ALARM, OK]),
        (2, 3, "- - - - X", [Kept, Kept, ALARM, OK]),
    ]);
}

/// 3 of 5 (range 7). Not rows of CloudWatch's table: each is worked out from its rules,
/// reasoning given per row.
#[test]
fn derived_three_of_five() {
    check(&[
        // Five periods with data: 0 X X 0 X, three breach.
        (3, 5, "- - 0 X X 0 X", [ALARM, ALARM, ALARM, ALARM]),
        // Five periods with data: X 0 0 X 0, two breach.
        (3, 5, "- - X 0 0 X 0", [OK, OK, OK, OK]),
        // The most recent five with data skip the missing ones: X X X 0 X.
        (3, 5, "X X - X - 0 X", [ALARM, ALARM, ALARM, ALARM]),
        (3, 5, "- - - - - - -", [INSUFFICIENT, Kept, ALARM, OK]),
        // Two breaching, three filled. Oldest breach is 4 periods old ≥ M: premature alarm.
        (3, 5, "- - - X - X -", [ALARM, Kept, ALARM, OK]),
        // Oldest breach exactly 3 periods old = M.
        (3, 5, "- - - - X - X", [ALARM, Kept, ALARM, OK]),
        // Oldest breach 2 periods old < M: too early.
        (3, 5, "- - - - - X X", [Kept, Kept, ALARM, OK]),
        // Four with data, three breaching: M reached on real data under every treatment.
        (3, 5, "X 0 - - X - X", [ALARM, ALARM, ALARM, ALARM]),
        // Three with data, one not breaching: only filling two breaching periods alarms.
        (3, 5, "- 0 - - X - X", [OK, OK, ALARM, OK]),
        // One not-breaching period; four breaching fills outvote it.
        (3, 5, "- - - - - - 0", [OK, OK, ALARM, OK]),
    ]);
}

/// The prose under the first table: with `0 - - - -` and missing data treated as
/// breaching the alarm stays OK, and "the next time this alarm is evaluated, if the data is
/// still missing it will go to ALARM, as that non-breaching data point will no longer be in
/// the evaluation range".
#[test]
fn a_lone_good_datapoint_ages_out_of_the_range() {
    let spec = spec(3, 3, TreatMissingData::Breaching);
    let (series, now) = series("0 - - - -", &spec);
    let mut alarm = instance(State::Ok);
    assert_eq!(alarm.evaluate(&spec, &series, now), None);
    let transition = alarm.evaluate(&spec, &series, now + MINUTE).unwrap();
    assert_eq!(transition.state, State::Alarm);
    assert_eq!(
        transition.reason,
        "Threshold Crossed: no datapoints were received for 3 periods and 3 missing datapoints \
         were treated as [Breaching]."
    );
}

/// A lone breach under `missing`, 3 of 3: kept while younger than M periods, ALARM at 3,
/// still ALARM while it is in the range, INSUFFICIENT_DATA once it has left.
#[test]
fn a_lone_breach_ages_through_the_range() {
    let spec = spec(3, 3, TreatMissingData::Missing);
    let (series, first_end) = series("X", &spec);
    let mut alarm = instance(State::Ok);
    let mut states = Vec::new();
    for age in 1..=6 {
        alarm.evaluate(&spec, &series, first_end + (age - 1) * MINUTE);
        states.push(alarm.state);
    }
    assert_eq!(
        states,
        [
            State::Ok,
            State::Ok,
            State::Alarm,
            State::Alarm,
            State::Alarm,
            State::InsufficientData
        ]
    );
}
