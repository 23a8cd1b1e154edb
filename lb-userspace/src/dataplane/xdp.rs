//! The XDP backend: loads the embedded program, attaches it, and keeps its
//! maps in step with the service model.
//!
//! Update order is what keeps packets safe while traffic flows: a service's
//! reals and table are written first, the service entry (replaced whole by
//! the hash map) is switched to them last, and only then is anything old
//! cleared.

use super::{Connection, Dataplane, RealStats, ServiceStats, Timeouts};
use crate::{
    model::{Protocol, RealSpec, ServiceId, ServiceSpec},
    objects,
    pool::{Pool, Region},
    scheduler,
};
use anyhow::{anyhow, bail, Context, Result};
use aya::{
    maps::{Array, HashMap, MapData, PerCpuArray, PerCpuValues},
    programs::{TestRun, TestRunOptions, Xdp, XdpMode},
    Ebpf, EbpfLoader,
};
use lb_common::{
    dest_flags, ipvs::ConnState, maps, service_flags, vip_filter_bit, Addr, ConnEntry, ConnKey,
    Counters, Dest, GlobalConfig, IfaceMac, ServiceInfo, ServiceKey, Verdict, FAMILY_V4, FAMILY_V6,
    MAX_DESTS, MAX_IFACES, MAX_SERVICES, NO_DEST, SCHED_POOL_SLOTS,
};
use std::{
    collections::{BTreeMap, HashMap as StdHashMap},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

const PROGRAM: &str = "xvs";

/// How to attach: native (driver), generic (skb), or native with a fallback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    Native,
    Skb,
    Auto,
}

impl std::str::FromStr for AttachMode {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "native" | "drv" => Ok(AttachMode::Native),
            "skb" | "generic" => Ok(AttachMode::Skb),
            "auto" => Ok(AttachMode::Auto),
            _ => bail!("unknown XDP mode {s:?}: expected native, skb or auto"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct XdpOptions {
    /// Entries in the connection table (LRU).
    pub conn_table_size: u32,
    /// Entries in the persistence-template table (LRU).
    pub persist_table_size: u32,
}

impl Default for XdpOptions {
    fn default() -> Self {
        XdpOptions {
            conn_table_size: lb_common::DEFAULT_CONN_TABLE,
            persist_table_size: lb_common::DEFAULT_PERSIST_TABLE,
        }
    }
}

/// Typed handles on every map of the program.
struct Maps {
    global: Array<MapData, GlobalConfig>,
    vip_filter: Array<MapData, u64>,
    services: HashMap<MapData, ServiceKey, ServiceInfo>,
    dests: Array<MapData, Dest>,
    pool: Array<MapData, u32>,
    conns: HashMap<MapData, ConnKey, ConnEntry>,
    service_stats: PerCpuArray<MapData, Counters>,
    dest_stats: PerCpuArray<MapData, Counters>,
    verdicts: PerCpuArray<MapData, u64>,
    iface_macs: Array<MapData, IfaceMac>,
}

impl Maps {
    fn take(ebpf: &mut Ebpf) -> Result<Maps> {
        fn take<T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>>(
            ebpf: &mut Ebpf,
            name: &str,
        ) -> Result<T> {
            let map = ebpf
                .take_map(name)
                .ok_or_else(|| anyhow!("map {name} missing from the XDP object"))?;
            T::try_from(map).with_context(|| format!("map {name} has an unexpected type"))
        }
        Ok(Maps {
            global: take(ebpf, maps::GLOBAL)?,
            vip_filter: take(ebpf, maps::VIP_FILTER)?,
            services: take(ebpf, maps::SERVICES)?,
            dests: take(ebpf, maps::DESTS)?,
            pool: take(ebpf, maps::SCHED_POOL)?,
            conns: take(ebpf, maps::CONNS)?,
            service_stats: take(ebpf, maps::SERVICE_STATS)?,
            dest_stats: take(ebpf, maps::DEST_STATS)?,
            verdicts: take(ebpf, maps::VERDICTS)?,
            iface_macs: take(ebpf, maps::IFACE_MACS)?,
        })
    }
}

/// A real as installed: its slot in `DESTS` and what was written there.
#[derive(Clone, Copy, Debug)]
struct InstalledDest {
    slot: u32,
    entry: Dest,
}

struct InstalledService {
    spec: ServiceSpec,
    id: u32,
    region: Region,
    dests: StdHashMap<(IpAddr, u16), InstalledDest>,
}

/// Free slot numbers below a limit, lowest first.
struct Slots {
    next: u32,
    limit: u32,
    free: Vec<u32>,
}

impl Slots {
    fn new(limit: u32) -> Slots {
        Slots {
            next: 0,
            limit,
            free: Vec::new(),
        }
    }
    fn alloc(&mut self) -> Option<u32> {
        if let Some(s) = self.free.pop() {
            return Some(s);
        }
        (self.next < self.limit).then(|| {
            self.next += 1;
            self.next - 1
        })
    }
    fn release(&mut self, slot: u32) {
        self.free.push(slot);
    }
}

pub struct XdpDataplane {
    ebpf: Ebpf,
    maps: Maps,
    global: GlobalConfig,
    services: BTreeMap<ServiceId, InstalledService>,
    service_ids: Slots,
    dest_slots: Slots,
    /// Last `Dest::gen` handed out; never 0 once used.
    last_gen: u32,
    pool: Pool,
    /// How many VIPs set each filter bit, and the words as written.
    filter_refs: StdHashMap<u32, u32>,
    filter_words: Vec<u64>,
    links: Vec<aya::programs::xdp::XdpLinkId>,
    ncpus: usize,
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
}

impl XdpDataplane {
    /// Loads the embedded program and its maps into the kernel, inactive and
    /// with no services. Nothing is attached yet.
    pub fn load(opts: XdpOptions) -> Result<XdpDataplane> {
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(maps::CONNS, opts.conn_table_size)
            .map_max_entries(maps::PERSIST, opts.persist_table_size)
            .load(objects::XVS)
            .context("loading the XDP object (are you root, with bpffs and BTF?)")?;
        let prog: &mut Xdp = ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| anyhow!("program {PROGRAM} missing from the XDP object"))?
            .try_into()?;
        prog.load()
            .context("the kernel verifier rejected the XDP program")?;
        // Debug records flow only while DEBUG_LOG is set; `flush_logs` reads them.
        let logger = aya_log::EbpfLogger::init(&mut ebpf).ok();
        let maps = Maps::take(&mut ebpf)?;
        let ncpus = aya::util::nr_cpus().map_err(|(msg, e)| anyhow!("{msg}: {e}"))?;
        let mut dp = XdpDataplane {
            ebpf,
            maps,
            global: GlobalConfig::default(),
            services: BTreeMap::new(),
            service_ids: Slots::new(MAX_SERVICES),
            dest_slots: Slots::new(MAX_DESTS),
            last_gen: 0,
            pool: Pool::new(SCHED_POOL_SLOTS),
            filter_refs: StdHashMap::new(),
            filter_words: vec![0; lb_common::VIP_FILTER_WORDS as usize],
            links: Vec::new(),
            ncpus,
            logger,
        };
        dp.write_global()?;
        Ok(dp)
    }

    /// Attaches to `iface`; returns the mode actually used.
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<AttachMode> {
        let prog: &mut Xdp = self.ebpf.program_mut(PROGRAM).unwrap().try_into()?;
        let (link, used) = match mode {
            AttachMode::Native => (prog.attach(iface, XdpMode::Driver)?, AttachMode::Native),
            AttachMode::Skb => (prog.attach(iface, XdpMode::Skb)?, AttachMode::Skb),
            AttachMode::Auto => match prog.attach(iface, XdpMode::Driver) {
                Ok(link) => (link, AttachMode::Native),
                Err(e) => {
                    log::warn!("native XDP on {iface} failed ({e}); falling back to SKB mode");
                    (prog.attach(iface, XdpMode::Skb)?, AttachMode::Skb)
                }
            },
        };
        self.links.push(link);
        let (ifindex, mac) = iface_index_and_mac(iface)?;
        let entry = IfaceMac {
            ifindex,
            mac,
            _pad: [0; 2],
        };
        self.maps.iface_macs.set(ifindex % MAX_IFACES, entry, 0)?;
        Ok(used)
    }

    /// Detaches from every interface.
    pub fn detach(&mut self) -> Result<()> {
        let prog: &mut Xdp = self.ebpf.program_mut(PROGRAM).unwrap().try_into()?;
        for link in self.links.drain(..) {
            prog.detach(link)?;
        }
        Ok(())
    }

    /// Runs one frame through the loaded program (BPF_PROG_TEST_RUN) and
    /// returns the XDP action and the frame as the program left it.
    pub fn test_run(&self, frame: &[u8]) -> Result<(u32, Vec<u8>)> {
        let prog: &Xdp = self.ebpf.program(PROGRAM).unwrap().try_into()?;
        test_run(prog, frame, 1).map(|(action, out, _)| (action, out))
    }

    /// Like `test_run`, `repeat` times in the kernel; returns the mean ns per run.
    pub fn test_run_repeat(&self, frame: &[u8], repeat: u32) -> Result<(u32, f64)> {
        let prog: &Xdp = self.ebpf.program(PROGRAM).unwrap().try_into()?;
        test_run(prog, frame, repeat).map(|(action, _, ns)| (action, ns))
    }

    /// Packets per verdict, summed over CPUs.
    pub fn verdicts(&self) -> Result<Vec<(Verdict, u64)>> {
        Verdict::ALL
            .iter()
            .map(|&v| {
                let per_cpu = self.maps.verdicts.get(&(v as u32), 0)?;
                Ok((v, per_cpu.iter().sum()))
            })
            .collect()
    }

    /// Hands the data plane's debug records to the `log` crate.
    pub fn flush_logs(&mut self) {
        if let Some(l) = self.logger.as_mut() {
            l.flush();
        }
    }

    /// Extra switches: `lb_common::global_flags`.
    pub fn set_flags(&mut self, flags: u32) -> Result<()> {
        self.global.flags = flags;
        self.write_global()
    }

    fn write_global(&mut self) -> Result<()> {
        self.maps.global.set(0, self.global, 0)?;
        Ok(())
    }

    fn next_gen(&mut self) -> u32 {
        self.last_gen = self.last_gen.wrapping_add(1).max(1);
        self.last_gen
    }

    fn zero_counters(&mut self, service_id: Option<u32>, dest: Option<u32>) -> Result<()> {
        let zeros = || PerCpuValues::try_from(vec![Counters::default(); self.ncpus]);
        if let Some(id) = service_id {
            self.maps.service_stats.set(id, zeros()?, 0)?;
        }
        if let Some(slot) = dest {
            self.maps.dest_stats.set(slot, zeros()?, 0)?;
        }
        Ok(())
    }

    fn sum_counters(map: &PerCpuArray<MapData, Counters>, idx: u32) -> Result<Counters> {
        let mut total = Counters::default();
        for c in map.get(&idx, 0)?.iter() {
            total.add(c);
        }
        Ok(total)
    }

    fn filter_ref(&mut self, vip: IpAddr, add: bool) -> Result<()> {
        let (family, addr) = addr_bytes(vip);
        let bit = vip_filter_bit(family, lb_common::addr_words(&addr));
        let refs = self.filter_refs.entry(bit).or_insert(0);
        *refs = if add {
            *refs + 1
        } else {
            refs.saturating_sub(1)
        };
        let set = *refs > 0;
        if *refs == 0 {
            self.filter_refs.remove(&bit);
        }
        let word = (bit / 64) as usize;
        let old = self.filter_words[word];
        let new = if set {
            old | 1 << (bit % 64)
        } else {
            old & !(1 << (bit % 64))
        };
        if new != old {
            self.filter_words[word] = new;
            self.maps.vip_filter.set(word as u32, new, 0)?;
        }
        Ok(())
    }

    /// Writes (or keeps) the dest slots for `spec`'s reals, reusing slots of
    /// reals that stay so their flows survive.
    fn install_dests(
        &mut self,
        spec: &ServiceSpec,
        service_id: u32,
        old: &mut StdHashMap<(IpAddr, u16), InstalledDest>,
    ) -> Result<StdHashMap<(IpAddr, u16), InstalledDest>> {
        let mut dests = StdHashMap::new();
        for real in &spec.reals {
            let key = (real.addr, real.port);
            // A real that became (or stopped being) local is a different
            // dest; the old slot stays in `old` and is cleared by the caller.
            let kept = match old.get(&key) {
                Some(d) if (d.entry.flags & dest_flags::LOCAL != 0) == real.local => {
                    old.remove(&key)
                }
                _ => None,
            };
            let dest = match kept {
                Some(d) if d.entry.mac()[..6] == real.mac => d,
                Some(d) => self.flip_mac(d, real.mac)?,
                None => self.new_dest(real, service_id)?,
            };
            dests.insert(key, dest);
        }
        Ok(dests)
    }

    fn new_dest(&mut self, real: &RealSpec, service_id: u32) -> Result<InstalledDest> {
        let slot = self
            .dest_slots
            .alloc()
            .ok_or_else(|| anyhow!("too many real servers (limit {MAX_DESTS})"))?;
        let (family, addr) = addr_bytes(real.addr);
        let mut entry = Dest {
            addr,
            family,
            flags: if real.local { dest_flags::LOCAL } else { 0 },
            gen: self.next_gen(),
            service_id,
            ..Dest::default()
        };
        entry.macs[0][..6].copy_from_slice(&real.mac);
        self.zero_counters(None, Some(slot))?;
        self.maps.dests.set(slot, entry, 0)?;
        Ok(InstalledDest { slot, entry })
    }

    /// A new MAC for a live dest: fill the idle copy, then flip one byte.
    fn flip_mac(&mut self, mut d: InstalledDest, mac: [u8; 6]) -> Result<InstalledDest> {
        let idle = (d.entry.mac_sel ^ 1) as usize & 1;
        d.entry.macs[idle] = [0; 8];
        d.entry.macs[idle][..6].copy_from_slice(&mac);
        self.maps.dests.set(d.slot, d.entry, 0)?;
        d.entry.mac_sel = idle as u8;
        self.maps.dests.set(d.slot, d.entry, 0)?;
        Ok(d)
    }

    fn clear_dest(&mut self, d: InstalledDest) -> Result<()> {
        let entry = Dest { gen: 0, ..d.entry };
        self.maps.dests.set(d.slot, entry, 0)?;
        self.dest_slots.release(d.slot);
        Ok(())
    }

    /// Writes the scheduling table to fresh pool space.
    fn write_table(
        &mut self,
        spec: &ServiceSpec,
        dests: &StdHashMap<(IpAddr, u16), InstalledDest>,
    ) -> Result<(u8, Region)> {
        let sched = scheduler::for_kind(spec.scheduler);
        let list = scheduler::ipvs_order(&spec.reals);
        let weights: Vec<u32> = list.iter().map(|r| r.weight).collect();
        let table = sched.table(&weights);
        let region = self
            .pool
            .alloc(table.len() as u32)
            .ok_or_else(|| anyhow!("scheduling-table pool full ({SCHED_POOL_SLOTS} slots)"))?;
        for (i, pick) in table.iter().enumerate() {
            let slot = match pick {
                Some(idx) => dests[&(list[*idx].addr, list[*idx].port)].slot,
                None => NO_DEST,
            };
            self.maps.pool.set(region.off + i as u32, slot, 0)?;
        }
        Ok((sched.table_kind(), region))
    }

    fn install(&mut self, spec: &ServiceSpec) -> Result<()> {
        let previous = self.services.remove(&spec.id);
        if let Some(prev) = &previous {
            if prev.spec == *spec {
                let prev = previous.unwrap();
                self.services.insert(spec.id, prev);
                return Ok(());
            }
        }
        let (id, mut old_dests, old_region) = match previous {
            Some(p) => (p.id, p.dests, Some(p.region)),
            None => {
                let id = self
                    .service_ids
                    .alloc()
                    .ok_or_else(|| anyhow!("too many virtual services (limit {MAX_SERVICES})"))?;
                self.zero_counters(Some(id), None)?;
                self.filter_ref(spec.id.vip, true)?;
                (id, StdHashMap::new(), None)
            }
        };
        let dests = self.install_dests(spec, id, &mut old_dests)?;
        let (sched_kind, region) = self.write_table(spec, &dests)?;
        let info = service_info(spec, id, sched_kind, region);
        self.maps.services.insert(service_key(&spec.id), info, 0)?;
        // The service now points at the new table: the old one can go.
        if let Some(r) = old_region {
            self.pool.retire(r);
        }
        for (_, d) in old_dests {
            self.clear_dest(d)?;
        }
        self.services.insert(
            spec.id,
            InstalledService {
                spec: spec.clone(),
                id,
                region,
                dests,
            },
        );
        Ok(())
    }

    fn uninstall(&mut self, id: ServiceId) -> Result<()> {
        let Some(svc) = self.services.remove(&id) else {
            return Ok(());
        };
        self.maps.services.remove(&service_key(&id))?;
        self.filter_ref(id.vip, false)?;
        self.pool.retire(svc.region);
        for (_, d) in svc.dests {
            self.clear_dest(d)?;
        }
        self.service_ids.release(svc.id);
        Ok(())
    }

    /// Which real a dest slot currently stands for.
    fn real_of_slot(&self) -> StdHashMap<u32, (u32, IpAddr, u16)> {
        self.services
            .values()
            .flat_map(|s| {
                s.dests
                    .iter()
                    .map(|(&(a, p), d)| (d.slot, (d.entry.gen, a, p)))
            })
            .collect()
    }
}

impl Dataplane for XdpDataplane {
    fn apply(&mut self, services: &[ServiceSpec]) -> Result<()> {
        validate(services)?;
        let wanted: BTreeMap<ServiceId, &ServiceSpec> =
            services.iter().map(|s| (s.id, s)).collect();
        let gone: Vec<ServiceId> = self
            .services
            .keys()
            .filter(|id| !wanted.contains_key(id))
            .copied()
            .collect();
        for id in gone {
            self.uninstall(id)?;
        }
        for spec in wanted.values() {
            self.install(spec)
                .with_context(|| format!("installing virtual service {}", spec.id))?;
        }
        Ok(())
    }

    fn set_active(&mut self, active: bool) -> Result<()> {
        self.global.active = active as u32;
        self.write_global()
    }

    fn set_timeouts(&mut self, t: Timeouts) -> Result<()> {
        // As in IPVS, 0 leaves a timeout unchanged.
        let slots = [
            (ConnState::Established, t.tcp),
            (ConnState::FinWait, t.tcp_fin),
            (ConnState::Udp, t.udp),
        ];
        for (state, secs) in slots {
            if secs > 0 {
                self.global.timeouts_s[state as usize] = secs;
            }
        }
        self.write_global()
    }

    fn stats(&self) -> Result<Vec<ServiceStats>> {
        self.services
            .values()
            .map(|svc| {
                let reals = svc
                    .spec
                    .reals
                    .iter()
                    .map(|r| {
                        let slot = svc.dests[&(r.addr, r.port)].slot;
                        Ok(RealStats {
                            addr: r.addr,
                            port: r.port,
                            counters: Self::sum_counters(&self.maps.dest_stats, slot)?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(ServiceStats {
                    id: svc.spec.id,
                    counters: Self::sum_counters(&self.maps.service_stats, svc.id)?,
                    reals,
                })
            })
            .collect()
    }

    fn verdicts(&self) -> Result<Vec<(&'static str, u64)>> {
        Ok(XdpDataplane::verdicts(self)?
            .into_iter()
            .map(|(v, n)| (v.name(), n))
            .collect())
    }

    fn zero(&mut self, service: Option<ServiceId>) -> Result<()> {
        let targets: Vec<(u32, Vec<u32>)> = self
            .services
            .values()
            .filter(|s| service.is_none_or(|id| id == s.spec.id))
            .map(|s| (s.id, s.dests.values().map(|d| d.slot).collect()))
            .collect();
        for (id, slots) in targets {
            self.zero_counters(Some(id), None)?;
            for slot in slots {
                self.zero_counters(None, Some(slot))?;
            }
        }
        Ok(())
    }

    fn connections(&self) -> Result<Vec<Connection>> {
        let now = monotonic_coarse_ns();
        let reals = self.real_of_slot();
        let mut out = Vec::new();
        for item in self.maps.conns.iter() {
            let (key, entry) = item?;
            let state = ConnState::from_u8(entry.state);
            let timeout_ns = self.global.timeouts_s[state as usize] as u64 * 1_000_000_000;
            let idle = now.saturating_sub(entry.last_seen_ns);
            if idle > timeout_ns {
                continue;
            }
            let proto = if key.proto == lb_common::PROTO_TCP {
                Protocol::Tcp
            } else {
                Protocol::Udp
            };
            let real = reals
                .get(&entry.dest)
                .filter(|(gen, _, _)| *gen == entry.dest_gen)
                .map(|&(_, a, p)| (a, p));
            out.push(Connection {
                proto,
                client: (ip_of(key.family, &key.saddr), u16::from_be(key.sport_be)),
                virtual_: (ip_of(key.family, &key.daddr), u16::from_be(key.dport_be)),
                real,
                state,
                expires_in_s: (timeout_ns - idle) / 1_000_000_000,
            });
        }
        Ok(out)
    }
}

fn validate(services: &[ServiceSpec]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for s in services {
        if !seen.insert(s.id) {
            bail!("virtual service {} is listed twice", s.id);
        }
        let mut reals = std::collections::HashSet::new();
        for r in &s.reals {
            if !reals.insert((r.addr, r.port)) {
                bail!(
                    "real server {}:{} is listed twice in {}",
                    r.addr,
                    r.port,
                    s.id
                );
            }
            if r.addr.is_ipv4() != s.id.vip.is_ipv4() {
                bail!(
                    "real server {} of {} is of another address family (DR needs the same)",
                    r.addr,
                    s.id
                );
            }
        }
    }
    Ok(())
}

fn service_key(id: &ServiceId) -> ServiceKey {
    let (family, addr) = addr_bytes(id.vip);
    ServiceKey {
        addr,
        port_be: id.port.to_be(),
        proto: id.proto.number(),
        family,
    }
}

fn service_info(spec: &ServiceSpec, id: u32, sched_kind: u8, region: Region) -> ServiceInfo {
    let mut flags = 0;
    if let crate::model::SchedulerKind::Sh { port: true, .. } = spec.scheduler {
        flags |= service_flags::SH_PORT;
    }
    let (timeout, mask) = match spec.persistence {
        Some(p) => {
            flags |= service_flags::PERSISTENT;
            (p.timeout_s, prefix_mask(p.prefix_len))
        }
        None => (0, [0; 16]),
    };
    ServiceInfo {
        id,
        table_off: region.off,
        table_len: region.len,
        persist_timeout_s: timeout,
        persist_mask: mask,
        sched_kind,
        flags,
        _pad: [0; 2],
    }
}

/// A netmask of `len` leading ones over 16 bytes (IPv4 uses the first four).
fn prefix_mask(len: u8) -> Addr {
    let mut mask = [0u8; 16];
    for (i, byte) in mask.iter_mut().enumerate() {
        let bits = (len as i32 - (i as i32) * 8).clamp(0, 8);
        *byte = (0xFFu16 << (8 - bits)) as u8;
    }
    mask
}

/// An address as stored in keys: family and 16 bytes.
pub fn addr_bytes(ip: IpAddr) -> (u8, Addr) {
    let mut addr = [0u8; 16];
    match ip {
        IpAddr::V4(a) => {
            addr[..4].copy_from_slice(&a.octets());
            (FAMILY_V4, addr)
        }
        IpAddr::V6(a) => (FAMILY_V6, a.octets()),
    }
}

fn ip_of(family: u8, addr: &Addr) -> IpAddr {
    if family == FAMILY_V6 {
        IpAddr::V6(Ipv6Addr::from(*addr))
    } else {
        IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
    }
}

fn test_run(prog: &Xdp, frame: &[u8], repeat: u32) -> Result<(u32, Vec<u8>, f64)> {
    // Room for the frame; XDP may not grow it here.
    let mut out = vec![0u8; frame.len() + 256];
    let result = prog.test_run(TestRunOptions {
        data_in: Some(frame),
        data_out: Some(&mut out),
        repeat,
        ..Default::default()
    })?;
    out.truncate(result.data_size_out as usize);
    let ns = result.duration.as_nanos() as f64;
    Ok((result.return_value, out, ns))
}

/// The clock `bpf_ktime_get_coarse_ns()` reads.
pub fn monotonic_coarse_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Index and MAC of an interface in the calling thread's network namespace.
pub fn iface_index_and_mac(iface: &str) -> Result<(u32, [u8; 6])> {
    let name = std::ffi::CString::new(iface)?;
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        bail!("no interface named {iface}");
    }
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        bail!("socket: {}", std::io::Error::last_os_error());
    }
    let rc = unsafe { libc::ioctl(sock, libc::SIOCGIFHWADDR, &mut req) };
    let err = std::io::Error::last_os_error();
    unsafe { libc::close(sock) };
    if rc < 0 {
        bail!("reading the MAC of {iface}: {err}");
    }
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (m, d) in mac.iter_mut().zip(data.iter()) {
        *m = *d as u8;
    }
    Ok((ifindex, mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_masks() {
        assert_eq!(&prefix_mask(24)[..4], &[255, 255, 255, 0]);
        assert_eq!(&prefix_mask(32)[..5], &[255, 255, 255, 255, 0]);
        assert_eq!(prefix_mask(0), [0; 16]);
        assert_eq!(prefix_mask(128), [255; 16]);
        assert_eq!(&prefix_mask(12)[..2], &[255, 0xF0]);
    }
}
