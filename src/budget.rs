//! How `batch.max_bytes` is shared: one budget for the whole process, however many streams
//! (sources × shards) it runs. Each bound used to be per stream — a reader channel sized from
//! `max_bytes`, an open transaction of a batch's share — so four shards held four times as
//! much. Now the budget is split once:
//!
//! - half for the batch being filled and the inserts in flight (`pipeline::writer`): a batch is
//!   sealed at its `1 / (max_inflight + 1)`, and no stream is read while they hold all of it;
//! - a quarter for the reader channels of all streams (`source::stream::event_buffer`), counted
//!   in events as large as trigger.dev sends (an UPDATE of a run at its offload threshold);
//! - a quarter for the transactions of all streams: each stream's open transaction is spilled
//!   at half its share, and a stream holding the other half in transactions waiting for repair
//!   lookups (`pipeline::held`) is not read.
//!
//! Rows are weighed by their strings as they are built (`pipeline::collapse::run_bytes`), which
//! is what the budget counts; what it does not count is the process itself, an insert's
//! encoding block, one frame being decoded per stream, and the allocator's slack.

use crate::config::Config;

/// An event as large as the channels are sized for: an UPDATE under REPLICA IDENTITY FULL of a
/// run whose output is at trigger.dev's offload threshold (512 KB; larger packets go to object
/// storage) carries it twice, old and new row.
pub const LARGE_EVENT: u64 = 1 << 20;

/// The shares of `batch.max_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The batch being filled and the inserts in flight, together.
    pub writer: usize,
    /// One stream's reader channel.
    pub channel: usize,
    /// One stream's open transaction (spilled past it), and as much again of held
    /// transactions.
    pub transaction: usize,
}

impl Budget {
    pub fn of(config: &Config) -> Budget {
        let max = usize::try_from(config.batch.max_bytes).unwrap_or(usize::MAX);
        let streams = config.streams().len().max(1);
        Budget {
            writer: (max / 2).max(1),
            channel: max / 4 / streams,
            transaction: (max / 8 / streams).max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shares_add_up_to_max_bytes_whatever_the_number_of_streams() {
        for shards in [1, 4, 16] {
            let mut config = Config::default();
            config.batch.max_bytes = 64 << 20;
            config.postgres.shards = shards;
            let b = Budget::of(&config);
            let streams = config.streams().len();
            assert_eq!(streams, shards as usize);
            let total = b.writer + streams * (b.channel + 2 * b.transaction);
            assert!(total <= 64 << 20, "{shards} shards: {total}");
            assert!(total > 60 << 20, "and use it: {total}");
        }
    }
}
