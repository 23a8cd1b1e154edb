//! Counters. All are per-CPU, so the fast path never shares a cache line.

use crate::maps::{XVS_DEST_STATS, XVS_SERVICE_STATS, XVS_VERDICTS};
use lb_common::Verdict;

/// Counts the verdict and hands back the XDP action it stands for.
#[inline(always)]
pub fn verdict(v: Verdict) -> u32 {
    if let Some(n) = XVS_VERDICTS.get_ptr_mut(v as u32) {
        unsafe { *n += 1 };
    }
    match v {
        Verdict::Tx => aya_ebpf::bindings::xdp_action::XDP_TX,
        _ => aya_ebpf::bindings::xdp_action::XDP_PASS,
    }
}

/// One packet of a service forwarded to a dest; `new_conn` when it opened a flow.
#[inline(always)]
pub fn forwarded(service_id: u32, dest: u32, bytes: u32, new_conn: bool) {
    let conns = new_conn as u64;
    if let Some(c) = XVS_SERVICE_STATS.get_ptr_mut(service_id) {
        let c = unsafe { &mut *c };
        c.conns += conns;
        c.packets += 1;
        c.bytes += bytes as u64;
    }
    if let Some(c) = XVS_DEST_STATS.get_ptr_mut(dest) {
        let c = unsafe { &mut *c };
        c.conns += conns;
        c.packets += 1;
        c.bytes += bytes as u64;
    }
}

/// A packet of a service that found no usable real.
#[inline(always)]
pub fn unscheduled(service_id: u32) {
    if let Some(c) = XVS_SERVICE_STATS.get_ptr_mut(service_id) {
        unsafe { (*c).unscheduled += 1 };
    }
}
