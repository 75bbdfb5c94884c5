//! `--null-sink`, the benchmarking mode: batches are encoded and discarded, and still
//! acknowledged, so the slot advances while ClickHouse receives nothing.

use std::process::Stdio;
use std::time::Duration;

use runs_replicator::testing::wait::poll;

use crate::support::runs::insert_many_sql;
use crate::support::{TestEnv, http, process, worker};

#[tokio::test]
async fn null_sink_acknowledges_and_writes_nothing() {
    let env = TestEnv::new("null_sink").await;
    let pg = env.pg_client().await;
    let port = process::free_port();
    let config = env.write_config(port, "");
    let dir = config.parent().unwrap().to_path_buf();
    let log = dir.join("worker-null-sink.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut cmd = worker::command(&config);
    cmd.arg("--null-sink")
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file);
    let mut child = process::spawn(cmd).unwrap();
    let addr = format!("127.0.0.1:{port}");
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();

    poll(
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            match http::get(&addr, "/readyz") {
                Ok((200, _)) => Ok(()),
                _ => Err(()),
            }
        },
    )
    .await
    .unwrap_or_else(|()| panic!("not ready:\n{}", log_text()));

    let ids: Vec<String> = (0..20).map(|i| format!("run_null_{i:02}")).collect();
    pg.batch_execute(&insert_many_sql("\"TaskRun\"", &ids, &[]))
        .await
        .unwrap();
    pg.batch_execute("UPDATE \"TaskRun\" SET status = 'EXECUTING'")
        .await
        .unwrap();
    let end: String = pg
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);

    let confirmed_past_end = format!(
        "SELECT coalesce(confirmed_flush_lsn >= '{end}'::pg_lsn, false) \
         FROM pg_replication_slots WHERE slot_name = '{}'",
        env.slot
    );
    poll(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            let done: bool = pg.query_one(&confirmed_past_end, &[]).await.unwrap().get(0);
            if done { Ok(()) } else { Err(()) }
        },
    )
    .await
    .unwrap_or_else(|()| panic!("the slot did not advance past {end}:\n{}", log_text()));

    let ch = env.ch_client();
    for table in ["task_runs_v2", "raw_task_runs_payload_v1"] {
        let rows: u64 = ch
            .query(&format!("SELECT count() FROM {table}"))
            .fetch_one()
            .await
            .unwrap();
        assert_eq!(rows, 0, "{table} received rows from a null sink");
    }
    assert!(log_text().contains("--null-sink"), "{}", log_text());

    process::signal(child.id(), libc::SIGTERM);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", log_text());
}
