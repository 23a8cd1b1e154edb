//! A per-CPU, direct-mapped cache in front of the connection table, as Open
//! vSwitch's exact-match cache sits in front of its flow table. A hit costs
//! an inlined array read and a 40-byte compare instead of a hash-table walk.
//!
//! The connection table stays the one truth: a slot is only a copy, state
//! changes are written through at once, the last-seen time about once a
//! second, and anything a slot cannot vouch for is looked up in the table.

use crate::maps::XVS_FLOW_CACHE;
use lb_common::{ConnEntry, ConnKey, FlowCacheSlot, FLOW_CACHE_SLOTS};

/// The slot a flow maps to on this CPU.
#[inline(always)]
pub fn slot(key: &ConnKey) -> Option<&'static mut FlowCacheSlot> {
    let w: &[u32; 10] = unsafe { &*(key as *const ConnKey).cast() };
    let mixed = w[0] ^ w[1] ^ w[2] ^ w[3] ^ w[4] ^ w[5] ^ w[6] ^ w[7] ^ w[8].rotate_left(16) ^ w[9];
    let idx = mixed.wrapping_mul(0x9E37_79B1) >> (32 - FLOW_CACHE_SLOTS.trailing_zeros());
    XVS_FLOW_CACHE.get_ptr_mut(idx).map(|p| unsafe { &mut *p })
}

/// Whether the slot holds this flow (compared a word at a time).
#[inline(always)]
pub fn holds(slot: &FlowCacheSlot, key: &ConnKey) -> bool {
    let a: &[u64; 5] = unsafe { &*(&slot.key as *const ConnKey).cast() };
    let b: &[u64; 5] = unsafe { &*(key as *const ConnKey).cast() };
    a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4]
}

#[inline(always)]
pub fn fill(slot: &mut FlowCacheSlot, key: &ConnKey, entry: &ConnEntry) {
    slot.key = *key;
    slot.entry = *entry;
}

/// Makes the slot match no flow (family 0 is never a real key's).
#[inline(always)]
pub fn forget(slot: &mut FlowCacheSlot) {
    slot.key.family = 0;
}

/// Whether the table must see this update now: the state changed, or the
/// last-seen time moved into a new ~1 s epoch (2^30 ns), so the table's
/// clock (expiry, listings, LRU age) lags by about a second at most.
#[inline(always)]
pub fn needs_write_through(before: &ConnEntry, after: &ConnEntry) -> bool {
    before.state != after.state || before.last_seen_ns >> 30 != after.last_seen_ns >> 30
}
