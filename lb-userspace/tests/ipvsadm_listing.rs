//! Golden tests of xvsadm's listings against ipvsadm 1.31's output.
//!
//! The golden files in tests/golden/ipvsadm/ were derived by hand: ipvsadm.c's
//! printf formats (quoted with their line numbers next to each test) applied
//! to the fixture below, in the order libipvs's comparators give (worked out
//! in list_sort_quirk's comment). See tests/golden/ipvsadm/README.md.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
};

use xvs::{
    ipvsadm::{
        format::{self, ListFormat},
        listing::{
            Connection, Dest, Persistence, Rates, Service, ServiceTable, Stats, Timeouts,
            XVS_VERSION,
        },
        resolve::{Resolver, ServicesDb},
    },
    model::{
        Persistence as ModelPersistence, Protocol, RealSpec, SchedulerKind, ServiceId, ServiceSpec,
    },
};

/// Names the tests resolve without DNS: /etc/hosts and /etc/services lines.
struct FakeResolver {
    hosts: HashMap<IpAddr, &'static str>,
    services: ServicesDb,
}

impl FakeResolver {
    fn new() -> Self {
        let hosts = [
            ("10.0.0.1", "vip.example.com"),
            ("10.0.0.2", "real-a.example.com"),
            ("192.168.10.100", "a-very-long-host-name.example.com"),
            ("2001:db8::2", "real6.example.com"),
        ];
        FakeResolver {
            hosts: hosts
                .into_iter()
                .map(|(a, n)| (a.parse().unwrap(), n))
                .collect(),
            services: ServicesDb::parse(
                "http\t\t80/tcp\t\twww\nhttps\t\t443/tcp\ndomain\t\t53/tcp\ndomain\t\t53/udp\n",
            ),
        }
    }
}

impl Resolver for FakeResolver {
    fn host_name(&self, addr: IpAddr) -> Option<String> {
        self.hosts.get(&addr).map(|n| n.to_string())
    }
    fn host_addr(&self, name: &str) -> Option<Ipv4Addr> {
        self.hosts.iter().find_map(|(a, n)| match a {
            IpAddr::V4(v4) if *n == name => Some(*v4),
            _ => None,
        })
    }
    fn service_name(&self, port: u16, proto: Protocol) -> Option<String> {
        self.services.name_of(port, proto).map(str::to_string)
    }
    fn service_port(&self, name: &str, proto: Protocol) -> Option<u16> {
        self.services.port_of(name, proto)
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn stats(n: [u64; 5]) -> Stats {
    Stats {
        conns: n[0],
        inpkts: n[1],
        outpkts: n[2],
        inbytes: n[3],
        outbytes: n[4],
    }
}

fn rates(n: [u64; 5]) -> Rates {
    Rates {
        cps: n[0],
        inpps: n[1],
        outpps: n[2],
        inbps: n[3],
        outbps: n[4],
    }
}

fn dest(addr: &str, port: u16, weight: u32, active: u32, inactive: u32) -> Dest {
    Dest {
        active_conns: active,
        inact_conns: inactive,
        ..Dest::route(ip(addr), port, weight)
    }
}

/// The table as the daemon might hold it: deliberately not in ipvsadm's order.
fn fixture() -> ServiceTable {
    let mut web = Service::new(Protocol::Tcp, ip("10.0.0.1"), 80, SchedulerKind::Wrr);
    web.stats = stats([1234, 56789, 0, 123_456_789, 98_765_432_109]);
    web.rates = rates([12, 345, 0, 123_456_789, 0]);
    web.dests = vec![
        Dest {
            stats: stats([234, 16789, 0, 23_456_789, 0]),
            rates: rates([2, 45, 0, 23_456_789, 0]),
            ..dest("10.0.0.3", 80, 2, 5, 10)
        },
        Dest {
            stats: stats([1000, 40000, 0, 100_000_000, 0]),
            rates: rates([10, 300, 0, 100_000_000, 0]),
            ..dest("10.0.0.2", 80, 1, 3, 7)
        },
    ];

    let mut dns = Service::new(
        Protocol::Udp,
        ip("10.0.0.1"),
        53,
        SchedulerKind::Sh {
            fallback: true,
            port: true,
        },
    );
    dns.persistence = Some(Persistence {
        timeout: 360,
        prefix_len: 32,
    });
    dns.dests = vec![
        dest("192.168.0.1", 53, 1, 0, 0),
        dest("10.0.0.9", 53, 1, 0, 0),
    ];

    let mut tls = Service::new(Protocol::Tcp, ip("192.168.10.100"), 443, SchedulerKind::Rr);
    tls.persistence = Some(Persistence {
        timeout: 1800,
        prefix_len: 24,
    });
    tls.stats = stats([
        100_000_000_000_000,
        99_999_999,
        100_000_000,
        1_234_567_890_123,
        u64::MAX,
    ]);
    tls.dests = vec![Dest {
        persist_conns: 9,
        stats: stats([5, 6, 7, 8, 9]),
        rates: rates([
            100_000_000,
            200_000_000,
            300_000_000,
            400_000_000,
            500_000_000,
        ]),
        ..dest("10.1.2.3", 443, 100, 1234, 5678)
    }];

    let mut v6 = Service::new(Protocol::Tcp, ip("2001:db8::100"), 80, SchedulerKind::Wrr);
    v6.persistence = Some(Persistence {
        timeout: 600,
        prefix_len: 64,
    });
    v6.dests = vec![
        dest("2001:db8::2", 80, 2, 0, 0),
        dest("2001:db8:ffff:ffff:ffff:ffff:ffff:fffe", 80, 1, 0, 0),
    ];

    ServiceTable {
        version: "0.1.0".into(),
        size: 4096,
        services: vec![web, dns, tls, v6],
    }
}

/// One service whose reals meet the wrapping comparison head on.
fn quirk_table() -> ServiceTable {
    let mut svc = Service::new(Protocol::Tcp, ip("10.0.0.1"), 80, SchedulerKind::Rr);
    svc.dests = [
        "200.0.0.1",
        "100.0.0.1",
        "10.0.0.1",
        "192.168.0.1",
        "10.0.0.2",
    ]
    .into_iter()
    .map(|a| dest(a, 80, 1, 0, 0))
    .collect();
    ServiceTable {
        version: "0.1.0".into(),
        size: 4096,
        services: vec![svc],
    }
}

fn connections() -> Vec<Connection> {
    let conn = |proto, client: &str, vip: &str, dest: &str, state: &str, expires| Connection {
        proto,
        client: client.parse::<SocketAddr>().unwrap(),
        vip: vip.parse().unwrap(),
        dest: dest.parse().unwrap(),
        state: state.into(),
        expires,
    };
    vec![
        conn(
            Protocol::Tcp,
            "192.168.10.5:54321",
            "10.0.0.1:80",
            "10.0.0.2:80",
            "ESTABLISHED",
            899,
        ),
        conn(
            Protocol::Tcp,
            "192.168.10.6:54322",
            "10.0.0.1:80",
            "10.0.0.3:80",
            "FIN_WAIT",
            119,
        ),
        conn(
            Protocol::Udp,
            "192.168.10.7:40000",
            "10.0.0.1:53",
            "10.0.0.9:53",
            "UDP",
            299,
        ),
        conn(
            Protocol::Tcp,
            "[2001:db8::9]:49152",
            "[2001:db8::100]:80",
            "[2001:db8::2]:80",
            "SYN_RECV",
            59,
        ),
        // A persistence template: client port 0, 100 minutes left.
        conn(
            Protocol::Tcp,
            "192.168.10.5:0",
            "192.168.10.100:443",
            "10.1.2.3:443",
            "NONE",
            6000,
        ),
    ]
}

fn golden(name: &str) -> String {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "golden",
        "ipvsadm",
        name,
    ]
    .iter()
    .collect();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Compare line by line first, so a failure names the line (and shows
/// trailing blanks).
fn assert_golden(actual: &str, name: &str) {
    let expected = golden(name);
    for (i, (a, e)) in actual.lines().zip(expected.lines()).enumerate() {
        assert_eq!(format!("{a:?}"), format!("{e:?}"), "{name}, line {}", i + 1);
    }
    assert_eq!(actual, expected, "{name}");
}

fn numeric() -> ListFormat {
    ListFormat {
        numeric: true,
        ..ListFormat::default()
    }
}

// list_numeric.txt (-L -n):
//   1     ipvsadm.c:2151 "IP Virtual Server version %d.%d.%d (size=%d)\n", with XDP
//   2-3   ipvsadm.c:1899 the two title lines
//   4 6 9 12  ipvsadm.c:1983 "%-4s %s" (cut at 33 unless IPv6), :2032 "%s %s",
//         :2036 " (%s)" flags, :2041 " persistent %u", :2046 " mask %s", :2050 " mask %i"
//   other ipvsadm.c:2120 "  -> %-28s %-7s %-6d %-10u %-10u\n" (trailing blanks)
//   Order: services by family, protocol, then the wrapping address compare
//   (192.168.10.100 before 10.0.0.1); reals 192.168.0.1 before 10.0.0.9, and
//   2001:db8:ffff:.. before 2001:db8::2 (word 1: 0 - 0xffffffff wraps to 1).
#[test]
fn list_numeric() {
    let text = format::service_table(&fixture(), &numeric(), &FakeResolver::new());
    assert_golden(&text, "list_numeric.txt");
}

// list_names.txt (-L): the same printfs, with addrport_to_anyname
// (ipvsadm.c:2315) naming hosts and ports: "TCP  a-very-long-host-name.exampl"
// is cut at 33 bytes (ipvsadm.c:1986), "real-a.example.com:http" fits 28.
#[test]
fn list_names() {
    let text = format::service_table(&fixture(), &ListFormat::default(), &FakeResolver::new());
    assert_golden(&text, "list_names.txt");
}

// list_stats.txt (-L -n --stats):
//   2-3   ipvsadm.c:1876 "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n"
//   services ipvsadm.c:2018 "%-33s" + print_largenum (ipvsadm.c:1819) x5:
//         "%9llu" under 10^8, else "%8lluK/M/G/T" ("1234G18446744T" runs together)
//   reals ipvsadm.c:2087 "  -> %-28s" + print_largenum x5
#[test]
fn list_stats() {
    let format = ListFormat {
        stats: true,
        ..numeric()
    };
    assert_golden(
        &format::service_table(&fixture(), &format, &FakeResolver::new()),
        "list_stats.txt",
    );
}

// list_stats_exact.txt (--exact): print_largenum's FMT_EXACT branch
// (ipvsadm.c:1821) "%*llu" with width 9, or digits+1 beyond 8 digits.
#[test]
fn list_stats_exact() {
    let format = ListFormat {
        stats: true,
        exact: true,
        ..numeric()
    };
    assert_golden(
        &format::service_table(&fixture(), &format, &FakeResolver::new()),
        "list_stats_exact.txt",
    );
}

// list_rate.txt (-L -n --rate):
//   2-3   ipvsadm.c:1881 the stats title format with CPS InPPS OutPPS InBPS OutBPS
//   services ipvsadm.c:2025 "%-33s" + print_largenum x5
//   reals ipvsadm.c:2095 "  -> %-28s %8llu %8llu %8llu" (never scaled, so
//         "100000000" overflows its column) + print_largenum x2
#[test]
fn list_rate() {
    let format = ListFormat {
        rate: true,
        ..numeric()
    };
    assert_golden(
        &format::service_table(&fixture(), &format, &FakeResolver::new()),
        "list_rate.txt",
    );
}

// list_rate_exact.txt: as list_rate, print_largenum with FMT_EXACT.
#[test]
fn list_rate_exact() {
    let format = ListFormat {
        rate: true,
        exact: true,
        ..numeric()
    };
    assert_golden(
        &format::service_table(&fixture(), &format, &FakeResolver::new()),
        "list_rate_exact.txt",
    );
}

// list_persistent_conn.txt (-L -n --persistent-conn):
//   2-3   ipvsadm.c:1891 "%-33s %-9s %-11s %-10s %-10s\n  -> RemoteAddress:Port\n"
//         (a trailing blank after "InActConn")
//   services as list_numeric (ipvsadm.c:2032)
//   reals ipvsadm.c:2107 "  -> %-28s %-9u %-11u %-10u %-10u\n"
#[test]
fn list_persistent_conn() {
    let format = ListFormat {
        persistent_conn: true,
        ..numeric()
    };
    assert_golden(
        &format::service_table(&fixture(), &format, &FakeResolver::new()),
        "list_persistent_conn.txt",
    );
}

// list_single_service.txt (-L -n -t 10.0.0.1:80): list_service
// (ipvsadm.c:2129) prints print_title and print_service_entry, no banner.
#[test]
fn list_single_service() {
    let table = fixture();
    let web = &table.services[0];
    assert_golden(
        &format::single_service(web, &numeric(), &FakeResolver::new()),
        "list_single_service.txt",
    );
}

// list_sort_quirk.txt (-L -n): reals given as 200.0.0.1 100.0.0.1 10.0.0.1
// 192.168.0.1 10.0.0.2, sorted by glibc's merge sort with ipvs_cmp_dests
// (libipvs.c:1035, r = ntohl(a) - ntohl(b) as int):
//   [200 100] -> cmp(200,100) = 0x64000000 > 0        -> [100 200]
//   [192 10.2] -> cmp = 0xb6a7ffff < 0                 -> [192 10.2]
//   [10.1] + [192 10.2]: cmp(10.1,192) = 0x49580000 > 0, cmp(10.1,10.2) < 0
//                                                      -> [192 10.1 10.2]
//   [100 200] + [192 10.1 10.2]: cmp(100,192) < 0 -> 100; cmp(200,192) > 0
//   -> 192; cmp(200,10.1) = 0xbe000000 < 0 -> 200; then 10.1 10.2.
#[test]
fn list_sort_quirk() {
    let text = format::service_table(&quirk_table(), &numeric(), &FakeResolver::new());
    assert_golden(&text, "list_sort_quirk.txt");
}

// list_nosort.txt (-L -n --nosort): the daemon's order (ipvsadm.c:2060).
#[test]
fn list_nosort() {
    let format = ListFormat {
        nosort: true,
        ..numeric()
    };
    assert_golden(
        &format::service_table(&quirk_table(), &format, &FakeResolver::new()),
        "list_nosort.txt",
    );
}

// The same reals in ascending order stay so: the non-transitive compare
// makes the result depend on the input order, as with glibc's qsort.
#[test]
fn sort_result_depends_on_input_order_like_glibc() {
    let mut table = quirk_table();
    table.services[0].dests = ["10.0.0.1", "100.0.0.1", "200.0.0.1"]
        .into_iter()
        .map(|a| dest(a, 80, 1, 0, 0))
        .collect();
    let sorted = format::sorted_table(&table);
    let order: Vec<String> = sorted.services[0]
        .dests
        .iter()
        .map(|d| d.addr.to_string())
        .collect();
    assert_eq!(order, ["10.0.0.1", "100.0.0.1", "200.0.0.1"]);

    table.services[0].dests = ["200.0.0.1", "100.0.0.1", "10.0.0.1"]
        .into_iter()
        .map(|a| dest(a, 80, 1, 0, 0))
        .collect();
    let sorted = format::sorted_table(&table);
    let order: Vec<String> = sorted.services[0]
        .dests
        .iter()
        .map(|d| d.addr.to_string())
        .collect();
    assert_eq!(order, ["200.0.0.1", "10.0.0.1", "100.0.0.1"]);
}

// save_numeric.txt (-S -n):
//   services ipvsadm.c:1978 "%s %s" (option_from_protocol, address) then
//         :1993 "-A %s -s %s", :1995 " -p %u", :2000 " -M %s" (inet_ntoa),
//         :2004 " -M %i" (IPv6), :2014 " -b " + print_sched_flags
//   reals ipvsadm.c:2080 "-a %s -r %s %s -w %d\n" (fwd_switch "-g")
#[test]
fn save_numeric() {
    assert_golden(
        &format::rules(&fixture(), true, &FakeResolver::new()),
        "save_numeric.txt",
    );
}

// save_names.txt (-S): the same, with names; nothing is cut in rules.
#[test]
fn save_names() {
    assert_golden(
        &format::rules(&fixture(), false, &FakeResolver::new()),
        "save_names.txt",
    );
}

// connections_numeric.txt (-L -n -c):
//   1     ipvsadm.c:1725 "IPVS connection entries\n"
//   2     ipvsadm.c:1731 "pro expire %-11s %-18s %-18s %s\n"
//   rows  ipvsadm.c:1699 "%-3s %-6s %-11s %-18s %-18s %s\n", expire by
//         ipvsadm.c:1692 "%02d:%02d" of minutes and seconds ("100:00")
#[test]
fn connections_numeric() {
    assert_golden(
        &format::connections(&connections(), &numeric(), &FakeResolver::new()),
        "connections_numeric.txt",
    );
}

// connections_names.txt (-L -c): the same with addrport_to_anyname names,
// which overflow their 18 columns.
#[test]
fn connections_names() {
    let text = format::connections(&connections(), &ListFormat::default(), &FakeResolver::new());
    assert_golden(&text, "connections_names.txt");
}

// connections_persistent_conn.txt (-L -n -c --persistent-conn):
//   2     ipvsadm.c:1727 "pro expire %-11s %-18s %-18s %-18s %-16s %s\n"
//   rows  ipvsadm.c:1699, the short form: rows without persistence-engine
//         data never get the wide one (ipvsadm.c:1694, n == 11)
#[test]
fn connections_persistent_conn() {
    let format = ListFormat {
        persistent_conn: true,
        ..numeric()
    };
    let text = format::connections(&connections(), &format, &FakeResolver::new());
    assert_golden(&text, "connections_persistent_conn.txt");
}

// timeout.txt (-L --timeout): ipvsadm.c:2175 "Timeout (tcp tcpfin udp): %d %d %d\n".
#[test]
fn timeouts() {
    let text = format::timeouts(&Timeouts {
        tcp: 900,
        tcp_fin: 120,
        udp: 300,
    });
    assert_golden(&text, "timeout.txt");
}

#[test]
fn json_is_the_sorted_model_and_reads_back() {
    let table = fixture();
    let text = format::json(&format::sorted_table(&table));
    assert!(text.ends_with("}\n"));
    let back: ServiceTable = serde_json::from_str(&text).unwrap();
    assert_eq!(back, format::sorted_table(&table));
    let first: Vec<String> = back
        .services
        .iter()
        .map(|s| format!("{} {}:{}", s.proto, s.addr, s.port))
        .collect();
    assert_eq!(
        first,
        [
            "TCP 192.168.10.100:443",
            "TCP 10.0.0.1:80",
            "UDP 10.0.0.1:53",
            "TCP 2001:db8::100:80"
        ]
    );

    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["services"][2]["proto"], "UDP");
    assert_eq!(value["services"][2]["sched_flags"][1], "sh-port");
    assert_eq!(value["services"][0]["persistence"]["prefix_len"], 24);
    assert_eq!(value["services"][0]["dests"][0]["forward"], "Route");
}

#[test]
fn json_of_connections_and_timeouts() {
    let text = format::json(&connections());
    let back: Vec<Connection> = serde_json::from_str(&text).unwrap();
    assert_eq!(back, connections());
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value[3]["client"], "[2001:db8::9]:49152");

    let t = Timeouts {
        tcp: 900,
        tcp_fin: 120,
        udp: 300,
    };
    assert_eq!(
        serde_json::from_str::<Timeouts>(&format::json(&t)).unwrap(),
        t
    );
}

#[test]
fn long_ipv4_names_are_cut_ipv6_ones_are_not() {
    let text = format::service_table(&fixture(), &ListFormat::default(), &FakeResolver::new());
    // ipvsadm.c:1986 cuts an IPv4 service column at 33 bytes...
    assert!(text.contains("\nTCP  a-very-long-host-name.exampl rr"));
    // ...and ipvsadm.c:2073 an IPv4 real's at 28; IPv6 columns overflow.
    assert!(text.contains("  -> [2001:db8:ffff:ffff:ffff:ffff:ffff:fffe]:http Route"));
}

#[test]
fn service_from_the_daemon_model() {
    let real = |addr: &str, weight, local| RealSpec {
        addr: ip(addr),
        port: 80,
        weight,
        mac: [0; 6],
        local,
    };
    let spec = ServiceSpec {
        id: ServiceId {
            vip: ip("10.0.0.100"),
            port: 80,
            proto: Protocol::Tcp,
        },
        scheduler: SchedulerKind::Sh {
            fallback: true,
            port: false,
        },
        persistence: Some(ModelPersistence {
            timeout_s: 300,
            prefix_len: 24,
        }),
        reals: vec![real("10.0.0.12", 1, true), real("10.0.0.11", 3, false)],
    };
    let table = ServiceTable {
        services: vec![Service::from(&spec)],
        ..ServiceTable::new(4096)
    };
    let text = format::service_table(&table, &numeric(), &FakeResolver::new());
    let expected = format!(
        "XDP Virtual Server version {XVS_VERSION} (size=4096)\n{}",
        concat!(
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  10.0.0.100:80 sh (sh-fallback) persistent 300 mask 255.255.255.0\n",
            "  -> 10.0.0.11:80                 Route   3      0          0         \n",
            "  -> 10.0.0.12:80                 Local   1      0          0         \n",
        )
    );
    assert_eq!(text, expected);
}
