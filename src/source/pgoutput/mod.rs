//! Decoder for pgoutput logical replication messages, protocol version 1.
//!
//! pgoutput is the logical decoding plugin built into PostgreSQL; with `proto_version '1'` it
//! sends, per transaction, a Begin, the Relation (and Type) messages the changes need, one
//! Insert/Update/Delete/Truncate per change with its tuples as text (or, with the `binary`
//! option, binary) cells, and a Commit.
//!
//! Owns the byte-level format of one pgoutput message (the payload of one XLogData frame, or of
//! one row of `pg_logical_slot_*_binary_changes`) and nothing else: no I/O, no relation cache, no
//! interpretation of column values. Begin/Commit/Message are also decoded by the transport
//! (`pgwire-replication`), but every tag is decoded here so tests and tools can work from raw
//! bytes alone.
//!
//! Tuple values borrow from the input: a decoded [`Message<'a>`](Message) holds slices of the
//! frame and is consumed before the next frame is read. At tens of thousands of rows a second, a
//! per-cell allocation would be the dominant cost of decoding, and even a reference-counted
//! `Bytes` slice per cell (an atomic increment and decrement, ~130 cells per change) showed in the
//! profile.
//!
//! Malformed input yields a [`DecodeError`] naming the byte offset and what was being read; it
//! never panics, and no count or length read from the wire sizes an allocation before the input
//! is known to hold that much data. Protocol v2+ messages (streaming, two-phase) are rejected as
//! unknown tags: the replicator only ever asks for `proto_version '1'`.
//!
//! - `messages.rs`: the message types and [`Message::into_owned`].
//! - `decoder.rs`: [`decode`] and the bounds-checked reader behind it.
//! - `error.rs`: [`DecodeError`].
//!
//! The inverse, an encoder for tests and benchmarks, is `crate::testing::pgoutput` (feature
//! `test-support`).

mod decoder;
mod error;
mod messages;

pub use decoder::decode;
pub use error::DecodeError;
pub use messages::{
    Begin, Cell, Commit, Delete, Insert, LogicalMessage, Message, OldTuple, OldTupleKind, Origin,
    Relation, RelationColumn, ReplicaIdentity, Truncate, Tuple, TypeMessage, Update,
};

#[cfg(test)]
mod tests;
