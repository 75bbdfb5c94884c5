//! A writer of mixed changes across both tables, like a busy task platform: runs are created,
//! move through statuses, get outputs (some large enough to be TOASTed), errors on failure,
//! are deleted, and sometimes move from "TaskRun" to task_run_v2 in one transaction.

use std::time::Duration;

use super::runs::{insert_sql, lit};

/// A small deterministic generator (xorshift), so a failing run can be reproduced by its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const STATUSES: [&str; 6] = [
    "DEQUEUED",
    "EXECUTING",
    "WAITING_TO_RESUME",
    "COMPLETED_SUCCESSFULLY",
    "CRASHED",
    "CANCELED",
];

struct Live {
    id: String,
    table: &'static str,
}

/// Writes about `changes` row changes through `url` in transactions of 1 to 20 changes.
/// Returns the number of changes written.
pub async fn write_mixed(url: &str, changes: usize, seed: u64, pause_every: usize) -> usize {
    let (pg, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("writer connects");
    tokio::spawn(conn);
    let mut rng = Rng::new(seed);
    let mut live: Vec<Live> = Vec::new();
    let mut written = 0;
    let mut next_id = 0u64;
    let mut txns = 0usize;
    while written < changes {
        let size = 1 + rng.below(20) as usize;
        let mut sql = vec!["BEGIN".to_string()];
        for _ in 0..size {
            let dice = rng.below(100);
            if live.is_empty() || dice < 35 {
                let table = if rng.below(2) == 0 {
                    "\"TaskRun\""
                } else {
                    "task_run_v2"
                };
                let id = format!("run_{seed}_{next_id:06}");
                next_id += 1;
                sql.push(insert_sql(table, &id, &[("status", lit("PENDING"))]));
                live.push(Live { id, table });
            } else if dice < 80 {
                let run = &live[rng.below(live.len() as u64) as usize];
                let status = STATUSES[rng.below(STATUSES.len() as u64) as usize];
                let mut set = format!(
                    "status = '{status}', \"updatedAt\" = now(), \"attemptNumber\" = {}",
                    rng.below(5)
                );
                match rng.below(10) {
                    0 => {
                        // Large and incompressible: stored out of line, then left unchanged by later updates.
                        let blob: String = (0..900).map(|_| format!("{:x}", rng.next())).collect();
                        set.push_str(&format!(", output = '{{\"blob\":\"{blob}\"}}'"));
                    }
                    1..=4 => set.push_str(&format!(", output = '{{\"n\":{}}}'", rng.below(1000))),
                    _ => {}
                }
                if status == "CRASHED" {
                    set.push_str(
                        ", error = '{\"name\":\"Error\",\"message\":\"worker crashed 42 times\"}'",
                    );
                }
                sql.push(format!(
                    "UPDATE {} SET {set} WHERE id = '{}'",
                    run.table, run.id
                ));
            } else if dice < 92 {
                let i = rng.below(live.len() as u64) as usize;
                let run = live.swap_remove(i);
                sql.push(format!("DELETE FROM {} WHERE id = '{}'", run.table, run.id));
            } else {
                // Move a legacy run to the new table: insert the copy, delete the original.
                if let Some(i) = live.iter().position(|r| r.table == "\"TaskRun\"") {
                    let id = live[i].id.clone();
                    sql.push(format!(
                        "INSERT INTO task_run_v2 SELECT * FROM \"TaskRun\" WHERE id = '{id}'"
                    ));
                    sql.push(format!("DELETE FROM \"TaskRun\" WHERE id = '{id}'"));
                    live[i].table = "task_run_v2";
                    written += 1;
                }
            }
            written += 1;
        }
        sql.push("COMMIT".into());
        pg.batch_execute(&sql.join(";\n"))
            .await
            .expect("writer transaction");
        txns += 1;
        if pause_every > 0 && txns.is_multiple_of(pause_every) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    written
}
