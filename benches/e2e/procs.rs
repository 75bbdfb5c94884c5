//! Child processes and what the kernel says about them: CPU time, peak RSS, exit.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Clock ticks per second for /proc/<pid>/stat.
fn ticks() -> f64 {
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// User + system CPU seconds of a live process (all its threads), from /proc/<pid>/stat.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    cpu_split(pid).map(|(u, s)| u + s)
}

/// (user, system) CPU seconds of a live process.
pub fn cpu_split(pid: u32) -> Option<(f64, f64)> {
    stat(pid).map(|s| (s.user, s.system))
}

/// What /proc/<pid>/stat says of a live process.
struct Stat {
    parent: u32,
    user: f64,
    system: f64,
}

fn stat(pid: u32) -> Option<Stat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After "pid (comm) ": state, ppid, …, utime (14th field), stime (15th).
    let f: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    Some(Stat {
        parent: f.get(1)?.parse().ok()?,
        user: f.get(11)?.parse::<f64>().ok()? / ticks(),
        system: f.get(12)?.parse::<f64>().ok()? / ticks(),
    })
}

/// (busy, all) CPU seconds of the whole machine since boot, summed over its cores (/proc/stat):
/// how much of the machine the processes of a run left idle.
pub fn machine_cpu() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<f64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user already)
    let all: f64 = f.iter().take(8).sum();
    let idle = f.get(3)? + f.get(4).unwrap_or(&0.0);
    Some(((all - idle) / ticks(), all / ticks()))
}

/// CPU seconds a Postgres cluster spent while watched: its postmaster (`pid`) and every process it
/// started. A backend's time vanishes from /proc when it exits (the load's sessions end before
/// the load is measured), so each process is sampled ([`ClusterCpu::sample`], about once a second)
/// and what it used while watched is kept: since the first sample for a process alive then, all
/// of it for one started later.
pub struct ClusterCpu {
    postmaster: u32,
    /// pid → (CPU seconds when watching started, when last seen).
    seen: std::collections::HashMap<u32, (f64, f64)>,
    started: bool,
}

impl ClusterCpu {
    pub fn new(postmaster: u32) -> ClusterCpu {
        let mut c = ClusterCpu {
            postmaster,
            seen: Default::default(),
            started: false,
        };
        c.sample();
        c.started = true;
        c
    }

    pub fn sample(&mut self) {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Some(st) = stat(pid) else { continue };
            if pid != self.postmaster && st.parent != self.postmaster {
                continue;
            }
            let cpu = st.user + st.system;
            let before = if self.started { 0.0 } else { cpu };
            self.seen
                .entry(pid)
                .and_modify(|e| e.1 = cpu)
                .or_insert((before, cpu));
        }
    }

    /// CPU seconds used while watched, up to the last sample.
    pub fn used(&self) -> f64 {
        self.seen.values().map(|(first, last)| last - first).sum()
    }
}

/// A `kB` line of /proc/<pid>/status (VmHWM: peak RSS, VmRSS: current), in MiB.
pub fn status_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// How often the threads of a live process went to sleep waiting (voluntary context switches,
/// summed over /proc/<pid>/task/*/status): each is a wake-up later, the price of an event loop
/// that blocks between arrivals.
pub fn sleeps(pid: u32) -> Option<u64> {
    let mut sum = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let status = std::fs::read_to_string(task.ok()?.path().join("status")).ok()?;
        let line = status
            .lines()
            .find(|l| l.starts_with("voluntary_ctxt_switches:"))?;
        sum += line.split_whitespace().nth(1)?.parse::<u64>().ok()?;
    }
    Some(sum)
}

/// A finished child: when it ended and what it used (from wait4's rusage).
pub struct Exit {
    pub at: Instant,
    pub success: bool,
    pub cpu_s: f64,
    pub sys_s: f64,
    pub max_rss_mib: f64,
}

/// Polls for the exit of `child` every 2 ms, up to `timeout`; reaps it with wait4 for its rusage.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<Exit> {
    let deadline = Instant::now() + timeout;
    let pid = child.id() as i32;
    loop {
        let mut status = 0;
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            return Some(Exit {
                at: Instant::now(),
                success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                cpu_s: tv(usage.ru_utime) + tv(usage.ru_stime),
                sys_s: tv(usage.ru_stime),
                max_rss_mib: usage.ru_maxrss as f64 / 1024.0,
            });
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub fn spawn(cmd: &mut Command) -> Child {
    cmd.spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

pub fn signal(pid: u32, sig: i32) {
    unsafe { libc::kill(pid as i32, sig) };
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// GET `path` on `addr`; the body of a 200 answer.
pub fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// The upper bound of the bucket holding quantile `q` of cumulative histogram buckets
/// (`runs_replicator::testing::metrics::buckets`).
pub fn bucket_quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total == 0.0 {
        return None;
    }
    buckets
        .iter()
        .find(|(_, c)| *c >= q * total)
        .map(|(le, _)| *le)
}
