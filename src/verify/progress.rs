//! What a person and a scraper see while a verify walks its window, as for a backfill: a
//! progress bar on a terminal (runs compared of the runs ClickHouse counted when planning, rate,
//! ETA, slices), one log line per slice otherwise, and the metrics (`runs_replicator_verify_slices`,
//! `runs_replicator_verify_rows_read_total`). The daemon's background verify shows no bar and logs
//! its slices at debug level (`/readyz` says what it is doing).

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::slices::Slice;
use crate::backfill::progress::Counts;
use crate::metrics as m;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// A bar on stderr (a terminal); slice lines go to the debug log.
    Bar,
    /// One info log line per slice.
    Lines,
    /// Slice lines at debug level only (the daemon's background verify).
    Quiet,
}

pub struct Progress {
    display: Display,
    bar: Option<ProgressBar>,
    counts: Mutex<Counts>,
}

/// One slice compared, for its log line.
pub struct Compared<'a> {
    pub slice: &'a Slice,
    pub postgres_runs: u64,
    pub clickhouse_runs: u64,
    pub ranges_differing: u64,
    pub candidates: u64,
    pub clickhouse_rows_read: u64,
    pub postgres_seconds: f64,
    pub clickhouse_seconds: f64,
}

fn time(ms: Option<i64>) -> String {
    ms.map_or("-".into(), |ms| ms.to_string())
}

impl Progress {
    /// `estimate`: runs ClickHouse counted in the window; `slices` planned.
    pub fn new(display: Display, estimate: u64, slices: u64) -> Progress {
        let bar = (display == Display::Bar).then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(estimate.max(1)), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} verify [{bar:32}] {human_pos}/{human_len} runs  {per_sec}  ETA {eta}  {msg}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let progress = Progress {
            display,
            bar,
            counts: Mutex::new(Counts {
                pending: slices,
                ..Counts::default()
            }),
        };
        progress.publish();
        progress
    }

    fn publish(&self) {
        let c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        for (state, n) in c.by_state() {
            metrics::gauge!(m::VERIFY_SLICES, "state" => state).set(n as f64);
        }
        if let Some(bar) = &self.bar {
            bar.set_message(c.message("slices"));
        }
    }

    fn update(&self, f: impl FnOnce(&mut Counts)) {
        f(&mut self.counts.lock().unwrap_or_else(|e| e.into_inner()));
        self.publish();
    }

    pub fn started(&self) {
        self.update(|c| {
            c.pending = c.pending.saturating_sub(1);
            c.running += 1;
        });
    }

    /// A slice read from Postgres, or cut into `pieces` to read instead.
    pub fn read(&self, rows: u64, pieces: u64) {
        metrics::counter!(m::VERIFY_ROWS_READ, "side" => "postgres").increment(rows);
        self.update(|c| {
            c.running = c.running.saturating_sub(1);
            c.pending += pieces;
        });
    }

    pub fn compared(&self, s: &Compared<'_>) {
        metrics::counter!(m::VERIFY_ROWS_READ, "side" => "clickhouse")
            .increment(s.clickhouse_rows_read);
        self.update(|c| c.done += 1);
        if let Some(bar) = &self.bar {
            bar.inc(s.postgres_runs);
        }
        let line = || {
            format!(
                "created_at [{}, {}) ms: Postgres {} runs in {:.2} s, ClickHouse {} runs ({} rows read) in {:.2} s; {} ranges differ, {} runs to re-check",
                time(s.slice.lo),
                time(s.slice.hi),
                s.postgres_runs,
                s.postgres_seconds,
                s.clickhouse_runs,
                s.clickhouse_rows_read,
                s.clickhouse_seconds,
                s.ranges_differing,
                s.candidates
            )
        };
        match self.display {
            Display::Lines => tracing::info!("verify slice compared: {}", line()),
            Display::Bar | Display::Quiet => tracing::debug!("verify slice compared: {}", line()),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
