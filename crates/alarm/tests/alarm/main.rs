//! Integration tests of vigil-alarm, one binary: shared helpers in `common`.

mod common;
mod evaluation;
mod missing_data;
mod reasons;
mod restart;
mod spec;
