//! The IPVS backend: the same [`Dataplane`] trait over the kernel's own
//! IPVS, driven through its generic-netlink family `IPVS` (what ipvsadm's
//! libipvs and keepalived speak), for kernels or NICs where XDP is not
//! available. `xvsadm` then shows the kernel's figures.
//!
//! - [`attr`]: the IPVS commands and attributes (written here, on top of
//!   netlink-packet-core/-generic framing), with byte-exact tests.
//! - [`socket`]: the genetlink socket (family resolution, request/ack, dump).
//! - [`conn`]: `/proc/net/ip_vs_conn`, as `ipvsadm -L -c` reads it.
//!
//! # Mapping
//!
//! A [`ServiceSpec`] becomes an IPVS service of the same VIP, port and
//! protocol, with the scheduler's name (`rr`, `wrr`, `sh`), `sh-fallback`
//! and `sh-port` as `IP_VS_SVC_F_SCHED1`/`SCHED2`, and persistence as
//! `IP_VS_SVC_F_PERSISTENT` with its timeout and netmask (IPv4: the mask,
//! IPv6: the prefix length, as libipvs sends them). Each real becomes a
//! destination with the DR forwarding method (`IP_VS_CONN_F_DROUTE`) and its
//! weight, added in the order of the configuration as keepalived adds them;
//! the kernel turns a real that is one of this host's addresses into
//! `Local` itself. MACs are not used: IPVS resolves next hops on its own.
//! A real that health checks take out is removed from its service, as
//! keepalived does: the kernel keeps its established flows (until they end,
//! or `expire_nodest_conn` drops them), so `ipvsadm -L` and `xvsadm -L`
//! list the same reals (XDP instead carries such a real at weight 0; see
//! [`Dataplane::drains_at_weight_zero`]).
//!
//! `apply` is a diff against what the kernel holds (dumped each time, so a
//! restarted daemon adopts the table, flows and counters included): only
//! services and destinations that changed are added, edited (SET) or
//! removed, so established flows of unchanged reals are untouched. The
//! backend owns the IPVS table of its network namespace, as keepalived's
//! checker does: a service there that the configuration does not have is
//! removed. Firewall-mark services, which XVS never makes, are left alone.
//! On drop the services it put there are removed, unless
//! [`IpvsDataplane::keep_on_drop`] says to leave them (the kernel then keeps
//! forwarding, as with XDP's `--keep-dataplane-on-exit`).
//!
//! Counters come from the kernel's 64-bit stats (`IPVS_*_ATTR_STATS64`),
//! connections from `/proc/net/ip_vs_conn`, timeouts go to SET_CONFIG and
//! `ipvsadm -Z` is the ZERO command.
//!
//! # Active and inactive (VRRP)
//!
//! With XDP, an inactive (BACKUP/FAULT) director passes every packet. With
//! IPVS the equivalent is the one keepalived gives: the BACKUP keeps its
//! services, and VRRP, not the data plane, decides who gets the traffic, by
//! owning the VIP. IPVS only catches packets addressed to the host itself
//! (its hooks are on LOCAL_IN), so a BACKUP that does not have the VIP
//! never sees the VIP's traffic, and keeping its services costs nothing and
//! makes a takeover immediate.
//!
//! Except in seed 004's layout, where each director is also a real server:
//! the BACKUP has the VIP on `lo` (as every DR real has), so the packets the
//! MASTER forwards to it *are* local to it, and its IPVS would schedule
//! them again, back to the MASTER half of the time: the two directors bounce
//! them between each other forever. keepalived users work around it by
//! swapping configuration files in notify scripts. Here, while inactive, a
//! service is withdrawn from the kernel when the host is one of its reals
//! (a real marked `local`) or holds its VIP on any interface; its packets
//! then reach the local server, as on any real. It is put back, with its
//! counters zero, as soon as the director is active again (the kernel kept
//! the destinations' established flows meanwhile in its trash). Other
//! services stay in the kernel while inactive.
//!
//! Until the first `set_active`, `apply` only records the services: a
//! restarted daemon does not touch the table it adopts before it knows
//! what it is. The data plane's forwarding lease (`set_lease`) is not
//! enforced here: IPVS has no timer for it, so a killed xvsd leaves IPVS
//! running, as a killed keepalived does (its VIP decides, as ever). In
//! seed 004's layout that matters: the killed MASTER's IPVS still
//! schedules what its successor forwards to it, half of it back, so such a
//! director needs `ipvsadm -C`, or its xvsd restarted (which withdraws
//! those services whenever it is BACKUP), before it serves as a real again. A stopped xvsd
//! (SIGTERM) removes its services itself; the guest tests check that
//! handover (tests/tests/ipvs_guest.rs).

pub mod attr;
pub mod conn;
pub mod socket;

use super::{Connection, Dataplane, RealStats, ServiceStats, Timeouts};
use crate::model::{Protocol, SchedulerKind, ServiceId, ServiceSpec};
use anyhow::{anyhow, bail, Context, Result};
use attr::{fwd, svc_flags, Daemon, Dest, Info, IpvsMessage, Service, ServiceKey, Stats};
use lb_common::Counters;
use socket::IpvsSocket;
use std::{
    cell::RefCell,
    collections::{BTreeMap, BTreeSet, HashSet},
    io,
    net::IpAddr,
    path::PathBuf,
};

const EXPIRE_NODEST_CONN: &str = "/proc/sys/net/ipv4/vs/expire_nodest_conn";

pub struct IpvsDataplane {
    socket: RefCell<IpvsSocket>,
    info: Info,
    desired: Vec<ServiceSpec>,
    /// None until the first `set_active`: the kernel is left as it is
    /// until then, so a restarted MASTER does not withdraw and re-add its
    /// services (losing their counters) before it knows it is active.
    active: Option<bool>,
    /// Services this backend has put in the kernel (removed on drop).
    installed: BTreeSet<ServiceId>,
    /// Services withdrawn while inactive (seed 004), for the log.
    withdrawn: BTreeSet<ServiceId>,
    keep: bool,
    conn_file: PathBuf,
}

impl IpvsDataplane {
    /// Connects to the kernel's IPVS, loading the `ip_vs` module first if
    /// the family is missing (as keepalived does). `apply` only records the
    /// services until the first `set_active` says what this director is;
    /// from then on every `apply` and `set_active` reaches the kernel.
    pub fn open() -> Result<IpvsDataplane> {
        let socket = match IpvsSocket::open() {
            Err(e) if socket::is_family_missing(&e) => {
                load_module()?;
                IpvsSocket::open()
            }
            other => other,
        }
        .context("opening IPVS's generic netlink family")?;
        let socket = RefCell::new(socket);
        let info = socket
            .borrow_mut()
            .request(IpvsMessage::get_info())
            .context("IPVS_CMD_GET_INFO")?
            .first()
            .map(IpvsMessage::info)
            .unwrap_or_default();
        Ok(IpvsDataplane {
            socket,
            info,
            desired: Vec::new(),
            active: None,
            installed: BTreeSet::new(),
            withdrawn: BTreeSet::new(),
            keep: false,
            conn_file: PathBuf::from(conn::PROC_PATH),
        })
    }

    /// The kernel's IPVS version, as ipvsadm prints it (`1.2.1`).
    pub fn version(&self) -> String {
        let v = self.info.version;
        format!("{}.{}.{}", v >> 16, (v >> 8) & 0xff, v & 0xff)
    }

    /// Buckets of the kernel's connection table (ipvsadm's `size=`).
    pub fn conn_table_size(&self) -> u32 {
        self.info.conn_tab_size
    }

    /// With `keep`, dropping the backend leaves its services in the kernel.
    pub fn keep_on_drop(&mut self, keep: bool) {
        self.keep = keep;
    }

    /// IPVS's `expire_nodest_conn` sysctl: flows of a removed destination are
    /// dropped (and their next packet rescheduled) instead of finishing.
    pub fn set_expire_nodest_conn(&self, on: bool) -> Result<()> {
        std::fs::write(EXPIRE_NODEST_CONN, if on { "1\n" } else { "0\n" })
            .with_context(|| format!("writing {EXPIRE_NODEST_CONN}"))
    }

    /// Services currently withdrawn because the director is inactive and
    /// would otherwise catch its peer's forwarded packets (see the module doc).
    pub fn withdrawn(&self) -> impl Iterator<Item = &ServiceId> {
        self.withdrawn.iter()
    }

    /// Every virtual service in the kernel (fwmark ones included).
    pub fn services(&self) -> Result<Vec<Service>> {
        self.socket
            .borrow_mut()
            .dump(IpvsMessage::get_services())
            .context("IPVS_CMD_GET_SERVICE dump")?
            .iter()
            .filter_map(IpvsMessage::service)
            .map(|s| s.map_err(|e| anyhow!("{e}")))
            .collect()
    }

    /// The destinations of one service.
    pub fn dests(&self, key: &ServiceKey) -> Result<Vec<Dest>> {
        self.socket
            .borrow_mut()
            .dump(IpvsMessage::get_dests(&Service::named(*key)))
            .with_context(|| format!("IPVS_CMD_GET_DEST dump of {}", key_name(key)))?
            .iter()
            .filter_map(|m| m.dest(key.af()))
            .map(|d| d.map_err(|e| anyhow!("{e}")))
            .collect()
    }

    /// The kernel's timeouts (GET_CONFIG).
    pub fn timeouts(&self) -> Result<Timeouts> {
        let replies = self.request(IpvsMessage::get_timeouts(), "IPVS_CMD_GET_CONFIG")?;
        let t = replies
            .first()
            .map(IpvsMessage::timeouts)
            .unwrap_or_default();
        Ok(Timeouts {
            tcp: t.tcp,
            tcp_fin: t.tcp_fin,
            udp: t.udp,
        })
    }

    /// Removes every service of the namespace's IPVS (`ipvsadm -C`).
    pub fn flush(&mut self) -> Result<()> {
        self.request(IpvsMessage::flush(), "IPVS_CMD_FLUSH")?;
        self.installed.clear();
        Ok(())
    }

    /// Starts a connection-sync daemon (`ipvsadm --start-daemon`).
    pub fn start_daemon(&self, daemon: &Daemon) -> Result<()> {
        self.request(IpvsMessage::new_daemon(daemon), "IPVS_CMD_NEW_DAEMON")
            .map(drop)
    }

    /// Stops the sync daemon of this state (`attr::daemon_state`).
    pub fn stop_daemon(&self, state: u32) -> Result<()> {
        self.request(IpvsMessage::del_daemon(state), "IPVS_CMD_DEL_DAEMON")
            .map(drop)
    }

    /// The running sync daemons.
    pub fn daemons(&self) -> Result<Vec<Daemon>> {
        Ok(self
            .socket
            .borrow_mut()
            .dump(IpvsMessage::get_daemons())
            .context("IPVS_CMD_GET_DAEMON dump")?
            .iter()
            .filter_map(IpvsMessage::daemon)
            .collect())
    }

    fn request(&self, message: IpvsMessage, what: &str) -> Result<Vec<IpvsMessage>> {
        self.socket
            .borrow_mut()
            .request(message)
            .map_err(|e| ipvs_error(e, what))
    }

    /// Makes the kernel carry the desired services, under the active state.
    fn sync(&mut self) -> Result<()> {
        let Some(active) = self.active else {
            return Ok(());
        };
        let withdraw = if active {
            BTreeSet::new()
        } else {
            self.to_withdraw()?
        };
        for id in withdraw.difference(&self.withdrawn) {
            log::info!("IPVS: inactive, and this host is a real of {id} or holds its VIP: service kept out of the kernel, so forwarded packets reach the local server");
        }
        for id in self.withdrawn.difference(&withdraw) {
            if self.desired.iter().any(|s| s.id == *id) {
                log::info!("IPVS: active: service {id} in the kernel");
            }
        }
        self.withdrawn = withdraw;
        let wanted: BTreeMap<ServiceKey, &ServiceSpec> = self
            .desired
            .iter()
            .filter(|s| !self.withdrawn.contains(&s.id))
            .map(|s| (key_of(&s.id), s))
            .collect();
        let kernel: BTreeMap<ServiceKey, Service> = self
            .services()?
            .into_iter()
            .filter(|s| s.fwmark == 0)
            .map(|s| (s.key, s))
            .collect();
        for key in kernel.keys().filter(|k| !wanted.contains_key(k)) {
            self.request(
                IpvsMessage::del_service(&Service::named(*key)),
                "IPVS_CMD_DEL_SERVICE",
            )
            .with_context(|| format!("removing {}", key_name(key)))?;
            if let Some(id) = id_of(key) {
                self.installed.remove(&id);
            }
        }
        for (key, spec) in &wanted {
            self.sync_service(spec, kernel.get(key))
                .with_context(|| format!("programming IPVS service {}", spec.id))?;
            self.installed.insert(spec.id);
        }
        Ok(())
    }

    fn sync_service(&self, spec: &ServiceSpec, current: Option<&Service>) -> Result<()> {
        let want = service_of(spec);
        let current_dests = match current {
            None => {
                self.request(IpvsMessage::new_service(&want), "IPVS_CMD_NEW_SERVICE")?;
                Vec::new()
            }
            Some(cur) => {
                if !same_service(cur, &want) {
                    self.request(IpvsMessage::set_service(&want), "IPVS_CMD_SET_SERVICE")?;
                }
                self.dests(&want.key)?
            }
        };
        let wanted: Vec<Dest> = spec
            .reals
            .iter()
            .map(|r| Dest::route(r.addr, r.port, r.weight))
            .collect();
        for d in &current_dests {
            if !wanted.iter().any(|w| (w.addr, w.port) == (d.addr, d.port)) {
                self.request(IpvsMessage::del_dest(&want, d), "IPVS_CMD_DEL_DEST")
                    .with_context(|| format!("removing real {}", real_name(d)))?;
            }
        }
        for w in &wanted {
            match current_dests
                .iter()
                .find(|d| (d.addr, d.port) == (w.addr, w.port))
            {
                None => self
                    .request(IpvsMessage::new_dest(&want, w), "IPVS_CMD_NEW_DEST")
                    .with_context(|| format!("adding real {}", real_name(w)))?,
                Some(d) if !same_dest(d, w) => self
                    .request(IpvsMessage::set_dest(&want, w), "IPVS_CMD_SET_DEST")
                    .with_context(|| format!("editing real {}", real_name(w)))?,
                Some(_) => continue,
            };
        }
        Ok(())
    }

    /// While inactive: the services that would bounce a peer's forwarded
    /// packets (seed 004), because this host is one of their reals or
    /// holds their VIP.
    fn to_withdraw(&self) -> Result<BTreeSet<ServiceId>> {
        let mut local: Option<HashSet<IpAddr>> = None;
        let mut out = BTreeSet::new();
        for s in &self.desired {
            let catches = s.reals.iter().any(|r| r.local) || {
                if local.is_none() {
                    local = Some(
                        crate::netlink::list_addrs(None)
                            .context("listing this host's addresses")?
                            .into_iter()
                            .map(|a| a.addr)
                            .collect(),
                    );
                }
                local.as_ref().unwrap().contains(&s.id.vip)
            };
            if catches {
                out.insert(s.id);
            }
        }
        Ok(out)
    }
}

impl Dataplane for IpvsDataplane {
    fn apply(&mut self, services: &[ServiceSpec]) -> Result<()> {
        validate(services)?;
        self.desired = services.to_vec();
        self.sync()
    }

    fn set_active(&mut self, active: bool) -> Result<()> {
        self.active = Some(active);
        self.sync()
    }

    /// A destination removed from a service keeps its established flows in
    /// the kernel (they finish on it, or expire_nodest_conn drops them), so
    /// a failed real is removed outright, as keepalived does.
    fn drains_at_weight_zero(&self) -> bool {
        false
    }

    fn set_timeouts(&mut self, t: Timeouts) -> Result<()> {
        // The kernel, like XVS, leaves a 0 unchanged.
        self.request(
            IpvsMessage::set_timeouts(attr::Timeouts {
                tcp: t.tcp,
                tcp_fin: t.tcp_fin,
                udp: t.udp,
            }),
            "IPVS_CMD_SET_CONFIG",
        )
        .map(drop)
    }

    fn stats(&self) -> Result<Vec<ServiceStats>> {
        let kernel: BTreeMap<ServiceKey, Service> =
            self.services()?.into_iter().map(|s| (s.key, s)).collect();
        let mut out = Vec::new();
        for spec in &self.desired {
            let key = key_of(&spec.id);
            let Some(svc) = kernel.get(&key) else {
                continue;
            };
            let reals = self
                .dests(&key)?
                .iter()
                .map(|d| RealStats {
                    addr: d.addr,
                    port: d.port,
                    counters: counters(d.stats),
                })
                .collect();
            out.push(ServiceStats {
                id: spec.id,
                counters: counters(svc.stats),
                reals,
            });
        }
        Ok(out)
    }

    fn zero(&mut self, service: Option<ServiceId>) -> Result<()> {
        match service {
            None => self.request(IpvsMessage::zero(None), "IPVS_CMD_ZERO"),
            // A withdrawn service has no counters in the kernel to zero.
            Some(id) if self.withdrawn.contains(&id) => return Ok(()),
            Some(id) => self.request(
                IpvsMessage::zero(Some(&Service::named(key_of(&id)))),
                "IPVS_CMD_ZERO",
            ),
        }
        .map(drop)
    }

    fn connections(&self) -> Result<Vec<Connection>> {
        match std::fs::read_to_string(&self.conn_file) {
            Ok(text) => Ok(conn::parse(&text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).with_context(|| format!("reading {}", self.conn_file.display())),
        }
    }
}

impl Drop for IpvsDataplane {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        for id in std::mem::take(&mut self.installed) {
            let svc = Service::named(key_of(&id));
            if let Err(e) = self.request(IpvsMessage::del_service(&svc), "IPVS_CMD_DEL_SERVICE") {
                log::warn!("removing IPVS service {id} on exit: {e:#}");
            }
        }
    }
}

/// `modprobe ip_vs`, as keepalived does when the family is missing.
fn load_module() -> Result<()> {
    let out = std::process::Command::new("modprobe")
        .arg("ip_vs")
        .output()
        .map_err(|e| anyhow!("the kernel has no IPVS, and running modprobe ip_vs failed: {e}"))?;
    if !out.status.success() {
        bail!(
            "the kernel has no IPVS: `modprobe ip_vs` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    log::info!("loaded the ip_vs kernel module");
    Ok(())
}

/// The errors ipvsadm words the same way get its words.
fn ipvs_error(e: io::Error, what: &str) -> anyhow::Error {
    let hint = match e.raw_os_error() {
        Some(libc::EEXIST) => " (already exists)",
        Some(libc::ESRCH) => " (no such service)",
        Some(libc::ENOENT) => " (no such destination, or scheduler module not found)",
        Some(libc::EPERM) => " (needs CAP_NET_ADMIN)",
        _ => "",
    };
    anyhow!("{what}: {e}{hint}")
}

fn validate(services: &[ServiceSpec]) -> Result<()> {
    let mut seen = BTreeSet::new();
    for s in services {
        if !seen.insert(s.id) {
            bail!("virtual service {} is given twice", s.id);
        }
        let mut reals = BTreeSet::new();
        for r in &s.reals {
            if r.addr.is_ipv4() != s.id.vip.is_ipv4() {
                bail!(
                    "real {} of {}: direct routing needs the VIP's address family",
                    r.addr,
                    s.id
                );
            }
            if r.weight > i32::MAX as u32 {
                bail!(
                    "real {} of {}: weight {} is over IPVS's maximum",
                    r.addr,
                    s.id,
                    r.weight
                );
            }
            if !reals.insert((r.addr, r.port)) {
                bail!("real {}:{} of {} is given twice", r.addr, r.port, s.id);
            }
        }
    }
    Ok(())
}

fn key_of(id: &ServiceId) -> ServiceKey {
    ServiceKey {
        addr: id.vip,
        port: id.port,
        protocol: id.proto.number() as u16,
    }
}

fn id_of(key: &ServiceKey) -> Option<ServiceId> {
    let proto = match key.protocol as u8 {
        lb_common::PROTO_TCP => Protocol::Tcp,
        lb_common::PROTO_UDP => Protocol::Udp,
        _ => return None,
    };
    Some(ServiceId {
        vip: key.addr,
        port: key.port,
        proto,
    })
}

/// The IPVS service for a spec.
pub fn service_of(spec: &ServiceSpec) -> Service {
    let key = key_of(&spec.id);
    let mut flags = match spec.scheduler {
        SchedulerKind::Sh { fallback, port } => {
            (if fallback { svc_flags::SCHED1 } else { 0 })
                | (if port { svc_flags::SCHED2 } else { 0 })
        }
        SchedulerKind::Rr | SchedulerKind::Wrr => 0,
    };
    let full = if key.addr.is_ipv4() { 32 } else { 128 };
    let (timeout, prefix_len) = match spec.persistence {
        Some(p) => {
            flags |= svc_flags::PERSISTENT;
            (p.timeout_s, p.prefix_len)
        }
        None => (0, full),
    };
    Service {
        key,
        fwmark: 0,
        sched_name: spec.scheduler.name().to_string(),
        pe_name: None,
        flags,
        timeout,
        netmask: attr::netmask_wire(key.addr, prefix_len),
        stats: None,
    }
}

fn same_service(current: &Service, want: &Service) -> bool {
    current.sched_name == want.sched_name
        && current.flags & !svc_flags::HASHED == want.flags
        && current.timeout == want.timeout
        && current.netmask == want.netmask
        && current.pe_name.is_none()
}

/// The kernel reports a DR real that is a local address as `Local`.
fn same_dest(current: &Dest, want: &Dest) -> bool {
    let method = current.fwd_method & fwd::MASK;
    current.weight == want.weight
        && (method == fwd::DROUTE || method == fwd::LOCALNODE)
        && current.u_thresh == want.u_thresh
        && current.l_thresh == want.l_thresh
}

fn counters(s: Option<Stats>) -> Counters {
    let s = s.unwrap_or_default();
    Counters {
        conns: s.conns,
        packets: s.inpkts,
        bytes: s.inbytes,
        unscheduled: 0,
    }
}

fn key_name(key: &ServiceKey) -> String {
    match id_of(key) {
        Some(id) => id.to_string(),
        None => format!("protocol {} {}:{}", key.protocol, key.addr, key.port),
    }
}

fn real_name(d: &Dest) -> String {
    match d.addr {
        IpAddr::V4(a) => format!("{a}:{}", d.port),
        IpAddr::V6(a) => format!("[{a}]:{}", d.port),
    }
}

#[cfg(test)]
mod tests;
