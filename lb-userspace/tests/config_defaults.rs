//! keepalived's defaults, and inheritance virtual server → real server →
//! checker.

mod config_common;

use std::time::Duration;

use config_common::*;
use xvs::config::{
    model::{CheckerKind, HttpProtocol, VrrpState},
    resolve,
};

const S: fn(u64) -> Duration = Duration::from_secs;

fn one_checker(checker: &str) -> xvs::config::Config {
    parse_clean(&vs(&format!(
        "  real_server 192.0.2.2 80 {{\n    {checker}\n  }}"
    )))
}

fn effective(c: &xvs::config::Config) -> resolve::EffectiveChecker {
    let vs = &c.virtual_servers[0];
    let rs = &vs.real_servers[0];
    resolve::checker(&c.global, vs, rs, &rs.checkers[0])
}

#[test]
fn tcp_check_with_nothing_set() {
    let c = one_checker("TCP_CHECK {\n    }");
    let e = effective(&c);
    assert_eq!(e.connect_ip.to_string(), "192.0.2.2");
    assert_eq!(e.connect_port, Some(80));
    assert_eq!(e.connect_timeout, S(5));
    assert_eq!(e.retry, 1);
    assert_eq!(e.delay_before_retry, S(1));
    assert_eq!(e.delay_loop, S(60));
    assert_eq!(e.warmup, S(60), "warmup defaults to the delay loop");
    assert!(!e.alpha);
    assert!(!e.log_all_failures);
    assert_eq!(e.misc_timeout, None);
}

#[test]
fn per_checker_retry_and_delay_defaults() {
    let http = one_checker("HTTP_GET {\n      url {\n        path /\n      }\n    }");
    let e = effective(&http);
    assert_eq!((e.retry, e.delay_before_retry), (1, S(3)));
    let CheckerKind::Http(h) = &http.virtual_servers[0].real_servers[0].checkers[0].kind else {
        panic!("HTTP_GET");
    };
    assert_eq!(h.http_protocol, HttpProtocol::V1_0);
    assert_eq!(h.urls[0].effective_status_codes(), [(200, 299)]);

    let misc = one_checker("MISC_CHECK {\n      misc_path /bin/true\n    }");
    let e = effective(&misc);
    assert_eq!((e.retry, e.delay_before_retry), (0, S(1)));
    assert_eq!(
        e.misc_timeout,
        Some(S(60)),
        "misc_timeout defaults to the delay loop"
    );

    let udp = one_checker("UDP_CHECK {\n    }");
    let CheckerKind::Udp(u) = &udp.virtual_servers[0].real_servers[0].checkers[0].kind else {
        panic!("UDP_CHECK");
    };
    assert_eq!(
        (u.min_reply_length, u.max_reply_length, u.require_reply),
        (0, 255, false)
    );
}

#[test]
fn dns_check_defaults() {
    let c = xvs::config::parse_str(
        "t.conf",
        &vs("  real_server 192.0.2.2 80 {\n    DNS_CHECK {\n    }\n  }"),
        &xvs::config::LoadOptions {
            lenient: true,
            config_id: None,
        },
    )
    .0
    .unwrap();
    let e = effective(&c);
    assert_eq!(e.retry, 3);
    assert_eq!(e.delay_before_retry, S(60), "DNS_CHECK waits a delay loop");
    let CheckerKind::Dns(dns) = &c.virtual_servers[0].real_servers[0].checkers[0].kind else {
        panic!("DNS_CHECK");
    };
    assert_eq!((dns.query_type.as_str(), dns.name.as_str()), ("SOA", "."));
}

#[test]
fn inheritance_virtual_then_real_then_checker() {
    let c = parse_clean(&vs(
        "  connect_timeout 7\n  delay_loop 10\n  retry 4\n  delay_before_retry 2\n  warmup 0\n  real_server 192.0.2.2 80 {\n    TCP_CHECK {\n    }\n  }\n  real_server 192.0.2.3 80 {\n    connect_timeout 8\n    retry 5\n    TCP_CHECK {\n      connect_timeout 9\n      delay_loop 0.5\n    }\n  }",
    ));
    let vs = &c.virtual_servers[0];
    let from_vs = resolve::checker(
        &c.global,
        vs,
        &vs.real_servers[0],
        &vs.real_servers[0].checkers[0],
    );
    assert_eq!(from_vs.connect_timeout, S(7));
    assert_eq!(from_vs.delay_loop, S(10));
    assert_eq!(from_vs.retry, 4);
    assert_eq!(from_vs.delay_before_retry, S(2));
    assert_eq!(from_vs.warmup, S(0));

    let rs = &vs.real_servers[1];
    let own = resolve::checker(&c.global, vs, rs, &rs.checkers[0]);
    assert_eq!(own.connect_timeout, S(9));
    assert_eq!(own.retry, 5);
    assert_eq!(own.delay_loop, Duration::from_millis(500));
}

#[test]
fn real_server_defaults() {
    let c = parse_clean(&vs(
        "  real_server 192.0.2.2 80\n  real_server 192.0.2.3 80 { weight 0 }",
    ));
    let vs = &c.virtual_servers[0];
    let first = resolve::real_server(&c.global, vs, &vs.real_servers[0]);
    assert_eq!(first.weight, 1);
    assert!(!first.inhibit_on_failure);
    assert!(
        first.smtp_alert,
        "keepalived alerts for real servers by default"
    );
    assert_eq!(first.delay_loop, S(60));
    assert_eq!(first.connect_timeout, S(5));
    assert_eq!(
        resolve::real_server(&c.global, vs, &vs.real_servers[1]).weight,
        0
    );
}

#[test]
fn virtual_server_defaults() {
    let c = parse_clean(&vs(""));
    let vs = &c.virtual_servers[0];
    assert_eq!(vs.delay_loop, None);
    assert_eq!(vs.quorum, 1);
    assert_eq!(vs.hysteresis, 0);
    assert_eq!(vs.persistence(), 0);
    assert!(!vs.alpha && !vs.omega && !vs.ha_suspend && !vs.inhibit_on_failure);
}

#[test]
fn persistence_defaults_to_six_minutes() {
    let c = parse_clean(&vs("  persistence_timeout"));
    assert_eq!(c.virtual_servers[0].persistence(), 360);
    let c = parse_clean(&vs("  persistence_granularity 255.255.255.0"));
    assert_eq!(
        c.virtual_servers[0].persistence(),
        360,
        "a granularity implies persistence"
    );
}

#[test]
fn vrrp_instance_defaults() {
    let c = parse_clean(
        "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 1\n  virtual_ipaddress { 192.0.2.1 }\n}\n",
    );
    let v = &c.vrrp_instances[0];
    assert_eq!(v.priority.value, 100);
    assert_eq!(v.advert_int, S(1));
    assert_eq!(v.state, None);
    assert!(!v.nopreempt);
    assert_eq!(v.preempt_delay, S(0));
    assert_eq!(v.virtual_ipaddress[0].prefix_len, 32);
    let e = resolve::vrrp_instance(&c.global, v);
    assert_eq!(e.garp_master_delay, S(5));
    assert_eq!(e.garp_master_repeat, 5);
    assert_eq!(e.garp_master_refresh, S(0));
    assert_eq!(e.garp_master_refresh_repeat, 1);
    assert_eq!(e.garp_lower_prio_delay, S(5));
    assert_eq!(e.version, 2);
    assert!(!e.strict_mode && !e.skip_check_adv_addr);
}

#[test]
fn vrrp_instances_inherit_global_garp_and_version() {
    let c = parse_clean(
        "global_defs {\n  vrrp_garp_master_delay 10\n  vrrp_garp_master_repeat 2\n  vrrp_version 3\n  vrrp_strict\n}\nvrrp_instance VI_1 {\n  state MASTER\n  interface eth0\n  virtual_router_id 1\n  garp_master_repeat 7\n  advert_int 0.5\n  virtual_ipaddress { 192.0.2.1 }\n}\n",
    );
    let v = &c.vrrp_instances[0];
    assert_eq!(v.state.as_ref().unwrap().value, VrrpState::Master);
    assert_eq!(v.advert_int, Duration::from_millis(500));
    let e = resolve::vrrp_instance(&c.global, v);
    assert_eq!((e.garp_master_delay, e.garp_master_repeat), (S(10), 7));
    assert_eq!(e.garp_lower_prio_delay, S(10));
    assert_eq!(e.version, 3);
    assert!(e.strict_mode);
}

#[test]
fn ipv6_instances_use_version_3() {
    let c = parse_clean(
        "vrrp_instance VI_6 {\n  interface eth0\n  virtual_router_id 1\n  virtual_ipaddress { 2001:db8::1/64 }\n}\n",
    );
    assert_eq!(
        resolve::vrrp_instance(&c.global, &c.vrrp_instances[0]).version,
        3
    );
}

#[test]
fn global_defaults() {
    let c = parse_clean("");
    let g = &c.global;
    assert_eq!(g.router_id, None);
    assert_eq!(g.smtp_connect_timeout, S(30));
    assert_eq!(g.vrrp_mcast_group4.to_string(), "224.0.0.18");
    assert_eq!(g.vrrp_mcast_group6.to_string(), "ff02::12");
    assert_eq!(g.vrrp_version, 2);
    assert_eq!(g.lvs_timeouts, Default::default());
    assert!(!g.enable_script_security);
}

#[test]
fn global_settings() {
    let c = parse_clean(
        "global_defs {\n  lvs_timeouts tcp 900 tcpfin 30 udp 300\n  lvs_sync_daemon eth1 VI_1 id 5\n  script_user nobody nogroup\n  enable_script_security\n  smtp_server 192.0.2.25 2525\n  vrrp_priority -10\n}\nvrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 1\n  virtual_ipaddress { 192.0.2.1 }\n}\n",
    );
    let g = &c.global;
    assert_eq!(
        (
            g.lvs_timeouts.tcp,
            g.lvs_timeouts.tcpfin,
            g.lvs_timeouts.udp
        ),
        (Some(900), Some(30), Some(300))
    );
    let sync = g.lvs_sync_daemon.as_ref().unwrap();
    assert_eq!(
        (
            sync.interface.as_str(),
            sync.instance.as_deref(),
            sync.sync_id
        ),
        ("eth1", Some("VI_1"), Some(5))
    );
    let user = g.script_user.as_ref().unwrap();
    assert_eq!(
        (user.user.as_str(), user.group.as_deref()),
        ("nobody", Some("nogroup"))
    );
    assert!(g.enable_script_security);
    let smtp = g.smtp_server.as_ref().unwrap();
    assert_eq!((smtp.host.as_str(), smtp.port), ("192.0.2.25", 2525));
    assert_eq!(g.vrrp_priority, Some(-10));
}

#[test]
fn vrrp_script_defaults() {
    let c = parse_clean(
        "vrrp_script chk {\n  script \"/usr/bin/check\"\n}\nvrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 1\n  virtual_ipaddress { 192.0.2.1 }\n  track_script {\n    chk weight -20\n  }\n}\n",
    );
    let s = &c.vrrp_scripts[0];
    assert_eq!(
        (s.interval, s.timeout, s.weight, s.rise, s.fall),
        (S(1), None, 0, 1, 1)
    );
    let t = &c.vrrp_instances[0].track_scripts[0];
    assert_eq!((t.name.as_str(), t.weight), ("chk", Some(-20)));
}
