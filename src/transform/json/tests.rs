//! Validation and normalization checked rule by rule: what `JSON.parse` accepts and rejects, the
//! nesting limits, numbers in their JavaScript form, duplicate keys, and the fast paths against
//! the slow ones they stand in for.

use super::number::{prints_unchanged, render_number};
use super::scan::find_string_special;
use super::*;

fn norm(text: &str) -> Result<Cow<'_, str>, Reject> {
    normalize(text, Numbers::Json, MAX_DEPTH)
}

#[test]
fn accepts_what_json_parse_accepts() {
    for ok in [
        "0",
        "-1",
        "1.5",
        "1e5",
        "1E+5",
        "-0.5e-3",
        "true",
        "false",
        "null",
        r#""""#,
        r#""a\"b\\c\/d\b\f\n\r\t\u00e9""#,
        "[]",
        "{}",
        " \t\n\r[ 1 , 2 ] \n",
        r#"{"a":{"b":[1,{"c":null}]},"d":"x"}"#,
        "\"\u{7f}\u{2028}é🚀\"",
        r#""\ud83d\ude00""#,
        r#""\uD83D\uDE00""#,
    ] {
        assert_eq!(validate(ok), Ok(()), "{ok:?}");
        assert!(norm(ok).is_ok(), "{ok:?}");
    }
}

#[test]
fn rejects_what_json_parse_rejects() {
    for bad in [
        "",
        " ",
        "\u{feff}{}",
        "01",
        "-",
        "1.",
        ".5",
        "1e",
        "+1",
        "0x10",
        "NaN",
        "Infinity",
        "undefined",
        "tru",
        "nul",
        "'a'",
        "\"a",
        "\"a\nb\"",
        "\"\t\"",
        r#""\x""#,
        r#""\u12""#,
        r#""\u12G4""#,
        "[1,]",
        "[,1]",
        "[1 2]",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "{a:1}",
        "{\"a\" 1}",
        "{} {}",
        "[",
        "]",
        "{\"a\":1]",
        "[1}",
        "//c\n1",
    ] {
        assert_eq!(validate(bad), Err(Reject::Syntax), "{bad:?}");
        assert_eq!(norm(bad), Err(Reject::Syntax), "{bad:?}");
    }
}

#[test]
fn lone_surrogates_are_rejected_escape_aware() {
    for bad in [
        r#""\ud800""#,
        r#""\uD800""#,
        r#""\udbff x""#,
        r#""\udc00""#,
        r#""\uDFFF""#,
        r#""a\ud83d""#,
        r#""\ud83d\u0041""#,
        r#""\ud83d\ud83d\ude00""#,
        r#""\ude00\ud83d""#,
        r#"{"\ud800":1}"#,
        r#"["ok","\udc00"]"#,
    ] {
        assert_eq!(validate(bad), Err(Reject::LoneSurrogate), "{bad:?}");
    }
    // An escaped backslash followed by `ud800` is text, not an escape.
    assert_eq!(validate(r#""\\ud800""#), Ok(()));
    assert_eq!(validate(r#""\\\ud83d\ude00""#), Ok(()));
    assert_eq!(validate(r#""\ud83d\ude00\ud83d\ude00""#), Ok(()));
}

#[test]
fn depth_limit_counts_containers() {
    let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    assert!(normalize(&nested(3), Numbers::Json, 3).is_ok());
    assert_eq!(
        normalize(&nested(4), Numbers::Json, 3),
        Err(Reject::TooDeep)
    );
    let objects = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
    assert!(norm(&objects(MAX_DEPTH)).is_ok());
    assert_eq!(norm(&objects(MAX_DEPTH + 1)), Err(Reject::TooDeep));
    let mixed = |n: usize| format!("{}1{}", "[{\"a\":".repeat(n), "}]".repeat(n));
    assert!(norm(&mixed(MAX_DEPTH / 2)).is_ok());
    assert_eq!(norm(&mixed(MAX_DEPTH / 2 + 1)), Err(Reject::TooDeep));
    // Hostile depth cannot exhaust the stack: the scanner is iterative.
    assert_eq!(validate(&nested(1_000_000)), Ok(()));
    assert_eq!(norm(&nested(1_000_000)), Err(Reject::TooDeep));
    assert_eq!(norm(&objects(1_000_000)), Err(Reject::TooDeep));
}

#[test]
fn array_nesting_limit_counts_arrays_directly_inside_arrays() {
    let arrays = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    assert!(norm(&arrays(MAX_ARRAY_NESTING)).is_ok());
    assert_eq!(norm(&arrays(MAX_ARRAY_NESTING + 1)), Err(Reject::TooDeep));
    let in_object = format!("{{\"a\":{}}}", arrays(MAX_ARRAY_NESTING + 1));
    assert_eq!(norm(&in_object), Err(Reject::TooDeep));
    // An object between arrays starts a new run.
    let split = format!(
        "{}{{\"a\":{}}}{}",
        "[".repeat(100),
        arrays(100),
        "]".repeat(100)
    );
    assert!(norm(&split).is_ok());
    // Reading is not bound by it.
    assert_eq!(validate(&arrays(MAX_ARRAY_NESTING + 1)), Ok(()));
    assert_eq!(
        check_depth(&arrays(MAX_ARRAY_NESTING + 1), usize::MAX),
        Ok(())
    );
}

#[test]
fn unchanged_text_is_borrowed() {
    for text in [
        r#"{"a":1,"b":[true,false,null],"c":"x","d":-12,"e":0.5,"f":123456789012345}"#,
        r#" { "spaced" : [ 1 , 2 ] } "#,
        "1e+21",
        "1.5e-7",
        "0.1",
        "-0.000001",
    ] {
        assert!(
            matches!(norm(text), Ok(Cow::Borrowed(t)) if t == text),
            "{text:?}"
        );
    }
}

#[test]
fn numbers_take_their_javascript_form() {
    for (input, expected) in [
        ("1.0", "1"),
        ("1.50", "1.5"),
        ("1e2", "100"),
        ("1E+2", "100"),
        ("-0", "0"),
        ("-0.0", "0"),
        ("0e10", "0"),
        ("1e21", "1e+21"),
        ("1e-7", "1e-7"),
        ("0.0000001", "1e-7"),
        ("123456789012345678", "123456789012345680"),
        ("12345678901234567890", "12345678901234567000"),
        ("123456789012345678901234567890", "1.2345678901234568e+29"),
        ("9007199254740993", "9007199254740992"),
        ("1e400", "null"),
        ("-1e400", "null"),
        ("1e-400", "0"),
        ("-1e-400", "0"),
        ("[1.0,2,3.25e1]", "[1,2,32.5]"),
        (r#"{"a":1.10,"b":"1.10"}"#, r#"{"a":1.1,"b":"1.10"}"#),
    ] {
        assert_eq!(norm(input).as_deref(), Ok(expected), "{input:?}");
    }
}

#[test]
fn the_fast_number_check_agrees_with_javascript_formatting() {
    // Every literal the fast path accepts must print back unchanged; spot-check a grid of
    // shapes around its boundaries against the real formatter.
    let mut literals: Vec<String> = [
        "0",
        "-0",
        "0.5",
        "-0.5",
        "0.000001",
        "0.0000001",
        "0.0000012345",
        "123456789012345",
        "1234567890123456",
        "12345678.1234567",
        "12345678.12345678",
        "0.123456789012345",
        "0.1234567890123456",
        "0.30000000000000004",
        "100",
        "1.10",
        "9007199254740993",
    ]
    .map(str::to_owned)
    .to_vec();
    for int in ["0", "1", "7", "99", "123456", "999999999999999"] {
        for frac in [
            "",
            "1",
            "05",
            "000001",
            "0000001",
            "123456789",
            "99999999999999",
        ] {
            for sign in ["", "-"] {
                literals.push(if frac.is_empty() {
                    format!("{sign}{int}")
                } else {
                    format!("{sign}{int}.{frac}")
                });
            }
        }
    }
    for lit in literals {
        let (negative, rest) = match lit.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, lit.as_str()),
        };
        let (int, frac) = match rest.split_once('.') {
            Some((i, f)) => (i, Some(f.as_bytes())),
            None => (rest, None),
        };
        let fast = prints_unchanged(negative, int.as_bytes(), frac);
        let slow = render_number(&lit, Numbers::Json).as_str() == lit;
        assert!(
            !fast || slow,
            "{lit}: the fast path keeps a literal JavaScript rewrites"
        );
        let short = int.len() + frac.map_or(0, <[u8]>::len) <= 15;
        if short && !lit.ends_with(".0") {
            assert_eq!(fast, slow, "{lit}");
        }
    }
}

#[test]
fn string_scan_finds_specials_in_any_lane() {
    for len in 0..40 {
        for special in [b'"', b'\\', 0x01, 0x1f] {
            let mut body = vec![b'a'; len];
            body.push(special);
            body.extend_from_slice(b"tail");
            assert_eq!(find_string_special(&body, 0), Some(len), "{len} {special}");
        }
        let mut body = "é".repeat(len).into_bytes();
        body.extend_from_slice("\u{7f}€\"".as_bytes());
        assert_eq!(find_string_special(&body, 0), Some(body.len() - 1));
        assert_eq!(find_string_special(&vec![b'x'; len], 0), None);
        assert_eq!(find_string_special(&vec![0x80; len], 0), None);
    }
}

#[test]
fn superjson_numbers_follow_superjson_serialize() {
    let sj = |t| normalize(t, Numbers::SuperJson, MAX_DEPTH);
    assert_eq!(sj("-0").as_deref(), Ok(r#""-0""#));
    assert_eq!(sj("-0.0").as_deref(), Ok(r#""-0""#));
    assert_eq!(sj("1e400").as_deref(), Ok(r#""Infinity""#));
    assert_eq!(sj("-1e400").as_deref(), Ok(r#""-Infinity""#));
    assert_eq!(sj("1.0").as_deref(), Ok("1"));
    assert_eq!(sj("0").as_deref(), Ok("0"));
}

#[test]
fn duplicate_keys_keep_the_last_value() {
    for (input, expected) in [
        (r#"{"a":1,"a":2}"#, r#"{"a":2}"#),
        (r#"{"a":1,"b":2,"a":3}"#, r#"{"b":2,"a":3}"#),
        (r#"{"a":1,"a":2,"a":3}"#, r#"{"a":3}"#),
        (r#"{"a":{"b":1},"a":{"c":2}}"#, r#"{"a":{"c":2}}"#),
        (r#"{"a":1,"\u0061":2}"#, r#"{"\u0061":2}"#),
        (r#"[{"x":1, "x" : 1.50}, 2.0]"#, r#"[{"x" : 1.5}, 2]"#),
        (
            r#"{ "a" : 1.0 ,  "b":{"c":1,"c":2.0} , "a" : 2 }"#,
            r#"{ "b":{"c":2} , "a" : 2 }"#,
        ),
        (r#"{"a":{"n":1.50,"a":{"x":1,"x":2}},"a":0}"#, r#"{"a":0}"#),
        (
            r#"{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k0":9,"k5":10}"#,
            r#"{"k1":1,"k2":2,"k3":3,"k4":4,"k6":6,"k7":7,"k8":8,"k0":9,"k5":10}"#,
        ),
        (
            r#"{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"\u006b0":9}"#,
            r#"{"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"\u006b0":9}"#,
        ),
    ] {
        assert_eq!(norm(input).as_deref(), Ok(expected), "{input:?}");
    }
    // Same keys in different objects are not duplicates.
    let distinct = r#"{"a":{"a":1},"b":{"a":2}}"#;
    assert!(matches!(norm(distinct), Ok(Cow::Borrowed(_))));
    let distinct_escaped = r#"{"a":1,"\u0062":2}"#;
    assert!(matches!(norm(distinct_escaped), Ok(Cow::Borrowed(_))));
    let many: String = format!(
        "{{{}}}",
        (0..1000)
            .map(|i| format!("\"k{i}\":{i}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert!(matches!(norm(&many), Ok(Cow::Borrowed(_))));
    // Validation only never rewrites.
    assert_eq!(validate(r#"{"a":1,"a":2}"#), Ok(()));
}

#[test]
fn compact_removes_whitespace() {
    let c = |t| compact(t, Numbers::Json, MAX_DEPTH);
    assert_eq!(
        c(r#" { "a" : [ 1 , 2.50 , { } ] , "b" : "x y \" z" , "a" : 1 } "#).as_deref(),
        Ok(r#"{"b":"x y \" z","a":1}"#)
    );
    assert_eq!(c(" 1e400 ").as_deref(), Ok("null"));
    assert_eq!(c(" true ").as_deref(), Ok("true"));
    assert_eq!(c("[[]]").as_deref(), Ok("[[]]"));
    assert_eq!(compact("[[]]", Numbers::Json, 1), Err(Reject::TooDeep));
}

#[test]
fn depth_check() {
    assert_eq!(check_depth("[[1]]", 2), Ok(()));
    assert_eq!(check_depth("[[1]]", 1), Err(Reject::TooDeep));
    assert_eq!(check_depth("[[1]", 5), Err(Reject::Syntax));
}
