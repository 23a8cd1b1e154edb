//! XVS userspace library: the service model, schedulers, and the data planes
//! that carry it.

pub mod config;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod health;
pub mod ipvsadm;
pub mod model;
pub mod netlink;
pub mod pool;
pub mod realserver;
pub mod scheduler;
pub mod vrrp;

/// The XDP objects, embedded at build time (see build.rs).
pub mod objects {
    /// The balancer itself.
    pub static XVS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xvs.bpf.o"));
    /// `xvs_pass` (veth peer stub, bench floor) and `xvs_mac_swap_tx` (bench baseline).
    pub static BASELINE: &[u8] =
        aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xvs-baseline.bpf.o"));
}
