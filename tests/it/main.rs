//! Integration tests against real services: throwaway PostgreSQL clusters (15 unless
//! `RUNS_REPLICATOR_TEST_PG_VERSION` says otherwise; some tests start the version they are about) and the real
//! ClickHouse engine (chDB behind the project's HTTP front, or `CLICKHOUSE_URL`).
//!
//! One test binary, so the services start once and the suite links once.

mod support;

mod backfill;
mod bootstrap;
mod clickhouse_front;
mod config;
mod dropin;
mod durability;
mod failover;
mod hardening;
mod log_pipe;
mod memory_budget;
mod null_sink;
mod operations;
mod outage;
mod periodic;
mod preflight;
mod recovery;
mod reliability;
mod repair_replay;
mod replicas;
mod replication;
mod security;
mod sources;
mod timelines;
mod upstream_schema;
mod verify;
mod versions;
