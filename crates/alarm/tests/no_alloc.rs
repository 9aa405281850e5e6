//! An evaluation that changes nothing must not allocate: the server runs one per alarm
//! instance per tick. Allocations are counted per thread by a wrapping global allocator
//! (in its own test binary, so that no other test shares the allocator).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use vigil_alarm::{
    AlarmInstance, AlarmSpec, Comparison, Series, State, Statistic, TreatMissingData,
};

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

struct Counting;

// SAFETY: every call is forwarded unchanged to the system allocator; the only addition is
// a counter in a const-initialised thread-local, which itself never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn steady_evaluation_does_not_allocate() {
    // 2026-11-23T06:00:00Z
    let now = 1_795_413_600_000_i64;
    for statistic in [Statistic::Average, Statistic::Percentile(99.0)] {
        for treat in [TreatMissingData::Missing, TreatMissingData::Breaching] {
            let spec = AlarmSpec {
                name: "steady".into(),
                statistic,
                period_secs: 60,
                evaluation_periods: 3,
                datapoints_to_alarm: 2,
                comparison: Comparison::GreaterThanThreshold,
                threshold: 80.0,
                treat_missing_data: treat,
            };
            let mut series = Series::new(spec.required_retention_secs());
            for k in 0..30 {
                series.push(now - 300_000 + k * 10_000, 90.0).unwrap();
            }
            let mut alarm = AlarmInstance::new(now);
            let before = allocations();
            let first = alarm.evaluate(&spec, &series, now);
            assert_eq!(first.map(|t| t.state), Some(State::Alarm));
            assert!(
                allocations() > before,
                "the counter sees a transition's allocations"
            );

            let before = allocations();
            for tick in 0..100 {
                assert_eq!(alarm.evaluate(&spec, &series, now + tick * 500), None);
            }
            assert_eq!(
                allocations() - before,
                0,
                "{statistic} {treat}: steady evaluations allocated"
            );
        }
    }
}
