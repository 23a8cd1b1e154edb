//! Every map the data plane uses. Sizes are defaults; the loader overrides
//! the table sizes from the daemon's configuration.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
};
use lb_common::{
    ConnEntry, ConnKey, Counters, Dest, FlowCacheSlot, GlobalConfig, PersistEntry, PersistKey,
    ServiceInfo, ServiceKey, DEFAULT_CONN_TABLE, DEFAULT_PERSIST_TABLE, FLOW_CACHE_SLOTS,
    MAX_DESTS, MAX_IFACES, MAX_SERVICES, SCHED_POOL_SLOTS, VERDICT_COUNT, VIP_FILTER_WORDS,
};

/// Index 0: director-wide switches and timeouts.
#[map(name = "XVS_GLOBAL")]
pub static XVS_GLOBAL: Array<GlobalConfig> = Array::with_max_entries(1, 0);

/// Bitmap over destination addresses: a clear bit means "not a VIP".
#[map(name = "XVS_VIP_FILTER")]
pub static XVS_VIP_FILTER: Array<u64> = Array::with_max_entries(VIP_FILTER_WORDS, 0);

#[map(name = "XVS_SERVICES")]
pub static XVS_SERVICES: HashMap<ServiceKey, ServiceInfo> =
    HashMap::with_max_entries(MAX_SERVICES, 0);

#[map(name = "XVS_DESTS")]
pub static XVS_DESTS: Array<Dest> = Array::with_max_entries(MAX_DESTS, 0);

/// Scheduling tables of all services, back to back (see `ServiceInfo`).
#[map(name = "XVS_SCHED_POOL")]
pub static XVS_SCHED_POOL: Array<u32> = Array::with_max_entries(SCHED_POOL_SLOTS, 0);

/// Per-CPU position in each service's ring, so rr/wrr need no atomics.
#[map(name = "XVS_SCHED_CURSOR")]
pub static XVS_SCHED_CURSOR: PerCpuArray<u32> = PerCpuArray::with_max_entries(MAX_SERVICES, 0);

#[map(name = "XVS_CONNS")]
pub static XVS_CONNS: LruHashMap<ConnKey, ConnEntry> =
    LruHashMap::with_max_entries(DEFAULT_CONN_TABLE, 0);

/// Direct-mapped, per-CPU copies of recently used `XVS_CONNS` entries. An
/// array lookup is inlined by the verifier, so a hit skips the hash table.
#[map(name = "XVS_FLOW_CACHE")]
pub static XVS_FLOW_CACHE: PerCpuArray<FlowCacheSlot> =
    PerCpuArray::with_max_entries(FLOW_CACHE_SLOTS, 0);

#[map(name = "XVS_PERSIST")]
pub static XVS_PERSIST: LruHashMap<PersistKey, PersistEntry> =
    LruHashMap::with_max_entries(DEFAULT_PERSIST_TABLE, 0);

#[map(name = "XVS_SERVICE_STATS")]
pub static XVS_SERVICE_STATS: PerCpuArray<Counters> =
    PerCpuArray::with_max_entries(MAX_SERVICES, 0);

#[map(name = "XVS_DEST_STATS")]
pub static XVS_DEST_STATS: PerCpuArray<Counters> = PerCpuArray::with_max_entries(MAX_DESTS, 0);

/// Packets per `lb_common::Verdict`.
#[map(name = "XVS_VERDICTS")]
pub static XVS_VERDICTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(VERDICT_COUNT, 0);

/// Slot `ifindex % MAX_IFACES`: the attached interface's MAC, used as the
/// source of forwarded frames.
#[map(name = "XVS_IFACE_MACS")]
pub static XVS_IFACE_MACS: Array<lb_common::IfaceMac> = Array::with_max_entries(MAX_IFACES, 0);
