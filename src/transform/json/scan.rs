//! The scanner: one pass over a JSON text that accepts exactly what `JSON.parse` accepts, enforces
//! the nesting limits, and, when asked to normalize, records the edits that make the text what
//! upstream's round trip would send (numbers re-rendered, duplicate members cut). What those
//! edits contain is decided in `number` and `edit`; this file only finds where they go.
//!
//! The pass is iterative, so hostile nesting can neither exhaust the stack nor cost more than
//! linear time. It allocates only its container stack and, when something must change, the list
//! of edits.

use super::edit::{Edit, cut_duplicates};
use super::number::{Numbers, prints_unchanged, render_number};
use super::read::hex4;

/// Why a text cannot be stored as JSON.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Reject {
    /// Not a JSON text `JSON.parse` accepts.
    Syntax,
    /// A `\uD800`–`\uDBFF` escape not followed by a `\uDC00`–`\uDFFF` escape, or a lone low one.
    LoneSurrogate,
    /// More nested containers than allowed.
    TooDeep,
}

/// Containers allowed inside a value we wrap as `{"data": …}`. ClickHouse 26.9 accepts about 1022
/// nested levels in a JSON column; 999 plus the wrapper stays clear of that.
pub const MAX_DEPTH: usize = 999;

/// Arrays allowed directly inside one another in a value we store (see the `json` module comment;
/// ClickHouse 26.9 breaks from 149).
pub const MAX_ARRAY_NESTING: usize = 128;

struct Container {
    object: bool,
    first_key: usize,
    /// Arrays directly nesting this one, itself included (0 for an object).
    array_run: usize,
}

pub(super) struct Scanner<'a> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    max_depth: usize,
    /// `None`: validate only.
    numbers: Option<Numbers>,
    containers: Vec<Container>,
    /// Key tokens (start, end, has escapes) of the open objects.
    keys: Vec<(usize, usize, bool)>,
    pub(super) edits: Vec<Edit>,
}

/// The scanner's stacks, kept between calls: a row's transform scans four or five JSON values,
/// and allocating two stacks for each showed among the hot path's allocations.
type Stacks = (Vec<Container>, Vec<(usize, usize, bool)>);

thread_local! {
    static STACKS: std::cell::Cell<Stacks> = const { std::cell::Cell::new((Vec::new(), Vec::new())) };
}

impl Drop for Scanner<'_> {
    fn drop(&mut self) {
        let mut containers = std::mem::take(&mut self.containers);
        let mut keys = std::mem::take(&mut self.keys);
        // A hostile document can grow the stacks to its depth; keep only ordinary sizes.
        if containers.capacity() <= 1024 && keys.capacity() <= 1024 {
            containers.clear();
            keys.clear();
            STACKS.set((containers, keys));
        }
    }
}

impl<'a> Scanner<'a> {
    pub(super) fn new(src: &'a str, max_depth: usize, numbers: Option<Numbers>) -> Self {
        let (containers, keys) = STACKS.take();
        Scanner {
            src,
            b: src.as_bytes(),
            pos: 0,
            max_depth,
            numbers,
            containers,
            keys,
            edits: Vec::new(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    pub(super) fn run(&mut self) -> Result<(), Reject> {
        'value: loop {
            self.ws();
            match self.peek() {
                Some(b'{') => {
                    self.open(true)?;
                    self.ws();
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                        self.close();
                    } else {
                        self.key()?;
                        continue 'value;
                    }
                }
                Some(b'[') => {
                    self.open(false)?;
                    self.ws();
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                        self.close();
                    } else {
                        continue 'value;
                    }
                }
                Some(b'"') => {
                    self.string()?;
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                _ => return Err(Reject::Syntax),
            }
            // After a complete value: close containers until one expects another member.
            loop {
                self.ws();
                let Some(top) = self.containers.last() else {
                    return if self.pos == self.b.len() {
                        Ok(())
                    } else {
                        Err(Reject::Syntax)
                    };
                };
                let object = top.object;
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        if object {
                            self.ws();
                            self.key()?;
                        }
                        continue 'value;
                    }
                    Some(b'}') if object => {
                        self.pos += 1;
                        self.close();
                    }
                    Some(b']') if !object => {
                        self.pos += 1;
                        self.close();
                    }
                    _ => return Err(Reject::Syntax),
                }
            }
        }
    }

    fn open(&mut self, object: bool) -> Result<(), Reject> {
        if self.containers.len() >= self.max_depth {
            return Err(Reject::TooDeep);
        }
        let array_run = match (object, self.containers.last()) {
            (true, _) => 0,
            (false, Some(parent)) => parent.array_run + 1,
            (false, None) => 1,
        };
        // Only values we store are bound by ClickHouse's type depth.
        if array_run > MAX_ARRAY_NESTING && self.numbers.is_some() {
            return Err(Reject::TooDeep);
        }
        self.containers.push(Container {
            object,
            first_key: self.keys.len(),
            array_run,
        });
        self.pos += 1;
        Ok(())
    }

    fn close(&mut self) {
        let Some(container) = self.containers.pop() else {
            return;
        };
        if container.object && self.numbers.is_some() {
            cut_duplicates(self.src, &self.keys[container.first_key..], &mut self.edits);
            self.keys.truncate(container.first_key);
        }
    }

    /// A member name and its `:`; the value follows.
    fn key(&mut self) -> Result<(), Reject> {
        if self.peek() != Some(b'"') {
            return Err(Reject::Syntax);
        }
        let (start, end, escaped) = self.string()?;
        if self.numbers.is_some() {
            self.keys.push((start, end, escaped));
        }
        self.ws();
        if self.peek() != Some(b':') {
            return Err(Reject::Syntax);
        }
        self.pos += 1;
        Ok(())
    }

    fn literal(&mut self, lit: &[u8]) -> Result<(), Reject> {
        if self.b[self.pos..].starts_with(lit) {
            self.pos += lit.len();
            Ok(())
        } else {
            Err(Reject::Syntax)
        }
    }

    /// A string token starting at `"`: (start, end after the closing quote, has escapes).
    fn string(&mut self) -> Result<(usize, usize, bool), Reject> {
        let start = self.pos;
        self.pos += 1;
        let mut escaped = false;
        loop {
            self.pos = find_string_special(self.b, self.pos).ok_or(Reject::Syntax)?;
            match self.b[self.pos] {
                b'"' => {
                    self.pos += 1;
                    return Ok((start, self.pos, escaped));
                }
                b'\\' => {
                    escaped = true;
                    self.escape()?;
                }
                _ => return Err(Reject::Syntax),
            }
        }
    }

    fn escape(&mut self) -> Result<(), Reject> {
        match self.b.get(self.pos + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.pos += 2;
                Ok(())
            }
            Some(b'u') => {
                let unit = hex4(self.b, self.pos + 2).ok_or(Reject::Syntax)?;
                self.pos += 6;
                match unit {
                    0xD800..=0xDBFF => {
                        let low = (self.b.get(self.pos) == Some(&b'\\')
                            && self.b.get(self.pos + 1) == Some(&b'u'))
                        .then(|| hex4(self.b, self.pos + 2))
                        .flatten();
                        match low {
                            Some(0xDC00..=0xDFFF) => {
                                self.pos += 6;
                                Ok(())
                            }
                            _ => Err(Reject::LoneSurrogate),
                        }
                    }
                    0xDC00..=0xDFFF => Err(Reject::LoneSurrogate),
                    _ => Ok(()),
                }
            }
            _ => Err(Reject::Syntax),
        }
    }

    fn number(&mut self) -> Result<(), Reject> {
        let b = self.b;
        let start = self.pos;
        let mut p = start;
        let negative = b[p] == b'-';
        if negative {
            p += 1;
        }
        match b.get(p) {
            Some(b'0') => p += 1,
            Some(b'1'..=b'9') => {
                while b.get(p).is_some_and(u8::is_ascii_digit) {
                    p += 1;
                }
            }
            _ => return Err(Reject::Syntax),
        }
        let int_end = p;
        let mut fraction = None;
        if b.get(p) == Some(&b'.') {
            p += 1;
            let digits = p;
            while b.get(p).is_some_and(u8::is_ascii_digit) {
                p += 1;
            }
            if p == digits {
                return Err(Reject::Syntax);
            }
            fraction = Some(digits..p);
        }
        let mut exponent = false;
        if let Some(b'e' | b'E') = b.get(p) {
            p += 1;
            if let Some(b'+' | b'-') = b.get(p) {
                p += 1;
            }
            let digits = p;
            while b.get(p).is_some_and(u8::is_ascii_digit) {
                p += 1;
            }
            if p == digits {
                return Err(Reject::Syntax);
            }
            exponent = true;
        }
        self.pos = p;
        let Some(numbers) = self.numbers else {
            return Ok(());
        };
        let int_digits = &b[start + usize::from(negative)..int_end];
        if !exponent && prints_unchanged(negative, int_digits, fraction.map(|f| &b[f])) {
            return Ok(());
        }
        let token = &self.src[start..p];
        let rendered = render_number(token, numbers);
        if rendered.as_str() != token {
            self.edits.push(Edit {
                start,
                end: p,
                with: Some(rendered),
            });
        }
        Ok(())
    }
}

/// The next `"`, `\` or control character of a string body from `i`. Eight bytes at a time:
/// string bodies are most of a payload's bytes.
pub(super) fn find_string_special(b: &[u8], mut i: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().ok()?);
        let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
        let special = zero_byte(w ^ (ONES * u64::from(b'"')))
            | zero_byte(w ^ (ONES * u64::from(b'\\')))
            // Bytes below 0x20 (exact for any threshold up to 0x80).
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGHS);
        if special != 0 {
            break;
        }
        i += 8;
    }
    b[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|n| i + n)
}
