//! Ready-made services and a loaded, active data plane for tests and benches.

use std::net::IpAddr;
use xvs::{
    dataplane::{Dataplane, XdpDataplane, XdpOptions},
    model::{Persistence, Protocol, RealSpec, SchedulerKind, ServiceId, ServiceSpec},
};

/// The MAC tests give real number `n`.
pub fn real_mac(n: u8) -> [u8; 6] {
    [0x02, 0xee, 0, 0, 0, n]
}

pub fn real(addr: &str, port: u16, weight: u32, mac: [u8; 6]) -> RealSpec {
    RealSpec {
        addr: addr.parse().unwrap(),
        port,
        weight,
        mac,
        local: false,
    }
}

pub fn service(
    vip: &str,
    port: u16,
    proto: Protocol,
    scheduler: SchedulerKind,
    reals: Vec<RealSpec>,
) -> ServiceSpec {
    ServiceSpec {
        id: ServiceId {
            vip: vip.parse::<IpAddr>().unwrap(),
            port,
            proto,
        },
        scheduler,
        persistence: None,
        reals,
    }
}

pub fn persistent(mut svc: ServiceSpec, timeout_s: u32, prefix_len: u8) -> ServiceSpec {
    svc.persistence = Some(Persistence {
        timeout_s,
        prefix_len,
    });
    svc
}

/// A freshly loaded data plane carrying `services`, active (MASTER).
/// Small tables keep test loads quick.
pub fn active_dataplane(services: &[ServiceSpec]) -> XdpDataplane {
    let mut dp = XdpDataplane::load(XdpOptions {
        conn_table_size: 1 << 17,
        persist_table_size: 1 << 14,
    })
    .expect("load XDP program (are you root?)");
    dp.apply(services).expect("apply services");
    dp.set_active(true).expect("set active");
    dp
}

/// Pins the calling thread to `cpu`: BPF_PROG_TEST_RUN runs on the calling
/// CPU, and the data plane's rr cursor and flow cache are per CPU.
pub fn pin_to_cpu(cpu: usize) {
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let rc = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        assert_eq!(rc, 0, "sched_setaffinity");
    }
}

/// Pins the calling thread to the CPU it is running on.
pub fn pin_to_one_cpu() {
    let cpu = unsafe { libc::sched_getcpu() };
    assert!(cpu >= 0, "sched_getcpu");
    pin_to_cpu(cpu as usize);
}
