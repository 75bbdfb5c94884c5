//! Postgres `COPY … TO STDOUT` in text format: framing the stream into rows and decoding a row
//! into its fields.
//!
//! The format (Postgres docs, "COPY", File Formats → Text Format): one row per line ending in
//! `\n`; fields separated by a tab; `\N` alone is NULL; a backslash escapes the rest: `\b \f \n \r
//! \t \v`, `\\`, an octal byte `\o`, `\oo`, `\ooo`, a hex byte `\xh`, `\xhh`, and a backslash
//! before any other character stands for that character. Postgres only writes `\\`, `\b \f \n \r
//! \t \v` itself, but the decoder takes every form the format defines, so text from any writer of
//! it decodes the same. Raw newlines and tabs never occur inside a field, which is what makes the
//! framing a plain split.
//!
//! Values are the type output functions' text, the same text pgoutput sends for a column when the
//! session settings that shape it (DateStyle, TimeZone, IntervalStyle, extra_float_digits) are
//! pinned as the walsender's are.

use std::borrow::Cow;

/// A row that is not valid COPY text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyTextError {
    #[error("a COPY row has {got} fields, {expected} were selected")]
    FieldCount { got: usize, expected: usize },
    #[error("field {field} of a COPY row ends in a lone backslash")]
    TrailingBackslash { field: usize },
    #[error("field {field} of a COPY row is not valid UTF-8")]
    InvalidUtf8 { field: usize },
}

/// Splits `line` (one row, without its `\n`) into exactly `expected` fields, decoded into `out`
/// (cleared first). Fields without a backslash borrow from `line`; only escaped ones allocate.
pub fn decode_row<'a>(
    line: &'a [u8],
    expected: usize,
    out: &mut Vec<Option<Cow<'a, str>>>,
) -> Result<(), CopyTextError> {
    out.clear();
    for (i, raw) in line.split(|b| *b == b'\t').enumerate() {
        out.push(decode_field(raw, i)?);
    }
    if out.len() != expected {
        return Err(CopyTextError::FieldCount {
            got: out.len(),
            expected,
        });
    }
    Ok(())
}

/// One field: `None` for NULL (`\N`), its text otherwise.
pub fn decode_field(raw: &[u8], field: usize) -> Result<Option<Cow<'_, str>>, CopyTextError> {
    if raw == b"\\N" {
        return Ok(None);
    }
    let utf8 = |bytes| CopyTextError::InvalidUtf8 { field }.or_utf8(bytes);
    let Some(first) = memchr::memchr(b'\\', raw) else {
        return utf8(raw).map(|s| Some(Cow::Borrowed(s)));
    };
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(&raw[..first]);
    let mut i = first;
    while i < raw.len() {
        let b = raw[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let Some(&c) = raw.get(i + 1) else {
            return Err(CopyTextError::TrailingBackslash { field });
        };
        i += 2;
        match c {
            b'b' => out.push(0x08),
            b'f' => out.push(0x0C),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0B),
            b'0'..=b'7' => {
                // Up to three octal digits; Postgres keeps the low eight bits.
                let mut value = u32::from(c - b'0');
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            value = (value << 3) + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((value & 0xFF) as u8);
            }
            b'x' => match raw.get(i).and_then(|d| hex(*d)) {
                // One or two hex digits; `\x` without one is a plain `x`.
                Some(high) => {
                    i += 1;
                    let mut value = high;
                    if let Some(low) = raw.get(i).and_then(|d| hex(*d)) {
                        value = (value << 4) | low;
                        i += 1;
                    }
                    out.push(value);
                }
                None => out.push(b'x'),
            },
            other => out.push(other),
        }
    }
    String::from_utf8(out)
        .map(|s| Some(Cow::Owned(s)))
        .map_err(|_| CopyTextError::InvalidUtf8 { field })
}

impl CopyTextError {
    fn or_utf8(self, bytes: &[u8]) -> Result<&str, CopyTextError> {
        std::str::from_utf8(bytes).map_err(|_| self)
    }
}

fn hex(d: u8) -> Option<u8> {
    (d as char).to_digit(16).map(|v| v as u8)
}

/// Frames a COPY stream into rows. Postgres sends one row per CopyData message, but the protocol
/// does not promise it, so a row split across messages (or several in one) is reassembled here.
#[derive(Debug, Default)]
pub struct Lines {
    /// The start of a row whose end has not arrived yet.
    partial: Vec<u8>,
}

impl Lines {
    /// Calls `each` with every complete row in `chunk` (without its `\n`), in order.
    pub fn feed<E>(
        &mut self,
        chunk: &[u8],
        mut each: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut rest = chunk;
        if !self.partial.is_empty() {
            match memchr::memchr(b'\n', rest) {
                Some(end) => {
                    self.partial.extend_from_slice(&rest[..end]);
                    let line = std::mem::take(&mut self.partial);
                    each(&line)?;
                    rest = &rest[end + 1..];
                }
                None => {
                    self.partial.extend_from_slice(rest);
                    return Ok(());
                }
            }
        }
        while let Some(end) = memchr::memchr(b'\n', rest) {
            each(&rest[..end])?;
            rest = &rest[end + 1..];
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }

    /// Bytes of an unfinished row; a stream that ends with some was cut short.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }
}

#[cfg(test)]
mod tests;
