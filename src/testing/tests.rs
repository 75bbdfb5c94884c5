//! The test support's own checks: the Prometheus parser on the exporter's shapes (labels that
//! hold spaces, braces and escapes; histograms), the pgoutput helpers' bytes, and `poll`'s
//! timeout.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{metrics, pgoutput, runs, wait};
use crate::source::pgoutput::{Cell, Insert, Message, ReplicaIdentity, decode};

const SCRAPE: &str = r#"# HELP runs_replicator_leader 1 while this instance holds the lock.
# TYPE runs_replicator_leader gauge
runs_replicator_leader 1
runs_replicator_batches_total{result="ok"} 12
runs_replicator_batches_total{result="failed"} 3
runs_replicator_rows_rejected_total{table="task_runs_v2",reason="a \"quoted\" } brace"} 2
runs_replicator_build_info{version="0.1.0",note="line\nbreak \\ slash"} 1

runs_replicator_flush_duration_seconds_bucket{le="0.005"} 4
runs_replicator_flush_duration_seconds_bucket{le="0.5"} 9
runs_replicator_flush_duration_seconds_bucket{le="+Inf"} 10
runs_replicator_flush_duration_seconds_sum 1.25
runs_replicator_flush_duration_seconds_count 10
"#;

#[test]
fn samples_skip_comments_and_blank_lines_and_unescape_labels() {
    let all: Vec<_> = metrics::samples(SCRAPE).collect();
    assert_eq!(all.len(), 10);
    assert_eq!(
        (all[0].name, all[0].labels.len(), all[0].value),
        ("runs_replicator_leader", 0, 1.0)
    );
    assert_eq!(all[3].label("table"), Some("task_runs_v2"));
    assert_eq!(all[3].label("reason"), Some(r#"a "quoted" } brace"#));
    assert_eq!(all[3].value, 2.0);
    assert_eq!(all[4].label("note"), Some("line\nbreak \\ slash"));
    assert_eq!(all[4].label("missing"), None);
}

#[test]
fn values_sums_and_label_lookups() {
    assert_eq!(metrics::value(SCRAPE, "runs_replicator_leader"), Some(1.0));
    assert_eq!(
        metrics::value(SCRAPE, "runs_replicator_batches_total"),
        Some(12.0),
        "the first label set"
    );
    assert_eq!(
        metrics::value_with(
            SCRAPE,
            "runs_replicator_batches_total",
            &[("result", "failed")]
        ),
        Some(3.0)
    );
    assert_eq!(
        metrics::value_with(SCRAPE, "runs_replicator_batches_total", &[("result", "x")]),
        None
    );
    assert_eq!(metrics::value(SCRAPE, "runs_replicator_lead"), None);
    assert_eq!(metrics::sum(SCRAPE, "runs_replicator_batches_total"), 15.0);
    assert_eq!(metrics::sum(SCRAPE, "runs_replicator_missing_total"), 0.0);
}

#[test]
fn histogram_buckets_in_order_with_inf() {
    assert_eq!(
        metrics::buckets(SCRAPE, "runs_replicator_flush_duration_seconds"),
        [(0.005, 4.0), (0.5, 9.0), (f64::INFINITY, 10.0)]
    );
    assert_eq!(
        metrics::value(SCRAPE, "runs_replicator_flush_duration_seconds_sum"),
        Some(1.25)
    );
}

#[test]
fn text_relation_and_tuple_decode_back() {
    let rel = pgoutput::text_relation(16_400, "public", "task_run_v2", &["id", "status"]);
    let Ok(Message::Relation(back)) = decode(&pgoutput::encode(&Message::Relation(rel.clone())))
    else {
        panic!("a Relation")
    };
    assert_eq!(back, rel);
    assert_eq!(back.replica_identity, ReplicaIdentity::Full);
    assert!(back.columns.iter().all(|c| c.is_key && c.type_oid == 25));

    let values = [Some("run_1".to_string()), None];
    let insert = Message::Insert(Insert {
        relation_id: 16_400,
        new: pgoutput::text_tuple(&values),
    });
    let data: Bytes = pgoutput::encode(&insert);
    assert_eq!(decode(&data), Ok(insert.clone()));
    let Message::Insert(i) = insert else {
        unreachable!()
    };
    assert_eq!(i.new.0[1], Cell::Null);
}

#[test]
fn run_row_builders_set_only_their_field() {
    let base = runs::run_row("r");
    let built = runs::run_row("r")
        .with_status("EXECUTING")
        .with_version(7)
        .deleted();
    let mut expected = base.clone();
    expected.status = "EXECUTING".into();
    expected._version = 7;
    expected._is_deleted = 1;
    assert_eq!(built, expected);
    let completed = runs::completed_run_row("r");
    assert_eq!(completed.run_id, "r");
    assert_eq!(completed.status, "COMPLETED_SUCCESSFULLY");
    assert_eq!(completed.environment_id, base.environment_id);
}

#[tokio::test]
async fn poll_returns_the_first_ok_or_the_last_err() {
    let mut n = 0;
    let got: Result<u32, u32> = wait::poll(Duration::from_secs(5), Duration::ZERO, || {
        n += 1;
        let seen = n;
        async move { if seen == 3 { Ok(seen) } else { Err(seen) } }
    })
    .await;
    assert_eq!(got, Ok(3));

    let start = Instant::now();
    let mut n = 0;
    let got: Result<(), u32> =
        wait::poll(Duration::from_millis(30), Duration::from_millis(5), || {
            n += 1;
            let seen = n;
            async move { Err(seen) }
        })
        .await;
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert_eq!(got, Err(n), "the last observation");
    assert!(n > 1);
}

#[tokio::test]
#[should_panic(expected = "timed out after 10ms waiting for nothing")]
async fn wait_for_panics_with_what_it_waited_for() {
    wait::wait_for("nothing", Duration::from_millis(10), || async {
        None::<()>
    })
    .await;
}
