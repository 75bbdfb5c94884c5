//! The ClickHouse side: the client, the batch insert, and the reads the worker makes of
//! ClickHouse (its catalog for the preflight, rows for repairs).

pub mod catalog;
pub mod client;
pub mod insert;
pub mod rowbinary;
pub mod state;
