//! From decoded changes to acknowledged positions: transactions, batches, the ack tracker and
//! the streaming loop that drives them.

pub mod ack;
pub mod batch;
pub mod changes;
pub mod repair;
pub mod replicator;
pub mod rows;
pub mod transaction;
