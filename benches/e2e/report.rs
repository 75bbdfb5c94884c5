//! The report: the table of every figure, written to stdout and between the markers of
//! BENCHMARKS.md.

use std::fmt::Write as _;

use super::steady::Steady;
use super::{Args, Backlog, Drain};

const BEGIN: &str = "<!-- bench:begin (scripts/bench.sh rewrites this part) -->";
const END: &str = "<!-- bench:end -->";

/// Replaces the part of `out` between the markers (the rest is prose kept as it is), or writes
/// a new file.
pub(crate) fn write_report(out: &std::path::Path, report: &str) {
    let block = format!("{BEGIN}\n{report}{END}\n");
    let text = match std::fs::read_to_string(out) {
        Ok(old) => match (old.find(BEGIN), old.find(END)) {
            (Some(b), Some(e)) if b < e => {
                format!(
                    "{}{block}{}",
                    &old[..b],
                    old[e + END.len()..].trim_start_matches('\n')
                )
            }
            _ => format!("{old}\n{block}"),
        },
        Err(_) => format!("# Benchmarks\n\n{block}"),
    };
    std::fs::write(out, text).unwrap();
}

pub(crate) fn render(
    a: &Args,
    b: &Backlog,
    drains: &[Drain],
    steadies: &[Steady],
    rss: Option<&(Backlog, Drain)>,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Backlog: {} changes ({} inserts, then {} updates, both tables, one transaction each), loaded in {:.1} s.",
        b.changes,
        b.changes / 2,
        b.changes / 2,
        b.load_s
    );
    let extra =
        |name: &str, v: Option<u64>| v.map_or(String::new(), |v| format!(", batch.{name} {v}"));
    let _ = writeln!(
        s,
        "Worker settings: batch.max_rows {}, batch.flush_interval_ms {}, batch.max_inflight {}{}{} (otherwise the defaults).{}\n",
        a.max_rows,
        a.flush_interval_ms,
        a.max_inflight,
        extra("min_insert_interval_ms", a.min_insert_interval_ms),
        extra("max_bytes", a.max_bytes),
        if a.label.is_empty() {
            String::new()
        } else {
            format!(" Build: {}.", a.label)
        }
    );
    let _ = writeln!(
        s,
        "| drain | seconds | changes/s | ÷ pg_recvlogical | process CPU s (kernel) | CPU µs per change | CPU s per s of drain | peak RSS MiB | walsender CPU s | ClickHouse CPU s | notes |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut row = |d: &Drain, changes: u32, name: &str, ratio: &str, note: &str| {
        let _ = writeln!(
            s,
            "| {name} | {:.2} | {:.0} | {ratio} | {:.2} ({:.2}) | {:.2} | {:.3} | {:.0} | {:.2} | {:.2} | {note} |",
            d.seconds,
            d.rate,
            d.cpu_s,
            d.sys_s,
            d.cpu_s * 1e6 / changes as f64,
            d.cpu_s / d.seconds,
            d.peak_rss_mib,
            d.walsender_cpu_s,
            d.clickhouse_cpu_s,
        );
    };
    let recv_rate = drains[0].rate;
    for d in drains {
        row(
            d,
            b.changes,
            &d.name,
            &format!("{:.2}", d.rate / recv_rate),
            &d.note,
        );
    }
    if let Some((big, d)) = rss {
        let name = format!("worker → ClickHouse, {} changes", big.changes);
        let note = format!("{} (backlog loaded in {:.0} s)", d.note, big.load_s);
        row(d, big.changes, &name, "–", &note);
    }
    let ms = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("≤ {:.0}", v * 1000.0));
    let _ = writeln!(
        s,
        "\nSteady loads, {} s each: commit-to-visible latency (client clock at commit → first poll, every {} ms, that shows the change); \
         the worker's own histogram (`runs_replicator_commit_to_clickhouse_seconds`, commit → insert accepted, bucket bounds); \
         batches written per second (each one insert per table it has rows for) and rows per batch; one batch insert (runs, then payloads); \
         CPU of the worker and how often its threads slept and were woken (voluntary context switches), of ClickHouse, Postgres (the load's sessions included) and the load driver, and the cores the whole machine kept busy, over the load. \
         The `--null-sink` row is the same load through a worker that encodes its batches and sends them nowhere: \
         what the worker adds to a change's latency when ClickHouse answers at once (only its histogram measures it).\n",
        a.steady_secs, a.poll_ms
    );
    let _ = writeln!(
        s,
        "| worker | changes/s (achieved) | p50 ms | p99 ms | max ms | histogram p50 / p99 ms | inserts/s | rows per insert | insert mean / p99 ms | worker CPU s per s | CPU µs per change | worker sleeps per change | CPU s per s: ClickHouse / Postgres / load driver | machine busy cores |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let opt =
        |v: Option<f64>, digits: usize| v.map_or("–".to_string(), |v| format!("{v:.digits$}"));
    for st in steadies {
        let _ = writeln!(
            s,
            "| {} | {} ({:.0}) | {} | {} | {} | {} / {} | {:.1} | {:.0} | {:.0} / {} | {:.3} | {:.1} | {} | {} / {} / {} | {} |",
            st.name,
            st.target_rate,
            st.achieved_rate,
            opt(st.p50_ms, 0),
            opt(st.p99_ms, 0),
            opt(st.max_ms, 0),
            ms(st.hist_p50),
            ms(st.hist_p99),
            st.inserts_per_s,
            st.rows_per_insert,
            st.flush_mean * 1000.0,
            ms(st.flush_p99),
            st.worker_cpu_per_s,
            st.cpu_us_per_change,
            opt(st.sleeps_per_change, 2),
            opt(st.clickhouse_cpu_per_s, 2),
            opt(st.postgres_cpu_per_s, 2),
            opt(st.driver_cpu_per_s, 2),
            opt(st.machine_busy, 2),
        );
    }
    if !a.machine.is_empty() {
        let _ = writeln!(s, "\nMachine: {}", a.machine);
    }
    s
}
