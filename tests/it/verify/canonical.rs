//! The canonical row hash computed by the worker equals the one ClickHouse computes over what it
//! stored, for tricky values; where the JSON emulation does not cover a value, the row-level
//! comparison with ClickHouse's own rendering still finds the row in sync.

use std::sync::Arc;

use runs_replicator::sink::verify_reads::{Scope, VerifyReads};
use runs_replicator::testing::runs::run_row;
use runs_replicator::verify::canonical;
use runs_replicator::verify::compare::{self, Rendered};

use super::{load, plant};
use crate::support::{TestEnv, process};

/// (run id suffix, output JSON) pairs ClickHouse accepts; the emulation covers all but the last.
const OUTPUTS: &[&str] = &[
    "{}",
    r#"{"data":null}"#,
    r#"{"data":{"b":1.0,"a":null,"c":{"d":{}}}}"#,
    r#"{"data":[true,1,1.5]}"#,
    r#"{"data":[true,"x",null]}"#,
    r#"{"data":[[true],["a"]]}"#,
    r#"{"data":{"n":1e21,"m":1e-7,"k":0.000001,"big":18446744073709551616,"neg":-0.0}}"#,
    r#"{"data":{"s":"é😀\u0001\n\t\"\\/ </script> \u2028"}}"#,
    r#"{"data":{"nested":[{"y":1,"x":{"z":null,"w":[1,"a"]}},{}]}}"#,
    r#"{"data":"2024-01-02T03:04:05.000Z"}"#,
    r#"{"data":{"a b":1,"a":{"x":2},"a0":3,"a/":4}}"#,
    r#"{"data":9007199254740993}"#,
    // Not covered: a dotted key is a path in ClickHouse.
    r#"{"data":{"a.b":1,"a":{"c":2}}}"#,
];

#[tokio::test]
async fn the_canonical_hash_equals_clickhouses_for_tricky_rows() {
    let env = TestEnv::new("vf_canon").await;
    let config = load(&env.write_config(process::free_port(), ""));
    let mut rows = Vec::new();
    for (i, output) in OUTPUTS.iter().enumerate() {
        let mut r = run_row(&format!("run_canon_{i:02}"));
        r.output = output.to_string();
        r.error = if i % 2 == 0 {
            r#"{"data":{"name":"Error","message":"m:1;2","stack":null}}"#.into()
        } else {
            "{}".into()
        };
        r.tags = vec!["a:b".into(), "".into(), "x;y".into(), "é".into()];
        r.bulk_action_group_ids = if i % 3 == 0 { vec![] } else { vec!["g".into()] };
        r.cost_in_cents = [0.1, 1e300, 5e-324, 0.0, 123.456][i % 5];
        r.base_cost_in_cents = i as f64 / 3.0;
        r.created_at = [1_764_000_000_123, -2_208_988_800_000, 10_413_792_000_000][i % 3];
        r.completed_at = (i % 2 == 0).then_some(1_764_000_001_999);
        r.max_duration_in_seconds = (i % 2 == 1).then_some(u32::MAX);
        r.is_warm_start = [None, Some(0), Some(1)][i % 3];
        r.attempt = 255;
        r.usage_duration_ms = u32::MAX;
        r.status = "COMPLETED_SUCCESSFULLY".into();
        r.friendly_id = format!("f:{i};\u{0}x");
        r._version = 7;
        rows.push(r);
    }
    plant(&config, rows.clone()).await;

    let client = runs_replicator::sink::client::build(&config).unwrap();
    let reads = Arc::new(VerifyReads::new(&config, client));
    let digest_sql = canonical::digest_sql(None);
    let theirs: std::collections::HashMap<String, u64> = reads
        .run_digests(&Scope::default(), "toUInt32(0)", &[0], &digest_sql)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(theirs.len(), rows.len(), "every row stored");
    let uncovered = rows.len() - 1;
    for (i, row) in rows.iter().enumerate() {
        let ours = canonical::digest(row, None);
        let equal = theirs[&row.run_id] == ours;
        if i == uncovered {
            assert!(!equal, "a dotted key is not emulated: {}", row.output);
        } else {
            assert!(
                equal,
                "run {}: the worker's hash differs from ClickHouse's\nworker text: {}",
                row.run_id,
                canonical::row_text(row, None)
            );
        }
    }
    println!(
        "checked: {} rows, ClickHouse's xxHash64 of the canonical text equals the worker's for {} \
         (the dotted key's row differs, as expected)",
        rows.len(),
        uncovered
    );

    // Row level: what ClickHouse shows compares equal to the rows written, the uncovered JSON
    // value through ClickHouse's own rendering of it.
    let ids: Vec<String> = rows.iter().map(|r| r.run_id.clone()).collect();
    let actual = reads.visible_rows(&Scope::default(), &ids).await.unwrap();
    let mut rendered = Rendered::new();
    let asks: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            let same: Vec<_> = actual
                .iter()
                .filter(|a| a.run_id == r.run_id)
                .cloned()
                .collect();
            compare::json_to_render(r, &same)
                .into_iter()
                .filter(|(c, _)| *c == "output")
                .map(|(_, t)| t.to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        asks,
        [OUTPUTS[uncovered]],
        "only the uncovered value is asked for"
    );
    let out = reads.render_json("output", &asks).await.unwrap();
    rendered.extend(asks.into_iter().zip(out));
    for row in &rows {
        let same: Vec<_> = actual
            .iter()
            .filter(|a| a.run_id == row.run_id)
            .cloned()
            .collect();
        // The JSON text ClickHouse returns for the row is the one its hash covers.
        assert_eq!(same.len(), 1);
        let finding = compare::compare(&row.run_id, Some(row), &same, None, &rendered);
        assert_eq!(finding, None, "run {}", row.run_id);
    }
    println!(
        "checked: every row compares equal column by column, the dotted key through ClickHouse's rendering"
    );
}
