//! [`SinkRow`]: what the sink needs of a row type beyond its encoding — neutralising its JSON
//! fields one at a time when ClickHouse refuses the row, and naming the run in messages.

use super::rowbinary::EncodeRow;
use crate::rows::{PayloadRow, RunRow};

/// A row the sink can insert and, when ClickHouse refuses it, neutralise field by field.
pub trait SinkRow: EncodeRow + Clone + Send + Sync + 'static {
    /// Replaces the `step`-th JSON field with `{}`; returns its column, or `None` when there is
    /// nothing left to neutralise.
    fn neutralise(&mut self, step: usize) -> Option<&'static str>;

    /// How many fields [`SinkRow::neutralise`] can replace.
    const NEUTRALISABLE: usize;

    fn run_id(&self) -> &str;

    /// The run's `created_at` (ms), the partition key of both tables: it narrows a lookup of
    /// rows already stored (`sink::payload_once`) to the partitions that can hold them.
    fn created_at(&self) -> i64;

    /// The row as a runs-table row, when it is one: runs rows serve as canaries (`sink::isolate`)
    /// because storing one again changes nothing a reader sees. Payload rows do not: the payload
    /// table may be a plain MergeTree (upstream's), where a second copy is a second row.
    fn as_run(&self) -> Option<&RunRow> {
        None
    }
}

impl SinkRow for RunRow {
    const NEUTRALISABLE: usize = 2;

    fn as_run(&self) -> Option<&RunRow> {
        Some(self)
    }

    fn neutralise(&mut self, step: usize) -> Option<&'static str> {
        match step {
            0 => {
                self.output = "{}".into();
                Some("output")
            }
            1 => {
                self.error = "{}".into();
                self.error_fingerprint.clear();
                Some("error")
            }
            _ => None,
        }
    }

    fn run_id(&self) -> &str {
        &self.run_id
    }

    fn created_at(&self) -> i64 {
        self.created_at
    }
}

impl SinkRow for PayloadRow {
    const NEUTRALISABLE: usize = 1;

    fn neutralise(&mut self, step: usize) -> Option<&'static str> {
        (step == 0).then(|| {
            self.payload = "{}".into();
            "payload"
        })
    }

    fn run_id(&self) -> &str {
        &self.run_id
    }

    fn created_at(&self) -> i64 {
        self.created_at
    }
}

/// A boxed row, as a sealed batch holds runs (`pipeline::collapse`): the row itself.
impl<T: SinkRow> SinkRow for Box<T> {
    const NEUTRALISABLE: usize = T::NEUTRALISABLE;

    fn neutralise(&mut self, step: usize) -> Option<&'static str> {
        (**self).neutralise(step)
    }

    fn run_id(&self) -> &str {
        (**self).run_id()
    }

    fn created_at(&self) -> i64 {
        (**self).created_at()
    }

    fn as_run(&self) -> Option<&RunRow> {
        (**self).as_run()
    }
}
