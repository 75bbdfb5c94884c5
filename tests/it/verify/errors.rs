//! `verify` cannot check: exit 2, one line on stderr, no secret, and for `--format json` an
//! `{"ok": false}` object on stdout.

use super::verify;
use crate::support::expect::assert_cannot_run;
use crate::support::{TestEnv, process};

#[tokio::test]
async fn bad_input_exits_2_with_one_line_and_no_password() {
    let env = TestEnv::new("vf_bad").await;
    let password = crate::support::postgres::SUPERUSER_PASSWORD;
    let port = process::free_port();
    let dead = process::free_port();
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("unknown source", String::new(), vec!["--source", "other"]),
        (
            "a window that is no time",
            String::new(),
            vec!["--since", "yesterday-ish"],
        ),
        (
            "an empty window",
            String::new(),
            vec!["--since", "2026-11-02", "--until", "2026-11-01T23:00:00Z"],
        ),
        ("--parallel 0", String::new(), vec!["--parallel", "0"]),
        (
            "unreachable Postgres",
            format!(
                "[postgres]\nurl = \"postgres://postgres:{password}@127.0.0.1:{dead}/x\"\nconnect_timeout_ms = 500\n"
            ),
            vec![],
        ),
        (
            "unreachable ClickHouse",
            format!(
                "[clickhouse]\nurl = \"http://default:{password}@127.0.0.1:{dead}\"\nrequest_timeout_ms = 1000\n"
            ),
            vec![],
        ),
    ];
    for (what, overrides, args) in cases {
        let config = env.write_config(port, &overrides);
        for format in ["text", "json"] {
            let mut all = args.clone();
            all.extend(["--format", format]);
            let out = verify(&config, &all);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_cannot_run(&out, "verify", &format!("{what} ({format})"), password);
            if format == "json" {
                let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
                assert_eq!(v["ok"], false, "{what}: {stdout}");
            } else {
                assert!(stdout.is_empty(), "{what}: {stdout}");
            }
        }
    }
}
