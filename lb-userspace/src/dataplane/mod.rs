//! The seam between the control plane and whatever forwards packets. XDP is
//! the default backend; an IPVS backend implements the same trait.

pub mod ipvs;
pub mod pins;
pub mod xdp;

use crate::model::{Protocol, ServiceId, ServiceSpec};
use lb_common::{ipvs::ConnState, Counters};
use std::net::IpAddr;

pub use ipvs::IpvsDataplane;
pub use xdp::{AttachMode, XdpDataplane, XdpOptions};

/// IPVS's three user-settable timeouts (`ipvsadm --set tcp tcpfin udp`), in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        }
    }
}

/// Counters of one real of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealStats {
    pub addr: IpAddr,
    pub port: u16,
    pub counters: Counters,
}

/// Counters of one service and its current reals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceStats {
    pub id: ServiceId,
    pub counters: Counters,
    pub reals: Vec<RealStats>,
}

/// One entry of the connection table, as `ipvsadm -L -c` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    pub proto: Protocol,
    pub client: (IpAddr, u16),
    pub virtual_: (IpAddr, u16),
    /// `None` when the real has since been removed.
    pub real: Option<(IpAddr, u16)>,
    pub state: ConnState,
    /// Seconds until the entry expires.
    pub expires_in_s: u64,
    /// A persistence template (IPVS lists them with client port 0 and state
    /// NONE, and counts them as PersistConn rather than Active/InActConn).
    pub template: bool,
}

pub trait Dataplane {
    /// Carry exactly these services: add, change and remove what differs,
    /// leaving established flows of unchanged reals alone.
    fn apply(&mut self, services: &[ServiceSpec]) -> anyhow::Result<()>;
    /// Forward (VRRP MASTER) or pass everything (BACKUP, FAULT).
    fn set_active(&mut self, active: bool) -> anyhow::Result<()>;
    /// Forwarding stops `lease` from now unless renewed (None: never). The
    /// VRRP MASTER renews it with each advert: a dead daemon's data plane
    /// must not forward beside its successor.
    fn set_lease(&mut self, _lease: Option<std::time::Duration>) -> anyhow::Result<()> {
        Ok(())
    }
    /// Whether a real that health checks take out must stay in the data
    /// plane at weight 0 for its established flows to finish on it (unless
    /// expire_nodest_conn is set). XDP's flows follow the reals it carries,
    /// so yes (the default). IPVS keeps the flows of a removed destination
    /// itself, as it does under keepalived, so it is given the reals as
    /// keepalived has them: a failed one out, and `ipvsadm -L` agrees.
    fn drains_at_weight_zero(&self) -> bool {
        true
    }
    fn set_timeouts(&mut self, timeouts: Timeouts) -> anyhow::Result<()>;
    fn stats(&self) -> anyhow::Result<Vec<ServiceStats>>;
    /// `ipvsadm -Z`: zero the counters of one service (and its reals) or all.
    fn zero(&mut self, service: Option<ServiceId>) -> anyhow::Result<()>;
    fn connections(&self) -> anyhow::Result<Vec<Connection>>;
    /// Packets per data-plane verdict (name, count), where the backend has them.
    fn verdicts(&self) -> anyhow::Result<Vec<(&'static str, u64)>> {
        Ok(Vec::new())
    }
}
