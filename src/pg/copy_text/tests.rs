use std::borrow::Cow;

use super::*;

fn field(raw: &str) -> Option<String> {
    decode_field(raw.as_bytes(), 0)
        .unwrap()
        .map(|c| c.into_owned())
}

#[test]
fn plain_fields_borrow_and_null_is_backslash_n_alone() {
    let mut out = Vec::new();
    decode_row(b"a\t\\N\t\tc d", 4, &mut out).unwrap();
    assert_eq!(
        out,
        vec![
            Some(Cow::Borrowed("a")),
            None,
            Some(Cow::Borrowed("")),
            Some(Cow::Borrowed("c d"))
        ]
    );
    assert!(matches!(out[0], Some(Cow::Borrowed(_))));
    // `\N` inside a longer field is an escaped N, not NULL.
    assert_eq!(field("x\\N"), Some("xN".into()));
    assert_eq!(field("\\\\N"), Some("\\N".into()));
}

#[test]
fn every_named_escape() {
    assert_eq!(field("\\b"), Some("\u{8}".into()));
    assert_eq!(field("\\f"), Some("\u{c}".into()));
    assert_eq!(field("\\n"), Some("\n".into()));
    assert_eq!(field("\\r"), Some("\r".into()));
    assert_eq!(field("\\t"), Some("\t".into()));
    assert_eq!(field("\\v"), Some("\u{b}".into()));
    assert_eq!(field("\\\\"), Some("\\".into()));
    assert_eq!(
        field(r#"{"a": "x\ny", "b": "\\\\u0000"}"#),
        Some("{\"a\": \"x\ny\", \"b\": \"\\\\u0000\"}".into())
    );
}

#[test]
fn octal_escapes_take_one_to_three_digits_and_keep_eight_bits() {
    assert_eq!(field("\\101"), Some("A".into()));
    assert_eq!(field("\\60"), Some("0".into()));
    assert_eq!(field("\\7x"), Some("\u{7}x".into()));
    // A fourth digit is a plain character.
    assert_eq!(field("\\1011"), Some("A1".into()));
    // \501 is 0o501 = 321; Postgres keeps 321 & 0xFF = 0x41.
    assert_eq!(field("\\501"), Some("A".into()));
    // 8 and 9 are not octal digits: a backslash before them is the digit itself.
    assert_eq!(field("\\8"), Some("8".into()));
    // Octal bytes that together form UTF-8.
    assert_eq!(field("\\303\\251"), Some("é".into()));
}

#[test]
fn hex_escapes_take_one_or_two_digits() {
    assert_eq!(field("\\x41"), Some("A".into()));
    assert_eq!(field("\\x4"), Some("\u{4}".into()));
    assert_eq!(field("\\x4g"), Some("\u{4}g".into()));
    assert_eq!(field("\\x414"), Some("A4".into()));
    assert_eq!(field("\\xC3\\xa9"), Some("é".into()));
    // `\x` without a hex digit is a plain x.
    assert_eq!(field("\\xz"), Some("xz".into()));
    assert_eq!(field("\\x"), Some("x".into()));
}

#[test]
fn a_backslash_before_any_other_character_is_that_character() {
    assert_eq!(field("\\a\\q\\\"\\."), Some("aq\".".into()));
    assert_eq!(field("caf\\é"), Some("café".into()));
}

#[test]
fn malformed_rows_are_errors() {
    let mut out = Vec::new();
    assert_eq!(
        decode_row(b"a\tb", 3, &mut out),
        Err(CopyTextError::FieldCount {
            got: 2,
            expected: 3
        })
    );
    assert_eq!(
        decode_row(b"a\tb\\", 2, &mut out),
        Err(CopyTextError::TrailingBackslash { field: 1 })
    );
    assert_eq!(
        decode_row(b"\xff", 1, &mut out),
        Err(CopyTextError::InvalidUtf8 { field: 0 })
    );
    assert_eq!(
        decode_row(b"ok\t\\377", 2, &mut out),
        Err(CopyTextError::InvalidUtf8 { field: 1 })
    );
}

#[test]
fn lines_reassemble_rows_split_across_messages() {
    let mut lines = Lines::default();
    let mut seen: Vec<String> = Vec::new();
    let mut push = |l: &[u8]| -> Result<(), ()> {
        seen.push(String::from_utf8(l.to_vec()).unwrap());
        Ok(())
    };
    lines.feed(b"one\ntw", &mut push).unwrap();
    lines.feed(b"o", &mut push).unwrap();
    lines.feed(b"\nthree\nfour\n", &mut push).unwrap();
    assert_eq!(lines.pending(), 0);
    lines.feed(b"fi", &mut push).unwrap();
    assert_eq!(seen, ["one", "two", "three", "four"]);
    assert_eq!(lines.pending(), 2);
}

#[test]
fn every_byte_survives_postgres_style_escaping() {
    // What Postgres' CopyAttributeOutText writes for each byte, decoded back.
    fn escape(s: &str) -> String {
        let mut out = String::new();
        for c in s.chars() {
            match c {
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{b}' => out.push_str("\\v"),
                '\\' => out.push_str("\\\\"),
                c => out.push(c),
            }
        }
        out
    }
    let all: String = (1u8..128).map(char::from).chain("é€😀".chars()).collect();
    assert_eq!(field(&escape(&all)), Some(all));
}
