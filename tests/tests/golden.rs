//! Golden-packet tests: frames go through the real XDP program with
//! BPF_PROG_TEST_RUN, and what comes out is compared byte for byte.
//!
//! Every test loads its own data plane, so counters and tables never leak
//! between tests. Tests that check an exact rr/wrr sequence pin their thread
//! to one CPU first: the ring cursor is per CPU, and TEST_RUN runs on the
//! calling CPU.

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    thread::sleep,
    time::Duration,
};

use lb_common::{ipvs::sh_bucket, Counters, Verdict};
use xvs::{
    dataplane::{Dataplane, ServiceStats, Timeouts, XdpDataplane},
    model::{Protocol, RealSpec, SchedulerKind, ServiceSpec},
    scheduler::{Scheduler, SourceHash},
};
use xvs_tests::{fixtures::*, packet::*};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

const VIP: &str = "10.0.0.100";
const VIP6: &str = "2001:db8::100";
const PORT: u16 = 80;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Client number `n` (IPv4): 10.9.0.0 + n.
fn client(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a09_0000 + n))
}

/// Client number `n` (IPv6).
fn client6(n: u32) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(
        0x2001_0db8_0009_0000_0000_0000_0000_0000u128 + n as u128,
    ))
}

/// Real `n` of a test service: 10.0.1.n (or 2001:db8:1::n), MAC `real_mac(n)`.
fn real_n(n: u8, weight: u32) -> RealSpec {
    real(&format!("10.0.1.{n}"), PORT, weight, real_mac(n))
}

fn real6_n(n: u8, weight: u32) -> RealSpec {
    real(&format!("2001:db8:1::{n}"), PORT, weight, real_mac(n))
}

fn tcp_svc(vip: &str, sched: SchedulerKind, reals: Vec<RealSpec>) -> ServiceSpec {
    service(vip, PORT, Protocol::Tcp, sched, reals)
}

fn tcp(src: IpAddr, sport: u16, dst: IpAddr, flags: u8) -> Vec<u8> {
    Frame::tcp(src, sport, dst, PORT, flags).build()
}

fn run(dp: &XdpDataplane, frame: &[u8]) -> (u32, Vec<u8>) {
    dp.test_run(frame).expect("BPF_PROG_TEST_RUN")
}

fn verdict_count(dp: &XdpDataplane, v: Verdict) -> u64 {
    let all = dp.verdicts().unwrap();
    all.iter().find(|(x, _)| *x == v).unwrap().1
}

/// The frame must leave with XDP_PASS, byte for byte as it came, and be
/// counted under `why`.
#[track_caller]
fn assert_pass(dp: &XdpDataplane, frame: &[u8], why: Verdict) {
    let before = verdict_count(dp, why);
    let (action, out) = run(dp, frame);
    assert_eq!(action, XDP_PASS, "expected XDP_PASS ({why:?})");
    assert_eq!(out, frame, "a passed frame must be untouched ({why:?})");
    assert_eq!(
        verdict_count(dp, why),
        before + 1,
        "verdict {why:?} not counted"
    );
}

/// The frame must leave with XDP_TX and differ from the input only in its
/// MACs; returns the real's MAC it went to.
#[track_caller]
fn forward(dp: &XdpDataplane, frame: &[u8]) -> [u8; 6] {
    let (action, out) = run(dp, frame);
    assert_eq!(action, XDP_TX, "expected XDP_TX");
    let mac: [u8; 6] = out[0..6].try_into().unwrap();
    assert_eq!(out, expected_dr(frame, mac, DIRECTOR_MAC));
    mac
}

/// Like `forward`, but the real is known in advance.
#[track_caller]
fn assert_tx_to(dp: &XdpDataplane, frame: &[u8], mac: [u8; 6]) {
    let (action, out) = run(dp, frame);
    assert_eq!(action, XDP_TX, "expected XDP_TX");
    assert_eq!(out, expected_dr(frame, mac, DIRECTOR_MAC));
}

/// Rewrites the IPv4 header checksum of a frame whose IP header starts at `l3`.
fn fix_ipv4_checksum(frame: &mut [u8], l3: usize) {
    let ihl = (frame[l3] & 0x0f) as usize * 4;
    frame[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
    let c = checksum(&frame[l3..l3 + ihl.max(20)], 0);
    frame[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
}

fn service_stats<'a>(stats: &'a [ServiceStats], vip: &str, port: u16) -> &'a ServiceStats {
    stats
        .iter()
        .find(|s| s.id.vip == ip(vip) && s.id.port == port)
        .expect("service in stats")
}

fn real_counters(stats: &ServiceStats, addr: &str) -> Counters {
    stats
        .reals
        .iter()
        .find(|r| r.addr == ip(addr))
        .expect("real in stats")
        .counters
}

/// Bytes as IPVS counts them for an untagged, unpadded frame: the IP packet.
fn ip_bytes(frame: &[u8]) -> u64 {
    (frame.len() - 14) as u64
}

// ---------------------------------------------------------------------------
// 1, 2: forwarding and flow affinity (IPv4)
// ---------------------------------------------------------------------------

#[test]
fn syn_to_vip_is_forwarded_with_exact_bytes() {
    let dp = active_dataplane(&[tcp_svc(VIP, SchedulerKind::Rr, vec![real_n(1, 1)])]);
    let frame = tcp(client(1), 40000, ip(VIP), TCP_SYN);
    let (action, out) = run(&dp, &frame);
    assert_eq!(action, XDP_TX);
    // No interface MAC under TEST_RUN: the frame's destination (ours) becomes the source.
    assert_eq!(out, expected_dr(&frame, real_mac(1), DIRECTOR_MAC));
    assert_eq!(verdict_count(&dp, Verdict::Tx), 1);
}

#[test]
fn later_packets_of_a_flow_follow_the_syn() {
    let reals = (1..=4).map(|n| real_n(n, 1)).collect();
    let dp = active_dataplane(&[tcp_svc(VIP, SchedulerKind::Rr, reals)]);
    let mut used = HashSet::new();
    // Several flows, interleaved, so rr would move any packet that is rescheduled.
    let flows: Vec<(IpAddr, u16)> = (0..16).map(|i| (client(i % 3), 30000 + i as u16)).collect();
    let macs: Vec<[u8; 6]> = flows
        .iter()
        .map(|&(c, p)| forward(&dp, &tcp(c, p, ip(VIP), TCP_SYN)))
        .collect();
    for flags in [TCP_ACK, TCP_PSH | TCP_ACK, TCP_FIN | TCP_ACK, TCP_ACK] {
        for (&(c, p), &mac) in flows.iter().zip(&macs) {
            let frame = Frame::tcp(c, p, ip(VIP), PORT, flags)
                .payload(&[0xab; 100])
                .build();
            assert_tx_to(&dp, &frame, mac);
            used.insert(mac);
        }
    }
    assert_eq!(used.len(), 4, "rr spreads the flows over every real");
}

// ---------------------------------------------------------------------------
// 3: what is not ours passes untouched; IPv4 options are forwarded
// ---------------------------------------------------------------------------

#[test]
fn not_ours_passes_untouched() {
    let svc = tcp_svc(VIP, SchedulerKind::Rr, vec![real_n(1, 1), real_n(2, 1)]);
    let dp = active_dataplane(&[svc]);
    let c = client(1);

    // Not a VIP.
    assert_pass(
        &dp,
        &tcp(c, 1000, ip("10.0.0.101"), TCP_SYN),
        Verdict::PassNotService,
    );
    assert_pass(
        &dp,
        &tcp(c, 1000, ip("192.168.7.7"), TCP_SYN),
        Verdict::PassNotService,
    );
    // The VIP, wrong port.
    let wrong_port = Frame::tcp(c, 1000, ip(VIP), 443, TCP_SYN).build();
    assert_pass(&dp, &wrong_port, Verdict::PassNotService);
    // The VIP and port, wrong protocol: UDP to a TCP service, then ICMP.
    let udp = Frame::udp(c, 1000, ip(VIP), PORT).build();
    assert_pass(&dp, &udp, Verdict::PassNotService);
    let icmp = Frame::new(c, ip(VIP), L4::Other { proto: 1 })
        .payload(&[8, 0, 0xf7, 0xff, 0, 0, 0, 0])
        .build();
    assert_pass(&dp, &icmp, Verdict::PassNotTcpUdp);

    // Non-IP: an ARP request for the VIP.
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&CLIENT_MAC);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&CLIENT_MAC);
    arp.extend_from_slice(&[10, 9, 0, 1]);
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&[10, 0, 0, 100]);
    assert_pass(&dp, &arp, Verdict::PassNotIp);

    // TCP without SYN and without a flow: not ours to schedule.
    assert_pass(&dp, &tcp(c, 1001, ip(VIP), TCP_ACK), Verdict::PassNoConn);
    assert_pass(
        &dp,
        &tcp(c, 1002, ip(VIP), TCP_SYN | TCP_RST),
        Verdict::PassNoConn,
    );

    assert_eq!(verdict_count(&dp, Verdict::Tx), 0);
}

#[test]
fn ipv4_fragments_pass_untouched() {
    let dp = active_dataplane(&[tcp_svc(VIP, SchedulerKind::Rr, vec![real_n(1, 1)])]);
    // First fragment: MF set, offset 0.
    let mut first = Frame::tcp(client(1), 1000, ip(VIP), PORT, TCP_SYN);
    first.ipv4_frag = 0x2000;
    assert_pass(&dp, &first.build(), Verdict::PassFragment);
    // A later fragment: offset 185 (1480 bytes), MF clear.
    let mut later = Frame::new(client(1), ip(VIP), L4::Other { proto: 6 }).payload(&[0x55; 40]);
    later.ipv4_frag = 185;
    assert_pass(&dp, &later.build(), Verdict::PassFragment);
    // A middle fragment: MF and an offset.
    later.ipv4_frag = 0x2000 | 185;
    assert_pass(&dp, &later.build(), Verdict::PassFragment);
    assert_eq!(verdict_count(&dp, Verdict::Tx), 0);
}

#[test]
fn truncated_ipv4_frames_pass_untouched() {
    let dp = active_dataplane(&[tcp_svc(VIP, SchedulerKind::Rr, vec![real_n(1, 1)])]);
    let full = tcp(client(1), 1000, ip(VIP), TCP_SYN); // 14 + 20 + 20 + 3 bytes
    assert_eq!(full.len(), 57);
    // Inside the Ethernet header: the kernel's TEST_RUN refuses frames
    // under ETH_HLEN (no driver hands XDP one); if it ever runs them, they
    // must pass.
    for cut in [0, 6, 12, 13] {
        if let Ok((action, out)) = dp.test_run(&full[..cut]) {
            assert_eq!((action, &out[..]), (XDP_PASS, &full[..cut]));
        }
    }
    // 14: Ethernet header only; 15..34: inside the IPv4 header; 34..54:
    // inside the TCP header (tot_len now exceeds the frame).
    for cut in [14, 15, 20, 33, 34, 35, 44, 53] {
        assert_pass(&dp, &full[..cut], Verdict::PassMalformed);
    }
    // Inside the 802.1Q tag (its inner ethertype cut).
    let tagged = Frame::tcp(client(1), 1000, ip(VIP), PORT, TCP_SYN)
        .vlan(10)
        .build();
    for cut in [15, 17, 18, 30] {
        assert_pass(&dp, &tagged[..cut], Verdict::PassMalformed);
    }
    // A consistent IPv4 header (tot_len = 30) carrying only 10 bytes of
    // TCP: the L4 bounds check must catch it.
    let mut short = full[..44].to_vec();
    short[16..18].copy_from_slice(&30u16.to_be_bytes());
    fix_ipv4_checksum(&mut short, 14);
    assert_pass(&dp, &short, Verdict::PassMalformed);
    assert_eq!(verdict_count(&dp, Verdict::Tx), 0);
}

#[test]
fn l4_header_beyond_the_ip_length_passes_untouched() {
    let dp = active_dataplane(&[
        tcp_svc(VIP, SchedulerKind::Rr, vec![real_n(1, 1)]),
        tcp_svc(VIP6, SchedulerKind::Rr, vec![real6_n(1, 1)]),
        udp_svc(1),
    ]);
    // The IP length says only part of the L4 header follows; the frame
    // carries more (padding or junk). IPVS sees the packet trimmed to its
    // IP length, so the header is truncated: pass untouched.
    for l4 in [0u16, 10, 14, 19] {
        let mut f = tcp(client(1), 1000, ip(VIP), TCP_SYN);
        f[16..18].copy_from_slice(&(20 + l4).to_be_bytes());
        fix_ipv4_checksum(&mut f, 14);
        assert_pass(&dp, &f, Verdict::PassMalformed);
        let mut f = tcp(client6(1), 1000, ip(VIP6), TCP_SYN);
        f[18..20].copy_from_slice(&l4.to_be_bytes());
        assert_pass(&dp, &f, Verdict::PassMalformed);
    }
    for l4 in [0u16, 4, 7] {
        let mut f = udp(client(1), 1000);
        f[16..18].copy_from_slice(&(20 + l4).to_be_bytes());
        fix_ipv4_checksum(&mut f, 14);
        assert_pass(&dp, &f, Verdict::PassMalformed);
    }
    // Complete packets with trailing padding are still forwarded, padding
    // and all.
    for mut f in [
        tcp(client(1), 1000, ip(VIP), TCP_SYN),
        tcp(client6(1), 1000, ip(VIP6), TCP_SYN),
        udp(client(1), 1000),
    ] {
        f.extend_from_slice(&[0; 6]);
        forward(&dp, &f);
    }
    assert_eq!(dp.connections().unwrap().len(), 3);
}

#[test]
fn malformed_ipv4_passes_untouched() {
    let dp = active_dataplane(&[tcp_svc(VIP, SchedulerKind::Rr, vec![real_n(1, 1)])]);
    let good = tcp(client(1), 1000, ip(VIP), TCP_SYN);

    // ihl < 5, for every such value.
    for ihl in 0..5u8 {
        let mut f = good.clone();
        f[14] = 0x40 | ihl;
        fix_ipv4_checksum(&mut f, 14);
        assert_pass(&dp, &f, Verdict::PassMalformed);
    }
    // tot_len one byte past the frame, and far past it.
    for tot in [good.len() as u16 - 14 + 1, 1500] {
        let mut f = good.clone();
        f[16..18].copy_from_slice(&tot.to_be_bytes());
        fix_ipv4_checksum(&mut f, 14);
        assert_pass(&dp, &f, Verdict::PassMalformed);
    }
    // tot_len smaller than the header.
    let mut f = good.clone();
    f[16..18].copy_from_slice(&19u16.to_be_bytes());
    fix_ipv4_checksum(&mut f, 14);
    assert_pass(&dp, &f, Verdict::PassMalformed);
    // Ethertype IPv4, version 6.
    let mut f = good.clone();
    f[14] = 0x65;
    assert_pass(&dp, &f, Verdict::PassMalformed);
    // TCP data offset < 5.
    let mut f = good.clone();
    f[14 + 20 + 12] = 4 << 4;
    assert_pass(&dp, &f, Verdict::PassMalformed);

    assert_eq!(verdict_count(&dp, Verdict::Tx), 0);
    // Nothing of this opened a flow: the good SYN is the service's first.
    assert_tx_to(&dp, &good, real_mac(1));
    assert_eq!(dp.connections().unwrap().len(), 1);
}

#[test]
fn ipv4_with_options_to_a_vip_is_forwarded() {
    let dp = active_dataplane(&[tcp_svc(VIP, SchedulerKind::Rr, vec![real_n(1, 1)])]);
    for options in [
        vec![0x94, 0x04, 0, 0], // router alert
        vec![1, 1, 1, 0],       // NOP NOP NOP EOL
        [1u8; 40].to_vec(),     // the longest header: ihl 15
    ] {
        let mut f = Frame::tcp(client(1), 1000, ip(VIP), PORT, TCP_SYN);
        f.ipv4_options = options;
        let frame = f.build();
        assert_tx_to(&dp, &frame, real_mac(1));
        // The flow's ports were read past the options: its ACK hits the flow.
        let mut ack = Frame::tcp(client(1), 1000, ip(VIP), PORT, TCP_ACK);
        ack.ipv4_options = f.ipv4_options.clone();
        assert_tx_to(&dp, &ack.build(), real_mac(1));
    }
    assert_eq!(dp.connections().unwrap().len(), 1);
}

// ---------------------------------------------------------------------------
// 4: VLAN
// ---------------------------------------------------------------------------

#[test]
fn vlan_tagged_vip_packet_keeps_its_tag() {
    let dp = active_dataplane(&[tcp_svc(VIP, SchedulerKind::Rr, vec![real_n(7, 1)])]);
    let mut bytes = 0;
    for flags in [TCP_SYN, TCP_ACK, TCP_PSH | TCP_ACK] {
        let frame = Frame::tcp(client(1), 1000, ip(VIP), PORT, flags)
            .vlan(42)
            .build();
        assert_eq!(&frame[12..16], &[0x81, 0x00, 0x00, 42]);
        // expected_dr changes bytes 0..12 only: the tag must come out intact.
        assert_tx_to(&dp, &frame, real_mac(7));
        bytes += (frame.len() - 18) as u64;
    }
    // The tag is not counted as IP bytes.
    assert_eq!(dp.stats().unwrap()[0].counters.bytes, bytes);
    // A tagged packet that is not ours passes as it is.
    let other = Frame::tcp(client(1), 1000, ip("10.0.0.1"), PORT, TCP_SYN)
        .vlan(42)
        .build();
    assert_pass(&dp, &other, Verdict::PassNotService);
}

// ---------------------------------------------------------------------------
// 5: inactive director
// ---------------------------------------------------------------------------

#[test]
fn inactive_director_passes_everything_until_active_again() {
    let mut dp = active_dataplane(&[tcp_svc(
        VIP,
        SchedulerKind::Rr,
        vec![real_n(1, 1), real_n(2, 1)],
    )]);
    let est_syn = tcp(client(1), 1000, ip(VIP), TCP_SYN);
    let est_mac = forward(&dp, &est_syn);

    dp.set_active(false).unwrap();
    assert_pass(
        &dp,
        &tcp(client(2), 2000, ip(VIP), TCP_SYN),
        Verdict::PassInactive,
    );
    // Established flows pass too: the other director owns them now.
    assert_pass(
        &dp,
        &tcp(client(1), 1000, ip(VIP), TCP_ACK),
        Verdict::PassInactive,
    );
    assert_pass(
        &dp,
        &Frame::udp(client(1), 1, ip(VIP), PORT).build(),
        Verdict::PassInactive,
    );

    dp.set_active(true).unwrap();
    forward(&dp, &tcp(client(2), 2000, ip(VIP), TCP_SYN));
    assert_tx_to(&dp, &tcp(client(1), 1000, ip(VIP), TCP_ACK), est_mac);
}

// ---------------------------------------------------------------------------
// 6: local real
// ---------------------------------------------------------------------------

#[test]
fn local_real_passes_to_the_stack_and_is_counted() {
    let mut local = real_n(1, 1);
    local.local = true;
    let dp = active_dataplane(&[tcp_svc(VIP, SchedulerKind::Rr, vec![local])]);
    let syn = tcp(client(1), 1000, ip(VIP), TCP_SYN);
    let ack = Frame::tcp(client(1), 1000, ip(VIP), PORT, TCP_ACK)
        .payload(&[1; 200])
        .build();
    assert_pass(&dp, &syn, Verdict::PassLocalReal);
    assert_pass(&dp, &ack, Verdict::PassLocalReal);

    let stats = dp.stats().unwrap();
    let svc = service_stats(&stats, VIP, PORT);
    let bytes = ip_bytes(&syn) + ip_bytes(&ack);
    for c in [svc.counters, real_counters(svc, "10.0.1.1")] {
        assert_eq!((c.conns, c.packets, c.bytes), (1, 2, bytes));
    }
    assert_eq!(dp.connections().unwrap().len(), 1);
}

#[test]
fn local_and_remote_reals_share_a_service() {
    pin_to_one_cpu();
    let mut local = real_n(1, 1);
    local.local = true;
    // IPVS order: real 2 first, then the local one.
    let dp = active_dataplane(&[tcp_svc(VIP, SchedulerKind::Rr, vec![local, real_n(2, 1)])]);
    for i in 0..6 {
        let syn = tcp(client(1), 1000 + i, ip(VIP), TCP_SYN);
        if i % 2 == 0 {
            assert_tx_to(&dp, &syn, real_mac(2));
        } else {
            assert_pass(&dp, &syn, Verdict::PassLocalReal);
        }
    }
}

// ---------------------------------------------------------------------------
// 7: wrr follows IPVS's sequence exactly
// ---------------------------------------------------------------------------

/// Runs `n` new flows through a wrr service with reals of weight 1, 2, 3
/// (added in that order) and checks counts and every 6-flow window.
fn wrr_exact(vip: &str, reals: Vec<RealSpec>, client_of: fn(u32) -> IpAddr, n: u32) {
    pin_to_one_cpu();
    let dp = active_dataplane(&[tcp_svc(vip, SchedulerKind::Wrr, reals)]);
    // IPVS's list is newest first: w3 (mac 3), w2 (mac 2), w1 (mac 1); its
    // wrr picks weight >= 3, then >= 2, then >= 1.
    let cycle = [3u8, 3, 2, 3, 2, 1].map(real_mac);
    let mut counts: HashMap<[u8; 6], u32> = HashMap::new();
    for i in 0..n {
        let frame = tcp(
            client_of(i / 10_000),
            10_000 + (i % 10_000) as u16,
            ip(vip),
            TCP_SYN,
        );
        let mac = forward(&dp, &frame);
        assert_eq!(
            mac,
            cycle[(i % 6) as usize],
            "flow {i} breaks the IPVS cycle"
        );
        *counts.entry(mac).or_default() += 1;
    }
    let per = n / 6;
    assert_eq!(counts[&real_mac(1)], per);
    assert_eq!(counts[&real_mac(2)], 2 * per);
    assert_eq!(counts[&real_mac(3)], 3 * per);
    let svc = dp.stats().unwrap();
    assert_eq!(svc[0].counters.conns, n as u64);
}

#[test]
fn wrr_60000_flows_match_ipvs_exactly() {
    let reals = vec![real_n(1, 1), real_n(2, 2), real_n(3, 3)];
    wrr_exact(VIP, reals, client, 60_000);
}

#[test]
fn wrr_cycle_agrees_with_the_userspace_table() {
    // The same cycle, derived from the scheduler's own table, as a cross-check
    // of the hard-coded one above.
    let t = xvs::scheduler::WeightedRoundRobin.table(&[3, 2, 1]);
    let macs: Vec<[u8; 6]> = t.iter().map(|i| real_mac(3 - i.unwrap() as u8)).collect();
    assert_eq!(macs, [3u8, 3, 2, 3, 2, 1].map(real_mac).to_vec());
}

// ---------------------------------------------------------------------------
// 8: sh matches IPVS's bucket table
// ---------------------------------------------------------------------------

/// The real's MAC that IPVS's sh picks (reals given as added), or `None`
/// for a bucket without a usable real.
fn sh_predict(reals: &[RealSpec], fallback: bool, fold_host: u32, port: u16) -> Option<[u8; 6]> {
    let list: Vec<&RealSpec> = reals.iter().rev().collect(); // IPVS order
    let weights: Vec<u32> = list.iter().map(|r| r.weight).collect();
    let table = SourceHash { fallback }.table(&weights);
    table[sh_bucket(fold_host, port) as usize].map(|i| list[i].mac)
}

fn fold(addr: IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => a
            .octets()
            .chunks(4)
            .map(|w| u32::from_be_bytes(w.try_into().unwrap()))
            .fold(0, |x, w| x ^ w),
    }
}

fn sh_matches_ipvs(vip: &str, reals: Vec<RealSpec>, client_of: fn(u32) -> IpAddr) {
    let sched = SchedulerKind::Sh {
        fallback: false,
        port: false,
    };
    let dp = active_dataplane(&[tcp_svc(vip, sched, reals.clone())]);
    let mut per_real: HashMap<[u8; 6], u32> = HashMap::new();
    for n in 0..600 {
        let c = client_of(n * 7919); // spread over many buckets
        let want = sh_predict(&reals, false, fold(c), 0).expect("every real is up");
        // Many source ports: always the same real.
        for p in 0..8 {
            let mac = forward(&dp, &tcp(c, 20000 + p * 101, ip(vip), TCP_SYN));
            assert_eq!(mac, want, "client {c} port {p}");
        }
        *per_real.entry(want).or_default() += 1;
    }
    // Different clients spread over every real.
    assert_eq!(per_real.len(), reals.len(), "{per_real:?}");
}

#[test]
fn sh_same_client_same_real_as_ipvs_predicts() {
    let reals = vec![real_n(1, 1), real_n(2, 2), real_n(3, 3)];
    sh_matches_ipvs(VIP, reals, client);
}

#[test]
fn sh_port_hashes_the_source_port_too() {
    let reals = vec![real_n(1, 1), real_n(2, 1), real_n(3, 1)];
    let sched = SchedulerKind::Sh {
        fallback: false,
        port: true,
    };
    let dp = active_dataplane(&[tcp_svc(VIP, sched, reals.clone())]);
    let c = client(5);
    let mut seen = HashSet::new();
    for port in 1000..1300u16 {
        let want = sh_predict(&reals, false, fold(c), port).unwrap();
        assert_eq!(forward(&dp, &tcp(c, port, ip(VIP), TCP_SYN)), want);
        seen.insert(want);
    }
    assert_eq!(seen.len(), 3, "one client's ports spread over the reals");
}

#[test]
fn sh_drained_real_buckets_with_and_without_fallback() {
    // Real 2 drained: its buckets are empty, or resolved by IPVS's probe.
    let reals = vec![real_n(1, 1), real_n(2, 0), real_n(3, 2)];
    for fallback in [false, true] {
        let sched = SchedulerKind::Sh {
            fallback,
            port: false,
        };
        let dp = active_dataplane(&[tcp_svc(VIP, sched, reals.clone())]);
        let (mut none, mut some) = (0, 0);
        for n in 0..512 {
            let c = client(n * 104_729);
            let syn = tcp(c, 1000, ip(VIP), TCP_SYN);
            match sh_predict(&reals, fallback, fold(c), 0) {
                Some(mac) => {
                    assert_ne!(mac, real_mac(2));
                    assert_tx_to(&dp, &syn, mac);
                    some += 1;
                }
                None => {
                    assert_pass(&dp, &syn, Verdict::PassNoDest);
                    none += 1;
                }
            }
        }
        assert!(some > 0);
        // Without fallback a drained bucket finds no real; with it, always one.
        assert_eq!(
            none == 0,
            fallback,
            "fallback {fallback}: {none} unscheduled"
        );
        let stats = dp.stats().unwrap();
        assert_eq!(stats[0].counters.unscheduled, none);
    }
}

// ---------------------------------------------------------------------------
// 9: persistence
// ---------------------------------------------------------------------------

#[test]
fn persistence_sticks_a_client_until_the_template_expires() {
    pin_to_one_cpu();
    let reals = (1..=3).map(|n| real_n(n, 1)).collect();
    let svc = persistent(tcp_svc(VIP, SchedulerKind::Rr, reals), 2, 32);
    let dp = active_dataplane(&[svc]);
    let a = ip("10.9.1.1");
    let first = forward(&dp, &tcp(a, 1000, ip(VIP), TCP_SYN));
    for p in 1001..1050 {
        assert_tx_to(&dp, &tcp(a, p, ip(VIP), TCP_SYN), first);
    }
    // Granularity /32: a neighbour gets the next real in rr.
    let b = forward(&dp, &tcp(ip("10.9.1.2"), 1000, ip(VIP), TCP_SYN));
    assert_ne!(b, first);

    sleep(Duration::from_secs(3));
    // The template expired: rr moves a's next new flow on.
    let moved = forward(&dp, &tcp(a, 2000, ip(VIP), TCP_SYN));
    assert_ne!(moved, first, "expired template still used");
    assert_ne!(moved, b, "rr should have advanced");
    // ...and the new template holds from now on.
    assert_tx_to(&dp, &tcp(a, 2001, ip(VIP), TCP_SYN), moved);
    // The first flow itself is a connection, not a template: it stays.
    assert_tx_to(&dp, &tcp(a, 1000, ip(VIP), TCP_ACK), first);
}

#[test]
fn persistence_granularity_24_groups_a_subnet() {
    pin_to_one_cpu();
    let reals = (1..=3).map(|n| real_n(n, 1)).collect();
    let svc = persistent(tcp_svc(VIP, SchedulerKind::Rr, reals), 2, 24);
    let dp = active_dataplane(&[svc]);
    let first = forward(&dp, &tcp(ip("10.9.1.1"), 1000, ip(VIP), TCP_SYN));
    for host in [2, 77, 200, 255] {
        let c = ip(&format!("10.9.1.{host}"));
        assert_tx_to(&dp, &tcp(c, 3000, ip(VIP), TCP_SYN), first);
    }
    // Another /24 starts its own template with the next real.
    let other = forward(&dp, &tcp(ip("10.9.2.1"), 1000, ip(VIP), TCP_SYN));
    assert_ne!(other, first);
    assert_tx_to(&dp, &tcp(ip("10.9.2.99"), 1000, ip(VIP), TCP_SYN), other);
}

#[test]
fn persistence_template_survives_draining_its_real() {
    // As IPVS with expire_quiescent_template=0: a client already bound to a
    // drained real keeps it for new flows; nobody else gets it.
    pin_to_one_cpu();
    let mut svc = persistent(
        tcp_svc(VIP, SchedulerKind::Rr, vec![real_n(1, 1), real_n(2, 1)]),
        60,
        32,
    );
    let mut dp = active_dataplane(std::slice::from_ref(&svc));
    let bound = forward(&dp, &tcp(client(1), 1000, ip(VIP), TCP_SYN));
    let n = if bound == real_mac(1) { 0 } else { 1 };
    svc.reals[n].weight = 0;
    dp.apply(std::slice::from_ref(&svc)).unwrap();
    assert_tx_to(&dp, &tcp(client(1), 1001, ip(VIP), TCP_SYN), bound);
    for c in 2..20 {
        assert_ne!(forward(&dp, &tcp(client(c), 1000, ip(VIP), TCP_SYN)), bound);
    }
}

// ---------------------------------------------------------------------------
// 10, 11, 12: changes while flows exist
// ---------------------------------------------------------------------------

/// Opens flows from client 1 until one lands on each real; returns the
/// source port of the flow per real MAC.
fn one_flow_per_real(dp: &XdpDataplane, reals: usize) -> HashMap<[u8; 6], u16> {
    let mut flows = HashMap::new();
    for port in 1000.. {
        let mac = forward(dp, &tcp(client(1), port, ip(VIP), TCP_SYN));
        flows.entry(mac).or_insert(port);
        if flows.len() == reals {
            return flows;
        }
        assert!(port < 1100, "rr never reached every real");
    }
    unreachable!()
}

#[test]
fn drained_real_keeps_its_flows_but_gets_no_new_ones() {
    let mut svc = tcp_svc(
        VIP,
        SchedulerKind::Wrr,
        vec![real_n(1, 1), real_n(2, 1), real_n(3, 1)],
    );
    let mut dp = active_dataplane(std::slice::from_ref(&svc));
    let flows = one_flow_per_real(&dp, 3);

    svc.reals[1].weight = 0; // real 2
    dp.apply(std::slice::from_ref(&svc)).unwrap();

    let drained = flows[&real_mac(2)];
    for flags in [TCP_ACK, TCP_PSH | TCP_ACK, TCP_FIN | TCP_ACK] {
        assert_tx_to(&dp, &tcp(client(1), drained, ip(VIP), flags), real_mac(2));
    }
    let mut seen = HashSet::new();
    for port in 5000..5300 {
        let mac = forward(&dp, &tcp(client(2), port, ip(VIP), TCP_SYN));
        assert_ne!(mac, real_mac(2), "new flow to a drained real");
        seen.insert(mac);
    }
    assert_eq!(seen, HashSet::from([real_mac(1), real_mac(3)]));
}

#[test]
fn removed_real_flow_is_scheduled_anew() {
    let svc = tcp_svc(
        VIP,
        SchedulerKind::Rr,
        vec![real_n(1, 1), real_n(2, 1), real_n(3, 1)],
    );
    let mut dp = active_dataplane(std::slice::from_ref(&svc));
    let flows = one_flow_per_real(&dp, 3);
    let orphan = flows[&real_mac(2)];

    let mut without = svc.clone();
    without.reals.remove(1);
    dp.apply(std::slice::from_ref(&without)).unwrap();

    // The next packet of the orphaned flow (an ACK, not a SYN) goes elsewhere...
    let new_mac = forward(&dp, &tcp(client(1), orphan, ip(VIP), TCP_ACK));
    assert!(
        new_mac == real_mac(1) || new_mac == real_mac(3),
        "{new_mac:?}"
    );
    // ...and stays there.
    for flags in [TCP_PSH | TCP_ACK, TCP_ACK, TCP_FIN | TCP_ACK] {
        assert_tx_to(&dp, &tcp(client(1), orphan, ip(VIP), flags), new_mac);
    }
    // Flows of the remaining reals are untouched.
    for n in [1, 3] {
        let port = flows[&real_mac(n)];
        assert_tx_to(&dp, &tcp(client(1), port, ip(VIP), TCP_ACK), real_mac(n));
    }
    // The listing names the new real for the rescheduled flow.
    let conns = dp.connections().unwrap();
    let c = conns
        .iter()
        .find(|c| c.client == (client(1), orphan))
        .unwrap();
    let want = if new_mac == real_mac(1) {
        "10.0.1.1"
    } else {
        "10.0.1.3"
    };
    assert_eq!(c.real, Some((ip(want), PORT)));
    // No new flow reaches the removed real.
    for port in 6000..6100 {
        assert_ne!(
            forward(&dp, &tcp(client(3), port, ip(VIP), TCP_SYN)),
            real_mac(2)
        );
    }
}

#[test]
fn weight_change_keeps_every_established_flow() {
    let mut svc = tcp_svc(
        VIP,
        SchedulerKind::Wrr,
        vec![real_n(1, 1), real_n(2, 1), real_n(3, 1)],
    );
    let mut dp = active_dataplane(std::slice::from_ref(&svc));
    let flow = |i: u32| (client(i / 100), 40000 + (i % 100) as u16);
    let before: Vec<[u8; 6]> = (0..1000)
        .map(|i| {
            let (c, p) = flow(i);
            let mac = forward(&dp, &tcp(c, p, ip(VIP), TCP_SYN));
            assert_tx_to(&dp, &tcp(c, p, ip(VIP), TCP_ACK), mac);
            mac
        })
        .collect();
    assert_eq!(before.iter().collect::<HashSet<_>>().len(), 3);

    svc.reals[0].weight = 5;
    dp.apply(std::slice::from_ref(&svc)).unwrap();
    for (i, &mac) in before.iter().enumerate() {
        let (c, p) = flow(i as u32);
        assert_tx_to(&dp, &tcp(c, p, ip(VIP), TCP_PSH | TCP_ACK), mac);
    }

    // New flows follow the new weights: 5:1:1 per 7-flow cycle.
    let mut n1 = 0;
    for port in 0..700 {
        if forward(&dp, &tcp(client(999), port, ip(VIP), TCP_SYN)) == real_mac(1) {
            n1 += 1;
        }
    }
    assert!((450..=550).contains(&n1), "real 1 got {n1} of 700");
}

#[test]
fn mac_change_moves_established_flows_to_the_new_mac() {
    let mut svc = tcp_svc(VIP, SchedulerKind::Rr, vec![real_n(1, 1), real_n(2, 1)]);
    let mut dp = active_dataplane(std::slice::from_ref(&svc));
    let flows = one_flow_per_real(&dp, 2);
    let new_mac = [0x02, 0xee, 0xee, 0, 0, 1];
    svc.reals[0].mac = new_mac;
    dp.apply(std::slice::from_ref(&svc)).unwrap();
    // Same real (same flow entry), new next hop.
    let port = flows[&real_mac(1)];
    assert_tx_to(&dp, &tcp(client(1), port, ip(VIP), TCP_ACK), new_mac);
    let port = flows[&real_mac(2)];
    assert_tx_to(&dp, &tcp(client(1), port, ip(VIP), TCP_ACK), real_mac(2));
    let r1 = real_counters(&dp.stats().unwrap()[0], "10.0.1.1");
    assert_eq!(r1.packets, r1.conns + 1, "every SYN plus the one ACK");
}

// ---------------------------------------------------------------------------
// 13: counters
// ---------------------------------------------------------------------------

#[test]
fn stats_count_conns_packets_and_bytes() {
    let dp = active_dataplane(&[
        tcp_svc(VIP, SchedulerKind::Rr, vec![real_n(1, 1), real_n(2, 1)]),
        // A service with only drained reals: nothing to schedule.
        service(
            VIP,
            81,
            Protocol::Tcp,
            SchedulerKind::Rr,
            vec![real_n(3, 0)],
        ),
    ]);
    let mut want: HashMap<[u8; 6], Counters> = HashMap::new();
    let mut total = Counters::default();
    for i in 0..10u16 {
        let c = client(i as u32);
        let mut mac = None;
        for (k, flags) in [TCP_SYN, TCP_ACK, TCP_PSH | TCP_ACK, TCP_FIN | TCP_ACK]
            .into_iter()
            .enumerate()
        {
            let frame = Frame::tcp(c, 7000 + i, ip(VIP), PORT, flags)
                .payload(&vec![0x5a; (i as usize) * 37 + k * 3])
                .build();
            let m = forward(&dp, &frame);
            assert_eq!(*mac.get_or_insert(m), m);
            let delta = Counters {
                conns: (k == 0) as u64,
                packets: 1,
                bytes: ip_bytes(&frame),
                unscheduled: 0,
            };
            want.entry(m).or_default().add(&delta);
            total.add(&delta);
        }
    }
    let stats = dp.stats().unwrap();
    let svc = service_stats(&stats, VIP, PORT);
    assert_eq!(svc.counters, total);
    assert_eq!((total.conns, total.packets), (10, 40));
    assert_eq!(real_counters(svc, "10.0.1.1"), want[&real_mac(1)]);
    assert_eq!(real_counters(svc, "10.0.1.2"), want[&real_mac(2)]);
    assert_eq!(verdict_count(&dp, Verdict::Tx), 40);

    // Passed packets move their verdict and no service counter.
    assert_pass(
        &dp,
        &tcp(client(1), 1, ip("10.0.0.5"), TCP_SYN),
        Verdict::PassNotService,
    );
    assert_pass(
        &dp,
        &tcp(client(1), 1, ip(VIP), TCP_ACK),
        Verdict::PassNoConn,
    );
    let no_dest = Frame::tcp(client(1), 1, ip(VIP), 81, TCP_SYN).build();
    assert_pass(&dp, &no_dest, Verdict::PassNoDest);
    assert_pass(&dp, &no_dest, Verdict::PassNoDest);

    let stats = dp.stats().unwrap();
    assert_eq!(service_stats(&stats, VIP, PORT).counters, total);
    let drained = service_stats(&stats, VIP, 81);
    assert_eq!(
        drained.counters,
        Counters {
            unscheduled: 2,
            ..Counters::default()
        }
    );
    assert_eq!(real_counters(drained, "10.0.1.3"), Counters::default());
    let verdicts: u64 = dp.verdicts().unwrap().iter().map(|(_, n)| n).sum();
    assert_eq!(verdicts, 44, "one verdict per packet");
}

#[test]
fn stats_bytes_exclude_ethernet_padding() {
    let dp = active_dataplane(&[tcp_svc(VIP, SchedulerKind::Rr, vec![real_n(1, 1)])]);
    // A bare SYN is 54 bytes; on the wire it is padded to the 60-byte minimum.
    let syn = Frame::tcp(client(1), 1000, ip(VIP), PORT, TCP_SYN)
        .payload(&[])
        .build();
    let mut padded = syn.clone();
    padded.resize(60, 0);
    assert_tx_to(&dp, &padded, real_mac(1));
    // IPVS counts skb->len after ip_rcv trimmed it to tot_len: 40.
    let stats = dp.stats().unwrap();
    assert_eq!(stats[0].counters.bytes, ip_bytes(&syn));
}

// ---------------------------------------------------------------------------
// 14: connection listing
// ---------------------------------------------------------------------------

#[test]
fn connections_show_ipvs_states_and_expiry() {
    let mut dp = active_dataplane(&[tcp_svc(VIP, SchedulerKind::Rr, vec![real_n(1, 1)])]);
    let state_of = |dp: &XdpDataplane, port: u16| {
        let conns = dp.connections().unwrap();
        let c = conns
            .iter()
            .find(|c| c.client == (client(1), port))
            .expect("flow listed")
            .clone();
        assert_eq!(c.proto, Protocol::Tcp);
        assert_eq!(c.virtual_, (ip(VIP), PORT));
        assert_eq!(c.real, Some((ip("10.0.1.1"), PORT)));
        (c.state.name(), c.expires_in_s)
    };
    forward(&dp, &tcp(client(1), 1000, ip(VIP), TCP_SYN));
    let (name, exp) = state_of(&dp, 1000);
    assert_eq!(name, "SYN_RECV");
    assert!((58..=60).contains(&exp), "SYN_RECV expires in {exp}");

    forward(&dp, &tcp(client(1), 1000, ip(VIP), TCP_ACK));
    let (name, exp) = state_of(&dp, 1000);
    assert_eq!(name, "ESTABLISHED");
    assert!((898..=900).contains(&exp), "ESTABLISHED expires in {exp}");

    forward(&dp, &tcp(client(1), 1000, ip(VIP), TCP_FIN | TCP_ACK));
    let (name, exp) = state_of(&dp, 1000);
    assert_eq!(name, "FIN_WAIT");
    assert!((118..=120).contains(&exp), "FIN_WAIT expires in {exp}");

    // ipvsadm --set changes what the listing counts down from.
    forward(&dp, &tcp(client(1), 1001, ip(VIP), TCP_SYN));
    forward(&dp, &tcp(client(1), 1001, ip(VIP), TCP_ACK));
    dp.set_timeouts(Timeouts {
        tcp: 100,
        tcp_fin: 0,
        udp: 0,
    })
    .unwrap();
    let (name, exp) = state_of(&dp, 1001);
    assert_eq!(name, "ESTABLISHED");
    assert!((98..=100).contains(&exp), "ESTABLISHED expires in {exp}");
    assert_eq!(dp.connections().unwrap().len(), 2);
}

#[test]
fn syn_reusing_a_tuple_restarts_only_a_time_wait_flow() {
    // IPVS's conn_reuse_mode=1: a SYN on a TIME_WAIT entry drops it and is
    // scheduled anew; on any other state it stays with its real.
    pin_to_one_cpu();
    let dp = active_dataplane(&[tcp_svc(
        VIP,
        SchedulerKind::Rr,
        vec![real_n(1, 1), real_n(2, 1)],
    )]);
    let state = |port: u16| {
        let conns = dp.connections().unwrap();
        let c = conns
            .iter()
            .find(|c| c.client == (client(1), port))
            .unwrap();
        c.state.name()
    };
    // Seen from the client side only, FIN after ESTABLISHED is FIN_WAIT.
    let a = forward(&dp, &tcp(client(1), 1000, ip(VIP), TCP_SYN));
    assert_tx_to(&dp, &tcp(client(1), 1000, ip(VIP), TCP_ACK), a);
    assert_tx_to(&dp, &tcp(client(1), 1000, ip(VIP), TCP_FIN | TCP_ACK), a);
    assert_eq!(state(1000), "FIN_WAIT");
    assert_tx_to(&dp, &tcp(client(1), 1000, ip(VIP), TCP_SYN), a);
    assert_eq!(state(1000), "SYN_RECV");

    // FIN straight after the SYN (SYN_RECV) is TIME_WAIT.
    let b = forward(&dp, &tcp(client(1), 2000, ip(VIP), TCP_SYN));
    assert_ne!(a, b);
    assert_tx_to(&dp, &tcp(client(1), 2000, ip(VIP), TCP_FIN | TCP_ACK), b);
    assert_eq!(state(2000), "TIME_WAIT");
    let again = forward(&dp, &tcp(client(1), 2000, ip(VIP), TCP_SYN));
    assert_eq!(again, a, "rr schedules the reused tuple anew");
    assert_eq!(state(2000), "SYN_RECV");
    assert_eq!(dp.stats().unwrap()[0].counters.conns, 3);
}

#[test]
fn udp_connections_are_listed_as_udp() {
    let dp = active_dataplane(&[service(
        VIP,
        53,
        Protocol::Udp,
        SchedulerKind::Rr,
        vec![real("10.0.1.1", 53, 1, real_mac(1))],
    )]);
    forward(&dp, &Frame::udp(client(1), 5353, ip(VIP), 53).build());
    let conns = dp.connections().unwrap();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].proto, Protocol::Udp);
    assert_eq!(conns[0].state.name(), "UDP");
    assert!((298..=300).contains(&conns[0].expires_in_s));
}

// ---------------------------------------------------------------------------
// 15: IPv6
// ---------------------------------------------------------------------------

fn v6_service(sched: SchedulerKind, n: u8) -> ServiceSpec {
    tcp_svc(VIP6, sched, (1..=n).map(|i| real6_n(i, 1)).collect())
}

#[test]
fn v6_syn_to_vip_is_forwarded_with_exact_bytes() {
    let dp = active_dataplane(&[v6_service(SchedulerKind::Rr, 1)]);
    let frame = tcp(client6(1), 40000, ip(VIP6), TCP_SYN);
    let (action, out) = run(&dp, &frame);
    assert_eq!(action, XDP_TX);
    assert_eq!(out, expected_dr(&frame, real_mac(1), DIRECTOR_MAC));
}

#[test]
fn v6_later_packets_follow_the_syn() {
    let dp = active_dataplane(&[v6_service(SchedulerKind::Rr, 3)]);
    let flows: Vec<(IpAddr, u16)> = (0..9).map(|i| (client6(i % 2), 30000 + i as u16)).collect();
    let macs: Vec<[u8; 6]> = flows
        .iter()
        .map(|&(c, p)| forward(&dp, &tcp(c, p, ip(VIP6), TCP_SYN)))
        .collect();
    assert_eq!(macs.iter().collect::<HashSet<_>>().len(), 3);
    for flags in [TCP_ACK, TCP_PSH | TCP_ACK, TCP_FIN | TCP_ACK] {
        for (&(c, p), &mac) in flows.iter().zip(&macs) {
            assert_tx_to(&dp, &tcp(c, p, ip(VIP6), flags), mac);
        }
    }
}

#[test]
fn v6_not_ours_and_truncated_pass_untouched() {
    let dp = active_dataplane(&[v6_service(SchedulerKind::Rr, 1)]);
    let c = client6(1);
    assert_pass(
        &dp,
        &tcp(c, 1, ip("2001:db8::101"), TCP_SYN),
        Verdict::PassNotService,
    );
    let wrong_port = Frame::tcp(c, 1, ip(VIP6), 443, TCP_SYN).build();
    assert_pass(&dp, &wrong_port, Verdict::PassNotService);
    let udp = Frame::udp(c, 1, ip(VIP6), PORT).build();
    assert_pass(&dp, &udp, Verdict::PassNotService);
    let icmp6 = Frame::new(c, ip(VIP6), L4::Other { proto: 58 }).build();
    assert_pass(&dp, &icmp6, Verdict::PassNotTcpUdp);
    // A fragment header (next header 44) is not parsed: passed.
    // (Which verdict counts it is left open: see the report on PassNotIp.)
    let frag = Frame::new(c, ip(VIP6), L4::Other { proto: 44 })
        .payload(&[6, 0, 0, 1, 0, 0, 0, 1])
        .build();
    let (action, out) = run(&dp, &frag);
    assert_eq!((action, out), (XDP_PASS, frag));

    let full = tcp(c, 1000, ip(VIP6), TCP_SYN); // 14 + 40 + 20 + 3
    assert_eq!(full.len(), 77);
    // Ethernet only, inside the IPv6 header, inside the TCP header.
    for cut in [14, 15, 30, 53, 54, 60, 73, 76] {
        assert_pass(&dp, &full[..cut], Verdict::PassMalformed);
    }
    // A consistent header (payload_len 10) with only 10 bytes of TCP.
    let mut short = full[..64].to_vec();
    short[18..20].copy_from_slice(&10u16.to_be_bytes());
    assert_pass(&dp, &short, Verdict::PassMalformed);
    // Version 4 under the IPv6 ethertype.
    let mut f = full.clone();
    f[14] = 0x40;
    assert_pass(&dp, &f, Verdict::PassMalformed);
    assert_eq!(verdict_count(&dp, Verdict::Tx), 0);
}

#[test]
fn v6_vlan_tagged_vip_packet_keeps_its_tag() {
    let dp = active_dataplane(&[v6_service(SchedulerKind::Rr, 1)]);
    for flags in [TCP_SYN, TCP_ACK] {
        let frame = Frame::tcp(client6(1), 1000, ip(VIP6), PORT, flags)
            .vlan(4094)
            .build();
        assert_eq!(&frame[12..18], &[0x81, 0x00, 0x0f, 0xfe, 0x86, 0xdd]);
        assert_tx_to(&dp, &frame, real_mac(1));
    }
}

/// The VRRP MASTER's lease: an active data plane whose daemon stopped
/// renewing it (SIGKILL) passes everything once it runs out, established
/// flows too, and forwards again when renewed.
#[test]
fn expired_lease_passes_everything_until_renewed() {
    use std::time::Duration;
    let mut dp = active_dataplane(&[tcp_svc(
        VIP,
        SchedulerKind::Rr,
        vec![real_n(1, 1), real_n(2, 1)],
    )]);
    dp.set_lease(Some(Duration::from_secs(60))).unwrap();
    let est_mac = forward(&dp, &tcp(client(1), 1000, ip(VIP), TCP_SYN));

    dp.set_lease(Some(Duration::ZERO)).unwrap();
    // The program's clock is coarse (a jiffy): let it pass the deadline.
    std::thread::sleep(Duration::from_millis(20));
    assert_pass(
        &dp,
        &tcp(client(2), 2000, ip(VIP), TCP_SYN),
        Verdict::PassInactive,
    );
    assert_pass(
        &dp,
        &tcp(client(1), 1000, ip(VIP), TCP_ACK),
        Verdict::PassInactive,
    );

    dp.set_lease(Some(Duration::from_secs(60))).unwrap();
    assert_tx_to(&dp, &tcp(client(1), 1000, ip(VIP), TCP_ACK), est_mac);
    // No lease at all (no VRRP): forwarding never lapses.
    dp.set_lease(None).unwrap();
    assert_tx_to(&dp, &tcp(client(1), 1000, ip(VIP), TCP_ACK), est_mac);
}

#[test]
fn v6_inactive_director_passes_until_active_again() {
    let mut dp = active_dataplane(&[v6_service(SchedulerKind::Rr, 2)]);
    let mac = forward(&dp, &tcp(client6(1), 1000, ip(VIP6), TCP_SYN));
    dp.set_active(false).unwrap();
    assert_pass(
        &dp,
        &tcp(client6(2), 1000, ip(VIP6), TCP_SYN),
        Verdict::PassInactive,
    );
    assert_pass(
        &dp,
        &tcp(client6(1), 1000, ip(VIP6), TCP_ACK),
        Verdict::PassInactive,
    );
    dp.set_active(true).unwrap();
    forward(&dp, &tcp(client6(2), 1000, ip(VIP6), TCP_SYN));
    assert_tx_to(&dp, &tcp(client6(1), 1000, ip(VIP6), TCP_ACK), mac);
}

#[test]
fn v6_wrr_flows_match_ipvs_exactly() {
    let reals = vec![real6_n(1, 1), real6_n(2, 2), real6_n(3, 3)];
    wrr_exact(VIP6, reals, client6, 12_000);
}

#[test]
fn v6_sh_same_client_same_real_as_ipvs_predicts() {
    let reals = vec![real6_n(1, 1), real6_n(2, 2), real6_n(3, 3)];
    // Clients differing in several words, so the XOR fold matters.
    sh_matches_ipvs(VIP6, reals, |n| {
        IpAddr::V6(Ipv6Addr::from(
            0x2001_0db8_0000_0000_0000_0000_0000_0000u128
                | (n as u128) << 64
                | (n as u128).wrapping_mul(0x9e37_79b9) << 16
                | 1,
        ))
    });
}

// ---------------------------------------------------------------------------
// 16: UDP
// ---------------------------------------------------------------------------

fn udp_svc(reals: u8) -> ServiceSpec {
    let reals = (1..=reals)
        .map(|n| real(&format!("10.0.1.{n}"), 53, 1, real_mac(n)))
        .collect();
    service(VIP, 53, Protocol::Udp, SchedulerKind::Rr, reals)
}

fn udp(src: IpAddr, sport: u16) -> Vec<u8> {
    Frame::udp(src, sport, ip(VIP), 53)
        .payload(&[0x42; 30])
        .build()
}

#[test]
fn udp_datagrams_of_one_client_port_stick_to_a_real() {
    pin_to_one_cpu();
    let dp = active_dataplane(&[udp_svc(3)]);
    let mut by_port = HashMap::new();
    // Interleave ports so a rescheduled datagram would land elsewhere.
    for round in 0..20 {
        for port in 5000..5030u16 {
            let mac = forward(&dp, &udp(client(1), port));
            if round == 0 {
                by_port.insert(port, mac);
            } else {
                assert_eq!(mac, by_port[&port], "port {port} moved in round {round}");
            }
        }
    }
    let reals: HashSet<_> = by_port.values().collect();
    assert_eq!(reals.len(), 3, "new ports spread by rr");
    let stats = dp.stats().unwrap();
    assert_eq!(stats[0].counters.conns, 30);
    assert_eq!(stats[0].counters.packets, 600);
}

#[test]
fn udp_persistence_sticks_every_port_of_a_client() {
    pin_to_one_cpu();
    let dp = active_dataplane(&[persistent(udp_svc(3), 2, 32)]);
    let a = forward(&dp, &udp(client(1), 5000));
    for port in 5001..5100 {
        assert_tx_to(&dp, &udp(client(1), port), a);
    }
    let b = forward(&dp, &udp(client(2), 5000));
    assert_ne!(a, b, "another client gets rr's next real");
    for port in 5001..5020 {
        assert_tx_to(&dp, &udp(client(2), port), b);
    }
    sleep(Duration::from_secs(3));
    // The datagram flows themselves live on (UDP timeout 300 s)...
    assert_tx_to(&dp, &udp(client(1), 5000), a);
    // ...but a new port is scheduled afresh.
    let c = forward(&dp, &udp(client(1), 6000));
    assert_ne!(c, a);
}

// ---------------------------------------------------------------------------
// Regressions: edge cases found while building the suite
// ---------------------------------------------------------------------------

#[test]
fn toggling_local_frees_the_old_dest() {
    let mut web = tcp_svc(VIP, SchedulerKind::Rr, vec![real_n(1, 1)]);
    let tls = service(
        VIP,
        443,
        Protocol::Tcp,
        SchedulerKind::Rr,
        vec![real("10.0.1.2", 443, 1, real_mac(2))],
    );
    let mut dp = active_dataplane(&[web.clone(), tls.clone()]);
    forward(&dp, &tcp(client(1), 1000, ip(VIP), TCP_SYN));
    web.reals[0].local = true;
    dp.apply(&[web.clone(), tls.clone()]).unwrap();
    // Once the service is gone, its flows must not be forwarded any more.
    dp.apply(std::slice::from_ref(&tls)).unwrap();
    assert_pass(
        &dp,
        &tcp(client(1), 1000, ip(VIP), TCP_ACK),
        Verdict::PassNotService,
    );
    // Every toggle gives its slot back, so this never runs out of slots.
    for _ in 0..lb_common::MAX_DESTS + 10 {
        web.reals[0].local = !web.reals[0].local;
        dp.apply(std::slice::from_ref(&web)).unwrap();
    }
}

#[test]
fn flow_opened_by_ack_starts_established_as_in_mainline_ipvs() {
    // Mainline's INPUT-ONLY table maps (ack, NONE) to ESTABLISHED (older
    // kernels had CLOSE). Reached with sloppy_tcp.
    let mut dp = active_dataplane(&[tcp_svc(VIP, SchedulerKind::Rr, vec![real_n(1, 1)])]);
    dp.set_flags(lb_common::global_flags::SLOPPY_TCP).unwrap();
    forward(&dp, &tcp(client(1), 1000, ip(VIP), TCP_ACK));
    let conns = dp.connections().unwrap();
    assert_eq!(conns[0].state.name(), "ESTABLISHED");
}

#[test]
fn expired_flow_follows_the_new_flow_rules() {
    // After its timeout a flow is gone, as in IPVS: an ACK is not ours any
    // more (whether or not the LRU evicted the entry), a SYN starts afresh.
    let mut dp = active_dataplane(&[tcp_svc(VIP, SchedulerKind::Rr, vec![real_n(1, 1)])]);
    dp.set_timeouts(xvs::dataplane::Timeouts {
        tcp: 1,
        tcp_fin: 0,
        udp: 0,
    })
    .unwrap();
    forward(&dp, &tcp(client(1), 1000, ip(VIP), TCP_SYN));
    forward(&dp, &tcp(client(1), 1000, ip(VIP), TCP_ACK));
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_pass(
        &dp,
        &tcp(client(1), 1000, ip(VIP), TCP_ACK),
        Verdict::PassNoConn,
    );
    forward(&dp, &tcp(client(1), 1000, ip(VIP), TCP_SYN));
}

#[test]
fn flow_rescheduled_on_one_cpu_is_followed_on_another() {
    // Each CPU keeps its own flow cache; the connection table decides. A
    // flow cached on CPU 0 and rescheduled on CPU 1 must follow CPU 1's
    // choice on CPU 0, not be rescheduled a second time from CPU 0's copy.
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("skipped: needs two CPUs");
        return;
    }
    let reals: Vec<RealSpec> = (1..4).map(|n| real_n(n, 1)).collect();
    let mut svc = tcp_svc(VIP, SchedulerKind::Rr, reals);
    let mut dp = active_dataplane(std::slice::from_ref(&svc));
    let flow = |flags| tcp(client(1), 1000, ip(VIP), flags);
    pin_to_cpu(0);
    let first = forward(&dp, &flow(TCP_SYN));
    // Remove that real. CPU 0's rr cursor now stands one step further
    // than CPU 1's (fresh), so the two would pick different reals.
    svc.reals.retain(|r| r.mac != first);
    dp.apply(std::slice::from_ref(&svc)).unwrap();
    pin_to_cpu(1);
    let moved = forward(&dp, &flow(TCP_ACK));
    assert_ne!(moved, first, "the flow left its removed real");
    pin_to_cpu(0);
    for _ in 0..3 {
        assert_eq!(
            forward(&dp, &flow(TCP_ACK)),
            moved,
            "CPU 0 follows the table"
        );
    }
}

#[test]
fn persistence_templates_are_listed_like_ipvs() {
    // IPVS lists a template with the masked client, port 0 and state NONE,
    // expiring after the persistence timeout.
    let svc = persistent(
        tcp_svc(VIP, SchedulerKind::Rr, vec![real_n(1, 1), real_n(2, 1)]),
        300,
        24,
    );
    let dp = active_dataplane(std::slice::from_ref(&svc));
    let mac = forward(&dp, &tcp(client(7), 1000, ip(VIP), TCP_SYN));
    let conns = dp.connections().unwrap();
    let templates: Vec<_> = conns.iter().filter(|c| c.template).collect();
    assert_eq!(templates.len(), 1, "{conns:?}");
    let t = templates[0];
    assert_eq!(t.state.name(), "NONE");
    assert_eq!(t.client.1, 0);
    let IpAddr::V4(c) = client(7) else {
        unreachable!()
    };
    let masked = std::net::Ipv4Addr::from(u32::from(c) & 0xffff_ff00);
    assert_eq!(t.client.0, IpAddr::V4(masked));
    assert_eq!(t.virtual_, (ip(VIP), 80));
    let real = svc.reals.iter().find(|r| r.mac == mac).unwrap();
    assert_eq!(t.real, Some((real.addr, real.port)));
    assert!((295..=300).contains(&t.expires_in_s));
}
