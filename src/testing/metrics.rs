//! Reads Prometheus text exposition, what the worker serves on `/metrics`: the one parser the
//! integration tests (`tests/it`) and the end-to-end benchmark (`benches/e2e`) use to read a
//! scrape.
//!
//! A sample line is `name{label="value",…} value [timestamp]`; `#` lines are comments (HELP and
//! TYPE). Label values are unescaped (`\\`, `\"`, `\n`), so a `}` or a space inside one does not
//! end the label set. Lines that do not parse are skipped: a scrape is read to check it, and a
//! check of a missing series fails on its own.

/// One sample of a scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    pub name: &'a str,
    /// `(label, value)` pairs in the order of the line, values unescaped.
    pub labels: Vec<(&'a str, String)>,
    pub value: f64,
}

impl Sample<'_> {
    /// The value of `label`, if the sample carries it.
    pub fn label(&self, label: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(name, _)| *name == label)
            .map(|(_, value)| value.as_str())
    }
}

/// Every sample of `text`, in order.
pub fn samples(text: &str) -> impl Iterator<Item = Sample<'_>> {
    text.lines().filter_map(sample)
}

/// The value of the first sample named `name`, whatever its labels.
pub fn value(text: &str, name: &str) -> Option<f64> {
    samples(text).find(|s| s.name == name).map(|s| s.value)
}

/// The value of the first sample named `name` that carries every one of `labels`.
pub fn value_with(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(text)
        .find(|s| s.name == name && labels.iter().all(|(l, v)| s.label(l) == Some(*v)))
        .map(|s| s.value)
}

/// The sum of every sample named `name`, across label sets; 0 when there is none.
pub fn sum(text: &str, name: &str) -> f64 {
    samples(text)
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

/// The cumulative buckets `(le, count)` of histogram `name`, in the order of the scrape.
pub fn buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    let bucket = format!("{name}_bucket");
    samples(text)
        .filter(|s| s.name == bucket)
        .filter_map(|s| Some((s.label("le")?.parse().ok()?, s.value)))
        .collect()
}

fn sample(line: &str) -> Option<Sample<'_>> {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_ascii_whitespace())
        .unwrap_or(line.len());
    let (name, mut rest) = line.split_at(name_end);
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = label_set(inner, &mut labels)?;
    }
    // f64's parser reads Prometheus's +Inf, -Inf and NaN as well.
    let value = rest.split_ascii_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// Reads `label="value",…}` into `labels`; returns what follows the closing brace.
fn label_set<'a>(mut rest: &'a str, labels: &mut Vec<(&'a str, String)>) -> Option<&'a str> {
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if let Some(after) = rest.strip_prefix('}') {
            return Some(after);
        }
        let (label, after) = rest.split_once('=')?;
        let mut chars = after.strip_prefix('"')?.char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((label.trim(), value));
        rest = &after[1 + end + 1..];
    }
}
