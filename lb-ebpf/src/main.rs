//! XVS data plane: an XDP program that balances VIP services in IPVS's
//! direct-routing (DR) mode. Read top to bottom:
//!
//! 1. parse Ethernet/VLAN/IP and drop out early for anything not a VIP;
//! 2. pass everything while this director is not the active (MASTER) one;
//! 3. follow an existing flow, or schedule a new one (persistence, then the
//!    service's table);
//! 4. rewrite the MACs and send the frame back out (XDP_TX), or pass it to
//!    the local stack when the real is this director.
//!
//! Anything that is not ours leaves with XDP_PASS and unchanged bytes.
#![no_std]
#![no_main]

mod conn;
mod flow_cache;
mod maps;
mod parse;
mod rewrite;
mod sched;
mod stats;

use aya_ebpf::{helpers::bpf_ktime_get_coarse_ns, macros::xdp, programs::XdpContext};
use aya_log_ebpf::debug;
use lb_common::{
    dest_flags, global_flags, vip_filter_bit, ConnKey, Dest, GlobalConfig, ServiceKey, Verdict,
    PROTO_TCP,
};
use maps::{XVS_GLOBAL, XVS_SERVICES, XVS_VIP_FILTER};
use parse::{L3, L4};

const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;

#[xdp]
pub fn xvs(ctx: XdpContext) -> u32 {
    stats::verdict(process(&ctx))
}

#[inline(always)]
fn process(ctx: &XdpContext) -> Verdict {
    let l3 = match parse::parse_l3(ctx) {
        Ok(l3) => l3,
        Err(v) => return v,
    };
    if !maybe_vip(&l3) {
        return Verdict::PassNotService;
    }
    let Some(cfg) = XVS_GLOBAL.get(0) else {
        return Verdict::PassInactive;
    };
    if cfg.active == 0 {
        return Verdict::PassInactive;
    }
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    // The MASTER's lease ran out: its daemon stopped advertising.
    if cfg.active_until_ns != 0 && now > cfg.active_until_ns {
        return Verdict::PassInactive;
    }
    if l3.fragment {
        return Verdict::PassFragment;
    }
    let l4 = match parse::parse_l4(ctx, &l3) {
        Ok(l4) => l4,
        Err(v) => return v,
    };
    balance(ctx, cfg, &l3, &l4, now)
}

/// One bit per address hash: a clear bit proves the address is no VIP.
#[inline(always)]
fn maybe_vip(l3: &L3) -> bool {
    let bit = vip_filter_bit(l3.family, l3.daddr);
    match XVS_VIP_FILTER.get(bit / 64) {
        Some(word) => word & (1u64 << (bit % 64)) != 0,
        None => false,
    }
}

#[inline(always)]
fn balance(ctx: &XdpContext, cfg: &GlobalConfig, l3: &L3, l4: &L4, now: u64) -> Verdict {
    let key = ConnKey {
        saddr: words_to_addr(l3.saddr),
        daddr: words_to_addr(l3.daddr),
        sport_be: l4.sport_be,
        dport_be: l4.dport_be,
        proto: l3.proto,
        family: l3.family,
        _pad: [0; 2],
    };
    let known_flow = match conn::lookup(&key, l4.tcp_flags, now, cfg) {
        conn::Lookup::Hit { dest_idx, dest } => {
            stats::forwarded(dest.service_id, dest_idx, l3.ip_len, false);
            return send(ctx, dest);
        }
        conn::Lookup::Stale => true,
        conn::Lookup::Miss => false,
    };

    let svc_key = ServiceKey {
        addr: key.daddr,
        port_be: key.dport_be,
        proto: key.proto,
        family: key.family,
    };
    let Some(svc) = (unsafe { XVS_SERVICES.get(svc_key) }) else {
        return Verdict::PassNotService;
    };
    // IPVS opens TCP flows only on SYN (without RST), unless sloppy_tcp.
    if key.proto == PROTO_TCP
        && !known_flow
        && cfg.flags & global_flags::SLOPPY_TCP == 0
        && (l4.tcp_flags & TCP_SYN == 0 || l4.tcp_flags & TCP_RST != 0)
    {
        return Verdict::PassNoConn;
    }
    let Some(choice) = sched::schedule(svc, l3.family, &l3.saddr, l4.sport_be, now) else {
        stats::unscheduled(svc.id);
        if cfg.flags & global_flags::DEBUG_LOG != 0 {
            debug!(ctx, "xvs: service {} has no usable real", svc.id);
        }
        return Verdict::PassNoDest;
    };
    conn::insert(&key, choice.idx, choice.gen, l4.tcp_flags, now);
    stats::forwarded(svc.id, choice.idx, l3.ip_len, true);
    if cfg.flags & global_flags::DEBUG_LOG != 0 {
        debug!(
            ctx,
            "xvs: new flow on service {} -> dest {}", svc.id, choice.idx
        );
    }
    send(ctx, choice.dest)
}

/// The last step: to the local stack, or out to the real.
#[inline(always)]
fn send(ctx: &XdpContext, dest: &Dest) -> Verdict {
    if dest.flags & dest_flags::LOCAL != 0 {
        return Verdict::PassLocalReal;
    }
    match rewrite::to_real(ctx, dest) {
        Some(()) => Verdict::Tx,
        None => Verdict::PassMalformed,
    }
}

#[inline(always)]
fn words_to_addr(words: [u32; 4]) -> [u8; 16] {
    // Same bytes: the words were loaded from the packet in memory order.
    unsafe { core::mem::transmute(words) }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
