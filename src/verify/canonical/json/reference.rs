//! The previous `render` (one String per value, per member and per sort key), kept as the oracle
//! of the faster one: they must agree on every input (`json::tests`).
#![allow(dead_code)]

/// Deeper than this, the emulation gives up (ClickHouse has limits of its own there).
const MAX_DEPTH: usize = 64;

/// ClickHouse's `toJSONString` of the JSON column value the worker inserts as `text`, or `None`
/// when it is not one the emulation covers.
pub fn render(text: &str) -> Option<String> {
    let mut parser = Parser {
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
    let mut out = String::with_capacity(text.len());
    object(&members, &mut out, 0)?;
    Some(out)
}

/// A parsed value; numbers keep their text (their type depends on where they are).
#[derive(Debug)]
enum Value<'a> {
    Null,
    Bool(bool),
    Num(&'a str),
    Str(String),
    Arr(Vec<Value<'a>>),
    Obj(Vec<(String, Value<'a>)>),
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
    Int(String),
    /// An integer literal past 64 bits: a string.
    Big,
    Float(f64),
}

fn number(text: &str) -> Option<Number> {
    if text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        let v: f64 = text.parse().ok()?;
        return v.is_finite().then_some(Number::Float(v));
    }
    if let Ok(v) = text.parse::<i64>() {
        return Some(Number::Int(v.to_string()));
    }
    if let Ok(v) = text.parse::<u64>() {
        return Some(Number::Int(v.to_string()));
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
            Number::Int(_) => Ty::Int,
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

/// Members of an object as a JSON column stores them: nulls and empty objects dropped, keys
/// ordered by their path (`a b` < `a.x` < `a0`), so an object member sorts as its key plus `.`.
fn object(members: &[(String, Value)], out: &mut String, depth: usize) -> Option<()> {
    if depth > MAX_DEPTH {
        return None;
    }
    let mut kept: Vec<(Vec<u8>, &str, String)> = Vec::with_capacity(members.len());
    for (i, (key, value)) in members.iter().enumerate() {
        // A dotted key is a path into nested objects, and a repeated key is skipped or merged:
        // rules this emulation does not reproduce.
        if key.contains('.') || members[..i].iter().any(|(k, _)| k == key) {
            return None;
        }
        let mut rendered = String::new();
        let mut sort = key.as_bytes().to_vec();
        match value {
            Value::Null => continue,
            Value::Obj(inner) => {
                object(inner, &mut rendered, depth + 1)?;
                if rendered == "{}" {
                    continue;
                }
                sort.push(b'.');
            }
            other => leaf(other, None, &mut rendered, depth + 1)?,
        }
        kept.push((sort, key, rendered));
    }
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    out.push('{');
    for (i, (_, key, rendered)) in kept.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(key, out)?;
        out.push(':');
        out.push_str(rendered);
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
            (Number::Int(_), Some(Ty::Float)) => float(int_as_float(text)?, out),
            (Number::Int(v), _) => out.push_str(&v),
            (Number::Big, _) => string(text, out)?,
            (Number::Float(v), _) => float(v, out),
        },
        Value::Str(s) => string(s, out)?,
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
/// `\u00XX` (upper case), U+2028 and U+2029 escaped, everything else as it is.
fn string(s: &str, out: &mut String) -> Option<()> {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    Some(())
}

/// A strict JSON reader (RFC 8259) that keeps number texts and decodes strings.
struct Parser<'a> {
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
        let text = std::str::from_utf8(&self.b[start..self.i]).ok()?;
        Some(Value::Num(text))
    }

    fn string(&mut self) -> Option<String> {
        if self.b.get(self.i) != Some(&b'"') {
            return None;
        }
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = *self.b.get(self.i)?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).ok(),
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
