//! Failover slots (PostgreSQL 17+): a slot created or altered with FAILOVER is synchronized to
//! every standby that runs `sync_replication_slots = on`, so that after a promotion the new
//! primary has the slot, at a position the stream can go on from. `postgres.failover_slot`
//! says whether the worker wants one (`FailoverSlot::wanted`); the statements here make and
//! alter slots accordingly, for the server's version.

use pgwire_replication::PgWireError;

use super::primary_session::PrimarySession;
use crate::config::Stream;
use crate::pg::{quote_ident, quote_literal};

/// The SQL that creates the slot (`pg_create_logical_replication_slot`), with FAILOVER when
/// `failover` (only asked of 17+: the argument does not exist before).
pub fn create_sql(slot: &str, failover: bool) -> String {
    if failover {
        format!(
            "SELECT lsn::text FROM pg_create_logical_replication_slot({}, 'pgoutput', false, false, true)",
            quote_literal(slot)
        )
    } else {
        format!(
            "SELECT lsn::text FROM pg_create_logical_replication_slot({}, 'pgoutput')",
            quote_literal(slot)
        )
    }
}

/// `CREATE_REPLICATION_SLOT` exporting its snapshot, in the server's grammar: before 15 the
/// options are bare words (`EXPORT_SNAPSHOT`); from 15 a parenthesised list, where 17 adds
/// `FAILOVER`.
pub fn create_exporting_command(slot: &str, version_num: i32, failover: bool) -> String {
    let name = quote_ident(slot);
    if version_num < 150_000 {
        return format!("CREATE_REPLICATION_SLOT {name} LOGICAL pgoutput EXPORT_SNAPSHOT");
    }
    format!(
        "CREATE_REPLICATION_SLOT {name} LOGICAL pgoutput (SNAPSHOT 'export'{})",
        if failover { ", FAILOVER true" } else { "" }
    )
}

/// Makes the stream's slot a failover slot when it is wanted and the slot lacks FAILOVER:
/// `ALTER_REPLICATION_SLOT` on the gated session, just before START_REPLICATION would acquire
/// the slot (a slot in use cannot be altered: its error is classified as any busy slot's and
/// retried). Returns whether it altered the slot.
pub async fn ensure(session: &mut PrimarySession, stream: &Stream) -> Result<bool, PgWireError> {
    if !stream.source.failover_slot.wanted(session.version_num) {
        return Ok(false);
    }
    let failover = session
        .query_cell(&format!(
            "SELECT failover::text FROM pg_replication_slots WHERE slot_name = {}",
            quote_literal(&stream.slot)
        ))
        .await?;
    if failover.as_deref() != Some("false") {
        // Already a failover slot, or missing (START_REPLICATION then says so).
        return Ok(false);
    }
    session
        .query_cell(&format!(
            "ALTER_REPLICATION_SLOT {} (FAILOVER true)",
            quote_ident(&stream.slot)
        ))
        .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_follow_the_server_version() {
        assert_eq!(
            create_exporting_command("s", 140_023, false),
            "CREATE_REPLICATION_SLOT \"s\" LOGICAL pgoutput EXPORT_SNAPSHOT"
        );
        assert_eq!(
            create_exporting_command("s", 160_014, false),
            "CREATE_REPLICATION_SLOT \"s\" LOGICAL pgoutput (SNAPSHOT 'export')"
        );
        assert_eq!(
            create_exporting_command("s", 170_010, true),
            "CREATE_REPLICATION_SLOT \"s\" LOGICAL pgoutput (SNAPSHOT 'export', FAILOVER true)"
        );
        assert!(create_sql("s", true).ends_with("'pgoutput', false, false, true)"));
        assert!(create_sql("s", false).ends_with("'pgoutput')"));
    }
}
