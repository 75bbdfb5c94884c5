//! Creating a slot together with a snapshot of everything before it, for the copies the daemon
//! makes from it: `CREATE_REPLICATION_SLOT … LOGICAL pgoutput EXPORT_SNAPSHOT` on a replication
//! session (only the replication protocol can export the snapshot that matches the slot's
//! consistent point exactly; `pg_create_logical_replication_slot` cannot). The option is written
//! in the form every supported server reads: PostgreSQL 14 knows only `EXPORT_SNAPSHOT`, and 15+
//! still accept it next to `(SNAPSHOT 'export')`.
//!
//! The slot streams exactly the transactions that commit after its consistent point, and the
//! snapshot shows exactly those before it: copied at `L` = the consistent point, no change is
//! missed and none is copied twice. The snapshot lives only while the session that exported it
//! sends no other command, so the caller imports it on its copy connections and only then lets
//! the session go ([`ExportedSlot::release`]).
//!
//! The session is opened on the primary among the source's hosts (`primary_session`: never a
//! slot on a standby), in the grammar of its version, with FAILOVER where it is wanted (17+).

use pgwire_replication::ReplicationClient;

use super::failover_slot;
use super::primary_session;
use super::stream::StreamError;
use crate::config::{Config, Stream};

/// A slot just created, and the session holding its exported snapshot.
pub struct ExportedSlot {
    session: ReplicationClient,
    /// The slot's consistent point.
    pub lsn: u64,
    /// The exported snapshot's name, for `SET TRANSACTION SNAPSHOT`.
    pub snapshot: String,
}

impl ExportedSlot {
    /// Lets the exporting session go: the snapshot ends with it; the slot stays.
    pub fn release(mut self) {
        self.session.abort();
    }
}

/// Creates `stream`'s slot and exports the snapshot of its consistent point.
pub async fn create(config: &Config, stream: &Stream) -> Result<ExportedSlot, StreamError> {
    let primary = primary_session::open(config, stream).await?;
    let failover = stream.source.failover_slot.wanted(primary.version_num);
    let mut session = primary.session;
    // A slot name is [a-z0-9_]; quoting it changes nothing but says it is a name.
    let sql = failover_slot::create_exporting_command(&stream.slot, primary.version_num, failover);
    let rows = match session.simple_query(&sql).await {
        Ok(rows) => rows,
        Err(e) => return Err(StreamError::classify(config, stream, e).await),
    };
    let field = |i: usize| {
        rows.first()
            .and_then(|r| r.get(i).cloned().flatten())
            .and_then(|b| String::from_utf8(b.to_vec()).ok())
    };
    let bad = |what: &str| StreamError::Connection {
        target: stream.source.url.to_string(),
        detail: format!("CREATE_REPLICATION_SLOT answered without {what}"),
    };
    let lsn_text = field(1).ok_or_else(|| bad("a consistent point"))?;
    let lsn = parse_lsn(&lsn_text).ok_or_else(|| bad("a readable consistent point"))?;
    let snapshot = field(2).ok_or_else(|| bad("a snapshot name"))?;
    Ok(ExportedSlot {
        session,
        lsn,
        snapshot,
    })
}

/// `0/16B6C50` as a number.
fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}
