//! Unit tests of `superjson`.

use super::*;

fn data(doc: &str) -> SuperJsonData<'_> {
    superjson_data(doc)
}

fn json_of(doc: &str) -> String {
    match data(doc) {
        SuperJsonData::Json(v) => v.into_owned(),
        other => panic!("{doc}: {other:?}"),
    }
}

#[test]
fn canonical_document_gives_its_json_member() {
    let doc = r#"{"json":{"a":"1","d":"2024-01-02T03:04:05.000Z","m":[["foo","bar"]],"s":[1,2],"u":null,"n":"NaN","i":"-Infinity","r":"/a\\/b/g","e":{"name":"Error","message":"boom"},"url":"http://x.com/a%20b","b":[1,2],"arr":[null,1],"neg0":"-0"},"meta":{"values":{"a":["bigint"],"d":["Date"],"m":["map"],"s":["set"],"u":["undefined"],"n":["number"],"i":["number"],"r":["regexp"],"e":["Error"],"url":["URL"],"b":[["custom","buffer"]],"arr.0":["undefined"],"neg0":["number"]}}}"#;
    assert_eq!(
        json_of(doc),
        r#"{"a":"1","d":"2024-01-02T03:04:05.000Z","m":[["foo","bar"]],"s":[1,2],"u":null,"n":"NaN","i":"-Infinity","r":"/a\\/b/g","e":{"name":"Error","message":"boom"},"url":"http://x.com/a%20b","b":[1,2],"arr":[null,1],"neg0":"-0"}"#
    );
    let nested =
        r#"{"json":[["1",[1]]],"meta":{"values":["map",{"0.0":["bigint"],"0.1":["set"]}]}}"#;
    assert_eq!(json_of(nested), r#"[["1",[1]]]"#);
    let root = r#"{"json":"1234","meta":{"values":["bigint"]}}"#;
    assert_eq!(json_of(root), r#""1234""#);
    let equalities = r#"{"json":{"a":{"x":"1"},"b":{"x":"1"},"c":[[1],[1]]},"meta":{"values":{"a.x":["bigint"],"b.x":["bigint"]},"referentialEqualities":{"a":["b"],"c.0":["c.1"]}}}"#;
    assert_eq!(
        json_of(equalities),
        r#"{"a":{"x":"1"},"b":{"x":"1"},"c":[[1],[1]]}"#
    );
    let circular = r#"{"json":{"n":1,"me":null},"meta":{"referentialEqualities":[["me"]]}}"#;
    assert_eq!(json_of(circular), r#"{"n":1,"me":null}"#);
    let typed = r#"{"json":[1,2],"meta":{"values":[["typed-array","Uint8Array"]]}}"#;
    assert_eq!(json_of(typed), "[1,2]");
}

#[test]
fn numbers_follow_superjson_serialize() {
    assert_eq!(json_of(r#"{"json":-0}"#), r#""-0""#);
    assert_eq!(
        json_of(r#"{"json":[1e400,-1e400,-0.0,0.5,1e21,100,1.0]}"#),
        r#"["Infinity","-Infinity","-0",0.5,1e+21,100,1]"#
    );
}

#[test]
fn shapes_without_a_json_member() {
    assert_eq!(data(r#"{"foo":1}"#), SuperJsonData::Null);
    assert_eq!(data(r#"{"json":null}"#), SuperJsonData::Json("null".into()));
    assert_eq!(data("[1,2]"), SuperJsonData::Null);
    assert_eq!(data("42"), SuperJsonData::Null);
    assert_eq!(data(r#""str""#), SuperJsonData::Null);
    assert_eq!(data("true"), SuperJsonData::Null);
    assert_eq!(data("null"), SuperJsonData::Unreadable);
    assert_eq!(data("{"), SuperJsonData::Unreadable);
    assert_eq!(data(r#"{"json":"\ud800"}"#), SuperJsonData::Unreadable);
    assert_eq!(
        data(r#"{"json":1,"meta":{"x":"\udc00"}}"#),
        SuperJsonData::Unreadable
    );
}

#[test]
fn last_json_member_wins_and_duplicate_keys_collapse() {
    assert_eq!(json_of(r#"{"json":{"a":1},"json":{"b":2}}"#), r#"{"b":2}"#);
    assert_eq!(json_of(r#"{"json":{"a":1,"a":2}}"#), r#"{"a":2}"#);
}

#[test]
fn meta_that_parses() {
    for meta in [
        "5",
        "true",
        "null",
        "[]",
        r#""x""#,
        "{}",
        r#"{"v":1}"#,
        r#"{"values":5}"#,
        r#"{"values":true}"#,
        r#"{"values":false}"#,
        r#"{"values":0}"#,
        r#"{"values":""}"#,
        r#"{"values":null}"#,
        r#"{"values":{}}"#,
        r#"{"values":{"a":null}}"#,
        r#"{"values":{"a":5}}"#,
        // `[]` is an "undefined" annotation: superjson would print `null` there; superjson
        // itself always writes `null` at such paths, so the json member already has it.
        r#"{"values":[]}"#,
        r#"{"values":{"a":[]}}"#,
        r#"{"values":{"a":["Date"]}}"#,
        r#"{"values":{"a":["Date",{"b":["bigint"]}]}}"#,
        r#"{"values":{"a":["Date",5]}}"#,
        r#"{"values":{"a":{"b":["Date"]}}}"#,
        r#"{"values":{"a":["Date",null]}}"#,
        r#"{"values":{"a":["Date",[]]}}"#,
        r#"{"values":{"a":["Date",[["bigint"]]]}}"#,
        r#"{"values":{"a":[["typed-array","Float64Array"]]}}"#,
        r#"{"values":{"a":[["custom","buffer"]]}}"#,
        r#"{"values":{"a":[["custom","buffer","extra"]]}}"#,
        r#"{"values":{"a":["undefined"],"b":["number"],"c":["regexp"],"d":["set"],"e":["map"],"f":["Error"],"g":["URL"]}}"#,
        r#"{"referentialEqualities":5}"#,
        r#"{"referentialEqualities":{"a":["b","c"]}}"#,
        r#"{"referentialEqualities":[["x"]]}"#,
        r#"{"referentialEqualities":[[],{"a":["b"]}]}"#,
        r#"{"referentialEqualities":[[],null]}"#,
    ] {
        let doc = format!(r#"{{"json":{{"a":"2024-01-02T03:04:05.000Z"}},"meta":{meta}}}"#);
        assert!(matches!(data(&doc), SuperJsonData::Json(_)), "{meta}");
    }
}

#[test]
fn meta_that_makes_parse_throw() {
    for meta in [
        r#"{"values":"x"}"#,
        r#"{"values":[[]]}"#,
        r#"{"values":[null]}"#,
        r#"{"values":["weird"]}"#,
        r#"{"values":{"a":"x"}}"#,
        r#"{"values":{"a":["Date","xx"]}}"#,
        r#"{"values":{"a":[["class","X"]]}}"#,
        r#"{"values":{"a":[["symbol","X"]]}}"#,
        r#"{"values":{"a":[["typed-array","Nope"]]}}"#,
        r#"{"values":{"a":[["typed-array","BigInt64Array"]]}}"#,
        r#"{"values":{"a":[["weird","x"]]}}"#,
        r#"{"values":{"a":[["custom"]]}}"#,
        r#"{"values":{"a":[["custom","nope"]]}}"#,
        r#"{"values":{"a":[5]}}"#,
        r#"{"values":{"a":[{}]}}"#,
        r#"{"values":{"a":["date"]}}"#,
        r#"{"values":{"a":["Date",{"b":["Date",{"c":[["class","Deep"]]}]}]}}"#,
        r#"{"values":null,"referentialEqualities":"x"}"#,
        r#"{"referentialEqualities":{"a":"b"}}"#,
        r#"{"referentialEqualities":{"a":5}}"#,
        r#"{"referentialEqualities":[]}"#,
        r#"{"referentialEqualities":["x"]}"#,
        r#"{"referentialEqualities":[[],{"a":"b"}]}"#,
    ] {
        let doc = format!(r#"{{"json":{{"a":"2024-01-02T03:04:05.000Z"}},"meta":{meta}}}"#);
        assert_eq!(data(&doc), SuperJsonData::Unreadable, "{meta}");
    }
}

#[test]
fn meta_depth_is_bounded() {
    let tree = |levels: usize| {
        format!(
            "{}[\"map\"]{}",
            r#"["map",{"0":"#.repeat(levels),
            "}]".repeat(levels)
        )
    };
    let doc = |levels| format!(r#"{{"json":1,"meta":{{"values":{}}}}}"#, tree(levels));
    // meta object + 2 containers per level + the innermost leaf.
    let fits = (META_MAX_DEPTH - 2) / 2;
    assert_eq!(data(&doc(fits)), SuperJsonData::Json("1".into()));
    assert_eq!(data(&doc(fits + 1)), SuperJsonData::Unreadable);
    assert_eq!(data(&doc(100_000)), SuperJsonData::Unreadable);
}
