//! Unit tests of the verify's pure parts: hash ranges, the column-by-column comparison, the
//! settle rule, the repair's plan, the report. (The canonical hash has its own, `canonical/tests.rs`; the passes
//! against the real services are in `tests/it/verify/`.)

mod compare;
mod ranges;
mod repair;
mod report;
mod settle;
