//! Integration tests of vigil-alarm, one binary: shared helpers in `common`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod evaluation;
mod missing_data;
mod reasons;
mod restart;
mod spec;
