//! Hash ranges: the first, cheap pass of a verify over one slice. Every run falls in one of
//! `2^bits` ranges by the top bits of xxHash64 of its id; each side sums, per range, its runs and
//! their row hashes (`canonical`). Only ranges whose sums differ are compared run by run, and
//! only runs whose hashes differ there are re-checked in full (`settle`).
//!
//! Ranges of a hash rather than of the id or of `created_at`: they are the same size whatever the
//! ids look like (cuid or KSUID) or however bursty the runs are, need no planning query, and both
//! sides compute them with the function they already share. Postgres cannot compute them, and
//! does not need to: the worker holds each run's hash from the slice's read. About 64 runs per
//! range (at most 65,536 ranges), so a handful of drifted runs makes a few ranges differ and the
//! run-by-run pass reads a few hundred hashes.

use std::collections::{HashMap, HashSet};

use super::expected::SliceRuns;
use crate::sink::verify_reads::RangeSum;

/// Runs per range aimed at.
const RUNS_PER_RANGE: usize = 64;
const MAX_BITS: u32 = 16;

/// Range bits for a window of `runs` runs: about [`RUNS_PER_RANGE`] per range, at least 2 ranges.
pub fn bits_for(runs: usize) -> u32 {
    let ranges = runs.div_ceil(RUNS_PER_RANGE).max(2);
    (usize::BITS - (ranges - 1).leading_zeros()).clamp(1, MAX_BITS)
}

/// One side's sum of one range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sum {
    pub runs: u64,
    pub sum: u64,
}

impl Sum {
    fn add(&mut self, digest: u64) {
        self.runs += 1;
        self.sum = self.sum.wrapping_add(digest);
    }
}

/// The worker's sums, indexed by range.
pub fn sums(runs: &SliceRuns, bits: u32) -> Vec<Sum> {
    let mut out = vec![Sum::default(); 1 << bits];
    for (id, e) in runs.iter() {
        out[super::canonical::range_of(id, bits) as usize].add(e.digest);
    }
    out
}

/// The ranges whose sums differ between the worker's and ClickHouse's (a range ClickHouse does
/// not list has no runs there).
pub fn differing(ours: &[Sum], theirs: &[RangeSum]) -> Vec<u32> {
    let theirs: HashMap<u32, Sum> = theirs
        .iter()
        .map(|r| {
            (
                r.range,
                Sum {
                    runs: r.runs,
                    sum: r.sum,
                },
            )
        })
        .collect();
    let mut out: Vec<u32> = (0..ours.len() as u32)
        .filter(|r| theirs.get(r).copied().unwrap_or_default() != ours[*r as usize])
        .collect();
    // A range beyond ours (it cannot happen with the same bits, but a sum is cheap to trust).
    out.extend(theirs.keys().filter(|r| **r as usize >= ours.len()));
    out
}

/// The runs to re-check in the differing `ranges`: a hash that differs, a run on one side only,
/// a run ClickHouse shows twice. Also returns how many runs ClickHouse has there that the window
/// read did not find.
pub fn candidates(
    ours: &SliceRuns,
    bits: u32,
    ranges: &[u32],
    theirs: &[(String, u64)],
) -> (Vec<String>, u64) {
    let ranges: HashSet<u32> = ranges.iter().copied().collect();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut out: HashSet<String> = HashSet::new();
    let mut only_theirs = HashSet::new();
    for (id, digest) in theirs {
        let twice = !seen.insert(id.as_str());
        match ours.get(id) {
            Some(e) if e.digest == *digest && !twice => {}
            Some(_) => {
                out.insert(id.clone());
            }
            None => {
                only_theirs.insert(id.as_str());
                out.insert(id.clone());
            }
        }
    }
    for (id, _) in ours.iter() {
        if !seen.contains(id) && ranges.contains(&super::canonical::range_of(id, bits)) {
            out.insert(id.to_string());
        }
    }
    let mut out: Vec<String> = out.into_iter().collect();
    out.sort();
    (out, only_theirs.len() as u64)
}
