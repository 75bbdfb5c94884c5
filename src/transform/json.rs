//! JSON text: strict validation (exactly what `JSON.parse` accepts), normalization to what
//! upstream's `JSON.parse` → `JSON.stringify` round trip sends to ClickHouse, and cheap member
//! access on text already known to be valid.
//!
//! Upstream parses every JSON value in Node and lets the ClickHouse client stringify it again. We
//! keep the original text whenever that round trip would not change what ClickHouse stores (almost
//! always), and rewrite only what it would change:
//! - Numbers take their JavaScript form: `1.50` → `1.5`, `1e2` → `100`, integers beyond 2^53 are
//!   rounded as a double, `-0` → `0`, and an overflow (`1e400`) → `null`. ClickHouse infers a
//!   path's type from the literal (`1.0` is Float64, `1` Int64, a 30-digit integer a String) and
//!   rejects the whole document on an overflowing literal, so the literal matters.
//! - Duplicate object keys keep the last value, as `JSON.parse` does: the earlier members are
//!   cut out. ClickHouse rejects a duplicate path outright (unless
//!   `type_json_skip_duplicated_paths`, which keeps the *first*).
//!
//! Key order and insignificant whitespace may differ from upstream (`JSON.parse` keeps a
//! duplicated key at its first position and puts integer-like keys first; we keep the last
//! member where it is); a ClickHouse JSON column keeps neither.
//!
//! Rejections: a syntax error, an unpaired UTF-16 surrogate escape (ClickHouse refuses the
//! document; upstream's `detectBadJsonStrings` drops it) and nesting ClickHouse cannot keep:
//! - more than [`MAX_DEPTH`] containers: ClickHouse 26.9 refuses the insert beyond ~1022 levels;
//! - more than [`MAX_ARRAY_NESTING`] arrays directly inside one another: the insert *succeeds*,
//!   but the inferred type `Array(Array(…))` is too deep to parse back (`TOO_DEEP_AST`, measured
//!   from 149 levels), so every later read or merge of that part fails. Objects reset the count:
//!   an array of objects is `Array(JSON)` whose paths are typed separately.
//!
//! The scanner is a single iterative pass, so hostile nesting can neither exhaust the stack nor
//! cost more than linear time. It allocates only its container stack and, when something must
//! change, the list of edits and the output.

use std::borrow::Cow;

use super::js;

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

/// How numbers are rendered, i.e. which JavaScript serializer upstream runs last.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Numbers {
    /// `JSON.stringify`: `-0` → `0`, ±Infinity → `null`.
    Json,
    /// `superjson.serialize`: `-0` → `"-0"`, ±Infinity → `"Infinity"` / `"-Infinity"`.
    SuperJson,
}

/// Containers allowed inside a value we wrap as `{"data": …}`. ClickHouse 26.9 accepts about 1022
/// nested levels in a JSON column; 999 plus the wrapper stays clear of that.
pub const MAX_DEPTH: usize = 999;

/// Arrays allowed directly inside one another in a value we store (see the module comment;
/// ClickHouse 26.9 breaks from 149).
pub const MAX_ARRAY_NESTING: usize = 128;

/// Validates `text` and returns what upstream would send for it: the text itself, or a rewrite
/// when a number or a duplicate key would come out differently.
pub fn normalize(text: &str, numbers: Numbers, max_depth: usize) -> Result<Cow<'_, str>, Reject> {
    let mut scanner = Scanner::new(text, max_depth, Some(numbers));
    scanner.run()?;
    Ok(apply(text, std::mem::take(&mut scanner.edits)))
}

/// Validates `text` with no depth limit and no rewriting (for values we only read from).
pub fn validate(text: &str) -> Result<(), Reject> {
    Scanner::new(text, usize::MAX, None).run()
}

/// Validates `text`, allowing at most `max_depth` nested containers.
pub fn check_depth(text: &str, max_depth: usize) -> Result<(), Reject> {
    Scanner::new(text, max_depth, None).run()
}

/// The `JSON.stringify` form of a value: [`normalize`]d, without insignificant whitespace.
pub fn compact(text: &str, numbers: Numbers, max_depth: usize) -> Result<String, Reject> {
    let normalized = normalize(text, numbers, max_depth)?;
    let b = normalized.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    let mut run = 0;
    while i < b.len() {
        match b[i] {
            b'"' => i = skip_string(b, i),
            b' ' | b'\t' | b'\n' | b'\r' => {
                out.push_str(&normalized[run..i]);
                i += 1;
                run = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&normalized[run..]);
    Ok(out)
}

struct Container {
    object: bool,
    first_key: usize,
    /// Arrays directly nesting this one, itself included (0 for an object).
    array_run: usize,
}

struct Scanner<'a> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    max_depth: usize,
    /// `None`: validate only.
    numbers: Option<Numbers>,
    containers: Vec<Container>,
    /// Key tokens (start, end, has escapes) of the open objects.
    keys: Vec<(usize, usize, bool)>,
    edits: Vec<Edit>,
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
    fn new(src: &'a str, max_depth: usize, numbers: Option<Numbers>) -> Self {
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

    fn run(&mut self) -> Result<(), Reject> {
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

/// Whether JavaScript prints a number literal without exponent exactly as written, decided
/// from the digits alone: the common case, so it must not cost a float conversion.
///
/// A decimal with at most 15 significant digits is the shortest form of the double nearest to
/// it (no other decimal that short maps to the same double), so JavaScript prints those digits
/// back, in plain notation while the value is at least 10^-6 (and below 10^21, which 15 digits
/// cannot reach). A trailing fractional zero, `-0`, and anything longer take the slow path.
fn prints_unchanged(negative: bool, int_digits: &[u8], fraction: Option<&[u8]>) -> bool {
    let int_is_zero = int_digits == b"0";
    let Some(fraction) = fraction else {
        return int_digits.len() <= 15 && !(negative && int_is_zero);
    };
    if fraction.last() == Some(&b'0') {
        return false;
    }
    if int_is_zero {
        let leading_zeros = fraction.iter().take_while(|&&c| c == b'0').count();
        leading_zeros < 6 && fraction.len() - leading_zeros <= 15
    } else {
        int_digits.len() + fraction.len() <= 15
    }
}

/// The next `"`, `\` or control character of a string body from `i`. Eight bytes at a time:
/// string bodies are most of a payload's bytes.
fn find_string_special(b: &[u8], mut i: usize) -> Option<usize> {
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

/// A span of the source to replace (`Some`) or cut out (`None`).
struct Edit {
    start: usize,
    end: usize,
    with: Option<Rendered>,
}

/// The source with its edits applied; borrowed when there are none. A cut can enclose edits made
/// earlier inside it (a duplicate member containing a rewritten number); those are dropped.
fn apply(src: &str, mut edits: Vec<Edit>) -> Cow<'_, str> {
    if edits.is_empty() {
        return Cow::Borrowed(src);
    }
    // Cuts are recorded when their object closes, after the edits inside them.
    edits.sort_by_key(|e| e.start);
    let mut out = String::with_capacity(src.len());
    let mut copied = 0;
    for edit in &edits {
        if edit.start < copied {
            continue;
        }
        out.push_str(&src[copied..edit.start]);
        if let Some(with) = &edit.with {
            out.push_str(with.as_str());
        }
        copied = edit.end;
    }
    out.push_str(&src[copied..]);
    Cow::Owned(out)
}

fn hex4(b: &[u8], at: usize) -> Option<u16> {
    let digits = b.get(at..at + 4)?;
    let mut v = 0u16;
    for &c in digits {
        v = v * 16 + (c as char).to_digit(16)? as u16;
    }
    Some(v)
}

/// What the last serializer prints for a number literal.
pub(crate) enum Rendered {
    Js(js::JsNumber),
    Fixed(&'static str),
}

impl Rendered {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Rendered::Js(n) => n.as_str(),
            Rendered::Fixed(s) => s,
        }
    }
}

pub(crate) fn render_number(token: &str, numbers: Numbers) -> Rendered {
    // JSON's number grammar is a subset of Rust's float grammar, and both round to nearest like
    // JSON.parse; an overflow comes back as ±inf.
    let v: f64 = token.parse().unwrap_or(f64::NAN);
    match numbers {
        Numbers::Json if v.is_infinite() => Rendered::Fixed("null"),
        Numbers::SuperJson if v == f64::INFINITY => Rendered::Fixed("\"Infinity\""),
        Numbers::SuperJson if v == f64::NEG_INFINITY => Rendered::Fixed("\"-Infinity\""),
        Numbers::SuperJson if v == 0.0 && v.is_sign_negative() => Rendered::Fixed("\"-0\""),
        _ => Rendered::Js(js::number_to_string(v)),
    }
}

/// Cuts every member of a just-closed object whose key occurs again later in it, so the last
/// value wins (`JSON.parse`). A cut runs from a member's key to the next member's key, comma and
/// whitespace included; the member cut is never the last one, so the object stays well formed.
fn cut_duplicates(src: &str, keys: &[(usize, usize, bool)], edits: &mut Vec<Edit>) {
    let token = |i: usize| &src[keys[i].0..keys[i].1];
    let same = |i: usize, j: usize| {
        if keys[i].2 || keys[j].2 {
            decode_string(token(i)) == decode_string(token(j))
        } else {
            token(i) == token(j)
        }
    };
    let mut cut = |i: usize| {
        edits.push(Edit {
            start: keys[i].0,
            end: keys[i + 1].0,
            with: None,
        });
    };
    let n = keys.len();
    if n <= 8 {
        for i in 0..n {
            if (i + 1..n).any(|j| same(i, j)) {
                cut(i);
            }
        }
        return;
    }
    // Quick exit for the common case: no escapes to decode and no two raw tokens equal.
    let mut order: Vec<usize> = (0..n).collect();
    if keys.iter().all(|k| !k.2) {
        order.sort_unstable_by_key(|&i| token(i));
        if order.windows(2).all(|w| token(w[0]) != token(w[1])) {
            return;
        }
    }
    let decoded: Vec<Cow<'_, str>> = (0..n).map(|i| decode_string(token(i))).collect();
    order.sort_by(|&a, &b| decoded[a].cmp(&decoded[b]).then(a.cmp(&b)));
    for w in order.windows(2) {
        if decoded[w[0]] == decoded[w[1]] {
            cut(w[0]);
        }
    }
}

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
fn skip_string(b: &[u8], mut i: usize) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(text: &str) -> Result<Cow<'_, str>, Reject> {
        normalize(text, Numbers::Json, MAX_DEPTH)
    }

    #[test]
    fn accepts_what_json_parse_accepts() {
        for ok in [
            "0",
            "-1",
            "1.5",
            "1e5",
            "1E+5",
            "-0.5e-3",
            "true",
            "false",
            "null",
            r#""""#,
            r#""a\"b\\c\/d\b\f\n\r\t\u00e9""#,
            "[]",
            "{}",
            " \t\n\r[ 1 , 2 ] \n",
            r#"{"a":{"b":[1,{"c":null}]},"d":"x"}"#,
            "\"\u{7f}\u{2028}é🚀\"",
            r#""\ud83d\ude00""#,
            r#""\uD83D\uDE00""#,
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok:?}");
            assert!(norm(ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn rejects_what_json_parse_rejects() {
        for bad in [
            "",
            " ",
            "\u{feff}{}",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "+1",
            "0x10",
            "NaN",
            "Infinity",
            "undefined",
            "tru",
            "nul",
            "'a'",
            "\"a",
            "\"a\nb\"",
            "\"\t\"",
            r#""\x""#,
            r#""\u12""#,
            r#""\u12G4""#,
            "[1,]",
            "[,1]",
            "[1 2]",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{a:1}",
            "{\"a\" 1}",
            "{} {}",
            "[",
            "]",
            "{\"a\":1]",
            "[1}",
            "//c\n1",
        ] {
            assert_eq!(validate(bad), Err(Reject::Syntax), "{bad:?}");
            assert_eq!(norm(bad), Err(Reject::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn lone_surrogates_are_rejected_escape_aware() {
        for bad in [
            r#""\ud800""#,
            r#""\uD800""#,
            r#""\udbff x""#,
            r#""\udc00""#,
            r#""\uDFFF""#,
            r#""a\ud83d""#,
            r#""\ud83d\u0041""#,
            r#""\ud83d\ud83d\ude00""#,
            r#""\ude00\ud83d""#,
            r#"{"\ud800":1}"#,
            r#"["ok","\udc00"]"#,
        ] {
            assert_eq!(validate(bad), Err(Reject::LoneSurrogate), "{bad:?}");
        }
        // An escaped backslash followed by `ud800` is text, not an escape.
        assert_eq!(validate(r#""\\ud800""#), Ok(()));
        assert_eq!(validate(r#""\\\ud83d\ude00""#), Ok(()));
        assert_eq!(validate(r#""\ud83d\ude00\ud83d\ude00""#), Ok(()));
    }

    #[test]
    fn depth_limit_counts_containers() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(normalize(&nested(3), Numbers::Json, 3).is_ok());
        assert_eq!(
            normalize(&nested(4), Numbers::Json, 3),
            Err(Reject::TooDeep)
        );
        let objects = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
        assert!(norm(&objects(MAX_DEPTH)).is_ok());
        assert_eq!(norm(&objects(MAX_DEPTH + 1)), Err(Reject::TooDeep));
        let mixed = |n: usize| format!("{}1{}", "[{\"a\":".repeat(n), "}]".repeat(n));
        assert!(norm(&mixed(MAX_DEPTH / 2)).is_ok());
        assert_eq!(norm(&mixed(MAX_DEPTH / 2 + 1)), Err(Reject::TooDeep));
        // Hostile depth cannot exhaust the stack: the scanner is iterative.
        assert_eq!(validate(&nested(1_000_000)), Ok(()));
        assert_eq!(norm(&nested(1_000_000)), Err(Reject::TooDeep));
        assert_eq!(norm(&objects(1_000_000)), Err(Reject::TooDeep));
    }

    #[test]
    fn array_nesting_limit_counts_arrays_directly_inside_arrays() {
        let arrays = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert!(norm(&arrays(MAX_ARRAY_NESTING)).is_ok());
        assert_eq!(norm(&arrays(MAX_ARRAY_NESTING + 1)), Err(Reject::TooDeep));
        let in_object = format!("{{\"a\":{}}}", arrays(MAX_ARRAY_NESTING + 1));
        assert_eq!(norm(&in_object), Err(Reject::TooDeep));
        // An object between arrays starts a new run.
        let split = format!(
            "{}{{\"a\":{}}}{}",
            "[".repeat(100),
            arrays(100),
            "]".repeat(100)
        );
        assert!(norm(&split).is_ok());
        // Reading is not bound by it.
        assert_eq!(validate(&arrays(MAX_ARRAY_NESTING + 1)), Ok(()));
        assert_eq!(
            check_depth(&arrays(MAX_ARRAY_NESTING + 1), usize::MAX),
            Ok(())
        );
    }

    #[test]
    fn unchanged_text_is_borrowed() {
        for text in [
            r#"{"a":1,"b":[true,false,null],"c":"x","d":-12,"e":0.5,"f":123456789012345}"#,
            r#" { "spaced" : [ 1 , 2 ] } "#,
            "1e+21",
            "1.5e-7",
            "0.1",
            "-0.000001",
        ] {
            assert!(
                matches!(norm(text), Ok(Cow::Borrowed(t)) if t == text),
                "{text:?}"
            );
        }
    }

    #[test]
    fn numbers_take_their_javascript_form() {
        for (input, expected) in [
            ("1.0", "1"),
            ("1.50", "1.5"),
            ("1e2", "100"),
            ("1E+2", "100"),
            ("-0", "0"),
            ("-0.0", "0"),
            ("0e10", "0"),
            ("1e21", "1e+21"),
            ("1e-7", "1e-7"),
            ("0.0000001", "1e-7"),
            ("123456789012345678", "123456789012345680"),
            ("12345678901234567890", "12345678901234567000"),
            ("123456789012345678901234567890", "1.2345678901234568e+29"),
            ("9007199254740993", "9007199254740992"),
            ("1e400", "null"),
            ("-1e400", "null"),
            ("1e-400", "0"),
            ("-1e-400", "0"),
            ("[1.0,2,3.25e1]", "[1,2,32.5]"),
            (r#"{"a":1.10,"b":"1.10"}"#, r#"{"a":1.1,"b":"1.10"}"#),
        ] {
            assert_eq!(norm(input).as_deref(), Ok(expected), "{input:?}");
        }
    }

    #[test]
    fn the_fast_number_check_agrees_with_javascript_formatting() {
        // Every literal the fast path accepts must print back unchanged; spot-check a grid of
        // shapes around its boundaries against the real formatter.
        let mut literals: Vec<String> = [
            "0",
            "-0",
            "0.5",
            "-0.5",
            "0.000001",
            "0.0000001",
            "0.0000012345",
            "123456789012345",
            "1234567890123456",
            "12345678.1234567",
            "12345678.12345678",
            "0.123456789012345",
            "0.1234567890123456",
            "0.30000000000000004",
            "100",
            "1.10",
            "9007199254740993",
        ]
        .map(str::to_owned)
        .to_vec();
        for int in ["0", "1", "7", "99", "123456", "999999999999999"] {
            for frac in [
                "",
                "1",
                "05",
                "000001",
                "0000001",
                "123456789",
                "99999999999999",
            ] {
                for sign in ["", "-"] {
                    literals.push(if frac.is_empty() {
                        format!("{sign}{int}")
                    } else {
                        format!("{sign}{int}.{frac}")
                    });
                }
            }
        }
        for lit in literals {
            let (negative, rest) = match lit.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, lit.as_str()),
            };
            let (int, frac) = match rest.split_once('.') {
                Some((i, f)) => (i, Some(f.as_bytes())),
                None => (rest, None),
            };
            let fast = prints_unchanged(negative, int.as_bytes(), frac);
            let slow = render_number(&lit, Numbers::Json).as_str() == lit;
            assert!(
                !fast || slow,
                "{lit}: the fast path keeps a literal JavaScript rewrites"
            );
            let short = int.len() + frac.map_or(0, <[u8]>::len) <= 15;
            if short && !lit.ends_with(".0") {
                assert_eq!(fast, slow, "{lit}");
            }
        }
    }

    #[test]
    fn string_scan_finds_specials_in_any_lane() {
        for len in 0..40 {
            for special in [b'"', b'\\', 0x01, 0x1f] {
                let mut body = vec![b'a'; len];
                body.push(special);
                body.extend_from_slice(b"tail");
                assert_eq!(find_string_special(&body, 0), Some(len), "{len} {special}");
            }
            let mut body = "é".repeat(len).into_bytes();
            body.extend_from_slice("\u{7f}€\"".as_bytes());
            assert_eq!(find_string_special(&body, 0), Some(body.len() - 1));
            assert_eq!(find_string_special(&vec![b'x'; len], 0), None);
            assert_eq!(find_string_special(&vec![0x80; len], 0), None);
        }
    }

    #[test]
    fn superjson_numbers_follow_superjson_serialize() {
        let sj = |t| normalize(t, Numbers::SuperJson, MAX_DEPTH);
        assert_eq!(sj("-0").as_deref(), Ok(r#""-0""#));
        assert_eq!(sj("-0.0").as_deref(), Ok(r#""-0""#));
        assert_eq!(sj("1e400").as_deref(), Ok(r#""Infinity""#));
        assert_eq!(sj("-1e400").as_deref(), Ok(r#""-Infinity""#));
        assert_eq!(sj("1.0").as_deref(), Ok("1"));
        assert_eq!(sj("0").as_deref(), Ok("0"));
    }

    #[test]
    fn duplicate_keys_keep_the_last_value() {
        for (input, expected) in [
            (r#"{"a":1,"a":2}"#, r#"{"a":2}"#),
            (r#"{"a":1,"b":2,"a":3}"#, r#"{"b":2,"a":3}"#),
            (r#"{"a":1,"a":2,"a":3}"#, r#"{"a":3}"#),
            (r#"{"a":{"b":1},"a":{"c":2}}"#, r#"{"a":{"c":2}}"#),
            (r#"{"a":1,"\u0061":2}"#, r#"{"\u0061":2}"#),
            (r#"[{"x":1, "x" : 1.50}, 2.0]"#, r#"[{"x" : 1.5}, 2]"#),
            (
                r#"{ "a" : 1.0 ,  "b":{"c":1,"c":2.0} , "a" : 2 }"#,
                r#"{ "b":{"c":2} , "a" : 2 }"#,
            ),
            (r#"{"a":{"n":1.50,"a":{"x":1,"x":2}},"a":0}"#, r#"{"a":0}"#),
            (
                r#"{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k0":9,"k5":10}"#,
                r#"{"k1":1,"k2":2,"k3":3,"k4":4,"k6":6,"k7":7,"k8":8,"k0":9,"k5":10}"#,
            ),
            (
                r#"{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"\u006b0":9}"#,
                r#"{"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"\u006b0":9}"#,
            ),
        ] {
            assert_eq!(norm(input).as_deref(), Ok(expected), "{input:?}");
        }
        // Same keys in different objects are not duplicates.
        let distinct = r#"{"a":{"a":1},"b":{"a":2}}"#;
        assert!(matches!(norm(distinct), Ok(Cow::Borrowed(_))));
        let distinct_escaped = r#"{"a":1,"\u0062":2}"#;
        assert!(matches!(norm(distinct_escaped), Ok(Cow::Borrowed(_))));
        let many: String = format!(
            "{{{}}}",
            (0..1000)
                .map(|i| format!("\"k{i}\":{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(matches!(norm(&many), Ok(Cow::Borrowed(_))));
        // Validation only never rewrites.
        assert_eq!(validate(r#"{"a":1,"a":2}"#), Ok(()));
    }

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

    #[test]
    fn compact_removes_whitespace() {
        let c = |t| compact(t, Numbers::Json, MAX_DEPTH);
        assert_eq!(
            c(r#" { "a" : [ 1 , 2.50 , { } ] , "b" : "x y \" z" , "a" : 1 } "#).as_deref(),
            Ok(r#"{"b":"x y \" z","a":1}"#)
        );
        assert_eq!(c(" 1e400 ").as_deref(), Ok("null"));
        assert_eq!(c(" true ").as_deref(), Ok("true"));
        assert_eq!(c("[[]]").as_deref(), Ok("[[]]"));
        assert_eq!(compact("[[]]", Numbers::Json, 1), Err(Reject::TooDeep));
    }

    #[test]
    fn depth_check() {
        assert_eq!(check_depth("[[1]]", 2), Ok(()));
        assert_eq!(check_depth("[[1]]", 1), Err(Reject::TooDeep));
        assert_eq!(check_depth("[[1]", 5), Err(Reject::Syntax));
    }
}

#[cfg(test)]
mod randomized {
    //! Random token soups checked against serde_json as an independent JSON parser.
    use super::*;

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            // xorshift64*: deterministic, no dependency.
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[(self.next() % items.len() as u64) as usize]
        }
    }

    const TOKENS: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        " ",
        "\n",
        "\"a\"",
        "\"b\"",
        "\"a\"",
        "\"\\u0061\"",
        "\"é\"",
        "\"\\\"\"",
        "\"\\\\\"",
        "\"\\ud83d\\ude00\"",
        "\"\\ud800\"",
        "1",
        "-0",
        "1.50",
        "1e400",
        "12345678901234567890",
        "0.1",
        "true",
        "false",
        "null",
        "\"x",
        "01",
        "\"\\q\"",
    ];

    /// Mostly well-formed documents, with occasional noise.
    fn document(rng: &mut Rng, depth: usize, out: &mut String) {
        match rng.next() % 8 {
            0 if depth < 6 => {
                out.push('{');
                for i in 0..rng.next() % 5 {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(rng.pick(&["\"a\"", "\"b\"", "\"\\u0061\"", "\"c\""]));
                    out.push(':');
                    document(rng, depth + 1, out);
                }
                out.push('}');
            }
            1 if depth < 6 => {
                out.push('[');
                for i in 0..rng.next() % 4 {
                    if i > 0 {
                        out.push_str(rng.pick(&[",", " , "]));
                    }
                    document(rng, depth + 1, out);
                }
                out.push(']');
            }
            2 => out.push_str(rng.pick(TOKENS)),
            _ => out.push_str(rng.pick(&["1", "-2.5", "\"s\"", "null", "true", "1.0", "1e2"])),
        }
    }

    #[test]
    fn agrees_with_serde_json_and_never_panics() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let mut text = String::new();
            document(&mut rng, 0, &mut text);
            if rng.next().is_multiple_of(4) {
                // Splice a random token somewhere (on a char boundary).
                let mut at = (rng.next() as usize) % (text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                text.insert_str(at, rng.pick(TOKENS));
            }
            let ours = normalize(&text, Numbers::Json, MAX_DEPTH);
            let theirs = serde_json::from_str::<serde_json::Value>(&text);
            let lone = text.contains("\\ud800") && !text.contains("\\\\ud800");
            match (&ours, &theirs) {
                (Ok(normalized), Ok(value)) => {
                    let reparsed: serde_json::Value = serde_json::from_str(normalized)
                        .unwrap_or_else(|e| panic!("{text:?} → {normalized:?}: {e}"));
                    // serde_json also keeps the last duplicate; numbers may be reformatted.
                    // Rewritten numbers differ on purpose, and serde_json's own float parsing
                    // is not correctly rounded for long mantissas: compare the rest.
                    let long_digit_run = text
                        .as_bytes()
                        .split(|c| !c.is_ascii_digit())
                        .any(|run| run.len() > 15);
                    let rewritable = ['.', 'e'].iter().any(|&c| text.contains(c))
                        || text.contains("-0")
                        || long_digit_run;
                    if !rewritable {
                        assert_eq!(&reparsed, value, "{text:?} → {normalized:?}");
                    }
                    assert_eq!(validate(&text), Ok(()));
                }
                // serde_json refuses numbers beyond f64; JSON.parse makes them ±Infinity.
                (Ok(_), Err(e)) => assert!(
                    lone || e.to_string().contains("out of range"),
                    "{text:?}: serde rejects ({e})"
                ),
                (Err(Reject::LoneSurrogate), _) => assert!(text.contains("\\ud"), "{text:?}"),
                (Err(Reject::Syntax), Ok(_)) => panic!("{text:?}: we reject, serde accepts"),
                (Err(_), _) => {}
            }
            // Member access on anything valid must not panic either.
            if ours.is_ok() {
                for (key, value) in members(&text) {
                    let _ = (decode_string(key), kind(value), js::to_string(value));
                }
                let _ = elements(&text).count();
            }
        }
    }
}
