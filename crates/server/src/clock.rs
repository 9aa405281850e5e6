//! The server's only source of "now". Tests must not sleep for minutes (or days), so with
//! `VIGIL_TEST_CLOCK=1` in the environment the admin may move this clock forward
//! (`POST /api/v1/test/clock`), and everything that reads the time — escalation, SNS
//! certificate validity, job expiry, run deadlines, host lifecycles, timestamps written to
//! the store — sees the moved time together. Without it the endpoint answers 404 and this
//! is the wall clock. A move wakes whoever sleeps until a time on this clock
//! ([`Clock::moves`]), so a test never waits on real time for a deadline it moved past.
//!
//! The offset is process-wide, as the environment variable that allows moving it is.

use std::sync::LazyLock;

use tokio::sync::watch;
use vigil_core::Timestamp;

pub const TEST_CLOCK_ENV: &str = "VIGIL_TEST_CLOCK";

/// How far a test has moved the clock, in milliseconds; 0 unless the clock is movable.
static OFFSET_MS: LazyLock<watch::Sender<i64>> = LazyLock::new(|| watch::Sender::new(0));

/// Whether this server's clock may be moved.
pub struct Clock {
    movable: bool,
}

impl Clock {
    pub fn from_env() -> Clock {
        Clock::new(std::env::var(TEST_CLOCK_ENV).is_ok_and(|v| v == "1"))
    }

    fn new(movable: bool) -> Clock {
        Clock { movable }
    }

    pub fn movable(&self) -> bool {
        self.movable
    }

    /// Moves the clock forward; false when this is the wall clock.
    pub fn advance(&self, ms: i64) -> bool {
        if self.movable {
            OFFSET_MS.send_modify(|offset| *offset = offset.saturating_add(ms.max(0)));
        }
        self.movable
    }

    /// Changes whenever the clock is moved: a sleeper waits on it besides its timer, then
    /// looks at the time again.
    pub fn moves(&self) -> watch::Receiver<i64> {
        OFFSET_MS.subscribe()
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now()
        .timestamp_millis()
        .saturating_add(*OFFSET_MS.borrow())
}

/// The current time at the store's precision (milliseconds), so a value read back equals
/// the value written.
pub fn now() -> Timestamp {
    Timestamp::from_timestamp_millis(now_ms()).unwrap_or(Timestamp::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_move_wakes_a_sleeper_and_moves_every_reading_and_the_wall_clock_never_moves() {
        let wall = Clock::new(false);
        let moves = wall.moves();
        let before = now_ms();
        assert!(!wall.advance(3_600_000));
        assert!(!moves.has_changed().expect("the clock is alive"));
        assert!(now_ms() - before < 3_600_000);

        let test = Clock::new(true);
        let mut moves = test.moves();
        let before = now();
        assert!(test.advance(3_600_000));
        // Already marked changed: a move made before the sleeper waits is not lost.
        tokio::time::timeout(std::time::Duration::from_secs(5), moves.changed())
            .await
            .expect("the move wakes the sleeper")
            .expect("the clock is alive");
        let (ms, at) = (now_ms(), now());
        assert!(ms - before.timestamp_millis() >= 3_600_000);
        assert!(at - before >= chrono::Duration::hours(1));
        assert_eq!(at.timestamp_subsec_nanos() % 1_000_000, 0);
        // Backwards is refused: time in the store must not run back.
        assert!(test.advance(-7_200_000));
        assert!(now_ms() >= ms);
    }
}
