//! The binary under test, run as a real process: the daemon and the one-shot preflight.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{http, process};

pub const BIN: &str = env!("CARGO_BIN_EXE_runs-replicator");

/// The daemon's binary: this build's, or `RUNS_REPLICATOR_TEST_WORKER` (a release build, for a
/// long run such as the 10,000 megabyte-output updates of `hardening`).
fn daemon_bin() -> String {
    std::env::var("RUNS_REPLICATOR_TEST_WORKER").unwrap_or_else(|_| BIN.to_string())
}

/// A command for the binary with a clean environment (no inherited RUN_REPLICATION_* or
/// DATABASE_URL from the developer's shell).
pub fn command(config: &Path) -> Command {
    let mut cmd = Command::new(daemon_bin());
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg("--config")
        .arg(config);
    cmd
}

/// Runs `--check-replica-identity` and returns the process output.
pub fn preflight(config: &Path, extra: &[&str]) -> Output {
    let mut cmd = command(config);
    cmd.arg("--check-replica-identity").args(extra);
    cmd.output().expect("run runs-replicator")
}

pub struct Worker {
    pub child: Child,
    pub log: PathBuf,
    pub metrics_addr: String,
}

impl Worker {
    /// Starts the daemon with `config`, logging to a file in the config's directory.
    pub fn start(config: &Path, metrics_port: u16, envs: &[(&str, &str)]) -> Worker {
        Worker::spawn(
            command(config),
            config.parent().unwrap(),
            metrics_port,
            envs,
        )
    }

    /// Starts the daemon with no config file, configured by `envs` alone, in `dir` (which
    /// holds no `config/runs-replicator.toml`), logging to a file there.
    pub fn start_from_env(dir: &Path, metrics_port: u16, envs: &[(&str, &str)]) -> Worker {
        let mut cmd = Command::new(daemon_bin());
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .current_dir(dir);
        Worker::spawn(cmd, dir, metrics_port, envs)
    }

    fn spawn(mut cmd: Command, dir: &Path, metrics_port: u16, envs: &[(&str, &str)]) -> Worker {
        let log = dir.join(format!("worker-{}.log", process::free_port()));
        let file = std::fs::File::create(&log).unwrap();
        cmd.envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        let child = process::spawn(cmd).expect("start runs-replicator");
        Worker {
            child,
            log,
            metrics_addr: format!("127.0.0.1:{metrics_port}"),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http::get(&self.metrics_addr, path).ok()
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((200, _)) = self.get("/readyz") {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "worker exited with {status} before it was ready:\n{}",
                    self.log_text()
                );
            }
            if Instant::now() > deadline {
                panic!("worker not ready after {timeout:?}:\n{}", self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        process::signal(self.child.id(), libc::SIGTERM);
        self.child.wait().unwrap()
    }

    /// SIGKILL, as a crash.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log_text();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(150)..];
            eprintln!(
                "--- worker log ({}) ---\n{}\n--- end of worker log ---",
                self.log.display(),
                tail.join("\n")
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
