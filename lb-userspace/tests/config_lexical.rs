//! The lexical layer: blocks, comments, quoting, continuation, conditionals,
//! parameters and includes.

mod config_common;

use config_common::*;
use xvs::config::{load, model::VsAddress, LoadOptions};

fn instance(body: &str) -> String {
    format!("vrrp_instance VI_1 {{\n  interface eth0\n  virtual_router_id 7\n{body}\n}}\n")
}

#[test]
fn one_line_blocks() {
    let c = parse_clean(&format!(
        "{}{}",
        instance("  virtual_ipaddress { 192.0.2.1 }"),
        vs("  real_server 192.0.2.2 80 { weight 4 }")
    ));
    assert_eq!(
        c.vrrp_instances[0].virtual_ipaddress[0].addr.to_string(),
        "192.0.2.1"
    );
    let rs = &c.virtual_servers[0].real_servers[0];
    assert_eq!(rs.weight.as_ref().unwrap().value, 4);
}

#[test]
fn brace_on_the_next_line() {
    let c = parse_clean("global_defs\n{\n  router_id A\n}\n");
    assert_eq!(c.global.router_id.as_deref(), Some("A"));
}

#[test]
fn nested_one_line_blocks() {
    let c = parse_clean(&vs(
        "  real_server 192.0.2.2 80 { weight 2\n    TCP_CHECK { connect_port 8080 } }",
    ));
    let ck = &c.virtual_servers[0].real_servers[0].checkers[0];
    assert_eq!(ck.common.connect_port, Some(8080));
}

#[test]
fn hash_and_bang_comments() {
    let c = parse_clean(
        "! a comment\n# another\nglobal_defs { # trailing\n  router_id A ! trailing too\n  notification_email_from \"x#y@example.net\"\n}\n",
    );
    assert_eq!(c.global.router_id.as_deref(), Some("A"));
    assert_eq!(
        c.global.notification_email_from.as_deref(),
        Some("x#y@example.net")
    );
}

#[test]
fn quoted_strings_keep_spaces() {
    let c = parse_clean(&instance(
        "  virtual_ipaddress { 192.0.2.1 }\n  notify_master \"/etc/ka/notify.sh master now\" ops wheel",
    ));
    let s = c.vrrp_instances[0].notify_master.as_ref().unwrap();
    assert_eq!(s.command, "/etc/ka/notify.sh master now");
    assert_eq!(s.user.as_deref(), Some("ops"));
    assert_eq!(s.group.as_deref(), Some("wheel"));
}

#[test]
fn single_quotes_and_escapes() {
    let c = parse_clean("global_defs {\n  router_id 'two words'\n  smtp_helo_name a\\tb\n}\n");
    assert_eq!(c.global.router_id.as_deref(), Some("two words"));
    assert_eq!(c.global.smtp_helo_name.as_deref(), Some("a\tb"));
}

#[test]
fn trailing_backslash_continues_the_line() {
    let c = parse_clean(
        "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id \\\n      42\n  virtual_ipaddress { 192.0.2.1 }\n}\n",
    );
    assert_eq!(
        c.vrrp_instances[0]
            .virtual_router_id
            .as_ref()
            .unwrap()
            .value,
        42
    );
}

#[test]
fn continued_lines_keep_their_positions() {
    let (_, d) = parse("global_defs {\n  router_id \\\n     A B\n}\n");
    assert_eq!(d, ["t.conf:3:8: error: unexpected 'B' after 'router_id'"]);
}

#[test]
fn conditional_lines_follow_the_config_id() {
    let text = "global_defs {\n  @lb1 router_id one\n  @lb2 router_id two\n  @^lb1 smtp_helo_name not-one\n}\n";
    let (c, _) = parse_with(text, &opts("lb1"));
    let g = c.unwrap().global;
    assert_eq!(g.router_id.as_deref(), Some("one"));
    assert_eq!(g.smtp_helo_name, None);

    let (c, _) = parse_with(text, &opts("lb2"));
    let g = c.unwrap().global;
    assert_eq!(g.router_id.as_deref(), Some("two"));
    assert_eq!(g.smtp_helo_name.as_deref(), Some("not-one"));
}

#[test]
fn parameters_expand_with_and_without_braces() {
    let c = parse_clean(
        "$IF=eth3\n$BASE=192.0.2\nvrrp_instance VI_1 {\n  interface $IF\n  virtual_router_id 5\n  virtual_ipaddress { ${BASE}.7/24 }\n}\n",
    );
    let v = &c.vrrp_instances[0];
    assert_eq!(v.interface.as_ref().unwrap().value, "eth3");
    assert_eq!(v.virtual_ipaddress[0].addr.to_string(), "192.0.2.7");
    assert_eq!(v.virtual_ipaddress[0].prefix_len, 24);
}

#[test]
fn parameters_expand_at_use_not_definition() {
    let c = parse_clean(
        "$ADDR=192.0.2.${SUB}\n$SUB=1\nvirtual_server ${ADDR} 80 {\n lvs_sched rr\n lvs_method DR\n protocol TCP\n}\n$SUB=2\nvirtual_server ${ADDR} 80 {\n lvs_sched rr\n lvs_method DR\n protocol TCP\n}\n",
    );
    let addrs: Vec<String> = c
        .virtual_servers
        .iter()
        .map(|v| match &v.address {
            VsAddress::Ip { addr, .. } => addr.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(addrs, ["192.0.2.1", "192.0.2.2"]);
}

#[test]
fn conditional_parameter_definitions() {
    let text = "@lb1 $PRIO=200\n@^lb1 $PRIO=100\nvrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 5\n  priority $PRIO\n  virtual_ipaddress { 192.0.2.1 }\n}\n";
    let (c, _) = parse_with(text, &opts("lb1"));
    assert_eq!(c.unwrap().vrrp_instances[0].priority.value, 200);
    let (c, _) = parse_with(text, &opts("lb2"));
    assert_eq!(c.unwrap().vrrp_instances[0].priority.value, 100);
}

#[test]
fn multi_line_parameters() {
    let c = parse_clean(
        "$RS= \\\nreal_server 192.0.2.${N} 80 { \\\n  weight ${N} \\\n}\nvirtual_server 192.0.2.1 80 {\n  lvs_sched wrr\n  lvs_method DR\n  protocol TCP\n  $N=2\n  $RS\n  $N=3\n  $RS\n}\n",
    );
    let weights: Vec<u32> = c.virtual_servers[0]
        .real_servers
        .iter()
        .map(|r| r.weight.as_ref().unwrap().value)
        .collect();
    assert_eq!(weights, [2, 3]);
}

#[test]
fn recursive_parameters_are_an_error_not_a_hang() {
    let (c, d) = parse("$A=${A}x\nglobal_defs {\n router_id ${A}\n}\n");
    assert!(c.is_none());
    assert!(d[0].contains("does not terminate"), "{d:?}");
}

#[test]
fn includes_with_globs_braces_and_relative_paths() {
    let (config, diags) = load(&fixtures().join("includes/main.conf"), &opts("x"));
    assert!(diags.is_empty(), "{diags:#?}");
    let c = config.unwrap();
    assert_eq!(c.global.router_id.as_deref(), Some("INCLUDE_TEST"));
    // conf.d/10-web.conf then 20-dns.conf, in glob order.
    assert_eq!(c.virtual_servers.len(), 2);
    let web = &c.virtual_servers[0];
    let reals: Vec<String> = web
        .real_servers
        .iter()
        .map(|r| r.addr.to_string())
        .collect();
    assert_eq!(reals, ["192.0.2.11", "192.0.2.12"]);
    assert_eq!(c.vrrp_scripts[0].name, "chk_one");
    assert_eq!(c.vrrp_instances[0].name, "VI_INC");
}

#[test]
fn diagnostics_in_included_files_name_the_resolved_file() {
    let main = fixtures().join("includes/broken_main.conf");
    let (_, diags) = load(&main, &LoadOptions::default());
    let file = fixtures().join("includes/broken/vs.conf");
    assert_eq!(
        lines(&diags),
        [format!(
            "{}:6:9: error: unknown keyword 'wieght' in real_server block; did you mean 'weight'?",
            file.display()
        )]
    );
}

#[test]
fn include_without_match_warns_but_includem_errs() {
    let (c, d) = parse("include no/such/*.conf\n");
    assert!(c.is_some());
    assert_eq!(
        d,
        ["t.conf:1:1: warning: include 'no/such/*.conf' matches no file"]
    );
    let (c, d) = parse("includem no/such/file.conf\n");
    assert!(c.is_none());
    assert_eq!(
        d,
        ["t.conf:1:1: error: include 'no/such/file.conf' matches no file"]
    );
    let (_, d) = parse("includer no/such/*.conf\n");
    assert!(d.is_empty());
}

#[test]
fn crlf_line_ends() {
    let c = parse_clean("global_defs {\r\n  router_id A\r\n}\r\n");
    assert_eq!(c.global.router_id.as_deref(), Some("A"));
}
