//! Unit tests of `js`.

use super::*;

fn s(v: f64) -> String {
    number_to_string(v).as_str().to_owned()
}

#[test]
fn number_to_string_matches_v8() {
    // Expected values printed by node v20: String(x).
    for (v, expected) in [
        (0.0, "0"),
        (-0.0, "0"),
        (1.0, "1"),
        (-1.0, "-1"),
        (1.5, "1.5"),
        (0.1, "0.1"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1.0 / 3.0, "0.3333333333333333"),
        (100.0, "100"),
        (123456789.0, "123456789"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e21, "1.5e+21"),
        (123456789012345680000.0, "123456789012345680000"),
        (1.2345678901234568e29, "1.2345678901234568e+29"),
        (1e-6, "0.000001"),
        (1.5e-6, "0.0000015"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (123e-20, "1.23e-18"),
        (f64::MAX, "1.7976931348623157e+308"),
        (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
        (5e-324, "5e-324"),
        (-5e-324, "-5e-324"),
        (9007199254740993.0, "9007199254740992"),
        (f64::INFINITY, "Infinity"),
        (f64::NEG_INFINITY, "-Infinity"),
        (f64::NAN, "NaN"),
        (-1.2345678901234567e-300, "-1.2345678901234568e-300"),
        (-0.000001234567890123456, "-0.000001234567890123456"),
    ] {
        assert_eq!(s(v), expected, "{v:e}");
    }
}

#[test]
fn truthiness() {
    for falsy in ["false", "null", "\"\"", "0", "-0", "0.0", "0e5", "1e-400"] {
        assert!(!truthy(falsy), "{falsy}");
    }
    for t in [
        "true",
        "\"0\"",
        "\" \"",
        "\"false\"",
        "1",
        "-1",
        "1e400",
        "{}",
        "[]",
        "[0]",
    ] {
        assert!(truthy(t), "{t}");
    }
}

#[test]
fn string_conversion() {
    for (value, expected) in [
        (r#""TypeError""#, "TypeError"),
        (r#""a\nb""#, "a\nb"),
        ("42", "42"),
        ("1.50", "1.5"),
        ("1e21", "1e+21"),
        ("1e400", "Infinity"),
        ("-0", "0"),
        ("true", "true"),
        ("false", "false"),
        ("null", "null"),
        (r#"{"a":1}"#, "[object Object]"),
        ("[]", ""),
        ("[1,2]", "1,2"),
        (
            r#"[1,[2,[3,null]],"x",{"a":[9]},true,null]"#,
            "1,2,3,,x,[object Object],true,",
        ),
        ("[[],[]]", ","),
        ("[null]", ""),
        ("[null,null]", ","),
        (r#"["a,b", "c"]"#, "a,b,c"),
        ("[1.0, 2e0]", "1,2"),
    ] {
        assert_eq!(to_string(value), expected, "{value}");
    }
    let deep = format!("{}1{}", "[".repeat(200_000), "]".repeat(200_000));
    assert_eq!(to_string(&deep), "1");
}
