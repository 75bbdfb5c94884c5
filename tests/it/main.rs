//! Integration tests against real services: a throwaway PostgreSQL 15 cluster and the real
//! ClickHouse engine (chDB behind the project's HTTP front, or `CLICKHOUSE_URL`).
//!
//! One test binary, so the services start once and the suite links once.

mod support;

mod backfill;
mod bootstrap;
mod clickhouse_front;
mod config;
mod durability;
mod hardening;
mod null_sink;
mod operations;
mod preflight;
mod reliability;
mod replicas;
mod replication;
mod security;
mod sources;
mod upstream_schema;
mod verify;
