//! Pinned data planes: a data plane kept on drop goes on running from its
//! bpffs pins, and the next one loaded on the same pin directory adopts it
//! without losing a flow; a clean drop leaves nothing behind.
//!
//! Needs root (bpf, netns). Mounts bpffs on /sys/fs/bpf if nothing is
//! mounted there (as systemd does at boot). Every test pins under its own
//! /sys/fs/bpf/xvs/test-<pid>-<n>, removed by a guard, pass or fail. Run with
//! `cargo test --release -p xvs-tests --test pins -- --nocapture`.

use anyhow::{ensure, Context, Result};
use aya::programs::links::{FdLink, PinnedLink};
use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};
use xvs::{
    dataplane::{
        pins::{self, attached_xdp_programs},
        AttachMode, Dataplane, XdpDataplane, XdpOptions,
    },
    model::{Protocol, RealSpec, SchedulerKind, ServiceSpec},
};
use xvs_tests::{fixtures::*, netns::Lab, packet::*};

const XDP_TX: u32 = 3;
const VIP: &str = "10.0.0.100";
const PORT: u16 = 80;

/// A fresh pin directory; dropping it removes whatever is left in it.
struct PinDirGuard {
    path: PathBuf,
}

impl PinDirGuard {
    fn new() -> PinDirGuard {
        static N: AtomicUsize = AtomicUsize::new(0);
        // Once: parallel tests racing to mount would stack two bpffs.
        static BPFFS: std::sync::Once = std::sync::Once::new();
        BPFFS.call_once(|| {
            pins::ensure_bpffs(Path::new(pins::BPFFS_ROOT)).expect("bpffs");
        });
        let n = N.fetch_add(1, Ordering::SeqCst);
        let name = format!("test-{}-{n}", std::process::id());
        PinDirGuard {
            path: pins::instance_dir(&name).unwrap(),
        }
    }
}

impl Drop for PinDirGuard {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(&self.path) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

fn opts() -> XdpOptions {
    XdpOptions {
        conn_table_size: 1 << 14,
        persist_table_size: 1 << 12,
    }
}

fn load(dir: &PinDirGuard) -> XdpDataplane {
    XdpDataplane::load_pinned(opts(), &dir.path).expect("load_pinned (are you root?)")
}

fn real_n(n: u8) -> RealSpec {
    real(&format!("10.0.1.{n}"), PORT, 1, real_mac(n))
}

fn rr(reals: Vec<RealSpec>) -> ServiceSpec {
    service(VIP, PORT, Protocol::Tcp, SchedulerKind::Rr, reals)
}

fn client(n: u8) -> IpAddr {
    format!("10.9.0.{n}").parse().unwrap()
}

fn tcp(n: u8, flags: u8) -> Vec<u8> {
    Frame::tcp(client(n), 40000, VIP.parse().unwrap(), PORT, flags).build()
}

/// The frame must be forwarded (XDP_TX) with only its MACs changed; returns
/// the real's MAC.
#[track_caller]
fn forward(dp: &XdpDataplane, frame: &[u8]) -> [u8; 6] {
    let (action, out) = dp.test_run(frame).expect("BPF_PROG_TEST_RUN");
    assert_eq!(action, XDP_TX, "expected XDP_TX");
    let mac: [u8; 6] = out[0..6].try_into().unwrap();
    assert_eq!(out, expected_dr(frame, mac, DIRECTOR_MAC));
    mac
}

#[test]
fn kept_data_plane_is_adopted_without_losing_flows() {
    pin_to_one_cpu();
    let dir = PinDirGuard::new();
    const CLIENTS: u8 = 6;

    let mut dp = load(&dir);
    assert_eq!(dp.adoption(), None, "a fresh pin directory adopts nothing");
    dp.apply(&[rr(vec![real_n(1), real_n(2)])]).unwrap();
    dp.set_active(true).unwrap();
    let reals: Vec<[u8; 6]> = (1..=CLIENTS)
        .map(|c| forward(&dp, &tcp(c, TCP_SYN)))
        .collect();
    assert!(reals.contains(&real_mac(1)) && reals.contains(&real_mac(2)));
    dp.keep_on_drop(true).unwrap();
    drop(dp);
    assert!(dir.path.join("XVS_CONNS").exists(), "kept maps stay pinned");

    // A new daemon: same pins, and a third real listed first, which moves
    // every rr position — only the connection table can keep the flows.
    let mut dp = load(&dir);
    let adopted = dp.adoption().cloned().expect("adopted the kept data plane");
    assert_eq!(
        (
            adopted.services,
            adopted.reals,
            adopted.orphan_reals,
            adopted.connections
        ),
        (1, 2, 0, CLIENTS as usize)
    );
    dp.apply(&[rr(vec![real_n(3), real_n(1), real_n(2)])])
        .unwrap();
    for (c, real) in (1..=CLIENTS).zip(&reals) {
        assert_eq!(
            forward(&dp, &tcp(c, TCP_ACK)),
            *real,
            "client {c}'s flow changed real"
        );
    }
    // Counters carried on: 6 SYNs and 6 ACKs, 6 connections.
    let stats = dp.stats().unwrap();
    assert_eq!(stats.len(), 1);
    let svc = &stats[0];
    assert_eq!((svc.counters.conns, svc.counters.packets), (6, 12));
    let real1 = svc.reals.iter().find(|r| r.addr == real_n(1).addr).unwrap();
    let expected = reals.iter().filter(|m| **m == real_mac(1)).count() as u64;
    assert_eq!(real1.counters.packets, 2 * expected);

    // New flows use the new real too.
    let new: Vec<[u8; 6]> = (100..103).map(|c| forward(&dp, &tcp(c, TCP_SYN))).collect();
    assert!(new.contains(&real_mac(3)), "new flows reach the added real");
    drop(dp);
    assert!(!dir.path.exists(), "a clean drop removes the pins");
}

/// A real removed before the restart leaves flows naming its slot and
/// generation; a real added after it gets that slot, but must not inherit
/// those flows (they are scheduled anew, counted as new connections).
#[test]
fn cleared_slot_generation_is_not_reused_after_adoption() {
    pin_to_one_cpu();
    let dir = PinDirGuard::new();
    let mut dp = load(&dir);
    dp.apply(&[rr(vec![real_n(1), real_n(2)])]).unwrap();
    dp.set_active(true).unwrap();
    let on_real2 = (1..=2)
        .find(|&c| forward(&dp, &tcp(c, TCP_SYN)) == real_mac(2))
        .expect("rr used real 2");
    dp.apply(&[rr(vec![real_n(1)])]).unwrap();
    dp.keep_on_drop(true).unwrap();
    drop(dp);

    let mut dp = load(&dir);
    assert_eq!(dp.adoption().unwrap().reals, 1);
    dp.apply(&[rr(vec![real_n(1), real_n(3)])]).unwrap();
    let conns = |dp: &XdpDataplane| dp.stats().unwrap()[0].counters.conns;
    let before = conns(&dp);
    forward(&dp, &tcp(on_real2, TCP_ACK));
    assert_eq!(
        conns(&dp),
        before + 1,
        "the stale flow was not scheduled anew"
    );
}

#[test]
fn clean_drop_removes_the_pins() {
    let dir = PinDirGuard::new();
    let mut dp = load(&dir);
    dp.apply(&[rr(vec![real_n(1)])]).unwrap();
    assert!(dir.path.join("XVS_SERVICES").exists());
    drop(dp);
    assert!(!dir.path.exists(), "{} is left behind", dir.path.display());
}

#[test]
fn one_data_plane_per_pin_directory() {
    let dir = PinDirGuard::new();
    let dp = load(&dir);
    let err = XdpDataplane::load_pinned(opts(), &dir.path)
        .err()
        .expect("a second data plane on the same pins must fail");
    assert!(format!("{err:#}").contains("in use"), "{err:#}");
    drop(dp);
}

#[test]
fn adopted_connection_table_keeps_its_size() {
    let dir = PinDirGuard::new();
    let mut dp = load(&dir);
    dp.keep_on_drop(true).unwrap();
    drop(dp);
    let bigger = XdpOptions {
        conn_table_size: 1 << 15,
        ..opts()
    };
    let dp = XdpDataplane::load_pinned(bigger, &dir.path).unwrap();
    assert_eq!(dp.conn_table_size().unwrap(), 1 << 14);
}

#[test]
fn unpinned_data_plane_cannot_be_kept() {
    let mut dp = XdpDataplane::load(opts()).unwrap();
    assert!(dp.keep_on_drop(true).is_err());
}

/// The XDP program ids `ip` shows on `iface`, and the mode it names.
fn ip_link_xdp(ns: &xvs_tests::netns::Netns, iface: &str) -> Result<Option<String>> {
    let out = ns.ip(&["-d", "link", "show", "dev", iface])?;
    Ok(out
        .split_whitespace()
        .find(|w| w.starts_with("xdp"))
        .map(str::to_string))
}

fn link_id(path: &Path) -> Result<u32> {
    let link: FdLink = PinnedLink::from_pin(path)?.into();
    Ok(link.info()?.id())
}

/// Polls the interface's XDP programs on a thread in `ns` until stopped;
/// the thread fails if it ever sees none.
fn watch_xdp(ns: &str, iface: &str) -> (Arc<AtomicBool>, std::thread::JoinHandle<Result<usize>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (flag, iface) = (stop.clone(), iface.to_string());
    let thread = xvs_tests::netns::spawn_in_netns(ns, move || {
        let ifindex = xvs::netlink::ifindex(&iface)?;
        let mut polls = 0;
        while !flag.load(Ordering::SeqCst) {
            let progs = attached_xdp_programs(ifindex)?;
            ensure!(
                !progs.is_empty(),
                "{iface} had no XDP program after {polls} polls"
            );
            polls += 1;
        }
        Ok(polls)
    });
    (stop, thread)
}

#[test]
fn kept_attachment_stays_and_is_replaced_in_place() -> Result<()> {
    let dir = PinDirGuard::new();
    let mut lab = Lab::new("xpn");
    let ns = lab.add_netns("dp")?;
    ns.ip(&["link", "add", "xv0", "type", "veth", "peer", "name", "xv1"])?;
    ns.ip(&["link", "set", "xv0", "up"])?;
    ns.ip(&["link", "set", "xv1", "up"])?;
    let link_pin = dir.path.join(pins::LINK_PIN);

    let mut dp = load(&dir);
    let mode = ns.run(|| dp.attach("xv0", AttachMode::Native))?;
    assert_eq!(mode, AttachMode::Native);
    let first = ns.run(|| Ok(attached_xdp_programs(xvs::netlink::ifindex("xv0")?)?))?;
    let link = link_id(&link_pin).context("the link is pinned")?;
    dp.keep_on_drop(true)?;
    drop(dp);

    // No daemon: still attached, by the pinned link.
    let shown = ip_link_xdp(&ns, "xv0")?;
    assert!(
        shown.is_some(),
        "kept XDP program vanished from `ip -d link`"
    );
    println!("after keep: {shown:?}, programs {first:?}");
    let kept = ns.run(|| Ok(attached_xdp_programs(xvs::netlink::ifindex("xv0")?)?))?;
    assert_eq!(kept, first);

    // The next data plane swaps its program into the same link: never a
    // moment without XDP (the watcher), the same link, a new program.
    let (stop, watcher) = watch_xdp(ns.name(), "xv0");
    std::thread::sleep(Duration::from_millis(20));
    let mut dp = load(&dir);
    assert!(dp.adoption().is_some());
    let mode = ns.run(|| dp.attach("xv0", AttachMode::Skb))?;
    std::thread::sleep(Duration::from_millis(20));
    stop.store(true, Ordering::SeqCst);
    let polls = watcher.join().unwrap()?;
    println!("watched {polls} netlink polls through the swap");
    assert_eq!(mode, AttachMode::Native, "the running link keeps its mode");
    assert_eq!(link_id(&link_pin)?, link, "the link itself was replaced");
    let second = ns.run(|| Ok(attached_xdp_programs(xvs::netlink::ifindex("xv0")?)?))?;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].0, AttachMode::Native);
    assert_ne!(second[0].1, first[0].1, "the new program replaced the old");

    // A clean stop detaches and unpins.
    drop(dp);
    assert_eq!(
        ip_link_xdp(&ns, "xv0")?,
        None,
        "still attached after a clean drop"
    );
    assert!(!dir.path.exists());
    Ok(())
}

#[test]
fn pinned_link_of_another_interface_is_replaced() -> Result<()> {
    let dir = PinDirGuard::new();
    let mut lab = Lab::new("xpm");
    let ns = lab.add_netns("dp")?;
    ns.ip(&["link", "add", "xv0", "type", "veth", "peer", "name", "xv1"])?;
    ns.ip(&["link", "set", "xv0", "up"])?;
    ns.ip(&["link", "set", "xv1", "up"])?;

    let mut dp = load(&dir);
    ns.run(|| dp.attach("xv0", AttachMode::Skb))?;
    dp.keep_on_drop(true)?;
    drop(dp);
    let old_link = link_id(&dir.path.join(pins::LINK_PIN))?;

    // Restarted for another interface: the new one is served, the old freed.
    let mut dp = load(&dir);
    let mode = ns.run(|| dp.attach("xv1", AttachMode::Skb))?;
    assert_eq!(mode, AttachMode::Skb);
    assert!(ip_link_xdp(&ns, "xv1")?.is_some(), "xv1 not attached");
    assert_eq!(ip_link_xdp(&ns, "xv0")?, None, "xv0 still attached");
    assert_ne!(link_id(&dir.path.join(pins::LINK_PIN))?, old_link);
    drop(dp);
    assert_eq!(ip_link_xdp(&ns, "xv1")?, None);
    Ok(())
}
