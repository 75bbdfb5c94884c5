//! The ClickHouse side: the client, the batch insert, and the reads the worker makes of
//! ClickHouse (its catalog for the preflight, rows for repairs, the worker's state, what a verify
//! compares).

mod attempts;
pub mod catalog;
pub mod client;
pub mod insert;
mod isolate;
pub mod lost_history;
mod payload_once;
pub mod row;
pub mod rowbinary;
pub mod state;
pub mod verify_reads;
