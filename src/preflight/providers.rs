//! Managed Postgres: how each provider grants the right to replicate and turns logical decoding
//! on, told apart by the roles it installs (`pg::catalog::PROVIDER_ROLES`), so that the replication
//! check accepts a provider's own grant and every fix names the provider's own step. Pure
//! functions of catalog readings and the configured URL; `verdicts` calls them.
//!
//! | provider | replication is granted by | logical decoding is turned on by |
//! |---|---|---|
//! | self-managed | the REPLICATION attribute (or superuser) | `wal_level = logical` |
//! | Amazon RDS, Aurora | membership in `rds_replication` | `rds.logical_replication = 1` (parameter group) |
//! | Google Cloud SQL | membership in `cloudsqlsuperuser`, with the `cloudsql.logical_decoding` flag on | that flag |
//! | Azure Database for PostgreSQL | the REPLICATION attribute, which the server admin (`azure_pg_admin`) grants | the server parameter `wal_level = logical` |
//! | Supabase | the REPLICATION attribute (`postgres` has it) | on already; replication needs the direct connection, not the pooler |

use crate::pg::catalog::ServerReading;
use crate::pg::quote_ident;

/// Who runs the server, as far as its roles tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    SelfManaged,
    Rds,
    CloudSql,
    Azure,
    Supabase,
}

impl Provider {
    pub fn detect(s: &ServerReading) -> Provider {
        let has = |role: &str| s.provider_roles.iter().any(|r| r == role);
        if has("rds_superuser") || has("rds_replication") {
            Provider::Rds
        } else if has("cloudsqlsuperuser") {
            Provider::CloudSql
        } else if has("azure_pg_admin") {
            Provider::Azure
        } else if has("supabase_admin") {
            Provider::Supabase
        } else {
            Provider::SelfManaged
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Provider::SelfManaged => "self-managed",
            Provider::Rds => "Amazon RDS/Aurora",
            Provider::CloudSql => "Cloud SQL",
            Provider::Azure => "Azure Database for PostgreSQL",
            Provider::Supabase => "Supabase",
        }
    }
}

/// The replication check's verdict: may the role stream, what was seen, and the fix.
pub struct Grant {
    pub ok: bool,
    pub observed: String,
    pub fix: String,
}

/// Whether the connected role may open a replication stream and create a slot.
pub fn replication_grant(s: &ServerReading) -> Grant {
    let provider = Provider::detect(s);
    let member = |role: &str| s.member_of.iter().any(|r| r == role);
    let decoding_on = s.cloudsql_logical_decoding.as_deref() == Some("on");
    let user = quote_ident(&s.user);
    let (ok, observed) = if s.can_replicate {
        (true, "REPLICATION".to_string())
    } else if member("rds_replication") {
        (true, "member of rds_replication".to_string())
    } else if member("cloudsqlsuperuser") {
        let flag = s.cloudsql_logical_decoding.as_deref().unwrap_or("unset");
        (
            decoding_on,
            format!("member of cloudsqlsuperuser, cloudsql.logical_decoding {flag}"),
        )
    } else {
        (false, "no REPLICATION attribute".to_string())
    };
    let observed = match provider {
        Provider::SelfManaged => observed,
        p => format!("{observed} ({})", p.name()),
    };
    let fix = match provider {
        Provider::SelfManaged => format!("ALTER ROLE {user} REPLICATION;"),
        Provider::Rds => format!(
            "GRANT rds_replication TO {user}; -- as a member of rds_superuser (the master user)"
        ),
        Provider::CloudSql if member("cloudsqlsuperuser") => {
            "set the instance flag cloudsql.logical_decoding=on (gcloud sql instances patch \
             INSTANCE --database-flags=cloudsql.logical_decoding=on; the instance restarts)"
                .to_string()
        }
        Provider::CloudSql => format!(
            "ALTER ROLE {user} WITH REPLICATION; -- as a cloudsqlsuperuser member (postgres); \
             and the flag cloudsql.logical_decoding=on"
        ),
        Provider::Azure => format!(
            "ALTER ROLE {user} WITH REPLICATION; -- as the server admin (a member of azure_pg_admin)"
        ),
        Provider::Supabase => format!(
            "ALTER ROLE {user} WITH REPLICATION; -- as postgres, or connect as postgres, which has it"
        ),
    };
    Grant { ok, observed, fix }
}

/// How to turn logical decoding on, on this server.
pub fn wal_level_fix(s: &ServerReading) -> String {
    match Provider::detect(s) {
        Provider::SelfManaged => {
            "ALTER SYSTEM SET wal_level = logical; -- then restart Postgres".into()
        }
        Provider::Rds => {
            "set rds.logical_replication = 1 in the instance's (Aurora: the cluster's) \
                          parameter group, then reboot"
                .into()
        }
        Provider::CloudSql => "set the instance flag cloudsql.logical_decoding=on (the instance \
                               restarts)"
            .into(),
        Provider::Azure => "set the server parameter wal_level = logical (az postgres \
                            flexible-server parameter set --name wal_level --value logical), \
                            then restart the server"
            .into(),
        Provider::Supabase => "Supabase runs with wal_level = logical: connect directly \
                               (db.<project>.supabase.co:5432), not through a pooler"
            .into(),
    }
}

/// Supabase's pooler (Supavisor: `*.pooler.supabase.com`, and port 6543 on any Supabase host)
/// cannot carry a replication connection. Returns what was seen and the fix, or `None` for any
/// other address.
pub fn supabase_pooler(host: &str, port: u16) -> Option<(String, String)> {
    let host = host.to_ascii_lowercase();
    let supabase = host.ends_with(".supabase.com") || host.ends_with(".supabase.co");
    let pooler = host.ends_with(".pooler.supabase.com") || (supabase && port == 6543);
    pooler.then(|| {
        (
            format!("{host}:{port}, Supabase's connection pooler"),
            "use the direct connection, db.<project>.supabase.co:5432 (the dashboard's Connect, \
             \"Direct connection\"): a pooler cannot open a replication stream"
                .to_string(),
        )
    })
}
