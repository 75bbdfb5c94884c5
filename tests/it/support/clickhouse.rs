//! The ClickHouse engine for the tests: the project's chDB front (`tools/chserver`), or a real
//! server named by `CLICKHOUSE_URL`. Each test gets its own database with the shipped schema.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{http, process};

pub struct ChServer {
    pub url: String,
    /// `--user` / `--password` the front requires, used by the tests' own clients.
    pub user: Option<String>,
    pub password: Option<String>,
    /// The CA (PEM) the tests' own clients trust for an `https://` front; see `with_ca_file`.
    pub ca_file: Option<PathBuf>,
    dir: Option<PathBuf>,
    port: u16,
    extra_args: Vec<String>,
    child: Mutex<Option<Child>>,
}

/// The venv Python that has chdb-core (scripts/setup-python.sh creates it).
pub fn python() -> PathBuf {
    match std::env::var_os("RUNS_REPLICATOR_VENV") {
        Some(v) => PathBuf::from(v).join("bin/python"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
    }
}

impl ChServer {
    /// Starts the chDB front on a free port in a fresh data directory.
    pub fn start(extra_args: &[&str]) -> ChServer {
        let dir = process::temp_dir("ch");
        let port = process::free_port();
        let scheme = if extra_args.contains(&"--tls-cert") {
            "https"
        } else {
            "http"
        };
        let arg = |name: &str| {
            extra_args
                .iter()
                .position(|a| *a == name)
                .and_then(|i| extra_args.get(i + 1))
                .map(|v| v.to_string())
        };
        let server = ChServer {
            url: format!("{scheme}://127.0.0.1:{port}"),
            user: arg("--user"),
            password: arg("--password"),
            ca_file: None,
            dir: Some(dir),
            port,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            child: Mutex::new(None),
        };
        server.launch();
        server
    }

    pub fn external(url: &str) -> ChServer {
        ChServer {
            url: url.trim_end_matches('/').to_string(),
            user: None,
            password: None,
            ca_file: None,
            dir: None,
            port: 0,
            extra_args: Vec::new(),
            child: Mutex::new(None),
        }
    }

    fn launch(&self) {
        let dir = self
            .dir
            .as_ref()
            .expect("only the local front can be started");
        let python = python();
        assert!(
            python.exists(),
            "{} is missing: run scripts/setup-python.sh (or set CLICKHOUSE_URL)",
            python.display()
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/chserver/chserver.py");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("chserver.log"))
            .unwrap();
        let mut cmd = Command::new(python);
        cmd.arg(script)
            .arg("--path")
            .arg(dir.join("db"))
            .args(["--port", &self.port.to_string()])
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = process::spawn(cmd).expect("start chserver");
        *self.child.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let https = self.url.starts_with("https");
        loop {
            let up = if https {
                std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            } else {
                matches!(
                    http::get(&format!("127.0.0.1:{}", self.port), "/ping"),
                    Ok((200, _))
                )
            };
            if up {
                return;
            }
            if let Ok(Some(status)) = self.child.lock().unwrap().as_mut().unwrap().try_wait() {
                let log = std::fs::read_to_string(dir.join("chserver.log")).unwrap_or_default();
                panic!("chserver exited with {status}:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "chserver did not answer /ping in 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server's process (SIGSTOP) or lets it go on (SIGCONT): a stall, where
    /// connections are accepted and nothing is answered.
    pub fn stall(&self, stalled: bool) {
        if let Some(child) = self.child.lock().unwrap().as_ref() {
            process::signal(
                child.id(),
                if stalled {
                    libc::SIGSTOP
                } else {
                    libc::SIGCONT
                },
            );
        }
    }

    /// Kills the server (SIGKILL), as an outage.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and data.
    pub fn restart(&self) {
        self.kill();
        self.launch();
    }

    /// Trust `ca` (PEM) in the tests' own clients of this `https://` front.
    pub fn with_ca_file(mut self, ca: &Path) -> ChServer {
        self.ca_file = Some(ca.to_path_buf());
        self
    }

    /// A client for `database` (no compression surprises: the crate's defaults, LZ4).
    pub fn client(&self, database: &str) -> clickhouse::Client {
        self.server_client().with_database(database)
    }

    /// A client without a database: plain HTTP through the crate's default client, HTTPS through
    /// rustls trusting `ca_file` (the crate's default client cannot do HTTPS); with the
    /// front's credentials when it requires them.
    fn server_client(&self) -> clickhouse::Client {
        let mut client = if self.url.starts_with("https://") {
            https_client(self.ca_file.as_deref())
        } else {
            clickhouse::Client::default()
        }
        .with_url(&self.url);
        if let Some(user) = &self.user {
            client = client.with_user(user);
        }
        if let Some(password) = &self.password {
            client = client.with_password(password);
        }
        client
    }

    /// A new database with the shipped runs and payload tables.
    pub async fn create_database(&self, label: &str) -> String {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name: String = format!("t_{label}_{n}_{}", std::process::id())
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        let client = self.server_client();
        for statement in schema_statements(&name) {
            client
                .query(&statement)
                .execute()
                .await
                .unwrap_or_else(|e| panic!("apply schema to {name}: {e}\n{statement}"));
        }
        name
    }
}

impl Drop for ChServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A ClickHouse client over HTTPS that trusts `ca` (PEM), else the webpki roots.
fn https_client(ca: Option<&Path>) -> clickhouse::Client {
    let roots = runs_replicator::pg::tls::roots(ca).expect("read the test CA");
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    let http_client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector);
    clickhouse::Client::with_http_client(http_client)
}

/// The shipped ClickHouse DDL with `trigger_dev` replaced by `database`, one statement each.
pub fn schema_statements(database: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/clickhouse");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f)
            .unwrap()
            .replace("trigger_dev", database);
        let text: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        out.extend(
            text.split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from),
        );
    }
    out
}
