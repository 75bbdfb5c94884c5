use super::*;
use crate::testing::runs::run_row;

#[test]
fn cells_are_the_table_columns_but_version_in_order_with_matching_kinds() {
    let row = run_row("run_1");
    let names: Vec<&str> = cells(&row).iter().map(|(n, _)| *n).collect();
    let expected: Vec<&str> = RUN_COLUMNS
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| *n != "_version")
        .collect();
    assert_eq!(names, expected);
    for ((name, cell), (_, ty)) in cells(&row)
        .iter()
        .zip(RUN_COLUMNS.iter().filter(|(n, _)| *n != "_version"))
    {
        let fits = match cell {
            Cell::Text(_) => matches!(*ty, "String" | "LowCardinality(String)"),
            Cell::Json(_) => *ty == "JSON",
            Cell::UInt(_) => matches!(*ty, "UInt8" | "UInt32" | "UInt64"),
            Cell::Time(_) => *ty == "DateTime64(3)",
            Cell::OptTime(_) => *ty == "Nullable(DateTime64(3))",
            Cell::OptUInt(_) => matches!(*ty, "Nullable(UInt8)" | "Nullable(UInt32)"),
            Cell::Float(_) => *ty == "Float64",
            Cell::Texts(_) => *ty == "Array(String)",
        };
        assert!(fits, "{name}: {cell:?} is not written as a {ty}");
    }
}

#[test]
fn the_row_text_is_length_prefixed_and_names_nulls_floats_and_payloads() {
    let mut row = run_row("run_1");
    row.tags = vec!["a:b".into(), String::new()];
    row.cost_in_cents = 0.1;
    row.completed_at = None;
    row.started_at = Some(-5);
    row.output = r#"{"data":{"b":1.0,"a":null,"c":"x/y"}}"#.into();
    let text = row_text(&row, Some(false));
    assert!(text.starts_with("5:env_1"), "{text}");
    assert!(text.contains("2[3:a:b0:]"), "tags: {text}");
    assert!(
        text.contains("4591870180066957722;"),
        "0.1 as its bits: {text}"
    );
    assert!(
        text.contains("N;-5;"),
        "completed_at NULL, started_at: {text}"
    );
    assert!(
        text.contains(r#"27:{"data":{"b":1,"c":"x\/y"}}2:{}"#),
        "output as ClickHouse renders it: {text}"
    );
    assert!(text.ends_with("P0;"));
    assert_eq!(row_text(&row, None), text[..text.len() - 3]);
    assert_ne!(digest(&row, Some(true)), digest(&row, Some(false)));
    let mut other = row.clone();
    other._version += 1;
    assert_eq!(
        digest(&row, None),
        digest(&other, None),
        "_version is left out"
    );
    other.status = "CANCELED".into();
    assert_ne!(digest(&row, None), digest(&other, None));
}

#[test]
fn hashes_and_ranges_are_clickhouse_xxhash64() {
    // SELECT xxHash64('abc'), xxHash64('') in ClickHouse 26.
    assert_eq!(xxhash64(b"abc"), 4_952_883_123_889_572_249);
    assert_eq!(xxhash64(b""), 17_241_709_254_077_376_921);
    assert_eq!(range_of("abc", 1), 0);
    assert_eq!(
        range_of("abc", 16),
        (4_952_883_123_889_572_249u64 >> 48) as u32
    );
    assert_eq!(range_sql(16), "bitShiftRight(xxHash64(run_id), 48)");
}

#[test]
fn the_sql_names_every_column_once_and_no_alias_shadows_one() {
    let sql = digest_sql(Some("run_id IN (SELECT 1)"));
    for (name, _) in RUN_COLUMNS {
        let quoted = format!("`{name}`");
        let n = sql.matches(&quoted).count();
        if name == "_version" {
            assert_eq!(n, 0);
        } else {
            assert!(n >= 1, "{name}");
        }
    }
    assert!(sql.ends_with("if(run_id IN (SELECT 1), 'P1;', 'P0;')))"));
    assert!(!sql.contains(" AS "), "no aliases: {sql}");
    assert!(sql.contains("v_item ->"));
}

/// `toJSONString` of a JSON column holding each text, as ClickHouse 26.9 printed it (inserted with
/// the worker's insert settings: no date inference, duplicate paths skipped).
const RENDERED: &[(&str, &str)] = &[
    ("{}", "{}"),
    (r#"{"data":null}"#, "{}"),
    (r#"{"data":{}}"#, "{}"),
    (r#"{"data":{"a":{}}}"#, "{}"),
    (r#"{"data":{"x":null}}"#, "{}"),
    (r#"{"data":1}"#, r#"{"data":1}"#),
    (r#"{"data":1.0}"#, r#"{"data":1}"#),
    (r#"{"data":1.5}"#, r#"{"data":1.5}"#),
    (r#"{"data":-0.0}"#, r#"{"data":-0}"#),
    (r#"{"d":-0}"#, r#"{"d":0}"#),
    (r#"{"data":1e21}"#, r#"{"data":1e21}"#),
    (r#"{"d":1e20}"#, r#"{"d":100000000000000000000}"#),
    (r#"{"data":1e-7}"#, r#"{"data":1e-7}"#),
    (r#"{"d":1.234e-7}"#, r#"{"d":1.234e-7}"#),
    (r#"{"d":1e-6}"#, r#"{"d":0.000001}"#),
    (r#"{"d":1.5e-5}"#, r#"{"d":0.000015}"#),
    (r#"{"data":0.1}"#, r#"{"data":0.1}"#),
    (
        r#"{"d":0.30000000000000004}"#,
        r#"{"d":0.30000000000000004}"#,
    ),
    (r#"{"d":1.5E+3}"#, r#"{"d":1500}"#),
    (r#"{"data":123.456e2}"#, r#"{"data":12345.6}"#),
    (r#"{"data":2.5e15}"#, r#"{"data":2500000000000000}"#),
    (
        r#"{"d":12345678901234567890123.5}"#,
        r#"{"d":1.2345678901234568e22}"#,
    ),
    (
        r#"{"data":1.7976931348623157e308}"#,
        r#"{"data":1.7976931348623157e308}"#,
    ),
    (r#"{"data":5e-324}"#, r#"{"data":5e-324}"#),
    (r#"{"d":-1e-400}"#, r#"{"d":-0}"#),
    (r#"{"d":9007199254740993.0}"#, r#"{"d":9007199254740992}"#),
    (r#"{"d":9007199254740993}"#, r#"{"d":9007199254740993}"#),
    (
        r#"{"data":18446744073709551615}"#,
        r#"{"data":18446744073709551615}"#,
    ),
    (
        r#"{"data":-9223372036854775808}"#,
        r#"{"data":-9223372036854775808}"#,
    ),
    (
        r#"{"data":123456789012345678901}"#,
        r#"{"data":"123456789012345678901"}"#,
    ),
    (
        r#"{"d":-9223372036854775809}"#,
        r#"{"d":"-9223372036854775809"}"#,
    ),
    (r#"{"data":"x"}"#, r#"{"data":"x"}"#),
    (
        r#"{"data":"2024-01-02T03:04:05.000Z"}"#,
        r#"{"data":"2024-01-02T03:04:05.000Z"}"#,
    ),
    (r#"{"data":"1"}"#, r#"{"data":"1"}"#),
    (r#"{"data":true}"#, r#"{"data":true}"#),
    (
        r#"{"data":"é\u0001\n\t\"\\/"}"#,
        r#"{"data":"é\u0001\n\t\"\\\/"}"#,
    ),
    (r#"{"data":"\ud83d\ude00"}"#, r#"{"data":"😀"}"#),
    (r#"{"data":"\u00e9"}"#, r#"{"data":"é"}"#),
    (
        r#"{"d":"\u007f\u2028\u2029\u001f\u0000"}"#,
        "{\"d\":\"\u{7f}\\u2028\\u2029\\u001F\\u0000\"}",
    ),
    (r#"{"d":"\b\f\r"}"#, r#"{"d":"\b\f\r"}"#),
    (r#"{"data":"</script>"}"#, r#"{"data":"<\/script>"}"#),
    (r#"{"data":{"b":1,"a":2}}"#, r#"{"data":{"a":2,"b":1}}"#),
    (
        r#"{"data":{"a":{"c":null,"b":[{"y":1,"x":2}]}}}"#,
        r#"{"data":{"a":{"b":[{"x":2,"y":1}]}}}"#,
    ),
    (
        r#"{"b":1,"a":{"z":1,"y":[true,false]}}"#,
        r#"{"a":{"y":[true,false],"z":1},"b":1}"#,
    ),
    (
        r#"{"B":1,"a":2,"_":3,"aa":4,"a b":5,"é":6,"Z":7,"0":8}"#,
        r#"{"0":8,"B":1,"Z":7,"_":3,"a":2,"a b":5,"aa":4,"é":6}"#,
    ),
    // Ordered by path: "a b" < "a.x" < "a/" < "a0".
    (r#"{"a":{"x":1},"a b":2}"#, r#"{"a b":2,"a":{"x":1}}"#),
    (
        r#"{"a":{"x":1},"a-b":2,"a0":3,"a/":4}"#,
        r#"{"a-b":2,"a":{"x":1},"a\/":4,"a0":3}"#,
    ),
    (r#"{"data":{"":1}}"#, r#"{"data":{"":1}}"#),
    (r#"{"d":{"a":[]}}"#, r#"{"d":{"a":[]}}"#),
    (r#"{"data":[]}"#, r#"{"data":[]}"#),
    (r#"{"data":[1,2,3]}"#, r#"{"data":[1,2,3]}"#),
    (r#"{"data":[1,2.5]}"#, r#"{"data":[1,2.5]}"#),
    (r#"{"d":[-0,0.5]}"#, r#"{"d":[0,0.5]}"#),
    (r#"{"d":[-0.0]}"#, r#"{"d":[-0]}"#),
    (
        r#"{"d":[9007199254740993,1.5]}"#,
        r#"{"d":[9007199254740992,1.5]}"#,
    ),
    (r#"{"data":[true,1]}"#, r#"{"data":[1,1]}"#),
    (r#"{"d":[true,1.5]}"#, r#"{"d":[1,1.5]}"#),
    (r#"{"d":[true,1,1.5]}"#, r#"{"d":[1,1,1.5]}"#),
    (r#"{"d":[true,"x"]}"#, r#"{"d":["true","x"]}"#),
    (r#"{"d":["a",null,true]}"#, r#"{"d":["a",null,"true"]}"#),
    (r#"{"d":[1,null,true]}"#, r#"{"d":[1,null,1]}"#),
    (r#"{"data":[1,"a"]}"#, r#"{"data":[1,"a"]}"#),
    (r#"{"d":["x",1,true]}"#, r#"{"d":["x",1,true]}"#),
    (r#"{"d":[true,1.5,"x"]}"#, r#"{"d":[true,1.5,"x"]}"#),
    (r#"{"data":[null,1]}"#, r#"{"data":[null,1]}"#),
    (
        r#"{"data":[1.5,"x",null,{"a":1}]}"#,
        r#"{"data":[1.5,"x",null,{"a":1}]}"#,
    ),
    (
        r#"{"d":[18446744073709551616,1]}"#,
        r#"{"d":["18446744073709551616",1]}"#,
    ),
    (r#"{"data":[[1,2],[3]]}"#, r#"{"data":[[1,2],[3]]}"#),
    (r#"{"d":[[true],[1]]}"#, r#"{"d":[[1],[1]]}"#),
    (r#"{"d":[[true],["a"]]}"#, r#"{"d":[["true"],["a"]]}"#),
    (r#"{"d":[[1],["a"]]}"#, r#"{"d":[[1],["a"]]}"#),
    (r#"{"d":[[1,2.5],[true]]}"#, r#"{"d":[[1,2.5],[1]]}"#),
    (r#"{"d":[[],["x"],[true]]}"#, r#"{"d":[[],["x"],["true"]]}"#),
    (r#"{"d":[[1],[null]]}"#, r#"{"d":[[1],[null]]}"#),
    (r#"{"d":[1,[true,1]]}"#, r#"{"d":[1,[1,1]]}"#),
    (r#"{"d":[true,[1]]}"#, r#"{"d":[true,[1]]}"#),
    (r#"{"data":[[]]}"#, r#"{"data":[[]]}"#),
    (r#"{"data":[{}]}"#, r#"{"data":[{}]}"#),
    (
        r#"{"data":[{"a":1},{"b":"x"}]}"#,
        r#"{"data":[{"a":1},{"b":"x"}]}"#,
    ),
    (
        r#"{"d":[{"a":true},{"a":1}]}"#,
        r#"{"d":[{"a":true},{"a":1}]}"#,
    ),
    (r#"{"d":[{"b":1,"a":null}]}"#, r#"{"d":[{"b":1}]}"#),
    (r#"{"d":[{"b":{"c":{}}}]}"#, r#"{"d":[{}]}"#),
    (r#"{"d":[{"a":[true,1]}]}"#, r#"{"d":[{"a":[1,1]}]}"#),
    (r#"{"d":[{"a":1},1]}"#, r#"{"d":[{"a":1},1]}"#),
    (
        r#"{"data":{"output":"{\"json\":{\"x\":1}}","outputType":"application/json"}}"#,
        r#"{"data":{"output":"{\"json\":{\"x\":1}}","outputType":"application\/json"}}"#,
    ),
];

#[test]
fn json_renders_as_clickhouse_prints_it() {
    for (input, clickhouse) in RENDERED {
        assert_eq!(
            json::render(input).as_deref(),
            Some(*clickhouse),
            "input {input}"
        );
    }
}

#[test]
fn json_the_emulation_does_not_cover_is_left_as_it_is() {
    for input in [
        // Dotted keys are paths, duplicate keys are skipped or merged: not reproduced.
        r#"{"data":{"a.b":1}}"#,
        r#"{"a":1,"a":2}"#,
        r#"{"a":{"x":1},"a":{"y":2}}"#,
        // Not finite, not an object, not JSON, a lone surrogate.
        r#"{"data":1e400}"#,
        "[1]",
        r#"{"data":"#,
        r#"{"data":"\ud800"}"#,
        r#"{"data":01}"#,
    ] {
        assert_eq!(json::render(input), None, "{input}");
        assert_eq!(json_form(input), input);
    }
    let deep = format!("{{\"d\":{}1{}}}", "[".repeat(100), "]".repeat(100));
    assert_eq!(json::render(&deep), None);
}

#[test]
fn floats_print_as_clickhouse_prints_them() {
    for (v, want) in [
        (0.0, "0"),
        (-0.0, "-0"),
        (1.0, "1"),
        (123456789.123, "123456789.123"),
        (1e20, "100000000000000000000"),
        (1.5e21, "1.5e21"),
        (0.000001, "0.000001"),
        (1.5e-7, "1.5e-7"),
        (-2.5, "-2.5"),
        (f64::MAX, "1.7976931348623157e308"),
    ] {
        let mut out = String::new();
        json::float(v, &mut out);
        assert_eq!(out, want, "{v}");
    }
}

#[test]
fn numbers_print_as_decimal_text() {
    let mut out = String::new();
    for (v, text) in [
        (0i64, "0"),
        (-1, "-1"),
        (1_793_491_200_123, "1793491200123"),
    ] {
        out.clear();
        super::push_i64(&mut out, v);
        assert_eq!(out, text);
    }
    out.clear();
    super::push_i64(&mut out, i64::MIN);
    assert_eq!(out, i64::MIN.to_string());
    out.clear();
    super::push_u64(&mut out, u64::MAX);
    assert_eq!(out, u64::MAX.to_string());
}
