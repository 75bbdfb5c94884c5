use super::checkpoint::{ChunkDone, JobRecord, JobSpec};
use super::chunks::{Chunk, TablePlan, Window, copy_sql, ids_copy_sql};
use super::copier::RowAdder;
use super::report::{Outcome, Summary, TableSummary};
use crate::pipeline::transaction::version;
use crate::rows::Col;
use crate::source::relation::TableBinding;
use crate::transform::TransformOptions;

fn spec() -> JobSpec {
    JobSpec {
        source: "default".into(),
        database: "127.0.0.1:5432/trigger".into(),
        schema: "public".into(),
        tables: vec!["TaskRun".into(), "task_run_v2".into()],
        window: Window {
            since: Some("2026-11-01 00:00:00.000000".into()),
            until: None,
            updated_since: None,
            shard: None,
        },
        payloads: false,
        owner: None,
    }
}

#[test]
fn chunk_plan_partitions_the_whole_key_space() {
    // Every 3rd id of 8, and the last.
    let plan = TablePlan::from_boundaries(
        "TaskRun",
        vec![("c".into(), 3), ("f".into(), 6), ("h".into(), 8)],
    );
    assert_eq!(plan.bounds, ["c", "f", "h"]);
    assert_eq!(plan.planned_rows, [3, 3, 2, 0]);
    assert_eq!(plan.planned_total(), 8);
    let chunks = plan.chunks();
    let ranges: Vec<(Option<&str>, Option<&str>)> = chunks
        .iter()
        .map(|c| (c.lo.as_deref(), c.hi.as_deref()))
        .collect();
    assert_eq!(
        ranges,
        [
            (None, Some("c")),
            (Some("c"), Some("f")),
            (Some("f"), Some("h")),
            // Open above: a run inserted after planning with a larger id still has a chunk.
            (Some("h"), None),
        ]
    );
    assert_eq!(
        chunks.iter().map(|c| c.index).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
}

#[test]
fn a_last_id_on_a_chunk_boundary_comes_once_and_an_empty_table_is_one_open_chunk() {
    let plan =
        TablePlan::from_boundaries("t", vec![("b".into(), 2), ("d".into(), 4), ("d".into(), 4)]);
    assert_eq!(plan.bounds, ["b", "d"]);
    assert_eq!(plan.planned_rows, [2, 2, 0]);
    let empty = TablePlan::from_boundaries("t", vec![]);
    let chunks = empty.chunks();
    assert_eq!(chunks.len(), 1);
    assert_eq!((chunks[0].lo.clone(), chunks[0].hi.clone()), (None, None));
}

#[test]
fn chunk_plans_survive_the_checkpoint_format() {
    let job = JobRecord {
        spec: spec(),
        epoch: 3,
        plans: vec![TablePlan::from_boundaries(
            "TaskRun",
            vec![("a'b".into(), 5)],
        )],
    };
    let text = serde_json::to_string(&job).unwrap();
    let back: JobRecord = serde_json::from_str(&text).unwrap();
    assert_eq!(back, job);
    assert_eq!(back.chunks(), job.chunks());
    let done = ChunkDone {
        lsn: 0x1_0000_0042,
        rows_read: 10,
        rows_written: 9,
        skipped: 1,
        rejected: 0,
        seconds: 0.5,
    };
    let back: ChunkDone = serde_json::from_str(&serde_json::to_string(&done).unwrap()).unwrap();
    assert_eq!(back, done);
}

#[test]
fn copy_sql_selects_every_column_in_order_with_quoted_bounds_and_window() {
    let chunk = Chunk {
        table: "TaskRun".into(),
        index: 1,
        lo: Some("run_a'1".into()),
        hi: Some("run_b".into()),
        planned_rows: 10,
    };
    let window = Window {
        since: Some("2026-11-01 00:00:00.000000".into()),
        until: Some("2026-11-02 00:00:00.000000".into()),
        updated_since: None,
        shard: None,
    };
    let sql = copy_sql("public", &chunk, &window);
    let columns: Vec<String> = Col::ALL
        .iter()
        .map(|c| format!("\"{}\"", c.pg_name()))
        .collect();
    assert_eq!(
        sql,
        format!(
            "COPY (SELECT {} FROM \"public\".\"TaskRun\" WHERE id > 'run_a''1' AND id <= 'run_b' \
             AND \"createdAt\" >= '2026-11-01 00:00:00.000000'::timestamp \
             AND \"createdAt\" < '2026-11-02 00:00:00.000000'::timestamp) TO STDOUT",
            columns.join(", ")
        )
    );
    let open = Chunk {
        lo: None,
        hi: None,
        ..chunk
    };
    assert!(
        copy_sql("public", &open, &Window::default())
            .ends_with("FROM \"public\".\"TaskRun\") TO STDOUT")
    );
}

#[test]
fn ids_copy_sql_selects_the_listed_runs_quoted_within_the_window() {
    let ids = vec!["run_a".to_string(), "run_b'x".to_string()];
    let window = Window {
        since: Some("2026-11-01 00:00:00.000000".into()),
        until: None,
        updated_since: None,
        shard: None,
    };
    let sql = ids_copy_sql("public", "task_run_v2", &ids, Some(&window));
    assert!(
        sql.ends_with(
            "FROM \"public\".\"task_run_v2\" WHERE id IN ('run_a', 'run_b''x') \
             AND \"createdAt\" >= '2026-11-01 00:00:00.000000'::timestamp) TO STDOUT"
        ),
        "{sql}"
    );
    assert!(sql.starts_with("COPY (SELECT \"id\", "), "{sql}");
    let any = ids_copy_sql("public", "TaskRun", &ids[..1], None);
    assert!(any.ends_with("WHERE id IN ('run_a')) TO STDOUT"), "{any}");
}

#[test]
fn job_ids_are_stable_and_name_what_is_copied() {
    let a = spec();
    // A fixed value: a job id must not change between releases, or resumes would start over.
    assert_eq!(a.id(), spec().id());
    assert_eq!(a.id().len(), 16);
    let mut reordered = spec();
    reordered.tables.reverse();
    assert_eq!(reordered.id(), a.id(), "table order does not matter");
    for change in [
        |s: &mut JobSpec| s.payloads = true,
        |s: &mut JobSpec| s.tables = vec!["TaskRun".into()],
        |s: &mut JobSpec| s.window.until = Some("2026-12-01 00:00:00.000000".into()),
        |s: &mut JobSpec| s.database = "other:5432/trigger".into(),
        |s: &mut JobSpec| s.source = "run_ops".into(),
        // A copy a stream owes is a job of its own: no operator's job stands in for it.
        |s: &mut JobSpec| s.owner = Some("7301/trigger/slot/bootstrap-1".into()),
    ] {
        let mut other = spec();
        change(&mut other);
        assert_ne!(other.id(), a.id(), "{other:?}");
    }
}

#[test]
fn job_id_of_a_known_spec_never_changes() {
    // Also with `owner` added: absent for an operator's job, it leaves the id as it was.
    assert_eq!(spec().id(), "e2b710637dba1c12");
}

#[test]
fn a_job_already_complete_names_itself_and_its_l() {
    let mut s = Summary::new("abc".into(), Outcome::AlreadyComplete, Some(0x1_0000_0010));
    let text = s.render_text();
    assert!(
        text.contains("backfill job abc is already complete: its rows were copied at L = 1/10;"),
        "{text}"
    );
    s.lsn_highest = Some("1/20".into());
    let text = s.render_text();
    assert!(text.contains("L = 1/10 to 1/20"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&s.render_json()).unwrap();
    assert_eq!(
        (json["lsn"].as_str(), json["lsn_highest"].as_str()),
        (Some("1/10"), Some("1/20"))
    );
}

/// One COPY text row with every column: `values` override the defaults.
fn copy_line(id: &str, overrides: &[(Col, &str)]) -> Vec<u8> {
    let fields: Vec<String> = Col::ALL
        .iter()
        .map(|c| {
            if let Some((_, v)) = overrides.iter().find(|(o, _)| o == c) {
                return v.to_string();
            }
            match c {
                Col::Id => id.to_string(),
                Col::FriendlyId => format!("run_{id}"),
                Col::Status => "EXECUTING".into(),
                Col::TaskIdentifier => "my-task".into(),
                Col::Payload => "{\"a\": 1}".into(),
                Col::PayloadType => "application/json".into(),
                Col::TraceId | Col::SpanId => "t".into(),
                Col::RuntimeEnvironmentId => "env_1".into(),
                Col::EnvironmentType => "PRODUCTION".into(),
                Col::ProjectId => "proj_1".into(),
                Col::OrganizationId => "org_1".into(),
                Col::Queue => "q".into(),
                Col::CreatedAt | Col::UpdatedAt => "2026-11-20 10:00:00.123".into(),
                Col::IsTest => "f".into(),
                Col::UsageDurationMs | Col::Depth => "0".into(),
                Col::CostInCents | Col::BaseCostInCents => "0".into(),
                Col::OutputType => "application/json".into(),
                Col::Engine => "V2".into(),
                Col::MasterQueue => "main".into(),
                _ => "\\N".into(),
            }
        })
        .collect();
    fields.join("\t").into_bytes()
}

#[test]
fn backfilled_rows_are_stamped_generation_and_l_through_the_stream_s_transform() {
    let options = TransformOptions::default();
    let l = 0x0000_0001_2345_6789;
    for (table, generation) in [("TaskRun", 0u8), ("task_run_v2", 1u8)] {
        let binding = TableBinding::selected("public", table, generation);
        let mut adder = RowAdder::new(binding, &options, true, false, l);
        adder
            .add_line(&copy_line(
                "run_1",
                &[(Col::Output, "{\"x\": \"a\\\\tb\"}")],
            ))
            .unwrap();
        adder.add_line(&copy_line("run_2", &[])).unwrap();
        adder
            .add_line(&copy_line("run_skip", &[(Col::OrganizationId, "\\N")]))
            .unwrap();
        assert_eq!((adder.rows_read, adder.skipped), (3, 1));
        assert!(adder.bytes > 0);
        let committed = adder.take().unwrap();
        assert_eq!(adder.bytes, 0, "taking the rows frees their budget");
        assert!(
            committed.payloads.is_empty(),
            "no payload rows without --payloads"
        );
        let mut rows = committed.rows;
        let rows: Vec<_> = rows.drain().collect();
        assert_eq!(rows.len(), 2);
        for row in &rows {
            assert_eq!(row._version, version(generation, l).unwrap(), "{table}");
            assert_eq!(row._version, ((generation as u64) << 56) | l);
            assert_eq!(row._is_deleted, 0);
        }
        let run1 = rows.iter().find(|r| r.run_id == "run_1").unwrap();
        assert_eq!(run1.output, "{\"data\":{\"x\": \"a\\tb\"}}");
    }
}

#[test]
fn payload_rows_only_with_payloads() {
    let options = TransformOptions::default();
    let binding = TableBinding::selected("public", "TaskRun", 0);
    let mut with = RowAdder::new(binding.clone(), &options, true, true, 7);
    with.add_line(&copy_line("run_1", &[])).unwrap();
    assert_eq!(with.take().unwrap().payloads.len(), 1);
    // A payloads table of "" disables them whatever the flag says.
    let mut disabled = RowAdder::new(binding, &options, false, true, 7);
    disabled.add_line(&copy_line("run_1", &[])).unwrap();
    assert!(disabled.take().unwrap().payloads.is_empty());
}

#[test]
fn a_malformed_copy_row_is_an_error_naming_the_table() {
    let options = TransformOptions::default();
    let binding = TableBinding::selected("public", "TaskRun", 0);
    let mut adder = RowAdder::new(binding, &options, true, false, 7);
    let e = adder.add_line(b"only\ttwo").unwrap_err().to_string();
    assert!(
        e.contains("\"public\".\"TaskRun\"") && e.contains("fields"),
        "{e}"
    );
}

#[test]
fn summary_text_and_json() {
    let mut s = Summary::new("abc".into(), Outcome::Complete, Some(0x1_0000_0010));
    let mut t = TableSummary {
        table: "TaskRun".into(),
        chunks: 3,
        chunks_done_before: 1,
        rows_done_before: 100,
        ..TableSummary::default()
    };
    t.add(&ChunkDone {
        lsn: 1,
        rows_read: 200,
        rows_written: 199,
        skipped: 1,
        rejected: 0,
        seconds: 2.0,
    });
    s.tables.push(t);
    s.close(4.0);
    assert_eq!(s.lsn.as_deref(), Some("1/10"));
    assert_eq!(s.total.rows_read, 200);
    assert_eq!(s.total.rows_per_s, 50.0);
    assert!(!s.has_findings());
    let text = s.render_text();
    assert!(
        text.contains("L = 1/10") && text.contains("TaskRun") && text.contains("total"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&s.render_json()).unwrap();
    assert_eq!(json["tables"][0]["rows_per_s"], 100.0);
    assert_eq!(json["total"]["rows_done_before"], 100);
}
