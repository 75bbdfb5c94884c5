//! Logging never takes the control path with it: a worker whose stderr is a pipe nobody reads
//! any more (a log shipper that died, `| head`) still streams, and SIGTERM still ends in a
//! flush and an exit.

use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;
use std::time::{Duration, Instant};

use runs_replicator::testing::metrics::sum as metric_sum;

use crate::support::TestEnv;
use crate::support::expect::assert_converges;
use crate::support::process;
use crate::support::runs::insert;
use crate::support::worker::{Worker, command};

/// A pipe: (read end, write end).
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0i32; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Starts the worker with stderr (and stdout) the write end of a pipe; `reader` decides what
/// happens to the read end. Returns the worker and the read end if kept.
fn start(env: &TestEnv, keep_reader: bool) -> (Worker, Option<OwnedFd>) {
    let port = process::free_port();
    // Debug logging of every batch: the pipe (64 KiB) fills within seconds of streaming.
    let config = env.write_config(
        port,
        "[log]\nlevel = \"debug\"\n[batch]\nmax_rows = 20\nflush_interval_ms = 50\n",
    );
    let (read, write) = pipe();
    let mut cmd = command(&config);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(write.try_clone().unwrap()))
        .stderr(Stdio::from(write));
    let child = process::spawn(cmd).expect("start runs-replicator");
    let reader = if keep_reader {
        Some(read)
    } else {
        drop(read);
        None
    };
    let log = config.parent().unwrap().join("no-log-file");
    (
        Worker {
            child,
            log,
            metrics_addr: format!("127.0.0.1:{port}"),
        },
        reader,
    )
}

async fn streams_and_stops_with_stderr_unread(label: &str, keep_reader: bool) {
    let env = TestEnv::new(label).await;
    let (mut worker, _reader) = start(&env, keep_reader);
    worker.wait_ready(Duration::from_secs(90)).await;
    let pg = env.pg_client().await;
    for i in 0..1500 {
        insert(&pg, "\"TaskRun\"", &format!("run_lp_{i:03}"), &[]).await;
    }
    println!(
        "injected: stderr is a pipe whose reader {}; 1,500 runs written with debug logging",
        if keep_reader {
            "never reads"
        } else {
            "is gone"
        }
    );
    assert_converges(&env, Duration::from_secs(90)).await;
    let (_, metrics) = worker.get("/metrics").expect("metrics answer");
    let failed = metric_sum(&metrics, "runs_replicator_log_lines_dropped_total");
    println!("checked: every run arrived; {failed} log lines dropped (counted)");
    if !keep_reader {
        assert!(failed > 0.0, "the lines stderr refused are counted");
    }

    let started = Instant::now();
    process::signal(worker.child.id(), libc::SIGTERM);
    let status = loop {
        if let Some(status) = worker.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the worker still runs {:?} after SIGTERM",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "checked: SIGTERM ended the worker in {:?} with {status}",
        started.elapsed()
    );
    assert!(status.success(), "exit 0 after SIGTERM: {status}");
}

#[tokio::test]
async fn a_closed_log_pipe_neither_stalls_streaming_nor_blocks_shutdown() {
    streams_and_stops_with_stderr_unread("log_pipe_closed", false).await;
}

#[tokio::test]
async fn a_log_pipe_nobody_reads_neither_stalls_streaming_nor_blocks_shutdown() {
    streams_and_stops_with_stderr_unread("log_pipe_full", true).await;
}
