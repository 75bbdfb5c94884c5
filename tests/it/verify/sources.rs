//! Several sources: a run present in two resolves to the higher generation's copy; `--source`
//! verifies one source's runs and leaves a run another source wins to that source; `--repair`
//! copies each source's runs with its own snapshot.

use super::{report, verify};
use crate::backfill::{backfill, summary};
use crate::support::runs::{insert, lit};
use crate::support::{TestEnv, process};

#[tokio::test]
async fn each_source_is_verified_and_the_higher_generation_wins() {
    let env = TestEnv::new("vf_sources").await;
    let other_db = env.pg.create_database("vf_sources_b").await;
    let a = env.pg_client().await;
    let b = env.pg.connect(&other_db).await;
    insert(
        &a,
        "\"TaskRun\"",
        "run_shared",
        &[("status", lit("PENDING"))],
    )
    .await;
    insert(&a, "task_run_v2", "run_a_only", &[]).await;
    insert(
        &b,
        "\"TaskRun\"",
        "run_shared",
        &[("status", lit("EXECUTING"))],
    )
    .await;
    insert(&b, "\"TaskRun\"", "run_b_only", &[]).await;
    let overrides = format!(
        "[postgres]\n[[postgres.sources]]\nname = \"runops\"\nurl = \"{}\"\ntables = [\"TaskRun\"]\n\
         generations = {{ TaskRun = 2 }}\nslot = \"{}_b\"\npublication = \"{}_b\"\n",
        env.pg.url(&other_db),
        env.slot,
        env.publication
    );
    let path = env.write_config(process::free_port(), &overrides);
    // The backfill copies the first source only: ClickHouse has its copy of run_shared.
    summary(&backfill(
        &path,
        &["--source", "default", "--payloads", "--format", "json"],
    ));

    let out = verify(&path, &["--format", "json"]);
    let r = report(&out);
    println!("every source: {}", r["drifted"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(r["sources"], serde_json::json!(["default", "runops"]));
    assert_eq!(r["drift"]["runs"], 2);
    let shared = &r["drifted"][1];
    assert_eq!(shared["run_id"], "run_shared");
    assert_eq!(shared["columns"][0]["column"], "status");
    assert_eq!(
        shared["columns"][0]["expected"], "EXECUTING",
        "the higher generation's copy"
    );
    assert_eq!(r["drifted"][0]["run_id"], "run_b_only");
    assert_eq!(
        r["drifted"][0]["kinds"],
        serde_json::json!(["missing", "missing_payload"])
    );

    let first = report(&verify(&path, &["--source", "default", "--format", "json"]));
    assert_eq!(
        first["in_sync"], true,
        "the first source's runs are in ClickHouse: {first}"
    );
    assert_eq!(first["runs_compared"], 2);

    let repaired = report(&verify(&path, &["--repair", "--format", "json"]));
    println!("--repair: {}", repaired["repair"]);
    for args in [
        vec![],
        vec!["--source", "runops"],
        vec!["--source", "default"],
    ] {
        let mut all = args.clone();
        all.extend(["--format", "json"]);
        let out = verify(&path, &all);
        let r = report(&out);
        println!(
            "verify {args:?}: in sync {}, {} runs",
            r["in_sync"], r["runs_compared"]
        );
        // The first source's run_shared is now shown as the run-ops copy, which wins: that
        // source's business, not drift of the first.
        assert_eq!(out.status.code(), Some(0), "{args:?}: {r}");
    }
}
