//! Log output: `tracing` to stderr, human-readable by default, JSON lines for log pipelines.
//!
//! The filter is `log.level`, which the configuration reads from the file, the environment
//! (`RUST_LOG` included, the usual escape hatch while debugging) and `--log-level`, and which it
//! checks: it never silences the worker's own lines. The configuration's warnings (trigger.dev
//! variables it ignores, URL parameters, `--null-sink`) go to their own target, which shows at
//! every level: at trigger.dev's `log` level too, a person must see what the worker ignored.
//!
//! **Logging never takes the control path with it.** A log line is formatted where it is
//! logged and handed to a thread of its own ([`LogGuard`]), which writes it to stderr; the
//! hand-over never waits. stderr may be a pipe whose reader died (a log shipper that crashed,
//! `| head`: every write fails with EPIPE; Rust ignores SIGPIPE, so the process is not killed)
//! or one nobody reads any more (every write blocks once the pipe's 64 KiB are full). Written
//! from the streaming loop's own thread, as `tracing-subscriber`'s writer does, the first case
//! panicked (its writer reports a failed write with `eprintln!`, which panics when stderr fails)
//! and the second stalled every stream and the shutdown with it. Here a line the writer thread
//! cannot write is dropped and counted (`runs_replicator_log_lines_dropped_total{reason=
//! "write_failed"}`), and so is a line that finds [`BACKLOG`] lines still waiting
//! (`reason="backlog_full"`, the writer is stuck); the loop goes on either way. At exit the
//! guard gives the writer [`FLUSH_GRACE`] to write what is queued, never longer.

use std::io::{IsTerminal, Write};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{Config, LogConfig, LogFormat};
use crate::metrics as m;

/// The target of the configuration's warnings, enabled at `warn` whatever the filter says.
pub const CONFIG_TARGET: &str = "runs_replicator::config";

/// Lines waiting for the writer thread before new ones are dropped: a burst of a few thousand
/// lines is kept, a stuck stderr costs at most this many lines of memory.
const BACKLOG: usize = 4096;

/// How long the exit waits for the queued lines to be written.
const FLUSH_GRACE: Duration = Duration::from_millis(500);

/// What the writer thread is sent: a line, or a request to confirm everything before it is
/// written.
enum Entry {
    Line(Vec<u8>),
    Flush(SyncSender<()>),
}

/// Keeps the writer thread's queue; flushes it (bounded) when dropped, at the process's end.
pub struct LogGuard {
    queue: Option<SyncSender<Entry>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let Some(queue) = self.queue.take() else {
            return;
        };
        let (done, written) = mpsc::sync_channel(1);
        if queue.try_send(Entry::Flush(done)).is_ok() {
            let _ = written.recv_timeout(FLUSH_GRACE);
        }
    }
}

/// Hands formatted lines to the writer thread without waiting.
#[derive(Clone)]
struct Queue(SyncSender<Entry>);

/// One event being formatted: sent as one line when the formatter is done with it.
struct Line {
    queue: SyncSender<Entry>,
    text: Vec<u8>,
}

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.text.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.text);
        match self.queue.try_send(Entry::Line(text)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => dropped("backlog_full"),
            Err(TrySendError::Disconnected(_)) => dropped("write_failed"),
        }
    }
}

impl<'a> MakeWriter<'a> for Queue {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            queue: self.0.clone(),
            text: Vec::with_capacity(256),
        }
    }
}

fn dropped(reason: &'static str) {
    metrics::counter!(m::LOG_LINES_DROPPED, "reason" => reason).increment(1);
}

/// The writer thread: writes each line to `out`; a line that cannot be written is counted and
/// dropped, never retried (a dead reader stays dead).
fn write_lines(entries: Receiver<Entry>, mut out: impl Write) {
    for entry in entries {
        match entry {
            Entry::Line(text) => {
                if out.write_all(&text).is_err() {
                    dropped("write_failed");
                }
            }
            Entry::Flush(done) => {
                let _ = out.flush();
                let _ = done.try_send(());
            }
        }
    }
}

/// Starts logging; keep the guard until the process ends (dropping it flushes).
pub fn init(config: &LogConfig) -> LogGuard {
    // The configuration validated the filter (`RUST_LOG` is one of its names); the fallback
    // only guards a caller that did not.
    let filter = EnvFilter::try_new(&config.level)
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive(
            format!("{CONFIG_TARGET}=warn")
                .parse()
                .expect("a valid directive"),
        );
    let (queue, entries) = mpsc::sync_channel(BACKLOG);
    let spawned = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_lines(entries, std::io::stderr()));
    if spawned.is_err() {
        // No thread, no logs: the worker runs on without them rather than not at all.
        return LogGuard { queue: None };
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Queue(queue.clone()))
        // The writer never fails; were it to, an `eprintln!` about it is what must not happen.
        .log_internal_errors(false)
        // Colours only for a person at a terminal, not for files and log collectors.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let _ = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    LogGuard { queue: Some(queue) }
}

/// One configuration warning, shown at every level.
pub fn config_warning(message: &str) {
    tracing::warn!(target: CONFIG_TARGET, "{message}");
}

/// Every warning the configuration collected, shown at every level.
pub fn config_warnings(config: &Config) {
    for warning in config.warnings() {
        config_warning(warning);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that fails every write, as stderr does once its pipe's reader is gone.
    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn lines_that_cannot_be_written_are_dropped_and_the_flush_still_returns() {
        let (queue, entries) = mpsc::sync_channel(4);
        let writer = std::thread::spawn(move || write_lines(entries, Broken));
        for _ in 0..3 {
            let mut line = Queue(queue.clone()).make_writer();
            line.write_all(b"a line\n").unwrap();
        }
        let guard = LogGuard { queue: Some(queue) };
        let started = std::time::Instant::now();
        drop(guard);
        assert!(started.elapsed() < FLUSH_GRACE);
        writer.join().expect("the writer thread does not panic");
    }

    #[test]
    fn a_stuck_writer_never_blocks_the_logger_and_the_exit_waits_only_the_grace() {
        let (queue, entries) = mpsc::sync_channel(2);
        // Never reads: as a pipe nobody reads, once full.
        let started = std::time::Instant::now();
        for _ in 0..100 {
            let mut line = Queue(queue.clone()).make_writer();
            line.write_all(b"a line\n").unwrap();
        }
        assert!(started.elapsed() < Duration::from_millis(100));
        drop(LogGuard { queue: Some(queue) });
        assert!(started.elapsed() < FLUSH_GRACE + Duration::from_millis(100));
        drop(entries);
    }
}
