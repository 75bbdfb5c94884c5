//! Who holds a replication slot: the session streaming from it, by catalog state
//! (`pg_replication_slots.active_pid` joined with `pg_stat_activity`), never by error text.
//!
//! A slot admits one walsender. When it is taken — trigger.dev's built-in service (which calls
//! itself `runs-replication:legacy`), another instance of this worker, or this worker's own
//! previous walsender the server has not noticed is gone — the worker says who, and waits.

use std::fmt;

use super::APPLICATION_NAME;
use super::catalog::CatalogError;

/// The session holding a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotHolder {
    pub pid: i32,
    /// Empty when the session set none (or this role may not see it).
    pub application_name: String,
    /// `host` or `host:port` of its client; none for a Unix socket or when not visible.
    pub client: Option<String>,
    /// When its session started (UTC, ISO 8601): since when it holds the slot at the latest.
    /// `None` when this role may not see it (`pg_read_all_stats` shows it).
    pub since: Option<String>,
}

impl SlotHolder {
    /// This worker's own session: another instance, or an earlier session of this one.
    pub fn is_this_worker(&self) -> bool {
        self.application_name == APPLICATION_NAME
    }
}

impl fmt::Display for SlotHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.application_name.is_empty() {
            write!(f, "a session without application_name")?;
        } else {
            write!(f, "application_name {:?}", self.application_name)?;
        }
        write!(f, " (pid {}", self.pid)?;
        if let Some(client) = &self.client {
            write!(f, ", client {client}")?;
        }
        match &self.since {
            Some(since) => write!(f, ", since {since})"),
            None => write!(f, ")"),
        }
    }
}

/// The session holding `slot`, or `None` when the slot is free (or does not exist).
pub async fn read(
    client: &tokio_postgres::Client,
    slot: &str,
) -> Result<Option<SlotHolder>, CatalogError> {
    let row = client
        .query_opt(
            "SELECT s.active_pid, coalesce(a.application_name, ''), \
                    host(a.client_addr) || coalesce(':' || a.client_port, ''), \
                    to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
             FROM pg_replication_slots s \
             LEFT JOIN pg_stat_activity a ON a.pid = s.active_pid \
             WHERE s.slot_name = $1 AND s.active_pid IS NOT NULL",
            &[&slot],
        )
        .await
        .map_err(|e| CatalogError {
            what: "the slot's holder",
            reason: super::describe(&e),
        })?;
    Ok(row.map(|r| SlotHolder {
        pid: r.get(0),
        application_name: r.get(1),
        client: r.get(2),
        since: r.get(3),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_says_who_and_since_when() {
        let h = SlotHolder {
            pid: 4242,
            application_name: "runs-replication:legacy".into(),
            client: Some("10.0.0.7:53012".into()),
            since: Some("2026-12-07T09:00:00Z".into()),
        };
        assert_eq!(
            h.to_string(),
            "application_name \"runs-replication:legacy\" (pid 4242, client 10.0.0.7:53012, \
             since 2026-12-07T09:00:00Z)"
        );
        assert!(!h.is_this_worker());
        let hidden = SlotHolder {
            pid: 7,
            application_name: String::new(),
            client: None,
            since: None,
        };
        assert_eq!(
            hidden.to_string(),
            "a session without application_name (pid 7)"
        );
    }
}
