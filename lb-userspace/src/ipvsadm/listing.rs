//! What `xvsadm -L`, `-c`, `--timeout` and `-S` show: a plain model the
//! daemon fills and sends, and `format` renders exactly as ipvsadm would.
//! It carries everything ipvsadm 1.31 prints: `struct ip_vs_service_entry`
//! and `struct ip_vs_dest_entry` (libipvs/ip_vs.h), a line of
//! /proc/net/ip_vs_conn, and `struct ip_vs_timeout_user`.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::model::{
    Persistence as ModelPersistence, Protocol, RealSpec, SchedulerKind, ServiceSpec,
};

/// The version XVS reports in place of IPVS's "1.2.1".
pub const XVS_VERSION: &str = env!("CARGO_PKG_VERSION");

/// serde for `model::Protocol`, which has no serde of its own: "TCP"/"UDP".
#[derive(Serialize, Deserialize)]
#[serde(remote = "Protocol")]
enum ProtocolDef {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
}

/// The whole virtual server table: what `-L`, `--stats`, `--rate` and `-S`
/// list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceTable {
    /// Printed in "XDP Virtual Server version X.Y.Z (size=N)".
    pub version: String,
    /// The connection table size (IPVS's `ip_vs_conn_tab_size`).
    pub size: u32,
    /// In the daemon's order; rendering sorts them as ipvsadm does.
    pub services: Vec<Service>,
}

impl ServiceTable {
    /// An empty table of XVS's version.
    pub fn new(size: u32) -> Self {
        ServiceTable {
            version: XVS_VERSION.to_string(),
            size,
            services: Vec::new(),
        }
    }
}

/// A virtual service and its real servers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    #[serde(with = "ProtocolDef")]
    pub proto: Protocol,
    pub addr: IpAddr,
    pub port: u16,
    /// "rr", "wrr", "sh" (an IPVS backend may report others, e.g. "wlc").
    pub scheduler: String,
    /// Scheduler flags by ipvsadm's names, in its order: "sh-fallback",
    /// "sh-port" for sh; "flag-1".."flag-3" for other schedulers.
    pub sched_flags: Vec<String>,
    pub persistence: Option<Persistence>,
    pub stats: Stats,
    pub rates: Rates,
    /// In the daemon's order; rendering sorts them as ipvsadm does.
    pub dests: Vec<Dest>,
}

impl Service {
    /// A service with the scheduler (and flags) of the daemon's model, no
    /// persistence, zero counters and no dests.
    pub fn new(proto: Protocol, addr: IpAddr, port: u16, scheduler: SchedulerKind) -> Self {
        Service {
            proto,
            addr,
            port,
            scheduler: scheduler.name().to_string(),
            sched_flags: sched_flag_names(scheduler),
            persistence: None,
            stats: Stats::default(),
            rates: Rates::default(),
            dests: Vec::new(),
        }
    }
}

impl From<&ServiceSpec> for Service {
    /// The configured part of a service; counters and rates start at zero.
    fn from(spec: &ServiceSpec) -> Self {
        let mut service = Service::new(spec.id.proto, spec.id.vip, spec.id.port, spec.scheduler);
        service.persistence = spec.persistence.map(Persistence::from);
        service.dests = spec.reals.iter().map(Dest::from).collect();
        service
    }
}

/// ipvsadm's names for the flags of a scheduler (`print_sched_flags`,
/// ipvsadm.c:1842).
pub fn sched_flag_names(scheduler: SchedulerKind) -> Vec<String> {
    match scheduler {
        SchedulerKind::Sh { fallback, port } => [(fallback, "sh-fallback"), (port, "sh-port")]
            .into_iter()
            .filter(|(set, _)| *set)
            .map(|(_, name)| name.to_string())
            .collect(),
        SchedulerKind::Rr | SchedulerKind::Wrr => Vec::new(),
    }
}

/// `-p TIMEOUT -M MASK`. IPVS keeps an IPv4 mask and an IPv6 prefix length;
/// XVS keeps a prefix length for both (32 and 128 are per client).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Persistence {
    /// Seconds.
    pub timeout: u32,
    pub prefix_len: u8,
}

impl From<ModelPersistence> for Persistence {
    fn from(p: ModelPersistence) -> Self {
        Persistence {
            timeout: p.timeout_s,
            prefix_len: p.prefix_len,
        }
    }
}

/// How a real server is reached (`fwd_name`, ipvsadm.c:1746). XVS only
/// routes directly; the others let an IPVS backend report what it finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForwardMethod {
    Masq,
    Local,
    Tunnel,
    Route,
}

/// A real server of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dest {
    pub addr: IpAddr,
    pub port: u16,
    pub forward: ForwardMethod,
    pub weight: u32,
    pub active_conns: u32,
    pub inact_conns: u32,
    /// Persistence templates pointing at this real (`--persistent-conn`).
    pub persist_conns: u32,
    pub stats: Stats,
    pub rates: Rates,
}

impl Dest {
    /// A direct-routing real with zero counters.
    pub fn route(addr: IpAddr, port: u16, weight: u32) -> Self {
        Dest {
            addr,
            port,
            forward: ForwardMethod::Route,
            weight,
            active_conns: 0,
            inact_conns: 0,
            persist_conns: 0,
            stats: Stats::default(),
            rates: Rates::default(),
        }
    }
}

impl From<&RealSpec> for Dest {
    /// A real that is this director shows as "Local", as IPVS shows it.
    fn from(real: &RealSpec) -> Self {
        let forward = if real.local {
            ForwardMethod::Local
        } else {
            ForwardMethod::Route
        };
        Dest {
            forward,
            ..Dest::route(real.addr, real.port, real.weight)
        }
    }
}

/// Totals since the service or real was added or zeroed (`--stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

/// Per-second rates (`--rate`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates {
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

/// One entry of the connection table (`-c`), a line of /proc/net/ip_vs_conn.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    #[serde(with = "ProtocolDef")]
    pub proto: Protocol,
    pub client: SocketAddr,
    pub vip: SocketAddr,
    pub dest: SocketAddr,
    /// IPVS's state name: "ESTABLISHED", "SYN_RECV", "FIN_WAIT", "TIME_WAIT",
    /// "CLOSE", ... for TCP, "UDP" for UDP, "NONE" for templates.
    pub state: String,
    /// Seconds until the entry expires.
    pub expires: u32,
}

/// `--timeout` / `--set TCP TCPFIN UDP`, in seconds: the data plane's own type.
pub use crate::dataplane::Timeouts;
