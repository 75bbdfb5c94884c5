//! Values that must never be printed: passwords and URLs that carry them.
//!
//! `Debug` and `Display` of these types redact the secret, so a config dump, an error message or
//! a log field cannot leak it by accident. The plain value is reachable only through
//! [`Secret::expose`], which is called where a connection is opened and nowhere else.

use std::fmt;

/// A password or other credential.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "" } else { "***" })
    }
}

/// Replaces every occurrence of each non-empty secret in `text` with `***`.
///
/// Errors from drivers may quote a connection string back at us; this is the last line of
/// defence before such text reaches a log line or the terminal.
pub fn scrub(text: &str, secrets: &[&Secret]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        if !secret.is_empty() {
            out = out.replace(secret.expose(), "***");
            let encoded = url::form_urlencoded::byte_serialize(secret.expose().as_bytes())
                .collect::<String>();
            if encoded != secret.expose() {
                out = out.replace(&encoded, "***");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "\"***\"");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{:?}", Secret::default()), "\"\"");
    }

    #[test]
    fn scrub_replaces_plain_and_url_encoded_forms() {
        let s = Secret::new("p@ss word");
        let text = "failed for p@ss word and p%40ss+word";
        assert_eq!(scrub(text, &[&s]), "failed for *** and ***");
        assert_eq!(scrub("x", &[&Secret::default()]), "x");
    }
}
