//! Time as the escalation sweeper, host lifecycles and the SNS certificate validity check
//! see it. Tests must not sleep for minutes (or days), so with `VIGIL_TEST_CLOCK=1` in the
//! environment the admin may move this clock forward
//! (`POST /api/v1/test/clock`); without it the endpoint answers 404 and the clock is the
//! wall clock. A move wakes whoever sleeps until a time on this clock ([`Clock::moves`]),
//! so a test never waits on real time for a deadline it moved past.

use tokio::sync::watch;

pub const TEST_CLOCK_ENV: &str = "VIGIL_TEST_CLOCK";

pub struct Clock {
    /// How far ahead of the wall clock this clock is, in milliseconds.
    offset_ms: watch::Sender<i64>,
    movable: bool,
}

impl Clock {
    pub fn from_env() -> Clock {
        Clock::new(std::env::var(TEST_CLOCK_ENV).is_ok_and(|v| v == "1"))
    }

    fn new(movable: bool) -> Clock {
        Clock {
            offset_ms: watch::Sender::new(0),
            movable,
        }
    }

    pub fn movable(&self) -> bool {
        self.movable
    }

    /// Moves the clock forward; false when this is the wall clock.
    pub fn advance(&self, ms: i64) -> bool {
        if self.movable {
            self.offset_ms
                .send_modify(|offset| *offset = offset.saturating_add(ms.max(0)));
        }
        self.movable
    }

    pub fn now_ms(&self) -> i64 {
        crate::jobs::now_ms() + *self.offset_ms.borrow()
    }

    pub fn now(&self) -> vigil_core::Timestamp {
        chrono::DateTime::from_timestamp_millis(self.now_ms()).unwrap_or_else(crate::now)
    }

    /// Changes whenever the clock is moved: a sleeper waits on it besides its timer, then
    /// looks at the time again.
    pub fn moves(&self) -> watch::Receiver<i64> {
        self.offset_ms.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_move_wakes_a_sleeper_and_the_wall_clock_never_moves() {
        let clock = Clock::new(true);
        let mut moves = clock.moves();
        let before = clock.now_ms();
        assert!(clock.advance(3_600_000));
        // Already marked changed: a move made before the sleeper waits is not lost.
        tokio::time::timeout(std::time::Duration::from_secs(5), moves.changed())
            .await
            .expect("the move wakes the sleeper")
            .expect("the clock is alive");
        assert!(clock.now_ms() - before >= 3_600_000);

        let wall = Clock::new(false);
        let moves = wall.moves();
        assert!(!wall.advance(3_600_000));
        assert!(!moves.has_changed().expect("the clock is alive"));
        assert!(wall.now_ms() - crate::jobs::now_ms() < 60_000);
    }
}
