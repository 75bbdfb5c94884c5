//! Unit tests of `postgres`.

use super::*;

#[test]
fn names_round_trip() {
    for &col in Col::ALL {
        assert_eq!(Col::from_pg_name(col.pg_name()), Some(col));
    }
    assert_eq!(Col::from_pg_name("number"), None);
}
