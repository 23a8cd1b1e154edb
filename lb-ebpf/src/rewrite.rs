//! Direct routing: the IP packet is left as it is; only the Ethernet
//! addresses change, and the frame goes back out the interface it came in on.

use crate::{maps::XVS_IFACE_MACS, parse::ptr_at};
use aya_ebpf::programs::XdpContext;
use lb_common::{Dest, MAX_IFACES};

/// Destination MAC ← the real's, source MAC ← the interface's. Without a
/// known interface MAC the frame's own destination (ours) is the source.
#[inline(always)]
pub fn to_real(ctx: &XdpContext, dest: &Dest) -> Option<()> {
    let eth = ptr_at::<[u8; 12]>(ctx, 0)?;
    let eth = unsafe { &mut *eth };
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    match XVS_IFACE_MACS.get(ifindex % MAX_IFACES) {
        Some(iface) if iface.ifindex == ifindex => eth[6..12].copy_from_slice(&iface.mac),
        _ => eth.copy_within(0..6, 6),
    }
    eth[0..6].copy_from_slice(&dest.mac()[0..6]);
    Some(())
}
