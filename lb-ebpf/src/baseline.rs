//! Reference programs: the benchmark measures XVS against them, and
//! `xvs_pass` is the stub that lets native XDP_TX deliver on a veth peer.
#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

/// Does nothing: the floor for any XDP program.
#[xdp]
pub fn xvs_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// The least a DR balancer must do: set both MACs and transmit. Uses a fixed
/// next-hop MAC, so it costs what XVS's rewrite costs without any lookup.
#[xdp]
pub fn xvs_mac_swap_tx(ctx: XdpContext) -> u32 {
    const NEXT_HOP: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
    let start = ctx.data();
    if start + 14 > ctx.data_end() {
        return xdp_action::XDP_PASS;
    }
    let eth = unsafe { &mut *(start as *mut [u8; 12]) };
    eth.copy_within(0..6, 6);
    eth[0..6].copy_from_slice(&NEXT_HOP);
    xdp_action::XDP_TX
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
