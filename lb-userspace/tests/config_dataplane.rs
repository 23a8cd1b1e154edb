//! From the configuration to the data plane's ServiceSpec.

mod config_common;

use std::net::IpAddr;

use config_common::*;
use xvs::{
    config::{load, service_specs},
    model::{Persistence, Protocol, SchedulerKind},
};

/// A fake neighbour table: every address has a MAC made of its last octet.
fn mac_of(addr: IpAddr) -> Option<[u8; 6]> {
    match addr {
        IpAddr::V4(a) => Some([2, 0, 0, 0, 0, a.octets()[3]]),
        IpAddr::V6(_) => None,
    }
}

#[test]
fn seed_001_udp_service_with_persistence() {
    let (c, _) = load(&fixtures().join("seed_shaped_001.conf"), &opts("x"));
    let specs = service_specs(&c.unwrap(), mac_of, |_| false).unwrap();
    assert_eq!(specs.len(), 2);
    let udp = &specs[1];
    assert_eq!(udp.id.proto, Protocol::Udp);
    assert_eq!(udp.id.port, 3478);
    assert_eq!(udp.scheduler, SchedulerKind::Wrr);
    assert_eq!(
        udp.persistence,
        Some(Persistence {
            timeout_s: 10,
            prefix_len: 32
        })
    );
    assert_eq!(udp.reals.len(), 2);
    assert_eq!(udp.reals[0].mac, [2, 0, 0, 0, 0, 15]);
    assert_eq!(specs[0].persistence, None);
}

#[test]
fn seed_004_director_is_one_of_the_reals() {
    let (c, _) = load(&fixtures().join("seed_shaped_004.conf"), &opts("x"));
    let this_director: IpAddr = "10.9.81.51".parse().unwrap();
    let specs = service_specs(&c.unwrap(), |_| None, |a| a == this_director).unwrap_err();
    // The other director has no MAC in this (empty) neighbour table.
    assert_eq!(specs.len(), 1);
    assert!(specs[0]
        .to_string()
        .contains("no MAC address for real server 10.9.81.234"));

    let (c, _) = load(&fixtures().join("seed_shaped_004.conf"), &opts("x"));
    let specs = service_specs(&c.unwrap(), mac_of, |a| a == this_director).unwrap();
    let reals = &specs[0].reals;
    assert!(reals[0].local && !reals[1].local);
    assert_eq!((reals[0].weight, reals[1].weight), (50, 50));
    assert_eq!(specs[0].scheduler, SchedulerKind::Rr);
}

#[test]
fn group_expands_into_one_service_per_address_and_port() {
    let c = parse_clean(
        "virtual_server_group WEB {\n  192.0.2.10-11 80\n  192.0.2.20 8080\n}\nvirtual_server group WEB {\n  lvs_sched sh\n  sh-port\n  sh-fallback\n  lvs_method DR\n  protocol TCP\n  persistence_timeout 30\n  persistence_granularity 255.255.255.0\n  real_server 192.0.2.30 { weight 2 }\n}\n",
    );
    let specs = service_specs(&c, mac_of, |_| false).unwrap();
    let ids: Vec<String> = specs.iter().map(|s| s.id.to_string()).collect();
    assert_eq!(
        ids,
        [
            "TCP 192.0.2.10:80",
            "TCP 192.0.2.11:80",
            "TCP 192.0.2.20:8080"
        ]
    );
    for s in &specs {
        assert_eq!(
            s.scheduler,
            SchedulerKind::Sh {
                fallback: true,
                port: true
            }
        );
        assert_eq!(
            s.persistence,
            Some(Persistence {
                timeout_s: 30,
                prefix_len: 24
            })
        );
        assert_eq!(s.reals[0].port, s.id.port, "DR reals take the virtual port");
        assert_eq!(s.reals[0].weight, 2);
    }
}

#[test]
fn ipv6_persistence_granularity_is_a_prefix_length() {
    let c = parse_clean(
        "virtual_server 2001:db8::1 443 {\n  lvs_sched rr\n  lvs_method DR\n  protocol TCP\n  persistence_timeout 60\n  persistence_granularity 64\n  real_server 2001:db8::2 443\n}\n",
    );
    let specs = service_specs(&c, |_| Some([2, 0, 0, 0, 0, 1]), |_| false).unwrap();
    assert_eq!(
        specs[0].persistence,
        Some(Persistence {
            timeout_s: 60,
            prefix_len: 64
        })
    );
}

#[test]
fn weight_zero_reals_stay_drained() {
    let c = parse_clean(&vs(
        "  real_server 192.0.2.2 80 { weight 0 }\n  real_server 192.0.2.3 80",
    ));
    let specs = service_specs(&c, mac_of, |_| false).unwrap();
    let weights: Vec<u32> = specs[0].reals.iter().map(|r| r.weight).collect();
    assert_eq!(weights, [0, 1]);
}
