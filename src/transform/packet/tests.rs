//! `prepare_json` checked against upstream: expected values are what `#prepareJson` followed by
//! `JSON.stringify` produced (a scratch port run on node v20 with the superjson bundle vendored
//! by `@trigger.dev/core` 4.8.3). Compared as JSON values: key order and whitespace are not
//! stored by ClickHouse, number literals are (and are compared).

use super::*;

const J: Option<&str> = Some(APPLICATION_JSON);

/// (data, dataType, upstream's JSON text).
const GOLDEN: &[(Option<&str>, Option<&str>, &str)] = &[
    (None, Some("application/json"), "{}"),
    (Some(""), Some("application/json"), "{}"),
    (None, Some("application/json"), "{}"),
    (Some("{}"), None, "{}"),
    (Some("{\"a\":1}"), Some("text/plain"), "{}"),
    (Some("{\"a\":1}"), Some("application/store"), "{}"),
    (Some("{\"a\":1}"), Some("application/JSON"), "{}"),
    (Some("{\"a\":1}"), Some(""), "{}"),
    (
        Some("{\"result\":\"test-output\"}"),
        Some("application/json"),
        "{\"data\":{\"result\":\"test-output\"}}",
    ),
    (Some("42"), Some("application/json"), "{\"data\":42}"),
    (Some("-1.5"), Some("application/json"), "{\"data\":-1.5}"),
    (
        Some("\"a string\""),
        Some("application/json"),
        "{\"data\":\"a string\"}",
    ),
    (Some("true"), Some("application/json"), "{\"data\":true}"),
    (Some("false"), Some("application/json"), "{\"data\":false}"),
    (Some("null"), Some("application/json"), "{\"data\":null}"),
    (Some("[]"), Some("application/json"), "{\"data\":[]}"),
    (
        Some("[1,\"two\",null,{\"x\":[3]}]"),
        Some("application/json"),
        "{\"data\":[1,\"two\",null,{\"x\":[3]}]}",
    ),
    (
        Some("{\"message\":\"test error\",\"name\":\"TestError\"}"),
        Some("application/json"),
        "{\"data\":{\"message\":\"test error\",\"name\":\"TestError\"}}",
    ),
    (
        Some(" \n {\"spaced\" : [ 1 , 2 ] } \t"),
        Some("application/json"),
        "{\"data\":{\"spaced\":[1,2]}}",
    ),
    (
        Some(
            "{\"a\":1.0,\"b\":1.50,\"c\":1e2,\"d\":-0,\"e\":1e400,\"f\":1e-400,\"g\":12345678901234567890,\"h\":123456789012345678901234567890,\"i\":1E+21,\"j\":0.1,\"k\":9007199254740993}",
        ),
        Some("application/json"),
        "{\"data\":{\"a\":1,\"b\":1.5,\"c\":100,\"d\":0,\"e\":null,\"f\":0,\"g\":12345678901234567000,\"h\":1.2345678901234568e+29,\"i\":1e+21,\"j\":0.1,\"k\":9007199254740992}}",
    ),
    (
        Some("{\"a\":1,\"a\":2}"),
        Some("application/json"),
        "{\"data\":{\"a\":2}}",
    ),
    (
        Some("{\"a\":1,\"b\":{\"c\":1,\"c\":[1,2]},\"a\":{\"x\":1}}"),
        Some("application/json"),
        "{\"data\":{\"a\":{\"x\":1},\"b\":{\"c\":[1,2]}}}",
    ),
    (
        Some("{\"b\":1,\"1\":2,\"a\":3,\"b\":4}"),
        Some("application/json"),
        "{\"data\":{\"1\":2,\"b\":4,\"a\":3}}",
    ),
    (
        Some("{\"a\":1,\"\\u0061\":2}"),
        Some("application/json"),
        "{\"data\":{\"a\":2}}",
    ),
    (
        Some("{\"title\":\"hello\\ud835\"}"),
        Some("application/json"),
        "{}",
    ),
    (
        Some("{\"title\":\"\\ud835\\udc00 ok\"}"),
        Some("application/json"),
        "{\"data\":{\"title\":\"𝐀 ok\"}}",
    ),
    (
        Some("{\"title\":\"\\udc00\"}"),
        Some("application/json"),
        "{}",
    ),
    (
        Some("{\"t\":\"\\ud83d\\ude00\"}"),
        Some("application/json"),
        "{\"data\":{\"t\":\"😀\"}}",
    ),
    (Some("\"\\ud800\""), Some("application/json"), "{}"),
    (Some("{\"a\":"), Some("application/json"), "{}"),
    (Some("{'a':1}"), Some("application/json"), "{}"),
    (Some("undefined"), Some("application/json"), "{}"),
    (Some("NaN"), Some("application/json"), "{}"),
    (Some("{\"a\":1}x"), Some("application/json"), "{}"),
    (Some("\u{feff}{}"), Some("application/json"), "{}"),
    (Some("   "), Some("application/json"), "{}"),
    (Some("{\"a\":\"\t\"}"), Some("application/json"), "{}"),
    (
        Some("{\"escapes\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u0000\"}"),
        Some("application/json"),
        "{\"data\":{\"escapes\":\"\\\"\\\\/\\b\\f\\n\\r\\té\\u0000\"}}",
    ),
    (
        Some("{\"unicode\":\"é🚀\u{2028}\"}"),
        Some("application/json"),
        "{\"data\":{\"unicode\":\"é🚀\u{2028}\"}}",
    ),
    (
        Some("{\"date\":\"2024-01-02T03:04:05.000Z\"}"),
        Some("application/json"),
        "{\"data\":{\"date\":\"2024-01-02T03:04:05.000Z\"}}",
    ),
    (
        Some("{\"__proto__\":{\"x\":1}}"),
        Some("application/json"),
        "{\"data\":{\"__proto__\":{\"x\":1}}}",
    ),
    (
        Some(
            "{\"json\":{\"data\":{\"bigint\":\"1234\",\"date\":\"2024-01-02T03:04:05.000Z\",\"map\":[[\"foo\",\"bar\"]]}},\"meta\":{\"values\":{\"data.bigint\":[\"bigint\"],\"data.date\":[\"Date\"],\"data.map\":[\"map\"]}}}",
        ),
        Some("application/super+json"),
        "{\"data\":{\"data\":{\"bigint\":\"1234\",\"date\":\"2024-01-02T03:04:05.000Z\",\"map\":[[\"foo\",\"bar\"]]}}}",
    ),
    (
        Some(
            "{\"json\":{\"set\":[1,2],\"u\":null,\"n\":\"NaN\",\"inf\":\"Infinity\",\"neg0\":\"-0\",\"re\":\"/a\\\\/b/g\",\"err\":{\"name\":\"Error\",\"message\":\"boom\"},\"url\":\"http://x.com/a%20b\",\"buf\":[1,2],\"arr\":[null,1]},\"meta\":{\"values\":{\"set\":[\"set\"],\"u\":[\"undefined\"],\"n\":[\"number\"],\"inf\":[\"number\"],\"neg0\":[\"number\"],\"re\":[\"regexp\"],\"err\":[\"Error\"],\"url\":[\"URL\"],\"buf\":[[\"custom\",\"buffer\"]],\"arr.0\":[\"undefined\"]}}}",
        ),
        Some("application/super+json"),
        "{\"data\":{\"set\":[1,2],\"u\":null,\"n\":\"NaN\",\"inf\":\"Infinity\",\"neg0\":\"-0\",\"re\":\"/a\\\\/b/g\",\"err\":{\"name\":\"Error\",\"message\":\"boom\"},\"url\":\"http://x.com/a%20b\",\"buf\":[1,2],\"arr\":[null,1]}}",
    ),
    (
        Some("{\"json\":\"42\",\"meta\":{\"values\":[\"bigint\"]}}"),
        Some("application/super+json"),
        "{\"data\":\"42\"}",
    ),
    (
        Some("{\"json\":\"plain\"}"),
        Some("application/super+json"),
        "{\"data\":\"plain\"}",
    ),
    (
        Some("{\"json\":null}"),
        Some("application/super+json"),
        "{\"data\":null}",
    ),
    (
        Some("{\"json\":null,\"meta\":{\"values\":[\"undefined\"]}}"),
        Some("application/super+json"),
        "{\"data\":null}",
    ),
    (
        Some(
            "{\"json\":[1,\"1970-01-01T00:00:00.000Z\"],\"meta\":{\"values\":{\"1\":[\"Date\"]}}}",
        ),
        Some("application/super+json"),
        "{\"data\":[1,\"1970-01-01T00:00:00.000Z\"]}",
    ),
    (
        Some(
            "{\"json\":{\"a\":{\"x\":\"1\"},\"b\":{\"x\":\"1\"}},\"meta\":{\"values\":{\"a.x\":[\"bigint\"],\"b.x\":[\"bigint\"]},\"referentialEqualities\":{\"a\":[\"b\"]}}}",
        ),
        Some("application/super+json"),
        "{\"data\":{\"a\":{\"x\":\"1\"},\"b\":{\"x\":\"1\"}}}",
    ),
    (
        Some(
            "{\"json\":{\"n\":1,\"self\":null},\"meta\":{\"referentialEqualities\":[[\"self\"]]}}",
        ),
        Some("application/super+json"),
        "{\"data\":{\"n\":1,\"self\":null}}",
    ),
    (
        Some(
            "{\"json\":[[\"1\",[1]]],\"meta\":{\"values\":[\"map\",{\"0.0\":[\"bigint\"],\"0.1\":[\"set\"]}]}}",
        ),
        Some("application/super+json"),
        "{\"data\":[[\"1\",[1]]]}",
    ),
    (
        Some("{\"foo\":1}"),
        Some("application/super+json"),
        "{\"data\":null}",
    ),
    (
        Some("{\"json\":{\"a\":1}}"),
        Some("application/super+json"),
        "{\"data\":{\"a\":1}}",
    ),
    (
        Some("{\"json\":null}"),
        Some("application/super+json"),
        "{\"data\":null}",
    ),
    (
        Some("[1,2]"),
        Some("application/super+json"),
        "{\"data\":null}",
    ),
    (
        Some("42"),
        Some("application/super+json"),
        "{\"data\":null}",
    ),
    (Some("null"), Some("application/super+json"), "{}"),
    (
        Some("\"str\""),
        Some("application/super+json"),
        "{\"data\":null}",
    ),
    (
        Some("true"),
        Some("application/super+json"),
        "{\"data\":null}",
    ),
    (
        Some("{\"json\":{\"a\":1},\"meta\":{\"values\":{\"a\":[[\"class\",\"Foo\"]]}}}"),
        Some("application/super+json"),
        "{}",
    ),
    (
        Some("{\"json\":{\"a\":1},\"meta\":{\"values\":{\"a\":[[\"custom\",\"nope\"]]}}}"),
        Some("application/super+json"),
        "{}",
    ),
    (
        Some("{\"json\":{\"a\":1},\"meta\":{\"values\":\"bigint\"}}"),
        Some("application/super+json"),
        "{}",
    ),
    (
        Some("{\"json\":{\"a\":1},\"meta\":{\"values\":[\"weird\"]}}"),
        Some("application/super+json"),
        "{}",
    ),
    (
        Some("{\"json\":{\"a\":1},\"meta\":5}"),
        Some("application/super+json"),
        "{\"data\":{\"a\":1}}",
    ),
    (
        Some("{\"json\":{\"a\":1},\"json\":{\"b\":2}}"),
        Some("application/super+json"),
        "{\"data\":{\"b\":2}}",
    ),
    (
        Some("{\"json\":{\"a\":1,\"a\":2}}"),
        Some("application/super+json"),
        "{\"data\":{\"a\":2}}",
    ),
    (
        Some("{\"json\":{\"a\":1e400,\"b\":-0,\"c\":1.0}}"),
        Some("application/super+json"),
        "{\"data\":{\"a\":\"Infinity\",\"b\":\"-0\",\"c\":1}}",
    ),
    (
        Some("{\"json\":\"\\ud800\"}"),
        Some("application/super+json"),
        "{}",
    ),
    (Some("{\"json\":1"), Some("application/super+json"), "{}"),
    (
        Some("{\"json\":{\"a\":1},\"meta\":{\"values\":null,\"referentialEqualities\":\"x\"}}"),
        Some("application/super+json"),
        "{}",
    ),
    (
        Some(
            "{\"json\":{\"a\":[1,2]},\"meta\":{\"values\":{\"a\":[[\"typed-array\",\"Uint8Array\"]]}}}",
        ),
        Some("application/super+json"),
        "{\"data\":{\"a\":[1,2]}}",
    ),
];

fn value(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{text:?} is not JSON: {e}"))
}

/// Numbers compared by their literal, so `1` and `1.0` differ the way ClickHouse sees them.
fn same_json(a: &str, b: &str) -> bool {
    fn canon(v: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::Number(n) => Value::String(format!("#{n}")),
            Value::Array(items) => Value::Array(items.into_iter().map(canon).collect()),
            Value::Object(map) => {
                Value::Object(map.into_iter().map(|(k, v)| (k, canon(v))).collect())
            }
            other => other,
        }
    }
    canon(value(a)) == canon(value(b))
}

#[test]
fn prepare_json_matches_upstream() {
    for &(data, data_type, expected) in GOLDEN {
        let ours = prepare_json(data, data_type);
        assert!(
            same_json(&ours, expected),
            "{data:?} {data_type:?}: ours {ours} upstream {expected}"
        );
        assert!(ours.starts_with('{'), "{ours}");
    }
}

#[test]
fn number_literals_are_javascripts() {
    let ours = prepare_json(Some("[1.0,1e2,-0,1e400,12345678901234567890,1e21,0.1]"), J);
    assert_eq!(
        ours,
        r#"{"data":[1,100,0,null,12345678901234567000,1e+21,0.1]}"#
    );
}

#[test]
fn valid_json_is_spliced_verbatim() {
    let text = r#" {"b": [1, "x", {"c": null}], "a": "\u00e9"} "#;
    assert_eq!(prepare_json(Some(text), J), format!("{{\"data\":{text}}}"));
}

/// (text, upstream's `detectBadJsonStrings(text)`), computed with the upstream function on node.
const DETECT: &[(&str, bool)] = &[
    (r#"{"t":"\ud835"}"#, true),
    (r#"{"t":"\ud835\udc00 ok"}"#, false),
    (r#"{"t":"\udc00"}"#, true),
    (r#"{"t":"x\udc00"}"#, true),
    (r#"{"t":"abcdef\udc00"}"#, true),
    // Only lowercase hex is recognised.
    (r#"{"t":"\uD835"}"#, false),
    (r#"{"t":"\ud8AB"}"#, false),
    // An escaped backslash followed by surrogate-like text (no surrogate at all) fires...
    (r#"{"t":"\\ud800"}"#, true),
    (r#"{"t":"C:\\udeadbeef"}"#, true),
    // ...and hides a real lone low surrogate behind it.
    (r#"{"t":"\\ud83d\ude00"}"#, false),
    (r#"{"t":"\u0041\u00e9"}"#, false),
    (r#""\ud800""#, true),
    (r#""\ud800\u0041""#, true),
    (r#""\ud800\udbff""#, true),
    (r#""\ud800\udc0""#, true),
    (r#""é\ud800""#, true),
    (r#""\ud800é\udc00""#, true),
    (r#""\ud800"#, true),
    (r#"\ud8"#, false),
    (r#""\ud83d\ude00\ud83d\ude00""#, false),
    (r#"{"\ud835":1}"#, true),
];

#[test]
fn detect_bad_json_strings_matches_upstream() {
    for &(text, expected) in DETECT {
        assert_eq!(detect_bad_json_strings(text), expected, "{text}");
    }
}

#[test]
fn upstreams_byte_scan_decides_before_parsing() {
    // Valid JSON without any surrogate, which upstream's scan still drops.
    assert_eq!(prepare_json(Some(r#"{"t":"\\ud800"}"#), J), "{}");
    assert_eq!(prepare_json(Some(r#"{"path":"C:\\udeadbeef"}"#), J), "{}");
    let sj = r#"{"json":{"path":"C:\\udeadbeef"}}"#;
    assert_eq!(prepare_json(Some(sj), Some(APPLICATION_SUPER_JSON)), "{}");
    // The same text one character away from the pattern is kept.
    assert_eq!(
        prepare_json(Some(r#"{"path":"C:\\udexdbeef"}"#), J),
        r#"{"data":{"path":"C:\\udexdbeef"}}"#
    );
    assert_eq!(
        prepare_json(Some(r#"{"path":"C:\\uDeadbeef"}"#), J),
        r#"{"data":{"path":"C:\\uDeadbeef"}}"#
    );
    assert_eq!(
        prepare_json(Some(r#"{"path":"C:\\Users\\ud"}"#), J),
        r#"{"data":{"path":"C:\\Users\\ud"}}"#
    );
    // A real lone surrogate the scan misses (uppercase hex, or hidden behind an escaped
    // backslash): upstream's insert is rejected and its insert-side recovery stores the string
    // as "[invalid-utf16]"; the transform gives `{}` (see the module comment).
    assert_eq!(prepare_json(Some(r#"{"title":"\uD835"}"#), J), "{}");
    assert_eq!(prepare_json(Some(r#"{"t":"\\ud83d\ude00"}"#), J), "{}");
}

#[test]
fn too_deep_for_clickhouse_is_empty() {
    let objects = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
    let ok = objects(json::MAX_DEPTH);
    assert_eq!(prepare_json(Some(&ok), J), format!("{{\"data\":{ok}}}"));
    let deep = objects(json::MAX_DEPTH + 1);
    assert_eq!(prepare_json(Some(&deep), J), "{}");
    let sj = format!("{{\"json\":{deep}}}");
    assert_eq!(prepare_json(Some(&sj), Some(APPLICATION_SUPER_JSON)), "{}");
    assert_eq!(
        prepare_error(Some(&deep)),
        Ok(r#"{"data":null}"#.to_owned())
    );

    let arrays = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let ok = arrays(json::MAX_ARRAY_NESTING);
    assert_eq!(prepare_json(Some(&ok), J), format!("{{\"data\":{ok}}}"));
    let deep = arrays(json::MAX_ARRAY_NESTING + 1);
    assert_eq!(prepare_json(Some(&deep), J), "{}");
    assert_eq!(
        prepare_error(Some(&deep)),
        Ok(r#"{"data":null}"#.to_owned())
    );
}

#[test]
fn error_column() {
    assert_eq!(prepare_error(None), Ok(r#"{"data":null}"#.to_owned()));
    assert_eq!(
        prepare_error(Some("null")),
        Ok(r#"{"data":null}"#.to_owned())
    );
    assert_eq!(
        prepare_error(Some(r#"{"name": "TestError", "message": "test error"}"#)),
        Ok(r#"{"data":{"name": "TestError", "message": "test error"}}"#.to_owned())
    );
    assert_eq!(
        prepare_error(Some(
            r#"{"type": "STRING_ERROR", "raw": "x", "code": 1.50}"#
        )),
        Ok(r#"{"data":{"type": "STRING_ERROR", "raw": "x", "code": 1.5}}"#.to_owned())
    );
    assert_eq!(
        prepare_error(Some(r#""just a string""#)),
        Ok(r#"{"data":"just a string"}"#.to_owned())
    );
    assert_eq!(
        prepare_error(Some("[1, 2]")),
        Ok(r#"{"data":[1, 2]}"#.to_owned())
    );
    // Postgres prints huge numerics in full; JSON.parse makes them Infinity, stringify null.
    let huge = format!("{{\"n\": 1{}}}", "0".repeat(400));
    assert_eq!(
        prepare_error(Some(&huge)),
        Ok(r#"{"data":{"n": null}}"#.to_owned())
    );
    let deep = format!(
        "{}{}",
        "[".repeat(json::MAX_DEPTH + 1),
        "]".repeat(json::MAX_DEPTH + 1)
    );
    assert_eq!(
        prepare_error(Some(&deep)),
        Ok(r#"{"data":null}"#.to_owned())
    );
    assert_eq!(prepare_error(Some("{oops")), Err(Reject::Syntax));
    let deep_then_broken = format!("{}]", "[".repeat(json::MAX_DEPTH + 1));
    assert_eq!(prepare_error(Some(&deep_then_broken)), Err(Reject::Syntax));
}

#[test]
fn why_emptied_names_the_reason_for_every_dropped_json_value() {
    let objects = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
    let deep = objects(json::MAX_DEPTH + 1);
    let s = Some(APPLICATION_SUPER_JSON);
    let cases: &[(&str, Option<&str>, Option<Emptied>)] = &[
        (r#"{"a":1}"#, J, None),
        (r#"{"a":1}"#, Some("text/plain"), None),
        ("", J, None),
        (&deep, J, Some(Emptied::TooDeep)),
        (r#"{"t":"\ud800"}"#, J, Some(Emptied::BadJsonStrings)),
        (r#"{"title":"\uD835"}"#, J, Some(Emptied::LoneSurrogate)),
        ("{not json", J, Some(Emptied::NotJson)),
        (r#"{"json":{"a":1}}"#, s, None),
        ("not superjson", s, Some(Emptied::UnreadableSuperJson)),
    ];
    for (data, ty, want) in cases {
        assert_eq!(
            why_json_emptied(Some(data), *ty),
            *want,
            "{data:.40} {ty:?}"
        );
        // The reason is given exactly when prepare_json dropped a JSON value.
        let dropped = prepare_json(Some(data), *ty) == "{}"
            && !data.is_empty()
            && matches!(ty, Some(APPLICATION_JSON | APPLICATION_SUPER_JSON));
        assert_eq!(want.is_some(), dropped, "{data:.40} {ty:?}");
    }
    for (data, ty, _) in GOLDEN {
        let dropped = prepare_json(*data, *ty) == "{}"
            && data.is_some_and(|d| !d.is_empty())
            && matches!(ty, Some(APPLICATION_JSON | APPLICATION_SUPER_JSON));
        assert_eq!(
            why_json_emptied(*data, *ty).is_some(),
            dropped,
            "{data:?} {ty:?}"
        );
    }
    assert_eq!(why_error_emptied(Some(&deep)), Some(Emptied::TooDeep));
    assert_eq!(why_error_emptied(Some("null")), None);
    assert_eq!(why_error_emptied(None), None);
}
