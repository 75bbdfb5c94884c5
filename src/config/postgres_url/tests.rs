//! The URL parser against what people write: libpq's forms, several hosts, Prisma's parameters.

use super::*;

#[test]
fn parses_fields_and_redacts_password() {
    let u: PgUrl =
        "postgres://repl:s%40cret@db.example:6543/trigger?sslmode=verify-full&sslrootcert=/ca.pem"
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
fn several_hosts_and_prismas_parameters_together() {
    // trigger.dev's DATABASE_URL shape against an HA pair.
    let u: PgUrl = "postgresql://repl:pw@db1:5432,db2:5433/main?schema=trigger&sslmode=require\
                    &connection_limit=5&target_session_attrs=read-write"
        .parse()
        .unwrap();
    assert_eq!(
        u.hosts,
        vec![("db1".to_string(), 5432), ("db2".to_string(), 5433)]
    );
    assert_eq!(u.schema.as_deref(), Some("trigger"));
    assert_eq!(u.ignored, ["connection_limit"]);
    assert_eq!(u.sslmode, SslMode::Require);
    // One server of it keeps what the URL said besides its hosts.
    let one = u.at("db2", 5433);
    assert_eq!(
        (one.schema.as_deref(), one.hosts.len()),
        (Some("trigger"), 1)
    );
    let e = "postgres://u@h1,h2/main?pgbouncer=true"
        .parse::<PgUrl>()
        .unwrap_err();
    assert!(e.starts_with("pgbouncer=true"), "{e}");
}

#[test]
fn several_hosts_in_the_authority_or_the_parameters() {
    let u: PgUrl =
        "postgres://repl:pw@db1:5433,db2,[::1]:6000/trigger?target_session_attrs=read-write"
            .parse()
            .unwrap();
    assert_eq!(
        u.hosts,
        vec![
            ("db1".to_string(), 5433),
            ("db2".to_string(), 5432),
            ("::1".to_string(), 6000)
        ]
    );
    assert_eq!((u.host.as_str(), u.port), ("db1", 5433));
    assert_eq!((u.user.as_str(), u.dbname.as_str()), ("repl", "trigger"));
    assert_eq!(u.password.expose(), "pw");
    assert_eq!(
        u.to_string(),
        "postgres://repl:***@db1:5433,db2:5432,[::1]:6000/trigger"
    );
    let one = u.at("db2", 5432);
    assert_eq!(one.to_string(), "postgres://repl:***@db2:5432/trigger");
    let p: PgUrl = "postgres:///trigger?host=a,b&port=1,2".parse().unwrap();
    assert_eq!(p.hosts, vec![("a".to_string(), 1), ("b".to_string(), 2)]);
    let same: PgUrl = "postgres:///trigger?port=7&host=a,b".parse().unwrap();
    assert_eq!(same.hosts, vec![("a".to_string(), 7), ("b".to_string(), 7)]);
    let plain: PgUrl = "postgres://h:1/d".parse().unwrap();
    assert_eq!(plain.hosts, vec![("h".to_string(), 1)]);
}

#[test]
fn rejects_bad_input_with_a_reason() {
    for (raw, needle) in [
        ("mysql://x", "scheme"),
        ("postgres://h/db?sslmode=allow", "sslmode \"allow\""),
        ("postgres://h/db?foo=1", "parameter \"foo\""),
        ("postgres://h/db?port=x", "port"),
        ("postgres://h1:x,h2/db", "port \"x\""),
        ("postgres:///db?host=a,b,c&port=1,2", "2 ports for 3 hosts"),
        (
            "postgres://h/db?target_session_attrs=standby",
            "primary only",
        ),
        ("postgres://h/db?target_session_attrs=nope", "not supported"),
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
