//! vigil's alarm engine: judges alarms over metric series with CloudWatch's semantics.
//!
//! Pure: no I/O, no clock, no threads. Time is always passed in (Unix milliseconds); the
//! caller feeds raw points into a [`Series`] and calls [`AlarmInstance::evaluate`] every
//! tick.
//!
//! ```
//! use vigil_alarm::{AlarmInstance, AlarmSpec, Comparison, Series, State, TreatMissingData};
//!
//! let spec = AlarmSpec {
//!     name: "cpu-high".into(),
//!     statistic: "Average".parse().unwrap(),
//!     period_secs: 60,
//!     evaluation_periods: 3,
//!     datapoints_to_alarm: 3,
//!     comparison: Comparison::GreaterThanThreshold,
//!     threshold: 80.0,
//!     treat_missing_data: TreatMissingData::Missing,
//! };
//! spec.validate().unwrap();
//!
//! let mut series = Series::new(spec.required_retention_secs());
//! let start = 1_700_000_040_000; // a minute boundary
//! for minute in 0..3 {
//!     series.push(start + minute * 60_000 + 5_000, 95.0).unwrap();
//! }
//! let mut cpu = AlarmInstance::new(start);
//! let transition = cpu.evaluate(&spec, &series, start + 3 * 60_000).unwrap();
//! assert_eq!(transition.state, State::Alarm);
//! assert!(transition.reason.starts_with("Threshold Crossed: 3 out of the last 3 datapoints"));
//! assert_eq!(cpu.evaluate(&spec, &series, start + 3 * 60_000 + 10_000), None);
//! ```
//!
//! # Evaluation
//!
//! Periods are aligned to multiples of `period_secs` since the epoch. The datapoint of a
//! period is the [`Statistic`] over the raw points stamped in `[start, start + period)`; a
//! period without points is *missing*. At `now`, only periods that ended at or before
//! `now` count. A datapoint *breaches* when `value <op> threshold` holds.
//!
//! Like CloudWatch, an evaluation looks at an *evaluation range* longer than the N
//! (`evaluation_periods`) datapoints it needs: N + 2 periods
//! ([`AlarmSpec::EXTRA_RANGE_PERIODS`]), the range of CloudWatch's documented examples.
//! Then, following "How alarm state is evaluated when data is missing":
//!
//! 1. **≥ N periods with data** in the range: the most recent N of them are evaluated,
//!    whatever `treat_missing_data` says. `ALARM` if at least M (`datapoints_to_alarm`)
//!    breach, else `OK`.
//! 2. **No period with data**: `missing` → `INSUFFICIENT_DATA`; `ignore` → the state is
//!    kept; `breaching` → `ALARM`; `notBreaching` → `OK`.
//! 3. **Some, but fewer than N**: all of them are evaluated, plus as few missing periods as
//!    make N. `breaching` / `notBreaching` count those as breaching / not breaching. Under
//!    `missing` and `ignore` they count as neither: `ALARM` if M periods with data breach;
//!    else `OK` if one of them does not breach; else (all breach, fewer than M) CloudWatch's
//!    *premature alarm* rule: `missing` goes to `ALARM` once the oldest breaching period is
//!    at least M periods old, `ignore` keeps its state; younger than that, the state is
//!    kept.
//!
//! CloudWatch's documented table, with the most recent period on the right (`0` not
//! breaching, `X` breaching, `-` missing), which the tests reproduce row by row:
//!
//! | M of N | datapoints  | missing           | ignore | breaching | notBreaching |
//! |--------|-------------|-------------------|--------|-----------|--------------|
//! | 3 of 3 | `0 - X - X` | OK                | OK     | OK        | OK           |
//! | 3 of 3 | `0 - - - -` | OK                | OK     | OK        | OK           |
//! | 3 of 3 | `- - - - -` | INSUFFICIENT_DATA | kept   | ALARM     | OK           |
//! | 3 of 3 | `0 X X - X` | ALARM             | ALARM  | ALARM     | ALARM        |
//! | 3 of 3 | `- - X - -` | ALARM             | kept   | ALARM     | OK           |
//! | 2 of 3 | `0 - X - X` | ALARM             | ALARM  | ALARM     | ALARM        |
//! | 2 of 3 | `0 0 X 0 X` | ALARM             | ALARM  | ALARM     | ALARM        |
//! | 2 of 3 | `0 - X - -` | OK                | OK     | ALARM     | OK           |
//! | 2 of 3 | `- - - - 0` | OK                | OK     | ALARM     | OK           |
//! | 2 of 3 | `- - - X -` | ALARM             | kept   | ALARM     | OK           |
//!
//! # Restarts
//!
//! [`AlarmInstance::restored`] brings back a state persisted before a restart. Raw points
//! are not persisted, so for one evaluation window (`period_secs × evaluation_periods`)
//! after the process start an evaluation that finds no datapoint at all keeps the state:
//! missing data alone cannot move a restored alarm, in particular not to
//! `INSUFFICIENT_DATA`. Real data moves it between `OK` and `ALARM` as usual.
//!
//! # Reasons
//!
//! Each [`Transition`] carries CloudWatch's `StateReason` wording (see
//! [`Transition::reason`]) and `StateReasonData` JSON. Numbers print as CloudWatch (Java)
//! prints doubles (`80.0`), dates as `dd/mm/yy HH:MM:SS` UTC in the text and
//! `2026-10-02T16:59:00.000+0000` in the JSON.
//!
//! # Cost
//!
//! [`Series::push`] appends in O(1). [`AlarmInstance::evaluate`] binary-searches the end
//! of the range and walks its points once, newest first, stopping as soon as N periods with
//! data are found; it allocates only when the state changes. See
//! `examples/alarm_bench.rs` for figures.

mod error;
mod eval;
mod reason;
mod series;
mod spec;

pub use error::{AlarmError, ParseError, SampleError};
pub use eval::{AlarmInstance, Datapoint, State, Transition};
pub use series::Series;
pub use spec::{AlarmSpec, Comparison, Statistic, TreatMissingData};
