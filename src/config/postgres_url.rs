//! The Postgres connection URL, parsed once and shared by the control connection
//! (tokio-postgres) and the replication connection (pgwire-replication).
//!
//! Both drivers need the same host, port, credentials and TLS settings, but neither parses the
//! other's format (tokio-postgres has no `verify-full`, pgwire-replication takes fields), so the
//! URL is parsed here into fields. Its `Display` and `Debug` never show the password.
//!
//! trigger.dev's `DATABASE_URL` is a Prisma URL (`…/main?schema=public&sslmode=disable`, in its
//! compose file, its Helm chart and its docs), so Prisma's parameters are read too: `schema`
//! names the tables' schema (`postgres.schema` unless that is set), Prisma's connection-pool
//! parameters are kept aside to be named in one warning, and `pgbouncer=true` — a transaction
//! pooler, which cannot carry replication — is refused.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::secret::Secret;

/// `sslmode`, with libpq's meanings.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum SslMode {
    Disable,
    /// TLS when the server offers it, no certificate check (libpq's default).
    #[default]
    Prefer,
    /// TLS, no certificate check.
    Require,
    /// TLS, the certificate chain must lead to a trusted root.
    VerifyCa,
    /// TLS, trusted chain and the certificate must name the host.
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl FromStr for SslMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            // "allow" tries plain text first, which a replication worker should not want.
            other => {
                return Err(format!(
                    "sslmode {other:?} is not supported; use disable, prefer, require, verify-ca or verify-full"
                ));
            }
        })
    }
}

/// A parsed `postgres://user:password@host:port/dbname?sslmode=…` URL.
#[derive(Clone, PartialEq)]
pub struct PgUrl {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Secret,
    pub dbname: String,
    pub sslmode: SslMode,
    /// CA bundle (PEM) used to verify the server under `verify-ca` / `verify-full`.
    pub sslrootcert: Option<PathBuf>,
    pub connect_timeout: Option<Duration>,
    /// Prisma's `schema=`: the schema of the runs tables (`postgres.schema` wins when set).
    pub schema: Option<String>,
    /// Prisma's own parameters present in the URL, which configure its client and mean nothing
    /// here (named in one warning at start).
    pub ignored: Vec<String>,
}

const ALLOWED_PARAMS: &str = "sslmode, sslrootcert, connect_timeout, host, port, user, password, \
     dbname, application_name, and Prisma's schema, pgbouncer=false and pool settings";

/// Prisma's parameters that configure its own connection pool and statement cache: a worker
/// with a few direct connections of its own has no use for them.
const PRISMA_POOL_PARAMS: &[&str] = &[
    "connection_limit",
    "pool_timeout",
    "socket_timeout",
    "statement_cache_size",
    "max_connection_lifetime",
    "max_idle_connection_lifetime",
];

/// Why a `pgbouncer=true` URL is refused.
const POOLER: &str = "pgbouncer=true: this URL goes through a transaction pooler (PgBouncer), \
     which cannot carry logical replication; give the worker a direct URL to the server \
     (trigger.dev's DIRECT_URL) in RUN_REPLICATION_LEGACY_DATABASE_URL or postgres.url";

impl FromStr for PgUrl {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let url = url::Url::parse(raw).map_err(|e| {
            format!("not a URL ({e}); expected postgres://user:password@host:5432/dbname")
        })?;
        if url.scheme() != "postgres" && url.scheme() != "postgresql" {
            return Err(format!(
                "scheme {:?} is not postgres:// or postgresql://",
                url.scheme()
            ));
        }
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| "the URL has invalid percent-encoding".to_string())
        };
        let mut host = url.host_str().unwrap_or("").to_string();
        if host.starts_with('[') && host.ends_with(']') {
            host = host[1..host.len() - 1].to_string();
        }
        let mut port = url.port().unwrap_or(5432);
        let mut user = decode(url.username())?;
        let mut password = Secret::new(decode(url.password().unwrap_or(""))?);
        let mut dbname = decode(url.path().trim_start_matches('/'))?;
        let mut sslmode = SslMode::default();
        let mut sslrootcert = None;
        let mut connect_timeout = None;
        let mut schema = None;
        let mut ignored: Vec<String> = Vec::new();
        let mut sslaccept_strict = false;
        for (key, value) in url.query_pairs() {
            let value = value.into_owned();
            match key.as_ref() {
                "schema" => schema = Some(value),
                "pgbouncer" => match value.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" => return Err(POOLER.into()),
                    _ => ignored.push("pgbouncer".into()),
                },
                // Prisma's certificate check: `strict` verifies, which only sslmode does here.
                "sslaccept" => {
                    sslaccept_strict = value == "strict";
                    ignored.push("sslaccept".into());
                }
                p if PRISMA_POOL_PARAMS.contains(&p) => {
                    if !ignored.iter().any(|i| i == p) {
                        ignored.push(p.to_string());
                    }
                }
                "sslmode" => sslmode = value.parse()?,
                "sslrootcert" => sslrootcert = Some(PathBuf::from(value)),
                "connect_timeout" => {
                    let secs: u64 = value.parse().map_err(|_| {
                        format!("connect_timeout {value:?} is not a whole number of seconds")
                    })?;
                    connect_timeout = (secs > 0).then(|| Duration::from_secs(secs));
                }
                "host" => host = value,
                "port" => {
                    port = value
                        .parse()
                        .map_err(|_| format!("port {value:?} is not a number from 1 to 65535"))?
                }
                "user" => user = value,
                "password" => password = Secret::new(value),
                "dbname" => dbname = value,
                // The worker sets its own application_name so its sessions are recognisable.
                "application_name" => {}
                other => {
                    return Err(format!(
                        "URL parameter {other:?} is not supported; supported: {ALLOWED_PARAMS}"
                    ));
                }
            }
        }
        if host.is_empty() {
            host = "localhost".into();
        }
        if user.is_empty() {
            user = "postgres".into();
        }
        if dbname.is_empty() {
            dbname = user.clone();
        }
        if port == 0 {
            return Err("port 0 is not a valid port".into());
        }
        if sslrootcert.is_some() && sslmode == SslMode::Disable {
            return Err("sslrootcert is set but sslmode=disable".into());
        }
        if sslaccept_strict && !matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull) {
            return Err(format!(
                "sslaccept=strict asks Prisma to verify the server's certificate, which \
                 sslmode={} does not: write sslmode=verify-full (with sslrootcert when the CA is \
                 not a public one)",
                sslmode.as_str()
            ));
        }
        Ok(PgUrl {
            host,
            port,
            user,
            password,
            dbname,
            sslmode,
            sslrootcert,
            connect_timeout,
            schema,
            ignored,
        })
    }
}

fn percent_decode(s: &str) -> Option<String> {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
}

impl PgUrl {
    /// The TLS mode both connections use: `sslmode`, except that `require` with a
    /// `sslrootcert` verifies the chain as `verify-ca` does, as libpq does. A configured CA is
    /// never silently ignored.
    pub fn tls_mode(&self) -> SslMode {
        match self.sslmode {
            SslMode::Require if self.sslrootcert.is_some() => SslMode::VerifyCa,
            mode => mode,
        }
    }

    /// A Unix-socket directory, as libpq treats a host that starts with `/`.
    pub fn is_unix_socket(&self) -> bool {
        self.host.starts_with('/')
    }
}

impl fmt::Display for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "postgres://{}", self.user)?;
        if !self.password.is_empty() {
            f.write_str(":***")?;
        }
        write!(f, "@{host}:{}/{}", self.port, self.dbname)?;
        if self.sslmode != SslMode::default() {
            write!(f, "?sslmode={}", self.sslmode.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_and_redacts_password() {
        let u: PgUrl = "postgres://repl:s%40cret@db.example:6543/trigger?sslmode=verify-full&sslrootcert=/ca.pem"
            .parse()
            .unwrap();
        assert_eq!(u.host, "db.example");
        assert_eq!(u.port, 6543);
        assert_eq!(u.user, "repl");
        assert_eq!(u.password.expose(), "s@cret");
        assert_eq!(u.dbname, "trigger");
        assert_eq!(u.sslmode, SslMode::VerifyFull);
        assert_eq!(u.sslrootcert, Some(PathBuf::from("/ca.pem")));
        let shown = format!("{u} {u:?}");
        assert!(
            !shown.contains("s@cret") && !shown.contains("s%40cret"),
            "{shown}"
        );
        assert!(shown.contains("repl:***@db.example:6543/trigger"));
    }

    #[test]
    fn require_with_a_root_certificate_verifies_the_chain() {
        let mode = |raw: &str| raw.parse::<PgUrl>().unwrap().tls_mode();
        assert_eq!(mode("postgres://h/d?sslmode=require"), SslMode::Require);
        assert_eq!(
            mode("postgres://h/d?sslmode=require&sslrootcert=/ca.pem"),
            SslMode::VerifyCa
        );
        assert_eq!(
            mode("postgres://h/d?sslmode=verify-full&sslrootcert=/ca.pem"),
            SslMode::VerifyFull
        );
        assert_eq!(
            mode("postgres://h/d?sslmode=prefer&sslrootcert=/ca.pem"),
            SslMode::Prefer
        );
    }

    #[test]
    fn defaults() {
        let u: PgUrl = "postgresql://localhost".parse().unwrap();
        assert_eq!(
            (u.port, u.user.as_str(), u.dbname.as_str()),
            (5432, "postgres", "postgres")
        );
        assert_eq!(u.sslmode, SslMode::Prefer);
        let sock: PgUrl = "postgres:///db?host=/var/run/postgresql&user=u"
            .parse()
            .unwrap();
        assert!(sock.is_unix_socket());
    }

    #[test]
    fn rejects_bad_input_with_a_reason() {
        for (raw, needle) in [
            ("mysql://x", "scheme"),
            ("postgres://h/db?sslmode=allow", "sslmode \"allow\""),
            ("postgres://h/db?foo=1", "parameter \"foo\""),
            ("postgres://h/db?port=x", "port"),
            ("not a url", "not a URL"),
            (
                "postgres://h/db?sslmode=disable&sslrootcert=/x",
                "sslrootcert",
            ),
        ] {
            let err = raw.parse::<PgUrl>().unwrap_err();
            assert!(err.contains(needle), "{raw}: {err}");
        }
    }
}
