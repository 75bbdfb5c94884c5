//! Unit tests of `idempotency`.

use super::*;

fn cols(options: Option<&str>) -> (String, String) {
    let c = idempotency_columns(options).expect("valid json");
    (c.user, c.scope)
}

fn pair(user: &str, scope: &str) -> (String, String) {
    (user.to_owned(), scope.to_owned())
}

#[test]
fn user_key_and_scope() {
    assert_eq!(
        cols(Some(r#"{"key": "order-42", "scope": "run"}"#)),
        pair("order-42", "run")
    );
    assert_eq!(
        cols(Some(r#"{"scope": "global", "key": "k\u00e9y"}"#)),
        pair("kéy", "global")
    );
    assert_eq!(cols(Some(r#"{"key": "only-key"}"#)), pair("only-key", ""));
    assert_eq!(cols(Some(r#"{"scope": "attempt"}"#)), pair("", "attempt"));
    assert_eq!(cols(Some(r#"{"key": "", "scope": ""}"#)), pair("", ""));
}

#[test]
fn defaults() {
    assert_eq!(cols(None), pair("", ""));
    assert_eq!(cols(Some("null")), pair("", ""));
    assert_eq!(cols(Some("{}")), pair("", ""));
    assert_eq!(cols(Some(r#"{"key": null, "scope": null}"#)), pair("", ""));
    assert_eq!(cols(Some(r#"["key"]"#)), pair("", ""));
    assert_eq!(cols(Some(r#""key""#)), pair("", ""));
    assert_eq!(cols(Some("7")), pair("", ""));
}

#[test]
fn unsafe_extraction_passes_other_values_through_as_text() {
    assert_eq!(
        cols(Some(r#"{"key": 42, "scope": true}"#)),
        pair("42", "true")
    );
    assert_eq!(
        cols(Some(r#"{"key": 1.50, "scope": false}"#)),
        pair("1.5", "false")
    );
    assert_eq!(
        cols(Some(r#"{"key": {"a": [1, 2.0]}, "scope": []}"#)),
        pair(r#"{"a":[1,2]}"#, "[]")
    );
}

#[test]
fn unreadable_jsonb_is_an_error() {
    assert_eq!(idempotency_columns(Some("{\"key\":")), Err(Reject::Syntax));
}
