//! Least privilege: a role with LOGIN REPLICATION, CONNECT and SELECT on the two tables only,
//! the publication and slot created beforehand by a superuser; the preflight passes as that role
//! and the worker streams both tables.

use super::{CONVERGE, pct, start_ready, text, write_changes};
use crate::support::TestEnv;
use crate::support::expect::assert_converges;
use crate::support::runs::lit;
use crate::support::{process, worker};

#[tokio::test]
async fn least_privilege_role_streams_with_a_precreated_publication_and_slot() {
    let env = TestEnv::new("sec_least").await;
    let role = format!("rr_min_{}", std::process::id());
    let password = "min-P@ss:w/rd%-Lp5";
    let admin = env.pg_client().await;
    // One statement per call: a multi-statement query is one transaction, and a slot cannot
    // be created in a transaction that has written.
    for sql in [
        format!(
            "CREATE PUBLICATION {} FOR TABLE public.\"TaskRun\", public.task_run_v2 \
             WITH (publish = 'insert, update, delete, truncate')",
            env.publication
        ),
        format!(
            "SELECT pg_create_logical_replication_slot({}, 'pgoutput')",
            lit(&env.slot)
        ),
        format!("REVOKE ALL ON DATABASE {} FROM PUBLIC", env.pg_db),
        format!(
            "CREATE ROLE {role} LOGIN REPLICATION PASSWORD {}",
            lit(password)
        ),
        format!("GRANT CONNECT ON DATABASE {} TO {role}", env.pg_db),
        format!("GRANT SELECT ON public.\"TaskRun\", public.task_run_v2 TO {role}"),
    ] {
        admin
            .batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let privileges = admin
        .query_one(
            "SELECT r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls, \
                    (SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid), \
                    has_table_privilege(r.rolname, 'public.\"TaskRun\"', 'INSERT, UPDATE, DELETE, TRUNCATE'), \
                    has_table_privilege(r.rolname, 'public.task_run_v2', 'INSERT, UPDATE, DELETE, TRUNCATE'), \
                    has_database_privilege(r.rolname, current_database(), 'CREATE, TEMP') \
             FROM pg_roles r WHERE r.rolname = $1",
            &[&role],
        )
        .await
        .unwrap();
    let (sup, createrole, createdb, bypass, member_of, w1, w2, dbpriv): (
        bool,
        bool,
        bool,
        bool,
        i64,
        bool,
        bool,
        bool,
    ) = (
        privileges.get(0),
        privileges.get(1),
        privileges.get(2),
        privileges.get(3),
        privileges.get(4),
        privileges.get(5),
        privileges.get(6),
        privileges.get(7),
    );
    assert!(!sup && !createrole && !createdb && !bypass && member_of == 0 && !w1 && !w2 && !dbpriv);
    println!(
        "injected: role {role}: LOGIN REPLICATION, CONNECT on {}, SELECT on the two tables, nothing else \
         (publication and slot created by the superuser, PUBLIC's database privileges revoked)",
        env.pg_db
    );

    let port = process::free_port();
    let overrides = format!(
        "[postgres]\nurl = {}\ncreate_publication = false\n",
        toml::Value::String(env.pg.url_as(&role, &pct(password), &env.pg_db))
    );
    let config = env.write_config(port, &overrides);
    let out = worker::preflight(&config, &[]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(
        report.contains(&format!("role {role}")) && report.contains("0 failed"),
        "{report}"
    );
    for check in [
        "replication_role",
        "table_select",
        "publication_table",
        "slot",
    ] {
        assert!(
            report
                .lines()
                .any(|l| l.trim_start().starts_with("ok") && l.contains(check)),
            "{check} not ok:\n{report}"
        );
    }
    println!("checked: the preflight passes as {role}");

    let mut worker = start_ready(&config, port, &[]).await;
    write_changes(&env, "min").await;
    let pg = env.pg_client().await;
    pg.batch_execute(
        "BEGIN; \
         DELETE FROM \"TaskRun\" WHERE id = 'min_v1_2'; \
         UPDATE task_run_v2 SET status = 'CANCELED' WHERE id = 'min_v2_2'; \
         COMMIT",
    )
    .await
    .unwrap();
    assert_converges(&env, CONVERGE).await;
    println!("checked: as {role}, inserts, updates and deletes in both tables reach ClickHouse");
    let who = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_replication WHERE usename = $1",
            &[&role],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(who, 1, "the walsender runs as {role}");
    let (_, metrics) = worker.get("/metrics").unwrap();
    for name in [
        "runs_replicator_slot_active",
        "runs_replicator_slot_lag_bytes",
    ] {
        assert!(
            metrics.lines().any(|l| l.starts_with(name)),
            "slot monitoring as {role}: {name} missing:\n{metrics}"
        );
    }
    let log = worker.log_text();
    assert!(
        !log.contains("permission denied") && !log.contains("ERROR"),
        "{log}"
    );
    assert_eq!(worker.terminate().code(), Some(0));
    println!(
        "checked: the walsender ran as {role}; slot metrics read as {role}; no error in the log"
    );
}
