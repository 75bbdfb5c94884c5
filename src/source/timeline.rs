//! A server's timeline history (`TIMELINE_HISTORY`) and where two histories part.
//!
//! A promotion starts a new timeline. Its history file lists every ancestor timeline with the WAL
//! position where it ended — the *switch point*, where the next timeline began. WAL before the
//! switch point is shared history; after it, each timeline wrote its own. So a worker that read
//! timeline 1 up to position A, when the primary is now on timeline 2 forked at F, read
//! `(F, A]` from a history the new primary never had when `A > F`.
//!
//! Pure: the replication session that asks is in `primary_session`.

/// One ancestor timeline and where it ended in this history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ancestor {
    pub timeline: u32,
    /// The switch point: the first position of the next timeline (`XLogRecPtr`).
    pub end: u64,
}

/// Reads a timeline history file (`<parent tli>\t<switch point>\t<reason>` per line; blank lines
/// and `#` comments skipped), oldest ancestor first.
pub fn parse_history(content: &[u8]) -> Result<Vec<Ancestor>, String> {
    let text = String::from_utf8_lossy(content);
    let mut out: Vec<Ancestor> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(tli), Some(end)) = (fields.next(), fields.next()) else {
            return Err(format!("unreadable timeline history line {line:?}"));
        };
        let timeline = tli
            .parse::<u32>()
            .map_err(|_| format!("unreadable timeline {tli:?} in the history"))?;
        let end = parse_lsn(end).ok_or_else(|| format!("unreadable switch point {end:?}"))?;
        if out
            .last()
            .is_some_and(|a| a.timeline >= timeline || a.end > end)
        {
            return Err(format!(
                "timeline history out of order at {line:?} (timelines and switch points only grow)"
            ));
        }
        out.push(Ancestor { timeline, end });
    }
    Ok(out)
}

fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// A timeline with the ancestors it descends from.
#[derive(Debug, Clone, Copy)]
pub struct Lineage<'a> {
    pub timeline: u32,
    pub ancestors: &'a [Ancestor],
}

impl Lineage<'_> {
    /// Where `timeline` ends in this lineage: its switch point, or never for the current one.
    fn end_of(&self, timeline: u32) -> Option<u64> {
        if timeline == self.timeline {
            return Some(u64::MAX);
        }
        self.ancestors
            .iter()
            .find(|a| a.timeline == timeline)
            .map(|a| a.end)
    }
}

/// The position up to which `a` and `b` share their WAL: the switch point of the newest timeline
/// both contain, where the first of them left it (`u64::MAX` when they are the same timeline; 0
/// when they share nothing, which one cluster's timelines cannot do).
pub fn fork(a: Lineage<'_>, b: Lineage<'_>) -> u64 {
    let mut common: Vec<u32> = a
        .ancestors
        .iter()
        .map(|x| x.timeline)
        .chain([a.timeline])
        .filter(|t| b.end_of(*t).is_some())
        .collect();
    common.sort_unstable();
    match common.last() {
        Some(&t) => a.end_of(t).unwrap_or(0).min(b.end_of(t).unwrap_or(0)),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_file_is_read_oldest_first() {
        let file =
            b"1\t0/3000158\tno recovery target specified\n\n2\t0/5000000\tat restore point\n";
        assert_eq!(
            parse_history(file).unwrap(),
            vec![
                Ancestor {
                    timeline: 1,
                    end: 0x3000158
                },
                Ancestor {
                    timeline: 2,
                    end: 0x5000000
                },
            ]
        );
        assert!(parse_history(b"# comment\n").unwrap().is_empty());
        assert!(parse_history(b"1 zz\n").is_err());
        assert!(parse_history(b"2\t0/5\tx\n1\t0/6\tx\n").is_err());
    }

    #[test]
    fn the_fork_is_where_the_recorded_timeline_left_the_new_history() {
        let h3 = [
            Ancestor {
                timeline: 1,
                end: 100,
            },
            Ancestor {
                timeline: 2,
                end: 200,
            },
        ];
        let line = |timeline, ancestors| Lineage {
            timeline,
            ancestors,
        };
        // Recorded timeline 1, the server on 3: timeline 1 ended at 100 in its history.
        assert_eq!(fork(line(1, &[]), line(3, &h3)), 100);
        assert_eq!(fork(line(2, &h3[..1]), line(3, &h3)), 200);
        assert_eq!(fork(line(3, &h3), line(3, &h3)), u64::MAX);
        // A sibling: timeline 3 forked from 1 at 150, after timeline 2 had forked at 100.
        let sibling = [Ancestor {
            timeline: 1,
            end: 150,
        }];
        assert_eq!(fork(line(2, &h3[..1]), line(3, &sibling)), 100);
        // Nothing shared (a history the recorded timeline is not part of at all).
        assert_eq!(fork(line(7, &[]), line(3, &h3)), 0);
    }
}
