//! What a person and a scraper see while a backfill runs: a progress bar on a terminal (rows
//! done of the planned total, rate, ETA), one log line per chunk otherwise, and the metrics
//! (`runs_replicator_backfill_*`, exported by whichever process serves /metrics).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::checkpoint::ChunkDone;
use super::chunks::Chunk;
use crate::metrics as m;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// A bar on stderr (a terminal); chunk lines go to the debug log.
    Bar,
    /// One info log line per chunk.
    Lines,
}

pub struct Progress {
    bar: Option<ProgressBar>,
    counts: Mutex<Counts>,
    rows: AtomicU64,
}

/// Units of work (a backfill's chunks, a verify's slices) by state.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub pending: u64,
    pub running: u64,
    pub done: u64,
}

impl Counts {
    /// Each state and its count, for a `{state}` gauge.
    pub fn by_state(&self) -> [(&'static str, u64); 3] {
        [
            ("pending", self.pending),
            ("running", self.running),
            ("done", self.done),
        ]
    }

    /// `<noun> done/total`, the bar's message.
    pub fn message(&self, noun: &str) -> String {
        let total = self.done + self.running + self.pending;
        format!("{noun} {}/{total}", self.done)
    }
}

impl Progress {
    /// `total_rows` planned for the chunks still to copy; `pending` chunks to copy, `done`
    /// chunks finished earlier.
    pub fn new(display: Display, total_rows: u64, pending: u64, done: u64) -> Progress {
        let bar = (display == Display::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(total_rows.max(1)),
                ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} backfill [{bar:32}] {human_pos}/{human_len} rows  {per_sec}  ETA {eta}  {msg}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        metrics::gauge!(m::BACKFILL_RUNNING).set(1.0);
        let progress = Progress {
            bar,
            counts: Mutex::new(Counts {
                pending,
                running: 0,
                done,
            }),
            rows: AtomicU64::new(0),
        };
        progress.publish();
        progress
    }

    fn publish(&self) {
        let c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        for (state, n) in c.by_state() {
            metrics::gauge!(m::BACKFILL_CHUNKS, "state" => state).set(n as f64);
        }
        if let Some(bar) = &self.bar {
            bar.set_message(c.message("chunks"));
        }
    }

    pub fn chunk_started(&self) {
        {
            let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            c.pending = c.pending.saturating_sub(1);
            c.running += 1;
        }
        self.publish();
    }

    pub fn rows(&self, table: &str, n: u64) {
        self.rows.fetch_add(n, Ordering::Relaxed);
        metrics::counter!(m::BACKFILL_ROWS, "table" => table.to_string()).increment(n);
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    pub fn chunk_done(&self, chunk: &Chunk, done: &ChunkDone) {
        {
            let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            c.running = c.running.saturating_sub(1);
            c.done += 1;
        }
        self.publish();
        let rate = done.rows_read as f64 / done.seconds.max(1e-6);
        if self.bar.is_some() {
            tracing::debug!(table = %chunk.table, chunk = chunk.index, rows = done.rows_read, "chunk copied");
        } else {
            tracing::info!(
                table = %chunk.table,
                chunk = chunk.index,
                rows_read = done.rows_read,
                rows_written = done.rows_written,
                skipped = done.skipped,
                rejected = done.rejected,
                seconds = format!("{:.2}", done.seconds),
                rows_per_s = rate.round() as u64,
                "backfill chunk copied"
            );
        }
    }

    /// Rows read so far in this run.
    pub fn rows_read(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        metrics::gauge!(m::BACKFILL_RUNNING).set(0.0);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
