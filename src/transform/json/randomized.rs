//! Random token soups checked against serde_json as an independent JSON parser.

use super::*;
use crate::transform::js;

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
