//! The Postgres side of the data path: the replication stream, the pgoutput decoder, the
//! relation cache, and the publication and slot the stream reads from.

pub mod exported_slot;
pub mod failover_slot;
pub mod identity;
pub mod pgoutput;
pub mod primary_session;
pub mod relation;
pub mod setup;
pub mod stream;
pub mod timeline;
