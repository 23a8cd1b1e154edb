//! Picking a real for a new flow: persistence first, then the service's
//! scheduling table. Userspace computes the tables (rr/wrr sequences, sh
//! buckets), so here a choice is one or two array reads.

use crate::maps::{XVS_DESTS, XVS_PERSIST, XVS_SCHED_CURSOR, XVS_SCHED_POOL};
use lb_common::{
    ipvs, sched_kind, service_flags, Dest, PersistEntry, PersistKey, ServiceInfo, FAMILY_V6,
    NO_DEST,
};

const NS_PER_SEC: u64 = 1_000_000_000;

/// A chosen real: its index, generation and entry.
pub struct Choice {
    pub idx: u32,
    pub gen: u32,
    pub dest: &'static Dest,
}

/// Chooses a real for a new flow from `saddr`/`sport_be`, or `None` when the
/// service has no usable real.
#[inline(always)]
pub fn schedule(
    svc: &ServiceInfo,
    family: u8,
    saddr: &[u32; 4],
    sport_be: u16,
    now: u64,
) -> Option<Choice> {
    if svc.flags & service_flags::PERSISTENT == 0 {
        return from_table(svc, family, saddr, sport_be);
    }
    let key = persist_key(svc, family, saddr);
    if let Some(tpl) = XVS_PERSIST.get_ptr_mut(key) {
        let tpl = unsafe { &mut *tpl };
        let fresh = now.wrapping_sub(tpl.last_used_ns) <= svc.persist_timeout_s as u64 * NS_PER_SEC;
        if let Some(choice) = dest_at(tpl.dest) {
            // IPVS keeps using a template whose real is quiescent (weight
            // 0); only a removed real or an expired template ends it.
            if fresh && choice.gen == tpl.dest_gen {
                tpl.last_used_ns = now;
                return Some(choice);
            }
        }
    }
    let choice = from_table(svc, family, saddr, sport_be)?;
    let tpl = PersistEntry {
        dest: choice.idx,
        dest_gen: choice.gen,
        last_used_ns: now,
    };
    let _ = XVS_PERSIST.insert(key, tpl, 0);
    Some(choice)
}

/// The template key: service plus client address under the persistence mask.
#[inline(always)]
fn persist_key(svc: &ServiceInfo, family: u8, saddr: &[u32; 4]) -> PersistKey {
    let mask = lb_common::addr_words(&svc.persist_mask);
    let masked = [
        saddr[0] & mask[0],
        saddr[1] & mask[1],
        saddr[2] & mask[2],
        saddr[3] & mask[3],
    ];
    PersistKey {
        service_id: svc.id,
        family,
        _pad: [0; 3],
        caddr: bytemuck_cast(masked),
    }
}

#[inline(always)]
fn bytemuck_cast(words: [u32; 4]) -> [u8; 16] {
    // Same bytes, viewed as the map key's address field.
    unsafe { core::mem::transmute(words) }
}

#[inline(always)]
fn from_table(svc: &ServiceInfo, family: u8, saddr: &[u32; 4], sport_be: u16) -> Option<Choice> {
    if svc.table_len == 0 {
        return None;
    }
    let pos = if svc.sched_kind == sched_kind::SOURCE_HASH {
        sh_position(svc, family, saddr, sport_be)
    } else {
        ring_position(svc)?
    };
    let idx = *XVS_SCHED_POOL.get(svc.table_off.wrapping_add(pos))?;
    if idx == NO_DEST {
        return None;
    }
    dest_at(idx)
}

/// The next position of the service's ring on this CPU. Each CPU walks the
/// same sequence (IPVS's wrr order, or plain rr), so weights hold exactly per
/// cycle on every CPU without a shared, contended counter.
#[inline(always)]
fn ring_position(svc: &ServiceInfo) -> Option<u32> {
    let cursor = XVS_SCHED_CURSOR.get_ptr_mut(svc.id)?;
    let cursor = unsafe { &mut *cursor };
    let mut pos = *cursor;
    if pos >= svc.table_len {
        pos = 0;
    }
    *cursor = pos + 1;
    Some(pos)
}

/// `ip_vs_sh_hashkey()`: the bucket for this client. Userspace has already
/// resolved sh-fallback into the table, so one bucket read suffices.
#[inline(always)]
fn sh_position(svc: &ServiceInfo, family: u8, saddr: &[u32; 4], sport_be: u16) -> u32 {
    let fold_be = if family == FAMILY_V6 {
        saddr[0] ^ saddr[1] ^ saddr[2] ^ saddr[3]
    } else {
        saddr[0]
    };
    let port = if svc.flags & service_flags::SH_PORT != 0 {
        u16::from_be(sport_be)
    } else {
        0
    };
    ipvs::sh_bucket(u32::from_be(fold_be), port)
}

#[inline(always)]
fn dest_at(idx: u32) -> Option<Choice> {
    let dest = XVS_DESTS.get(idx)?;
    if dest.gen == 0 {
        return None;
    }
    Some(Choice {
        idx,
        gen: dest.gen,
        dest,
    })
}
