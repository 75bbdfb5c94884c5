//! The Postgres side: turning the replication stream into typed messages.

pub mod pgoutput;
