//! Member access, value kinds and string decoding on valid text.

use super::*;

#[test]
fn member_access() {
    let obj = r#" { "a" : 1 , "b":{"a":2}, "c" :[1,"]"], "\u0064":"x\"}", "a":3 } "#;
    assert_eq!(member(obj, "a"), Some("3"));
    assert_eq!(member(obj, "b"), Some(r#"{"a":2}"#));
    assert_eq!(member(obj, "c"), Some(r#"[1,"]"]"#));
    assert_eq!(member(obj, "d"), Some(r#""x\"}""#));
    assert_eq!(member(obj, "e"), None);
    assert_eq!(member("[1]", "a"), None);
    assert_eq!(member("{}", "a"), None);
    let keys: Vec<_> = members(obj).map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [r#""a""#, r#""b""#, r#""c""#, r#""\u0064""#, r#""a""#]
    );
    let items: Vec<_> = elements(r#"[ 1, "a,b" ,[2,[3]],{"x":[]} ,null]"#).collect();
    assert_eq!(items, ["1", r#""a,b""#, "[2,[3]]", r#"{"x":[]}"#, "null"]);
    assert_eq!(elements("[]").count(), 0);
    assert_eq!(elements(" [ ] ").count(), 0);
    assert_eq!(elements("{}").count(), 0);
}

#[test]
fn kinds() {
    assert_eq!(kind(" {}"), Kind::Object);
    assert_eq!(kind("[]"), Kind::Array);
    assert_eq!(kind("\"\""), Kind::String);
    assert_eq!(kind("-1"), Kind::Number);
    assert_eq!(kind("true"), Kind::True);
    assert_eq!(kind("false"), Kind::False);
    assert_eq!(kind("null"), Kind::Null);
}

#[test]
fn string_decoding() {
    assert_eq!(decode_string(r#""plain""#), "plain");
    assert!(matches!(decode_string(r#""plain""#), Cow::Borrowed(_)));
    assert_eq!(
        decode_string(r#""a\"b\\c\/d\b\f\n\r\t\u00e9\u20AC\ud83d\ude00z""#),
        "a\"b\\c/d\u{8}\u{c}\n\r\té€😀z"
    );
    assert_eq!(decode_string(r#""\\ud800""#), "\\ud800");
}
