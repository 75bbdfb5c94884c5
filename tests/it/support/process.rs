//! Child processes that die with the test binary.
//!
//! Every service a test starts (Postgres, the ClickHouse front, the worker under test) is spawned
//! from one thread that lives as long as the process, with `PR_SET_PDEATHSIG`, so a test binary
//! that panics, exits or is killed takes its services with it. The temporary directories are
//! removed at exit, and leftovers of a killed run are swept at the next start.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

type Request = (Command, mpsc::Sender<std::io::Result<Child>>);

static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
static CLEANUP: Mutex<Vec<Cleanup>> = Mutex::new(Vec::new());

enum Cleanup {
    Pid(u32),
    Dir(PathBuf),
}

const DIR_PREFIX: &str = "rr-it-";

extern "C" fn at_exit() {
    let items = std::mem::take(&mut *CLEANUP.lock().unwrap_or_else(|e| e.into_inner()));
    for item in &items {
        if let Cleanup::Pid(pid) = item {
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
    }
    for item in &items {
        if let Cleanup::Dir(dir) = item {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn spawner() -> &'static Mutex<mpsc::Sender<Request>> {
    SPAWNER.get_or_init(|| {
        sweep_leftovers();
        unsafe { libc::atexit(at_exit) };
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("test-services".into())
            .spawn(move || {
                // The parent-death signal belongs to this thread: it must outlive every child.
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
                loop {
                    std::thread::park();
                }
            })
            .expect("spawn the service thread");
        Mutex::new(tx)
    })
}

/// Spawns `cmd` so that it is killed when the test binary exits.
pub fn spawn(mut cmd: Command) -> std::io::Result<Child> {
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    spawner()
        .lock()
        .unwrap()
        .send((cmd, tx))
        .expect("service thread alive");
    let child = rx.recv().expect("service thread answers")?;
    CLEANUP.lock().unwrap().push(Cleanup::Pid(child.id()));
    Ok(child)
}

/// A fresh directory under the system temp dir, removed when the test binary exits.
pub fn temp_dir(label: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    spawner();
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}-{label}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    CLEANUP.lock().unwrap().push(Cleanup::Dir(dir.clone()));
    dir
}

/// Removes directories of earlier runs whose process is gone (a run killed with SIGKILL).
fn sweep_leftovers() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix(DIR_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released for the service to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Sends `signal` to `pid`.
pub fn signal(pid: u32, signal: i32) {
    unsafe { libc::kill(pid as i32, signal) };
}

/// Which of `pids` owns each local TCP port (client sockets to servers on this host, as a
/// server's `pg_stat_activity.client_port` names them), read from /proc: the socket inodes of
/// `/proc/net/tcp{,6}` by local port, and each process's descriptors.
pub fn tcp_port_owners(pids: &[u32]) -> std::collections::HashMap<u16, u32> {
    let mut owner_of_inode = std::collections::HashMap::new();
    for &pid in pids {
        for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(target) = std::fs::read_link(fd.path())
                && let Some(inode) = target
                    .to_str()
                    .and_then(|t| t.strip_prefix("socket:["))
                    .and_then(|t| t.strip_suffix(']'))
            {
                owner_of_inode.insert(inode.to_string(), pid);
            }
        }
    }
    let mut owners = std::collections::HashMap::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let port = cols
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if let (Some(port), Some(pid)) =
                (port, cols.get(9).and_then(|i| owner_of_inode.get(*i)))
            {
                owners.insert(port, *pid);
            }
        }
    }
    owners
}

/// The pids of `pid`'s children (from `/proc/<pid>/stat`'s parent field).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    // `pid (comm) state ppid …`: comm may hold spaces and parentheses.
                    let rest = &stat[stat.rfind(')')? + 2..];
                    rest.split(' ').nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}
