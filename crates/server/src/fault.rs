//! Crash points for the crash tests. Set `VIGIL_FAULT_CRASH_AFTER` to a point's name and
//! the process aborts right there — no destructors, no flush, like `kill -9` — the first
//! time the flow passes it. Unset (always, outside tests) every point is one load of a
//! cached `None`.
//!
//! The points, in the order an incident passes them: `processed` (an event's incident,
//! jobs and run committed), `job_finished` (a probe's answer committed), `claimed` (run
//! steps leased), `after_call:STEP` (an external call succeeded, its outcome not yet
//! journaled; STEP is ticket, comment, notify or resolve_ticket), `journaled:STEP` (its
//! outcome committed), `escalated` (an escalation and its event committed),
//! `manual_resolve` (a resolution by hand and its run committed).
//!
//! `VIGIL_FAULT_HOLD_PROCESSING=1` keeps the event processor from starting: events are
//! accepted and wait, so tests can see a backlog and what reports it.

use std::sync::OnceLock;

pub const CRASH_AFTER_ENV: &str = "VIGIL_FAULT_CRASH_AFTER";

pub const HOLD_PROCESSING_ENV: &str = "VIGIL_FAULT_HOLD_PROCESSING";

/// Whether the event processor is held (see the module documentation).
pub fn processing_held() -> bool {
    std::env::var(HOLD_PROCESSING_ENV).is_ok_and(|v| v == "1")
}

pub fn crash_point(name: &str) {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    let armed = ARMED.get_or_init(|| std::env::var(CRASH_AFTER_ENV).ok());
    if armed.as_deref() == Some(name) {
        tracing::error!(
            point = name,
            "{CRASH_AFTER_ENV} is set: aborting on purpose"
        );
        std::process::abort();
    }
}
