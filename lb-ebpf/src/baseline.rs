//! Reference programs: the benchmark measures XVS against them, and
//! `xvs_pass` is the stub that lets native XDP_TX deliver on a veth peer.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{Array, PerCpuArray},
    programs::XdpContext,
};

/// The lab bench's counters, per CPU: [0] frames `xvs_count_drop` dropped,
/// [1] the next flow number of `xvs_flow_gen`.
#[map(name = "XVS_BENCH_COUNT")]
static XVS_BENCH_COUNT: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);

/// `xvs_flow_gen`'s setting: [0] the number of flows it cycles through.
#[map(name = "XVS_BENCH_GEN")]
static XVS_BENCH_GEN: Array<u32> = Array::with_max_entries(1, 0);

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

/// A real server's arrival counter in the lab bench: counts, then drops.
#[xdp]
pub fn xvs_count_drop(_ctx: XdpContext) -> u32 {
    if let Some(n) = XVS_BENCH_COUNT.get_ptr_mut(0) {
        unsafe { *n += 1 };
    }
    xdp_action::XDP_DROP
}

/// The lab bench's traffic generator, run in the kernel's XDP live-frames
/// test mode: every frame becomes the next of `XVS_BENCH_GEN[0]` flows and
/// is sent out (XDP_TX). The template is an Ethernet + IPv4 (no options) +
/// TCP frame whose source address ends in 0.0 and whose IP ID is 0xffff;
/// flow `n` sets source port 1024 + n % 64512 and the address's low 16
/// bits to `h = n / 64512`, and the ID to `!h`: the one's-complement sum,
/// so the header checksum, stays valid.
#[xdp]
pub fn xvs_flow_gen(ctx: XdpContext) -> u32 {
    let start = ctx.data();
    if start + 38 > ctx.data_end() {
        return xdp_action::XDP_ABORTED;
    }
    let flows = XVS_BENCH_GEN.get(0).copied().unwrap_or(1).max(1) as u64;
    let Some(seq) = XVS_BENCH_COUNT.get_ptr_mut(1) else {
        return xdp_action::XDP_ABORTED;
    };
    let n = unsafe {
        let n = *seq % flows;
        *seq = n + 1;
        n as u32
    };
    let port = (1024 + n % 64512) as u16;
    let high = (n / 64512) as u16;
    let frame = unsafe { &mut *(start as *mut [u8; 38]) };
    frame[18..20].copy_from_slice(&(!high).to_be_bytes());
    frame[28..30].copy_from_slice(&high.to_be_bytes());
    frame[34..36].copy_from_slice(&port.to_be_bytes());
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
