//! The decoder's tests, by concern, over two kinds of input: real PostgreSQL 15 output captured
//! into `tests/fixtures/pgoutput/` by `scripts/capture-pgoutput-fixtures.sh` (listed and loaded
//! here for all of them), and hand-made bytes.
//!
//! - `fixtures`: what each captured fixture decodes to, field by field.
//! - `stream`: protocol invariants that hold across every fixture's stream of messages.
//! - `oracle`: every fixture decodes as an independent parser (`pg_walstream`) reads it.
//! - `malformed`: truncated, padded and hand-made malformed input is an error, never a panic.
//! - `props`: property tests: encoder round trips, arbitrary and mutated bytes.

use std::sync::OnceLock;

use bytes::Bytes;

use super::*;

mod fixtures;
mod malformed;
mod oracle;
mod props;
mod stream;

macro_rules! fixtures {
    ($($name:literal),* $(,)?) => {
        const FIXTURES: &[(&str, &str)] = &[$(
            ($name, include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/pgoutput/",
                $name,
                ".txt"
            ))),
        )*];
    };
}

fixtures!(
    "insert_full",
    "update_full",
    "insert_toast",
    "update_toast_unchanged",
    "insert_default",
    "update_default_no_old",
    "update_default_key_changed",
    "delete_full",
    "delete_default",
    "truncate",
    "origin",
    "logical_message",
    "binary_insert",
    "session_relation_resend",
);

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn raw_fixture(name: &str) -> Vec<Bytes> {
    let (_, text) = FIXTURES
        .iter()
        .find(|(n, _)| *n == name)
        .expect("unknown fixture");
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("# "),
        "{name}: the first line must say what produced it"
    );
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| Bytes::from(unhex(l.trim())))
        .collect()
}

fn fixture(name: &str) -> Vec<Message<'static>> {
    raw_fixture(name)
        .iter()
        .enumerate()
        .map(|(i, b)| {
            decode(b)
                .unwrap_or_else(|e| panic!("{name} message {i}: {e}"))
                .into_owned()
        })
        .collect()
}

/// Every message of every fixture, parsed once (the largest are tens of KB of hex).
fn all_raw() -> &'static [(&'static str, Bytes)] {
    static ALL: OnceLock<Vec<(&'static str, Bytes)>> = OnceLock::new();
    ALL.get_or_init(|| {
        FIXTURES
            .iter()
            .flat_map(|(n, _)| raw_fixture(n).into_iter().map(move |b| (*n, b)))
            .collect()
    })
}

#[test]
fn every_fixture_file_is_listed() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pgoutput");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".txt"))
        .map(|n| n.trim_end_matches(".txt").to_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = FIXTURES.iter().map(|(n, _)| (*n).to_owned()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}
