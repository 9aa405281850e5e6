//! Time as the escalation sweeper, host lifecycles and the SNS certificate validity check
//! see it. Tests must not sleep for minutes (or days), so with `VIGIL_TEST_CLOCK=1` in the
//! environment the admin may move this clock forward
//! (`POST /api/v1/test/clock`); without it the endpoint answers 404 and the clock is the
//! wall clock.

use std::sync::atomic::{AtomicI64, Ordering};

pub const TEST_CLOCK_ENV: &str = "VIGIL_TEST_CLOCK";

pub struct Clock {
    offset_ms: AtomicI64,
    movable: bool,
}

impl Clock {
    pub fn from_env() -> Clock {
        Clock {
            offset_ms: AtomicI64::new(0),
            movable: std::env::var(TEST_CLOCK_ENV).is_ok_and(|v| v == "1"),
        }
    }

    pub fn movable(&self) -> bool {
        self.movable
    }

    /// Moves the clock forward; false when this is the wall clock.
    pub fn advance(&self, ms: i64) -> bool {
        if self.movable {
            self.offset_ms.fetch_add(ms.max(0), Ordering::SeqCst);
        }
        self.movable
    }

    pub fn now_ms(&self) -> i64 {
        crate::jobs::now_ms() + self.offset_ms.load(Ordering::SeqCst)
    }

    pub fn now(&self) -> vigil_core::Timestamp {
        chrono::DateTime::from_timestamp_millis(self.now_ms()).unwrap_or_else(crate::now)
    }
}
