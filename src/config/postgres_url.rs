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
//!
//! A URL may name several servers, as libpq allows (`postgres://u@h1:5432,h2:5433/db`, or
//! `?host=h1,h2&port=5432,5433`): the worker connects to the one that is not in recovery
//! (`pg::primary`), whatever `target_session_attrs` says among the values that allow a primary.

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
    /// The first server (`hosts[0]`).
    pub host: String,
    pub port: u16,
    /// Every server the URL names, in its order (one for a plain URL).
    pub hosts: Vec<(String, u16)>,
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
     dbname, application_name, target_session_attrs, and Prisma's schema, pgbouncer=false and \
     pool settings";

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

/// libpq's several-host authority (`h1:5432,h2,[::1]:5433`): `url` takes one host, so the list is
/// taken out and the URL is parsed with its first entry. Returns the URL to parse and, when there
/// were several, each host with its port if it had one.
#[allow(clippy::type_complexity)]
fn split_hosts(raw: &str) -> Result<(String, Option<Vec<(String, Option<u16>)>>), String> {
    let Some(start) = raw.find("://").map(|i| i + 3) else {
        return Ok((raw.to_string(), None));
    };
    let end = raw[start..]
        .find(['/', '?', '#'])
        .map_or(raw.len(), |i| start + i);
    let list_start = raw[start..end].rfind('@').map_or(start, |i| start + i + 1);
    let list = &raw[list_start..end];
    if !list.contains(',') {
        return Ok((raw.to_string(), None));
    }
    let mut hosts = Vec::new();
    for item in list.split(',') {
        let (host, port) = match item.strip_prefix('[') {
            Some(v6) => {
                let (host, rest) = v6
                    .split_once(']')
                    .ok_or_else(|| format!("host {item:?} lacks its closing ]"))?;
                (host, rest.strip_prefix(':'))
            }
            None => match item.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (item, None),
            },
        };
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .map_err(|_| format!("port {p:?} is not a number from 1 to 65535"))
            })
            .transpose()?;
        hosts.push((host.to_string(), port));
    }
    let first = list.split(',').next().unwrap_or_default();
    Ok((
        format!("{}{first}{}", &raw[..list_start], &raw[end..]),
        Some(hosts),
    ))
}

/// `target_session_attrs`: the worker always connects to the primary (`pg::primary`), so only
/// the values that allow one are accepted.
fn check_session_attrs(value: &str) -> Result<(), String> {
    match value {
        "any" | "read-write" | "primary" => Ok(()),
        "read-only" | "standby" | "prefer-standby" => Err(format!(
            "target_session_attrs={value}: the worker streams from, and writes to, the primary \
             only (it picks the host that is not in recovery); use any, read-write or primary"
        )),
        other => Err(format!(
            "target_session_attrs {other:?} is not supported; use any, read-write or primary"
        )),
    }
}

impl FromStr for PgUrl {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let (one_host, listed) = split_hosts(raw)?;
        let url = url::Url::parse(&one_host).map_err(|e| {
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
        let host = url.host_str().unwrap_or("").to_string();
        let mut user = decode(url.username())?;
        let mut password = Secret::new(decode(url.password().unwrap_or(""))?);
        let mut dbname = decode(url.path().trim_start_matches('/'))?;
        let mut sslmode = SslMode::default();
        let mut sslrootcert = None;
        let mut connect_timeout = None;
        let mut schema = None;
        let mut ignored: Vec<String> = Vec::new();
        let mut sslaccept_strict = false;
        let mut host_param = None;
        let mut port_param = None;
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
                "host" => host_param = Some(value),
                "port" => port_param = Some(value),
                "target_session_attrs" => check_session_attrs(&value)?,
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
        let mut hosts: Vec<(String, Option<u16>)> = match listed {
            Some(list) => list,
            None => vec![(host, url.port())],
        };
        if let Some(names) = host_param {
            hosts = names.split(',').map(|h| (h.to_string(), None)).collect();
        }
        if let Some(ports) = port_param {
            let ports = ports
                .split(',')
                .map(|p| {
                    p.parse::<u16>()
                        .map_err(|_| format!("port {p:?} is not a number from 1 to 65535"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            match ports.len() {
                1 => hosts.iter_mut().for_each(|h| h.1 = Some(ports[0])),
                n if n == hosts.len() => {
                    hosts.iter_mut().zip(ports).for_each(|(h, p)| h.1 = Some(p))
                }
                n => {
                    return Err(format!(
                        "port lists {n} ports for {} hosts; give one port, or one per host",
                        hosts.len()
                    ));
                }
            }
        }
        let hosts: Vec<(String, u16)> = hosts
            .into_iter()
            .map(|(h, p)| {
                let h = h.trim_start_matches('[').trim_end_matches(']').to_string();
                (
                    if h.is_empty() { "localhost".into() } else { h },
                    p.unwrap_or(5432),
                )
            })
            .collect();
        if hosts.iter().any(|(_, p)| *p == 0) {
            return Err("port 0 is not a valid port".into());
        }
        let (host, port) = hosts[0].clone();
        if user.is_empty() {
            user = "postgres".into();
        }
        if dbname.is_empty() {
            dbname = user.clone();
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
            hosts,
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

    /// The same URL naming only its server `host:port` (one of `hosts`): the connection the
    /// worker opens once it knows which server is the primary.
    pub fn at(&self, host: &str, port: u16) -> PgUrl {
        PgUrl {
            host: host.to_string(),
            port,
            hosts: vec![(host.to_string(), port)],
            ..self.clone()
        }
    }
}

impl fmt::Display for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<String> = self
            .hosts
            .iter()
            .map(|(host, port)| match host.contains(':') {
                true => format!("[{host}]:{port}"),
                false => format!("{host}:{port}"),
            })
            .collect();
        write!(f, "postgres://{}", self.user)?;
        if !self.password.is_empty() {
            f.write_str(":***")?;
        }
        write!(f, "@{}/{}", hosts.join(","), self.dbname)?;
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
mod tests;
