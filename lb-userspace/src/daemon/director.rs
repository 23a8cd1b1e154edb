//! The director's state: the services the configuration asks for, runtime
//! edits made with xvsadm (they last until the next reload, as ipvsadm's do
//! under keepalived), the reals' MACs, and the rates. It pushes the result
//! to the data plane and answers the control socket's questions.

use super::rates::Estimator;
use crate::vrrp::runtime::InstanceStatus;
use crate::{
    config::{self, Config},
    control::protocol::{Edit, Status},
    dataplane::{Dataplane, Timeouts},
    health::engine::HealthView,
    ipvsadm::listing::{self, ServiceTable, Stats},
    model::{Protocol, RealSpec, ServiceId, ServiceSpec},
};
use anyhow::{anyhow, bail, Result};
use lb_common::Counters;
use std::{
    collections::{BTreeSet, HashMap, HashSet},
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

/// How long startup waits for ARP/ND answers before serving.
const STARTUP_RESOLUTION: Duration = Duration::from_secs(2);

/// Where MACs and the host's own addresses come from (the kernel's
/// neighbour and address tables; a fake in tests).
pub trait Neighbours: Send {
    /// The known next-hop MACs of `addrs`. Must not block: for an address
    /// without one it only starts resolution, and a later call finds it.
    fn macs(&mut self, addrs: &[IpAddr]) -> HashMap<IpAddr, [u8; 6]>;
    /// This host's own addresses: a real among them is served locally.
    fn local_addrs(&mut self) -> HashSet<IpAddr>;
}

/// Facts about this daemon for `status`.
#[derive(Clone, Debug)]
pub struct Identity {
    pub instance: String,
    pub config_file: String,
    pub interface: String,
    pub xdp_mode: String,
    /// Connection-table capacity, shown as ipvsadm's "(size=N)".
    pub table_size: u32,
}

type RealKey = (ServiceId, IpAddr, u16);

/// A real's connection counts, as ipvsadm shows them.
#[derive(Clone, Copy, Debug, Default)]
struct ConnCounts {
    active: u32,
    inactive: u32,
    persistent: u32,
}

pub struct Director {
    dp: Box<dyn Dataplane + Send>,
    neigh: Box<dyn Neighbours>,
    identity: Identity,
    /// Configuration plus runtime edits; MACs filled in as they are learnt.
    desired: Vec<ServiceSpec>,
    /// What health checks say; applied on top of `desired`.
    health: HealthView,
    /// MACs of addresses that are not reals (sorry servers).
    other_macs: HashMap<IpAddr, [u8; 6]>,
    /// This host's own addresses, as of the last (re)load.
    local: HashSet<IpAddr>,
    /// IPVS's expire_nodest_conn: flows of a real that health checks take
    /// out are rescheduled, instead of staying on it.
    expire_nodest_conn: bool,
    unresolved: BTreeSet<IpAddr>,
    reported_unresolved: BTreeSet<IpAddr>,
    vrrp_instances: Vec<String>,
    /// What the VRRP runtime last reported.
    vrrp_status: Vec<InstanceStatus>,
    timeouts: Timeouts,
    active: bool,
    service_rates: HashMap<ServiceId, Estimator>,
    real_rates: HashMap<RealKey, Estimator>,
}

impl Director {
    pub fn new(
        dp: Box<dyn Dataplane + Send>,
        neigh: Box<dyn Neighbours>,
        identity: Identity,
        config: &Config,
        health: HealthView,
    ) -> Result<Director> {
        let mut director = Director {
            dp,
            neigh,
            identity,
            desired: Vec::new(),
            health,
            other_macs: HashMap::new(),
            local: HashSet::new(),
            expire_nodest_conn: false,
            unresolved: BTreeSet::new(),
            reported_unresolved: BTreeSet::new(),
            vrrp_instances: Vec::new(),
            vrrp_status: Vec::new(),
            timeouts: Timeouts::default(),
            active: false,
            service_rates: HashMap::new(),
            real_rates: HashMap::new(),
        };
        // The first push waits for ARP/ND, so an adopted data plane does not
        // lose the flows of reals whose MAC is merely being re-learnt.
        director.take_config(config)?;
        director.settle_macs(STARTUP_RESOLUTION);
        director.report_unresolved();
        director.push()?;
        // VRRP turns forwarding on once an instance is MASTER; a director
        // without VRRP instances forwards from the start (standalone).
        director.set_active(config.vrrp_instances.is_empty())?;
        Ok(director)
    }

    pub fn active(&self) -> bool {
        self.active
    }

    /// The VRRP instances' states, for status and metrics.
    pub fn set_vrrp_status(&mut self, status: Vec<InstanceStatus>) {
        self.vrrp_status = status;
    }

    /// See [`Dataplane::set_lease`].
    pub fn renew_lease(&mut self, lease: Duration) -> Result<()> {
        self.dp.set_lease(Some(lease))
    }

    pub fn set_active(&mut self, active: bool) -> Result<()> {
        self.dp.set_active(active)?;
        self.active = active;
        Ok(())
    }

    /// Replaces configuration and runtime edits with `config`; established
    /// flows of reals that stay are kept (the data plane diffs).
    pub fn load(&mut self, config: &Config) -> Result<()> {
        self.take_config(config)?;
        self.resolve_macs();
        self.push()
    }

    /// A reload: the new configuration under the health engine's view of it,
    /// pushed once.
    pub fn reload(&mut self, config: &Config, health: HealthView) -> Result<()> {
        self.health = health;
        self.load(config)
    }

    /// The desired services and timeouts from `config`, not yet pushed.
    fn take_config(&mut self, config: &Config) -> Result<()> {
        let local = self.neigh.local_addrs();
        self.local = local.clone();
        let mut desired = config::service_specs(config, |_| Some([0; 6]), |a| local.contains(&a))
            .map_err(|diags| anyhow!(join_diagnostics(&diags)))?;
        // Keep the MACs already known, so a reload does not re-resolve them.
        let known = self.known_macs();
        for real in desired.iter_mut().flat_map(|s| s.reals.iter_mut()) {
            if let Some(mac) = known.get(&real.addr) {
                real.mac = *mac;
            }
        }
        self.desired = desired;
        self.vrrp_instances = config
            .vrrp_instances
            .iter()
            .map(|v| v.name.clone())
            .collect();
        // As keepalived does on every (re)load: the file's lvs_timeouts, or
        // IPVS's defaults, replacing any runtime --set.
        self.timeouts = Timeouts::default();
        self.set_timeouts(config_timeouts(config))
    }

    /// At startup, before anything is served: give ARP/ND a moment to answer
    /// so the first clients find every reachable real.
    fn settle_macs(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        self.resolve_macs();
        while !self.unresolved.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            self.resolve_macs();
        }
    }

    /// Takes the health checks' latest view and forwards accordingly.
    pub fn set_health(&mut self, view: HealthView) -> Result<()> {
        self.health = view;
        self.resolve_macs();
        self.push()
    }

    pub fn set_expire_nodest_conn(&mut self, on: bool) -> Result<()> {
        if self.expire_nodest_conn == on {
            return Ok(());
        }
        self.expire_nodest_conn = on;
        self.push()
    }

    /// The services as keepalived would have them in IPVS: the desired ones
    /// under the health view (down reals out, or at weight 0 with
    /// inhibit_on_failure; the sorry server in when quorum is lost).
    fn effective(&self) -> Vec<ServiceSpec> {
        self.under_health(&self.health)
    }

    /// What the data plane carries. As in IPVS, a real that health checks
    /// take out keeps its established flows: it stays in the data plane at
    /// weight 0 (no new flows), unless expire_nodest_conn is set or the
    /// data plane keeps such flows itself (IPVS: the real leaves, as under
    /// keepalived; see [`Dataplane::drains_at_weight_zero`]).
    fn forwarded(&self) -> Vec<ServiceSpec> {
        if self.expire_nodest_conn || !self.dp.drains_at_weight_zero() {
            return self.effective();
        }
        let mut keep = self.health.clone();
        for real in keep.reals.values_mut() {
            real.inhibit_on_failure = true;
        }
        self.under_health(&keep)
    }

    fn under_health(&self, view: &HealthView) -> Vec<ServiceSpec> {
        let macs = self.known_macs();
        crate::health::engine::apply(
            &self.desired,
            view,
            |a| macs.get(&a).or_else(|| self.other_macs.get(&a)).copied(),
            |a| self.local.contains(&a),
        )
    }

    /// Applies xvsadm edits, all or nothing.
    pub fn edit(&mut self, edits: &[Edit]) -> Result<()> {
        let mut desired = self.desired.clone();
        let local = self.neigh.local_addrs();
        for edit in edits {
            apply_edit(&mut desired, edit, &local)?;
        }
        self.desired = desired;
        self.resolve_macs();
        self.push()?;
        for edit in edits {
            match edit {
                Edit::Zero { service } => self.zero(*service)?,
                Edit::SetTimeouts { timeouts } => self.set_timeouts(*timeouts)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn zero(&mut self, service: Option<ServiceId>) -> Result<()> {
        self.dp.zero(service)?;
        self.service_rates
            .retain(|id, _| service.is_some_and(|s| s != *id));
        self.real_rates
            .retain(|(id, _, _), _| service.is_some_and(|s| s != *id));
        Ok(())
    }

    fn set_timeouts(&mut self, t: Timeouts) -> Result<()> {
        self.dp.set_timeouts(t)?;
        let keep = |new: u32, old: u32| if new == 0 { old } else { new };
        self.timeouts = Timeouts {
            tcp: keep(t.tcp, self.timeouts.tcp),
            tcp_fin: keep(t.tcp_fin, self.timeouts.tcp_fin),
            udp: keep(t.udp, self.timeouts.udp),
        };
        Ok(())
    }

    /// Learns missing MACs and follows changed ones; true when any changed.
    /// Never blocks: addresses still unanswered are kicked and retried on
    /// the next call.
    pub fn resolve_macs(&mut self) -> bool {
        // Sorry servers need a MAC too, before quorum is ever lost.
        let sorry: BTreeSet<IpAddr> = self
            .health
            .services
            .values()
            .filter_map(|s| s.sorry_server.map(|sorry| sorry.addr))
            .filter(|a| !self.local.contains(a))
            .collect();
        let wanted: Vec<IpAddr> = self
            .desired
            .iter()
            .flat_map(|s| s.reals.iter())
            .filter(|r| !r.local)
            .map(|r| r.addr)
            .chain(sorry.iter().copied())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let found = self.neigh.macs(&wanted);
        for addr in &sorry {
            if let Some(mac) = found.get(addr) {
                self.other_macs.insert(*addr, *mac);
            }
        }
        let mut changed = false;
        let mut unresolved = BTreeSet::new();
        for real in self.desired.iter_mut().flat_map(|s| s.reals.iter_mut()) {
            if real.local {
                continue;
            }
            match found.get(&real.addr).copied() {
                Some(mac) if mac != real.mac => {
                    real.mac = mac;
                    changed = true;
                }
                Some(_) => {}
                None if real.mac == [0; 6] => {
                    unresolved.insert(real.addr);
                }
                // Keep the last known MAC while the entry is being refreshed.
                None => {}
            }
        }
        if unresolved != self.unresolved {
            changed = true;
        }
        self.unresolved = unresolved;
        changed
    }

    /// Warns once about each real still without a MAC after a resolution
    /// round (and notes when it is found later).
    pub fn report_unresolved(&mut self) {
        for addr in self.unresolved.difference(&self.reported_unresolved) {
            tracing::warn!(real = %addr, "no MAC for real server: it gets no traffic until resolved");
        }
        for addr in self.reported_unresolved.difference(&self.unresolved) {
            tracing::info!(real = %addr, "MAC of real server resolved");
        }
        self.reported_unresolved = self.unresolved.clone();
    }

    /// Sends the desired services (reals with a known MAC) to the data plane.
    pub fn push(&mut self) -> Result<()> {
        let specs: Vec<ServiceSpec> = self
            .forwarded()
            .iter()
            .map(|s| ServiceSpec {
                reals: s
                    .reals
                    .iter()
                    .filter(|r| r.local || r.mac != [0; 6])
                    .copied()
                    .collect(),
                ..s.clone()
            })
            .collect();
        self.dp.apply(&specs)
    }

    /// One rate-estimator period (every `rates::PERIOD_SECS`).
    pub fn sample_rates(&mut self) -> Result<()> {
        for svc in self.dp.stats()? {
            let stats = stats_of(&svc.counters);
            self.service_rates
                .entry(svc.id)
                .and_modify(|e| e.update(stats))
                .or_insert_with(|| Estimator::new(stats));
            for real in svc.reals {
                let stats = stats_of(&real.counters);
                self.real_rates
                    .entry((svc.id, real.addr, real.port))
                    .and_modify(|e| e.update(stats))
                    .or_insert_with(|| Estimator::new(stats));
            }
        }
        Ok(())
    }

    pub fn status(&self) -> Status {
        Status {
            version: listing::XVS_VERSION.to_string(),
            instance: self.identity.instance.clone(),
            config_file: self.identity.config_file.clone(),
            interface: self.identity.interface.clone(),
            xdp_mode: self.identity.xdp_mode.clone(),
            active: self.active,
            services: self.desired.len(),
            unresolved_reals: self.unresolved.iter().copied().collect(),
            vrrp: self.vrrp_status.clone(),
        }
    }

    /// Everything /metrics reports, taken at once.
    pub fn metrics(&self) -> Result<super::metrics::Snapshot> {
        Ok(super::metrics::Snapshot {
            table: self.table()?,
            verdicts: self.dp.verdicts()?,
            active: self.active,
            unresolved_reals: self.unresolved.len(),
            vrrp_instances: self.vrrp_instances.clone(),
            vrrp: self.vrrp_status.clone(),
            healthy: self
                .health
                .reals
                .iter()
                .map(|(id, h)| (*id, h.up))
                .collect(),
        })
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// The table as `ipvsadm -L` shows it: services and reals as configured
    /// (plus edits), with counters, rates and connection counts.
    pub fn table(&self) -> Result<ServiceTable> {
        let stats: HashMap<ServiceId, crate::dataplane::ServiceStats> =
            self.dp.stats()?.into_iter().map(|s| (s.id, s)).collect();
        let conns = self.conn_counts()?;
        let mut table = ServiceTable::new(self.identity.table_size);
        for spec in &self.effective() {
            let mut service = listing::Service::from(spec);
            if let Some(s) = stats.get(&spec.id) {
                service.stats = stats_of(&s.counters);
                for (dest, real) in service.dests.iter_mut().zip(&spec.reals) {
                    if let Some(r) = s
                        .reals
                        .iter()
                        .find(|r| (r.addr, r.port) == (real.addr, real.port))
                    {
                        dest.stats = stats_of(&r.counters);
                    }
                }
            }
            if let Some(e) = self.service_rates.get(&spec.id) {
                service.rates = e.rates();
            }
            for dest in &mut service.dests {
                let key = (spec.id, dest.addr, dest.port);
                if let Some(e) = self.real_rates.get(&key) {
                    dest.rates = e.rates();
                }
                let counts = conns.get(&key).copied().unwrap_or_default();
                dest.active_conns = counts.active;
                dest.inact_conns = counts.inactive;
                dest.persist_conns = counts.persistent;
            }
            table.services.push(service);
        }
        Ok(table)
    }

    /// ActiveConn/InActConn/PersistConn per real, from the connection table.
    fn conn_counts(&self) -> Result<HashMap<RealKey, ConnCounts>> {
        let mut counts: HashMap<RealKey, ConnCounts> = HashMap::new();
        for c in self.dp.connections()? {
            let Some((addr, port)) = c.real else { continue };
            let id = ServiceId {
                vip: c.virtual_.0,
                port: c.virtual_.1,
                proto: c.proto,
            };
            let entry = counts.entry((id, addr, port)).or_default();
            if c.template {
                entry.persistent += 1;
            } else if c.proto == Protocol::Tcp && c.state.is_active() {
                entry.active += 1;
            } else {
                entry.inactive += 1;
            }
        }
        Ok(counts)
    }

    pub fn connections(&self) -> Result<Vec<listing::Connection>> {
        Ok(self
            .dp
            .connections()?
            .into_iter()
            .filter_map(|c| {
                let (addr, port) = c.real?;
                Some(listing::Connection {
                    proto: c.proto,
                    client: SocketAddr::new(c.client.0, c.client.1),
                    vip: SocketAddr::new(c.virtual_.0, c.virtual_.1),
                    dest: SocketAddr::new(addr, port),
                    state: c.state.name().to_string(),
                    expires: c.expires_in_s.min(u32::MAX as u64) as u32,
                })
            })
            .collect())
    }

    /// Detaches nothing; the caller decides whether the data plane stays.
    pub fn into_dataplane(self) -> Box<dyn Dataplane + Send> {
        self.dp
    }

    fn known_macs(&self) -> HashMap<IpAddr, [u8; 6]> {
        self.desired
            .iter()
            .flat_map(|s| s.reals.iter())
            .filter(|r| r.mac != [0; 6])
            .map(|r| (r.addr, r.mac))
            .collect()
    }
}

fn stats_of(c: &Counters) -> Stats {
    Stats {
        conns: c.conns,
        inpkts: c.packets,
        outpkts: 0,
        inbytes: c.bytes,
        outbytes: 0,
    }
}

fn config_timeouts(config: &Config) -> Timeouts {
    let t = &config.global.lvs_timeouts;
    Timeouts {
        tcp: t.tcp.unwrap_or(0),
        tcp_fin: t.tcpfin.unwrap_or(0),
        udp: t.udp.unwrap_or(0),
    }
}

pub fn join_diagnostics(diags: &[config::Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// One ipvsadm edit on the desired services, with ipvsadm's messages.
fn apply_edit(desired: &mut Vec<ServiceSpec>, edit: &Edit, local: &HashSet<IpAddr>) -> Result<()> {
    let find = |desired: &mut Vec<ServiceSpec>, id: ServiceId| -> Result<usize> {
        desired
            .iter()
            .position(|s| s.id == id)
            .ok_or_else(|| anyhow!("No such service"))
    };
    match edit {
        Edit::AddService { service } => {
            if desired.iter().any(|s| s.id == service.id) {
                bail!("Service already exists");
            }
            desired.push(ServiceSpec {
                id: service.id,
                scheduler: service.scheduler,
                persistence: service.persistence,
                reals: Vec::new(),
            });
        }
        Edit::EditService { service } => {
            let i = find(desired, service.id)?;
            desired[i].scheduler = service.scheduler;
            desired[i].persistence = service.persistence;
        }
        Edit::DeleteService { id } => {
            let i = find(desired, *id)?;
            desired.remove(i);
        }
        Edit::AddServer { server } => {
            let i = find(desired, server.service)?;
            let reals = &mut desired[i].reals;
            if reals
                .iter()
                .any(|r| (r.addr, r.port) == (server.addr, server.port))
            {
                bail!("Destination already exists");
            }
            if server.addr.is_ipv4() != server.service.vip.is_ipv4() {
                bail!("Direct routing needs the real server in the VIP's address family");
            }
            reals.push(RealSpec {
                addr: server.addr,
                port: server.port,
                weight: server.weight,
                mac: [0; 6],
                local: local.contains(&server.addr),
            });
        }
        Edit::EditServer { server } => {
            let i = find(desired, server.service)?;
            let real = desired[i]
                .reals
                .iter_mut()
                .find(|r| (r.addr, r.port) == (server.addr, server.port))
                .ok_or_else(|| anyhow!("No such destination"))?;
            real.weight = server.weight;
        }
        Edit::DeleteServer {
            service,
            addr,
            port,
        } => {
            let i = find(desired, *service)?;
            let reals = &mut desired[i].reals;
            let j = reals
                .iter()
                .position(|r| (r.addr, r.port) == (*addr, *port))
                .ok_or_else(|| anyhow!("No such destination"))?;
            reals.remove(j);
        }
        Edit::Clear => desired.clear(),
        Edit::Zero { service: Some(id) } => {
            find(desired, *id)?;
        }
        Edit::Zero { service: None } | Edit::SetTimeouts { .. } => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        ipvsadm::args::{RealServer, VirtualService},
        model::SchedulerKind,
    };

    fn id() -> ServiceId {
        ServiceId {
            vip: "10.0.0.1".parse().unwrap(),
            port: 80,
            proto: Protocol::Tcp,
        }
    }

    #[test]
    fn edits_follow_ipvsadm_rules() {
        let mut d = Vec::new();
        let local = HashSet::new();
        let svc = VirtualService {
            id: id(),
            scheduler: SchedulerKind::Rr,
            persistence: None,
        };
        apply_edit(&mut d, &Edit::AddService { service: svc }, &local).unwrap();
        let err = apply_edit(&mut d, &Edit::AddService { service: svc }, &local).unwrap_err();
        assert_eq!(err.to_string(), "Service already exists");
        let server = RealServer {
            service: id(),
            addr: "10.0.0.2".parse().unwrap(),
            port: 80,
            weight: 3,
        };
        apply_edit(&mut d, &Edit::AddServer { server }, &local).unwrap();
        assert_eq!(d[0].reals[0].weight, 3);
        let missing = Edit::DeleteServer {
            service: id(),
            addr: "10.0.0.9".parse().unwrap(),
            port: 80,
        };
        assert_eq!(
            apply_edit(&mut d, &missing, &local)
                .unwrap_err()
                .to_string(),
            "No such destination"
        );
        apply_edit(&mut d, &Edit::Clear, &local).unwrap();
        assert!(d.is_empty());
        assert_eq!(
            apply_edit(&mut d, &Edit::DeleteService { id: id() }, &local)
                .unwrap_err()
                .to_string(),
            "No such service"
        );
    }
}
