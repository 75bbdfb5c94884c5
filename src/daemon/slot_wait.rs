//! Waiting for a slot another consumer holds, before streaming from it.
//!
//! A slot admits one walsender. When a session holds it — trigger.dev's built-in service still
//! running (`runs-replication:legacy`: its webapp's `RUN_REPLICATION_ENABLED` was not set to 0),
//! another instance of this worker, or this worker's previous walsender that the server has not
//! noticed is gone — the leader says who, since when, in the log (once, then once a minute) and
//! on `/readyz`, and checks again every second (each reading bounded by
//! `postgres.query_timeout_ms`). It never terminates the other session: taking a slot from a
//! consumer that acknowledges positions of its own would make both lose changes.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::control::{PgControl, bounded};
use super::session_end::SessionEnd;
use super::slot::postgres_end;
use super::supervisor::{Supervisor, pause};
use crate::pg::slot_holder::{self, SlotHolder};

/// How often the holder is read while waiting.
const POLL: Duration = Duration::from_secs(1);
/// How often a wait that goes on is logged again.
const REMIND: Duration = Duration::from_secs(60);

impl Supervisor {
    /// Returns once nobody holds the slot (at once when nobody does).
    pub(super) async fn wait_for_slot(
        &mut self,
        control: &PgControl,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), SessionEnd> {
        let name = self.stream.name.clone();
        let slot = self.stream.slot.clone();
        let mut waited: Option<(SlotHolder, Instant, Instant)> = None;
        loop {
            let holder = bounded(
                "the slot's holder",
                control.timeout(),
                slot_holder::read(control.session(), &slot),
            )
            .await
            .map_err(postgres_end)?;
            let Some(holder) = holder else {
                if let Some((last, since, _)) = waited {
                    tracing::info!(
                        stream = %name,
                        %slot,
                        waited_s = since.elapsed().as_secs(),
                        "the slot was released by {last}; taking over"
                    );
                }
                return Ok(());
            };
            let line = format!(
                "slot {slot} is held by {holder}{}; waiting for it to let go (this worker never \
                 terminates it)",
                if holder.is_this_worker() {
                    ": another instance of this worker, or its earlier session that the server \
                     has not yet noticed is gone"
                } else if holder.application_name.starts_with("runs-replication") {
                    ": trigger.dev's built-in replication; set RUN_REPLICATION_ENABLED=0 for \
                     trigger.dev's webapp and restart it"
                } else {
                    ""
                }
            );
            let now = Instant::now();
            let say = match &waited {
                None => true,
                Some((last, _, logged)) => {
                    last.pid != holder.pid || now.duration_since(*logged) >= REMIND
                }
            };
            let since = waited.as_ref().map_or(now, |(_, since, _)| *since);
            let logged = match &waited {
                Some((_, _, logged)) if !say => *logged,
                _ => now,
            };
            if say {
                tracing::warn!(stream = %name, %slot, pid = holder.pid, application_name = %holder.application_name, "{line}");
            }
            self.activity(&line);
            waited = Some((holder, since, logged));
            if !pause(POLL, shutdown).await {
                return Err(SessionEnd::Shutdown);
            }
        }
    }

    /// `START_REPLICATION` found the slot in use: whether a holder is there to wait for (it
    /// took the slot between the check and the start). `false` when the catalog shows none.
    pub(super) async fn slot_is_held(&self, control: &PgControl) -> bool {
        let read = slot_holder::read(control.session(), &self.stream.slot);
        matches!(
            bounded("the slot's holder", control.timeout(), read).await,
            Ok(Some(_))
        )
    }
}
