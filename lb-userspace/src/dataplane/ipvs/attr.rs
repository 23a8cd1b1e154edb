//! The IPVS generic-netlink family, attribute by attribute, as the kernel's
//! `include/uapi/linux/ip_vs.h` defines it and ipvsadm's libipvs sends it.
//!
//! Framing (netlink and genetlink headers, attribute headers, padding) is
//! netlink-packet-core's and netlink-packet-generic's; what is here is what
//! those crates do not know: the IPVS commands, their attributes, and the
//! typed [`Service`], [`Dest`], [`Daemon`], [`Stats`] and [`Timeouts`] they
//! carry.
//!
//! Requests are byte for byte what ipvsadm 1.31 (Debian 12, libnl-3)
//! sends for the same operation (captured with strace in the guest of
//! `cargo xtask vm`; see tests.rs). Wire details that matter:
//! - the first-level nests carry `NLA_F_NESTED`, as libnl's
//!   `nla_nest_start` sets it (the kernel's replies do not; either parses);
//! - a service is always named with all its attributes, and a destination
//!   too (tunnel ones included), as libipvs does even to delete them;
//! - addresses are a 16-byte `union nf_inet_addr` (IPv4 in the first 4);
//! - ports are in network byte order; everything else in host order;
//! - the persistence netmask is, for IPv4, the mask itself in network byte
//!   order, and for IPv6 the prefix length.

use netlink_packet_core::{
    emit_u16, emit_u32, emit_u64, parse_string, parse_u16, parse_u16_be, parse_u32, parse_u8,
    DecodeError, DefaultNla, Emitable, Nla, NlaBuffer, NlasIterator, Parseable,
    ParseableParametrized, NLA_F_NESTED, NLA_F_NET_BYTEORDER,
};
use netlink_packet_generic::{GenlFamily, GenlHeader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The family's name, resolved to its id through the genetlink controller.
pub const FAMILY_NAME: &str = "IPVS";
/// `IPVS_GENL_VERSION`.
pub const FAMILY_VERSION: u8 = 1;

/// `IPVS_CMD_*`.
pub mod cmd {
    pub const NEW_SERVICE: u8 = 1;
    pub const SET_SERVICE: u8 = 2;
    pub const DEL_SERVICE: u8 = 3;
    pub const GET_SERVICE: u8 = 4;
    pub const NEW_DEST: u8 = 5;
    pub const SET_DEST: u8 = 6;
    pub const DEL_DEST: u8 = 7;
    pub const GET_DEST: u8 = 8;
    pub const NEW_DAEMON: u8 = 9;
    pub const DEL_DAEMON: u8 = 10;
    pub const GET_DAEMON: u8 = 11;
    pub const SET_CONFIG: u8 = 12;
    pub const GET_CONFIG: u8 = 13;
    /// Only in the reply to GET_INFO.
    pub const SET_INFO: u8 = 14;
    pub const GET_INFO: u8 = 15;
    pub const ZERO: u8 = 16;
    pub const FLUSH: u8 = 17;
}

/// `IPVS_CMD_ATTR_*`: the first level of every command.
pub mod cmd_attr {
    pub const SERVICE: u16 = 1;
    pub const DEST: u16 = 2;
    pub const DAEMON: u16 = 3;
    pub const TIMEOUT_TCP: u16 = 4;
    pub const TIMEOUT_TCP_FIN: u16 = 5;
    pub const TIMEOUT_UDP: u16 = 6;
}

/// `IPVS_SVC_ATTR_*`.
pub mod svc_attr {
    pub const AF: u16 = 1;
    pub const PROTOCOL: u16 = 2;
    pub const ADDR: u16 = 3;
    pub const PORT: u16 = 4;
    pub const FWMARK: u16 = 5;
    pub const SCHED_NAME: u16 = 6;
    pub const FLAGS: u16 = 7;
    pub const TIMEOUT: u16 = 8;
    pub const NETMASK: u16 = 9;
    pub const STATS: u16 = 10;
    pub const PE_NAME: u16 = 11;
    pub const STATS64: u16 = 12;
}

/// `IPVS_DEST_ATTR_*`.
pub mod dest_attr {
    pub const ADDR: u16 = 1;
    pub const PORT: u16 = 2;
    pub const FWD_METHOD: u16 = 3;
    pub const WEIGHT: u16 = 4;
    pub const U_THRESH: u16 = 5;
    pub const L_THRESH: u16 = 6;
    pub const ACTIVE_CONNS: u16 = 7;
    pub const INACT_CONNS: u16 = 8;
    pub const PERSIST_CONNS: u16 = 9;
    pub const STATS: u16 = 10;
    pub const ADDR_FAMILY: u16 = 11;
    pub const STATS64: u16 = 12;
    pub const TUN_TYPE: u16 = 13;
    pub const TUN_PORT: u16 = 14;
    pub const TUN_FLAGS: u16 = 15;
}

/// `IPVS_DAEMON_ATTR_*`.
pub mod daemon_attr {
    pub const STATE: u16 = 1;
    pub const MCAST_IFN: u16 = 2;
    pub const SYNC_ID: u16 = 3;
    pub const SYNC_MAXLEN: u16 = 4;
    pub const MCAST_GROUP: u16 = 5;
    pub const MCAST_GROUP6: u16 = 6;
    pub const MCAST_PORT: u16 = 7;
    pub const MCAST_TTL: u16 = 8;
}

/// `IPVS_STATS_ATTR_*`.
pub mod stats_attr {
    pub const CONNS: u16 = 1;
    pub const INPKTS: u16 = 2;
    pub const OUTPKTS: u16 = 3;
    pub const INBYTES: u16 = 4;
    pub const OUTBYTES: u16 = 5;
    pub const CPS: u16 = 6;
    pub const INPPS: u16 = 7;
    pub const OUTPPS: u16 = 8;
    pub const INBPS: u16 = 9;
    pub const OUTBPS: u16 = 10;
    pub const PAD: u16 = 11;
}

/// `IPVS_INFO_ATTR_*` (first level of the SET_INFO reply).
pub mod info_attr {
    pub const VERSION: u16 = 1;
    pub const CONN_TAB_SIZE: u16 = 2;
}

/// `IP_VS_CONN_F_*` forwarding methods (`IP_VS_CONN_F_FWD_MASK` bits).
pub mod fwd {
    pub const MASQ: u32 = 0;
    pub const LOCALNODE: u32 = 1;
    pub const TUNNEL: u32 = 2;
    pub const DROUTE: u32 = 3;
    pub const BYPASS: u32 = 4;
    pub const MASK: u32 = 7;
}

/// `IP_VS_SVC_F_*` service flags.
pub mod svc_flags {
    pub const PERSISTENT: u32 = 0x0001;
    /// Set by the kernel on every service it lists; never sent.
    pub const HASHED: u32 = 0x0002;
    pub const ONEPACKET: u32 = 0x0004;
    /// sh: `sh-fallback`.
    pub const SCHED1: u32 = 0x0008;
    /// sh: `sh-port`.
    pub const SCHED2: u32 = 0x0010;
    pub const SCHED3: u32 = 0x0020;
}

/// `IP_VS_STATE_*`: what a sync daemon is.
pub mod daemon_state {
    pub const MASTER: u32 = 1;
    pub const BACKUP: u32 = 2;
}

pub const AF_INET: u16 = libc::AF_INET as u16;
pub const AF_INET6: u16 = libc::AF_INET6 as u16;

// ---------------------------------------------------------------------------
// Attributes

/// A 16-byte `union nf_inet_addr`.
fn inet_addr_bytes(addr: IpAddr) -> [u8; 16] {
    let mut out = [0; 16];
    match addr {
        IpAddr::V4(a) => out[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => out = a.octets(),
    }
    out
}

fn inet_addr(af: u16, bytes: &[u8]) -> Result<IpAddr, DecodeError> {
    match (af, bytes.len()) {
        (AF_INET, n) if n >= 4 => Ok(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        (AF_INET6, 16) => {
            let mut a = [0; 16];
            a.copy_from_slice(bytes);
            Ok(IpAddr::V6(Ipv6Addr::from(a)))
        }
        _ => Err(DecodeError::from(format!(
            "address of family {af} in {} bytes",
            bytes.len()
        ))),
    }
}

/// A counter: u32 in `*_ATTR_STATS`, u64 in `*_ATTR_STATS64`.
fn parse_counter(value: &[u8]) -> Result<u64, DecodeError> {
    match value.len() {
        4 => Ok(parse_u32(value)? as u64),
        8 => Ok(u64::from_ne_bytes(value.try_into().unwrap())),
        n => Err(DecodeError::invalid_number(8, n)),
    }
}

fn emit_string(buffer: &mut [u8], s: &str) {
    buffer[..s.len()].copy_from_slice(s.as_bytes());
    buffer[s.len()] = 0;
}

/// One counter of `IPVS_*_ATTR_STATS64` (all u64) or `IPVS_*_ATTR_STATS`
/// (u32 except the byte counts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatsAttr {
    Counter { kind: u16, value: u64, wide: bool },
    Other(DefaultNla),
}

impl Nla for StatsAttr {
    fn value_len(&self) -> usize {
        match self {
            StatsAttr::Counter { wide: true, .. } => 8,
            StatsAttr::Counter { wide: false, .. } => 4,
            StatsAttr::Other(nla) => nla.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        match self {
            StatsAttr::Counter { kind, .. } => *kind,
            StatsAttr::Other(nla) => nla.kind(),
        }
    }
    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            StatsAttr::Counter {
                value, wide: true, ..
            } => emit_u64(buffer, *value).unwrap(),
            StatsAttr::Counter { value, .. } => emit_u32(buffer, *value as u32).unwrap(),
            StatsAttr::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for StatsAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let value = buf.value();
        Ok(match buf.kind() {
            kind @ stats_attr::CONNS..=stats_attr::OUTBPS => StatsAttr::Counter {
                kind,
                value: parse_counter(value)?,
                wide: value.len() == 8,
            },
            _ => StatsAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// `IPVS_SVC_ATTR_*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SvcAttr {
    Af(u16),
    Protocol(u16),
    Addr([u8; 16]),
    /// Host order here, network order on the wire.
    Port(u16),
    Fwmark(u32),
    SchedName(String),
    Flags {
        flags: u32,
        mask: u32,
    },
    /// Persistence timeout, seconds.
    Timeout(u32),
    /// The raw value; see [`Persist`].
    Netmask(u32),
    Stats(Vec<StatsAttr>),
    PeName(String),
    Stats64(Vec<StatsAttr>),
    Other(DefaultNla),
}

impl Nla for SvcAttr {
    fn value_len(&self) -> usize {
        use SvcAttr::*;
        match self {
            Af(_) | Protocol(_) | Port(_) => 2,
            Addr(_) => 16,
            Fwmark(_) | Timeout(_) | Netmask(_) => 4,
            SchedName(s) | PeName(s) => s.len() + 1,
            Flags { .. } => 8,
            Stats(a) | Stats64(a) => a.as_slice().buffer_len(),
            Other(nla) => nla.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        use SvcAttr::*;
        match self {
            Af(_) => svc_attr::AF,
            Protocol(_) => svc_attr::PROTOCOL,
            Addr(_) => svc_attr::ADDR,
            Port(_) => svc_attr::PORT,
            Fwmark(_) => svc_attr::FWMARK,
            SchedName(_) => svc_attr::SCHED_NAME,
            Flags { .. } => svc_attr::FLAGS,
            Timeout(_) => svc_attr::TIMEOUT,
            Netmask(_) => svc_attr::NETMASK,
            Stats(_) => svc_attr::STATS,
            PeName(_) => svc_attr::PE_NAME,
            Stats64(_) => svc_attr::STATS64,
            Other(nla) => nla.kind(),
        }
    }
    fn emit_value(&self, buffer: &mut [u8]) {
        use SvcAttr::*;
        match self {
            Af(v) | Protocol(v) => emit_u16(buffer, *v).unwrap(),
            Port(p) => buffer[..2].copy_from_slice(&p.to_be_bytes()),
            Addr(a) => buffer[..16].copy_from_slice(a),
            Fwmark(v) | Timeout(v) | Netmask(v) => emit_u32(buffer, *v).unwrap(),
            SchedName(s) | PeName(s) => emit_string(buffer, s),
            Flags { flags, mask } => {
                emit_u32(&mut buffer[..4], *flags).unwrap();
                emit_u32(&mut buffer[4..8], *mask).unwrap();
            }
            Stats(a) | Stats64(a) => a.as_slice().emit(buffer),
            Other(nla) => nla.emit_value(buffer),
        }
    }
}

fn parse_nested<A>(value: &[u8]) -> Result<Vec<A>, DecodeError>
where
    A: for<'a> Parseable<NlaBuffer<&'a [u8]>>,
{
    NlasIterator::new(value)
        .map(|nla| nla.and_then(|nla| A::parse(&nla)))
        .collect()
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for SvcAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() {
            svc_attr::AF => SvcAttr::Af(parse_u16(v)?),
            svc_attr::PROTOCOL => SvcAttr::Protocol(parse_u16(v)?),
            svc_attr::ADDR => {
                let mut a = [0; 16];
                let n = v.len().min(16);
                a[..n].copy_from_slice(&v[..n]);
                SvcAttr::Addr(a)
            }
            svc_attr::PORT => SvcAttr::Port(parse_u16_be(v)?),
            svc_attr::FWMARK => SvcAttr::Fwmark(parse_u32(v)?),
            svc_attr::SCHED_NAME => SvcAttr::SchedName(parse_string(v)?),
            svc_attr::FLAGS if v.len() == 8 => SvcAttr::Flags {
                flags: parse_u32(&v[..4])?,
                mask: parse_u32(&v[4..])?,
            },
            svc_attr::TIMEOUT => SvcAttr::Timeout(parse_u32(v)?),
            svc_attr::NETMASK => SvcAttr::Netmask(parse_u32(v)?),
            svc_attr::STATS => SvcAttr::Stats(parse_nested(v)?),
            svc_attr::PE_NAME => SvcAttr::PeName(parse_string(v)?),
            svc_attr::STATS64 => SvcAttr::Stats64(parse_nested(v)?),
            _ => SvcAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// `IPVS_DEST_ATTR_*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestAttr {
    Addr([u8; 16]),
    /// Host order here, network order on the wire.
    Port(u16),
    FwdMethod(u32),
    Weight(u32),
    UThresh(u32),
    LThresh(u32),
    ActiveConns(u32),
    InactConns(u32),
    PersistConns(u32),
    Stats(Vec<StatsAttr>),
    AddrFamily(u16),
    Stats64(Vec<StatsAttr>),
    TunType(u8),
    /// Network order on the wire.
    TunPort(u16),
    TunFlags(u16),
    Other(DefaultNla),
}

impl Nla for DestAttr {
    fn value_len(&self) -> usize {
        use DestAttr::*;
        match self {
            Addr(_) => 16,
            Port(_) | AddrFamily(_) | TunPort(_) | TunFlags(_) => 2,
            TunType(_) => 1,
            FwdMethod(_) | Weight(_) | UThresh(_) | LThresh(_) | ActiveConns(_) | InactConns(_)
            | PersistConns(_) => 4,
            Stats(a) | Stats64(a) => a.as_slice().buffer_len(),
            Other(nla) => nla.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        use DestAttr::*;
        match self {
            Addr(_) => dest_attr::ADDR,
            Port(_) => dest_attr::PORT,
            FwdMethod(_) => dest_attr::FWD_METHOD,
            Weight(_) => dest_attr::WEIGHT,
            UThresh(_) => dest_attr::U_THRESH,
            LThresh(_) => dest_attr::L_THRESH,
            ActiveConns(_) => dest_attr::ACTIVE_CONNS,
            InactConns(_) => dest_attr::INACT_CONNS,
            PersistConns(_) => dest_attr::PERSIST_CONNS,
            Stats(_) => dest_attr::STATS,
            AddrFamily(_) => dest_attr::ADDR_FAMILY,
            Stats64(_) => dest_attr::STATS64,
            TunType(_) => dest_attr::TUN_TYPE,
            TunPort(_) => dest_attr::TUN_PORT,
            TunFlags(_) => dest_attr::TUN_FLAGS,
            Other(nla) => nla.kind(),
        }
    }
    fn emit_value(&self, buffer: &mut [u8]) {
        use DestAttr::*;
        match self {
            Addr(a) => buffer[..16].copy_from_slice(a),
            Port(p) | TunPort(p) => buffer[..2].copy_from_slice(&p.to_be_bytes()),
            AddrFamily(v) | TunFlags(v) => emit_u16(buffer, *v).unwrap(),
            TunType(v) => buffer[0] = *v,
            FwdMethod(v) | Weight(v) | UThresh(v) | LThresh(v) | ActiveConns(v) | InactConns(v)
            | PersistConns(v) => emit_u32(buffer, *v).unwrap(),
            Stats(a) | Stats64(a) => a.as_slice().emit(buffer),
            Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for DestAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() {
            dest_attr::ADDR => {
                let mut a = [0; 16];
                let n = v.len().min(16);
                a[..n].copy_from_slice(&v[..n]);
                DestAttr::Addr(a)
            }
            dest_attr::PORT => DestAttr::Port(parse_u16_be(v)?),
            dest_attr::FWD_METHOD => DestAttr::FwdMethod(parse_u32(v)?),
            dest_attr::WEIGHT => DestAttr::Weight(parse_u32(v)?),
            dest_attr::U_THRESH => DestAttr::UThresh(parse_u32(v)?),
            dest_attr::L_THRESH => DestAttr::LThresh(parse_u32(v)?),
            dest_attr::ACTIVE_CONNS => DestAttr::ActiveConns(parse_u32(v)?),
            dest_attr::INACT_CONNS => DestAttr::InactConns(parse_u32(v)?),
            dest_attr::PERSIST_CONNS => DestAttr::PersistConns(parse_u32(v)?),
            dest_attr::STATS => DestAttr::Stats(parse_nested(v)?),
            dest_attr::ADDR_FAMILY => DestAttr::AddrFamily(parse_u16(v)?),
            dest_attr::STATS64 => DestAttr::Stats64(parse_nested(v)?),
            dest_attr::TUN_TYPE => DestAttr::TunType(parse_u8(v)?),
            dest_attr::TUN_PORT => DestAttr::TunPort(parse_u16_be(v)?),
            dest_attr::TUN_FLAGS => DestAttr::TunFlags(parse_u16(v)?),
            _ => DestAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// `IPVS_DAEMON_ATTR_*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaemonAttr {
    State(u32),
    McastIfn(String),
    SyncId(u32),
    SyncMaxLen(u16),
    /// IPv4 group, network order in memory.
    McastGroup(Ipv4Addr),
    McastGroup6(Ipv6Addr),
    McastPort(u16),
    McastTtl(u8),
    Other(DefaultNla),
}

impl Nla for DaemonAttr {
    fn value_len(&self) -> usize {
        use DaemonAttr::*;
        match self {
            State(_) | SyncId(_) | McastGroup(_) => 4,
            McastIfn(s) => s.len() + 1,
            SyncMaxLen(_) | McastPort(_) => 2,
            McastGroup6(_) => 16,
            McastTtl(_) => 1,
            Other(nla) => nla.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        use DaemonAttr::*;
        match self {
            State(_) => daemon_attr::STATE,
            McastIfn(_) => daemon_attr::MCAST_IFN,
            SyncId(_) => daemon_attr::SYNC_ID,
            SyncMaxLen(_) => daemon_attr::SYNC_MAXLEN,
            McastGroup(_) => daemon_attr::MCAST_GROUP,
            McastGroup6(_) => daemon_attr::MCAST_GROUP6,
            McastPort(_) => daemon_attr::MCAST_PORT,
            McastTtl(_) => daemon_attr::MCAST_TTL,
            Other(nla) => nla.kind(),
        }
    }
    fn emit_value(&self, buffer: &mut [u8]) {
        use DaemonAttr::*;
        match self {
            State(v) | SyncId(v) => emit_u32(buffer, *v).unwrap(),
            McastIfn(s) => emit_string(buffer, s),
            SyncMaxLen(v) | McastPort(v) => emit_u16(buffer, *v).unwrap(),
            McastGroup(a) => buffer[..4].copy_from_slice(&a.octets()),
            McastGroup6(a) => buffer[..16].copy_from_slice(&a.octets()),
            McastTtl(v) => buffer[0] = *v,
            Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for DaemonAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() {
            daemon_attr::STATE => DaemonAttr::State(parse_u32(v)?),
            daemon_attr::MCAST_IFN => DaemonAttr::McastIfn(parse_string(v)?),
            daemon_attr::SYNC_ID => DaemonAttr::SyncId(parse_u32(v)?),
            daemon_attr::SYNC_MAXLEN => DaemonAttr::SyncMaxLen(parse_u16(v)?),
            daemon_attr::MCAST_GROUP if v.len() == 4 => {
                DaemonAttr::McastGroup(Ipv4Addr::new(v[0], v[1], v[2], v[3]))
            }
            daemon_attr::MCAST_GROUP6 if v.len() == 16 => {
                DaemonAttr::McastGroup6(Ipv6Addr::from(<[u8; 16]>::try_from(v).unwrap()))
            }
            daemon_attr::MCAST_PORT => DaemonAttr::McastPort(parse_u16(v)?),
            daemon_attr::MCAST_TTL => DaemonAttr::McastTtl(parse_u8(v)?),
            _ => DaemonAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// `IPVS_CMD_ATTR_*`, and the `IPVS_INFO_ATTR_*` of the SET_INFO reply
/// (they share numbers; which is meant follows from the command).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CmdAttr {
    Service(Vec<SvcAttr>),
    Dest(Vec<DestAttr>),
    Daemon(Vec<DaemonAttr>),
    TimeoutTcp(u32),
    TimeoutTcpFin(u32),
    TimeoutUdp(u32),
    InfoVersion(u32),
    InfoConnTabSize(u32),
    Other(DefaultNla),
}

impl Nla for CmdAttr {
    fn value_len(&self) -> usize {
        use CmdAttr::*;
        match self {
            Service(a) => a.as_slice().buffer_len(),
            Dest(a) => a.as_slice().buffer_len(),
            Daemon(a) => a.as_slice().buffer_len(),
            TimeoutTcp(_) | TimeoutTcpFin(_) | TimeoutUdp(_) | InfoVersion(_)
            | InfoConnTabSize(_) => 4,
            Other(nla) => nla.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        use CmdAttr::*;
        match self {
            Service(_) => cmd_attr::SERVICE | NLA_F_NESTED,
            Dest(_) => cmd_attr::DEST | NLA_F_NESTED,
            Daemon(_) => cmd_attr::DAEMON | NLA_F_NESTED,
            TimeoutTcp(_) => cmd_attr::TIMEOUT_TCP,
            TimeoutTcpFin(_) => cmd_attr::TIMEOUT_TCP_FIN,
            TimeoutUdp(_) => cmd_attr::TIMEOUT_UDP,
            InfoVersion(_) => info_attr::VERSION,
            InfoConnTabSize(_) => info_attr::CONN_TAB_SIZE,
            Other(nla) => nla.kind(),
        }
    }
    fn emit_value(&self, buffer: &mut [u8]) {
        use CmdAttr::*;
        match self {
            Service(a) => a.as_slice().emit(buffer),
            Dest(a) => a.as_slice().emit(buffer),
            Daemon(a) => a.as_slice().emit(buffer),
            TimeoutTcp(v) | TimeoutTcpFin(v) | TimeoutUdp(v) | InfoVersion(v)
            | InfoConnTabSize(v) => emit_u32(buffer, *v).unwrap(),
            Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl CmdAttr {
    fn parse_in(command: u8, buf: &NlaBuffer<&[u8]>) -> Result<Self, DecodeError> {
        let v = buf.value();
        // The kernel never sets NLA_F_NESTED here, but accept it.
        let kind = buf.kind() & !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);
        if command == cmd::SET_INFO {
            return Ok(match kind {
                info_attr::VERSION => CmdAttr::InfoVersion(parse_u32(v)?),
                info_attr::CONN_TAB_SIZE => CmdAttr::InfoConnTabSize(parse_u32(v)?),
                _ => CmdAttr::Other(DefaultNla::parse(buf)?),
            });
        }
        Ok(match kind {
            cmd_attr::SERVICE => CmdAttr::Service(parse_nested(v)?),
            cmd_attr::DEST => CmdAttr::Dest(parse_nested(v)?),
            cmd_attr::DAEMON => CmdAttr::Daemon(parse_nested(v)?),
            cmd_attr::TIMEOUT_TCP => CmdAttr::TimeoutTcp(parse_u32(v)?),
            cmd_attr::TIMEOUT_TCP_FIN => CmdAttr::TimeoutTcpFin(parse_u32(v)?),
            cmd_attr::TIMEOUT_UDP => CmdAttr::TimeoutUdp(parse_u32(v)?),
            _ => CmdAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// One IPVS genetlink message: a command and its attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpvsMessage {
    pub cmd: u8,
    pub attrs: Vec<CmdAttr>,
}

impl GenlFamily for IpvsMessage {
    fn family_name() -> &'static str {
        FAMILY_NAME
    }
    fn command(&self) -> u8 {
        self.cmd
    }
    fn version(&self) -> u8 {
        FAMILY_VERSION
    }
}

impl Emitable for IpvsMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let attrs = NlasIterator::new(buf)
            .map(|nla| nla.and_then(|nla| CmdAttr::parse_in(header.cmd, &nla)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(IpvsMessage {
            cmd: header.cmd,
            attrs,
        })
    }
}

// ---------------------------------------------------------------------------
// Typed values

/// The counters of `*_ATTR_STATS64` (or, from an old kernel, `*_ATTR_STATS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

impl Stats {
    fn from_attrs(attrs: &[StatsAttr]) -> Stats {
        let mut s = Stats::default();
        for a in attrs {
            if let StatsAttr::Counter { kind, value, .. } = *a {
                let slot = match kind {
                    stats_attr::CONNS => &mut s.conns,
                    stats_attr::INPKTS => &mut s.inpkts,
                    stats_attr::OUTPKTS => &mut s.outpkts,
                    stats_attr::INBYTES => &mut s.inbytes,
                    stats_attr::OUTBYTES => &mut s.outbytes,
                    stats_attr::CPS => &mut s.cps,
                    stats_attr::INPPS => &mut s.inpps,
                    stats_attr::OUTPPS => &mut s.outpps,
                    stats_attr::INBPS => &mut s.inbps,
                    stats_attr::OUTBPS => &mut s.outbps,
                    _ => continue,
                };
                *slot = value;
            }
        }
        s
    }
}

/// What identifies a virtual service: VIP, port, protocol (fwmark services
/// are listed but never made by XVS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub addr: IpAddr,
    pub port: u16,
    /// `IPPROTO_TCP` or `IPPROTO_UDP`.
    pub protocol: u16,
}

impl ServiceKey {
    pub fn af(&self) -> u16 {
        match self.addr {
            IpAddr::V4(_) => AF_INET,
            IpAddr::V6(_) => AF_INET6,
        }
    }

    /// The attributes that name the service (af, protocol, addr, port).
    fn key_attrs(&self) -> Vec<SvcAttr> {
        vec![
            SvcAttr::Af(self.af()),
            SvcAttr::Protocol(self.protocol),
            SvcAttr::Addr(inet_addr_bytes(self.addr)),
            SvcAttr::Port(self.port),
        ]
    }
}

/// A virtual service as IPVS holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub key: ServiceKey,
    /// Non-zero: a firewall-mark service (`key.addr` is then unspecified).
    pub fwmark: u32,
    pub sched_name: String,
    pub pe_name: Option<String>,
    /// `IP_VS_SVC_F_*`.
    pub flags: u32,
    /// Persistence timeout, seconds.
    pub timeout: u32,
    /// The raw netmask value (see [`netmask_wire`]).
    pub netmask: u32,
    /// Only in dump replies.
    pub stats: Option<Stats>,
}

/// The wire value of a persistence netmask: for IPv4 the mask in network
/// byte order (what `-M 255.255.255.0` gives libipvs), for IPv6 the prefix
/// length.
pub fn netmask_wire(addr: IpAddr, prefix_len: u8) -> u32 {
    match addr {
        IpAddr::V4(_) => {
            let mask = if prefix_len == 0 {
                0
            } else {
                u32::MAX << (32 - prefix_len.min(32) as u32)
            };
            u32::from_ne_bytes(mask.to_be_bytes())
        }
        IpAddr::V6(_) => prefix_len.min(128) as u32,
    }
}

/// The prefix length a netmask wire value stands for.
pub fn netmask_prefix_len(af: u16, wire: u32) -> u8 {
    if af == AF_INET6 {
        wire.min(128) as u8
    } else {
        u32::from_be_bytes(wire.to_ne_bytes()).leading_ones() as u8
    }
}

impl Service {
    /// The service as ipvsadm names one given only `-t/-u VIP:PORT`: no
    /// scheduler, no flags, a full netmask.
    pub fn named(key: ServiceKey) -> Service {
        Service {
            key,
            fwmark: 0,
            sched_name: String::new(),
            pe_name: None,
            flags: 0,
            timeout: 0,
            netmask: netmask_wire(key.addr, if key.addr.is_ipv4() { 32 } else { 128 }),
            stats: None,
        }
    }

    /// libipvs's `ipvs_nl_fill_service_attr`: the whole service, flags
    /// with an all-ones mask.
    pub fn to_attrs(&self) -> Vec<SvcAttr> {
        let mut attrs = vec![SvcAttr::Af(self.key.af())];
        if self.fwmark != 0 {
            attrs.push(SvcAttr::Fwmark(self.fwmark));
        } else {
            attrs.extend(self.key.key_attrs().into_iter().skip(1));
        }
        attrs.push(SvcAttr::SchedName(self.sched_name.clone()));
        if let Some(pe) = &self.pe_name {
            attrs.push(SvcAttr::PeName(pe.clone()));
        }
        attrs.extend([
            SvcAttr::Flags {
                flags: self.flags,
                mask: u32::MAX,
            },
            SvcAttr::Timeout(self.timeout),
            SvcAttr::Netmask(self.netmask),
        ]);
        attrs
    }

    pub fn from_attrs(attrs: &[SvcAttr]) -> Result<Service, DecodeError> {
        let (mut af, mut protocol, mut addr, mut port) = (None, 0, None, 0);
        let mut svc = Service {
            key: ServiceKey {
                addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                port: 0,
                protocol: 0,
            },
            fwmark: 0,
            sched_name: String::new(),
            pe_name: None,
            flags: 0,
            timeout: 0,
            netmask: 0,
            stats: None,
        };
        let mut stats32 = None;
        for a in attrs {
            match a {
                SvcAttr::Af(v) => af = Some(*v),
                SvcAttr::Protocol(v) => protocol = *v,
                SvcAttr::Addr(a) => addr = Some(*a),
                SvcAttr::Port(p) => port = *p,
                SvcAttr::Fwmark(m) => svc.fwmark = *m,
                SvcAttr::SchedName(s) => svc.sched_name = s.clone(),
                SvcAttr::PeName(s) => svc.pe_name = Some(s.clone()),
                SvcAttr::Flags { flags, .. } => svc.flags = *flags,
                SvcAttr::Timeout(t) => svc.timeout = *t,
                SvcAttr::Netmask(m) => svc.netmask = *m,
                SvcAttr::Stats64(s) => svc.stats = Some(Stats::from_attrs(s)),
                SvcAttr::Stats(s) => stats32 = Some(Stats::from_attrs(s)),
                SvcAttr::Other(_) => {}
            }
        }
        let af = af.ok_or_else(|| DecodeError::from("service without IPVS_SVC_ATTR_AF"))?;
        svc.key = ServiceKey {
            addr: inet_addr(af, &addr.unwrap_or([0; 16]))?,
            port,
            protocol,
        };
        svc.stats = svc.stats.or(stats32);
        Ok(svc)
    }
}

/// A destination (real server) as IPVS holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dest {
    pub addr: IpAddr,
    pub port: u16,
    /// `IP_VS_CONN_F_*` forwarding method.
    pub fwd_method: u32,
    pub weight: u32,
    pub u_thresh: u32,
    pub l_thresh: u32,
    /// Only in dump replies.
    pub active_conns: u32,
    pub inact_conns: u32,
    pub persist_conns: u32,
    pub stats: Option<Stats>,
}

impl Dest {
    /// A DR destination (`ipvsadm -a ... -g -w WEIGHT`).
    pub fn route(addr: IpAddr, port: u16, weight: u32) -> Dest {
        Dest {
            addr,
            port,
            fwd_method: fwd::DROUTE,
            weight,
            u_thresh: 0,
            l_thresh: 0,
            active_conns: 0,
            inact_conns: 0,
            persist_conns: 0,
            stats: None,
        }
    }

    fn af(&self) -> u16 {
        match self.addr {
            IpAddr::V4(_) => AF_INET,
            IpAddr::V6(_) => AF_INET6,
        }
    }

    /// libipvs's `ipvs_nl_fill_dest_attr`.
    pub fn to_attrs(&self) -> Vec<DestAttr> {
        vec![
            DestAttr::AddrFamily(self.af()),
            DestAttr::Addr(inet_addr_bytes(self.addr)),
            DestAttr::Port(self.port),
            DestAttr::FwdMethod(self.fwd_method & fwd::MASK),
            DestAttr::Weight(self.weight),
            DestAttr::TunType(0),
            DestAttr::TunPort(0),
            DestAttr::TunFlags(0),
            DestAttr::UThresh(self.u_thresh),
            DestAttr::LThresh(self.l_thresh),
        ]
    }

    /// `service_af` is used when the kernel omits the dest's own family.
    pub fn from_attrs(service_af: u16, attrs: &[DestAttr]) -> Result<Dest, DecodeError> {
        let mut d = Dest::route(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0, 0);
        let (mut af, mut addr) = (service_af, None);
        let mut stats32 = None;
        for a in attrs {
            match a {
                DestAttr::Addr(a) => addr = Some(*a),
                DestAttr::Port(p) => d.port = *p,
                DestAttr::FwdMethod(m) => d.fwd_method = *m,
                DestAttr::Weight(w) => d.weight = *w,
                DestAttr::UThresh(v) => d.u_thresh = *v,
                DestAttr::LThresh(v) => d.l_thresh = *v,
                DestAttr::ActiveConns(v) => d.active_conns = *v,
                DestAttr::InactConns(v) => d.inact_conns = *v,
                DestAttr::PersistConns(v) => d.persist_conns = *v,
                DestAttr::AddrFamily(v) => af = *v,
                DestAttr::Stats64(s) => d.stats = Some(Stats::from_attrs(s)),
                DestAttr::Stats(s) => stats32 = Some(Stats::from_attrs(s)),
                _ => {}
            }
        }
        d.addr = inet_addr(
            af,
            &addr.ok_or_else(|| DecodeError::from("dest without IPVS_DEST_ATTR_ADDR"))?,
        )?;
        d.stats = d.stats.or(stats32);
        Ok(d)
    }
}

/// A connection-sync daemon (`ipvsadm --start-daemon`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Daemon {
    /// `daemon_state::MASTER` or `BACKUP`.
    pub state: u32,
    pub mcast_ifn: String,
    pub sync_id: u32,
    /// The optional settings (0 / None: the kernel's default).
    pub sync_maxlen: u16,
    pub mcast_group: Option<IpAddr>,
    pub mcast_port: u16,
    pub mcast_ttl: u8,
}

impl Daemon {
    pub fn to_attrs(&self) -> Vec<DaemonAttr> {
        let mut attrs = vec![
            DaemonAttr::State(self.state),
            DaemonAttr::McastIfn(self.mcast_ifn.clone()),
            DaemonAttr::SyncId(self.sync_id),
        ];
        if self.sync_maxlen != 0 {
            attrs.push(DaemonAttr::SyncMaxLen(self.sync_maxlen));
        }
        match self.mcast_group {
            Some(IpAddr::V4(a)) => attrs.push(DaemonAttr::McastGroup(a)),
            Some(IpAddr::V6(a)) => attrs.push(DaemonAttr::McastGroup6(a)),
            None => {}
        }
        if self.mcast_port != 0 {
            attrs.push(DaemonAttr::McastPort(self.mcast_port));
        }
        if self.mcast_ttl != 0 {
            attrs.push(DaemonAttr::McastTtl(self.mcast_ttl));
        }
        attrs
    }

    pub fn from_attrs(attrs: &[DaemonAttr]) -> Daemon {
        let mut d = Daemon {
            state: 0,
            mcast_ifn: String::new(),
            sync_id: 0,
            sync_maxlen: 0,
            mcast_group: None,
            mcast_port: 0,
            mcast_ttl: 0,
        };
        for a in attrs {
            match a {
                DaemonAttr::State(v) => d.state = *v,
                DaemonAttr::McastIfn(s) => d.mcast_ifn = s.clone(),
                DaemonAttr::SyncId(v) => d.sync_id = *v,
                DaemonAttr::SyncMaxLen(v) => d.sync_maxlen = *v,
                DaemonAttr::McastGroup(a) => d.mcast_group = Some(IpAddr::V4(*a)),
                DaemonAttr::McastGroup6(a) => d.mcast_group = Some(IpAddr::V6(*a)),
                DaemonAttr::McastPort(v) => d.mcast_port = *v,
                DaemonAttr::McastTtl(v) => d.mcast_ttl = *v,
                DaemonAttr::Other(_) => {}
            }
        }
        d
    }
}

/// `ipvsadm --set TCP TCPFIN UDP`, seconds; 0 leaves a value unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

/// GET_INFO's answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Info {
    /// `(major << 16) | (minor << 8) | patch`: 0x010201 is 1.2.1.
    pub version: u32,
    /// Buckets of the connection hash table (ipvsadm's `size=`).
    pub conn_tab_size: u32,
}

// ---------------------------------------------------------------------------
// Requests, one constructor per command

impl IpvsMessage {
    fn new(cmd: u8, attrs: Vec<CmdAttr>) -> IpvsMessage {
        IpvsMessage { cmd, attrs }
    }

    pub fn new_service(svc: &Service) -> IpvsMessage {
        Self::new(cmd::NEW_SERVICE, vec![CmdAttr::Service(svc.to_attrs())])
    }

    pub fn set_service(svc: &Service) -> IpvsMessage {
        Self::new(cmd::SET_SERVICE, vec![CmdAttr::Service(svc.to_attrs())])
    }

    pub fn del_service(svc: &Service) -> IpvsMessage {
        Self::new(cmd::DEL_SERVICE, vec![CmdAttr::Service(svc.to_attrs())])
    }

    /// With NLM_F_DUMP: every service.
    pub fn get_services() -> IpvsMessage {
        Self::new(cmd::GET_SERVICE, Vec::new())
    }

    /// Without NLM_F_DUMP: one service.
    pub fn get_service(svc: &Service) -> IpvsMessage {
        Self::new(cmd::GET_SERVICE, vec![CmdAttr::Service(svc.to_attrs())])
    }

    fn with_dest(cmd: u8, svc: &Service, dest: &Dest) -> IpvsMessage {
        Self::new(
            cmd,
            vec![
                CmdAttr::Service(svc.to_attrs()),
                CmdAttr::Dest(dest.to_attrs()),
            ],
        )
    }

    pub fn new_dest(svc: &Service, dest: &Dest) -> IpvsMessage {
        Self::with_dest(cmd::NEW_DEST, svc, dest)
    }

    pub fn set_dest(svc: &Service, dest: &Dest) -> IpvsMessage {
        Self::with_dest(cmd::SET_DEST, svc, dest)
    }

    pub fn del_dest(svc: &Service, dest: &Dest) -> IpvsMessage {
        Self::with_dest(cmd::DEL_DEST, svc, dest)
    }

    /// With NLM_F_DUMP: the destinations of one service.
    pub fn get_dests(svc: &Service) -> IpvsMessage {
        Self::new(cmd::GET_DEST, vec![CmdAttr::Service(svc.to_attrs())])
    }

    pub fn flush() -> IpvsMessage {
        Self::new(cmd::FLUSH, Vec::new())
    }

    pub fn set_timeouts(t: Timeouts) -> IpvsMessage {
        Self::new(
            cmd::SET_CONFIG,
            vec![
                CmdAttr::TimeoutTcp(t.tcp),
                CmdAttr::TimeoutTcpFin(t.tcp_fin),
                CmdAttr::TimeoutUdp(t.udp),
            ],
        )
    }

    pub fn get_timeouts() -> IpvsMessage {
        Self::new(cmd::GET_CONFIG, Vec::new())
    }

    /// One service's counters, or (None) every service's.
    pub fn zero(svc: Option<&Service>) -> IpvsMessage {
        let attrs = svc
            .map(|s| vec![CmdAttr::Service(s.to_attrs())])
            .unwrap_or_default();
        Self::new(cmd::ZERO, attrs)
    }

    pub fn new_daemon(d: &Daemon) -> IpvsMessage {
        Self::new(cmd::NEW_DAEMON, vec![CmdAttr::Daemon(d.to_attrs())])
    }

    /// Stops the daemon of this state (`daemon_state::MASTER`/`BACKUP`);
    /// libipvs names no interface and sync id 0.
    pub fn del_daemon(state: u32) -> IpvsMessage {
        Self::new(
            cmd::DEL_DAEMON,
            vec![CmdAttr::Daemon(vec![
                DaemonAttr::State(state),
                DaemonAttr::McastIfn(String::new()),
                DaemonAttr::SyncId(0),
            ])],
        )
    }

    /// With NLM_F_DUMP: the running daemons.
    pub fn get_daemons() -> IpvsMessage {
        Self::new(cmd::GET_DAEMON, Vec::new())
    }

    pub fn get_info() -> IpvsMessage {
        Self::new(cmd::GET_INFO, Vec::new())
    }

    // Replies

    pub fn service(&self) -> Option<Result<Service, DecodeError>> {
        self.attrs.iter().find_map(|a| match a {
            CmdAttr::Service(attrs) => Some(Service::from_attrs(attrs)),
            _ => None,
        })
    }

    pub fn dest(&self, service_af: u16) -> Option<Result<Dest, DecodeError>> {
        self.attrs.iter().find_map(|a| match a {
            CmdAttr::Dest(attrs) => Some(Dest::from_attrs(service_af, attrs)),
            _ => None,
        })
    }

    pub fn daemon(&self) -> Option<Daemon> {
        self.attrs.iter().find_map(|a| match a {
            CmdAttr::Daemon(attrs) => Some(Daemon::from_attrs(attrs)),
            _ => None,
        })
    }

    pub fn timeouts(&self) -> Timeouts {
        let mut t = Timeouts::default();
        for a in &self.attrs {
            match a {
                CmdAttr::TimeoutTcp(v) => t.tcp = *v,
                CmdAttr::TimeoutTcpFin(v) => t.tcp_fin = *v,
                CmdAttr::TimeoutUdp(v) => t.udp = *v,
                _ => {}
            }
        }
        t
    }

    pub fn info(&self) -> Info {
        let mut i = Info::default();
        for a in &self.attrs {
            match a {
                CmdAttr::InfoVersion(v) => i.version = *v,
                CmdAttr::InfoConnTabSize(v) => i.conn_tab_size = *v,
                _ => {}
            }
        }
        i
    }
}
