//! Unit tests of `leader`.

use super::*;

#[test]
fn the_key_depends_on_database_and_slot_only() {
    assert_eq!(lock_key("trigger", "s"), lock_key("trigger", "s"));
    assert_ne!(lock_key("trigger", "s"), lock_key("trigger", "t"));
    assert_ne!(lock_key("a", "s"), lock_key("b", "s"));
}
