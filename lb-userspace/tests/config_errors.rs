//! Diagnostics, checked as the exact `FILE:LINE:COL: severity: message` text.

mod config_common;

use config_common::*;
use xvs::config::{parse_str, LoadOptions};

#[test]
fn unknown_keyword_with_suggestion() {
    let (c, d) = parse(&vs("    delay_lop 6"));
    assert!(c.is_none());
    assert_eq!(
        d,
        ["t.conf:5:5: error: unknown keyword 'delay_lop' in virtual_server block; did you mean 'delay_loop'?"]
    );
}

#[test]
fn unknown_keyword_without_a_close_match() {
    let (_, d) = parse("global_defs {\n  frobnicate yes\n}\n");
    assert_eq!(
        d,
        ["t.conf:2:3: error: unknown keyword 'frobnicate' in global_defs block"]
    );
    let (_, d) = parse("virtual_servr 192.0.2.1 80 {\n}\n");
    assert_eq!(
        d,
        ["t.conf:1:1: error: unknown keyword 'virtual_servr' at top level; did you mean 'virtual_server'?"]
    );
}

#[test]
fn alias_warnings_name_the_canonical_keyword() {
    let text = "virtual_server 192.0.2.1 80 {\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n  real_server 192.0.2.2 80 {\n    TCP_CHECK {\n      nb_get_retry 2\n    }\n  }\n}\n";
    let (c, d) = parse(text);
    assert_eq!(
        d,
        [
            "t.conf:2:3: warning: 'lb_algo' is the old name of 'lvs_sched'; accepted as an alias",
            "t.conf:3:3: warning: 'lb_kind' is the old name of 'lvs_method'; accepted as an alias",
            "t.conf:7:7: warning: 'nb_get_retry' is deprecated in favour of 'retry'; accepted as an alias",
        ]
    );
    let c = c.unwrap();
    assert_eq!(
        c.virtual_servers[0].real_servers[0].checkers[0]
            .common
            .retry,
        Some(2)
    );
}

#[test]
fn misspelt_sync_daemon_interface() {
    let text = "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 3\n  virtual_ipaddress { 192.0.2.1 }\n  lvs_sync_daemon_inteface eth1\n}\n";
    let (c, d) = parse(text);
    assert_eq!(
        d,
        [
            "t.conf:5:3: warning: 'lvs_sync_daemon_inteface' is a misspelling of 'lvs_sync_daemon_interface'; accepted as an alias",
            "t.conf:5:3: warning: 'lvs_sync_daemon_interface' in vrrp_instance is deprecated; use 'lvs_sync_daemon' in global_defs",
        ]
    );
    let v = &c.unwrap().vrrp_instances[0];
    assert_eq!(v.lvs_sync_daemon_interface.as_ref().unwrap().value, "eth1");
}

#[test]
fn not_implemented_is_an_error_unless_lenient() {
    let text = "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 3\n  virtual_ipaddress { 192.0.2.1 }\n  use_vmac\n}\n";
    let (c, d) = parse(text);
    assert!(c.is_none());
    assert_eq!(
        d,
        ["t.conf:5:3: error: keyword 'use_vmac' is valid keepalived syntax but not implemented by XVS yet"]
    );

    let lenient = LoadOptions {
        lenient: true,
        config_id: Some("x".into()),
    };
    let (c, d) = parse_with(text, &lenient);
    assert!(c.is_some());
    assert_eq!(
        d,
        ["t.conf:5:3: warning: keyword 'use_vmac' is valid keepalived syntax but not implemented by XVS yet; ignored (lenient mode)"]
    );
}

#[test]
fn not_implemented_top_level_block_skips_its_contents() {
    let (_, d) = parse("static_routes {\n  192.0.2.0/24 via 198.51.100.1\n}\n");
    assert_eq!(
        d,
        ["t.conf:1:1: error: keyword 'static_routes' is valid keepalived syntax but not implemented by XVS yet"]
    );
}

#[test]
fn vrid_and_priority_ranges() {
    let text = "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 256\n  priority 0\n  virtual_ipaddress { 192.0.2.1 }\n}\n";
    let (_, d) = parse(text);
    assert_eq!(
        d,
        [
            "t.conf:3:21: error: virtual_router_id 256 is out of range 1..255",
            "t.conf:4:12: error: priority 0 is out of range 1..255",
        ]
    );
}

#[test]
fn missing_vrid() {
    let (_, d) =
        parse("vrrp_instance VI_1 {\n  interface eth0\n  virtual_ipaddress { 192.0.2.1 }\n}\n");
    assert_eq!(
        d,
        ["t.conf:1:1: error: vrrp_instance VI_1 has no virtual_router_id"]
    );
}

#[test]
fn duplicate_vrid_on_one_interface() {
    let one = "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 9\n  virtual_ipaddress { 192.0.2.1 }\n}\n";
    let two = "vrrp_instance VI_2 {\n  interface eth0\n  virtual_router_id 9\n  virtual_ipaddress { 192.0.2.2 }\n}\n";
    let (_, d) = parse(&format!("{one}{two}"));
    assert_eq!(
        d,
        ["t.conf:8:21: error: virtual_router_id 9 is already used on eth0 by vrrp_instance VI_1"]
    );
}

#[test]
fn duplicate_virtual_server() {
    let (_, d) = parse(&format!("{}{}", vs(""), vs("")));
    assert_eq!(
        d,
        ["t.conf:7:1: error: duplicate virtual server TCP 192.0.2.1:80 (first defined at t.conf:1:1)"]
    );
}

#[test]
fn same_address_and_port_with_another_protocol_is_fine() {
    let udp = "virtual_server 192.0.2.1 80 {\n  lvs_sched rr\n  lvs_method DR\n  protocol UDP\n}\n";
    let (c, d) = parse(&format!("{}{udp}", vs("")));
    assert!(c.is_some() && d.is_empty(), "{d:?}");
}

#[test]
fn duplicate_real_server() {
    let (_, d) = parse(&vs(
        "  real_server 192.0.2.5 80\n  real_server 192.0.2.5 80 { weight 2 }",
    ));
    assert_eq!(
        d,
        ["t.conf:6:3: error: real server 192.0.2.5:80 is listed twice in virtual server TCP 192.0.2.1:80 (first at t.conf:5:3)"]
    );
}

#[test]
fn missing_lb_kind_falls_back_to_nat_which_is_refused() {
    let (c, d) = parse("virtual_server 192.0.2.1 80 {\n  lb_algo rr\n  protocol TCP\n}\n");
    assert!(c.is_none());
    assert_eq!(
        d,
        [
            "t.conf:1:1: warning: virtual server TCP 192.0.2.1:80 has no lb_kind/lvs_method; keepalived falls back to NAT",
            "t.conf:1:1: error: lb_kind NAT is not supported yet; XVS does DR only",
            "t.conf:2:3: warning: 'lb_algo' is the old name of 'lvs_sched'; accepted as an alias",
        ]
    );
}

#[test]
fn missing_lb_algo_falls_back_to_wlc_which_is_refused() {
    let (_, d) = parse("virtual_server 192.0.2.1 80 {\n  lvs_method DR\n  protocol TCP\n}\n");
    assert_eq!(
        d,
        [
            "t.conf:1:1: warning: virtual server TCP 192.0.2.1:80 has no lb_algo/lvs_sched; keepalived falls back to 'wlc'",
            "t.conf:1:1: error: scheduler 'wlc' (keepalived's default when lb_algo is missing) is not supported by XVS yet; use rr, wrr or sh",
        ]
    );
}

#[test]
fn unsupported_scheduler_and_methods() {
    let text = "virtual_server 192.0.2.1 80 {\n  lvs_sched lc\n  lvs_method TUN\n  protocol TCP\n  real_server 192.0.2.2 80 {\n    lvs_method NAT\n  }\n}\n";
    let (_, d) = parse(text);
    assert_eq!(
        d,
        [
            "t.conf:2:13: error: scheduler 'lc' is not supported by XVS yet; use rr, wrr or sh",
            "t.conf:3:14: error: lb_kind TUN is not supported yet; XVS does DR only",
            "t.conf:6:16: error: lb_kind NAT is not supported yet; XVS does DR only",
        ]
    );
    let (_, d) = parse(
        "virtual_server 192.0.2.1 80 {\n  lvs_sched fastest\n  lvs_method DR\n  protocol TCP\n}\n",
    );
    assert_eq!(
        d,
        [
            "t.conf:1:1: warning: virtual server TCP 192.0.2.1:80 has no lb_algo/lvs_sched; keepalived falls back to 'wlc'",
            "t.conf:1:1: error: scheduler 'wlc' (keepalived's default when lb_algo is missing) is not supported by XVS yet; use rr, wrr or sh",
            "t.conf:2:13: error: unknown scheduler 'fastest'; keepalived knows rr, wrr, lc, wlc, lblc, sh, mh, dh, fo, ovf, lblcr, sed, nq, twos",
        ]
    );
}

#[test]
fn missing_protocol_defaults_to_udp_with_a_warning() {
    let (c, d) = parse("virtual_server 192.0.2.1 53 {\n  lvs_sched rr\n  lvs_method DR\n}\n");
    assert_eq!(
        d,
        ["t.conf:1:1: warning: virtual server UDP 192.0.2.1:53 has no protocol; keepalived defaults to UDP"]
    );
    assert!(c.is_some());
}

#[test]
fn fwmark_virtual_servers_are_refused() {
    let (_, d) = parse("virtual_server fwmark 7 {\n  lvs_sched rr\n  lvs_method DR\n}\n");
    assert_eq!(
        d,
        ["t.conf:1:1: error: fwmark virtual servers are not supported yet"]
    );
    let group = "virtual_server_group G {\n  fwmark 7\n}\nvirtual_server group G {\n  lvs_sched rr\n  lvs_method DR\n  protocol TCP\n}\n";
    let (_, d) = parse(group);
    assert_eq!(
        d,
        ["t.conf:2:3: error: fwmark virtual servers are not supported yet"]
    );
}

#[test]
fn dns_and_smtp_checks_are_refused() {
    let text = vs("  real_server 192.0.2.2 80 {\n    DNS_CHECK {\n      type A\n    }\n    SMTP_CHECK {\n    }\n  }");
    let (_, d) = parse(&text);
    assert_eq!(
        d,
        [
            "t.conf:6:5: error: DNS_CHECK is valid keepalived syntax but not supported by XVS yet",
            "t.conf:9:5: error: SMTP_CHECK is valid keepalived syntax but not supported by XVS yet",
        ]
    );
}

#[test]
fn auth_type_ah_is_refused() {
    let text = "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 3\n  virtual_ipaddress { 192.0.2.1 }\n  authentication {\n    auth_type AH\n    auth_pass secret\n  }\n}\n";
    let (_, d) = parse(text);
    assert_eq!(
        d,
        ["t.conf:6:15: error: auth_type AH is not supported by XVS; use PASS (or no authentication)"]
    );
}

#[test]
fn bad_values_point_at_the_value() {
    let text = vs("  real_server 192.0.2.300 80\n  real_server 192.0.2.4 99999\n  real_server 192.0.2.5 80 { weight 70000 }\n  real_server 192.0.2.6 80 { weight -1 }\n  delay_loop soon");
    let (_, d) = parse(&text);
    assert_eq!(
        d,
        [
            "t.conf:5:15: error: '192.0.2.300' is not an IP address",
            "t.conf:6:25: error: port 99999 is out of range 0..65535",
            "t.conf:7:37: error: weight 70000 is above 65535, the largest weight IPVS and XVS take",
            "t.conf:8:37: error: weight '-1' is not a whole number",
            "t.conf:9:14: error: 'soon' is not a time in seconds (like 3 or 0.5)",
        ]
    );
}

#[test]
fn persistence_granularity_must_be_a_contiguous_netmask() {
    let (_, d) = parse(&vs(
        "  persistence_timeout 60\n  persistence_granularity 255.0.255.0",
    ));
    assert_eq!(
        d,
        ["t.conf:6:27: error: netmask 255.0.255.0 is not contiguous"]
    );
}

#[test]
fn missing_and_extra_arguments() {
    let (_, d) = parse("global_defs {\n  router_id\n  vrrp_version 2 3\n}\n");
    assert_eq!(
        d,
        [
            "t.conf:2:3: error: 'router_id' needs a value",
            "t.conf:3:18: error: unexpected '3' after 'vrrp_version'",
        ]
    );
}

#[test]
fn unbalanced_braces() {
    let (_, d) = parse("global_defs {\n  router_id A\n");
    assert_eq!(d, ["t.conf:1:13: error: this '{' is never closed"]);
    let (_, d) = parse("global_defs {\n}\n}\n");
    assert_eq!(d, ["t.conf:3:1: error: '}' without a matching '{'"]);
}

#[test]
fn unterminated_quote() {
    let (_, d) = parse("global_defs {\n  router_id \"abc\n}\n");
    assert_eq!(
        d,
        ["t.conf:2:13: error: missing closing \" for this quoted string"]
    );
}

#[test]
fn keyword_given_twice_warns() {
    let (_, d) = parse(&vs("  delay_loop 5\n  delay_loop 6"));
    assert_eq!(
        d,
        ["t.conf:6:3: warning: 'delay_loop' given again; this one replaces the one at t.conf:5:3"]
    );
}

#[test]
fn block_where_none_is_taken_and_none_where_one_is_needed() {
    let (_, d) = parse("global_defs {\n  router_id A { }\n  notification_email\n}\n");
    assert_eq!(
        d,
        [
            "t.conf:2:15: error: 'router_id' does not take a { } block",
            "t.conf:3:3: error: 'notification_email' needs a { } block",
        ]
    );
}

#[test]
fn unknown_track_script_and_sync_group_member() {
    let text = "vrrp_sync_group G {\n  group {\n    VI_X\n  }\n}\nvrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 3\n  virtual_ipaddress { 192.0.2.1 }\n  track_script {\n    chk_missing\n  }\n}\n";
    let (_, d) = parse(text);
    assert_eq!(
        d,
        [
            "t.conf:3:5: error: 'VI_X' does not name a vrrp_instance",
            "t.conf:11:5: error: track_script 'chk_missing' does not name a vrrp_script",
        ]
    );
}

#[test]
fn unreadable_main_file() {
    let (c, d) = xvs::config::load(
        std::path::Path::new("/nonexistent/keepalived.conf"),
        &LoadOptions::default(),
    );
    assert!(c.is_none());
    assert_eq!(d.len(), 1);
    let line = d[0].to_string();
    assert!(
        line.starts_with("/nonexistent/keepalived.conf:1:1: error: cannot read"),
        "{line}"
    );
}

#[test]
fn name_is_used_as_given() {
    let (_, d) = parse_str("/etc/keepalived/keepalived.conf", "bogus\n", &opts("x"));
    assert_eq!(
        d[0].to_string(),
        "/etc/keepalived/keepalived.conf:1:1: error: unknown keyword 'bogus' at top level"
    );
}
