//! `xvsadm realserver up|down|status` against the kernel, each test in its
//! own throw-away network namespace (root only), deleted even when it fails.

use std::{
    fs::{self},
    net::IpAddr,
    path::{Path, PathBuf},
};

use xvs::realserver::{RealServer, SysctlOutcome, VipOutcome};

// ---------------------------------------------------------------------------
// Namespaces and state files

mod netns_common;

/// A network namespace, and a state file, that live as long as this value.
struct Netns {
    ns: netns_common::Netns,
    state: PathBuf,
}

impl std::ops::Deref for Netns {
    type Target = netns_common::Netns;
    fn deref(&self) -> &netns_common::Netns {
        &self.ns
    }
}

impl Netns {
    fn new(tag: &str) -> Self {
        let ns = netns_common::Netns::new(tag);
        let state = std::env::temp_dir().join(format!("{}/realserver.state", ns.name));
        let _ = fs::remove_dir_all(state.parent().unwrap());
        let netns = Self { ns, state };
        // A new namespace may inherit the host's values
        // (net.core.devconf_inherit_init_net): start from the defaults.
        netns.set_arp_sysctls([0; 4]);
        netns
    }

    fn realserver(&self) -> RealServer {
        RealServer::new(&self.state)
    }

    /// The addresses on `lo` as `ip -j addr` shows them: (address, prefix, label).
    fn lo_addrs(&self) -> Vec<(IpAddr, u64, Option<String>)> {
        let json: serde_json::Value =
            serde_json::from_str(&self.ip(&["-j", "addr", "show", "dev", "lo"])).unwrap();
        json[0]["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .map(|info| {
                (
                    info["local"].as_str().unwrap().parse().unwrap(),
                    info["prefixlen"].as_u64().unwrap(),
                    info["label"].as_str().map(str::to_string),
                )
            })
            .collect()
    }

    fn has_on_lo(&self, vip: &str, prefix_len: u64) -> bool {
        self.lo_addrs()
            .iter()
            .any(|(addr, len, _)| *addr == ip(vip) && *len == prefix_len)
    }

    /// lo/arp_ignore, lo/arp_announce, all/arp_ignore, all/arp_announce.
    fn arp_sysctls(&self) -> [i64; 4] {
        self.run(|| ARP_KEYS.map(read_sysctl))
    }

    fn set_arp_sysctls(&self, values: [i64; 4]) {
        self.run(|| {
            for (key, value) in ARP_KEYS.iter().zip(values) {
                fs::write(sysctl_path(key), format!("{value}\n")).unwrap();
            }
        })
    }
}

impl Drop for Netns {
    // The namespace goes with `ns`; the state directory is ours.
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(self.state.parent().unwrap());
    }
}

const ARP_KEYS: [&str; 4] = [
    "lo/arp_ignore",
    "lo/arp_announce",
    "all/arp_ignore",
    "all/arp_announce",
];
const WANTED: [i64; 4] = [1, 2, 1, 2];

fn sysctl_path(key: &str) -> PathBuf {
    Path::new("/proc/sys/net/ipv4/conf").join(key)
}

fn read_sysctl(key: &str) -> i64 {
    fs::read_to_string(sysctl_path(key))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn ips(texts: &[&str]) -> Vec<IpAddr> {
    texts.iter().map(|text| ip(text)).collect()
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn up_is_idempotent_and_down_restores_the_original_values() {
    let netns = Netns::new("rt");
    // Not all zero, so that restoring is told apart from resetting.
    let original = [0, 0, 0, 1];
    netns.set_arp_sysctls(original);
    let vips = ips(&["10.66.0.100", "fd66::100"]);
    let realserver = netns.realserver();

    let first = netns.run(|| realserver.up(&vips)).unwrap();
    println!("{first}");
    assert!(first.changed());
    assert!(netns.has_on_lo("10.66.0.100", 32));
    assert!(netns.has_on_lo("fd66::100", 128));
    let labels: Vec<_> = netns
        .lo_addrs()
        .into_iter()
        .filter_map(|(_, _, label)| label)
        .collect();
    assert!(labels.contains(&"lo:xvs".to_string()), "{labels:?}");
    assert_eq!(netns.arp_sysctls(), WANTED);
    assert!(netns.state.exists());

    let before_second = (netns.lo_addrs(), netns.arp_sysctls());
    let second = netns.run(|| realserver.up(&vips)).unwrap();
    println!("{second}");
    assert!(!second.changed());
    assert!(second.to_string().contains("nothing to change"), "{second}");
    assert_eq!((netns.lo_addrs(), netns.arp_sysctls()), before_second);

    let status = netns.run(|| realserver.status(&vips)).unwrap();
    println!("{status}");
    assert!(status.is_ok(), "{status}");
    assert_eq!(status.sysctls.len(), 4);

    let down = netns.run(|| realserver.down(&vips)).unwrap();
    println!("{down}");
    assert!(down.changed());
    assert!(!netns.has_on_lo("10.66.0.100", 32));
    assert!(!netns.has_on_lo("fd66::100", 128));
    assert_eq!(netns.arp_sysctls(), original);
    assert!(!netns.state.exists(), "nothing left to undo, no state file");

    let again = netns.run(|| realserver.down(&vips)).unwrap();
    assert!(!again.changed(), "{again}");
    let status = netns.run(|| realserver.status(&vips)).unwrap();
    println!("{status}");
    assert!(!status.is_ok());
    assert!(status
        .vips
        .iter()
        .all(|line| line.outcome == VipOutcome::Missing));
}

#[test]
fn a_vip_already_on_lo_before_up_is_left_there_by_down() {
    let netns = Netns::new("pre");
    netns.ip(&["addr", "add", "10.66.0.7/32", "dev", "lo"]);
    let vips = ips(&["10.66.0.7", "10.66.0.8"]);
    let realserver = netns.realserver();

    let up = netns.run(|| realserver.up(&vips)).unwrap();
    println!("{up}");
    assert_eq!(
        up.vips[0].outcome,
        VipOutcome::AlreadyOnLo {
            prefix_len: 32,
            added_by_xvs: false
        }
    );
    assert_eq!(up.vips[1].outcome, VipOutcome::Added { prefix_len: 32 });

    let down = netns.run(|| realserver.down(&vips)).unwrap();
    println!("{down}");
    assert_eq!(down.vips[0].outcome, VipOutcome::LeftInPlace);
    assert_eq!(down.vips[1].outcome, VipOutcome::Removed);
    assert!(netns.has_on_lo("10.66.0.7", 32));
    assert!(!netns.has_on_lo("10.66.0.8", 32));
    assert_eq!(netns.arp_sysctls(), [0; 4]);
}

#[test]
fn down_without_up_touches_nothing() {
    let netns = Netns::new("nup");
    netns.ip(&["addr", "add", "10.66.0.9/32", "dev", "lo"]);
    netns.set_arp_sysctls(WANTED);
    let down = netns
        .run(|| netns.realserver().down(&ips(&["10.66.0.9"])))
        .unwrap();
    println!("{down}");
    assert_eq!(down.vips[0].outcome, VipOutcome::NotManaged);
    assert!(!down.changed());
    assert!(netns.has_on_lo("10.66.0.9", 32));
    assert_eq!(netns.arp_sysctls(), WANTED);
}

#[test]
fn sysctls_stay_while_another_ipv4_vip_is_up() {
    let netns = Netns::new("two");
    let realserver = netns.realserver();
    netns.run(|| realserver.up(&ips(&["10.66.0.1"]))).unwrap();
    let second = netns.run(|| realserver.up(&ips(&["10.66.0.2"]))).unwrap();
    assert!(second
        .sysctls
        .iter()
        .all(|line| matches!(line.outcome, SysctlOutcome::AlreadySet { .. })));

    let first_down = netns.run(|| realserver.down(&ips(&["10.66.0.1"]))).unwrap();
    println!("{first_down}");
    assert!(!netns.has_on_lo("10.66.0.1", 32));
    assert!(netns.has_on_lo("10.66.0.2", 32));
    assert_eq!(netns.arp_sysctls(), WANTED, "10.66.0.2 still needs them");
    assert!(first_down
        .sysctls
        .iter()
        .all(|line| matches!(line.outcome, SysctlOutcome::StillNeeded { .. })));

    netns.run(|| realserver.down(&ips(&["10.66.0.2"]))).unwrap();
    assert_eq!(netns.arp_sysctls(), [0; 4]);
    assert!(!netns.state.exists());
}

#[test]
fn ipv6_vips_need_no_arp_sysctls() {
    let netns = Netns::new("v6");
    let realserver = netns.realserver();
    let up = netns.run(|| realserver.up(&ips(&["fd66::5"]))).unwrap();
    println!("{up}");
    assert!(up.sysctls.is_empty());
    assert_eq!(netns.arp_sysctls(), [0; 4]);
    assert!(netns
        .run(|| realserver.status(&ips(&["fd66::5"])))
        .unwrap()
        .is_ok());
    netns.run(|| realserver.down(&ips(&["fd66::5"]))).unwrap();
    assert!(!netns.has_on_lo("fd66::5", 128));
}

#[test]
fn status_names_what_is_missing_or_wrong() {
    let netns = Netns::new("st");
    // The mistake of seed 004: the VIP on lo with its subnet's netmask.
    netns.ip(&["addr", "add", "10.66.0.20/24", "dev", "lo"]);
    netns.set_arp_sysctls([1, 2, 0, 2]);
    let status = netns
        .run(|| {
            netns
                .realserver()
                .status(&ips(&["10.66.0.20", "10.66.0.21"]))
        })
        .unwrap();
    let text = status.to_string();
    println!("{text}");
    assert!(!status.is_ok());
    assert!(
        text.contains("10.66.0.20: on lo as 10.66.0.20/24: WRONG"),
        "{text}"
    );
    assert!(text.contains("10.66.0.21: MISSING"), "{text}");
    assert!(
        text.contains("net.ipv4.conf.all.arp_ignore: 0: WRONG, must be 1"),
        "{text}"
    );
    assert!(
        text.contains("net.ipv4.conf.lo.arp_ignore: 1, ok"),
        "{text}"
    );
    assert!(text.ends_with("NOT ready (3 problem(s) above)"), "{text}");

    // `up` does not fix it behind the operator's back, but says so.
    let up = netns
        .run(|| netns.realserver().up(&ips(&["10.66.0.20"])))
        .unwrap();
    let text = up.to_string();
    println!("{text}");
    assert!(
        text.contains("already on lo as 10.66.0.20/24, left as it is: WRONG"),
        "{text}"
    );
    assert!(netns.has_on_lo("10.66.0.20", 24));
}

#[test]
fn addresses_that_cannot_be_vips_are_refused_before_any_change() {
    let netns = Netns::new("bad");
    let realserver = netns.realserver();
    for bad in [
        "127.0.0.1",
        "0.0.0.0",
        "224.0.0.18",
        "::1",
        "255.255.255.255",
    ] {
        let error = netns
            .run(|| realserver.up(&ips(&["10.66.0.1", bad])))
            .unwrap_err();
        assert!(error.to_string().contains(bad), "{error}");
    }
    assert!(!netns.has_on_lo("10.66.0.1", 32));
    assert_eq!(netns.arp_sysctls(), [0; 4]);
}
