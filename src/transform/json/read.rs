//! Reading JSON text already known to be valid: a value's [`Kind`], an object's members, an
//! array's elements, a string token's content. Nothing here validates: callers validate first
//! (`json::validate` or `json::normalize`), which is what lets a walk skip a value by counting
//! brackets and quotes.
//!
//! This is the bottom of the JSON code and depends on nothing. It is separate from the rewriting
//! scanner because both `transform::js` (JavaScript's view of a parsed value) and the scanner
//! (which renders numbers the JavaScript way) read values: with the reader on its own, `js`
//! sits between the two instead of importing the file that imports it.

use std::borrow::Cow;

/// The JSON type of a valid value text.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Object,
    Array,
    String,
    Number,
    True,
    False,
    Null,
}

fn trim_ws(text: &str) -> &str {
    text.trim_matches([' ', '\t', '\n', '\r'])
}

pub fn kind(value: &str) -> Kind {
    match trim_ws(value).as_bytes().first() {
        Some(b'{') => Kind::Object,
        Some(b'[') => Kind::Array,
        Some(b'"') => Kind::String,
        Some(b't') => Kind::True,
        Some(b'f') => Kind::False,
        Some(b'n') => Kind::Null,
        _ => Kind::Number,
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// End of the string token starting at `i` (a `"`), in valid text.
pub(super) fn skip_string(b: &[u8], mut i: usize) -> usize {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'"' => return i + 1,
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    i
}

/// End of the value starting at `i`, in valid text. Iterative: depth is only a counter.
pub(crate) fn skip_value(b: &[u8], i: usize) -> usize {
    match b.get(i) {
        Some(b'"') => skip_string(b, i),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut i = i;
            while i < b.len() {
                match b[i] {
                    b'"' => {
                        i = skip_string(b, i);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            i
        }
        _ => {
            let mut i = i;
            while i < b.len() && !matches!(b[i], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                i += 1;
            }
            i
        }
    }
}

/// The members of a valid object text, in order, duplicates included: (key token with quotes,
/// value text). Yields nothing for a non-object.
pub fn members(object: &str) -> Members<'_> {
    Members {
        src: object,
        pos: inside(object, b'{'),
    }
}

/// Where the contents of a container opened by `open` start; the end of `text` if it is not one.
fn inside(text: &str, open: u8) -> usize {
    let b = text.as_bytes();
    let start = skip_ws(b, 0);
    if b.get(start) == Some(&open) {
        start + 1
    } else {
        b.len()
    }
}

pub struct Members<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.src.as_bytes();
        let mut i = skip_ws(b, self.pos);
        if b.get(i) == Some(&b',') {
            i = skip_ws(b, i + 1);
        }
        if b.get(i) != Some(&b'"') {
            self.pos = b.len();
            return None;
        }
        let key_end = skip_string(b, i);
        let key = &self.src[i..key_end];
        let colon = skip_ws(b, key_end);
        let value_start = skip_ws(b, colon + 1);
        let value_end = skip_value(b, value_start);
        self.pos = value_end;
        Some((key, &self.src[value_start..value_end]))
    }
}

/// The elements of a valid array text. Yields nothing for a non-array.
pub fn elements(array: &str) -> Elements<'_> {
    Elements {
        src: array,
        pos: inside(array, b'['),
    }
}

pub struct Elements<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Iterator for Elements<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.src.as_bytes();
        let mut i = skip_ws(b, self.pos);
        if b.get(i) == Some(&b',') {
            i = skip_ws(b, i + 1);
        }
        if i >= b.len() || b[i] == b']' {
            self.pos = b.len();
            return None;
        }
        let end = skip_value(b, i);
        self.pos = end;
        Some(&self.src[i..end])
    }
}

/// The value of the last member named `name` (what property access sees after `JSON.parse`).
pub fn member<'a>(object: &'a str, name: &str) -> Option<&'a str> {
    members(object)
        .filter(|(key, _)| key_is(key, name))
        .last()
        .map(|(_, value)| value)
}

/// Whether a key token (with quotes) names `name`.
pub fn key_is(token: &str, name: &str) -> bool {
    let inner = &token[1..token.len() - 1];
    if inner.contains('\\') {
        decode_string(token) == name
    } else {
        inner == name
    }
}

/// The content of a valid string token (with quotes).
pub fn decode_string(token: &str) -> Cow<'_, str> {
    let inner = &token[1..token.len() - 1];
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    let b = inner.as_bytes();
    let mut out = String::with_capacity(inner.len());
    let mut run = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        out.push_str(&inner[run..i]);
        let escape = b.get(i + 1).copied().unwrap_or(b'\\');
        i += 2;
        match escape {
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'u' => {
                let unit = hex4(b, i).unwrap_or(0xFFFD);
                i += 4;
                let ch = if (0xD800..0xDC00).contains(&unit)
                    && b.get(i) == Some(&b'\\')
                    && b.get(i + 1) == Some(&b'u')
                {
                    let low = hex4(b, i + 2).unwrap_or(0);
                    i += 6;
                    char::from_u32(
                        0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00),
                    )
                } else {
                    char::from_u32(u32::from(unit))
                };
                out.push(ch.unwrap_or('\u{FFFD}'));
            }
            other => out.push(other as char),
        }
        run = i;
    }
    out.push_str(&inner[run.min(inner.len())..]);
    Cow::Owned(out)
}

/// The code unit of the four hex digits at `at` (a `\u` escape's), if they are all hex digits.
pub(super) fn hex4(b: &[u8], at: usize) -> Option<u16> {
    let digits = b.get(at..at + 4)?;
    let mut v = 0u16;
    for &c in digits {
        v = v * 16 + (c as char).to_digit(16)? as u16;
    }
    Some(v)
}

#[cfg(test)]
mod tests;
