//! Why a pgoutput message could not be decoded, and how the offending wire byte is shown.

use std::fmt;

/// Why a message could not be decoded. Offsets are byte offsets into the message, tag included.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error(
        "unexpected end of message at offset {offset} while reading {what}: \
         needed {needed} bytes, {available} left"
    )]
    UnexpectedEnd {
        offset: usize,
        what: &'static str,
        needed: usize,
        available: usize,
    },

    #[error(
        "unknown pgoutput message tag {} at offset 0: expected one of B C O R Y I U D T M \
         (protocol version 1)",
        ShowByte(*.tag)
    )]
    UnknownTag { tag: u8 },

    #[error(
        "unknown tuple cell kind {} at offset {offset}: expected 'n', 'u', 't' or 'b'",
        ShowByte(*.kind)
    )]
    UnknownCellKind { offset: usize, kind: u8 },

    #[error(
        "unknown replica identity {} at offset {offset}: expected 'd', 'n', 'f' or 'i'",
        ShowByte(*.value)
    )]
    UnknownReplicaIdentity { offset: usize, value: u8 },

    #[error(
        "unexpected tuple marker {} at offset {offset} in {message}: expected {expected}",
        ShowByte(*.found)
    )]
    UnexpectedTupleMarker {
        offset: usize,
        message: &'static str,
        found: u8,
        expected: &'static str,
    },

    #[error(
        "{what} starting at offset {offset} has no NUL terminator before the end of the message"
    )]
    UnterminatedString { offset: usize, what: &'static str },

    #[error("{what} starting at offset {offset} is not valid UTF-8: {source}")]
    InvalidUtf8 {
        offset: usize,
        what: &'static str,
        #[source]
        source: std::str::Utf8Error,
    },

    #[error("negative length {length} at offset {offset} for {what}")]
    NegativeLength {
        offset: usize,
        what: &'static str,
        length: i32,
    },

    #[error(
        "{what} count {count} at offset {offset} needs at least {needed} more bytes, \
         but only {available} are left"
    )]
    CountExceedsInput {
        offset: usize,
        what: &'static str,
        count: u64,
        needed: u64,
        available: usize,
    },

    #[error("{count} trailing bytes at offset {offset} after a complete {message} message")]
    TrailingBytes {
        offset: usize,
        count: usize,
        message: &'static str,
    },
}

/// Renders a wire byte as `'x' (0x78)` when printable, else as `0x07`.
struct ShowByte(u8);

impl fmt::Display for ShowByte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ascii_graphic() {
            write!(f, "'{}' ({:#04x})", self.0 as char, self.0)
        } else {
            write!(f, "{:#04x}", self.0)
        }
    }
}
