//! Direct routing: the IP packet is left as it is; only the Ethernet
//! addresses change, and the frame goes back out the interface it came in on.

use crate::{maps::XVS_IFACE_MACS, parse::ptr_at};
use aya_ebpf::programs::XdpContext;
use lb_common::{Dest, MAX_IFACES};

/// A MAC as one 4-byte and one 2-byte word, so it moves in two loads and
/// two stores instead of six byte copies.
#[derive(Clone, Copy)]
struct Mac(u32, u16);

impl Mac {
    #[inline(always)]
    unsafe fn load(p: *const u8) -> Mac {
        unsafe {
            Mac(
                p.cast::<u32>().read_unaligned(),
                p.add(4).cast::<u16>().read_unaligned(),
            )
        }
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut u8) {
        unsafe {
            p.cast::<u32>().write_unaligned(self.0);
            p.add(4).cast::<u16>().write_unaligned(self.1);
        }
    }
}

/// Destination MAC ← the real's, source MAC ← the interface's. Without a
/// known interface MAC the frame's own destination (ours) is the source.
#[inline(always)]
pub fn to_real(ctx: &XdpContext, dest: &Dest) -> Option<()> {
    let eth = ptr_at::<[u8; 12]>(ctx, 0)? as *mut u8;
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    unsafe {
        let src = match XVS_IFACE_MACS.get(ifindex % MAX_IFACES) {
            Some(iface) if iface.ifindex == ifindex => Mac::load(iface.mac.as_ptr()),
            _ => Mac::load(eth),
        };
        Mac::load(dest.mac().as_ptr()).store(eth);
        src.store(eth.add(6));
    }
    Some(())
}
