//! The rewrites normalization makes, as edits to the source text: a span replaced (a number in
//! its JavaScript form) or cut out (an earlier duplicate member), and the text with them applied.
//! Kept apart from the scanner, which only decides where edits go: what a duplicate is (keys
//! compared decoded, as `JSON.parse` compares them) and how overlapping edits resolve live here.

use std::borrow::Cow;

use super::number::Rendered;
use super::read::decode_string;

/// A span of the source to replace (`Some`) or cut out (`None`).
pub(super) struct Edit {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) with: Option<Rendered>,
}

/// The source with its edits applied; borrowed when there are none. A cut can enclose edits made
/// earlier inside it (a duplicate member containing a rewritten number); those are dropped.
pub(super) fn apply(src: &str, mut edits: Vec<Edit>) -> Cow<'_, str> {
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

/// Cuts every member of a just-closed object whose key occurs again later in it, so the last
/// value wins (`JSON.parse`). A cut runs from a member's key to the next member's key, comma and
/// whitespace included; the member cut is never the last one, so the object stays well formed.
pub(super) fn cut_duplicates(src: &str, keys: &[(usize, usize, bool)], edits: &mut Vec<Edit>) {
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
