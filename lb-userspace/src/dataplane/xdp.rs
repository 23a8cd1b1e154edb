//! The XDP backend: loads the embedded program, attaches it, and keeps its
//! maps in step with the service model.
//!
//! Update order is what keeps packets safe while traffic flows: a service's
//! reals and table are written first, the service entry (replaced whole by
//! the hash map) is switched to them last, and only then is anything old
//! cleared.

use super::pins::{self, MapSpec, PinDir};
use super::{Connection, Dataplane, RealStats, ServiceStats, Timeouts};
use crate::{
    model::{Persistence, Protocol, RealSpec, SchedulerKind, ServiceId, ServiceSpec},
    objects,
    pool::{Pool, Region},
    scheduler,
};
use anyhow::{anyhow, bail, Context, Result};
use aya::{
    maps::{Array, HashMap, IterableMap, MapData, PerCpuArray, PerCpuValues},
    programs::{
        links::{FdLink, PinnedLink},
        xdp::XdpLink,
        TestRun, TestRunOptions, Xdp, XdpMode,
    },
    Ebpf, EbpfLoader,
};
use lb_common::{
    dest_flags, ipvs::ConnState, maps, sched_kind, service_flags, vip_filter_bit, Addr, ConnEntry,
    ConnKey, Counters, Dest, FlowCacheSlot, GlobalConfig, IfaceMac, PersistEntry, PersistKey,
    ServiceInfo, ServiceKey, Verdict, FAMILY_V4, FAMILY_V6, FLOW_CACHE_SLOTS, MAX_DESTS,
    MAX_IFACES, MAX_SERVICES, NO_DEST, SCHED_POOL_SLOTS,
};
use std::{
    collections::{BTreeMap, BTreeSet, HashMap as StdHashMap},
    fs, io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
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
    /// Rebuilt from pinned maps: `spec` is only a sketch (no weights), so
    /// the next install rewrites the table, keeping the dests.
    adopted: bool,
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
    /// Slots with `used` taken; the gaps below the highest are free.
    fn with_used(limit: u32, used: &BTreeSet<u32>) -> Slots {
        let next = used.last().map_or(0, |&top| top + 1);
        // Reversed, so `pop` hands out the lowest first.
        let free = (0..next).rev().filter(|s| !used.contains(s)).collect();
        Slots { next, limit, free }
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
    /// Attachments the program owns (detached when it is dropped).
    links: Vec<aya::programs::xdp::XdpLinkId>,
    /// Set by `load_pinned`.
    pins: Option<Pins>,
    ncpus: usize,
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
}

/// The bpffs side of a pinned data plane.
struct Pins {
    dir: PinDir,
    specs: Vec<MapSpec>,
    /// The XDP attachment, pinned as `<dir>/link`.
    link: Option<FdLink>,
    /// Leave maps and link pinned (and so running) on drop.
    keep: bool,
    adoption: Option<Adoption>,
}

/// What became of a pinned XDP link found at attach time.
enum Takeover {
    /// No link was pinned.
    Absent,
    /// It served the interface, and now runs the new program, in this mode.
    Replaced(AttachMode),
    /// It serves something else (another interface, or one since deleted).
    Stale(FdLink),
}

/// What `load_pinned` took over from a data plane that was left running.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Adoption {
    pub services: usize,
    pub reals: usize,
    /// Dest slots that belonged to no service (cleared).
    pub orphan_reals: usize,
    /// Entries in the connection table.
    pub connections: usize,
    /// Highest real generation in use; new reals get higher ones.
    pub last_gen: u32,
}

impl XdpDataplane {
    /// Loads the embedded program and its maps into the kernel, inactive and
    /// with no services. Nothing is attached yet.
    pub fn load(opts: XdpOptions) -> Result<XdpDataplane> {
        let mut dp = Self::load_object(opts, None)?;
        dp.write_global()?;
        Ok(dp)
    }

    /// Like `load`, with every map pinned in `dir` (created if needed, on
    /// bpffs) and `attach` pinning the XDP link there as `link`.
    ///
    /// Maps already pinned there (a data plane left running by
    /// `keep_on_drop`, or by a daemon that died) are reused, and their state
    /// adopted: the next `apply` keeps every real's dest slot and generation,
    /// so established flows keep their real, and counters carry on.
    pub fn load_pinned(opts: XdpOptions, dir: &Path) -> Result<XdpDataplane> {
        let dir = PinDir::open(dir)?;
        let specs = pins::map_specs(opts.conn_table_size, opts.persist_table_size);
        let reused = dir.pinned_maps(&specs)?;
        let loaded = Self::load_object(opts, Some(&dir)).and_then(|mut dp| {
            let adoption = if reused.is_empty() {
                dp.write_global()?;
                None
            } else {
                Some(dp.adopt().context("adopting the pinned data plane")?)
            };
            Ok((dp, adoption))
        });
        match loaded {
            Ok((mut dp, adoption)) => {
                dp.pins = Some(Pins {
                    dir,
                    specs,
                    link: None,
                    keep: false,
                    adoption,
                });
                Ok(dp)
            }
            Err(e) => {
                // Pins we just made are ours to clean; reused ones serve a
                // running data plane and stay.
                if reused.is_empty() {
                    let _ = dir.remove(&specs);
                }
                Err(e)
            }
        }
    }

    fn load_object(opts: XdpOptions, pin_dir: Option<&PinDir>) -> Result<XdpDataplane> {
        let mut loader = EbpfLoader::new();
        loader
            .map_max_entries(maps::CONNS, opts.conn_table_size)
            .map_max_entries(maps::PERSIST, opts.persist_table_size);
        if let Some(dir) = pin_dir {
            // aya opens a map pinned at the path, or creates and pins it.
            for spec in pins::map_specs(opts.conn_table_size, opts.persist_table_size) {
                loader.map_pin_path(spec.name, dir.map_path(spec.name));
            }
        }
        let mut ebpf = loader
            .load(objects::XVS)
            .context("loading the XDP object (are you root, with bpffs and BTF?)")?;
        if pin_dir.is_some() {
            check_all_maps_pinned(&ebpf)?;
        }
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
        Ok(XdpDataplane {
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
            pins: None,
            ncpus,
            logger,
        })
    }

    /// The pin directory, when loaded with `load_pinned`.
    pub fn pin_dir(&self) -> Option<&Path> {
        self.pins.as_ref().map(|p| p.dir.path())
    }

    /// What was taken over from pinned maps, if anything.
    pub fn adoption(&self) -> Option<&Adoption> {
        self.pins.as_ref().and_then(|p| p.adoption.as_ref())
    }

    /// Entries the connection table really has (a reused one keeps its size).
    pub fn conn_table_size(&self) -> Result<u32> {
        Ok(self.maps.conns.map().info()?.max_entries())
    }

    /// With `keep`, dropping the data plane leaves its maps and XDP link
    /// pinned, so traffic keeps flowing and the next `load_pinned` of the
    /// same directory takes over. Without (the default), drop detaches and
    /// removes every pin. Needs `load_pinned`.
    pub fn keep_on_drop(&mut self, keep: bool) -> Result<()> {
        match self.pins.as_mut() {
            Some(p) => p.keep = keep,
            None if keep => bail!("only a pinned data plane (load_pinned) can outlive its process"),
            None => {}
        }
        Ok(())
    }

    fn program_mut(&mut self) -> Result<&mut Xdp> {
        Ok(self.ebpf.program_mut(PROGRAM).unwrap().try_into()?)
    }

    /// Attaches to `iface`; returns the mode actually used. A pinned data
    /// plane whose pinned link serves `iface` already swaps its program into
    /// that link instead (the mode stays the link's).
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<AttachMode> {
        let used = if self.pins.is_some() {
            self.attach_pinned(iface, mode)?
        } else {
            let (link, used) = self.attach_new(iface, mode)?;
            self.links.push(link);
            used
        };
        let (ifindex, mac) = iface_index_and_mac(iface)?;
        let entry = IfaceMac {
            ifindex,
            mac,
            _pad: [0; 2],
        };
        self.maps.iface_macs.set(ifindex % MAX_IFACES, entry, 0)?;
        Ok(used)
    }

    fn attach_new(
        &mut self,
        iface: &str,
        mode: AttachMode,
    ) -> Result<(aya::programs::xdp::XdpLinkId, AttachMode)> {
        let prog = self.program_mut()?;
        Ok(match mode {
            AttachMode::Native => (prog.attach(iface, XdpMode::Driver)?, AttachMode::Native),
            AttachMode::Skb => (prog.attach(iface, XdpMode::Skb)?, AttachMode::Skb),
            AttachMode::Auto => match prog.attach(iface, XdpMode::Driver) {
                Ok(link) => (link, AttachMode::Native),
                Err(e) => {
                    log::warn!("native XDP on {iface} failed ({e}); falling back to SKB mode");
                    (prog.attach(iface, XdpMode::Skb)?, AttachMode::Skb)
                }
            },
        })
    }

    /// Takes over the pinned link if it serves `iface`, else attaches anew
    /// and pins the link.
    fn attach_pinned(&mut self, iface: &str, mode: AttachMode) -> Result<AttachMode> {
        if self.pins.as_ref().is_some_and(|p| p.link.is_some()) {
            bail!("a pinned data plane attaches to one interface only");
        }
        let stale = match self.take_over_pinned_link(iface, mode)? {
            Takeover::Replaced(used) => return Ok(used),
            Takeover::Stale(link) => Some(link),
            Takeover::Absent => None,
        };
        let (id, used) = self.attach_new(iface, mode)?;
        let path = self.pins.as_ref().unwrap().dir.link_path();
        if let Some(old) = stale {
            // Only now that `iface` is served: the old link's interface loses XDP.
            log::warn!("the pinned XDP link served another interface: detached it");
            remove_pin(&path)?;
            drop(old);
        }
        if !pins::xdp_links_supported() {
            log::warn!(
                "this kernel attaches XDP through netlink (bpf_link needs Linux 5.9): the \
                 attachment cannot be pinned, so it ends with this process and a restart \
                 re-attaches (the maps, and so the flows, are still kept)"
            );
            self.links.push(id);
            return Ok(used);
        }
        let link = FdLink::try_from(self.program_mut()?.take_link(id)?)
            .context("the XDP attachment is not a bpf_link")?;
        let pins = self.pins.as_mut().unwrap();
        // On failure the link is dropped, which detaches it again.
        let pinned = link
            .pin(&path)
            .with_context(|| format!("pinning the XDP link as {}", path.display()))?;
        pins.link = Some(pinned.into());
        Ok(used)
    }

    /// Atomically replaces the program of the pinned XDP link, when that
    /// link is attached to `iface` (bpf_link_update: the interface is never
    /// without XDP).
    fn take_over_pinned_link(&mut self, iface: &str, wanted: AttachMode) -> Result<Takeover> {
        let path = self.pins.as_ref().unwrap().dir.link_path();
        if !path.exists() {
            return Ok(Takeover::Absent);
        }
        let link: FdLink = PinnedLink::from_pin(&path)
            .with_context(|| format!("opening the pinned XDP link {}", path.display()))?
            .into();
        let old_prog = link.info()?.program_id();
        let (ifindex, _) = iface_index_and_mac(iface)?;
        let attached = pins::attached_xdp_programs(ifindex)
            .with_context(|| format!("reading the XDP programs of {iface}"))?;
        let Some(&(mode, _)) = attached.iter().find(|(_, id)| *id == old_prog) else {
            return Ok(Takeover::Stale(link));
        };
        if wanted != AttachMode::Auto && wanted != mode {
            log::warn!(
                "{iface} keeps the running data plane's XDP mode ({mode:?}); \
                 {wanted:?} takes effect after a clean stop"
            );
        }
        let link = XdpLink::try_from(link).context("the pinned link is not an XDP link")?;
        let prog = self.program_mut()?;
        let id = prog
            .attach_to_link(link)
            .context("replacing the program in the pinned XDP link")?;
        let link = FdLink::try_from(prog.take_link(id)?)?;
        self.pins.as_mut().unwrap().link = Some(link);
        log::info!("{iface}: new XDP program swapped into the running link, without a gap");
        Ok(Takeover::Replaced(mode))
    }

    /// Detaches from every interface (and unpins the pinned link).
    pub fn detach(&mut self) -> Result<()> {
        if let Some(link) = self.pins.as_mut().and_then(|p| p.link.take()) {
            remove_pin(&self.pins.as_ref().unwrap().dir.link_path())?;
            drop(link); // the last reference: the kernel detaches
        }
        let links: Vec<_> = self.links.drain(..).collect();
        let prog = self.program_mut()?;
        for link in links {
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
        let bit = filter_bit(vip);
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
            port_be: real.port.to_be(),
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
            if !prev.adopted && prev.spec == *spec {
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
                adopted: false,
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

/// Taking over a data plane from the maps a previous daemon left pinned.
impl XdpDataplane {
    /// Rebuilds the bookkeeping from the maps without changing what the data
    /// plane does: installed services, dest slots and generations, pool
    /// regions, VIP filter counts and the global settings.
    fn adopt(&mut self) -> Result<Adoption> {
        self.global = self.maps.global.get(&0, 0)?;
        let mut by_id = self.adopt_services()?;
        let (reals, orphan_reals) = self.adopt_dests(&mut by_id)?;
        let (connections, flow_gen) = self.highest_gen_in_flows()?;
        self.last_gen = self.last_gen.max(flow_gen);
        let ids: BTreeSet<u32> = by_id.keys().copied().collect();
        let slots: BTreeSet<u32> = by_id
            .values()
            .flat_map(|s| s.dests.values().map(|d| d.slot))
            .collect();
        self.service_ids = Slots::with_used(MAX_SERVICES, &ids);
        self.dest_slots = Slots::with_used(MAX_DESTS, &slots);
        self.pool = pool_with(by_id.values().map(|s| s.region).collect())?;
        self.services = by_id
            .into_values()
            .map(|mut s| {
                s.spec.reals = sketch_reals(&s.dests);
                (s.spec.id, s)
            })
            .collect();
        self.adopt_vip_filter()?;
        Ok(Adoption {
            services: self.services.len(),
            reals,
            orphan_reals,
            connections,
            last_gen: self.last_gen,
        })
    }

    /// The services of `SERVICES`, by `ServiceInfo::id`, without their dests.
    fn adopt_services(&self) -> Result<BTreeMap<u32, InstalledService>> {
        let mut out = BTreeMap::new();
        for item in self.maps.services.iter() {
            let (key, info) = item?;
            let id = service_id_of(&key)?;
            let svc = InstalledService {
                spec: sketch_spec(id, &info),
                id: info.id,
                region: Region {
                    off: info.table_off,
                    len: info.table_len,
                },
                dests: StdHashMap::new(),
                adopted: true,
            };
            if out.insert(info.id, svc).is_some() {
                bail!("two pinned services share id {}", info.id);
            }
        }
        Ok(out)
    }

    /// Gives each live dest slot to its service; a slot of no service (left
    /// by a daemon that died mid-update) is cleared. Returns both counts.
    fn adopt_dests(
        &mut self,
        services: &mut BTreeMap<u32, InstalledService>,
    ) -> Result<(usize, usize)> {
        let (mut reals, mut orphans) = (0, Vec::new());
        for slot in 0..MAX_DESTS {
            let entry = self.maps.dests.get(&slot, 0)?;
            if entry.gen == 0 {
                continue;
            }
            self.last_gen = self.last_gen.max(entry.gen);
            let key = (
                ip_of(entry.family, &entry.addr),
                u16::from_be(entry.port_be),
            );
            let dest = InstalledDest { slot, entry };
            match services.get_mut(&entry.service_id) {
                Some(svc) if !svc.dests.contains_key(&key) => {
                    svc.dests.insert(key, dest);
                    reals += 1;
                }
                _ => orphans.push(dest),
            }
        }
        for d in &orphans {
            self.maps.dests.set(d.slot, Dest { gen: 0, ..d.entry }, 0)?;
        }
        Ok((reals, orphans.len()))
    }

    /// The number of connection entries and the highest real generation that
    /// any flow, persistence template or flow-cache slot still names. A
    /// cleared slot no longer shows its generation, so without this a new
    /// real could reuse one and inherit stale flows.
    fn highest_gen_in_flows(&self) -> Result<(usize, u32)> {
        // The running program inserts and evicts meanwhile, which can make a
        // hash walk start over: bound it.
        let bound = |m: &MapData| -> Result<usize> { Ok(2 * m.info()?.max_entries() as usize) };
        let mut top = 0;
        let mut connections = 0;
        for item in self.maps.conns.iter().take(bound(self.maps.conns.map())?) {
            top = top.max(item?.1.dest_gen);
            connections += 1;
        }
        let persist: HashMap<&MapData, PersistKey, PersistEntry> =
            HashMap::try_from(self.object_map(maps::PERSIST)?)?;
        for item in persist.iter().take(bound(persist.map())?) {
            top = top.max(item?.1.dest_gen);
        }
        let cache: PerCpuArray<&MapData, FlowCacheSlot> =
            PerCpuArray::try_from(self.object_map(maps::FLOW_CACHE)?)?;
        for idx in 0..FLOW_CACHE_SLOTS {
            for slot in cache.get(&idx, 0)?.iter().filter(|s| s.key.family != 0) {
                top = top.max(slot.entry.dest_gen);
            }
        }
        Ok((connections, top))
    }

    fn object_map(&self, name: &str) -> Result<&aya::maps::Map> {
        self.ebpf
            .map(name)
            .ok_or_else(|| anyhow!("map {name} missing from the XDP object"))
    }

    /// Recounts the VIP filter from the services, fixing any bit that
    /// disagrees with them.
    fn adopt_vip_filter(&mut self) -> Result<()> {
        self.filter_refs.clear();
        let mut words = vec![0u64; self.filter_words.len()];
        for id in self.services.keys() {
            let bit = filter_bit(id.vip);
            *self.filter_refs.entry(bit).or_insert(0) += 1;
            words[(bit / 64) as usize] |= 1 << (bit % 64);
        }
        for (i, &word) in words.iter().enumerate() {
            if self.maps.vip_filter.get(&(i as u32), 0)? != word {
                self.maps.vip_filter.set(i as u32, word, 0)?;
            }
        }
        self.filter_words = words;
        Ok(())
    }
}

impl Drop for XdpDataplane {
    /// A pinned data plane is unpinned (and so detached, once the link's
    /// last descriptor closes with the fields), unless it is kept.
    fn drop(&mut self) {
        let Some(pins) = self.pins.as_ref() else {
            return;
        };
        if !pins.keep {
            if let Err(e) = pins.dir.remove(&pins.specs) {
                log::warn!("removing the data plane's pins: {e:#}");
            }
        } else if pins.link.is_none() && !self.links.is_empty() {
            log::warn!("the XDP attachment is not pinned (netlink): it ends with this process");
        }
    }
}

/// A pool with exactly `regions` in use. (`Pool` has no call to reserve a
/// given region: the gaps between them are allocated in order, then retired,
/// so they come back after the usual grace period.)
fn pool_with(mut regions: Vec<Region>) -> Result<Pool> {
    regions.retain(|r| r.len > 0);
    regions.sort_by_key(|r| r.off);
    let mut pool = Pool::new(SCHED_POOL_SLOTS);
    let mut gaps = Vec::new();
    let mut cursor = 0;
    for r in regions {
        let end = r.off.checked_add(r.len).filter(|&e| e <= SCHED_POOL_SLOTS);
        let Some(end) = end.filter(|_| r.off >= cursor) else {
            bail!("pinned scheduling tables overlap or overflow the pool at {r:?}");
        };
        if r.off > cursor {
            gaps.extend(pool.alloc(r.off - cursor));
        }
        // First fit on a pool used exactly up to `cursor`: lands on `r`.
        if pool.alloc(r.len) != Some(r) {
            bail!("could not reserve pinned scheduling table {r:?}");
        }
        cursor = end;
    }
    for gap in gaps {
        pool.retire(gap);
    }
    Ok(pool)
}

/// Every map holding XVS state must be pinned, or a restart would lose it:
/// a map added to the program needs its line in `pins::map_specs`.
fn check_all_maps_pinned(ebpf: &Ebpf) -> Result<()> {
    let specs = pins::map_specs(0, 0);
    for (name, _) in ebpf.maps() {
        if name.starts_with("XVS_") && !specs.iter().any(|s| s.name == name) {
            bail!("map {name} of the XDP object is missing from pins::map_specs");
        }
    }
    Ok(())
}

fn service_id_of(key: &ServiceKey) -> Result<ServiceId> {
    let proto = match key.proto {
        lb_common::PROTO_TCP => Protocol::Tcp,
        lb_common::PROTO_UDP => Protocol::Udp,
        p => bail!("pinned service with unknown protocol {p}"),
    };
    Ok(ServiceId {
        vip: ip_of(key.family, &key.addr),
        port: u16::from_be(key.port_be),
        proto,
    })
}

/// An adopted service's spec, as far as the maps tell (weights are gone).
fn sketch_spec(id: ServiceId, info: &ServiceInfo) -> ServiceSpec {
    let scheduler = if info.sched_kind == sched_kind::SOURCE_HASH {
        SchedulerKind::Sh {
            fallback: false,
            port: info.flags & service_flags::SH_PORT != 0,
        }
    } else {
        SchedulerKind::Rr
    };
    let persistence = (info.flags & service_flags::PERSISTENT != 0).then(|| Persistence {
        timeout_s: info.persist_timeout_s,
        prefix_len: info.persist_mask.iter().map(|b| b.count_ones() as u8).sum(),
    });
    ServiceSpec {
        id,
        scheduler,
        persistence,
        reals: Vec::new(),
    }
}

/// The reals of adopted dests, in slot order, weight unknown (0).
fn sketch_reals(dests: &StdHashMap<(IpAddr, u16), InstalledDest>) -> Vec<RealSpec> {
    let mut by_slot: Vec<_> = dests.iter().collect();
    by_slot.sort_by_key(|(_, d)| d.slot);
    by_slot
        .into_iter()
        .map(|(&(addr, port), d)| {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&d.entry.mac()[..6]);
            RealSpec {
                addr,
                port,
                weight: 0,
                mac,
                local: d.entry.flags & dest_flags::LOCAL != 0,
            }
        })
        .collect()
}

fn filter_bit(vip: IpAddr) -> u32 {
    let (family, addr) = addr_bytes(vip);
    vip_filter_bit(family, lb_common::addr_words(&addr))
}

/// CLOCK_MONOTONIC in ns: the clock of the program's bpf_ktime_get_coarse_ns.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Removes a pin; one already gone is fine.
fn remove_pin(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("unpinning {}", path.display()))
        }
        _ => Ok(()),
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

    fn set_lease(&mut self, lease: Option<std::time::Duration>) -> Result<()> {
        self.global.active_until_ns = match lease {
            Some(d) => monotonic_ns().saturating_add(d.as_nanos() as u64),
            None => 0,
        };
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
                template: false,
            });
        }
        out.extend(self.templates(now, &reals)?);
        Ok(out)
    }
}

impl XdpDataplane {
    /// Live persistence templates, listed as IPVS lists them: the masked
    /// client with port 0, the service, and the real it pins clients to.
    fn templates(
        &self,
        now: u64,
        reals: &StdHashMap<u32, (u32, IpAddr, u16)>,
    ) -> Result<Vec<Connection>> {
        let by_id: StdHashMap<u32, &ServiceSpec> =
            self.services.values().map(|s| (s.id, &s.spec)).collect();
        let persist: HashMap<&MapData, PersistKey, PersistEntry> =
            HashMap::try_from(self.object_map(maps::PERSIST)?)?;
        // The program inserts meanwhile, which can restart a hash walk: bound it.
        let bound = 2 * persist.map().info()?.max_entries() as usize;
        let mut out = Vec::new();
        for item in persist.iter().take(bound) {
            let (key, tpl) = item?;
            let Some(spec) = by_id.get(&key.service_id) else {
                continue;
            };
            let Some(p) = spec.persistence else {
                continue;
            };
            let timeout_ns = p.timeout_s as u64 * 1_000_000_000;
            let idle = now.saturating_sub(tpl.last_used_ns);
            let real = reals
                .get(&tpl.dest)
                .filter(|(gen, _, _)| *gen == tpl.dest_gen)
                .map(|&(_, a, port)| (a, port));
            if idle > timeout_ns || real.is_none() {
                continue;
            }
            out.push(Connection {
                proto: spec.id.proto,
                client: (ip_of(key.family, &key.caddr), 0),
                virtual_: (spec.id.vip, spec.id.port),
                real,
                state: ConnState::None,
                expires_in_s: (timeout_ns - idle) / 1_000_000_000,
                template: true,
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
