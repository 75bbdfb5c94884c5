//! How a verify walks its window: in slices of `createdAt`, `[lo, hi)` in epoch milliseconds,
//! each holding about as many runs as the memory budget lets the worker hold at once.
//!
//! `createdAt` because both sides can select exactly the same runs by it, and both can read a
//! time range without reading the rest: ClickHouse's table is partitioned by month and sorted by
//! `created_at` within each environment, Postgres has an index on it in both tables (BRIN on
//! `"TaskRun"`, btree on `task_run_v2`). The run id cannot serve: Postgres orders text by the
//! database's collation, ClickHouse by bytes, so a range of ids is not the same set of runs on
//! both sides.
//!
//! The plan comes from ClickHouse's count of runs per minute ([`plan`]), read one month
//! (partition) at a time. ClickHouse is not Postgres: where it lacks runs, a slice holds more
//! than planned. A reader that finds more than a slice may hold stops and cuts it by the
//! `createdAt` of the runs it read ([`split`]), so however wrong the plan, no slice the worker
//! holds is much larger than the budget allows. The first slice is open below and the last open
//! above (unless the window bounds them), so a run of any `createdAt` falls in one.

use serde::Serialize;

/// One slice of the window: `lo <= createdAt < hi`, open where `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Slice {
    pub lo: Option<i64>,
    pub hi: Option<i64>,
    /// Runs ClickHouse counted in it when it was planned.
    pub estimate: u64,
}

const MINUTE_MS: i64 = 60_000;

/// Cuts the window `[since, until)` into slices of about `target` runs from ClickHouse's per
/// minute counts (`(minute since the epoch, runs)`, in order, within the window): a slice ends
/// at the end of the minute that brings it to `target`.
pub struct Planner {
    target: u64,
    until: Option<i64>,
    current: Slice,
    out: Vec<Slice>,
}

impl Planner {
    pub fn new(since: Option<i64>, until: Option<i64>, target: u64) -> Planner {
        Planner {
            target: target.max(1),
            until,
            current: Slice {
                lo: since,
                hi: None,
                estimate: 0,
            },
            out: Vec::new(),
        }
    }

    /// The runs ClickHouse counted in one minute, minutes in order.
    pub fn push(&mut self, minute: i64, runs: u64) {
        self.current.estimate += runs;
        if self.current.estimate >= self.target {
            let cut = (minute + 1) * MINUTE_MS;
            if inside(cut, self.current.lo, self.until) {
                self.current.hi = Some(cut);
                self.out.push(self.current);
                self.current = Slice {
                    lo: Some(cut),
                    hi: None,
                    estimate: 0,
                };
            }
        }
    }

    pub fn finish(mut self) -> Vec<Slice> {
        self.current.hi = self.until;
        self.out.push(self.current);
        self.out
    }
}

/// [`Planner`] over all of `minutes` at once.
pub fn plan(
    minutes: impl IntoIterator<Item = (i64, u64)>,
    since: Option<i64>,
    until: Option<i64>,
    target: u64,
) -> Vec<Slice> {
    let mut planner = Planner::new(since, until, target);
    for (minute, runs) in minutes {
        planner.push(minute, runs);
    }
    planner.finish()
}

fn inside(cut: i64, lo: Option<i64>, hi: Option<i64>) -> bool {
    lo.is_none_or(|lo| cut > lo) && hi.is_none_or(|hi| cut < hi)
}

/// Cuts `slice`, which holds more runs than a slice may, into pieces of about `target` runs by
/// the `createdAt` (epoch ms) of the runs read from it before the reader stopped (`seen`); the
/// last piece keeps the rest of the slice. `None` when it cannot be cut: every run read shares
/// one millisecond and the slice is that millisecond.
pub fn split(slice: &Slice, mut seen: Vec<i64>, target: u64) -> Option<Vec<Slice>> {
    seen.sort_unstable();
    let step = (target as usize).min(seen.len() / 2).max(1);
    // Every `step`-th run read, and just past the last one read: what was not read yet (the
    // COPY stopped) is likely beyond it, and a millisecond holding many runs ends up alone.
    let mut cuts: Vec<i64> = seen
        .iter()
        .skip(step)
        .step_by(step)
        .copied()
        .chain(seen.first().copied())
        .chain(seen.last().map(|l| l + 1))
        .filter(|c| inside(*c, slice.lo, slice.hi))
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    if cuts.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut lo = slice.lo;
    for cut in cuts {
        out.push(Slice {
            lo,
            hi: Some(cut),
            estimate: 0,
        });
        lo = Some(cut);
    }
    out.push(Slice {
        lo,
        hi: slice.hi,
        estimate: 0,
    });
    Some(out)
}

/// The months (as `YYYYMM`) of ClickHouse's partitions, when the table is partitioned by month
/// (`toYYYYMM(created_at)`, as shipped); `None` otherwise.
pub fn months(partitions: &[String]) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for p in partitions {
        let m: u32 = p.parse().ok().filter(|_| p.len() == 6)?;
        if !(1..=12).contains(&(m % 100)) {
            return None;
        }
        out.push(m);
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

/// `[start, end)` of month `yyyymm` in epoch milliseconds (UTC).
pub fn month_range(yyyymm: u32) -> (i64, i64) {
    let (y, m) = ((yyyymm / 100) as i64, (yyyymm % 100) as i64);
    let next = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let ms = |(y, m): (i64, i64)| days_from_civil(y, m, 1) * 86_400_000;
    (ms((y, m)), ms(next))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `timestamp` SQL for epoch milliseconds, exact (COPY takes no parameters).
pub fn pg_time(ms: i64) -> String {
    format!("(timestamp '1970-01-01' + interval '1 millisecond' * {ms})")
}

/// The Postgres condition selecting the slice's runs.
pub fn pg_condition(slice: &Slice) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(lo) = slice.lo {
        out.push(format!("\"createdAt\" >= {}", pg_time(lo)));
    }
    if let Some(hi) = slice.hi {
        out.push(format!("\"createdAt\" < {}", pg_time(hi)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(lo: Option<i64>, hi: Option<i64>) -> (Option<i64>, Option<i64>) {
        (lo, hi)
    }

    #[test]
    fn slices_cover_the_window_without_gaps_and_hold_about_the_target() {
        // 10 minutes of 30 runs each, from minute 100.
        let minutes: Vec<(i64, u64)> = (100..110).map(|m| (m, 30)).collect();
        let plan_open = plan(minutes.clone(), None, None, 70);
        let bounds: Vec<_> = plan_open.iter().map(|p| s(p.lo, p.hi)).collect();
        assert_eq!(
            bounds,
            vec![
                s(None, Some(103 * MINUTE_MS)),
                s(Some(103 * MINUTE_MS), Some(106 * MINUTE_MS)),
                s(Some(106 * MINUTE_MS), Some(109 * MINUTE_MS)),
                s(Some(109 * MINUTE_MS), None),
            ]
        );
        assert_eq!(plan_open.iter().map(|p| p.estimate).sum::<u64>(), 300);
        // A window bounds the first and last slice; a cut never lands on or outside it.
        let w = plan(minutes, Some(100 * MINUTE_MS), Some(106 * MINUTE_MS), 90);
        let bounds: Vec<_> = w.iter().map(|p| s(p.lo, p.hi)).collect();
        assert_eq!(
            bounds,
            vec![
                s(Some(100 * MINUTE_MS), Some(103 * MINUTE_MS)),
                s(Some(103 * MINUTE_MS), Some(106 * MINUTE_MS)),
            ]
        );
        // Nothing in ClickHouse: one slice, the whole window.
        assert_eq!(plan(Vec::new(), None, None, 10).len(), 1);
    }

    #[test]
    fn an_overfull_slice_is_cut_by_what_was_read_and_keeps_its_ends() {
        let slice = Slice {
            lo: None,
            hi: Some(1_000),
            estimate: 5,
        };
        let seen: Vec<i64> = (0..100).rev().map(|i| i * 3).collect();
        let pieces = split(&slice, seen, 25).unwrap();
        assert_eq!(pieces.first().unwrap().lo, None);
        assert_eq!(pieces.last().unwrap().hi, Some(1_000));
        for w in pieces.windows(2) {
            assert_eq!(w[0].hi, w[1].lo, "no gap, no overlap");
        }
        // Before the first run read, every 25th, past the last one read.
        let cuts: Vec<_> = pieces.iter().skip(1).map(|p| p.lo.unwrap()).collect();
        assert_eq!(cuts, [0, 75, 150, 225, 298], "{pieces:?}");
        // Every run in one millisecond: that millisecond apart.
        let tie = split(&slice, vec![500; 50], 10).unwrap();
        let bounds: Vec<_> = tie.iter().map(|p| s(p.lo, p.hi)).collect();
        assert_eq!(
            bounds,
            vec![
                s(None, Some(500)),
                s(Some(500), Some(501)),
                s(Some(501), Some(1_000))
            ]
        );
        // A slice that is that one millisecond cannot be cut.
        let one = Slice {
            lo: Some(500),
            hi: Some(501),
            estimate: 0,
        };
        assert_eq!(split(&one, vec![500; 50], 10), None);
    }

    #[test]
    fn months_and_their_bounds() {
        assert_eq!(
            months(&["202611".into(), "202512".into(), "202611".into()]),
            Some(vec![202512, 202611])
        );
        assert_eq!(months(&["tuple()".into()]), None);
        assert_eq!(months(&["20261101".into()]), None);
        // 2026-11-01T00:00:00Z and 2026-12-01T00:00:00Z.
        assert_eq!(month_range(202611), (1_793_491_200_000, 1_796_083_200_000));
        assert_eq!(month_range(202612).1, 1_798_761_600_000);
        assert_eq!(month_range(196912).0, -2_678_400_000);
    }

    #[test]
    fn postgres_bounds_are_exact_milliseconds() {
        let c = pg_condition(&Slice {
            lo: Some(1_793_491_200_123),
            hi: None,
            estimate: 0,
        });
        assert_eq!(
            c,
            vec![
                "\"createdAt\" >= (timestamp '1970-01-01' + interval '1 millisecond' * 1793491200123)"
                    .to_string()
            ]
        );
    }
}
