//! The row shapes every stage shares: the Postgres runs row the source decodes and the
//! transform reads ([`postgres`]: [`Col`], [`SourceRow`]), and the ClickHouse rows the transform
//! writes and the sink stores ([`clickhouse`]: [`RunRow`], [`PayloadRow`]).
//!
//! They sit below the data flow (source → transform → pipeline → sink) on purpose: every stage
//! names them, and none has to import a stage downstream of it to do so.

pub mod clickhouse;
pub mod postgres;

pub use clickhouse::{PAYLOAD_COLUMNS, PayloadRow, RUN_COLUMNS, RunRow};
pub use postgres::{Col, SourceRow};
