//! Named moments a test can stop the worker at, to kill it exactly there (as supabase/etl's
//! failpoints do): "the slot exists but its pending copy is not recorded yet" is a window of
//! milliseconds that no test hits by timing.
//!
//! `RUNS_REPLICATOR_TEST_FAILPOINTS=name[,name…]` names the moments. The variable is read only
//! in a build with the `test-support` feature — the binary the integration tests run; the
//! worker you deploy is built without it, where [`reached`] is an empty function. At a named
//! moment the task logs `failpoint reached: <name>` and never continues; the test waits for that
//! line and sends SIGKILL.
//!
//! The moments (each placed where a crash must lose nothing):
//! - `slot.intent_recorded` — the stream's marker records the slot about to be created (and the
//!   copies it will owe); the slot does not exist yet.
//! - `slot.created` — the slot exists; the marker does not know its consistent point yet.
//! - `copy.started` — a pending copy is about to be copied (the slot exists, nothing streamed).
//! - `slot.ensured` — the slot and its marker are settled, nothing is streamed yet.

/// The environment variable naming the failpoints (test builds only).
pub const VARIABLE: &str = "RUNS_REPLICATOR_TEST_FAILPOINTS";

/// Stops here for good when `name` is one of the failpoints the environment names (test builds
/// only; returns at once otherwise).
#[cfg(feature = "test-support")]
pub async fn reached(name: &str) {
    let named = std::env::var(VARIABLE).unwrap_or_default();
    if named.split(',').any(|n| n.trim() == name) {
        tracing::error!(
            failpoint = name,
            "failpoint reached: {name}; waiting to be killed"
        );
        std::future::pending::<()>().await;
    }
}

#[cfg(not(feature = "test-support"))]
pub async fn reached(_name: &str) {}
