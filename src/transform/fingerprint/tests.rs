//! Golden values computed by upstream's `calculateErrorFingerprint`, `normalizeErrorMessage` and
//! `normalizeStackTrace` (the upstream file with its type annotations removed, run on node v20;
//! upstream commit b082e44389337dc6505d590737a6df70867cc8f4).

use super::*;

/// (error JSON, fingerprint, normalized message, normalized stack); `None` where the error is not
/// an object.
const GOLDEN: &[(&str, &str, Option<&str>, Option<&str>)] = &[
    (
        "{\"name\":\"Error\",\"message\":\"\"}",
        "cc2c5cb7db0d497e",
        Some("Error"),
        Some(""),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"Something broke\"}",
        "6b097f65b926204a",
        Some("Something broke"),
        Some(""),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"Run run_abc123XYZ failed\"}",
        "0170cef8f2261d40",
        Some("Run <run-id> failed"),
        Some(""),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"Task task_abcdefgh12 and task_abc and batch_ABCDEFGHIJ\"}",
        "fac55b8007af4c98",
        Some("Task <id> and task_abc and <id>"),
        Some(""),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"id ab_abcdefghé and éab_abcdefgh1 and ab_abcdefgh_1\"}",
        "f5128b6ceeec4444",
        Some("id <id>é and é<id> and ab_abcdefgh_1"),
        Some(""),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"User 550e8400-e29b-41d4-a716-446655440000 and 550E8400-E29B-41D4-A716-446655440000 not found\"}",
        "ba941c691b88891c",
        Some("User <uuid> and <uuid> not found"),
        Some(""),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"At 2024-01-02T03:04:05.123Z and 2024-01-02T03:04:05 and 2024-01-02T03:04:05.1+02:00\"}",
        "21b9b9ee20d4aaae",
        Some("At <timestamp> and <timestamp> and <timestamp>+02:00"),
        Some(""),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"Epoch 1700000000 and 1700000000123 and 17000000001234 and 123456789\"}",
        "88451131d5b0a69b",
        Some("Epoch <timestamp> and <timestamp> and <id> and <id>"),
        Some(""),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"GET https://api.example.com/v1/users/123?x=1 failed, http://x.y/z\u{a0}after and https://a.b/c\u{85}d\"}",
        "72ec5493b4db1484",
        Some("GET <url> failed, <url>\u{a0}after and <url>"),
        Some(""),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"Order 12345 qty 123 code 9999 and 12a345\"}",
        "c66ca431245259e9",
        Some("Order <id> qty 123 code <id> and 12a345"),
        Some(""),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"Cannot find module /app/src/lib/util.js or ./rel/path/x and /single\"}",
        "3415cc96f93a5ef8",
        Some("Cannot find module <path> or .<path> and /single"),
        Some(""),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"Path C:\\\\Users\\\\bob\\\\file.txt and D:\\\\a\\\\b\"}",
        "034325bb01f94684",
        Some("Path <path>"),
        Some(""),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"Contact admin@example.com or x.y+z@sub.domain.co.uk or bad@host\"}",
        "e32e5ed85717619d",
        Some("Contact <email> or <email> or bad@host"),
        Some(""),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"Segfault at 0xdeadbeefcafe and 0x1234\"}",
        "3fc00c7a76f74f48",
        Some("Segfault at <addr> and 0x1234"),
        Some(""),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"Unexpected \\\"this is a very long quoted string value\\\" and \\\"short\\\"\"}",
        "fba498fb355b0731",
        Some("Unexpected \"<string>\" and \"short\""),
        Some(""),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"Single 'another fairly long quoted string here' and 'tiny'\"}",
        "abb2e59f77f3e340",
        Some("Single '<string>' and 'tiny'"),
        Some(""),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"\\\"😀😀😀😀😀😀😀😀😀😀\\\" is 20 UTF-16 units\"}",
        "41accc6dec5e4634",
        Some("\"<string>\" is 20 UTF-16 units"),
        Some(""),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"\\\"😀😀😀😀😀😀😀😀😀\\\" is 18 units\"}",
        "f6859108bc93179c",
        Some("\"😀😀😀😀😀😀😀😀😀\" is 18 units"),
        Some(""),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"\\\"short\\\" then \\\"a long one that is more than twenty\\\" then \\\"x\\\"\"}",
        "966076b3b871ec40",
        Some("\"short\" then \"<string>\" then \"x\""),
        Some(""),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"\\\"unterminated quote that is very long indeed\"}",
        "320d641bda87387b",
        Some("\"unterminated quote that is very long indeed"),
        Some(""),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"Mixed: run_1 at https://x.io/run_2/task_abcdefghij 2024-05-06T07:08:09Z id 424242 path /a/b/c email a@b.io\"}",
        "012ac8dc9901cb24",
        Some("Mixed: <run-id> at <url> <timestamp> id <id> path <path> email <email>"),
        Some(""),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"ünïcödé message with 12345 and ٣٤٥٦٧ digits\"}",
        "4c9d6908f265051b",
        Some("ünïcödé message with <id> and ٣٤٥٦٧ digits"),
        Some(""),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"tab\\tand\u{3000}ideographic space /a/b\u{3000}/c/d\"}",
        "55e8609287433271",
        Some("tab\tand\u{3000}ideographic space <path>\u{3000}<path>"),
        Some(""),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"$1 and $& replacement-looking text run_x\"}",
        "a786f51b89d4086b",
        Some("$1 and $& replacement-looking text <run-id>"),
        Some(""),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"boom\",\"stack\":\"\"}",
        "1c0cb85b275141a0",
        Some("boom"),
        Some(""),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"boom\",\"stack\":\"Error: Connection failed to db-7 after 3000ms\\n    at connect (/app/node_modules/pg/lib/client.js:132:17)\\n    at async Pool.query (/app/src/db.ts:45:9)\\n    at async run (file:///app/dist/tasks/sync.mjs:12:3)\\n    at async executeTask (/app/node_modules/@trigger.dev/core/dist/worker.js:880:22)\\n    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)\\n    at last (/x/y/z.js:1:1)\"}",
        "3c5fd100d27c1b4d",
        Some("boom"),
        Some(
            "Error: Connection failed to db-_ after 3000ms|at connect (client.js:_:_)|at async Pool.query (db.ts:_:_)|at async run (file://sync.mjs:_:_)|at async executeTask (worker.js:_:_)",
        ),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"boom\",\"stack\":\"    at foo (bar.js:10:20)\\r\\n    at baz (qux.js:1:2)\\r\\n\"}",
        "00b8534369361518",
        Some("boom"),
        Some("at foo (bar.js:_:_)|at baz (qux.js:_:_)"),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"boom\",\"stack\":\"\\n\\n   \\n\"}",
        "1c0cb85b275141a0",
        Some("boom"),
        Some(""),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"boom\",\"stack\":\"line one 42\\nline two 4242 x42 42x\\n\u{a0} padded \u{feff}\\n\u{85}nel\u{85}\"}",
        "dbfb1f468b780edc",
        Some("boom"),
        Some("line one _|line two _ x42 42x|padded|\u{85}nel\u{85}"),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"boom\",\"stack\":\"at a (/very/deep/path/to/file.ts:1:2)\\nat b (C:\\\\win\\\\path.ts:3:4)\\nat c (http://host:8080/a/b.js:5:6)\"}",
        "5dd67a82ffe3f4b6",
        Some("boom"),
        Some("at a (file.ts:_:_)|at b (C:\\win\\path.ts:_:_)|at c (http:/b.js:_:_)"),
    ),
    (
        "{\"name\":\"Error\",\"message\":\"boom\",\"stack\":\"one\\ntwo\\nthree\\nfour\\nfive\\nsix\\nseven\"}",
        "29769368bbaede70",
        Some("boom"),
        Some("one|two|three|four|five"),
    ),
    (
        "{\"message\":\"no name\"}",
        "79d8ca2253d6bf11",
        Some("no name"),
        Some(""),
    ),
    (
        "{\"type\":\"BUILT_IN_ERROR\",\"name\":\"TypeError\",\"message\":\"x is not a function\",\"stack\":\"Error: Connection failed to db-7 after 3000ms\\n    at connect (/app/node_modules/pg/lib/client.js:132:17)\\n    at async Pool.query (/app/src/db.ts:45:9)\\n    at async run (file:///app/dist/tasks/sync.mjs:12:3)\\n    at async executeTask (/app/node_modules/@trigger.dev/core/dist/worker.js:880:22)\\n    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)\\n    at last (/x/y/z.js:1:1)\"}",
        "9ce2f3250a693d04",
        Some("x is not a function"),
        Some(
            "Error: Connection failed to db-_ after 3000ms|at connect (client.js:_:_)|at async Pool.query (db.ts:_:_)|at async run (file://sync.mjs:_:_)|at async executeTask (worker.js:_:_)",
        ),
    ),
    (
        "{\"type\":\"STRING_ERROR\",\"raw\":\"plain string error\"}",
        "69fbf960163993e6",
        Some("plain string error"),
        Some(""),
    ),
    (
        "{\"type\":\"\",\"name\":\"RangeError\",\"message\":\"bad\"}",
        "8f404427f1b0b09d",
        Some("bad"),
        Some(""),
    ),
    (
        "{\"type\":0,\"name\":0,\"message\":0,\"stack\":0}",
        "8f5fe443124cddd2",
        Some(""),
        Some(""),
    ),
    (
        "{\"name\":42,\"message\":1.5,\"stack\":true}",
        "2acf7742e817e4f7",
        Some("1.5"),
        Some("true"),
    ),
    (
        "{\"name\":[\"A\",\"B\"],\"message\":[\"m\",[\"n\",null],{}],\"stack\":[]}",
        "9a19973cd6d67de7",
        Some("m,n,,[object Object]"),
        Some(""),
    ),
    (
        "{\"name\":{},\"message\":{\"nested\":true}}",
        "f42f556d06bf9e4f",
        Some("[object Object]"),
        Some(""),
    ),
    (
        "{\"name\":false,\"message\":false,\"stack\":false,\"stacktrace\":\"fallback frame at x.js:1:2\"}",
        "953e576ebfb536bc",
        Some(""),
        Some("fallback frame at x.js:_:_"),
    ),
    (
        "{\"message\":\"\",\"stack\":\"\",\"stacktrace\":\"only stacktrace /a/b/c.js:3:4\"}",
        "b610c2f1f79055fe",
        Some(""),
        Some("only stacktrace c.js:_:_"),
    ),
    (
        "{\"name\":null,\"message\":null}",
        "8f5fe443124cddd2",
        Some(""),
        Some(""),
    ),
    (
        "{\"name\":\"TaskRunError\",\"message\":\"m\",\"stack\":\"s\",\"stacktrace\":\"ignored\"}",
        "970c46242affa3f4",
        Some("m"),
        Some("s"),
    ),
    (
        "{\"message\":12345678901234567000}",
        "f731dc5cb5b9954a",
        Some("<id>"),
        Some(""),
    ),
    (
        "{\"message\":1e+21,\"name\":0}",
        "cb63558360ae83cd",
        Some("1e+21"),
        Some(""),
    ),
    (
        "{\"name\":\"E\",\"message\":\"Multi\\nline\\nmessage 12345\"}",
        "e389167b2c1ea293",
        Some("Multi\nline\nmessage <id>"),
        Some(""),
    ),
    ("{}", "8f5fe443124cddd2", Some(""), Some("")),
    ("null", "", None, None),
    ("[]", "", None, None),
    ("[\"a\"]", "", None, None),
    ("\"str\"", "", None, None),
    ("42", "", None, None),
    ("true", "", None, None),
];

/// The message rule, `String(error.message || error.name || error.raw || "")`, case by case:
/// (error JSON, fingerprint, normalized message). Values from the upstream function on node.
const MESSAGE_RULE: &[(&str, &str, &str)] = &[
    // Empty message: the class name stands in.
    (
        "{\"name\":\"TypeError\",\"message\":\"\"}",
        "ff4c5dc44365b232",
        "TypeError",
    ),
    // A BUILT_IN_ERROR without a message (e.g. a tagged error); `stackTrace` is not read (only
    // `stack` / `stacktrace`).
    (
        "{\"type\":\"BUILT_IN_ERROR\",\"name\":\"AbortError\",\"message\":\"\",\"stackTrace\":\"AbortError: x\\n    at a (/b/c.js:1:2)\"}",
        "09334e4599a8eb04",
        "AbortError",
    ),
    // No message at all: the name.
    ("{\"name\":\"TypeError\"}", "ff4c5dc44365b232", "TypeError"),
    // STRING_ERROR: no message, no name, the raw string, normalized like a message.
    (
        "{\"type\":\"STRING_ERROR\",\"raw\":\"Timeout after 30000ms for run_abc123 at /app/src/x.ts\"}",
        "fd3b81f4aaa3f6f8",
        "Timeout after 30000ms for <run-id> at <path>",
    ),
    // CUSTOM_ERROR: the raw serialized value.
    (
        "{\"type\":\"CUSTOM_ERROR\",\"raw\":\"{\\\"code\\\":42}\"}",
        "e27056c40508deee",
        "{\"code\":42}",
    ),
    // A raw value that is not a string prints as JavaScript's `String(value)`: an object,
    (
        "{\"type\":\"CUSTOM_ERROR\",\"raw\":{\"code\":42}}",
        "eae1277aa8136edc",
        "[object Object]",
    ),
    // a number,
    ("{\"raw\":42}", "4e86f65c5ff89954", "42"),
    // a number in JavaScript's form,
    ("{\"raw\":1.50}", "f37605df9d90ca08", "1.5"),
    // an array (joined, nested arrays flattened, null as nothing),
    (
        "{\"raw\":[1,[2,3],null,\"x\"]}",
        "3d28417423b823f2",
        "1,2,3,,x",
    ),
    // a boolean.
    ("{\"raw\":true}", "bba3dff104041a24", "true"),
    // Falsy raw values fall through to "": false,
    ("{\"raw\":false}", "8f5fe443124cddd2", ""),
    // 0,
    ("{\"raw\":0}", "8f5fe443124cddd2", ""),
    // the empty string,
    ("{\"raw\":\"\"}", "8f5fe443124cddd2", ""),
    // null.
    ("{\"raw\":null}", "8f5fe443124cddd2", ""),
    // A numeric message.
    ("{\"message\":42}", "4e86f65c5ff89954", "42"),
    // A falsy numeric message falls through to the name,
    ("{\"message\":0,\"name\":\"E\"}", "419e3f9c70b65cfb", "E"),
    // then, with a falsy name, to raw;
    (
        "{\"message\":0,\"name\":0,\"raw\":\"r\"}",
        "9eafd5b849c46b09",
        "r",
    ),
    // -0 is falsy too.
    (
        "{\"message\":-0.0,\"name\":\"\",\"raw\":\"zero\"}",
        "29dbf4dff6487066",
        "zero",
    ),
    // false falls through.
    (
        "{\"message\":false,\"name\":\"RangeError\"}",
        "c9bc0b25256ee817",
        "RangeError",
    ),
    // null falls through.
    (
        "{\"message\":null,\"name\":null,\"raw\":\"r\"}",
        "9eafd5b849c46b09",
        "r",
    ),
    // Empty strings fall through.
    (
        "{\"message\":\"\",\"name\":\"\",\"raw\":\"x\"}",
        "2eea5c199b896297",
        "x",
    ),
    // "0" is a non-empty string, so truthy.
    (
        "{\"message\":\"0\",\"name\":\"E\"}",
        "8aeb8d98c28c745c",
        "0",
    ),
    // An empty array is truthy and prints as "": the name is not used.
    (
        "{\"message\":[],\"name\":\"E\",\"raw\":\"r\"}",
        "f7ed211f6e8cefbf",
        "",
    ),
    // An empty object is truthy: `[object Object]`.
    (
        "{\"message\":{},\"name\":\"E\"}",
        "8dd5d6bf465a83d3",
        "[object Object]",
    ),
    // A message wins over name and raw.
    (
        "{\"message\":\"m\",\"name\":\"E\",\"raw\":\"r\"}",
        "422103c075dfe959",
        "m",
    ),
    // Name before raw.
    ("{\"name\":\"E\",\"raw\":\"r\"}", "419e3f9c70b65cfb", "E"),
    // A name that is not a string prints as JavaScript does (and is normalized: `<id>`),
    (
        "{\"name\":12345,\"message\":\"\"}",
        "6e949cd512d82d8e",
        "<id>",
    ),
    // including an array.
    ("{\"name\":[\"A\",\"B\"]}", "44b77d2a39c1027a", "A,B"),
    // INTERNAL_ERROR with an empty message and no name or raw: "" (its `code` is not read).
    (
        "{\"type\":\"INTERNAL_ERROR\",\"code\":\"TASK_PROCESS_OOM_KILLED\",\"message\":\"\"}",
        "e8020520f548344d",
        "",
    ),
    // Member names are case-sensitive.
    (
        "{\"Message\":\"case matters\",\"Name\":\"E\",\"RAW\":\"r\"}",
        "8f5fe443124cddd2",
        "",
    ),
];

#[test]
fn message_falls_back_to_name_then_raw() {
    for &(error, expected, message) in MESSAGE_RULE {
        assert_eq!(error_fingerprint(error), expected, "{error}");
        let (_, m, s) = inputs(error).expect("an object");
        assert_eq!(normalize_message(&m), message, "{error}");
        assert_eq!(s, "", "{error}");
    }
}

#[test]
fn numeric_messages_beyond_a_double() {
    // jsonb keeps numerics of any size and prints them in full; `JSON.parse` reads the first as
    // Infinity (truthy) and the second as 0 (falsy, so the name stands in). Values from node.
    let huge = format!(r#"{{"message": 1{}, "name": "E"}}"#, "0".repeat(400));
    assert_eq!(error_fingerprint(&huge), "4292f6df5c832e3d");
    let tiny = format!(r#"{{"message": 0.{}1, "name": "E"}}"#, "0".repeat(399));
    assert_eq!(error_fingerprint(&tiny), "419e3f9c70b65cfb");
}

#[test]
fn messageless_errors_of_one_type_no_longer_collapse() {
    // Before upstream #4225 each pair had one fingerprint: same type, no message, no stack.
    for (a, b) in [
        (
            r#"{"type": "BUILT_IN_ERROR", "name": "AbortError", "message": ""}"#,
            r#"{"type": "BUILT_IN_ERROR", "name": "TimeoutError", "message": ""}"#,
        ),
        (
            r#"{"type": "STRING_ERROR", "raw": "first"}"#,
            r#"{"type": "STRING_ERROR", "raw": "second"}"#,
        ),
        (
            r#"{"type": "CUSTOM_ERROR", "raw": "{\"code\":1}"}"#,
            r#"{"type": "CUSTOM_ERROR", "raw": "{\"code\":2}"}"#,
        ),
    ] {
        assert_ne!(error_fingerprint(a), error_fingerprint(b), "{a} / {b}");
    }
}

#[test]
fn fingerprints_match_upstream() {
    for &(error, expected, message, stack) in GOLDEN {
        assert_eq!(error_fingerprint(error), expected, "{error}");
        match inputs(error) {
            Some((_, m, s)) => {
                assert_eq!(Some(&*normalize_message(&m)), message, "{error}");
                assert_eq!(Some(normalize_stack(&s).as_str()), stack, "{error}");
            }
            None => assert_eq!((message, stack), (None, None), "{error}"),
        }
    }
}

#[test]
fn jsonb_rendering_gives_the_same_fingerprint() {
    // Postgres prints jsonb with spaces and its own key order; property access does not care.
    let compact =
        r#"{"name":"TypeError","message":"x is not a function","stack":"at a (/b/c.js:1:2)"}"#;
    let jsonb =
        r#"{"name": "TypeError", "stack": "at a (/b/c.js:1:2)", "message": "x is not a function"}"#;
    assert_eq!(error_fingerprint(compact), error_fingerprint(jsonb));
    let escaped = r#"{"n\u0061me": "TypeError", "message": "x is not a function", "stack": "at a (/b/c.js:1:2)"}"#;
    assert_eq!(error_fingerprint(escaped), error_fingerprint(compact));
}

#[test]
fn only_objects_have_a_fingerprint() {
    for not_object in [
        "null",
        "[]",
        "[{\"name\":\"E\"}]",
        "\"str\"",
        "42",
        "true",
        "false",
    ] {
        assert_eq!(error_fingerprint(not_object), "", "{not_object}");
    }
    assert_eq!(error_fingerprint("{}").len(), 16);
}

#[test]
fn long_quoted_strings_count_utf16_units() {
    let twenty = "😀".repeat(10);
    assert_eq!(
        replace_long_quoted(&format!("\"{twenty}\""), '"').as_deref(),
        Some("\"<string>\"")
    );
    assert_eq!(
        replace_long_quoted(&format!("\"{}\"", "😀".repeat(9)), '"'),
        None
    );
    assert_eq!(
        replace_long_quoted("\"ab\"cdefghijklmnopqrstuvwxyz\"", '"').as_deref(),
        Some("\"ab\"<string>\"")
    );
    assert_eq!(replace_long_quoted("no quotes at all", '"'), None);
}

#[test]
fn js_trim_uses_javascript_white_space() {
    assert_eq!(js_trim("\u{FEFF}\u{A0} x \u{3000}"), "x");
    assert_eq!(js_trim("\u{85}x\u{85}"), "\u{85}x\u{85}");
}
