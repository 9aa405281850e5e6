//! The vigil agent: what runs on each host.
//!
//! * [`collect`] — system metrics read from `/proc` and `statvfs(3)`, named as the
//!   CloudWatch agent names them so alarms written for CloudWatch fit.
//! * [`probes`] — the diagnostics vigil asks for when an alarm fires: `top_cpu`,
//!   `top_mem`, `disk_usage`, `system_summary`, the collector's status and restart, and
//!   `command:NAME` for commands in the local allow-list.
//! * [`allowlist`] — that allow-list, a TOML file the host's owner writes.
//! * [`redact`] — passwords, tokens and keys masked in every probe's output before it
//!   leaves the host.
//! * [`runtime`] — the network side: metric batches and heartbeats to the server, and the
//!   job long poll.
//!
//! Linux only. Nothing here runs a shell: built-in probes read `/proc` themselves, and
//! allow-listed commands are executed from their argv.

pub mod allowlist;
pub mod collect;
pub mod probes;
pub mod redact;
pub mod runtime;
