//! The streaming loop in-process: pgoutput frames in through a [`FrameFeed`], rows out into a
//! [`MemorySink`], Postgres answered by a [`FakeControl`] — the loop's invariants tested directly
//! and fast, on a paused clock. (The end-to-end suite in `tests/it` runs the same loop against
//! real servers; these do not replace it.)
//!
//! [`FrameFeed`]: crate::testing::feed::FrameFeed
//! [`MemorySink`]: crate::testing::memory_sink::MemorySink
//! [`FakeControl`]: crate::testing::control::FakeControl

mod bench;
mod invariants;
mod latency;
mod memory;
mod streams;
