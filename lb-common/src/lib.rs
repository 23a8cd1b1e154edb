//! Map keys, values and constants shared by the XDP program and userspace.
//!
//! Every type here is `#[repr(C)]` with explicit padding, so its bytes mean
//! the same on both sides. Keys are word-aligned (without adding padding) so
//! the data plane copies and hashes them a word at a time, not byte by byte. `bytemuck` gives safe byte views; `aya::Pod` is
//! implemented behind the `user` feature.
#![no_std]

pub mod ipvs;

use bytemuck::{Pod, Zeroable};

/// Map names, as the loader finds them in the object.
pub mod maps {
    pub const GLOBAL: &str = "XVS_GLOBAL";
    pub const VIP_FILTER: &str = "XVS_VIP_FILTER";
    pub const SERVICES: &str = "XVS_SERVICES";
    pub const DESTS: &str = "XVS_DESTS";
    pub const SCHED_POOL: &str = "XVS_SCHED_POOL";
    pub const SCHED_CURSOR: &str = "XVS_SCHED_CURSOR";
    pub const CONNS: &str = "XVS_CONNS";
    pub const PERSIST: &str = "XVS_PERSIST";
    pub const SERVICE_STATS: &str = "XVS_SERVICE_STATS";
    pub const DEST_STATS: &str = "XVS_DEST_STATS";
    pub const VERDICTS: &str = "XVS_VERDICTS";
    pub const IFACE_MACS: &str = "XVS_IFACE_MACS";
    pub const FLOW_CACHE: &str = "XVS_FLOW_CACHE";
}

/// Default map sizes. The loader may override the table sizes at load time.
pub const MAX_SERVICES: u32 = 16_384;
pub const MAX_DESTS: u32 = 65_536;
/// Slots in the shared pool holding every service's scheduling table.
pub const SCHED_POOL_SLOTS: u32 = 1 << 20;
pub const DEFAULT_CONN_TABLE: u32 = 1 << 20;
pub const DEFAULT_PERSIST_TABLE: u32 = 1 << 18;
pub const MAX_IFACES: u32 = 256;
/// Slots per CPU in the flow cache (a power of two).
pub const FLOW_CACHE_SLOTS: u32 = 4096;
/// The VIP filter is a bitmap of `VIP_FILTER_WORDS * 64` bits.
pub const VIP_FILTER_WORDS: u32 = 1024;
pub const VIP_FILTER_BITS: u32 = VIP_FILTER_WORDS * 64;

/// Address families, as stored in keys.
pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// A real address in 16 bytes: IPv4 uses the first four, the rest are zero.
pub type Addr = [u8; 16];

/// Marks an empty scheduling-table slot (no usable real for that bucket).
pub const NO_DEST: u32 = u32::MAX;

/// `ServiceInfo::sched_kind`: how the scheduling table is read.
pub mod sched_kind {
    /// Walk the table with a per-CPU cursor (rr, wrr and their relatives).
    pub const RING: u8 = 0;
    /// Index the table by the source-address hash (sh).
    pub const SOURCE_HASH: u8 = 1;
}

/// `ServiceInfo::flags`.
pub mod service_flags {
    /// `persistence_timeout` / `ipvsadm -p`.
    pub const PERSISTENT: u8 = 1 << 0;
    /// sh hashes the source port too (`sh-port`).
    pub const SH_PORT: u8 = 1 << 1;
}

/// `Dest::flags`.
pub mod dest_flags {
    /// The real is this director: hand its packets to the local stack.
    pub const LOCAL: u8 = 1 << 0;
}

/// `GlobalConfig::flags`.
pub mod global_flags {
    /// Emit aya-log debug records from the data plane.
    pub const DEBUG_LOG: u32 = 1 << 0;
    /// Schedule TCP flows that start without a SYN (IPVS's sloppy_tcp).
    pub const SLOPPY_TCP: u32 = 1 << 1;
}

/// Key of `SERVICES`: one virtual service.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct ServiceKey {
    pub addr: Addr,
    /// Network byte order, as it is on the wire.
    pub port_be: u16,
    pub proto: u8,
    pub family: u8,
}

/// Value of `SERVICES`. A hash-map update replaces it whole, so a packet
/// sees either the old or the new service, never a mix. Its scheduling
/// table lives at `table_off..table_off+table_len` in `SCHED_POOL`; userspace
/// writes a new table elsewhere in the pool before it points here.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct ServiceInfo {
    /// Index into `SERVICE_STATS` and `SCHED_CURSOR`.
    pub id: u32,
    pub table_off: u32,
    /// Zero when the service has no usable real.
    pub table_len: u32,
    pub persist_timeout_s: u32,
    /// Persistence granularity, applied to the client address.
    pub persist_mask: Addr,
    pub sched_kind: u8,
    pub flags: u8,
    pub _pad: [u8; 2],
}

/// Value of `DESTS`: one real server of one service.
///
/// Updated in place, so every write changes bytes that no packet is using:
/// the MAC is double-buffered and `mac_sel` (one byte) flips to the new copy.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Dest {
    pub addr: Addr,
    pub macs: [[u8; 8]; 2],
    /// Which of `macs` is current (0 or 1).
    pub mac_sel: u8,
    pub flags: u8,
    pub family: u8,
    pub _pad: u8,
    /// Changes whenever the slot is emptied or reused; 0 means empty.
    /// Connections remember it, so a stale one is scheduled anew.
    pub gen: u32,
    /// Owning service's `ServiceInfo::id`.
    pub service_id: u32,
    /// The real's port (network byte order). The data plane does not read
    /// it (DR keeps the port); a restarted daemon rebuilds its state from it.
    pub port_be: u16,
    pub _pad2: u16,
}

impl Dest {
    #[inline(always)]
    pub fn mac(&self) -> &[u8; 8] {
        &self.macs[(self.mac_sel & 1) as usize]
    }
}

/// Value of `IFACE_MACS`: the MAC that forwarded frames leave with.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct IfaceMac {
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}

/// Key of `CONNS`: a flow's 5-tuple as the client sent it.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct ConnKey {
    pub saddr: Addr,
    pub daddr: Addr,
    pub sport_be: u16,
    pub dport_be: u16,
    pub proto: u8,
    pub family: u8,
    pub _pad: [u8; 2],
}

/// Value of `CONNS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct ConnEntry {
    /// Index into `DESTS`.
    pub dest: u32,
    /// `Dest::gen` when the flow was scheduled.
    pub dest_gen: u32,
    /// `bpf_ktime_get_coarse_ns` (CLOCK_MONOTONIC_COARSE) of the last packet.
    pub last_seen_ns: u64,
    /// An `ipvs::ConnState`.
    pub state: u8,
    pub _pad: [u8; 7],
}

/// One slot of the per-CPU flow cache: a copy of a `CONNS` entry with its
/// key, exactly one 64-byte cache line.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct FlowCacheSlot {
    pub key: ConnKey,
    pub entry: ConnEntry,
}

/// Key of `PERSIST`: a persistence template (service + masked client).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct PersistKey {
    pub service_id: u32,
    pub family: u8,
    pub _pad: [u8; 3],
    pub caddr: Addr,
}

/// Value of `PERSIST`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct PersistEntry {
    pub dest: u32,
    pub dest_gen: u32,
    /// Refreshed each time a new flow uses the template.
    pub last_used_ns: u64,
}

/// Per-service and per-real counters, one copy per CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Counters {
    pub conns: u64,
    pub packets: u64,
    pub bytes: u64,
    /// Packets that found no usable real (services only).
    pub unscheduled: u64,
}

impl Counters {
    pub fn add(&mut self, other: &Counters) {
        self.conns = self.conns.wrapping_add(other.conns);
        self.packets = self.packets.wrapping_add(other.packets);
        self.bytes = self.bytes.wrapping_add(other.bytes);
        self.unscheduled = self.unscheduled.wrapping_add(other.unscheduled);
    }
}

/// Value of `GLOBAL[0]`: director-wide settings.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct GlobalConfig {
    /// Non-zero while this director is VRRP MASTER. Otherwise every packet
    /// is passed, so two directors never forward to each other.
    pub active: u32,
    pub flags: u32,
    /// When non-zero, forwarding also stops at this CLOCK_MONOTONIC time
    /// (ns). A VRRP MASTER renews it with every advert, so the data plane of
    /// a daemon that died (SIGKILL) stops by the time its backup takes
    /// over, instead of forwarding on beside it.
    pub active_until_ns: u64,
    /// Idle timeout per `ipvs::ConnState`, in seconds.
    pub timeouts_s: [u32; ipvs::STATE_COUNT],
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            active: 0,
            flags: 0,
            active_until_ns: 0,
            timeouts_s: ipvs::DEFAULT_TIMEOUTS_S,
        }
    }
}

/// Index into `VERDICTS`: why a packet got its verdict.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Forwarded to a real with XDP_TX.
    Tx = 0,
    /// Addressed to a real that is this director: XDP_PASS to the stack.
    PassLocalReal,
    /// Not IPv4/IPv6.
    PassNotIp,
    /// Destination is not a VIP, or no service matches port/protocol.
    PassNotService,
    /// IPv4 fragment: IPVS does not balance those either.
    PassFragment,
    /// Truncated or malformed header.
    PassMalformed,
    /// This director is not active (VRRP BACKUP/FAULT).
    PassInactive,
    /// Service matched but has no usable real.
    PassNoDest,
    /// TCP without SYN and without a connection entry.
    PassNoConn,
    /// Protocol other than TCP/UDP to a VIP (an IPv6 extension header
    /// counts here too: XVS does not walk them).
    PassNotTcpUdp,
}

pub const VERDICT_COUNT: u32 = 10;

impl Verdict {
    pub const ALL: [Verdict; VERDICT_COUNT as usize] = [
        Verdict::Tx,
        Verdict::PassLocalReal,
        Verdict::PassNotIp,
        Verdict::PassNotService,
        Verdict::PassFragment,
        Verdict::PassMalformed,
        Verdict::PassInactive,
        Verdict::PassNoDest,
        Verdict::PassNoConn,
        Verdict::PassNotTcpUdp,
    ];

    /// Stable name for metrics and listings.
    pub const fn name(self) -> &'static str {
        match self {
            Verdict::Tx => "tx",
            Verdict::PassLocalReal => "pass_local_real",
            Verdict::PassNotIp => "pass_not_ip",
            Verdict::PassNotService => "pass_not_service",
            Verdict::PassFragment => "pass_fragment",
            Verdict::PassMalformed => "pass_malformed",
            Verdict::PassInactive => "pass_inactive",
            Verdict::PassNoDest => "pass_no_dest",
            Verdict::PassNoConn => "pass_no_conn",
            Verdict::PassNotTcpUdp => "pass_not_tcp_udp",
        }
    }
}

/// Bit of the VIP filter for a destination address. The data plane passes a
/// packet at once when its bit is clear, so non-VIP traffic pays one array
/// read. `addr_words` are the address's 32-bit words as loaded from the packet.
#[inline(always)]
pub fn vip_filter_bit(family: u8, addr_words: [u32; 4]) -> u32 {
    let folded = addr_words[0] ^ addr_words[1] ^ addr_words[2] ^ addr_words[3] ^ family as u32;
    folded.wrapping_mul(0x9E37_79B1) >> (32 - 16)
}

/// The 32-bit words of a 16-byte address, as the data plane loads them.
#[inline(always)]
pub fn addr_words(addr: &Addr) -> [u32; 4] {
    let mut words = [0u32; 4];
    let mut i = 0;
    while i < 4 {
        words[i] = u32::from_ne_bytes([
            addr[i * 4],
            addr[i * 4 + 1],
            addr[i * 4 + 2],
            addr[i * 4 + 3],
        ]);
        i += 1;
    }
    words
}

#[cfg(feature = "user")]
mod user {
    use super::*;
    // SAFETY: all of these are repr(C), Copy and bytemuck::Pod (no padding,
    // every bit pattern valid), which is exactly what aya::Pod requires.
    unsafe impl aya::Pod for ServiceKey {}
    unsafe impl aya::Pod for ServiceInfo {}
    unsafe impl aya::Pod for Dest {}
    unsafe impl aya::Pod for ConnKey {}
    unsafe impl aya::Pod for ConnEntry {}
    unsafe impl aya::Pod for PersistKey {}
    unsafe impl aya::Pod for PersistEntry {}
    unsafe impl aya::Pod for Counters {}
    unsafe impl aya::Pod for GlobalConfig {}
    unsafe impl aya::Pod for IfaceMac {}
    unsafe impl aya::Pod for FlowCacheSlot {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn layouts_are_stable() {
        assert_eq!(size_of::<ServiceKey>(), 20);
        assert_eq!(size_of::<ServiceInfo>(), 36);
        assert_eq!(size_of::<Dest>(), 48);
        assert_eq!(size_of::<ConnKey>(), 40);
        assert_eq!(size_of::<ConnEntry>(), 24);
        assert_eq!(size_of::<PersistKey>(), 24);
        assert_eq!(size_of::<PersistEntry>(), 16);
        assert_eq!(size_of::<Counters>(), 32);
        assert_eq!(size_of::<FlowCacheSlot>(), 64);
    }

    #[test]
    fn verdict_table_is_complete() {
        for (i, v) in Verdict::ALL.iter().enumerate() {
            assert_eq!(*v as usize, i);
        }
    }
}
