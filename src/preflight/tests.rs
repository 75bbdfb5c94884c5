//! The verdicts, rule by rule, on readings written out by hand.

use super::report::{Check, Status};
use super::verdicts::{self, normalize_type};
use crate::config::{Config, Source, Stream};
use crate::pg::catalog::{
    PublicationMember, PublicationReading, ServerReading, SlotReading, TableReading,
};
use crate::rows::Col;
use crate::sink::catalog::ChTableReading;

/// Both default tables, as existing.
fn both() -> Vec<String> {
    vec!["TaskRun".into(), "task_run_v2".into()]
}

/// The default configuration's one stream.
fn stream() -> Stream {
    Config::default().streams().remove(0)
}

fn pg() -> Source {
    (*stream().source).clone()
}

/// The default stream with its source changed by `f`.
fn stream_with(f: impl FnOnce(&mut Source)) -> Stream {
    let mut source = pg();
    f(&mut source);
    std::sync::Arc::new(source).streams().remove(0)
}

fn server() -> ServerReading {
    ServerReading {
        wal_level: "logical".into(),
        encoding: "UTF8".into(),
        max_wal_senders: 10,
        version_num: 150_018,
        max_slot_wal_keep_size: "100GB".into(),
        user: "replicator".into(),
        can_replicate: true,
        provider_roles: Vec::new(),
        member_of: Vec::new(),
        cloudsql_logical_decoding: None,
    }
}

/// A role without the REPLICATION attribute on a server with `roles` (a provider's), a member of
/// `member_of`.
fn managed(roles: &[&str], member_of: &[&str]) -> ServerReading {
    ServerReading {
        can_replicate: false,
        provider_roles: roles.iter().map(|r| r.to_string()).collect(),
        member_of: member_of.iter().map(|r| r.to_string()).collect(),
        ..server()
    }
}

fn role_check(s: &ServerReading) -> Check {
    find(&verdicts::server(s), "replication_role", "role replicator").clone()
}

fn table(name: &str) -> TableReading {
    TableReading {
        name: name.into(),
        oid: 16_400,
        replica_identity: "f".into(),
        kind: "r".into(),
        can_select: true,
        columns: Col::ALL.iter().map(|c| c.pg_name().to_string()).collect(),
    }
}

fn publication() -> PublicationReading {
    PublicationReading {
        name: "task_runs_to_clickhouse_v1_publication".into(),
        insert: true,
        update: true,
        delete: true,
        truncate: true,
        members: ["TaskRun", "task_run_v2"]
            .iter()
            .map(|t| PublicationMember {
                schema: "public".into(),
                table: t.to_string(),
                row_filter: false,
                columns: None,
            })
            .collect(),
    }
}

fn slot() -> SlotReading {
    SlotReading {
        plugin: "pgoutput".into(),
        slot_type: "logical".into(),
        database: Some("trigger".into()),
        active: false,
        wal_status: Some("reserved".into()),
        confirmed_flush_lsn: Some("0/16B6C50".into()),
        lag_bytes: Some(0),
        retained_bytes: Some(0),
        safe_wal_size: None,
        ..SlotReading::default()
    }
}

/// The one check named `name` on `target`, which must exist.
fn find<'a>(checks: &'a [Check], name: &str, target: &str) -> &'a Check {
    checks
        .iter()
        .find(|c| c.check == name && c.target == target)
        .unwrap_or_else(|| panic!("no {name} on {target} in {checks:#?}"))
}

fn all_pass(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.status == Status::Pass)
}

#[test]
fn a_ready_server_passes_and_each_setting_fails_with_its_fix() {
    assert!(all_pass(&verdicts::server(&server())));
    let mut s = server();
    s.wal_level = "replica".into();
    let c = verdicts::server(&s);
    let wal = find(&c, "wal_level", "server");
    assert_eq!(
        (wal.status, wal.observed.as_str()),
        (Status::Fail, "replica")
    );
    assert!(wal.fix.as_deref().unwrap().contains("wal_level = logical"));

    let mut s = server();
    s.can_replicate = false;
    let c = verdicts::server(&s);
    let role = find(&c, "replication_role", "role replicator");
    assert_eq!(role.status, Status::Fail);
    assert_eq!(
        role.fix.as_deref(),
        Some("ALTER ROLE \"replicator\" REPLICATION;")
    );

    let mut s = server();
    s.encoding = "LATIN1".into();
    assert_eq!(
        find(&verdicts::server(&s), "server_encoding", "server").status,
        Status::Fail
    );
}

#[test]
fn unbounded_slot_wal_is_a_warning_not_a_failure() {
    let mut s = server();
    s.max_slot_wal_keep_size = "-1".into();
    let c = verdicts::server(&s);
    let keep = find(&c, "max_slot_wal_keep_size", "server");
    assert_eq!(keep.status, Status::Warn);
    assert!(
        keep.fix
            .as_deref()
            .unwrap()
            .contains("max_slot_wal_keep_size")
    );
}

#[test]
fn tables_need_full_identity_every_column_and_select() {
    let found = [table("TaskRun"), table("task_run_v2")];
    assert!(all_pass(&verdicts::tables(&pg(), &found, "u")));

    let mut v2 = table("task_run_v2");
    v2.replica_identity = "d".into();
    v2.columns.retain(|c| c != "output" && c != "status");
    v2.can_select = false;
    let c = verdicts::tables(&pg(), &[table("TaskRun"), v2], "replicator");
    let target = "\"public\".\"task_run_v2\"";
    let ident = find(&c, "replica_identity", target);
    assert_eq!(ident.status, Status::Fail);
    assert_eq!(ident.observed, "default (relreplident = 'd')");
    assert_eq!(
        ident.fix.as_deref(),
        Some("ALTER TABLE \"public\".\"task_run_v2\" REPLICA IDENTITY FULL;")
    );
    assert_eq!(
        find(&c, "table_columns", target).observed,
        "missing status, output"
    );
    assert_eq!(
        find(&c, "table_select", target).fix.as_deref(),
        Some("GRANT SELECT ON \"public\".\"task_run_v2\" TO \"replicator\";")
    );
    assert!(all_pass(
        &c.iter()
            .filter(|c| c.target == "\"public\".\"TaskRun\"")
            .cloned()
            .collect::<Vec<_>>()
    ));
}

#[test]
fn a_missing_table_or_a_view_fails() {
    let mut named = pg();
    named.tables_required = true;
    let c = verdicts::tables(&named, &[table("TaskRun")], "u");
    let missing = find(&c, "table_exists", "\"public\".\"task_run_v2\"");
    assert_eq!(
        (missing.status, missing.observed.as_str()),
        (Status::Fail, "does not exist")
    );
    let fix = missing.fix.as_deref().unwrap();
    assert!(
        fix.contains("postgres.schema") && fix.contains("never creates"),
        "no advice to create a table in trigger.dev's schema: {fix}"
    );
    let mut view = table("TaskRun");
    view.kind = "v".into();
    let c = verdicts::tables(&pg(), &[view, table("task_run_v2")], "u");
    assert_eq!(
        find(&c, "table_exists", "\"public\".\"TaskRun\"").status,
        Status::Fail
    );
}

#[test]
fn a_table_of_the_default_list_may_not_exist_yet_but_one_must() {
    // trigger.dev's schema: "TaskRun" alone.
    let c = verdicts::tables(&pg(), &[table("TaskRun")], "u");
    assert!(all_pass(&c), "{c:?}");
    let v2 = find(&c, "table_exists", "\"public\".\"task_run_v2\"");
    assert!(v2.observed.starts_with("does not exist yet"), "{v2:?}");
    // Its publication is checked for the tables that exist.
    let mut p = publication();
    p.members.retain(|m| m.table == "TaskRun");
    let only = vec!["TaskRun".to_string()];
    let c = verdicts::publication(&stream(), Some(&p), &only);
    assert!(all_pass(&c), "{c:?}");
    assert!(!c.iter().any(|c| c.target.contains("task_run_v2")), "{c:?}");
    // None of them: a wrong schema or database, which fails.
    let c = verdicts::tables(&pg(), &[], "u");
    let missing = find(&c, "table_exists", "\"public\".\"TaskRun\"");
    assert_eq!(missing.status, Status::Fail);
    assert!(
        missing
            .fix
            .as_deref()
            .unwrap()
            .starts_with("none of postgres.tables exists"),
        "{missing:?}"
    );
}

#[test]
fn a_table_missing_from_the_publication_is_added_or_named_with_its_sql() {
    let mut p = publication();
    p.members.retain(|m| m.table == "TaskRun");
    let target = "\"public\".\"task_run_v2\"";
    let sql = "ALTER PUBLICATION \"task_runs_to_clickhouse_v1_publication\" ADD TABLE \"public\".\"task_run_v2\";";
    // The worker adds it (and copies its rows).
    let c = verdicts::publication(&stream(), Some(&p), &both());
    assert_eq!(find(&c, "publication_table", target).status, Status::Pass);
    // It cannot: a warning with the SQL for the default list, a failure for a named one.
    let manual = stream_with(|s| s.create_publication = false);
    let c = verdicts::publication(&manual, Some(&p), &both());
    let check = find(&c, "publication_table", target);
    assert_eq!(
        (check.status, check.fix.as_deref()),
        (Status::Warn, Some(sql))
    );
    let named = stream_with(|s| {
        s.create_publication = false;
        s.tables_required = true;
    });
    let c = verdicts::publication(&named, Some(&p), &both());
    let check = find(&c, "publication_table", target);
    assert_eq!(
        (check.status, check.fix.as_deref()),
        (Status::Fail, Some(sql))
    );
}

#[test]
fn the_publication_must_cover_every_table_with_every_action_and_no_filter() {
    assert!(all_pass(&verdicts::publication(
        &stream(),
        Some(&publication()),
        &both()
    )));

    let mut p = publication();
    p.delete = false;
    p.members.retain(|m| m.table != "task_run_v2");
    let manual = stream_with(|s| {
        s.create_publication = false;
        s.tables_required = true;
    });
    let c = verdicts::publication(&manual, Some(&p), &both());
    let actions = find(
        &c,
        "publication_actions",
        "publication \"task_runs_to_clickhouse_v1_publication\"",
    );
    assert_eq!(actions.observed, "publish = 'insert, update, truncate'");
    assert_eq!(
        actions.fix.as_deref(),
        Some(
            "ALTER PUBLICATION \"task_runs_to_clickhouse_v1_publication\" SET (publish = 'insert, update, delete, truncate');"
        )
    );
    assert_eq!(
        find(&c, "publication_table", "\"public\".\"task_run_v2\"")
            .fix
            .as_deref(),
        Some(
            "ALTER PUBLICATION \"task_runs_to_clickhouse_v1_publication\" ADD TABLE \"public\".\"task_run_v2\";"
        )
    );

    let mut p = publication();
    p.members[0].row_filter = true;
    p.members[1].columns = Some(vec!["id".into()]);
    let c = verdicts::publication(&stream(), Some(&p), &both());
    assert_eq!(
        find(&c, "publication_filter", "\"public\".\"TaskRun\"").observed,
        "has a row filter (WHERE)"
    );
    assert_eq!(
        find(&c, "publication_filter", "\"public\".\"task_run_v2\"").observed,
        "has a column list without some required columns"
    );
}

#[test]
fn a_table_of_the_same_name_in_another_schema_is_not_a_member() {
    let mut p = publication();
    p.members[1].schema = "other".into();
    let manual = stream_with(|s| {
        s.create_publication = false;
        s.tables_required = true;
    });
    let c = verdicts::publication(&manual, Some(&p), &both());
    assert_eq!(
        find(&c, "publication_table", "\"public\".\"task_run_v2\"").status,
        Status::Fail
    );
}

#[test]
fn an_absent_publication_passes_only_when_the_worker_creates_it() {
    assert!(all_pass(&verdicts::publication(&stream(), None, &both())));
    let config = stream_with(|s| s.create_publication = false);
    let c = verdicts::publication(&config, None, &both());
    assert_eq!(c[0].status, Status::Fail);
    assert!(
        c[0].fix
            .as_deref()
            .unwrap()
            .starts_with("CREATE PUBLICATION \"task_runs_to_clickhouse_v1_publication\" FOR TABLE \"public\".\"TaskRun\", \"public\".\"task_run_v2\"")
    );
}

#[test]
fn the_slot_must_be_ours_and_not_lost() {
    assert!(all_pass(&verdicts::slot(&stream(), Some(&slot()))));
    assert!(all_pass(&verdicts::slot(&stream(), None)));
    let config = stream_with(|s| s.create_slot = false);
    assert_eq!(verdicts::slot(&config, None)[0].status, Status::Fail);

    let mut s = slot();
    s.plugin = "wal2json".into();
    s.wal_status = Some("lost".into());
    let c = verdicts::slot(&stream(), Some(&s));
    let target = "slot task_runs_to_clickhouse_v1";
    assert_eq!(find(&c, "slot", target).status, Status::Fail);
    let lost = find(&c, "slot_wal_status", target);
    assert_eq!(
        (lost.status, lost.observed.as_str()),
        (Status::Fail, "wal_status lost")
    );
    // PostgreSQL 17 names the reason; 16 flags a recovery conflict: either is lost, whatever
    // wal_status still says.
    for (reason, conflicting, shown) in [
        (
            Some("rows_removed"),
            Some(true),
            "invalidated: rows_removed",
        ),
        (
            Some("idle_timeout"),
            Some(false),
            "invalidated: idle_timeout",
        ),
        (None, Some(true), "invalidated: conflicting with recovery"),
    ] {
        let mut s = slot();
        s.invalidation_reason = reason.map(String::from);
        s.conflicting = conflicting;
        let c = verdicts::slot(&stream(), Some(&s));
        let check = find(&c, "slot_wal_status", target);
        assert_eq!(
            (check.status, check.observed.as_str()),
            (Status::Fail, shown)
        );
    }
    assert!(
        lost.fix
            .as_deref()
            .unwrap()
            .contains("SELECT pg_drop_replication_slot('task_runs_to_clickhouse_v1');")
    );

    let mut other_db = slot();
    other_db.database = Some("postgres".into());
    assert_eq!(
        find(&verdicts::slot(&stream(), Some(&other_db)), "slot", target).status,
        Status::Fail
    );
}

#[test]
fn clickhouse_tables_need_the_engine_and_every_column() {
    let columns = [("run_id", "String"), ("status", "LowCardinality(String)")];
    let want = verdicts::ChExpectation {
        target: "trigger_dev.task_runs_v2".into(),
        columns: &columns,
        ddl: "002_task_runs_v2.sql",
        database: "trigger_dev",
        replacing: true,
    };
    let good = ChTableReading {
        engine: "ReplacingMergeTree".into(),
        columns: vec![
            ("run_id".into(), "String".into()),
            ("status".into(), "LowCardinality(String)".into()),
        ],
    };
    assert!(all_pass(&verdicts::clickhouse_table(&want, Some(&good))));
    let missing = verdicts::clickhouse_table(&want, None);
    assert_eq!(missing[0].status, Status::Fail);
    assert!(
        missing[0]
            .fix
            .as_deref()
            .unwrap()
            .contains("002_task_runs_v2.sql")
    );

    let bad = ChTableReading {
        engine: "MergeTree".into(),
        columns: vec![("status".into(), "UInt8".into())],
    };
    let c = verdicts::clickhouse_table(&want, Some(&bad));
    assert_eq!(
        find(&c, "clickhouse_table", "trigger_dev.task_runs_v2").status,
        Status::Fail
    );
    let cols = find(&c, "clickhouse_columns", "trigger_dev.task_runs_v2");
    assert_eq!(
        cols.observed,
        "run_id missing; status is UInt8, expected LowCardinality(String)"
    );
    assert_eq!(
        cols.fix.as_deref(),
        Some(
            "ALTER TABLE trigger_dev.task_runs_v2 ADD COLUMN run_id String; ALTER TABLE trigger_dev.task_runs_v2 MODIFY COLUMN status LowCardinality(String);"
        )
    );
}

#[test]
fn equivalent_wire_types_compare_equal() {
    assert_eq!(normalize_type("LowCardinality(String)"), "String");
    assert_eq!(normalize_type("JSON(max_dynamic_paths = 1024)"), "JSON");
    assert_eq!(
        normalize_type("Nullable(DateTime64(3, 'UTC'))"),
        "Nullable(DateTime64(3))"
    );
    assert_eq!(
        normalize_type("Array(LowCardinality(String))"),
        "Array(String)"
    );
    assert_ne!(normalize_type("UInt16"), normalize_type("UInt8"));
    assert_ne!(
        normalize_type("DateTime64(6)"),
        normalize_type("DateTime64(3)")
    );
}

#[test]
fn a_shard_publication_needs_its_row_filter() {
    let shard = {
        let mut source = pg();
        source.shards = 2;
        std::sync::Arc::new(source).streams().remove(1)
    };
    let mut p = publication();
    p.name = shard.publication.clone();
    let c = verdicts::publication(&shard, Some(&p), &both());
    let f = find(&c, "publication_filter", "\"public\".\"TaskRun\"");
    assert_eq!(
        f.status,
        Status::Fail,
        "a shard without its filter streams every run"
    );
    assert!(
        f.fix
            .as_deref()
            .unwrap()
            .contains("WHERE ((hashtext(id) & 2147483647) % 2 = 1)"),
        "{f:?}"
    );
    for m in &mut p.members {
        m.row_filter = true;
    }
    assert!(all_pass(&verdicts::publication(&shard, Some(&p), &both())));

    // Missing, with create_publication off: the fix creates it with the shard's filter.
    let mut source = (*shard.source).clone();
    source.create_publication = false;
    let shard = std::sync::Arc::new(source).streams().remove(1);
    let c = verdicts::publication(&shard, None, &both());
    let fix = c[0].fix.as_deref().unwrap();
    assert_eq!(
        fix.matches("WHERE ((hashtext(id) & 2147483647) % 2 = 1)")
            .count(),
        2,
        "both tables filtered: {fix}"
    );
}

#[test]
fn a_slot_held_by_another_consumer_is_a_warning_naming_it() {
    use crate::pg::slot_holder::SlotHolder;
    assert!(verdicts::slot_holder(&stream(), None).is_none());
    let theirs = SlotHolder {
        pid: 4242,
        application_name: "runs-replication:legacy".into(),
        client: Some("10.0.0.7:53012".into()),
        since: Some("2026-12-07T09:00:00Z".into()),
    };
    let c = verdicts::slot_holder(&stream(), Some(&theirs)).unwrap();
    assert_eq!((c.check, c.status), ("slot_holder", Status::Warn));
    assert!(
        c.observed.contains("\"runs-replication:legacy\" (pid 4242")
            && c.observed.contains("since 2026-12-07T09:00:00Z"),
        "{c:?}"
    );
    assert!(c.fix.unwrap().contains("RUN_REPLICATION_ENABLED=0"));
    let ours = SlotHolder {
        application_name: crate::pg::APPLICATION_NAME.into(),
        ..theirs
    };
    let c = verdicts::slot_holder(&stream(), Some(&ours)).unwrap();
    assert_eq!(c.status, Status::Pass);
}

#[test]
fn a_managed_providers_own_grant_passes_the_replication_check() {
    // Amazon RDS and Aurora: membership in rds_replication is the grant.
    let rds = ["rds_replication", "rds_superuser"];
    let c = role_check(&managed(&rds, &["rds_replication"]));
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert_eq!(c.observed, "member of rds_replication (Amazon RDS/Aurora)");
    let c = role_check(&managed(&rds, &[]));
    assert_eq!(c.status, Status::Fail);
    assert_eq!(
        c.fix.as_deref(),
        Some(
            "GRANT rds_replication TO \"replicator\"; -- as a member of rds_superuser (the master user)"
        )
    );

    // Cloud SQL: cloudsqlsuperuser with the logical decoding flag on; off, the fix is the flag.
    let mut s = managed(&["cloudsqlsuperuser"], &["cloudsqlsuperuser"]);
    s.cloudsql_logical_decoding = Some("on".into());
    let c = role_check(&s);
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert_eq!(
        c.observed,
        "member of cloudsqlsuperuser, cloudsql.logical_decoding on (Cloud SQL)"
    );
    s.cloudsql_logical_decoding = Some("off".into());
    let c = role_check(&s);
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.fix
            .as_deref()
            .unwrap()
            .contains("cloudsql.logical_decoding=on"),
        "{c:?}"
    );
    let c = role_check(&managed(&["cloudsqlsuperuser"], &[]));
    assert_eq!(c.status, Status::Fail);
    assert!(c.fix.as_deref().unwrap().starts_with(
        "ALTER ROLE \"replicator\" WITH REPLICATION; -- as a cloudsqlsuperuser member"
    ));

    // Azure and Supabase grant the REPLICATION attribute itself: membership alone is not enough.
    let c = role_check(&managed(&["azure_pg_admin"], &["azure_pg_admin"]));
    assert_eq!(c.status, Status::Fail);
    assert_eq!(
        c.fix.as_deref(),
        Some(
            "ALTER ROLE \"replicator\" WITH REPLICATION; -- as the server admin (a member of azure_pg_admin)"
        )
    );
    let mut s = managed(&["azure_pg_admin"], &["azure_pg_admin"]);
    s.can_replicate = true;
    assert_eq!(role_check(&s).status, Status::Pass);
    assert_eq!(
        role_check(&s).observed,
        "REPLICATION (Azure Database for PostgreSQL)"
    );
    let c = role_check(&managed(&["supabase_admin"], &[]));
    assert_eq!(c.status, Status::Fail);
    assert!(c.fix.as_deref().unwrap().contains("as postgres"), "{c:?}");

    // A provider's role name on a plain server grants nothing by itself elsewhere: a role that is a
    // member of none keeps the plain fix.
    let c = role_check(&managed(&[], &[]));
    assert_eq!(
        c.fix.as_deref(),
        Some("ALTER ROLE \"replicator\" REPLICATION;")
    );
}

#[test]
fn wal_level_fixes_name_the_providers_own_setting() {
    let fix = |roles: &[&str]| {
        let mut s = managed(roles, &[]);
        s.wal_level = "replica".into();
        find(&verdicts::server(&s), "wal_level", "server")
            .fix
            .clone()
            .unwrap()
    };
    assert!(fix(&[]).starts_with("ALTER SYSTEM SET wal_level = logical;"));
    assert!(fix(&["rds_superuser"]).contains("rds.logical_replication = 1"));
    assert!(fix(&["cloudsqlsuperuser"]).contains("cloudsql.logical_decoding=on"));
    assert!(fix(&["azure_pg_admin"]).contains("--name wal_level --value logical"));
    assert!(fix(&["supabase_admin"]).contains("db.<project>.supabase.co:5432"));
}

#[test]
fn supabases_pooler_fails_and_its_direct_connection_passes() {
    for (host, port) in [
        ("aws-0-eu-central-1.pooler.supabase.com", 5432),
        ("aws-0-eu-central-1.pooler.supabase.com", 6543),
        ("db.abcdefghijklmnop.supabase.co", 6543),
    ] {
        let c = verdicts::connection(host, port);
        assert_eq!(c.len(), 1, "{host}:{port}");
        assert_eq!(c[0].check, "direct_connection");
        assert_eq!(c[0].status, Status::Fail, "{host}:{port}");
        assert!(
            c[0].fix
                .as_deref()
                .unwrap()
                .contains("db.<project>.supabase.co:5432")
        );
    }
    let c = verdicts::connection("db.abcdefghijklmnop.supabase.co", 5432);
    assert_eq!((c.len(), c[0].status), (1, Status::Pass));
    // Any other address: no check at all (a self-managed pooler is not recognisable by address).
    assert!(verdicts::connection("db.internal", 6543).is_empty());
    assert!(verdicts::connection("127.0.0.1", 5432).is_empty());
}

#[test]
fn version_gaps_are_refused_with_one_line() {
    let at = |version_num| ServerReading {
        version_num,
        ..server()
    };
    assert!(all_pass(&verdicts::version_gaps(&stream(), &at(140_023))));
    let old = verdicts::version_gaps(&stream(), &at(130_020));
    assert_eq!(find(&old, "server_version", "server").status, Status::Fail);
    let newer = verdicts::version_gaps(&stream(), &at(190_001));
    assert_eq!(
        find(&newer, "server_version", "server").status,
        Status::Warn
    );

    let sharded = stream_with(|s| s.shards = 4);
    let c = verdicts::version_gaps(&sharded, &at(140_023));
    let shards = find(&c, "shards", "source default");
    assert_eq!(shards.status, Status::Fail);
    assert_eq!(
        shards.observed,
        "postgres.shards = 4 on PostgreSQL 14.23: shards need row filters (PostgreSQL 15+)"
    );
    assert!(all_pass(&verdicts::version_gaps(&sharded, &at(150_018))));
}

mod failover {
    use super::*;
    use crate::config::FailoverSlot;
    use crate::pg::catalog::{GatingSlot, StandbyReading};
    use crate::preflight::failover::{StandbyProbe, checks, readiness};

    fn standby(copy: Option<SlotReading>) -> StandbyProbe {
        StandbyProbe {
            host: "db2:5432".into(),
            reading: Ok(StandbyReading {
                in_recovery: true,
                sync_replication_slots: Some("on".into()),
                hot_standby_feedback: "on".into(),
                primary_slot_name: "db2".into(),
                slot: copy,
            }),
        }
    }

    fn copy(at: &str) -> SlotReading {
        SlotReading {
            synced: Some(true),
            failover: Some(true),
            confirmed_flush_lsn: Some(at.into()),
            ..slot()
        }
    }

    fn primary(at: &str) -> SlotReading {
        SlotReading {
            failover: Some(true),
            confirmed_flush_lsn: Some(at.into()),
            ..slot()
        }
    }

    #[test]
    fn a_synced_persistent_valid_copy_is_ready_with_its_lag() {
        let r = readiness(Some(&primary("0/3000")), &[standby(Some(copy("0/1000")))]);
        assert!(r.ready);
        assert_eq!(r.lag_bytes, Some(0x2000));
        // The primary itself, listed among the hosts, is not a standby to ask.
        let the_primary = StandbyProbe {
            host: "db1:5432".into(),
            reading: Ok(StandbyReading::default()),
        };
        let r = readiness(Some(&primary("0/3000")), std::slice::from_ref(&the_primary));
        assert!(!r.ready);
        assert!(
            r.findings[0].contains("no standby to ask"),
            "{:?}",
            r.findings
        );
        let r = readiness(
            Some(&primary("0/3000")),
            &[the_primary, standby(Some(copy("0/3000")))],
        );
        assert_eq!((r.ready, r.lag_bytes), (true, Some(0)));
    }

    #[test]
    fn each_unusable_copy_says_why() {
        let temporary = SlotReading {
            temporary: true,
            ..copy("0/1")
        };
        let invalidated = SlotReading {
            invalidation_reason: Some("wal_removed".into()),
            ..copy("0/1")
        };
        let not_synced = SlotReading {
            synced: Some(false),
            ..copy("0/1")
        };
        let mut off = standby(None);
        if let Ok(r) = &mut off.reading {
            r.sync_replication_slots = Some("off".into());
        }
        let mut no_feedback = standby(None);
        if let Ok(r) = &mut no_feedback.reading {
            r.hot_standby_feedback = "off".into();
        }
        let unreachable = StandbyProbe {
            host: "db3:5432".into(),
            reading: Err("connection refused".into()),
        };
        for (probe, says) in [
            (standby(Some(temporary)), "not persisted yet"),
            (standby(Some(invalidated)), "invalidated: wal_removed"),
            (standby(Some(not_synced)), "not a synchronized copy"),
            (standby(None), "no copy of the slot yet"),
            (off, "sync_replication_slots is off"),
            (no_feedback, "hot_standby_feedback is off"),
            (unreachable, "cannot be read: connection refused"),
        ] {
            let r = readiness(Some(&primary("0/1")), &[probe]);
            assert!(!r.ready, "{says}");
            assert!(r.findings[0].contains(says), "{says}: {:?}", r.findings);
        }
    }

    #[test]
    fn failover_slots_on_refuses_a_server_before_17() {
        let on = stream_with(|s| s.failover_slot = FailoverSlot::On);
        let c = checks(&on, 160_014, None, &[], &[]);
        let check = find(&c, "failover_slot", "slot task_runs_to_clickhouse_v1");
        assert_eq!(check.status, Status::Fail);
        assert!(
            check
                .observed
                .starts_with("PostgreSQL 16.14 has no failover slots (17+)")
        );
        let auto = checks(&stream(), 160_014, None, &[], &[]);
        assert!(all_pass(&auto));
        assert!(!FailoverSlot::Auto.wanted(160_014) && FailoverSlot::Auto.wanted(170_000));
        assert!(!FailoverSlot::Off.wanted(180_000) && FailoverSlot::On.wanted(170_000));
    }

    #[test]
    fn a_down_standby_named_in_synchronized_standby_slots_holds_the_stream() {
        let gating = |active: bool| GatingSlot {
            name: "db2".into(),
            slot: Some(SlotReading {
                slot_type: "physical".into(),
                active,
                ..SlotReading::default()
            }),
        };
        let probes = [standby(Some(copy("0/1")))];
        let c = checks(
            &stream(),
            170_010,
            Some(&primary("0/1")),
            &[gating(false)],
            &probes,
        );
        let held = find(&c, "synchronized_standby_slots", "server");
        assert_eq!(held.status, Status::Warn);
        assert_eq!(
            held.observed,
            "holds the stream back: db2: its standby is not connected"
        );
        let c = checks(
            &stream(),
            170_010,
            Some(&primary("0/1")),
            &[gating(true)],
            &probes,
        );
        assert!(all_pass(&c), "{c:?}");
    }
}
