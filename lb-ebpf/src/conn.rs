//! The connection table: which real each flow was given, its IPVS state and
//! when it was last seen. Reads go through the per-CPU flow cache first.

use crate::{
    flow_cache,
    maps::{XVS_CONNS, XVS_DESTS},
};
use lb_common::{
    ipvs::{self, ConnState},
    ConnEntry, ConnKey, Dest, GlobalConfig, PROTO_TCP,
};

const NS_PER_SEC: u64 = 1_000_000_000;
const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;

/// What the table says about a packet's flow.
pub enum Lookup {
    /// A live flow: forward to this dest.
    Hit {
        dest_idx: u32,
        dest: &'static Dest,
    },
    /// The flow is live but its real is gone, or a new SYN reuses a
    /// TIME_WAIT tuple: schedule it anew.
    Stale,
    Miss,
}

/// Looks the flow up and, for a live one, advances its state and clock.
#[inline(always)]
pub fn lookup(key: &ConnKey, tcp_flags: u8, now: u64, cfg: &GlobalConfig) -> Lookup {
    let mut slot = flow_cache::slot(key);
    if let Some(slot) = slot.as_deref_mut() {
        if flow_cache::holds(slot, key) {
            let before = slot.entry;
            if let hit @ Lookup::Hit { .. } = advance(&mut slot.entry, key, tcp_flags, now, cfg) {
                if flow_cache::needs_write_through(&before, &slot.entry) {
                    let _ = XVS_CONNS.insert(key, slot.entry, 0);
                }
                return hit;
            }
            // Stale or expired here: the table decides (another CPU may
            // have rescheduled or refreshed the flow).
            flow_cache::forget(slot);
        }
    }
    let Some(entry) = XVS_CONNS.get_ptr_mut(key) else {
        return Lookup::Miss;
    };
    let entry = unsafe { &mut *entry };
    let result = advance(entry, key, tcp_flags, now, cfg);
    if let (Lookup::Hit { .. }, Some(slot)) = (&result, slot) {
        flow_cache::fill(slot, key, entry);
    }
    result
}

/// The checks and the update one packet makes to a flow's entry.
#[inline(always)]
fn advance(
    entry: &mut ConnEntry,
    key: &ConnKey,
    tcp_flags: u8,
    now: u64,
    cfg: &GlobalConfig,
) -> Lookup {
    // Expired is the same as never seen (IPVS has dropped the conn by then),
    // whether or not the LRU has evicted the entry yet.
    if expired(entry, now, cfg) {
        return Lookup::Miss;
    }
    let Some(dest) = XVS_DESTS.get(entry.dest) else {
        return Lookup::Stale;
    };
    if dest.gen != entry.dest_gen || dest.gen == 0 {
        return Lookup::Stale;
    }
    if key.proto == PROTO_TCP {
        // IPVS's conn_reuse_mode: a fresh SYN on a TIME_WAIT flow starts over.
        if tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN && entry.state == ConnState::TimeWait as u8 {
            return Lookup::Stale;
        }
        entry.state = ipvs::tcp_next_state(entry.state, tcp_flags);
    }
    entry.last_seen_ns = now;
    Lookup::Hit {
        dest_idx: entry.dest,
        dest,
    }
}

#[inline(always)]
fn expired(entry: &ConnEntry, now: u64, cfg: &GlobalConfig) -> bool {
    let Some(timeout_s) = timeout_of(cfg, entry.state) else {
        return true;
    };
    now.wrapping_sub(entry.last_seen_ns) > timeout_s as u64 * NS_PER_SEC
}

/// The timeout of `state`. Kernels before 6.4 (Debian 12's 6.1) forget a
/// bound checked on a register once it is spilled to the stack and filled
/// again, and LLVM does that between the check and the indexed load when
/// it schedules them apart, so the verifier rejects the program. The
/// opaque copy (`black_box`) keeps the check and the load together: LLVM
/// cannot move the check above it.
#[inline(always)]
fn timeout_of(cfg: &GlobalConfig, state: u8) -> Option<u32> {
    let idx = core::hint::black_box(state) as usize;
    cfg.timeouts_s.get(idx).copied()
}

/// Records a newly scheduled flow, in the table and this CPU's cache.
#[inline(always)]
pub fn insert(key: &ConnKey, dest_idx: u32, dest_gen: u32, tcp_flags: u8, now: u64) {
    let state = if key.proto == PROTO_TCP {
        ipvs::tcp_next_state(ConnState::None as u8, tcp_flags)
    } else {
        ConnState::Udp as u8
    };
    let entry = ConnEntry {
        dest: dest_idx,
        dest_gen,
        last_seen_ns: now,
        state,
        _pad: [0; 7],
    };
    // An LRU map makes room by itself; a failed insert only means the next
    // packet of the flow is scheduled again.
    let _ = XVS_CONNS.insert(key, entry, 0);
    if let Some(slot) = flow_cache::slot(key) {
        flow_cache::fill(slot, key, &entry);
    }
}
