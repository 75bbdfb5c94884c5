//! The ClickHouse side: the client and the batch insert.

pub mod client;
pub mod insert;
pub mod rowbinary;
