//! Every flag the real ipvsadm's `--help` documents is known to xvsadm:
//! the ones XVS implements parse, the others are refused as "not supported
//! by XVS" (never as an unknown option).
//!
//! The help text is read out of the installed ipvsadm binary (its usage
//! strings, ipvsadm.c:1453-1546) rather than by running `ipvsadm -h`, which
//! first tries to load the ip_vs kernel module. Without ipvsadm installed the
//! test says so and passes; `cargo xtask setup` installs it.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
};

use xvs::{
    ipvsadm::{
        args::{parse_args_with_env, ArgError},
        resolve::Resolver,
    },
    model::Protocol,
};

/// Flags XVS implements, each with a command line that uses it.
const SUPPORTED: &[(&str, &str)] = &[
    ("--add-service", "--add-service -t 10.0.0.1:80 -s rr"),
    ("-A", "-A -t 10.0.0.1:80 -s rr"),
    ("--edit-service", "--edit-service -t 10.0.0.1:80 -s wrr"),
    ("-E", "-E -t 10.0.0.1:80 -s wrr"),
    ("--delete-service", "--delete-service -t 10.0.0.1:80"),
    ("-D", "-D -t 10.0.0.1:80"),
    ("--clear", "--clear"),
    ("-C", "-C"),
    ("--restore", "--restore"),
    ("-R", "-R"),
    ("--save", "--save"),
    ("-S", "-S -n"),
    ("--add-server", "--add-server -t 10.0.0.1:80 -r 10.0.0.2"),
    ("-a", "-a -t 10.0.0.1:80 -r 10.0.0.2"),
    (
        "--edit-server",
        "--edit-server -t 10.0.0.1:80 -r 10.0.0.2 -w 2",
    ),
    ("-e", "-e -t 10.0.0.1:80 -r 10.0.0.2 -w 2"),
    (
        "--delete-server",
        "--delete-server -t 10.0.0.1:80 -r 10.0.0.2",
    ),
    ("-d", "-d -t 10.0.0.1:80 -r 10.0.0.2"),
    ("--list", "--list"),
    ("-L", "-L"),
    ("-l", "-l"),
    ("--zero", "--zero"),
    ("-Z", "-Z -t 10.0.0.1:80"),
    ("--set", "--set 900 120 300"),
    ("--help", "--help"),
    ("-h", "-h"),
    ("--tcp-service", "-D --tcp-service 10.0.0.1:80"),
    ("-t", "-D -t 10.0.0.1:80"),
    ("--udp-service", "-D --udp-service 10.0.0.1:53"),
    ("-u", "-D -u 10.0.0.1:53"),
    ("--scheduler", "-A -t 10.0.0.1:80 --scheduler sh"),
    ("-s", "-A -t 10.0.0.1:80 -s sh"),
    ("--persistent", "-A -t 10.0.0.1:80 -s rr --persistent 60"),
    ("-p", "-A -t 10.0.0.1:80 -s rr -p"),
    (
        "--netmask",
        "-A -t 10.0.0.1:80 -s rr -p --netmask 255.255.255.0",
    ),
    ("-M", "-A -t 10.0.0.1:80 -s rr -p -M 255.255.255.0"),
    ("--real-server", "-a -t 10.0.0.1:80 --real-server 10.0.0.2"),
    ("-r", "-a -t 10.0.0.1:80 -r 10.0.0.2"),
    ("--gatewaying", "-a -t 10.0.0.1:80 -r 10.0.0.2 --gatewaying"),
    ("-g", "-a -t 10.0.0.1:80 -r 10.0.0.2 -g"),
    ("--weight", "-a -t 10.0.0.1:80 -r 10.0.0.2 --weight 0"),
    ("-w", "-a -t 10.0.0.1:80 -r 10.0.0.2 -w 0"),
    ("--connection", "-L --connection"),
    ("-c", "-L -c"),
    ("--timeout", "-L --timeout"),
    ("--stats", "-L --stats"),
    ("--rate", "-L --rate"),
    ("--exact", "-L --stats --exact"),
    ("--persistent-conn", "-L --persistent-conn"),
    ("--nosort", "-L --nosort"),
    ("--sort", "-L --sort"),
    ("--numeric", "-L --numeric"),
    ("-n", "-L -n"),
    (
        "--sched-flags",
        "-A -t 10.0.0.1:80 -s sh --sched-flags sh-fallback",
    ),
    ("-b", "-A -t 10.0.0.1:80 -s sh -b sh-port"),
];

/// ipvsadm flags for what XVS does not do, each with a command line that
/// ipvsadm itself would accept.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("--start-daemon", "--start-daemon master"),
    ("--stop-daemon", "--stop-daemon master"),
    ("--sctp-service", "-D --sctp-service 10.0.0.1:80"),
    ("--fwmark-service", "-D --fwmark-service 1"),
    ("-f", "-D -f 1"),
    ("--ipv6", "-D -f 1 --ipv6"),
    ("-6", "-D -f 1 -6"),
    ("--pe", "-A -t 10.0.0.1:80 -s rr -p --pe sip"),
    ("--ipip", "-a -t 10.0.0.1:80 -r 10.0.0.2 --ipip"),
    ("-i", "-a -t 10.0.0.1:80 -r 10.0.0.2 -i"),
    (
        "--masquerading",
        "-a -t 10.0.0.1:80 -r 10.0.0.2 --masquerading",
    ),
    ("-m", "-a -t 10.0.0.1:80 -r 10.0.0.2 -m"),
    (
        "--tun-type",
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type ipip",
    ),
    (
        "--tun-port",
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type gue --tun-port 6080",
    ),
    (
        "--tun-nocsum",
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type gre --tun-nocsum",
    ),
    (
        "--tun-csum",
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type gre --tun-csum",
    ),
    (
        "--tun-remcsum",
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type gue --tun-port 1 --tun-remcsum",
    ),
    (
        "--u-threshold",
        "-a -t 10.0.0.1:80 -r 10.0.0.2 --u-threshold 10",
    ),
    ("-x", "-a -t 10.0.0.1:80 -r 10.0.0.2 -x 10"),
    (
        "--l-threshold",
        "-a -t 10.0.0.1:80 -r 10.0.0.2 --l-threshold 10",
    ),
    ("-y", "-a -t 10.0.0.1:80 -r 10.0.0.2 -y 10"),
    ("--daemon", "-L --daemon"),
    ("--thresholds", "-L --thresholds"),
    ("--tun-info", "-L --tun-info"),
    ("--ops", "-A -u 10.0.0.1:53 -s rr --ops"),
    ("-o", "-A -u 10.0.0.1:53 -s rr -o"),
    ("--syncid", "--start-daemon master --syncid 1"),
    ("--sync-maxlen", "--start-daemon master --sync-maxlen 1400"),
    (
        "--mcast-interface",
        "--start-daemon master --mcast-interface eth0",
    ),
    (
        "--mcast-group",
        "--start-daemon master --mcast-group 224.0.0.81",
    ),
    ("--mcast-port", "--start-daemon master --mcast-port 8848"),
    ("--mcast-ttl", "--start-daemon master --mcast-ttl 1"),
];

struct NoDns;

impl Resolver for NoDns {
    fn host_name(&self, _: IpAddr) -> Option<String> {
        None
    }
    fn host_addr(&self, _: &str) -> Option<Ipv4Addr> {
        None
    }
    fn service_name(&self, _: u16, _: Protocol) -> Option<String> {
        None
    }
    fn service_port(&self, _: &str, _: Protocol) -> Option<u16> {
        None
    }
}

fn parse(line: &str) -> Result<(), ArgError> {
    let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    parse_args_with_env(&args, &NoDns, None).map(|_| ())
}

fn installed_ipvsadm() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("ipvsadm"))
        .find(|p| p.is_file())
}

/// The usage text ipvsadm carries: its NUL-terminated strings that hold
/// option lines.
fn help_text(binary: &Path) -> String {
    let bytes = std::fs::read(binary).expect("read ipvsadm");
    bytes
        .split(|&b| b == 0)
        .filter_map(|chunk| std::str::from_utf8(chunk).ok())
        .filter(|s| s.contains("\n  --") || s.starts_with("  --"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The flags an option line documents: `  --long[|-s] [-s[|-t]] ...`.
fn documented_flags(help: &str) -> BTreeSet<String> {
    let mut flags = BTreeSet::new();
    for line in help.lines().filter(|l| l.starts_with("  --")) {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        flags.extend(first.split('|').map(str::to_string));
        if let Some(second) = words.next() {
            let shorts = second
                .split('|')
                .filter(|s| s.len() == 2 && s.starts_with('-'));
            flags.extend(shorts.map(str::to_string));
        }
    }
    flags
}

#[test]
fn every_documented_ipvsadm_flag_is_known() {
    let Some(binary) = installed_ipvsadm() else {
        eprintln!("ipvsadm is not installed: nothing to compare with");
        return;
    };
    let documented = documented_flags(&help_text(&binary));
    assert!(
        documented.contains("--add-service") && documented.contains("-b"),
        "{documented:?}"
    );

    let known: BTreeSet<String> = SUPPORTED
        .iter()
        .chain(UNSUPPORTED)
        .map(|(f, _)| f.to_string())
        .collect();
    let missing: Vec<&String> = documented.difference(&known).collect();
    assert!(
        missing.is_empty(),
        "ipvsadm documents flags this test does not cover: {missing:?}"
    );
    let supported_missing: Vec<&str> = SUPPORTED
        .iter()
        .map(|(f, _)| *f)
        .filter(|f| !documented.contains(*f))
        .collect();
    assert!(
        supported_missing.is_empty(),
        "not in ipvsadm's help: {supported_missing:?}"
    );
}

#[test]
fn supported_flags_parse() {
    for (flag, line) in SUPPORTED {
        if let Err(e) = parse(line) {
            panic!("{flag}: `{line}` refused: {e}");
        }
    }
}

#[test]
fn unsupported_flags_say_so() {
    for (flag, line) in UNSUPPORTED {
        match parse(line) {
            Err(ArgError::Unsupported(message)) => {
                assert!(message.contains("not supported"), "{flag}: {message}");
            }
            other => panic!("{flag}: `{line}` gave {other:?}"),
        }
    }
}
