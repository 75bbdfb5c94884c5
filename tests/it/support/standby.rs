//! A physical standby of a test cluster, of any version, made the way an operator without
//! `pg_basebackup` (the npm server packages lack it) makes one: a physical slot on the primary, a
//! clean stop, a copy of the data directory, `standby.signal` and `primary_conninfo`. Then the
//! failover itself: the primary killed as a crash does (SIGKILL, no shutdown), the standby promoted.

use std::time::Duration;

use super::postgres::PgCluster;
use super::process;

/// How a standby is set up.
pub struct StandbyOptions {
    /// Synchronize the primary's failover slots to this standby (`sync_replication_slots`, PG 17+).
    pub sync_slots: bool,
}

impl PgCluster {
    /// Makes and starts a physical standby named `name` (its physical slot on the primary, and
    /// its `application_name`). The primary is stopped cleanly for the copy and started again on
    /// its port. The standby streams from the primary over the primary's Unix socket, with a
    /// `dbname` in `primary_conninfo` and `hot_standby_feedback` on (what slot synchronization
    /// needs), and on 17+ with `sync_replication_slots` as `options` says.
    pub fn start_standby(&self, name: &str, options: StandbyOptions) -> PgCluster {
        block_on(async {
            let admin = self.connect("postgres").await;
            admin
                .execute(
                    "SELECT pg_create_physical_replication_slot($1, true)",
                    &[&name],
                )
                .await
                .expect("create the standby's physical slot");
        });
        self.stop();
        let socket = self.socket_dir().expect("a local cluster");
        let mut settings = vec![
            (
                "primary_conninfo".to_string(),
                format!(
                    "host={} port={} user=postgres dbname=postgres application_name={name}",
                    socket.display(),
                    self.port
                ),
            ),
            ("primary_slot_name".into(), name.into()),
            ("hot_standby_feedback".into(), "on".into()),
            ("wal_receiver_status_interval".into(), "1s".into()),
        ];
        if options.sync_slots {
            assert!(
                self.version >= 17,
                "slot synchronization needs PostgreSQL 17"
            );
            settings.push(("sync_replication_slots".into(), "on".into()));
        }
        let standby = self.copy_of(&format!("pg{}-{name}", self.version), &settings);
        self.start_again();
        let data = standby.data_dir().unwrap();
        // What pg_basebackup leaves out: the primary's slots (a stale copy of a logical slot on
        // the standby would resume from an old position after a promotion), its pid file.
        for entry in std::fs::read_dir(data.join("pg_replslot"))
            .unwrap()
            .flatten()
        {
            std::fs::remove_dir_all(entry.path()).unwrap();
        }
        let _ = std::fs::remove_file(data.join("postmaster.pid"));
        let signal = data.join("standby.signal");
        std::fs::write(&signal, "").unwrap();
        super::postgres::give_to_postgres(&signal);
        standby.launch();
        standby
    }

    /// Waits until the standby replayed everything the primary wrote so far.
    pub async fn wait_replayed_from(&self, primary: &PgCluster) {
        let target: String = primary
            .connect("postgres")
            .await
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .unwrap()
            .get(0);
        let me = self.connect("postgres").await;
        runs_replicator::testing::wait::wait_for(
            "the standby to replay the primary's WAL",
            Duration::from_secs(60),
            || async {
                let row = me
                    .query_one(
                        "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                        &[&target],
                    )
                    .await
                    .ok()?;
                row.get::<_, Option<bool>>(0).unwrap_or(false).then_some(())
            },
        )
        .await;
    }

    /// Kills the server the way a crash of its machine would: SIGKILL to the postmaster and to
    /// every one of its processes at once, no shutdown, no checkpoint, clients cut off.
    pub fn kill9(&self) {
        let Some(pid) = self.pid() else { return };
        let children = process::children(pid);
        process::signal(pid, libc::SIGKILL);
        for child in children {
            process::signal(child, libc::SIGKILL);
        }
        self.stop();
    }

    /// Promotes a standby and waits until it accepts writes.
    pub async fn promote(&self) {
        let admin = self.connect("postgres").await;
        let done: bool = admin
            .query_one("SELECT pg_promote(true, 60)", &[])
            .await
            .expect("pg_promote")
            .get(0);
        assert!(done, "the standby was not promoted within 60 s");
    }
}

/// Runs `f` to completion on a runtime of its own (the callers may be inside a test's runtime).
fn block_on<F: std::future::Future<Output = ()> + Send>(f: F) {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(f)
            })
            .join()
            .unwrap()
    });
}
