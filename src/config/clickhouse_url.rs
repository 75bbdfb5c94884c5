//! The ClickHouse HTTP(S) endpoint.
//!
//! trigger.dev's `CLICKHOUSE_URL` carries the credentials in the URL
//! (`http://default:password@clickhouse:8123`), so they are split off here: the client gets a
//! URL without them plus a user and a redacted password.
//!
//! Its query is read as trigger.dev reads it. `secure=` (which trigger.dev's compose file and
//! Helm chart append for its migration tool) is dropped, as trigger.dev's webapp drops it: the
//! scheme decides TLS. `database=` names the database (`clickhouse.database` wins when set).
//! The `@clickhouse/client` options a URL may carry configure that client and are named in a
//! warning; anything else is refused.

use std::fmt;
use std::str::FromStr;

use super::secret::Secret;

#[derive(Clone, PartialEq)]
pub struct ChUrl {
    /// `scheme://host:port[/path]`, without credentials.
    pub endpoint: String,
    pub https: bool,
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// `database=` in the query (`clickhouse.database` wins when set).
    pub database: Option<String>,
    /// Query parameters read and not applied, for the start-up warning (`secure=true` on an
    /// `http://` URL among them: trigger.dev ignores it too, the scheme decides).
    pub ignored: Vec<String>,
}

/// `@clickhouse/client`'s own options, which a URL may carry: they configure that client's
/// pool, logging and requests, which this worker sets itself.
const JS_CLIENT_PARAMS: &[&str] = &[
    "application",
    "request_timeout",
    "max_open_connections",
    "compression_request",
    "compression_response",
    "log_level",
    "keep_alive_enabled",
    "keep_alive_idle_socket_ttl",
];

impl FromStr for ChUrl {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let mut url = url::Url::parse(raw)
            .map_err(|e| format!("not a URL ({e}); expected http://host:8123"))?;
        let https = match url.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(format!("scheme {other:?} is not http:// or https://")),
        };
        if url.host_str().is_none_or(str::is_empty) {
            return Err("the URL has no host".into());
        }
        let mut database = None;
        let mut ignored = Vec::new();
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "secure" => {
                    let on = matches!(value.trim().to_ascii_lowercase().as_str(), "true" | "1");
                    if on != https {
                        ignored.push(format!("secure={value}"));
                    }
                }
                "database" => database = Some(value.into_owned()),
                k if JS_CLIENT_PARAMS.contains(&k)
                    || k.starts_with("clickhouse_setting_")
                    || k.starts_with("ch_")
                    || k.starts_with("http_header_") =>
                {
                    ignored.push(k.to_string())
                }
                other => {
                    return Err(format!(
                        "URL parameter {other:?} is not supported in the ClickHouse URL; \
                         supported: secure, database (use the clickhouse.* keys for the rest)"
                    ));
                }
            }
        }
        url.set_query(None);
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let user = (!url.username().is_empty()).then(|| decode(url.username()));
        let password = url.password().map(|p| Secret::new(decode(p)));
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let endpoint = url.as_str().trim_end_matches('/').to_string();
        Ok(ChUrl {
            endpoint,
            https,
            user,
            password,
            database,
            ignored,
        })
    }
}

impl fmt::Display for ChUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.endpoint)
    }
}

impl fmt::Debug for ChUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_credentials_off() {
        let u: ChUrl = "https://default:pa%3Ass@ch.example:8443".parse().unwrap();
        assert_eq!(u.endpoint, "https://ch.example:8443");
        assert!(u.https);
        assert_eq!(u.user.as_deref(), Some("default"));
        assert_eq!(u.password.as_ref().unwrap().expose(), "pa:ss");
        assert!(!format!("{u} {u:?}").contains("pa"));
    }

    #[test]
    fn rejects_other_schemes_and_params() {
        assert!(
            "tcp://x:9000"
                .parse::<ChUrl>()
                .unwrap_err()
                .contains("scheme")
        );
        assert!(
            "http://x:8123/?foo=a"
                .parse::<ChUrl>()
                .unwrap_err()
                .contains("parameter \"foo\"")
        );
    }
}
