//! Unit tests of `values`.

use super::*;

fn ms(y: i64, mo: u32, d: u32, h: i64, mi: i64, s: i64, milli: i64) -> i64 {
    days_from_civil(y, mo, d) * MS_PER_DAY + ((h * 60 + mi) * 60 + s) * 1000 + milli
}

#[test]
fn civil_from_days_inverts_days_from_civil() {
    for days in (-800_000..800_000)
        .step_by(97)
        .chain([-719_528, -1, 0, 11_017, 20_783])
    {
        let (y, m, d) = civil_from_days(days);
        assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        assert!((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m));
    }
    assert_eq!(civil_from_days(20_783), (2026, 11, 26));
}

#[test]
fn civil_days_anchor_points() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(1969, 12, 31), -1);
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    assert_eq!(days_from_civil(1900, 1, 1), -25_567);
    assert_eq!(days_from_civil(0, 1, 1), -719_528);
    // 2026-11-26 checked against `date -u -d 2026-11-26 +%s` / 86400.
    assert_eq!(days_from_civil(2026, 11, 26), 20_783);
}

#[test]
fn timestamp_common_forms() {
    assert_eq!(timestamp_ms("1970-01-01 00:00:00"), Some(0));
    assert_eq!(
        timestamp_ms("2026-11-26 11:19:00.821"),
        Some(1_795_691_940_821)
    );
    assert_eq!(
        timestamp_ms("2026-11-26 11:19:00.82"),
        Some(1_795_691_940_820)
    );
    assert_eq!(
        timestamp_ms("2026-11-26 11:19:00.8"),
        Some(1_795_691_940_800)
    );
    assert_eq!(timestamp_ms("2026-11-26 11:19:00"), Some(1_795_691_940_000));
    assert_eq!(
        timestamp_ms("2026-11-26T11:19:00.821"),
        Some(1_795_691_940_821)
    );
    // Extra precision (a plain `timestamp` column) is truncated, never rounded up.
    assert_eq!(
        timestamp_ms("2026-11-26 11:19:00.821999"),
        Some(1_795_691_940_821)
    );
}

#[test]
fn timestamp_before_epoch_and_calendar_edges() {
    assert_eq!(timestamp_ms("1969-12-31 23:59:59.999"), Some(-1));
    assert_eq!(
        timestamp_ms("1900-01-01 00:00:00"),
        Some(TIMESTAMP_NEG_INFINITY_MS)
    );
    assert_eq!(
        timestamp_ms("2299-12-31 23:59:59.999"),
        Some(TIMESTAMP_INFINITY_MS)
    );
    assert_eq!(
        timestamp_ms("2024-02-29 00:00:00"),
        Some(ms(2024, 2, 29, 0, 0, 0, 0))
    );
    assert_eq!(
        timestamp_ms("2000-02-29 12:00:00"),
        Some(ms(2000, 2, 29, 12, 0, 0, 0))
    );
    assert_eq!(timestamp_ms("2023-02-29 00:00:00"), None);
    assert_eq!(timestamp_ms("1900-02-29 00:00:00"), None);
    assert_eq!(timestamp_ms("2024-04-31 00:00:00"), None);
    assert_eq!(timestamp_ms("2024-13-01 00:00:00"), None);
    assert_eq!(timestamp_ms("2024-00-01 00:00:00"), None);
    assert_eq!(timestamp_ms("2024-01-00 00:00:00"), None);
    assert_eq!(timestamp_ms("2024-01-01 24:00:00"), None);
    assert_eq!(timestamp_ms("2024-01-01 00:60:00"), None);
}

#[test]
fn timestamp_large_years_and_bc() {
    assert_eq!(
        timestamp_ms("10000-01-01 00:00:00"),
        Some(ms(10000, 1, 1, 0, 0, 0, 0))
    );
    assert_eq!(
        timestamp_ms("294276-12-31 23:59:59.999"),
        Some(ms(294_276, 12, 31, 23, 59, 59, 999))
    );
    assert_eq!(
        timestamp_ms("0099-06-01 00:00:00"),
        Some(ms(99, 6, 1, 0, 0, 0, 0))
    );
    // 1 BC is astronomical year 0 (a leap year), 44 BC is -43.
    assert_eq!(
        timestamp_ms("0001-01-01 00:00:00 BC"),
        Some(ms(0, 1, 1, 0, 0, 0, 0))
    );
    assert_eq!(
        timestamp_ms("0001-02-29 00:00:00 BC"),
        Some(ms(0, 2, 29, 0, 0, 0, 0))
    );
    assert_eq!(
        timestamp_ms("0044-03-15 12:30:00.5 BC"),
        Some(ms(-43, 3, 15, 12, 30, 0, 500))
    );
    assert_eq!(
        timestamp_ms("4714-11-24 00:00:00 BC"),
        Some(ms(-4713, 11, 24, 0, 0, 0, 0))
    );
    assert_eq!(timestamp_ms("0000-01-01 00:00:00 BC"), None);
    assert_eq!(
        timestamp_ms("1234567-01-01 00:00:00"),
        Some(ms(1_234_567, 1, 1, 0, 0, 0, 0))
    );
    assert_eq!(timestamp_ms("12345678-01-01 00:00:00"), None);
    assert_eq!(timestamp_ms("999-01-01 00:00:00"), None);
}

#[test]
fn timestamp_infinities_map_to_the_column_range() {
    assert_eq!(timestamp_ms("infinity"), Some(TIMESTAMP_INFINITY_MS));
    assert_eq!(timestamp_ms("-infinity"), Some(TIMESTAMP_NEG_INFINITY_MS));
    assert_eq!(TIMESTAMP_INFINITY_MS, ms(2299, 12, 31, 23, 59, 59, 999));
    assert_eq!(TIMESTAMP_NEG_INFINITY_MS, ms(1900, 1, 1, 0, 0, 0, 0));
    assert_eq!(timestamp_ms("Infinity"), None);
}

#[test]
fn timestamp_offsets() {
    let utc = ms(2026, 11, 26, 11, 19, 0, 821);
    assert_eq!(timestamp_ms("2026-11-26 11:19:00.821+00"), Some(utc));
    assert_eq!(timestamp_ms("2026-11-26 16:49:00.821+05:30"), Some(utc));
    assert_eq!(timestamp_ms("2026-11-26 03:19:00.821-08"), Some(utc));
    assert_eq!(timestamp_ms("2026-11-26 11:19:10.821+00:00:10"), Some(utc));
    assert_eq!(
        timestamp_ms("0044-03-15 12:00:00+00 BC"),
        Some(ms(-43, 3, 15, 12, 0, 0, 0))
    );
}

#[test]
fn timestamp_rejects_other_renderings() {
    for bad in [
        "",
        "2026-11-26",
        "2026-11-26 11:19",
        "2026-11-26 11:19:00.",
        "2026-11-26 11:19:00.1234567890",
        "2026-11-26 11:19:00 ",
        "26/11/2026 11:19:00",
        "Thu Nov 26 11:19:00 2026",
        "2026-11-26 11:19:00 AD",
        "2026-1-26 11:19:00",
        "2026-11-26 11:19:00+5",
        "now",
    ] {
        assert_eq!(timestamp_ms(bad), None, "{bad:?}");
    }
}

#[test]
fn integers() {
    assert_eq!(integer("0"), Some(0));
    assert_eq!(integer("-12"), Some(-12));
    assert_eq!(integer("+7"), Some(7));
    assert_eq!(integer("2147483647"), Some(2_147_483_647));
    assert_eq!(integer("-9223372036854775808"), Some(i64::MIN));
    assert_eq!(integer("9223372036854775807"), Some(i64::MAX));
    assert_eq!(integer("9223372036854775808"), None);
    for bad in ["", "-", "1.0", "1e3", " 1", "1 ", "0x10", "abc"] {
        assert_eq!(integer(bad), None, "{bad:?}");
    }
}

#[test]
fn narrowing_wraps_like_clickhouse() {
    // What ClickHouse 26.9 stores for these JSON numbers in UInt8 / UInt32 columns.
    assert_eq!(wrap_u8(-1), 0);
    assert_eq!(wrap_u8(0), 0);
    assert_eq!(wrap_u8(255), 255);
    assert_eq!(wrap_u8(256), 0);
    assert_eq!(wrap_u8(300), 44);
    assert_eq!(wrap_u8(i64::MAX), 255);
    assert_eq!(wrap_u32(-5), 0);
    assert_eq!(wrap_u32(4_294_967_295), u32::MAX);
    assert_eq!(wrap_u32(4_294_967_296), 0);
    assert_eq!(wrap_u32(4_294_967_297), 1);
    assert_eq!(wrap_u32(2_147_483_647), 2_147_483_647);
}

#[test]
fn floats_as_json_stringify_sends_them() {
    assert_eq!(json_float(1.5), 1.5);
    assert_eq!(json_float(-2.5e-7), -2.5e-7);
    assert_eq!(json_float(f64::MAX), f64::MAX);
    assert_eq!(json_float(f64::NAN).to_bits(), 0.0f64.to_bits());
    assert_eq!(json_float(f64::INFINITY).to_bits(), 0.0f64.to_bits());
    assert_eq!(json_float(f64::NEG_INFINITY).to_bits(), 0.0f64.to_bits());
    assert_eq!(json_float(-0.0).to_bits(), 0.0f64.to_bits());
}

#[test]
fn floats() {
    assert_eq!(float8("0"), Some(0.0));
    assert_eq!(float8("-0").map(f64::to_bits), Some((-0.0f64).to_bits()));
    assert_eq!(float8("1.5"), Some(1.5));
    assert_eq!(float8("1e+100"), Some(1e100));
    assert_eq!(float8("-1.5e-07"), Some(-1.5e-7));
    assert_eq!(float8("0.1"), Some(0.1));
    assert_eq!(float8("1.7976931348623157e+308"), Some(f64::MAX));
    assert!(float8("NaN").unwrap().is_nan());
    assert_eq!(float8("Infinity"), Some(f64::INFINITY));
    assert_eq!(float8("-Infinity"), Some(f64::NEG_INFINITY));
    for bad in ["", "inf", "nan", "infinity", "1,5", "abc", " 1", "1.5x"] {
        assert_eq!(float8(bad), None, "{bad:?}");
    }
}

#[test]
fn booleans() {
    assert_eq!(boolean("t"), Some(true));
    assert_eq!(boolean("f"), Some(false));
    assert_eq!(boolean("true"), Some(true));
    assert_eq!(boolean("false"), Some(false));
    assert_eq!(boolean("1"), None);
    assert_eq!(boolean(""), None);
}

fn arr(text: &str) -> Option<Vec<String>> {
    text_array(text)
}

fn v(items: &[&str]) -> Option<Vec<String>> {
    Some(items.iter().map(|s| (*s).to_owned()).collect())
}

#[test]
fn arrays_plain_and_quoted() {
    assert_eq!(arr("{}"), v(&[]));
    assert_eq!(arr("{a}"), v(&["a"]));
    assert_eq!(arr("{a,b}"), v(&["a", "b"]));
    assert_eq!(
        arr(r#"{a,b,"c d","x\"y",NULL}"#),
        v(&["a", "b", "c d", "x\"y", ""])
    );
    assert_eq!(arr(r#"{"a\\b","",","}"#), v(&["a\\b", "", ","]));
    assert_eq!(arr(r#"{"NULL",null,Null}"#), v(&["NULL", "", ""]));
    assert_eq!(arr(r#"{"{x}","}"}"#), v(&["{x}", "}"]));
    assert_eq!(
        arr("{tag:prod,env=eu-1,ünïcödé,🚀}"),
        v(&["tag:prod", "env=eu-1", "ünïcödé", "🚀"])
    );
    assert_eq!(arr(r#"{"é\é"}"#), v(&["éé"]));
    assert_eq!(arr(r#"{" lead and trail "}"#), v(&[" lead and trail "]));
    assert_eq!(arr(r#"{NULLs,"NULLs"}"#), v(&["NULLs", "NULLs"]));
}

#[test]
fn arrays_input_only_forms() {
    // Forms Postgres accepts on input and never prints, read the way Postgres would read them.
    assert_eq!(arr("{ a , b }"), v(&["a", "b"]));
    assert_eq!(arr(r"{a\,b,c\}}"), v(&["a,b", "c}"]));
    assert_eq!(arr("[0:1]={a,b}"), v(&["a", "b"]));
}

#[test]
fn multidimensional_arrays_have_inner_arrays_as_json_text() {
    // Expected values: node-postgres' text[] parser, then `JSON.stringify` of each inner
    // array (which ClickHouse keeps as the string element).
    assert_eq!(
        arr("{{a,b},{c,NULL}}"),
        v(&[r#"["a","b"]"#, r#"["c",null]"#])
    );
    assert_eq!(arr("[1:2][1:1]={{a},{b}}"), v(&[r#"["a"]"#, r#"["b"]"#]));
    assert_eq!(
        arr(r#"{{{a,NULL}},{{"b\"c",x}}}"#),
        v(&[r#"[["a",null]]"#, r#"[["b\"c","x"]]"#])
    );
    assert_eq!(arr("{{{a}}}"), v(&[r#"[["a"]]"#]));
    // Escapes: a backslash, a control character, a tab, U+2028 (printed as it is), a quote.
    assert_eq!(
        arr("{{\"é\\\\x\",\"\u{1}\t\"},{\"\u{2028}\",\"\\\"\"}}"),
        v(&["[\"é\\\\x\",\"\\u0001\\t\"]", "[\"\u{2028}\",\"\\\"\"]"])
    );
    assert_eq!(
        arr(r#"{{"{x}","a,b"},{"",NULL}}"#),
        v(&[r#"["{x}","a,b"]"#, r#"["",null]"#])
    );
}

#[test]
fn arrays_reject_malformed() {
    for bad in [
        "", "a", "{", "}", "{a", "{a,}", "{,a}", "{a,,b}", "{a}x", "{\"a}", "{a\"b}", "{a}}",
        "[0:1]{a}", "{{a}", "{a{b}}",
    ] {
        assert_eq!(arr(bad), None, "{bad:?}");
    }
}
