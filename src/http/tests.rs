//! The endpoint's bounds against real sockets: a server from `serve_with` on 127.0.0.1 and raw TCP
//! clients that misbehave the way slow or hostile clients do. Limits are shortened so each test
//! takes a few seconds; `--nocapture` prints what each injects and checks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Limits, serve_with};
use crate::health::Health;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn limits(header_read_timeout: Duration, max_connection_age: Duration) -> Limits {
    Limits {
        header_read_timeout,
        max_connection_age,
        close_grace: Duration::from_secs(1),
        max_connections: 8,
    }
}

async fn start_with(limits: Limits, metrics: PrometheusHandle) -> std::net::SocketAddr {
    let health = Arc::new(Health::new(
        Duration::from_secs(30),
        &["default".to_string()],
    ));
    serve_with("127.0.0.1:0".parse().unwrap(), metrics, health, limits)
        .await
        .expect("bind 127.0.0.1:0")
}

async fn start(limits: Limits) -> std::net::SocketAddr {
    start_with(limits, PrometheusBuilder::new().build_recorder().handle()).await
}

/// Reads until the server closes the connection (EOF, or a reset when it closed with our bytes
/// unread), or `max` passes. Returns what was read and when it closed.
async fn read_until_closed(stream: &mut (impl AsyncReadExt + Unpin), max: Duration) -> Closed {
    let t = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(max.saturating_sub(t.elapsed()), stream.read(&mut buf)).await {
            Err(_) => return Closed { after: None, got },
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Closed {
                    after: Some(t.elapsed()),
                    got,
                };
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

struct Closed {
    /// `None`: still open when the wait ended.
    after: Option<Duration>,
    got: Vec<u8>,
}

impl Closed {
    fn status_line(&self) -> String {
        let text = String::from_utf8_lossy(&self.got);
        text.lines().next().unwrap_or("(nothing)").to_string()
    }
}

/// One `GET` on its own connection; the status line, or `None` when nothing came within `max`.
async fn get(addr: std::net::SocketAddr, path: &str, max: Duration) -> Option<String> {
    let mut c = TcpStream::connect(addr).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    c.write_all(req.as_bytes()).await.ok()?;
    let closed = read_until_closed(&mut c, max).await;
    closed.after.map(|_| closed.status_line())
}

/// Reads one response with a Content-Length body from a keep-alive connection; `None` when the
/// connection closed first.
async fn read_response(c: &mut TcpStream) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return head.lines().next().map(str::to_string);
            }
        }
        match c.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_client_that_sends_nothing_is_disconnected_after_the_header_timeout() {
    let addr = start(limits(ms(500), Duration::from_secs(30))).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    eprintln!("injected: a client that connects and sends nothing (header_read_timeout 500 ms)");
    let closed = read_until_closed(&mut c, Duration::from_secs(5)).await;
    eprintln!(
        "checked: the server closed it after {:?}, sending {:?}",
        closed.after,
        closed.status_line()
    );
    let after = closed
        .after
        .expect("still open after 5 s: no header read timeout");
    assert!(
        after >= ms(400) && after < Duration::from_secs(3),
        "closed after {after:?}, want about 500 ms"
    );
    assert_eq!(
        get(addr, "/healthz", Duration::from_secs(2))
            .await
            .as_deref(),
        Some("HTTP/1.1 200 OK"),
        "the server still answers"
    );

    // The same clock bounds a keep-alive connection idle between requests.
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        read_response(&mut c).await.as_deref(),
        Some("HTTP/1.1 200 OK")
    );
    eprintln!("injected: a keep-alive connection left idle after one request");
    let closed = read_until_closed(&mut c, Duration::from_secs(5)).await;
    eprintln!(
        "checked: the server closed it after {:?} idle",
        closed.after
    );
    let after = closed
        .after
        .expect("an idle keep-alive connection stayed open 5 s");
    assert!(
        after >= ms(400) && after < Duration::from_secs(3),
        "closed after {after:?} idle, want about 500 ms"
    );
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_disconnected_after_the_header_timeout() {
    let addr = start(limits(ms(500), Duration::from_secs(30))).await;
    let (mut r, mut w) = TcpStream::connect(addr).await.unwrap().into_split();
    // About 200 bytes at one per 50 ms would take 10 s: each byte arrives well within any per-read
    // timeout, only a bound on the whole head stops it.
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: {}\r\n\r\n",
        "a".repeat(150)
    );
    eprintln!(
        "injected: a request head of {} bytes sent one byte every 50 ms (header_read_timeout 500 ms)",
        request.len()
    );
    let writer = tokio::spawn(async move {
        let mut sent = 0;
        for b in request.bytes() {
            if w.write_all(&[b]).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(ms(50)).await;
        }
        sent
    });
    let closed = read_until_closed(&mut r, Duration::from_secs(5)).await;
    writer.abort();
    eprintln!(
        "checked: the server closed it after {:?}, sending {:?}",
        closed.after,
        closed.status_line()
    );
    let after = closed
        .after
        .expect("still open after 5 s: the trickle kept the connection");
    assert!(
        after >= ms(400) && after < Duration::from_secs(3),
        "closed after {after:?}, want about 500 ms"
    );
    assert!(
        !closed.status_line().contains("200"),
        "the request must not have been served"
    );
}

#[tokio::test]
async fn a_busy_keep_alive_connection_is_closed_at_its_age_limit() {
    let addr = start(limits(Duration::from_secs(1), ms(1500))).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    eprintln!(
        "injected: a client sending GET /healthz every 200 ms on one keep-alive connection \
         (header_read_timeout 1 s, so it is never idle long enough; max_connection_age 1.5 s)"
    );
    let t = Instant::now();
    let mut served = 0;
    let closed_after = loop {
        if t.elapsed() > Duration::from_secs(5) {
            break None;
        }
        let req = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";
        if c.write_all(req).await.is_err() {
            break Some(t.elapsed());
        }
        match read_response(&mut c).await {
            Some(status) => {
                assert_eq!(status, "HTTP/1.1 200 OK");
                served += 1;
            }
            None => break Some(t.elapsed()),
        }
        tokio::time::sleep(ms(200)).await;
    };
    eprintln!("checked: {served} requests served, then closed after {closed_after:?}");
    let after = closed_after.expect("still open after 5 s: no connection age limit");
    assert!(
        after >= ms(1400) && after < Duration::from_secs(3),
        "closed after {after:?}, want about 1.5 s"
    );
    assert!(
        served >= 4,
        "only {served} requests served before the close"
    );
}

// Two workers: rendering the large page must not hold up the timers this test measures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_its_responses_is_dropped_after_the_grace() {
    // A large /metrics page: 20,000 series, about 0.6 MB per response.
    let recorder = PrometheusBuilder::new().build_recorder();
    metrics::with_local_recorder(&recorder, || {
        for i in 0..20_000 {
            metrics::counter!("padding_total", "series" => i.to_string()).increment(1);
        }
    });
    let limits = Limits {
        header_read_timeout: Duration::from_secs(30),
        max_connection_age: Duration::from_secs(1),
        close_grace: Duration::from_secs(1),
        max_connections: 1,
    };
    let addr = start_with(limits, recorder.handle()).await;
    // A small receive buffer and 40 pipelined requests (about 24 MB of responses, far more than
    // the socket buffers hold): the server's write blocks and no request boundary is reached.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let since_hog = Instant::now();
    let mut hog = socket.connect(addr).await.unwrap();
    hog.write_all(&b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n".repeat(40))
        .await
        .unwrap();
    eprintln!(
        "injected: a client that pipelines 40 GET /metrics (0.6 MB each) and reads nothing, \
         holding the only connection slot (max_connections 1, max_connection_age 1 s, \
         close_grace 1 s, header_read_timeout 30 s)"
    );
    tokio::time::sleep(ms(300)).await;
    // Rendering 20,000 series is slow on a loaded machine: the bound is generous, since without
    // the grace the slot is held for as long as the client does not read (forever).
    let status = get(addr, "/healthz", Duration::from_secs(15)).await;
    let served = since_hog.elapsed();
    eprintln!(
        "checked: a second client, connecting 0.3 s after the first, got {status:?} {served:?} \
         after the first connected"
    );
    assert_eq!(
        status.as_deref(),
        Some("HTTP/1.1 200 OK"),
        "the stuck connection kept the only slot for 15 s: it was never dropped"
    );
    // Timers fire late under load, never early: not before age + grace.
    assert!(
        served >= ms(1900) && served < Duration::from_secs(15),
        "served {served:?} after the first connected, want about 2 s (age + grace)"
    );
    drop(hog);
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_a_slot_frees() {
    let limits = Limits {
        header_read_timeout: Duration::from_secs(30),
        max_connection_age: Duration::from_secs(60),
        close_grace: Duration::from_secs(1),
        max_connections: 3,
    };
    let addr = start(limits).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // Let the server accept all three before the next one arrives.
    tokio::time::sleep(ms(200)).await;
    eprintln!(
        "injected: 3 idle connections holding every slot (max_connections 3), then 3 GET /healthz"
    );
    let waiting: Vec<_> = (0..3)
        .map(|_| tokio::spawn(get(addr, "/healthz", Duration::from_secs(10))))
        .collect();
    tokio::time::sleep(ms(1000)).await;
    let served_early = waiting.iter().filter(|h| h.is_finished()).count();
    eprintln!("checked: after 1 s with every slot held, {served_early} of 3 requests answered");
    assert_eq!(served_early, 0, "a connection beyond the cap was served");

    let t = Instant::now();
    held.pop();
    eprintln!("injected: one held connection closed");
    for h in waiting {
        let status = h.await.unwrap();
        assert_eq!(status.as_deref(), Some("HTTP/1.1 200 OK"));
    }
    // The three queued requests go through the one freed slot in turn.
    eprintln!(
        "checked: all 3 waiting requests answered {:?} after one slot freed",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(3));

    held.clear();
    let status = get(addr, "/healthz", Duration::from_secs(2)).await;
    eprintln!("checked: with the load gone, /healthz answers {status:?}");
    assert_eq!(status.as_deref(), Some("HTTP/1.1 200 OK"));
}

/// Set in the child process `accept_errors_back_off_instead_of_spinning` starts.
const EMFILE_CHILD: &str = "RUNS_REPLICATOR_TEST_EMFILE_CHILD";

/// Runs the accept loop in a child process whose descriptors are exhausted (RLIMIT_NOFILE lowered,
/// the rest filled with /dev/null) with a connection pending, so every accept() fails with
/// EMFILE; the child reports its CPU time and whether the pending connection is served once the
/// descriptors are freed.
#[test]
fn accept_errors_back_off_instead_of_spinning() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "http::tests::accept_loop_with_descriptors_exhausted",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(EMFILE_CHILD, "1")
        .output()
        .expect("run the test binary as a child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // libtest may print "test <name> ... " on the same line before the child's first line.
    let value = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.split_once(key).map(|(_, v)| v.to_string()))
    };
    eprintln!(
        "injected: a child process with every descriptor taken and a connection pending, for 1.5 s"
    );
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    let cpu_ms: u64 = value("CPU_MS=")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no CPU_MS from the child:\n{stdout}\n{stderr}"));
    let logged: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("accept() failed"))
        .collect();
    let recovered = value("AFTER_FREEING=").unwrap_or_default();
    eprintln!(
        "checked: the loop used {cpu_ms} ms of CPU in 1.5 s; logged {logged:?}; once \
         descriptors were freed the pending request got {recovered:?}"
    );
    assert!(
        logged.iter().all(|l| l.contains("Too many open files")),
        "accept() did not fail with EMFILE:\n{stderr}"
    );
    assert!(
        cpu_ms < 250,
        "the accept loop used {cpu_ms} ms of CPU in 1.5 s: it spins on EMFILE"
    );
    assert_eq!(logged.len(), 1, "want one rate-limited line:\n{stderr}");
    assert_eq!(recovered, "HTTP/1.1 200 OK");
}

#[test]
#[ignore = "the child process of accept_errors_back_off_instead_of_spinning"]
fn accept_loop_with_descriptors_exhausted() {
    if std::env::var_os(EMFILE_CHILD).is_none() {
        return; // lowering RLIMIT_NOFILE would starve the other tests of this process
    }
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let addr = start(Limits::default()).await;
        // The client's descriptor exists before the table is filled; connecting needs no other.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        let filler = exhaust_descriptors();
        // The handshake completes in the kernel; the server's accept() needs a descriptor.
        let mut client = socket.connect(addr).await.unwrap();
        let before = cpu_time();
        tokio::time::sleep(ms(1500)).await;
        println!("CPU_MS={}", (cpu_time() - before).as_millis());
        drop(filler);
        client
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let closed = read_until_closed(&mut client, Duration::from_secs(3)).await;
        println!("AFTER_FREEING={}", closed.status_line());
    });
}

/// Lowers the soft descriptor limit and opens /dev/null until it is reached.
fn exhaust_descriptors() -> Vec<std::fs::File> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_cur.min(256);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    let mut files = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        files.push(f);
    }
    files
}

/// User and system CPU time of this process.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct passed.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}
