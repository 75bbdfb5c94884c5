//! Typed readings of the Postgres catalog: the server's settings, the replicated tables, the
//! publication and the slot.
//!
//! Every fact the worker needs about Postgres is read here, once, as plain data: the preflight
//! turns readings into verdicts (`preflight::verdicts`), setup decides what to create from them
//! (`source::setup`), the streaming loop watches the slot and checks whether a broken table was
//! fixed (`pipeline::repair`). Nothing here decides anything; it only reads.

use crate::pg::{self, quote_ident};

/// A catalog query failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("reading {what} from Postgres: {reason}")]
pub struct CatalogError {
    pub what: &'static str,
    pub reason: String,
}

fn failed(what: &'static str) -> impl Fn(tokio_postgres::Error) -> CatalogError {
    move |e| CatalogError {
        what,
        reason: pg::describe(&e),
    }
}

/// Server-wide settings and the connected role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReading {
    pub wal_level: String,
    pub encoding: String,
    pub max_wal_senders: i32,
    /// `server_version_num`, e.g. 150018.
    pub version_num: i32,
    /// `max_slot_wal_keep_size` as Postgres shows it (`-1` when unlimited).
    pub max_slot_wal_keep_size: String,
    pub user: String,
    /// The role has the REPLICATION attribute (or is a superuser).
    pub can_replicate: bool,
    /// The managed providers' roles (`PROVIDER_ROLES`) that exist on this server: they tell which
    /// provider runs it.
    pub provider_roles: Vec<String>,
    /// Those of them the connected role is a member of (directly or through other roles).
    pub member_of: Vec<String>,
    /// Cloud SQL's `cloudsql.logical_decoding` flag (`on`/`off`); `None` elsewhere.
    pub cloudsql_logical_decoding: Option<String>,
}

/// Roles the managed Postgres services install: Amazon RDS and Aurora (`rds_superuser`,
/// `rds_replication`: membership grants replication), Google Cloud SQL (`cloudsqlsuperuser`),
/// Azure Database for PostgreSQL (`azure_pg_admin`), Supabase (`supabase_admin`).
pub const PROVIDER_ROLES: &[&str] = &[
    "rds_superuser",
    "rds_replication",
    "cloudsqlsuperuser",
    "azure_pg_admin",
    "supabase_admin",
];

pub async fn read_server(client: &tokio_postgres::Client) -> Result<ServerReading, CatalogError> {
    let row = client
        .query_one(
            "SELECT current_setting('wal_level'), current_setting('server_encoding'), \
                    current_setting('max_wal_senders')::int, current_setting('server_version_num')::int, \
                    current_setting('max_slot_wal_keep_size'), current_user::text, \
                    (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user), \
                    ARRAY(SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1) ORDER BY rolname), \
                    ARRAY(SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1) \
                          AND pg_has_role(current_user, oid, 'MEMBER') ORDER BY rolname), \
                    current_setting('cloudsql.logical_decoding', true)",
            &[&PROVIDER_ROLES],
        )
        .await
        .map_err(failed("server settings"))?;
    Ok(ServerReading {
        wal_level: row.get(0),
        encoding: row.get(1),
        max_wal_senders: row.get(2),
        version_num: row.get(3),
        max_slot_wal_keep_size: row.get(4),
        user: row.get(5),
        can_replicate: row.get::<_, Option<bool>>(6).unwrap_or(false),
        provider_roles: row.get(7),
        member_of: row.get(8),
        cloudsql_logical_decoding: row.get::<_, Option<String>>(9).filter(|v| !v.is_empty()),
    })
}

/// One table as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReading {
    pub name: String,
    pub oid: i64,
    /// `relreplident`: `f` full, `d` default, `n` nothing, `i` index.
    pub replica_identity: String,
    /// `relkind`: `r` for an ordinary table.
    pub kind: String,
    /// The connected role may SELECT from it.
    pub can_select: bool,
    /// Its live columns.
    pub columns: Vec<String>,
}

impl TableReading {
    pub fn is_ordinary(&self) -> bool {
        self.kind == "r"
    }

    pub fn identity_is_full(&self) -> bool {
        self.replica_identity == "f"
    }

    pub fn has_column(&self, name: &str) -> bool {
        self.columns.iter().any(|c| c == name)
    }
}

/// The tables of `names` in `schema` that exist (in any order; missing ones are absent).
pub async fn read_tables(
    client: &tokio_postgres::Client,
    schema: &str,
    names: &[String],
) -> Result<Vec<TableReading>, CatalogError> {
    let rows = client
        .query(
            "SELECT c.relname::text, c.oid::int8, c.relreplident::text, c.relkind::text, \
                    has_table_privilege(c.oid, 'SELECT'), \
                    ARRAY(SELECT a.attname::text FROM pg_attribute a \
                          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = ANY($2)",
            &[&schema, &names],
        )
        .await
        .map_err(failed("tables"))?;
    Ok(rows
        .iter()
        .map(|r| TableReading {
            name: r.get(0),
            oid: r.get(1),
            replica_identity: r.get(2),
            kind: r.get(3),
            can_select: r.get(4),
            columns: r.get(5),
        })
        .collect())
}

/// One table's membership in a publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicationMember {
    pub schema: String,
    pub table: String,
    /// It has a row filter (`WHERE`); always false before Postgres 15.
    pub row_filter: bool,
    /// Its column list, when the publication names one (Postgres 15+).
    pub columns: Option<Vec<String>>,
}

/// A publication: what it publishes and which tables it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicationReading {
    pub name: String,
    pub insert: bool,
    pub update: bool,
    pub delete: bool,
    pub truncate: bool,
    pub members: Vec<PublicationMember>,
}

impl PublicationReading {
    /// Inserts, updates and deletes are all published.
    pub fn publishes_changes(&self) -> bool {
        self.insert && self.update && self.delete
    }

    pub fn member(&self, schema: &str, table: &str) -> Option<&PublicationMember> {
        self.members
            .iter()
            .find(|m| m.schema == schema && m.table == table)
    }

    /// The `publish = '…'` list it has.
    pub fn actions(&self) -> Vec<&'static str> {
        [
            (self.insert, "insert"),
            (self.update, "update"),
            (self.delete, "delete"),
            (self.truncate, "truncate"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

/// The publication, or `None` when it does not exist. Row filters and column lists exist from
/// Postgres 15 on; before that they read as absent.
pub async fn read_publication(
    client: &tokio_postgres::Client,
    name: &str,
) -> Result<Option<PublicationReading>, CatalogError> {
    let Some(row) = client
        .query_opt(
            "SELECT pubinsert, pubupdate, pubdelete, pubtruncate, \
                    current_setting('server_version_num')::int \
             FROM pg_publication WHERE pubname = $1",
            &[&name],
        )
        .await
        .map_err(failed("publication"))?
    else {
        return Ok(None);
    };
    let version_num: i32 = row.get(4);
    let sql = if version_num >= 150_000 {
        "SELECT schemaname::text, tablename::text, rowfilter IS NOT NULL, attnames::text[] \
         FROM pg_publication_tables WHERE pubname = $1"
    } else {
        "SELECT schemaname::text, tablename::text, false, NULL::text[] \
         FROM pg_publication_tables WHERE pubname = $1"
    };
    let members = client
        .query(sql, &[&name])
        .await
        .map_err(failed("publication tables"))?
        .iter()
        .map(|r| PublicationMember {
            schema: r.get(0),
            table: r.get(1),
            row_filter: r.get(2),
            columns: r.get(3),
        })
        .collect();
    Ok(Some(PublicationReading {
        name: name.to_string(),
        insert: row.get(0),
        update: row.get(1),
        delete: row.get(2),
        truncate: row.get(3),
        members,
    }))
}

/// One reading of `pg_replication_slots` for a slot. Columns a server version lacks read as
/// `None`: `conflicting` before 16, `invalidation_reason`, `failover` and `synced` before 17.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlotReading {
    pub plugin: String,
    pub slot_type: String,
    pub database: Option<String>,
    pub active: bool,
    /// `reserved`, `extended`, `unreserved` or `lost`.
    pub wal_status: Option<String>,
    /// Why the slot was invalidated (17+): `wal_removed`, `rows_removed`,
    /// `wal_level_insufficient`, `idle_timeout` (18).
    pub invalidation_reason: Option<String>,
    /// A logical slot invalidated by a recovery conflict (16+).
    pub conflicting: Option<bool>,
    /// Created (or altered) to be synchronized to standbys (17+).
    pub failover: Option<bool>,
    /// A copy synchronized from the primary (17+; on a standby).
    pub synced: Option<bool>,
    /// Dropped at the end of its session, or on a standby not yet persisted by the slot sync.
    pub temporary: bool,
    pub confirmed_flush_lsn: Option<String>,
    /// `pg_current_wal_lsn() - confirmed_flush_lsn`.
    pub lag_bytes: Option<i64>,
    /// `pg_current_wal_lsn() - restart_lsn`: WAL the slot keeps.
    pub retained_bytes: Option<i64>,
    /// NULL when `max_slot_wal_keep_size = -1`.
    pub safe_wal_size: Option<i64>,
}

impl SlotReading {
    /// The slot can never stream again, by the catalog: `wal_status = lost` (Postgres removed WAL
    /// it still needs), an `invalidation_reason` (17+), or `conflicting` (16+).
    pub fn is_lost(&self) -> bool {
        self.wal_status.as_deref() == Some("lost")
            || self.invalidation_reason.is_some()
            || self.conflicting == Some(true)
    }

    /// What the catalog says of the slot's health, for checks and logs: `wal_status reserved`,
    /// `invalidated: rows_removed`, …
    pub fn health(&self) -> String {
        match (&self.invalidation_reason, self.conflicting) {
            (Some(reason), _) => format!("invalidated: {reason}"),
            (None, Some(true)) => "invalidated: conflicting with recovery".into(),
            _ => format!(
                "wal_status {}",
                self.wal_status.as_deref().unwrap_or("unknown")
            ),
        }
    }

    /// `confirmed_flush_lsn` as a number.
    pub fn confirmed_lsn(&self) -> Option<u64> {
        let (hi, lo) = self.confirmed_flush_lsn.as_deref()?.split_once('/')?;
        Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
    }

    /// A logical pgoutput slot of `database`.
    pub fn is_pgoutput_of(&self, database: &str) -> bool {
        self.slot_type == "logical"
            && self.plugin == "pgoutput"
            && self.database.as_deref() == Some(database)
    }
}

/// The columns of `pg_replication_slots` every version has, then those only some have, read
/// through the row's JSON so that one query serves every version (a missing key is NULL). On a
/// standby, the WAL positions are measured from what it replayed.
const SLOT_COLUMNS: &str = "coalesce(plugin::text, ''), slot_type::text, database::text, active, \
    wal_status::text, confirmed_flush_lsn::text, \
    (w.lsn - confirmed_flush_lsn)::int8, (w.lsn - restart_lsn)::int8, safe_wal_size::int8, \
    to_jsonb(s) ->> 'invalidation_reason', (to_jsonb(s) ->> 'conflicting')::bool, \
    (to_jsonb(s) ->> 'failover')::bool, (to_jsonb(s) ->> 'synced')::bool, temporary \
    FROM pg_replication_slots s, \
    (SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
                 ELSE pg_current_wal_lsn() END AS lsn) w";

fn slot_reading(r: &tokio_postgres::Row) -> SlotReading {
    SlotReading {
        plugin: r.get(0),
        slot_type: r.get(1),
        database: r.get(2),
        active: r.get(3),
        wal_status: r.get(4),
        confirmed_flush_lsn: r.get(5),
        lag_bytes: r.get(6),
        retained_bytes: r.get(7),
        safe_wal_size: r.get(8),
        invalidation_reason: r.get(9),
        conflicting: r.get(10),
        failover: r.get(11),
        synced: r.get(12),
        temporary: r.get(13),
    }
}

/// The slot, or `None` when it does not exist.
pub async fn read_slot(
    client: &tokio_postgres::Client,
    slot: &str,
) -> Result<Option<SlotReading>, CatalogError> {
    let sql = format!("SELECT {SLOT_COLUMNS} WHERE slot_name = $1");
    let row = client
        .query_opt(sql.as_str(), &[&slot])
        .await
        .map_err(failed("replication slot"))?;
    Ok(row.as_ref().map(slot_reading))
}

/// A standby's state as the slot's failover readiness needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StandbyReading {
    /// `pg_is_in_recovery()`: false once it was promoted (or if it never was a standby).
    pub in_recovery: bool,
    /// `sync_replication_slots` (17+; `None` before).
    pub sync_replication_slots: Option<String>,
    /// `hot_standby_feedback` and `primary_slot_name`, which the slot sync needs.
    pub hot_standby_feedback: String,
    pub primary_slot_name: String,
    /// Its copy of the slot, when it has one.
    pub slot: Option<SlotReading>,
}

/// Reads a server that should be a standby: its role, whether it synchronizes slots, its copy
/// of `slot`.
pub async fn read_standby(
    client: &tokio_postgres::Client,
    slot: &str,
) -> Result<StandbyReading, CatalogError> {
    let row = client
        .query_one(
            "SELECT pg_is_in_recovery(), \
                    (SELECT setting FROM pg_settings WHERE name = 'sync_replication_slots'), \
                    current_setting('hot_standby_feedback'), current_setting('primary_slot_name')",
            &[],
        )
        .await
        .map_err(failed("standby state"))?;
    Ok(StandbyReading {
        in_recovery: row.get(0),
        sync_replication_slots: row.get(1),
        hot_standby_feedback: row.get(2),
        primary_slot_name: row.get(3),
        slot: read_slot(client, slot).await?,
    })
}

/// One slot named in the primary's `synchronized_standby_slots` (17+), as the primary sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatingSlot {
    pub name: String,
    /// `None`: no such slot.
    pub slot: Option<SlotReading>,
}

/// The slots `synchronized_standby_slots` names (empty before 17 or when unset). Postgres sends a
/// failover slot's changes only once every one of them confirmed the WAL.
pub async fn read_gating_slots(
    client: &tokio_postgres::Client,
) -> Result<Vec<GatingSlot>, CatalogError> {
    let setting: Option<String> = client
        .query_opt(
            "SELECT setting FROM pg_settings WHERE name = 'synchronized_standby_slots'",
            &[],
        )
        .await
        .map_err(failed("synchronized_standby_slots"))?
        .and_then(|r| r.get(0));
    let names: Vec<String> = setting
        .unwrap_or_default()
        .split(',')
        .map(|n| n.trim().trim_matches('"').to_string())
        .filter(|n| !n.is_empty())
        .collect();
    let mut out = Vec::new();
    for name in names {
        let slot = read_slot(client, &name).await?;
        out.push(GatingSlot { name, slot });
    }
    Ok(out)
}

/// The current text values of `columns` of the row `id` of `schema.table`, or `None` when the
/// row is gone. (Repairs complete a change the stream described only partly from it.)
pub async fn read_row_values(
    client: &tokio_postgres::Client,
    schema: &str,
    table: &str,
    id: &str,
    columns: &[&str],
) -> Result<Option<Vec<Option<String>>>, CatalogError> {
    let select: Vec<String> = columns
        .iter()
        .map(|c| format!("{}::text", quote_ident(c)))
        .collect();
    let sql = format!(
        "SELECT {} FROM {}.{} WHERE id = $1",
        select.join(", "),
        quote_ident(schema),
        quote_ident(table)
    );
    let row = client
        .query_opt(sql.as_str(), &[&id])
        .await
        .map_err(failed("a run's current row"))?;
    Ok(row.map(|r| {
        (0..columns.len())
            .map(|i| r.get::<_, Option<String>>(i))
            .collect()
    }))
}
