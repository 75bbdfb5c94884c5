//! How a source's streams are shared among the instances streaming it: which instance should lead
//! each stream, when a standby claims one and when a leader hands one over. Pure functions of a
//! [`Roster`] reading, so every instance computes the same answer without talking to the others.
//!
//! **The assignment** ([`assign`]). With N streams and R members, every member gets N/R streams,
//! and N mod R of them one more: first those that already lead more (so a balanced set stays as it
//! is), then by a hash of (source, member). A member keeps the streams it leads up to its count,
//! the ones it prefers most first (rendezvous hashing: the highest hash of (stream, member)); every
//! other stream goes to the member under its count that prefers it most. Only what must move moves:
//! an instance that joins takes its share from those over theirs, one that leaves has its streams
//! spread over the rest.
//!
//! **Moves.** A standby takes a free stream assigned to it at once, and waits in the lock's
//! queue for one assigned to it that another instance leads ([`Move::Queue`]): the leader sees it
//! waiting and hands over, and Postgres grants the lock to the waiter the moment it is released —
//! no third instance can slip in between. A stream assigned to another instance is taken only
//! when it has stayed free for `grace` (its instance is not taking it: it may be unable to). A
//! leader hands a stream over only to the instance it is assigned to, only while that instance
//! waits for it, and only after leading it for `min_hold` (hysteresis: a roster that flaps moves
//! a stream at most once per `min_hold`). The advisory lock itself guarantees one leader.

use std::collections::BTreeMap;
use std::time::Duration;

use super::roster::Roster;

/// A well-mixed 64-bit hash (splitmix64's finaliser): stable across versions and machines, so
/// every instance ranks the same way.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// How much `member` prefers `key` (rendezvous hashing).
fn score(key: i64, member: u32) -> u64 {
    mix(key as u64 ^ mix(u64::from(member)))
}

/// Who should lead each of `streams` (their lock keys) among the roster's members; empty when
/// there is none.
pub fn assign(streams: &[i64], roster: &Roster) -> BTreeMap<i64, u32> {
    let mut out = BTreeMap::new();
    let members: Vec<u32> = roster.members.iter().copied().collect();
    if members.is_empty() {
        return out;
    }
    let mut streams: Vec<i64> = streams.to_vec();
    streams.sort_unstable();
    streams.dedup();
    let (n, r) = (streams.len(), members.len());
    let holder = |key: &i64| {
        roster
            .holders
            .get(key)
            .copied()
            .flatten()
            .filter(|m| roster.members.contains(m))
    };
    let held = |m: u32| streams.iter().filter(|k| holder(k) == Some(m)).count();
    // Who gets one more than n / r: those leading more first, then by a hash of the source (its
    // streams), so two sources do not give their extras to the same instance.
    let pool = streams.iter().fold(0u64, |acc, k| mix(acc ^ *k as u64)) as i64;
    let mut order = members.clone();
    order.sort_by_key(|&m| {
        (
            std::cmp::Reverse(held(m)),
            std::cmp::Reverse(score(pool, m)),
            m,
        )
    });
    let mut target: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, m) in order.iter().enumerate() {
        target.insert(*m, n / r + usize::from(i < n % r));
    }
    let mut count: BTreeMap<u32, usize> = members.iter().map(|m| (*m, 0)).collect();
    // Each member keeps what it leads, up to its count, the streams it prefers first.
    for &m in &members {
        let mut mine: Vec<i64> = streams
            .iter()
            .copied()
            .filter(|k| holder(k) == Some(m))
            .collect();
        mine.sort_by_key(|&k| (std::cmp::Reverse(score(k, m)), k));
        for k in mine.into_iter().take(target[&m]) {
            out.insert(k, m);
            *count.get_mut(&m).expect("a member") += 1;
        }
    }
    // The rest go to the member under its count that prefers each most.
    for &k in &streams {
        if out.contains_key(&k) {
            continue;
        }
        let best = members
            .iter()
            .copied()
            .filter(|m| count[m] < target[m])
            .max_by_key(|&m| (score(k, m), std::cmp::Reverse(m)))
            .expect("the counts add up to the streams");
        out.insert(k, best);
        *count.get_mut(&best).expect("a member") += 1;
    }
    out
}

/// What a standby does about a stream now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Move {
    /// Try the lock (it is free, or nobody else is taking it).
    Take,
    /// Wait in the lock's queue: the stream is ours, another instance leads it and will hand it
    /// over once it sees us waiting.
    Queue,
    /// Leave it to the instance it is assigned to.
    Wait,
}

/// What `me`, a standby of stream `key` among `streams`, does now. `roster` is `None` when there
/// is no fresh reading; `free_for` is how long the stream has shown no holder (or no reading
/// was fresh). Without a reading that counts `me` as a member, a stream is taken after `grace`
/// as it would be without sharing.
pub fn standby_move(
    streams: &[i64],
    roster: Option<&Roster>,
    me: u32,
    key: i64,
    free_for: Duration,
    grace: Duration,
) -> Move {
    let after_grace = if free_for >= grace {
        Move::Take
    } else {
        Move::Wait
    };
    let Some(roster) = roster.filter(|r| r.members.contains(&me)) else {
        return after_grace;
    };
    let mine = assign(streams, roster).get(&key) == Some(&me);
    match (mine, roster.holders.contains_key(&key)) {
        (true, false) => Move::Take,
        (true, true) => Move::Queue,
        (false, false) => after_grace,
        (false, true) => Move::Wait,
    }
}

/// `me` leads stream `key` among `streams`, and has for `held_for`: should it hand it over now?
/// Only to the member it is assigned to, while that member waits for it, after `min_hold`.
pub fn hand_over(
    streams: &[i64],
    roster: Option<&Roster>,
    me: u32,
    key: i64,
    held_for: Duration,
    min_hold: Duration,
) -> Option<u32> {
    let roster = roster.filter(|r| r.members.contains(&me))?;
    if held_for < min_hold {
        return None;
    }
    let owner = *assign(streams, roster).get(&key)?;
    (owner != me && roster.waits(key, owner)).then_some(owner)
}

#[cfg(test)]
mod tests;
