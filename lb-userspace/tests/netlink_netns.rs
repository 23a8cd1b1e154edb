//! The netlink layer against the kernel, in throw-away network namespaces
//! (root only). Each test makes its own namespaces, named after the process
//! and the test, and deletes them even when it fails.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use xvs::netlink::{
    self, NeighbourChange, NeighbourWatcher, Resolution, NUD_PERMANENT, NUD_REACHABLE,
};

// ---------------------------------------------------------------------------
// Namespaces

mod netns_common;
use netns_common::Netns;

/// Two namespaces joined by a veth pair: `near` (the director's side) with
/// 10.77.0.1/24 and fd77::1/64, `far` with .2 and ::2.
struct Link {
    near: Netns,
    far: Netns,
}

const NEAR4: &str = "10.77.0.1";
const FAR4: &str = "10.77.0.2";
const NEAR6: &str = "fd77::1";
const FAR6: &str = "fd77::2";

impl Link {
    fn new(tag: &str) -> Self {
        let near = Netns::new(&format!("{tag}n"));
        let far = Netns::new(&format!("{tag}f"));
        near.ip(&[
            "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", &far.name,
        ]);
        for (netns, dev, v4, v6) in [(&near, "v0", NEAR4, NEAR6), (&far, "v1", FAR4, FAR6)] {
            netns.ip(&["addr", "add", &format!("{v4}/24"), "dev", dev]);
            netns.ip(&["addr", "add", &format!("{v6}/64"), "dev", dev, "nodad"]);
            netns.ip(&["link", "set", dev, "up"]);
        }
        Self { near, far }
    }

    fn far_mac(&self) -> [u8; 6] {
        let json: serde_json::Value =
            serde_json::from_str(&self.far.ip(&["-j", "link", "show", "v1"])).unwrap();
        parse_mac(json[0]["address"].as_str().unwrap())
    }
}

fn parse_mac(text: &str) -> [u8; 6] {
    let bytes: Vec<u8> = text
        .split(':')
        .map(|byte| u8::from_str_radix(byte, 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

// ---------------------------------------------------------------------------
// Interfaces and addresses

#[test]
fn ifindex_finds_interfaces_and_names_a_missing_one() {
    let netns = Netns::new("ifx");
    netns.run(|| {
        assert_eq!(netlink::ifindex("lo").unwrap(), 1);
        let error = netlink::ifindex("nosuch0").unwrap_err();
        assert_eq!(error.raw_os_error(), None, "context replaces the raw error");
        assert!(error.to_string().contains("nosuch0"), "{error}");
    });
}

#[test]
fn addresses_are_added_listed_and_deleted_idempotently() {
    let netns = Netns::new("addr");
    let vip4 = ip("10.66.0.100");
    let vip6 = ip("fd66::100");
    netns.run(|| {
        let lo = netlink::ifindex("lo").unwrap();
        for _ in 0..2 {
            netlink::add_addr(lo, vip4, 32, Some("lo:xvs")).unwrap();
            netlink::add_addr(lo, vip6, 128, Some("ignored for IPv6")).unwrap();
        }
        let on_lo = netlink::list_addrs(Some(lo)).unwrap();
        let v4 = on_lo
            .iter()
            .find(|entry| entry.addr == vip4)
            .expect("IPv4 listed");
        assert_eq!(
            (v4.ifindex, v4.prefix_len, v4.label.as_deref()),
            (lo, 32, Some("lo:xvs"))
        );
        let v6 = on_lo
            .iter()
            .find(|entry| entry.addr == vip6)
            .expect("IPv6 listed");
        assert_eq!((v6.prefix_len, v6.label.as_deref()), (128, None));
        assert!(netlink::list_addrs(None).unwrap().contains(v4));
        assert!(netlink::list_addrs(Some(lo + 1000)).unwrap().is_empty());
    });

    let shown = netns.ip(&["-j", "addr", "show", "dev", "lo"]);
    assert!(
        shown.contains(r#""local":"10.66.0.100","prefixlen":32"#),
        "{shown}"
    );
    assert!(shown.contains(r#""label":"lo:xvs""#), "{shown}");
    assert!(
        shown.contains(r#""local":"fd66::100","prefixlen":128"#),
        "{shown}"
    );

    netns.run(|| {
        let lo = netlink::ifindex("lo").unwrap();
        for _ in 0..2 {
            netlink::del_addr(lo, vip4, 32).unwrap();
            netlink::del_addr(lo, vip6, 128).unwrap();
        }
        let left = netlink::list_addrs(Some(lo)).unwrap();
        assert!(
            left.iter()
                .all(|entry| entry.addr != vip4 && entry.addr != vip6),
            "{left:?}"
        );
    });
}

#[test]
fn address_errors_name_the_request_and_the_address() {
    let netns = Netns::new("aerr");
    netns.run(|| {
        let error = netlink::add_addr(4242, ip("10.66.0.1"), 32, None).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("RTM_NEWADDR 10.66.0.1/32 on ifindex 4242"),
            "{text}"
        );
        let error = netlink::add_addr(1, ip("10.66.0.1"), 33, None).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput, "{error}");
    });
}

// ---------------------------------------------------------------------------
// Routes, neighbours, resolution

#[test]
fn resolve_mac_finds_an_on_link_neighbour_over_arp_and_nd() {
    let link = Link::new("res");
    let far_mac = link.far_mac();
    link.near.run(|| {
        let v0 = netlink::ifindex("v0").unwrap();
        for far in [FAR4, FAR6] {
            let started = Instant::now();
            let resolved = netlink::resolve_mac(ip(far), Duration::from_secs(5)).unwrap();
            assert_eq!(
                resolved,
                Resolution::Mac {
                    mac: far_mac,
                    ifindex: v0
                },
                "{far}"
            );
            assert_eq!(resolved.mac(), Some((far_mac, v0)));
            eprintln!("{far} resolved in {:?}", started.elapsed());
            // Known now: answered from the table.
            let again = netlink::resolve_mac(ip(far), Duration::ZERO).unwrap();
            assert_eq!(again, resolved);
        }
        let table = netlink::neighbours(Some(v0)).unwrap();
        for far in [FAR4, FAR6] {
            let entry = table
                .iter()
                .find(|entry| entry.addr == ip(far))
                .expect("in the table");
            assert_eq!(entry.mac, Some(far_mac));
            assert_eq!(entry.usable_mac(), Some(far_mac));
            assert_ne!(entry.state & NUD_REACHABLE, 0, "{entry:?}");
        }
        assert!(netlink::neighbours(Some(v0 + 1000)).unwrap().is_empty());
    });
}

#[test]
fn resolve_mac_reports_local_addresses_silence_and_bad_routes() {
    let link = Link::new("rlc");
    link.near.ip(&["route", "add", "10.88.0.0/16", "via", FAR4]);
    link.near.run(|| {
        let v0 = netlink::ifindex("v0").unwrap();
        for own in [NEAR4, NEAR6] {
            let resolution = netlink::resolve_mac(ip(own), Duration::from_secs(1)).unwrap();
            assert_eq!(resolution, Resolution::Local, "{own}");
            assert!(netlink::route_to(ip(own)).unwrap().local);
        }

        // On-link but nobody there: the timeout is honoured.
        let started = Instant::now();
        let silent = netlink::resolve_mac(ip("10.77.0.99"), Duration::from_millis(1500)).unwrap();
        let waited = started.elapsed();
        assert_eq!(silent, Resolution::Unresolved { ifindex: v0 });
        assert!((1400..3000).contains(&waited.as_millis()), "{waited:?}");

        let route = netlink::route_to(ip("10.88.1.1")).unwrap();
        assert_eq!((route.ifindex, route.gateway), (v0, Some(ip(FAR4))));
        let error = netlink::resolve_mac(ip("10.88.1.1"), Duration::from_secs(1)).unwrap_err();
        assert!(error.to_string().contains("not on-link"), "{error}");

        let error = netlink::resolve_mac(ip("192.0.2.1"), Duration::from_secs(1)).unwrap_err();
        assert!(
            error.to_string().contains("RTM_GETROUTE 192.0.2.1"),
            "{error}"
        );
    });
}

#[test]
fn resolve_mac_asks_again_after_the_kernel_gives_up() {
    let link = Link::new("rfl");
    // Nobody answers for 10.77.0.2 until the far side gets it back, after
    // the kernel's three probes have failed (about 3 s).
    link.far.ip(&["addr", "del", "10.77.0.2/24", "dev", "v1"]);
    let far_mac = link.far_mac();
    let (resolved, waited) = std::thread::scope(|scope| {
        let resolver = scope.spawn(|| {
            link.near.run(|| {
                let started = Instant::now();
                let resolved = netlink::resolve_mac(ip(FAR4), Duration::from_secs(10)).unwrap();
                (resolved, started.elapsed())
            })
        });
        std::thread::sleep(Duration::from_millis(4500));
        link.far.ip(&["addr", "add", "10.77.0.2/24", "dev", "v1"]);
        resolver.join().unwrap()
    });
    assert_eq!(resolved.mac().map(|(mac, _)| mac), Some(far_mac));
    assert!(waited >= Duration::from_millis(4500), "{waited:?}");
}

#[test]
fn neighbour_watcher_sees_entries_come_and_go() {
    let link = Link::new("nw");
    let mut watcher = link.near.run(|| NeighbourWatcher::new().unwrap());
    assert!(watcher.read().unwrap().is_empty(), "non-blocking and empty");

    let added = ip("10.77.0.50");
    let mac = [0x02, 0, 0, 0, 0, 0x50];
    link.near.ip(&[
        "neigh",
        "add",
        "10.77.0.50",
        "lladdr",
        "02:00:00:00:00:50",
        "dev",
        "v0",
        "nud",
        "permanent",
    ]);
    let update = wait_for(
        &mut watcher,
        |change| matches!(change, NeighbourChange::Updated(entry) if entry.addr == added),
    );
    let NeighbourChange::Updated(entry) = update else {
        unreachable!()
    };
    assert_eq!((entry.mac, entry.state), (Some(mac), NUD_PERMANENT));
    assert_eq!(entry.usable_mac(), Some(mac));

    link.near.ip(&["neigh", "del", "10.77.0.50", "dev", "v0"]);
    wait_for(
        &mut watcher,
        |change| matches!(change, NeighbourChange::Deleted(entry) if entry.addr == added),
    );
}

fn wait_for(
    watcher: &mut NeighbourWatcher,
    wanted: impl Fn(&NeighbourChange) -> bool,
) -> NeighbourChange {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let changes = watcher.wait(Duration::from_millis(500)).unwrap();
        if let Some(change) = changes.into_iter().find(&wanted) {
            return change;
        }
    }
    panic!("no such neighbour change within 5 s");
}
