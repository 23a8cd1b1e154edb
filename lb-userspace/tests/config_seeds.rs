//! The real-world configurations of the seed write-ups (fixtures written in
//! the same shapes): each loads, with exactly the warnings it deserves.

mod config_common;

use config_common::*;
use xvs::config::{load, Config};

/// Loads a fixture; returns the config and its diagnostics with the
/// directory stripped ("name.conf:L:C: ...").
fn seed(name: &str) -> (Config, Vec<String>) {
    let path = fixtures().join(name);
    let (config, diags) = load(&path, &opts("director1"));
    let prefix = format!("{}/", fixtures().display());
    let diags: Vec<String> = lines(&diags)
        .into_iter()
        .map(|d| d.replacen(&prefix, "", 1))
        .collect();
    let config = config.unwrap_or_else(|| panic!("{name} has errors: {diags:#?}"));
    (config, diags)
}

fn lb_algo(file: &str, line: u32, col: u32) -> String {
    format!("{file}:{line}:{col}: warning: 'lb_algo' is the old name of 'lvs_sched'; accepted as an alias")
}

fn lb_kind(file: &str, line: u32, col: u32) -> String {
    format!("{file}:{line}:{col}: warning: 'lb_kind' is the old name of 'lvs_method'; accepted as an alias")
}

fn nb_get_retry(file: &str, line: u32, col: u32) -> String {
    format!("{file}:{line}:{col}: warning: 'nb_get_retry' is deprecated in favour of 'retry'; accepted as an alias")
}

#[test]
fn seed_000_rtmp_with_mail_and_persistence() {
    let f = "seed_shaped_000.conf";
    let (c, d) = seed(f);
    assert_eq!(
        d,
        [
            lb_algo(f, 34, 5),
            lb_kind(f, 35, 5),
            nb_get_retry(f, 43, 13),
            nb_get_retry(f, 53, 13)
        ]
    );
    assert_eq!(c.global.notification_email.len(), 3);
    assert_eq!(c.virtual_servers[0].persistence(), 50);
}

#[test]
fn seed_001_tcp_and_udp_services_with_a_sync_group() {
    for f in ["seed_shaped_001.conf", "seed_shaped_001_backup.conf"] {
        let (c, d) = seed(f);
        let sync = |suffix: &str| format!("{f}:14:5: warning: {suffix}");
        let mut expected = vec![
            sync("'lvs_sync_daemon_inteface' is a misspelling of 'lvs_sync_daemon_interface'; accepted as an alias"),
            sync("'lvs_sync_daemon_interface' in vrrp_instance is deprecated; use 'lvs_sync_daemon' in global_defs"),
        ];
        for (vs_line, check_lines) in [(29, [38, 46]), (53, [62, 70])] {
            expected.push(lb_algo(f, vs_line, 5));
            expected.push(lb_kind(f, vs_line + 1, 5));
            expected.extend(check_lines.iter().map(|&l| nb_get_retry(f, l, 13)));
        }
        assert_eq!(d, expected, "{f}");
        assert_eq!(c.vrrp_sync_groups[0].group[0].value, "VI_TURN");
        assert_eq!(c.virtual_servers.len(), 2);
    }
    let (c, _) = seed("seed_shaped_001.conf");
    assert_eq!(c.virtual_servers[1].persistence(), 10);
}

#[test]
fn seed_002_web_pair() {
    for f in ["seed_shaped_002.conf", "seed_shaped_002_backup.conf"] {
        let (c, d) = seed(f);
        assert_eq!(
            d,
            [
                lb_algo(f, 24, 5),
                lb_kind(f, 25, 5),
                nb_get_retry(f, 33, 13),
                nb_get_retry(f, 42, 13)
            ]
        );
        assert_eq!(c.virtual_servers[0].scheduler(), "wrr");
    }
}

#[test]
fn seed_003_unindented() {
    let f = "seed_shaped_003.conf";
    let (c, d) = seed(f);
    assert_eq!(
        d,
        [
            lb_algo(f, 26, 1),
            lb_kind(f, 27, 1),
            nb_get_retry(f, 34, 1),
            nb_get_retry(f, 42, 1)
        ]
    );
    assert_eq!(c.vrrp_instances[0].priority.value, 90);
}

#[test]
fn seed_004_directors_that_are_also_real_servers() {
    let f = "seed_shaped_004.conf";
    let (c, d) = seed(f);
    assert_eq!(d, [lb_algo(f, 19, 5), lb_kind(f, 20, 5)]);
    assert_eq!(c.global, Default::default(), "no global_defs at all");

    let f = "seed_shaped_004_master.conf";
    let (c, d) = seed(f);
    assert_eq!(
        d,
        [
            lb_algo(f, 24, 5),
            lb_kind(f, 25, 5),
            format!("{f}:26:25: warning: persistence_timeout 0 means no persistence; keepalived 2.2.7 rejects 0, so leave the keyword out"),
        ]
    );
    let v = &c.vrrp_instances[0];
    assert_eq!(v.virtual_ipaddress[0].prefix_len, 24);
    assert_eq!(
        v.notify_master.as_ref().unwrap().command,
        "/etc/keepalived/to_master.sh"
    );
    assert_eq!(c.virtual_servers[0].persistence(), 0);
}
