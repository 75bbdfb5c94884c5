//! What each captured fixture decodes to: message shapes (`tags`), the Relations against the
//! shipped DDL, and cell values column by column, for both REPLICA IDENTITY FULL tables and a
//! DEFAULT-identity table with custom types; that text cells are slices of the input; and an
//! ignored throughput measurement over them.

use std::borrow::Cow;
use std::collections::HashMap;

use super::*;

/// The message tags of a fixture, e.g. "BYRIC", for asserting the shape of a stream.
fn tags(messages: &[Message]) -> String {
    messages
        .iter()
        .map(|m| match m {
            Message::Begin(_) => 'B',
            Message::Commit(_) => 'C',
            Message::Origin(_) => 'O',
            Message::Relation(_) => 'R',
            Message::Type(_) => 'Y',
            Message::Insert(_) => 'I',
            Message::Update(_) => 'U',
            Message::Delete(_) => 'D',
            Message::Truncate(_) => 'T',
            Message::Message(_) => 'M',
        })
        .collect()
}

fn relations<'a>(messages: &'a [Message<'_>]) -> Vec<&'a Relation> {
    messages
        .iter()
        .filter_map(|m| {
            if let Message::Relation(r) = m {
                Some(r)
            } else {
                None
            }
        })
        .collect()
}

fn relation<'a>(messages: &'a [Message], name: &str) -> &'a Relation {
    relations(messages)
        .into_iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no Relation {name}"))
}

fn types<'a>(messages: &'a [Message<'_>]) -> Vec<&'a TypeMessage> {
    messages
        .iter()
        .filter_map(|m| {
            if let Message::Type(t) = m {
                Some(t)
            } else {
                None
            }
        })
        .collect()
}

fn inserts<'a, 'm>(messages: &'a [Message<'m>]) -> Vec<&'a Insert<'m>> {
    messages
        .iter()
        .filter_map(|m| {
            if let Message::Insert(i) = m {
                Some(i)
            } else {
                None
            }
        })
        .collect()
}

fn updates<'a, 'm>(messages: &'a [Message<'m>]) -> Vec<&'a Update<'m>> {
    messages
        .iter()
        .filter_map(|m| {
            if let Message::Update(u) = m {
                Some(u)
            } else {
                None
            }
        })
        .collect()
}

fn deletes<'a, 'm>(messages: &'a [Message<'m>]) -> Vec<&'a Delete<'m>> {
    messages
        .iter()
        .filter_map(|m| {
            if let Message::Delete(d) = m {
                Some(d)
            } else {
                None
            }
        })
        .collect()
}

fn truncates<'a>(messages: &'a [Message<'_>]) -> Vec<&'a Truncate> {
    messages
        .iter()
        .filter_map(|m| {
            if let Message::Truncate(t) = m {
                Some(t)
            } else {
                None
            }
        })
        .collect()
}

fn begin<'a>(messages: &'a [Message<'_>]) -> &'a Begin {
    match &messages[0] {
        Message::Begin(b) => b,
        other => panic!("expected Begin first, got {other:?}"),
    }
}

/// The cell of column `name` (looked up in the Relation, as the replicator will).
fn cell<'a, 't>(rel: &Relation, tuple: &'a Tuple<'t>, name: &str) -> &'a Cell<'t> {
    let i = rel
        .columns
        .iter()
        .position(|c| c.name == name)
        .unwrap_or_else(|| panic!("no column {name}"));
    &tuple.0[i]
}

#[track_caller]
fn text<'a>(rel: &Relation, tuple: &'a Tuple, name: &str) -> &'a str {
    match cell(rel, tuple, name) {
        Cell::Text(b) => std::str::from_utf8(b).expect("text cell is UTF-8"),
        other => panic!("column {name}: expected a text cell, got {other:?}"),
    }
}

#[track_caller]
fn assert_null(rel: &Relation, tuple: &Tuple, name: &str) {
    assert_eq!(cell(rel, tuple, name), &Cell::Null, "column {name}");
}

const TEXT_OID: u32 = 25;
const TEXT_ARRAY_OID: u32 = 1009;
const INT4_OID: u32 = 23;
const INT8_OID: u32 = 20;
const BOOL_OID: u32 = 16;
const FLOAT8_OID: u32 = 701;
const TIMESTAMP_OID: u32 = 1114;
const JSONB_OID: u32 = 3802;
/// Seconds from 1970-01-01 to 2000-01-01, the pgoutput timestamp epoch.
const PG_EPOCH_UNIX_SECS: i64 = 946_684_800;

/// Column names and types of a table, read from its CREATE TABLE in config/postgres.
fn columns_from_sql(sql: &str) -> Vec<(String, String)> {
    sql.lines()
        .filter_map(|l| l.strip_prefix("    \""))
        .map(|rest| {
            let (name, ty) = rest.split_once("\" ").unwrap();
            let ty = ty.split(" NOT NULL").next().unwrap();
            let ty = ty.split(" DEFAULT").next().unwrap().trim_end_matches(',');
            (name.to_owned(), ty.to_owned())
        })
        .collect()
}

/// The Relation matches the shipped DDL column for column, with the expected type OIDs
/// (custom enums resolved through the Type messages sent before it).
fn assert_relation_matches_sql(messages: &[Message], rel: &Relation, sql: &str) {
    let type_ids: HashMap<&str, u32> = types(messages)
        .iter()
        .map(|t| (t.name.as_str(), t.id))
        .collect();
    let expected = columns_from_sql(sql);
    assert_eq!(rel.columns.len(), expected.len());
    assert_eq!(rel.columns.len(), 83);
    for (col, (name, ty)) in rel.columns.iter().zip(&expected) {
        assert_eq!(&col.name, name);
        assert!(col.is_key, "REPLICA IDENTITY FULL flags {name}");
        let (oid, typmod) = match ty.as_str() {
            "TEXT" => (TEXT_OID, -1),
            "TEXT[]" => (TEXT_ARRAY_OID, -1),
            "INTEGER" => (INT4_OID, -1),
            "BOOLEAN" => (BOOL_OID, -1),
            "DOUBLE PRECISION" => (FLOAT8_OID, -1),
            "JSONB" => (JSONB_OID, -1),
            // TIMESTAMP(3): the precision is the type modifier.
            "TIMESTAMP(3)" => (TIMESTAMP_OID, 3),
            quoted => (type_ids[quoted.trim_matches('"')], -1),
        };
        assert_eq!(
            (col.type_oid, col.type_modifier),
            (oid, typmod),
            "column {name} {ty}"
        );
    }
}

#[test]
fn insert_into_both_full_tables() {
    let m = fixture("insert_full");
    assert_eq!(tags(&m), "BYYYRIYYYRIC");

    let b = begin(&m);
    // Committed while capturing: somewhere between 2020 and 2100 after the 2000-01-01 epoch.
    let year_micros = 365 * 86_400 * 1_000_000_i64;
    assert!(
        (20 * year_micros..100 * year_micros).contains(&b.commit_time_micros),
        "{b:?}"
    );

    let ty = types(&m);
    let names: Vec<_> = ty
        .iter()
        .map(|t| (t.namespace.as_str(), t.name.as_str()))
        .collect();
    assert_eq!(
        names[..3],
        [
            ("public", "RunEngineVersion"),
            ("public", "TaskRunStatus"),
            ("public", "RuntimeEnvironmentType")
        ]
    );
    // Types are re-sent before the second Relation even though the ids are the same.
    assert_eq!(ty[..3], ty[3..]);

    let task_run = relation(&m, "TaskRun");
    assert_eq!(task_run.namespace, "public");
    assert_eq!(task_run.replica_identity, ReplicaIdentity::Full);
    assert_relation_matches_sql(
        &m,
        task_run,
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/postgres/002_task_run.sql"
        )),
    );
    let v2 = relation(&m, "task_run_v2");
    assert_eq!(v2.replica_identity, ReplicaIdentity::Full);
    assert_ne!(v2.id, task_run.id);
    assert_relation_matches_sql(
        &m,
        v2,
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/postgres/003_task_run_v2.sql"
        )),
    );

    let ins = inserts(&m);
    assert_eq!(ins[0].relation_id, task_run.id);
    let row = &ins[0].new;
    let t = |name| text(task_run, row, name);
    assert_eq!(t("id"), "run_full_1");
    assert_eq!(t("number"), "42");
    assert_eq!(t("engine"), "V2");
    assert_eq!(t("status"), "COMPLETED_WITH_ERRORS");
    assert_eq!(t("environmentType"), "PRODUCTION");
    assert_null(task_run, row, "statusReason");
    assert_eq!(t("idempotencyKeyExpiresAt"), "2026-01-02 03:04:05.678");
    assert_eq!(t("createdAt"), "2026-01-02 03:04:05.001");
    assert_eq!(t("updatedAt"), "2026-01-02 03:04:06.999");
    assert_null(task_run, row, "startedAt");
    // jsonb is normalised by the server; text is sent verbatim (UTF-8 included).
    assert_eq!(
        t("idempotencyKeyOptions"),
        r#"{"key": "idem-1", "scope": "run"}"#
    );
    assert_eq!(t("payload"), r#"{"hello":"wörld","n":[1,2.5,null]}"#);
    assert_eq!(t("traceContext"), "{}");
    assert_null(task_run, row, "context");
    assert_eq!(
        t("error"),
        r#"{"type": "BUILT_IN_ERROR", "message": "tab\there \"quoted\" \\ newline\nend"}"#
    );
    assert_eq!(t("isTest"), "t");
    assert_eq!(t("isWarmStart"), "f");
    assert_eq!(t("resumeParentOnCompletion"), "f");
    assert_eq!(t("costInCents"), "1.5");
    assert_eq!(t("baseCostInCents"), "0.1");
    assert_eq!(t("attemptNumber"), "3");
    assert_null(task_run, row, "maxDurationInSeconds");
    assert_eq!(t("runTags"), r#"{"tag a","b,\"c\"",NULL,""}"#);
    assert_eq!(t("bulkActionGroupIds"), "{}");
    assert_eq!(t("realtimeStreams"), "{v1,v2}");
    // An empty string is a zero-length text cell, not NULL.
    assert_eq!(
        cell(task_run, row, "output"),
        &Cell::Text(Cow::Borrowed(b""))
    );
    assert_eq!(t("masterQueue"), "main");
    assert_eq!(t("taskEventStore"), "taskEvent");

    assert_eq!(ins[1].relation_id, v2.id);
    let sparse = &ins[1].new;
    assert_eq!(text(v2, sparse, "id"), "2Yx0sparse");
    assert_eq!(text(v2, sparse, "engine"), "V1");
    assert_eq!(text(v2, sparse, "status"), "PENDING");
    assert_eq!(text(v2, sparse, "updatedAt"), "2026-06-30 23:59:59.5");
    assert_eq!(text(v2, sparse, "payload"), "");
    assert_null(v2, sparse, "organizationId");
    assert_null(v2, sparse, "environmentType");
    assert_null(v2, sparse, "runTags");
    // Only the NOT NULL columns were given values, so exactly the nullable columns without a
    // DEFAULT are NULL.
    let sql = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/postgres/003_task_run_v2.sql"
    ));
    let no_value: Vec<bool> = sql
        .lines()
        .filter(|l| l.starts_with("    \""))
        .map(|l| !l.contains(" NOT NULL") && !l.contains(" DEFAULT "))
        .collect();
    let nulls: Vec<bool> = sparse.0.iter().map(|c| *c == Cell::Null).collect();
    assert_eq!(nulls, no_value);
    assert_eq!(nulls.iter().filter(|n| **n).count(), 52);
    assert!(
        !sparse
            .0
            .iter()
            .any(|c| matches!(c, Cell::UnchangedToast | Cell::Binary(_)))
    );
}

#[test]
fn update_full_identity_carries_whole_old_row() {
    let m = fixture("update_full");
    assert_eq!(tags(&m), "BYYYRUC");
    let rel = relation(&m, "TaskRun");
    let u = updates(&m)[0];
    assert_eq!(u.relation_id, rel.id);
    let old = u.old.as_ref().expect("FULL identity sends the old row");
    assert_eq!(old.kind, OldTupleKind::Full);
    assert_eq!(text(rel, &old.tuple, "status"), "COMPLETED_WITH_ERRORS");
    assert_eq!(text(rel, &u.new, "status"), "EXECUTING");
    assert_eq!(text(rel, &old.tuple, "attemptNumber"), "3");
    assert_eq!(text(rel, &u.new, "attemptNumber"), "4");
    assert_null(rel, &old.tuple, "startedAt");
    assert_eq!(text(rel, &u.new, "startedAt"), "2026-01-02 03:05:00");
    assert_eq!(text(rel, &old.tuple, "isTest"), "t");
    assert_eq!(text(rel, &u.new, "isTest"), "f");
    // Everything else is the same row, value for value.
    let changed = ["status", "attemptNumber", "startedAt", "isTest"];
    for (i, col) in rel.columns.iter().enumerate() {
        if !changed.contains(&col.name.as_str()) {
            assert_eq!(old.tuple.0[i], u.new.0[i], "column {}", col.name);
        }
    }
    assert_eq!(text(rel, &old.tuple, "organizationId"), "org_1");
}

fn assert_big_hex_value(value: &str) {
    assert_eq!(value.len(), 600 * 32);
    assert!(value.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[test]
fn toasted_values_inserted_then_left_unchanged() {
    let ins = fixture("insert_toast");
    assert_eq!(tags(&ins), "BYYYRIYYRIC");
    let (task_run, fixture_default) =
        (relation(&ins, "TaskRun"), relation(&ins, "fixture_default"));
    let rows = inserts(&ins);
    let big_output = text(task_run, &rows[0].new, "output");
    assert_big_hex_value(big_output);
    let big_default = text(fixture_default, &rows[1].new, "big");
    assert_big_hex_value(big_default);

    let m = fixture("update_toast_unchanged");
    assert_eq!(tags(&m), "BYYYRUYYRUC");
    let (task_run, fixture_default) = (relation(&m, "TaskRun"), relation(&m, "fixture_default"));
    let [full, default] = updates(&m)[..] else {
        panic!("two updates expected")
    };

    // FULL: the old row carries the detoasted value, the new one only says "unchanged".
    assert_eq!(full.relation_id, task_run.id);
    let old = full.old.as_ref().unwrap();
    assert_eq!(old.kind, OldTupleKind::Full);
    assert_eq!(text(task_run, &old.tuple, "output"), big_output);
    assert_eq!(cell(task_run, &full.new, "output"), &Cell::UnchangedToast);
    assert_eq!(
        text(task_run, &full.new, "status"),
        "COMPLETED_SUCCESSFULLY"
    );
    assert_eq!(
        text(task_run, &full.new, "completedAt"),
        "2026-01-01 00:01:00"
    );
    let unchanged: Vec<_> = full
        .new
        .0
        .iter()
        .filter(|c| **c == Cell::UnchangedToast)
        .collect();
    assert_eq!(unchanged.len(), 1);

    // DEFAULT, key unchanged: no old row at all, so the value is nowhere in the message.
    assert_eq!(default.relation_id, fixture_default.id);
    assert_eq!(default.old, None);
    assert_eq!(
        cell(fixture_default, &default.new, "big"),
        &Cell::UnchangedToast
    );
    assert_eq!(
        text(fixture_default, &default.new, "label"),
        "big one, relabelled"
    );
    assert_eq!(text(fixture_default, &default.new, "spot"), "(7,seven)");
}

fn assert_fixture_default_relation<'a>(m: &'a [Message<'_>]) -> &'a Relation {
    let rel = relation(m, "fixture_default");
    let ty = types(m);
    let mood = ty
        .iter()
        .find(|t| t.name == "fixture_mood")
        .expect("Type fixture_mood");
    let spot = ty
        .iter()
        .find(|t| t.name == "fixture_point")
        .expect("Type fixture_point");
    assert_eq!(
        (rel.namespace.as_str(), rel.replica_identity),
        ("public", ReplicaIdentity::Default)
    );
    let cols: Vec<_> = rel
        .columns
        .iter()
        .map(|c| (c.is_key, c.name.as_str(), c.type_oid, c.type_modifier))
        .collect();
    assert_eq!(
        cols[..5],
        [
            (true, "id", INT4_OID, -1),
            (false, "label", TEXT_OID, -1),
            (false, "mood", mood.id, -1),
            (false, "spot", spot.id, -1),
            (false, "big", TEXT_OID, -1),
        ]
    );
    rel
}

#[test]
fn insert_with_default_identity_and_custom_types() {
    let m = fixture("insert_default");
    assert_eq!(tags(&m), "BYYRIIRIC");
    let rel = assert_fixture_default_relation(&m);
    assert_eq!(rel.columns.len(), 5);
    let rows = inserts(&m);
    assert_eq!(
        rows[0].new.0,
        [
            Cell::Text(Cow::Borrowed(b"1")),
            Cell::Text(Cow::Borrowed(b"one")),
            Cell::Text(Cow::Borrowed(b"happy")),
            Cell::Text(Cow::Borrowed(br#"(1,"a b")"#)),
            Cell::Null,
        ]
    );
    assert_eq!(text(rel, &rows[1].new, "id"), "2");
    assert_null(rel, &rows[1].new, "mood");
    assert_null(rel, &rows[1].new, "spot");

    // A table with no custom types gets a Relation with no Type messages before it.
    let child = relation(&m, "fixture_child");
    assert_eq!(child.replica_identity, ReplicaIdentity::Default);
    let cols: Vec<_> = child
        .columns
        .iter()
        .map(|c| (c.is_key, c.name.as_str(), c.type_oid))
        .collect();
    assert_eq!(
        cols,
        [
            (true, "id", INT4_OID),
            (false, "parent_id", INT4_OID),
            (false, "note", TEXT_OID)
        ]
    );
    assert_eq!(rows[2].relation_id, child.id);
    assert_eq!(text(child, &rows[2].new, "note"), "child of one");
}

#[test]
fn update_default_identity_without_key_change_has_no_old_tuple() {
    let m = fixture("update_default_no_old");
    assert_eq!(tags(&m), "BYYRUC");
    let rel = assert_fixture_default_relation(&m);
    let u = updates(&m)[0];
    assert_eq!(u.old, None);
    assert_eq!(text(rel, &u.new, "id"), "1");
    assert_eq!(text(rel, &u.new, "label"), "one, updated");
    assert_eq!(text(rel, &u.new, "mood"), "sad");
    assert_eq!(text(rel, &u.new, "spot"), r#"(1,"a b")"#);
    assert_null(rel, &u.new, "big");
}

#[test]
fn update_default_identity_with_key_change_has_key_tuple() {
    let m = fixture("update_default_key_changed");
    assert_eq!(tags(&m), "BYYRUC");
    let rel = assert_fixture_default_relation(&m);
    let u = updates(&m)[0];
    let old = u.old.as_ref().expect("a key change sends the old key");
    assert_eq!(old.kind, OldTupleKind::Key);
    assert_eq!(
        old.tuple.0,
        [
            Cell::Text(Cow::Borrowed(b"2")),
            Cell::Null,
            Cell::Null,
            Cell::Null,
            Cell::Null
        ]
    );
    assert_eq!(text(rel, &u.new, "id"), "20");
    assert_eq!(text(rel, &u.new, "label"), "two, moved");
}

#[test]
fn delete_full_identity_carries_whole_row() {
    let m = fixture("delete_full");
    assert_eq!(tags(&m), "BYYYRDC");
    let rel = relation(&m, "task_run_v2");
    let d = deletes(&m)[0];
    assert_eq!(d.relation_id, rel.id);
    assert_eq!(d.old.kind, OldTupleKind::Full);
    // The same row as inserted by insert_full.
    let insert_full = fixture("insert_full");
    let inserted = &inserts(&insert_full)[1].new;
    assert_eq!(&d.old.tuple, inserted);
    assert_eq!(text(rel, &d.old.tuple, "friendlyId"), "run_sparse");
}

#[test]
fn delete_default_identity_carries_only_the_key() {
    let m = fixture("delete_default");
    assert_eq!(tags(&m), "BYYRDC");
    let rel = assert_fixture_default_relation(&m);
    let d = deletes(&m)[0];
    assert_eq!(d.relation_id, rel.id);
    assert_eq!(d.old.kind, OldTupleKind::Key);
    assert_eq!(
        d.old.tuple.0,
        [
            Cell::Text(Cow::Borrowed(b"20")),
            Cell::Null,
            Cell::Null,
            Cell::Null,
            Cell::Null
        ]
    );
}

#[test]
fn truncate_options_and_relations() {
    let m = fixture("truncate");
    // The Relation is re-sent before each TRUNCATE although this decoding session already sent
    // it: TRUNCATE gives the table a new relfilenode, which invalidates the relcache entry.
    assert_eq!(tags(&m), "BYYYRICBYYYRTCBYYRRTCBYYYRYYYRTCBYYRRTC");
    let [v2_insert] = relations(&m)[..1] else {
        unreachable!()
    };
    let ids = |names: &[&str]| -> Vec<u32> { names.iter().map(|n| relation(&m, n).id).collect() };
    let t = truncates(&m);
    assert_eq!(t.len(), 4);
    assert_eq!((t[0].options, &t[0].relation_ids), (0, &vec![v2_insert.id]));
    assert_eq!(
        (t[1].options, &t[1].relation_ids),
        (
            Truncate::CASCADE | Truncate::RESTART_IDENTITY,
            &ids(&["fixture_default", "fixture_child"])
        )
    );
    assert_eq!(
        (t[2].options, &t[2].relation_ids),
        (
            Truncate::RESTART_IDENTITY,
            &ids(&["TaskRun", "task_run_v2"])
        )
    );
    assert_eq!(
        (t[3].options, &t[3].relation_ids),
        (
            Truncate::CASCADE,
            &ids(&["fixture_default", "fixture_child"])
        )
    );
}

#[test]
fn origin_message_follows_begin() {
    let m = fixture("origin");
    assert_eq!(tags(&m), "BOYYRIC");
    let Message::Origin(o) = &m[1] else {
        unreachable!()
    };
    assert_eq!(
        o,
        &Origin {
            commit_lsn: 0x1234_ABCD,
            name: "fixture_origin".into()
        }
    );
    // With an origin, the transaction's commit time is the one given to
    // pg_replication_origin_xact_setup: 2026-03-04 05:06:07 UTC.
    assert_eq!(
        begin(&m).commit_time_micros,
        (1_772_600_767 - PG_EPOCH_UNIX_SECS) * 1_000_000
    );
    let rel = relation(&m, "fixture_default");
    assert_eq!(text(rel, &inserts(&m)[0].new, "label"), "from elsewhere");
}

#[test]
fn logical_messages_transactional_and_not() {
    let m = fixture("logical_message");
    assert_eq!(tags(&m), "BYYRIMCM");
    let b = begin(&m);
    let Message::Message(tx) = &m[5] else {
        unreachable!()
    };
    let Message::Message(nontx) = &m[7] else {
        unreachable!()
    };
    assert!(tx.transactional);
    assert_eq!(tx.prefix, "fixture-tx");
    assert_eq!(tx.content, Bytes::from_static(b"transactional hello"));
    // The LSN is the end of the message's WAL record, so at most the commit record's start.
    assert!(tx.lsn > 0 && tx.lsn <= b.final_lsn, "{tx:?} vs {b:?}");
    assert!(!nontx.transactional);
    assert_eq!(nontx.prefix, "fixture-nontx");
    assert_eq!(nontx.content, Bytes::from_static(b"\x00\xff\x41\x0a"));
    assert!(nontx.lsn > b.final_lsn);
}

#[test]
fn binary_option_gives_binary_cells() {
    let m = fixture("binary_insert");
    assert_eq!(tags(&m), "BYYRIC");
    assert_fixture_default_relation(&m);
    let row = &inserts(&m)[0].new;
    assert_eq!(
        row.0,
        [
            Cell::Binary(Cow::Owned(500_i32.to_be_bytes().to_vec())),
            Cell::Binary(Cow::Borrowed(b"binary")),
            // enum_send sends the label.
            Cell::Binary(Cow::Borrowed(b"happy")),
            // record_send: 2 fields, (int4 oid, len 4, 5), (text oid, len 4, "five").
            Cell::Binary(Cow::Borrowed(
                b"\0\0\0\x02\0\0\0\x17\0\0\0\x04\0\0\0\x05\0\0\0\x19\0\0\0\x04five"
            )),
            Cell::Null,
        ]
    );
}

#[test]
fn relation_sent_once_per_session_and_again_after_ddl() {
    let m = fixture("session_relation_resend");
    assert_eq!(tags(&m), "BYYRICBICBYYRIC");
    let rels = relations(&m);
    assert_eq!(rels[0].id, rels[1].id);
    assert_eq!(rels[0].columns.len(), 5);
    let extra = rels[1].columns.last().unwrap();
    assert_eq!(
        (extra.is_key, extra.name.as_str(), extra.type_oid),
        (false, "extra", INT8_OID)
    );
    let rows = inserts(&m);
    assert_eq!(rows[1].new.0.len(), 5);
    assert_eq!(rows[2].new.0.len(), 6);
    assert_eq!(text(rels[1], &rows[2].new, "extra"), "9007199254740993");
}

#[test]
fn text_cells_are_slices_of_the_input() {
    let data = raw_fixture("insert_toast")
        .into_iter()
        .find(|d| d[0] == b'I')
        .unwrap();
    let Message::Insert(ins) = decode(&data).unwrap() else {
        unreachable!()
    };
    let input = data.as_ptr_range();
    let mut big = 0;
    for c in &ins.new.0 {
        if let Cell::Text(v) = c {
            assert!(
                input.contains(&v.as_ptr()) || v.is_empty(),
                "cell copied out of the input"
            );
            big += usize::from(v.len() == 19_200);
        }
    }
    assert_eq!(big, 1);
}

#[test]
#[ignore = "benchmark: cargo test --release --lib decode_throughput -- --ignored --nocapture"]
fn decode_throughput() {
    for (name, tag) in [
        ("insert_full", b'I'),
        ("update_full", b'U'),
        ("insert_default", b'I'),
    ] {
        let data = raw_fixture(name).into_iter().find(|d| d[0] == tag).unwrap();
        let n = 200_000;
        let start = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(decode(std::hint::black_box(&data)).unwrap());
        }
        let per = start.elapsed() / n;
        println!(
            "{name} {} ({} bytes): {per:?} per message",
            tag as char,
            data.len()
        );
    }
}
