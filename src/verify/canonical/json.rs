//! ClickHouse's rendering of a JSON column, reproduced from the text the worker inserts.
//!
//! The runs table keeps `output` and `error` as ClickHouse `JSON`: it parses the text, types every
//! value, and `toJSONString` prints its own form of it — keys sorted by path, nulls and empty
//! objects gone, numbers retyped (`1.0` → `1`, `1e20` → `100000000000000000000`, an integer past
//! 64 bits → a string), the values of one array unified to one type (`[true, 1]` → `[1, 1]`),
//! `/` escaped. A range hash compares that form with the worker's, so the worker must produce it
//! from the text it would insert, without asking ClickHouse.
//!
//! [`render`] does so for the values it knows ClickHouse's rules for (each rule was read off
//! ClickHouse 26 and is pinned by a test) and returns `None` for the rest: dotted or duplicate
//! keys, mixed arrays it has no rule for, non-finite numbers, deep nesting. A `None` is never a
//! wrong verdict, only a slower one: the row's hash then differs, and the row-level comparison
//! asks ClickHouse itself to render the expected value (`sink::verify_reads::render_json`).
//!
//! It runs for every row a verify reads, so it borrows what it can: strings without escapes are
//! not copied, members are sorted by index and written straight into the output.

use std::borrow::Cow;
use std::fmt::Write;

#[cfg(test)]
mod reference;

/// Deeper than this, the emulation gives up (ClickHouse has limits of its own there).
const MAX_DEPTH: usize = 64;

/// ClickHouse's `toJSONString` of the JSON column value the worker inserts as `text`, or `None`
/// when it is not one the emulation covers.
pub fn render(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    render_into(text, &mut out)?;
    Some(out)
}

/// [`render`], appended to `out` (on `None`, `out` may hold part of a rendering: discard it).
pub fn render_into(text: &str, out: &mut String) -> Option<()> {
    let mut parser = Parser {
        s: text,
        b: text.as_bytes(),
        i: 0,
    };
    let value = parser.value(0)?;
    parser.ws();
    if parser.i != parser.b.len() {
        return None;
    }
    let Value::Obj(members) = value else {
        return None;
    };
    object(&members, out, 0)
}

/// A parsed value; numbers keep their text (their type depends on where they are), strings are
/// borrowed from the input unless they had escapes.
#[derive(Debug)]
enum Value<'a> {
    Null,
    Bool(bool),
    Num(&'a str),
    Str(Cow<'a, str>),
    Arr(Vec<Value<'a>>),
    Obj(Vec<(Cow<'a, str>, Value<'a>)>),
}

/// The type ClickHouse infers for a value inside an array, before unifying an array's elements.
#[derive(Debug, Clone, PartialEq)]
enum Ty {
    Null,
    Bool,
    Int,
    Float,
    /// Strings, and integers too large for 64 bits (ClickHouse keeps those as strings).
    Str,
    Arr(Box<Ty>),
    Obj,
    /// Elements of different types, each kept as its own.
    Dynamic,
}

/// A number's text as ClickHouse types it.
enum Number {
    /// An integer within 64 bits; ClickHouse prints it as JSON wrote it, but `-0` as `0`.
    Int,
    /// An integer literal past 64 bits: a string.
    Big,
    Float(f64),
}

fn number(text: &str) -> Option<Number> {
    if text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        let v: f64 = text.parse().ok()?;
        return v.is_finite().then_some(Number::Float(v));
    }
    if text.parse::<i64>().is_ok() || text.parse::<u64>().is_ok() {
        return Some(Number::Int);
    }
    Some(Number::Big)
}

/// An integer literal's value as a float (a `-0` integer is 0, as ClickHouse reads it).
fn int_as_float(text: &str) -> Option<f64> {
    if let Ok(v) = text.parse::<i64>() {
        return Some(v as f64);
    }
    text.parse::<u64>().ok().map(|v| v as f64)
}

fn ty(value: &Value) -> Option<Ty> {
    Some(match value {
        Value::Null => Ty::Null,
        Value::Bool(_) => Ty::Bool,
        Value::Num(t) => match number(t)? {
            Number::Int => Ty::Int,
            Number::Big => Ty::Str,
            Number::Float(_) => Ty::Float,
        },
        Value::Str(_) => Ty::Str,
        Value::Arr(items) => Ty::Arr(Box::new(unify(types(items)?))),
        Value::Obj(_) => Ty::Obj,
    })
}

/// The common type of an array's elements, by the rules observed: booleans widen to integers,
/// floats or strings, integers to floats; arrays unify element-wise; anything else is Dynamic.
fn unify(types: Vec<Ty>) -> Ty {
    let mut kinds: Vec<Ty> = Vec::new();
    for t in types {
        if t != Ty::Null && !kinds.contains(&t) {
            kinds.push(t);
        }
    }
    let has = |t: &Ty| kinds.contains(t);
    let arrays: Vec<Ty> = kinds
        .iter()
        .filter_map(|k| match k {
            Ty::Arr(inner) => Some((**inner).clone()),
            _ => None,
        })
        .collect();
    match kinds.len() {
        0 => Ty::Null,
        1 => kinds.remove(0),
        _ if arrays.len() == kinds.len() => Ty::Arr(Box::new(unify(arrays))),
        2 if has(&Ty::Bool) && has(&Ty::Int) => Ty::Int,
        2 if has(&Ty::Int) && has(&Ty::Float) => Ty::Float,
        2 if has(&Ty::Bool) && has(&Ty::Float) => Ty::Float,
        2 if has(&Ty::Bool) && has(&Ty::Str) => Ty::Str,
        3 if has(&Ty::Bool) && has(&Ty::Int) && has(&Ty::Float) => Ty::Float,
        _ => Ty::Dynamic,
    }
}

fn types(items: &[Value]) -> Option<Vec<Ty>> {
    items.iter().map(ty).collect()
}

/// Whether an object renders as `{}`: every member null or such an object. `None` where the
/// emulation gives up on it (as rendering it would).
fn empty(members: &[(Cow<str>, Value)], depth: usize) -> Option<bool> {
    if depth > MAX_DEPTH {
        return None;
    }
    check_keys(members)?;
    for (_, value) in members {
        match value {
            Value::Null => {}
            Value::Obj(inner) => {
                if !empty(inner, depth + 1)? {
                    return Some(false);
                }
            }
            _ => return Some(false),
        }
    }
    Some(true)
}

/// A dotted key is a path into nested objects, and a repeated key is skipped or merged: rules
/// this emulation does not reproduce.
fn check_keys(members: &[(Cow<str>, Value)]) -> Option<()> {
    for (i, (key, _)) in members.iter().enumerate() {
        if key.contains('.') || members[..i].iter().any(|(k, _)| k == key) {
            return None;
        }
    }
    Some(())
}

/// Members of an object as a JSON column stores them: nulls and empty objects dropped, keys
/// ordered by their path (`a b` < `a.x` < `a0`), so an object member sorts as its key plus `.`.
fn object(members: &[(Cow<str>, Value)], out: &mut String, depth: usize) -> Option<()> {
    if depth > MAX_DEPTH {
        return None;
    }
    check_keys(members)?;
    // (index, sorts as an object's path)
    let mut kept: Vec<(usize, bool)> = Vec::with_capacity(members.len());
    for (i, (_, value)) in members.iter().enumerate() {
        match value {
            Value::Null => {}
            Value::Obj(inner) => {
                if !empty(inner, depth + 1)? {
                    kept.push((i, true));
                }
            }
            _ => kept.push((i, false)),
        }
    }
    let path = |(i, dotted): (usize, bool)| {
        members[i]
            .0
            .as_bytes()
            .iter()
            .copied()
            .chain(dotted.then_some(b'.'))
    };
    kept.sort_by(|a, b| path(*a).cmp(path(*b)));
    out.push('{');
    for (n, (i, _)) in kept.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        let (key, value) = &members[*i];
        string(key, out);
        out.push(':');
        match value {
            Value::Obj(inner) => object(inner, out, depth + 1)?,
            other => leaf(other, None, out, depth + 1)?,
        }
    }
    out.push('}');
    Some(())
}

/// A value with its own type, or, inside an array, converted to the array's unified type `as_ty`.
fn leaf(value: &Value, as_ty: Option<&Ty>, out: &mut String, depth: usize) -> Option<()> {
    if depth > MAX_DEPTH {
        return None;
    }
    let as_ty = as_ty.filter(|t| **t != Ty::Dynamic);
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => match as_ty {
            Some(Ty::Int | Ty::Float) => out.push(if *b { '1' } else { '0' }),
            Some(Ty::Str) => out.push_str(if *b { "\"true\"" } else { "\"false\"" }),
            _ => out.push_str(if *b { "true" } else { "false" }),
        },
        Value::Num(text) => match (number(text)?, as_ty) {
            (Number::Int, Some(Ty::Float)) => float(int_as_float(text)?, out),
            (Number::Int, _) => out.push_str(if *text == "-0" { "0" } else { text }),
            (Number::Big, _) => string(text, out),
            (Number::Float(v), _) => float(v, out),
        },
        Value::Str(s) => string(s, out),
        Value::Arr(items) => {
            let unified = match as_ty {
                Some(Ty::Arr(inner)) => (**inner).clone(),
                _ => unify(types(items)?),
            };
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match item {
                    Value::Obj(members) => object(members, out, depth + 1)?,
                    other => leaf(other, Some(&unified), out, depth + 1)?,
                }
            }
            out.push(']');
        }
        Value::Obj(members) => object(members, out, depth + 1)?,
    }
    Some(())
}

/// A Float64 as ClickHouse prints it: the shortest digits that read back to the same value, in
/// plain notation for decimal exponents from -6 to 20 and as `1.5e21` / `1e-7` outside them.
pub fn float(v: f64, out: &mut String) {
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    out.push_str(sign);
    if !(-6..21).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push_str(&exp.to_string());
        return;
    }
    let point = exp + 1;
    if point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-point) as usize));
        out.push_str(&digits);
    } else if point as usize >= digits.len() {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', point as usize - digits.len()));
    } else {
        out.push_str(&digits[..point as usize]);
        out.push('.');
        out.push_str(&digits[point as usize..]);
    }
}

/// A string as ClickHouse escapes it: `"` `\` `/`, the short escapes, other control characters as
/// `\u00XX` (upper case), U+2028 and U+2029 escaped, everything else as it is. Runs of bytes that
/// need no escape are copied at once.
fn string(s: &str, out: &mut String) {
    out.push('"');
    let b = s.as_bytes();
    let mut plain = 0;
    let mut i = 0;
    while i < b.len() {
        let escape: Option<&str> = match b[i] {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'/' => Some("\\/"),
            0x08 => Some("\\b"),
            0x0c => Some("\\f"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            c if c < 0x20 => {
                out.push_str(&s[plain..i]);
                let _ = write!(out, "\\u{:04X}", c);
                i += 1;
                plain = i;
                continue;
            }
            // U+2028 and U+2029: E2 80 A8 and E2 80 A9.
            0xE2 if b.get(i + 1) == Some(&0x80) && matches!(b.get(i + 2), Some(0xA8 | 0xA9)) => {
                out.push_str(&s[plain..i]);
                out.push_str(if b[i + 2] == 0xA8 {
                    "\\u2028"
                } else {
                    "\\u2029"
                });
                i += 3;
                plain = i;
                continue;
            }
            _ => None,
        };
        if let Some(e) = escape {
            out.push_str(&s[plain..i]);
            out.push_str(e);
            plain = i + 1;
        }
        i += 1;
    }
    out.push_str(&s[plain..]);
    out.push('"');
}

/// A strict JSON reader (RFC 8259) that keeps number texts and decodes strings.
struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.ws();
        (self.b.get(self.i) == Some(&byte)).then(|| self.i += 1)
    }

    fn value(&mut self, depth: usize) -> Option<Value<'a>> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.ws();
        match *self.b.get(self.i)? {
            b'{' => {
                self.i += 1;
                let mut members = Vec::new();
                if self.eat(b'}').is_some() {
                    return Some(Value::Obj(members));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.eat(b':')?;
                    members.push((key, self.value(depth + 1)?));
                    if self.eat(b',').is_none() {
                        self.eat(b'}')?;
                        return Some(Value::Obj(members));
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                if self.eat(b']').is_some() {
                    return Some(Value::Arr(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    if self.eat(b',').is_none() {
                        self.eat(b']')?;
                        return Some(Value::Arr(items));
                    }
                }
            }
            b'"' => self.string().map(Value::Str),
            b't' => self.word("true", Value::Bool(true)),
            b'f' => self.word("false", Value::Bool(false)),
            b'n' => self.word("null", Value::Null),
            _ => self.number(),
        }
    }

    fn word(&mut self, word: &str, value: Value<'a>) -> Option<Value<'a>> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word.as_bytes()).then(|| {
            self.i = end;
            value
        })
    }

    fn number(&mut self) -> Option<Value<'a>> {
        let start = self.i;
        let digits = |p: &mut Self| {
            let s = p.i;
            while p.b.get(p.i).is_some_and(u8::is_ascii_digit) {
                p.i += 1;
            }
            p.i > s
        };
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let first = *self.b.get(self.i)?;
        if first == b'0' {
            self.i += 1;
        } else if !digits(self) {
            return None;
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            digits(self).then_some(())?;
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            digits(self).then_some(())?;
        }
        // ASCII only: the slice is on character boundaries.
        Some(Value::Num(&self.s[start..self.i]))
    }

    /// A string, borrowed from the input when it has no escape.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        if self.b.get(self.i) != Some(&b'"') {
            return None;
        }
        self.i += 1;
        let start = self.i;
        // The plain run: up to the closing quote, or the first escape.
        while let Some(&c) = self.b.get(self.i) {
            match c {
                b'"' => {
                    self.i += 1;
                    return Some(Cow::Borrowed(&self.s[start..self.i - 1]));
                }
                b'\\' => break,
                c if c < 0x20 => return None,
                _ => self.i += 1,
            }
        }
        let mut out: Vec<u8> = self.b[start..self.i].to_vec();
        loop {
            let c = *self.b.get(self.i)?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).ok().map(Cow::Owned),
                b'\\' => {
                    let e = *self.b.get(self.i)?;
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode()?,
                        _ => return None,
                    };
                    out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                }
                c if c < 0x20 => return None,
                c => out.push(c),
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let text = std::str::from_utf8(self.b.get(self.i..self.i + 4)?).ok()?;
        self.i += 4;
        u32::from_str_radix(text, 16).ok()
    }

    /// `\uXXXX` after the `u`, a surrogate pair as one character; a lone surrogate is refused.
    fn unicode(&mut self) -> Option<char> {
        let first = self.hex4()?;
        if (0xD800..0xDC00).contains(&first) {
            if self.b.get(self.i..self.i + 2)? != b"\\u" {
                return None;
            }
            self.i += 2;
            let low = self.hex4()?;
            if !(0xDC00..0xE000).contains(&low) {
                return None;
            }
            return char::from_u32(0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00));
        }
        char::from_u32(first)
    }
}

#[cfg(test)]
mod tests {
    /// The faster rendering agrees with the one it replaced, on generated documents of every
    /// shape the emulation knows and many it refuses.
    #[test]
    fn renders_exactly_as_the_reference_did() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let atoms = [
            "null",
            "true",
            "false",
            "0",
            "-0",
            "1",
            "-17",
            "1.0",
            "2.5",
            "1e20",
            "1e21",
            "-3E-7",
            "18446744073709551615",
            "18446744073709551616",
            "\"a\"",
            "\"a/b\"",
            "\"q\\\"\"",
            "\"\\u00e9\\u2028x\"",
            "\"tab\\there\"",
            "\"\\ud83d\\ude00\"",
            "\"\u{2029}\"",
            "\"\\u0001\"",
            "{}",
            "[]",
            "\"ü\"",
        ];
        let keys = ["a", "b", "a b", "a0", "data", "x.y", "é", "a", "k\\\"q", ""];
        fn doc(
            next: &mut impl FnMut() -> u64,
            atoms: &[&str],
            keys: &[&str],
            depth: u32,
        ) -> String {
            match next() % if depth > 3 { 1 } else { 4 } {
                0 => atoms[(next() % atoms.len() as u64) as usize].to_string(),
                1 => {
                    let n = next() % 4;
                    let items: Vec<String> =
                        (0..n).map(|_| doc(next, atoms, keys, depth + 1)).collect();
                    format!("[{}]", items.join(","))
                }
                _ => {
                    let n = next() % 5;
                    let members: Vec<String> = (0..n)
                        .map(|_| {
                            let k = keys[(next() % keys.len() as u64) as usize];
                            format!("\"{k}\" : {}", doc(next, atoms, keys, depth + 1))
                        })
                        .collect();
                    format!("{{ {} }}", members.join(", "))
                }
            }
        }
        let mut covered = 0;
        for _ in 0..50_000 {
            let members: Vec<String> = (0..(next() % 4))
                .map(|_| {
                    let k = keys[(next() % keys.len() as u64) as usize];
                    format!("\"{k}\":{}", doc(&mut next, &atoms, &keys, 1))
                })
                .collect();
            let text = format!("{{{}}}", members.join(","));
            let new = super::render(&text);
            assert_eq!(new, super::reference::render(&text), "{text}");
            covered += usize::from(new.is_some());
        }
        assert!(covered > 10_000, "{covered} documents rendered");
    }
}
