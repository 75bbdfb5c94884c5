//! Replicas that share the work (`leadership.share`): three worker processes on one source split
//! into six shards. Each leads two; one killed with SIGKILL has its streams taken over by the
//! other two (three each); restarted, it gets its two back, handed over after being flushed and
//! acknowledged. Meanwhile a writer keeps changing runs, no stream ever has two leaders, and
//! ClickHouse equals Postgres after each step.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runs_replicator::leader::lock_key;
use runs_replicator::testing::metrics::{samples, sum as metric_sum, value as metric_value};
use runs_replicator::testing::wait::wait_for;

use crate::support::expect::assert_converges;
use crate::support::load::write_mixed;
use crate::support::{TestEnv, Worker, process};

const SHARDS: usize = 6;
const CONVERGE: Duration = Duration::from_secs(60);
/// A leader keeps a stream at least this long before handing it over (`leadership.min_hold_ms`,
/// 10 s by default), shortened so the test settles quickly.
const OVERRIDES: &str = "[postgres]\nshards = 6\n[leadership]\nmin_hold_ms = 2000\n";

/// A writer changing runs until stopped: mixed inserts, updates (TOASTed outputs included),
/// deletes and moves between the tables, in transactions of 1 to 20 changes.
struct Load {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<usize>,
}

impl Load {
    fn start(env: &TestEnv, seed: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let url = env.pg.url(&env.pg_db);
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut written = 0;
            let mut seed = seed;
            while !flag.load(Ordering::Relaxed) {
                written += write_mixed(&url, 100, seed, 2).await;
                seed += 1;
            }
            written
        });
        Load { stop, task }
    }

    async fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// Three worker processes of one configuration; `None` while one is down.
struct Replicas {
    env_config: Vec<(std::path::PathBuf, u16)>,
    workers: Vec<Option<Worker>>,
    /// The live workers' process ids, for the watcher.
    pids: Arc<Mutex<Vec<u32>>>,
}

impl Replicas {
    fn start(&mut self, i: usize) {
        let (config, port) = &self.env_config[i];
        self.workers[i] = Some(Worker::start(config, *port, &[]));
        self.publish_pids();
    }

    fn kill9(&mut self, i: usize) {
        if let Some(mut w) = self.workers[i].take() {
            w.kill9();
        }
        self.publish_pids();
    }

    fn publish_pids(&self) {
        *self.pids.lock().unwrap() = self
            .workers
            .iter()
            .flatten()
            .map(|w| w.child.id())
            .collect();
    }

    /// How many streams each worker leads (`None`: down or not answering).
    fn leading(&self) -> Vec<Option<usize>> {
        self.workers
            .iter()
            .map(|w| {
                let text = w.as_ref()?.get("/metrics")?.1;
                Some(metric_sum(&text, "runs_replicator_leader") as usize)
            })
            .collect()
    }

    fn metric(&self, i: usize, name: &str) -> f64 {
        let text = self.workers[i].as_ref().unwrap().get("/metrics").unwrap().1;
        metric_value(&text, name).unwrap_or(0.0)
    }

    fn metric_sum(&self, i: usize, name: &str) -> f64 {
        let text = self.workers[i].as_ref().unwrap().get("/metrics").unwrap().1;
        metric_sum(&text, name)
    }

    /// Waits until the workers lead exactly `want` streams each (`None`: that one is down).
    async fn wait_for_shares(&self, want: &[Option<usize>], timeout: Duration) -> Duration {
        let start = Instant::now();
        wait_for(&format!("leadership {want:?}"), timeout, || async {
            (self.leading() == want).then_some(())
        })
        .await;
        start.elapsed()
    }
}

/// What the watcher saw: samples taken, and every time a stream had two leaders.
#[derive(Default)]
struct Watch {
    samples: usize,
    /// Samples in which a slot's walsender and its lock's holder were both seen (and agreed).
    paired: usize,
    violations: Vec<String>,
}

/// Every 100 ms until stopped: per stream, (1) at most one live worker says it leads it
/// (`runs_replicator_leader`), and (2) the walsender streaming its slot belongs to the worker
/// process whose session holds its advisory lock (Postgres' own view: the slot admits one
/// walsender, the lock one holder; the two must be the same instance). On a thread of its own:
/// scrapes and /proc reads block.
fn watch_on_a_thread(
    env: Arc<TestEnv>,
    metrics_addrs: Vec<String>,
    pids: Arc<Mutex<Vec<u32>>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Watch> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(watch(&env, metrics_addrs, pids, stop))
    })
}

async fn watch(
    env: &TestEnv,
    metrics_addrs: Vec<String>,
    pids: Arc<Mutex<Vec<u32>>>,
    stop: Arc<AtomicBool>,
) -> Watch {
    let pg = env.pg_client().await;
    let slots: Vec<String> = (0..SHARDS).map(|k| format!("{}_{k}", env.slot)).collect();
    let keys: BTreeMap<i64, usize> = slots
        .iter()
        .enumerate()
        .map(|(k, slot)| (lock_key(&env.pg_db, slot), k))
        .collect();
    let mut seen = Watch::default();
    while !stop.load(Ordering::Relaxed) {
        seen.samples += 1;
        let mut leaders: BTreeMap<String, usize> = BTreeMap::new();
        for addr in &metrics_addrs {
            if let Ok((_, text)) = crate::support::http::get(addr, "/metrics") {
                for s in samples(&text) {
                    if s.name == "runs_replicator_leader" && s.value == 1.0 {
                        *leaders
                            .entry(s.label("source").unwrap().to_string())
                            .or_default() += 1;
                    }
                }
            }
        }
        for (stream, n) in &leaders {
            if *n > 1 {
                seen.violations
                    .push(format!("{stream}: {n} workers say they lead it"));
            }
        }
        let rows = pg
            .query(
                "SELECT s.slot_name, a.client_port, NULL::int8, NULL::int8 \
                   FROM pg_replication_slots s JOIN pg_stat_activity a ON a.pid = s.active_pid \
                  WHERE s.slot_name = ANY($1) \
                 UNION ALL \
                 SELECT NULL, a.client_port, l.classid::int8, l.objid::int8 \
                   FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                  WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted \
                    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                &[&slots],
            )
            .await;
        // The services go away when the test ends early (a failure elsewhere).
        let Ok(rows) = rows else { break };
        let live = pids.lock().unwrap().clone();
        let owners = process::tcp_port_owners(&live);
        let owner = |port: Option<i32>| port.and_then(|p| owners.get(&(p as u16)).copied());
        let mut walsender: BTreeMap<usize, Option<u32>> = BTreeMap::new();
        let mut holder: BTreeMap<usize, Option<u32>> = BTreeMap::new();
        for row in &rows {
            let port: Option<i32> = row.get(1);
            match row.get::<_, Option<String>>(0) {
                Some(slot) => {
                    let k = slots.iter().position(|s| *s == slot).unwrap();
                    walsender.insert(k, owner(port));
                }
                None => {
                    let (hi, lo): (i64, i64) = (row.get(2), row.get(3));
                    let key = (((hi as u64) << 32) | lo as u64) as i64;
                    if let Some(&k) = keys.get(&key) {
                        holder.insert(k, owner(port));
                    }
                }
            }
        }
        for (k, ws) in &walsender {
            match (ws, holder.get(k).copied().flatten()) {
                (Some(a), Some(b)) if *a == b => seen.paired += 1,
                (Some(a), Some(b)) => seen.violations.push(format!(
                    "shard {k}: worker {a} streams the slot while worker {b} holds the lock"
                )),
                (Some(a), None) => seen.violations.push(format!(
                    "shard {k}: worker {a} streams the slot while no worker holds the lock"
                )),
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen
}

#[tokio::test]
async fn three_replicas_share_six_shards_across_a_sigkill_and_a_return() {
    let env = Arc::new(TestEnv::new("replicas").await);
    let ports: Vec<u16> = (0..3).map(|_| process::free_port()).collect();
    let mut replicas = Replicas {
        env_config: ports
            .iter()
            .map(|&p| (env.write_config(p, OVERRIDES), p))
            .collect(),
        workers: vec![None, None, None],
        pids: Arc::new(Mutex::new(Vec::new())),
    };
    let stop_watch = Arc::new(AtomicBool::new(false));
    let watcher = {
        let env = env.clone();
        let addrs = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let (pids, stop) = (replicas.pids.clone(), stop_watch.clone());
        watch_on_a_thread(env, addrs, pids, stop)
    };

    let started = Instant::now();
    for i in 0..3 {
        replicas.start(i);
    }
    for w in replicas.workers.iter_mut().flatten() {
        w.wait_ready(Duration::from_secs(60)).await;
    }
    // The writer starts once every shard's slot exists (the first leader of each creates it;
    // what commits before a slot exists is a backfill's job, not the stream's).
    let pg = env.pg_client().await;
    wait_for("the 6 slots", Duration::from_secs(30), || async {
        let n: i64 = pg
            .query_one(
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE $1 || '\\_%'",
                &[&env.slot],
            )
            .await
            .unwrap()
            .get(0);
        (n == SHARDS as i64).then_some(())
    })
    .await;
    let load = Load::start(&env, 1_000);
    let two_each = [Some(2), Some(2), Some(2)];
    replicas
        .wait_for_shares(&two_each, Duration::from_secs(30))
        .await;
    println!(
        "checked: 3 workers, 6 shards: each leads 2, {:?} after starting them",
        started.elapsed()
    );
    // Settled: it stays so.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(replicas.leading(), two_each, "the balance holds");
    for i in 0..3 {
        assert_eq!(replicas.metric(i, "runs_replicator_instances"), 3.0);
    }
    let written = load.stop().await;
    assert_converges(&env, CONVERGE).await;
    println!("checked: {written} changes written meanwhile; ClickHouse equals Postgres");

    let load = Load::start(&env, 2_000);
    tokio::time::sleep(Duration::from_millis(500)).await;
    replicas.kill9(2);
    println!("injected: SIGKILL of worker 2 while it leads 2 shards and the writer writes");
    let took = replicas
        .wait_for_shares(&[Some(3), Some(3), None], Duration::from_secs(15))
        .await;
    println!("checked: workers 0 and 1 lead 3 each, {took:?} after the SIGKILL");
    // A dead process's sessions close at once: the roster shows it gone within 0.5 s, a standby
    // looks every second, then its session starts (about a second here, on a shared machine).
    assert!(
        took < Duration::from_secs(10),
        "takeover within the takeover time: {took:?}"
    );
    for i in 0..2 {
        assert_eq!(replicas.metric(i, "runs_replicator_instances"), 2.0);
    }
    let written = load.stop().await;
    assert_converges(&env, CONVERGE).await;
    println!("checked: {written} changes written meanwhile; ClickHouse equals Postgres");

    let load = Load::start(&env, 3_000);
    let handovers_before = replicas.metric_sum(0, "runs_replicator_handovers_total")
        + replicas.metric_sum(1, "runs_replicator_handovers_total");
    replicas.start(2);
    println!("injected: worker 2 started again");
    let back = replicas
        .wait_for_shares(&two_each, Duration::from_secs(30))
        .await;
    println!("checked: each leads 2 again, {back:?} after the restart");
    let handovers = replicas.metric_sum(0, "runs_replicator_handovers_total")
        + replicas.metric_sum(1, "runs_replicator_handovers_total")
        - handovers_before;
    assert_eq!(
        handovers, 2.0,
        "the returning worker's share was handed over, and only that"
    );
    let written = load.stop().await;
    assert_converges(&env, CONVERGE).await;
    println!("checked: {written} changes written meanwhile; ClickHouse equals Postgres");

    stop_watch.store(true, Ordering::Relaxed);
    let seen = watcher.join().unwrap();
    assert!(
        seen.violations.is_empty(),
        "a stream had two leaders: {:?}",
        seen.violations
    );
    assert!(
        seen.paired > 100,
        "the watcher saw leaders: {}",
        seen.paired
    );
    println!(
        "checked: never two leaders of a stream in {} samples ({} slot/lock pairs agreed); {:?} in all",
        seen.samples,
        seen.paired,
        started.elapsed()
    );
}

/// A standby queueing for a stream's lock waits out its `lock_timeout` even when
/// `postgres.query_timeout_ms` is shorter than the wait: the session's `statement_timeout` and
/// the client-side bound (that query timeout everywhere else) must not cut the queue short and
/// end the session as an error. While it queues, the lock's release is granted to it.
#[tokio::test]
async fn a_queued_standby_waits_out_its_lock_timeout_under_a_shorter_query_timeout() {
    use runs_replicator::leader::Candidate;

    let env = TestEnv::new("replicas_queue").await;
    let path = env.write_config(process::free_port(), "[postgres]\nquery_timeout_ms = 200\n");
    let config = runs_replicator::config::Config::load(Some(&path), &|_| None, &[]).unwrap();
    let stream = config.streams().remove(0);
    let leader = Candidate::connect(&config, &stream)
        .await
        .unwrap()
        .try_acquire()
        .await
        .unwrap()
        .unwrap_or_else(|_| panic!("the lock is free"));
    let standby = Candidate::connect(&config, &stream).await.unwrap();

    let wait = Duration::from_millis(1500);
    let started = Instant::now();
    let standby = match standby.queue(wait).await {
        Ok(Err(standby)) => standby,
        Ok(Ok(_)) => panic!("the lock is held: it cannot be granted"),
        Err(e) => panic!("the queue's wait was cut short as an error: {e}"),
    };
    let waited = started.elapsed();
    println!("checked: queued {waited:?} (lock_timeout 1.5 s, query_timeout_ms 200)");
    assert!(
        waited >= Duration::from_millis(1400),
        "waited out the lock_timeout: {waited:?}"
    );
    standby.ping().await.expect("the session is still usable");

    // Released while it waits: granted to the waiting session.
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(leader);
    });
    let started = Instant::now();
    match standby.queue(wait).await {
        Ok(Ok(lock)) => assert!(lock.held().await),
        Ok(Err(_)) => panic!("the released lock was not granted to the waiting session"),
        Err(e) => panic!("the queue failed: {e}"),
    }
    println!("checked: granted {:?} after queueing", started.elapsed());
    release.await.unwrap();
}
