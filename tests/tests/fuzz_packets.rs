//! Mutation fuzzing of the XDP data plane through BPF_PROG_TEST_RUN.
//!
//! Over a million frames (mutated VIP packets, random bytes, valid non-VIP
//! packets) go through the program, and every verdict is checked against an
//! independent oracle parser written here:
//!
//! 1. XDP_PASS leaves the bytes exactly as they were;
//! 2. XDP_TX only for a well-formed TCP/UDP packet to a configured service,
//!    and only the MACs change (dst = one of the service's reals, src = the
//!    input's dst);
//! 3. no other action, ever;
//! 4. a well-formed packet that opens a flow (UDP, or TCP SYN without RST) to
//!    a service is always sent (every real here has a positive weight).
//!
//! `XVS_FUZZ_SEED=<n>` replays a run; `XVS_FUZZ_PACKETS=<n>` runs more packets
//! (never fewer than a million).

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Instant,
};
use xvs::{
    dataplane::XdpDataplane,
    model::{Protocol, SchedulerKind, ServiceSpec},
};
use xvs_tests::{fixtures::*, packet::*};

const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const DEFAULT_SEED: u64 = 0x5eed_f00d_cafe_b0a7;
const DEFAULT_PACKETS: u64 = 1_000_000;
const MAX_RANDOM_LEN: usize = 200;
/// Failures printed in full; the rest are only counted by kind.
const MAX_PRINTED_FAILURES: usize = 10;

// ---------------------------------------------------------------------------
// PRNG: xorshift64*, deterministic from the printed seed.
// ---------------------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 32) * n as u64) >> 32) as usize
    }

    /// True with probability `percent`/100.
    fn percent(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn byte(&mut self) -> u8 {
        (self.next() >> 56) as u8
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

// ---------------------------------------------------------------------------
// Services under test.
// ---------------------------------------------------------------------------

/// What the oracle knows of a service: its key and its reals' MACs.
struct Svc {
    vip: IpAddr,
    port: u16,
    proto: u8,
    macs: Vec<[u8; 6]>,
}

fn services() -> Vec<ServiceSpec> {
    let r = |addr: &str, w: u32, n: u8| real(addr, 0, w, real_mac(n));
    vec![
        service(
            "10.0.0.100",
            80,
            Protocol::Tcp,
            SchedulerKind::Rr,
            vec![
                r("10.0.1.1", 1, 1),
                r("10.0.1.2", 1, 2),
                r("10.0.1.3", 1, 3),
            ],
        ),
        service(
            "10.0.0.100",
            53,
            Protocol::Udp,
            SchedulerKind::Wrr,
            vec![r("10.0.1.4", 3, 4), r("10.0.1.5", 1, 5)],
        ),
        service(
            "10.0.0.101",
            443,
            Protocol::Tcp,
            SchedulerKind::Sh {
                fallback: false,
                port: true,
            },
            vec![r("10.0.1.6", 1, 6), r("10.0.1.7", 2, 7)],
        ),
        persistent(
            service(
                "10.0.0.102",
                8080,
                Protocol::Tcp,
                SchedulerKind::Wrr,
                vec![r("10.0.1.8", 2, 8), r("10.0.1.9", 1, 9)],
            ),
            300,
            24,
        ),
        service(
            "2001:db8::100",
            80,
            Protocol::Tcp,
            SchedulerKind::Rr,
            vec![r("2001:db8:1::10", 1, 10), r("2001:db8:1::11", 1, 11)],
        ),
        service(
            "2001:db8::100",
            53,
            Protocol::Udp,
            SchedulerKind::Sh {
                fallback: true,
                port: false,
            },
            vec![r("2001:db8:1::12", 1, 12), r("2001:db8:1::13", 4, 13)],
        ),
    ]
}

fn oracle_services(specs: &[ServiceSpec]) -> Vec<Svc> {
    specs
        .iter()
        .map(|s| Svc {
            vip: s.id.vip,
            port: s.id.port,
            proto: s.id.proto.number(),
            macs: s.reals.iter().map(|r| r.mac).collect(),
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Oracle: an independent parser of the rules the data plane must follow.
// ---------------------------------------------------------------------------

/// A well-formed TCP/UDP packet, as far as balancing goes.
#[derive(Debug)]
struct Parsed {
    dst: IpAddr,
    dport: u16,
    proto: u8,
    /// TCP flags; 0 for UDP.
    flags: u8,
}

impl Parsed {
    /// UDP, or TCP SYN without RST: schedules a new flow when none exists.
    fn opens_flow(&self) -> bool {
        self.proto == 17 || (self.flags & TCP_SYN != 0 && self.flags & TCP_RST == 0)
    }
}

fn be16(f: &[u8], at: usize) -> usize {
    u16::from_be_bytes([f[at], f[at + 1]]) as usize
}

/// Ethernet, at most one 802.1Q tag, IPv4 or IPv6, then TCP or UDP.
fn oracle_parse(f: &[u8]) -> Option<Parsed> {
    if f.len() < 14 {
        return None;
    }
    let (mut ethertype, mut l3) = (be16(f, 12), 14);
    if ethertype == 0x8100 {
        if f.len() < 18 {
            return None;
        }
        (ethertype, l3) = (be16(f, 16), 18);
    }
    let (dst, proto, l4, l4_end) = match ethertype {
        0x0800 => parse_ipv4(f, l3)?,
        0x86dd => parse_ipv6(f, l3)?,
        _ => return None,
    };
    // The TCP/UDP header must lie inside the IP datagram (IPv4 tot_len, IPv6
    // payload_len), as IPVS sees it once the stack has trimmed the padding.
    let hlen = match proto {
        6 => 20,
        17 => 8,
        _ => return None,
    };
    if l4 + hlen > l4_end {
        return None;
    }
    if proto == 6 && (f[l4 + 12] >> 4) < 5 {
        return None;
    }
    Some(Parsed {
        dst,
        dport: be16(f, l4 + 2) as u16,
        proto,
        flags: if proto == 6 { f[l4 + 13] } else { 0 },
    })
}

/// (dst, proto, L4 offset, end of the IP datagram) of an unfragmented IPv4
/// packet whose header and `tot_len` fit the frame.
fn parse_ipv4(f: &[u8], l3: usize) -> Option<(IpAddr, u8, usize, usize)> {
    if f.len() < l3 + 20 || f[l3] >> 4 != 4 {
        return None;
    }
    let ihl = (f[l3] & 0x0f) as usize * 4;
    let tot_len = be16(f, l3 + 2);
    if ihl < 20 || tot_len < ihl || tot_len > f.len() - l3 {
        return None;
    }
    if be16(f, l3 + 6) & 0x3fff != 0 {
        return None;
    }
    let dst: [u8; 4] = f[l3 + 16..l3 + 20].try_into().unwrap();
    Some((
        Ipv4Addr::from(dst).into(),
        f[l3 + 9],
        l3 + ihl,
        l3 + tot_len,
    ))
}

/// The same for IPv6 without extension headers.
fn parse_ipv6(f: &[u8], l3: usize) -> Option<(IpAddr, u8, usize, usize)> {
    if f.len() < l3 + 40 || f[l3] >> 4 != 6 {
        return None;
    }
    let payload_len = be16(f, l3 + 4);
    if payload_len + 40 > f.len() - l3 {
        return None;
    }
    let dst: [u8; 16] = f[l3 + 24..l3 + 40].try_into().unwrap();
    Some((
        Ipv6Addr::from(dst).into(),
        f[l3 + 6],
        l3 + 40,
        l3 + 40 + payload_len,
    ))
}

fn find_service<'a>(svcs: &'a [Svc], p: &Parsed) -> Option<&'a Svc> {
    svcs.iter()
        .find(|s| s.vip == p.dst && s.port == p.dport && s.proto == p.proto)
}

/// Checks one verdict against the properties; `Err` names what broke.
fn check(svcs: &[Svc], input: &[u8], action: u32, out: &[u8]) -> Result<(), &'static str> {
    let parsed = oracle_parse(input);
    let svc = parsed.as_ref().and_then(|p| find_service(svcs, p));
    match action {
        XDP_PASS if out != input => return Err("PASS changed the frame"),
        XDP_PASS => {}
        XDP_TX => check_tx(svc, input, out)?,
        _ => return Err("action neither PASS nor TX"),
    }
    let opens = parsed.as_ref().is_some_and(Parsed::opens_flow);
    if svc.is_some() && opens && action != XDP_TX {
        return Err("new flow to a service was not sent");
    }
    Ok(())
}

fn check_tx(svc: Option<&Svc>, input: &[u8], out: &[u8]) -> Result<(), &'static str> {
    let Some(svc) = svc else {
        return Err("TX of a frame that is no well-formed service packet");
    };
    if out.len() != input.len() || out[12..] != input[12..] {
        return Err("TX changed bytes beyond the MACs");
    }
    if out[6..12] != input[0..6] {
        return Err("TX source MAC is not the input's destination MAC");
    }
    if !svc.macs.iter().any(|m| out[0..6] == m[..]) {
        return Err("TX destination MAC is not a real of the service");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Frame sources.
// ---------------------------------------------------------------------------

/// Where the headers of a generated frame start, for targeted mutations.
struct Layout {
    l3: usize,
    l4: usize,
    v6: bool,
}

fn client(rng: &mut Rng, v6: bool) -> IpAddr {
    if v6 {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        a[4] = 0x0c;
        a[14] = rng.byte();
        a[15] = rng.byte();
        Ipv6Addr::from(a).into()
    } else {
        Ipv4Addr::new(192, 168, rng.byte() & 0x0f, rng.byte()).into()
    }
}

const FLAG_CHOICES: [u8; 6] = [
    TCP_SYN,
    TCP_ACK,
    TCP_ACK | TCP_PSH,
    TCP_FIN | TCP_ACK,
    TCP_RST,
    TCP_SYN | TCP_ACK,
];

/// A TCP or UDP packet from a random client to `dst`:`dport`, sometimes
/// VLAN-tagged and (IPv4) with options.
fn packet_to(rng: &mut Rng, dst: IpAddr, dport: u16, tcp: bool) -> (Vec<u8>, Layout) {
    let v6 = dst.is_ipv6();
    let src = client(rng, v6);
    let sport = 1024 + rng.below(64) as u16;
    let mut frame = if tcp {
        let flags = if rng.percent(50) {
            TCP_SYN
        } else {
            *rng.pick(&FLAG_CHOICES)
        };
        Frame::tcp(src, sport, dst, dport, flags)
    } else {
        Frame::udp(src, sport, dst, dport)
    };
    if rng.percent(30) {
        frame = frame.vlan(rng.below(4096) as u16);
    }
    if !v6 && rng.percent(25) {
        // NOPs then End of options, padded to a multiple of 4.
        let words = 1 + rng.below(10);
        frame.ipv4_options = vec![1; words * 4];
        frame.ipv4_options[words * 4 - 1] = 0;
    }
    let payload_len = rng.below(24);
    frame.payload = rng.bytes(payload_len);
    let l3 = if frame.vlan.is_some() { 18 } else { 14 };
    let l4 = l3
        + if v6 {
            40
        } else {
            20 + frame.ipv4_options.len()
        };
    (frame.build(), Layout { l3, l4, v6 })
}

/// A valid packet to a configured service.
fn vip_packet(rng: &mut Rng, svcs: &[Svc]) -> (Vec<u8>, Layout) {
    let s = rng.pick(svcs);
    packet_to(rng, s.vip, s.port, s.proto == 6)
}

/// A valid packet that is no service: another address, port or protocol,
/// or an IPv6 address that shares its bytes with an IPv4 VIP.
fn non_vip_packet(rng: &mut Rng, svcs: &[Svc]) -> Vec<u8> {
    let s = rng.pick(svcs);
    let tcp = s.proto == 6;
    let (dst, port, tcp) = match rng.below(5) {
        0 => (IpAddr::from(Ipv4Addr::new(10, 0, 0, 200)), s.port, tcp),
        1 => (
            IpAddr::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x200)),
            s.port,
            tcp,
        ),
        2 => (s.vip, s.port, !tcp),
        3 => (s.vip, s.port.wrapping_add(1 + rng.below(100) as u16), tcp),
        _ => (v4_lookalike(s.vip), s.port, tcp),
    };
    let (mut f, layout) = packet_to(rng, dst, port, tcp);
    if rng.percent(10) {
        // A protocol that is neither TCP nor UDP.
        let at = if layout.v6 {
            layout.l3 + 6
        } else {
            layout.l3 + 9
        };
        f[at] = *rng.pick(&[1, 47, 50, 58, 132]);
    }
    f
}

/// An IPv6 address with the bytes of an IPv4 VIP (or a v4 one for a v6 VIP).
fn v4_lookalike(vip: IpAddr) -> IpAddr {
    match vip {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            Ipv6Addr::from(b).into()
        }
        IpAddr::V6(a) => {
            let b: [u8; 4] = a.octets()[..4].try_into().unwrap();
            Ipv4Addr::from(b).into()
        }
    }
}

/// Random bytes of a random length, sometimes behind a plausible ethertype.
fn random_frame(rng: &mut Rng) -> Vec<u8> {
    let len = if rng.percent(10) {
        rng.below(20)
    } else {
        rng.below(MAX_RANDOM_LEN + 1)
    };
    let mut f = rng.bytes(len);
    if len >= 15 && rng.percent(50) {
        let ethertype: u16 = *rng.pick(&[0x0800, 0x86dd, 0x8100]);
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        let version = if ethertype == 0x86dd { 0x60 } else { 0x45 };
        f[14] = version | (f[14] & 0x0f);
    }
    f
}

// ---------------------------------------------------------------------------
// Mutations.
// ---------------------------------------------------------------------------

/// Applies one to four random mutations.
fn mutate(rng: &mut Rng, f: &mut Vec<u8>, layout: &Layout) {
    for _ in 0..1 + rng.below(4) {
        match rng.below(8) {
            0 => flip_bit(rng, f),
            1 => overwrite_byte(rng, f),
            2 => f.truncate(rng.below(f.len() + 1)),
            3 => {
                let n = 1 + rng.below(64);
                f.extend(rng.bytes(n));
            }
            _ => mutate_field(rng, f, layout),
        }
    }
}

fn flip_bit(rng: &mut Rng, f: &mut [u8]) {
    if !f.is_empty() {
        let i = rng.below(f.len());
        f[i] ^= 1 << rng.below(8);
    }
}

fn overwrite_byte(rng: &mut Rng, f: &mut [u8]) {
    if !f.is_empty() {
        let i = rng.below(f.len());
        f[i] = rng.byte();
    }
}

/// Writes `v` big-endian at `at`, if the frame is long enough.
fn put16(f: &mut [u8], at: usize, v: u16) {
    if let Some(b) = f.get_mut(at..at + 2) {
        b.copy_from_slice(&v.to_be_bytes());
    }
}

fn put8(f: &mut [u8], at: usize, v: u8) {
    if let Some(b) = f.get_mut(at) {
        *b = v;
    }
}

/// Changes one header field to a random or boundary value.
fn mutate_field(rng: &mut Rng, f: &mut [u8], l: &Layout) {
    let byte0 = f.get(l.l3).copied().unwrap_or(0);
    match rng.below(9) {
        0 => {
            let any = rng.next() as u16;
            let t = *rng.pick(&[0x0800, 0x86dd, 0x8100, 0x88a8, 0x0806, any]);
            put16(f, l.l3 - 2, t);
        }
        1 => put8(f, l.l3, (rng.below(16) as u8) << 4 | (byte0 & 0x0f)),
        2 if !l.v6 => put8(f, l.l3, (byte0 & 0xf0) | rng.below(16) as u8),
        3 => {
            let at = if l.v6 { l.l3 + 4 } else { l.l3 + 2 };
            let v = ip_length(rng, f.len(), l);
            put16(f, at, v);
        }
        4 if !l.v6 => {
            let any = rng.next() as u16;
            let v = *rng.pick(&[0x2000, 0x0001, 0x4000, 0x8000, 0x1fff, any]);
            put16(f, l.l3 + 6, v);
        }
        5 => {
            let any = rng.byte();
            let p = *rng.pick(&[6, 17, 0, 1, 43, 44, 60, any]);
            put8(f, if l.v6 { l.l3 + 6 } else { l.l3 + 9 }, p);
        }
        6 => {
            let any = rng.next() as u16;
            let port = *rng.pick(&[80, 53, 443, 8080, any]);
            put16(f, l.l4 + 2 * rng.below(2), port);
        }
        7 => {
            let doff = rng.below(16) as u8;
            let old = f.get(l.l4 + 12).copied().unwrap_or(0);
            put8(f, l.l4 + 12, doff << 4 | (old & 0x0f));
        }
        _ => put8(f, l.l4 + 13, rng.byte()),
    }
}

/// An IPv4 `tot_len` or IPv6 `payload_len` near an interesting boundary.
fn ip_length(rng: &mut Rng, frame_len: usize, l: &Layout) -> u16 {
    let ip_hlen = if l.v6 { 0 } else { l.l4 - l.l3 };
    let fits = frame_len.saturating_sub(l.l3 + if l.v6 { 40 } else { 0 });
    let base = *rng.pick(&[0, ip_hlen, ip_hlen + 8, ip_hlen + 20, fits]);
    let delta = rng.below(5) as isize - 2;
    if rng.percent(10) {
        rng.next() as u16
    } else {
        (base as isize + delta).clamp(0, 0xffff) as u16
    }
}

// ---------------------------------------------------------------------------
// The run.
// ---------------------------------------------------------------------------

/// Which source made a frame.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Source {
    ValidVip,
    MutatedVip,
    Random,
    NonVip,
}

fn next_frame(rng: &mut Rng, svcs: &[Svc]) -> (Source, Vec<u8>) {
    match rng.below(100) {
        0..=9 => (Source::ValidVip, vip_packet(rng, svcs).0),
        10..=64 => {
            let (mut f, layout) = vip_packet(rng, svcs);
            mutate(rng, &mut f, &layout);
            (Source::MutatedVip, f)
        }
        65..=84 => (Source::Random, random_frame(rng)),
        _ => (Source::NonVip, non_vip_packet(rng, svcs)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Counts of what happened, and the failures seen.
#[derive(Default)]
struct Tally {
    packets: u64,
    pass: u64,
    tx: u64,
    rejected_short: u64,
    by_source: BTreeMap<(Source, u32), u64>,
    failures: BTreeMap<&'static str, u64>,
    printed: usize,
}

impl Tally {
    fn fail(&mut self, seed: u64, iter: u64, what: &'static str, frame: &[u8], detail: &str) {
        *self.failures.entry(what).or_default() += 1;
        if self.printed < MAX_PRINTED_FAILURES {
            self.printed += 1;
            eprintln!(
                "FAIL seed={seed:#x} iteration={iter}: {what}\n  frame ({} bytes): {}\n  {detail}",
                frame.len(),
                hex(frame),
            );
        }
    }
}

/// Sends one frame and checks the verdict.
fn run_one(
    dp: &XdpDataplane,
    svcs: &[Svc],
    t: &mut Tally,
    seed: u64,
    iter: u64,
    src: Source,
    f: &[u8],
) {
    t.packets += 1;
    let (action, out) = match dp.test_run(f) {
        Ok(r) => r,
        Err(_) if f.len() < 14 => {
            t.rejected_short += 1;
            return;
        }
        Err(e) => return t.fail(seed, iter, "TEST_RUN error", f, &format!("{e:#}")),
    };
    *t.by_source.entry((src, action)).or_default() += 1;
    match action {
        XDP_PASS => t.pass += 1,
        XDP_TX => t.tx += 1,
        _ => {}
    }
    if let Err(what) = check(svcs, f, action, &out) {
        let detail = format!(
            "action={action} oracle={:?} out={}",
            oracle_parse(f),
            hex(&out)
        );
        t.fail(seed, iter, what, f, &detail);
    }
}

#[test]
fn fuzzed_frames_keep_the_forwarding_properties() {
    let seed = env_u64("XVS_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    // Never fewer than the default: a million packets is the floor.
    let packets = env_u64("XVS_FUZZ_PACKETS").map_or(DEFAULT_PACKETS, |n| n.max(DEFAULT_PACKETS));
    println!("fuzz seed {seed:#x} (replay with XVS_FUZZ_SEED={seed:#x}), {packets} packets");

    let specs = services();
    let svcs = oracle_services(&specs);
    let dp = active_dataplane(&specs);
    let mut rng = Rng::new(seed);
    let mut t = Tally::default();

    let start = Instant::now();
    for iter in 0..packets {
        let (src, f) = next_frame(&mut rng, &svcs);
        run_one(&dp, &svcs, &mut t, seed, iter, src, &f);
    }
    let secs = start.elapsed().as_secs_f64();

    println!(
        "fuzz: {} packets in {secs:.2} s ({:.0} packets/s): {} PASS, {} TX, {} rejected (< 14 bytes)",
        t.packets,
        t.packets as f64 / secs,
        t.pass,
        t.tx,
        t.rejected_short
    );
    for ((src, action), n) in &t.by_source {
        println!("  {src:?} action {action}: {n}");
    }
    for (what, n) in &t.failures {
        println!("  FAILURE x{n}: {what}");
    }
    assert!(t.packets >= packets, "ran fewer packets than asked");
    assert!(
        t.failures.is_empty(),
        "seed {seed:#x}: {} failing packets, see above",
        t.failures.values().sum::<u64>()
    );
}
