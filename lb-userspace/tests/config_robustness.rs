//! The parser never panics: random bytes, random keyword soup and mutated
//! real configurations (the cargo-fuzz target `config_parse` goes further).

mod config_common;

use config_common::*;
use xvs::config::{has_errors, parse_str, LoadOptions};

/// xorshift64*: small, deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const VOCABULARY: &[&str] = &[
    "{",
    "}",
    "{",
    "}",
    "\n",
    "\n",
    "\n",
    " ",
    "\"",
    "'",
    "\\",
    "#",
    "!",
    "$",
    "${",
    "@",
    "@^",
    "$X=",
    "$X",
    "${X}",
    "include",
    "~SEQ",
    "global_defs",
    "vrrp_instance",
    "virtual_server",
    "virtual_server_group",
    "group",
    "fwmark",
    "real_server",
    "TCP_CHECK",
    "HTTP_GET",
    "url",
    "path",
    "status_code",
    "200-299",
    "MISC_CHECK",
    "misc_path",
    "UDP_CHECK",
    "payload",
    "ab X1",
    "lb_algo",
    "lb_kind",
    "lvs_sched",
    "rr",
    "wrr",
    "sh",
    "DR",
    "NAT",
    "protocol",
    "TCP",
    "UDP",
    "weight",
    "persistence_timeout",
    "persistence_granularity",
    "255.255.255.0",
    "virtual_ipaddress",
    "192.0.2.1",
    "192.0.2.1-9",
    "10.0.0.0/30",
    "2001:db8::1",
    "80",
    "0",
    "65536",
    "-1",
    "1.5",
    "virtual_router_id",
    "priority",
    "authentication",
    "auth_type",
    "AH",
    "track_script",
    "vrrp_script",
    "script",
    "sorry_server",
    "nb_get_retry",
    "use_vmac",
    "VI_1",
    "eth0",
    "\t",
];

fn parse_never_panics(text: &str) {
    let opts = LoadOptions {
        lenient: false,
        config_id: Some("x".into()),
    };
    let (config, diags) = parse_str("/nonexistent/fuzz.conf", text, &opts);
    // A configuration is returned exactly when there is no error.
    assert_eq!(config.is_some(), !has_errors(&diags));
    for d in &diags {
        let line = d.to_string();
        assert!(line.starts_with("/nonexistent/fuzz.conf:"), "{line}");
    }
}

#[test]
fn random_bytes() {
    let mut rng = Rng(0x5eed_0001);
    for _ in 0..2000 {
        let len = rng.below(400);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        parse_never_panics(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn random_keyword_soup() {
    let mut rng = Rng(0x5eed_0002);
    for _ in 0..3000 {
        let n = rng.below(120);
        let text: Vec<&str> = (0..n)
            .map(|_| VOCABULARY[rng.below(VOCABULARY.len())])
            .collect();
        parse_never_panics(&text.join(" "));
    }
}

#[test]
fn mutated_seed_configurations() {
    let mut rng = Rng(0x5eed_0003);
    let seeds: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "conf"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    for _ in 0..1500 {
        let mut chars: Vec<char> = seeds[rng.below(seeds.len())].chars().collect();
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(chars.len() + 1);
            match rng.below(3) {
                0 if at < chars.len() => {
                    chars.remove(at);
                }
                1 => {
                    let word = VOCABULARY[rng.below(VOCABULARY.len())];
                    for (k, c) in word.chars().enumerate() {
                        chars.insert(at + k, c);
                    }
                }
                _ => chars.truncate(at),
            }
        }
        parse_never_panics(&chars.into_iter().collect::<String>());
    }
}

#[test]
fn pathological_nesting_and_expansion() {
    parse_never_panics(&"{".repeat(50_000));
    parse_never_panics(&"}".repeat(50_000));
    parse_never_panics(&"a {\n".repeat(10_000));
    parse_never_panics("$A=${A}${A}\n$A\n");
    parse_never_panics("$A= \\\n$A \\\n$A\n$A\n");
    // Devices and directories are refused. (Not /proc/self/fd/*: where the
    // test's output goes to a file, that glob includes a regular file.)
    parse_never_panics("include /dev/zero\ninclude /dev/null\ninclude /proc\n");
    parse_never_panics(&format!(
        "global_defs {{ router_id {} }}",
        "x".repeat(1 << 20)
    ));
}
