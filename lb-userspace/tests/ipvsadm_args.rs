//! xvsadm's ipvsadm grammar: what each command line parses into, and the
//! errors for what ipvsadm (or XVS) refuses. Expected errors are ipvsadm
//! 1.31's own messages (ipvsadm.c line in the comment).

use std::{
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
};

use xvs::{
    ipvsadm::{
        args::{
            parse_args_with_env, ArgError, Command, Invocation, ListRequest, ListWhat, RealServer,
            RealServerAction, VirtualService,
        },
        format::ListFormat,
        listing::Timeouts,
        resolve::{Resolver, ServicesDb},
    },
    model::{Persistence, Protocol, SchedulerKind, ServiceId},
};

/// Knows "web.example.com" and a few ports, so no test needs DNS.
struct Names(ServicesDb);

impl Names {
    fn new() -> Self {
        Names(ServicesDb::parse("http 80/tcp www\ndomain 53/udp\n"))
    }
}

impl Resolver for Names {
    fn host_name(&self, _: IpAddr) -> Option<String> {
        None
    }
    fn host_addr(&self, name: &str) -> Option<Ipv4Addr> {
        (name == "web.example.com").then_some(Ipv4Addr::new(10, 0, 0, 80))
    }
    fn service_name(&self, port: u16, proto: Protocol) -> Option<String> {
        self.0.name_of(port, proto).map(str::to_string)
    }
    fn service_port(&self, name: &str, proto: Protocol) -> Option<u16> {
        self.0.port_of(name, proto)
    }
}

fn parse(line: &str) -> Result<Invocation, ArgError> {
    let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    parse_args_with_env(&args, &Names::new(), None)
}

fn command(line: &str) -> Command {
    parse(line)
        .unwrap_or_else(|e| panic!("{line}: {e}"))
        .command
}

fn error(line: &str) -> ArgError {
    match parse(line) {
        Ok(inv) => panic!("{line}: parsed as {inv:?}"),
        Err(e) => e,
    }
}

fn invalid(line: &str) -> String {
    match error(line) {
        ArgError::Invalid(m) => m,
        other => panic!("{line}: expected Invalid, got {other:?}"),
    }
}

fn unsupported(line: &str) -> String {
    match error(line) {
        ArgError::Unsupported(m) => m,
        other => panic!("{line}: expected Unsupported, got {other:?}"),
    }
}

fn svc(vip: &str, port: u16, proto: Protocol) -> ServiceId {
    ServiceId {
        vip: vip.parse().unwrap(),
        port,
        proto,
    }
}

fn tcp(vip: &str, port: u16) -> ServiceId {
    svc(vip, port, Protocol::Tcp)
}

fn list(what: ListWhat, format: ListFormat) -> Command {
    Command::List(ListRequest { what, format })
}

#[test]
fn add_service_with_defaults_and_options() {
    assert_eq!(
        command("-A -t 10.0.0.1:80 -s wrr"),
        Command::AddService(VirtualService {
            id: tcp("10.0.0.1", 80),
            scheduler: SchedulerKind::Wrr,
            persistence: None
        })
    );
    // -p alone is 360 s (libipvs.h:34), per client (/32).
    let persistent = Some(Persistence {
        timeout_s: 360,
        prefix_len: 32,
    });
    let rr_persistent = VirtualService {
        id: tcp("10.0.0.1", 80),
        scheduler: SchedulerKind::Rr,
        persistence: persistent,
    };
    for line in [
        "-A -t 10.0.0.1:80 -s rr -p",
        "-A -t 10.0.0.1:80 -p -s rr",
        "-At 10.0.0.1:80 -p -s rr",
    ] {
        assert_eq!(command(line), Command::AddService(rr_persistent), "{line}");
    }
}

#[test]
fn persistence_timeout_and_netmask() {
    let expect = |timeout_s, prefix_len| {
        Command::AddService(VirtualService {
            id: tcp("10.0.0.1", 80),
            scheduler: SchedulerKind::Rr,
            persistence: Some(Persistence {
                timeout_s,
                prefix_len,
            }),
        })
    };
    assert_eq!(command("-A -t 10.0.0.1:80 -s rr -p 100"), expect(100, 32));
    assert_eq!(command("-A -t 10.0.0.1:80 -s rr -p100"), expect(100, 32));
    assert_eq!(
        command("-A -t 10.0.0.1:80 -s rr --persistent=100"),
        expect(100, 32)
    );
    assert_eq!(
        command("-A -t 10.0.0.1:80 -s rr -p 60 -M 255.255.255.0"),
        expect(60, 24)
    );
    assert_eq!(
        command("-A -t 10.0.0.1:80 -s rr -M 255.255.0.0 -p 60"),
        expect(60, 16)
    );
    assert_eq!(
        command("-A -t 10.0.0.1:80 -s rr -p 2678400"),
        expect(2_678_400, 32)
    );
}

#[test]
fn ipv6_services_and_prefix_netmask() {
    assert_eq!(
        command("-A -u [2001:db8::1]:53 -s sh -p -M 64"),
        Command::AddService(VirtualService {
            id: svc("2001:db8::1", 53, Protocol::Udp),
            scheduler: SchedulerKind::Sh {
                fallback: false,
                port: false
            },
            persistence: Some(Persistence {
                timeout_s: 360,
                prefix_len: 64
            }),
        })
    );
    // A bare IPv6 address has no port (ipvsadm.c:1254): port 0, so -p.
    assert_eq!(
        command("-A -t 2001:db8::1 -s rr -p"),
        Command::AddService(VirtualService {
            id: tcp("2001:db8::1", 0),
            scheduler: SchedulerKind::Rr,
            persistence: Some(Persistence {
                timeout_s: 360,
                prefix_len: 128
            }),
        })
    );
    assert_eq!(
        invalid("-A -u [2001:db8::1]:53 -s sh -p -M 129"),
        "illegal ipv6 netmask specified"
    );
    assert_eq!(
        invalid("-A -u [2001:db8::1]:53 -s sh -p -M 0"),
        "illegal ipv6 netmask specified"
    );
    // ipvsadm.c:1249: brackets need a port.
    assert_eq!(
        invalid("-A -t [2001:db8::1] -s rr"),
        "illegal virtual server address[:port] specified"
    );
}

#[test]
fn addresses_and_ports_by_name_and_inet_aton_forms() {
    let id = |line: &str| match command(line) {
        Command::DeleteService(id) => id,
        other => panic!("{other:?}"),
    };
    assert_eq!(id("-D -t 10.0.0.1:http"), tcp("10.0.0.1", 80));
    assert_eq!(id("-D -t 10.0.0.1:www"), tcp("10.0.0.1", 80));
    assert_eq!(
        id("-D -u 10.0.0.1:domain"),
        svc("10.0.0.1", 53, Protocol::Udp)
    );
    assert_eq!(id("-D -t web.example.com:80"), tcp("10.0.0.80", 80));
    assert_eq!(id("-D -t 10.1:80"), tcp("10.0.0.1", 80));
    assert_eq!(
        id("--delete-service --tcp-service=10.0.0.1:80"),
        tcp("10.0.0.1", 80)
    );
    // Port 0 when none is given; -D does not mind.
    assert_eq!(id("-D -t 10.0.0.1"), tcp("10.0.0.1", 0));
    assert_eq!(
        invalid("-D -u 10.0.0.1:http"),
        "illegal virtual server address[:port] specified"
    );
    assert_eq!(
        invalid("-D -t 80"),
        "illegal virtual server address[:port] specified"
    );
    assert_eq!(
        invalid("-D -t nowhere.example:80"),
        "illegal virtual server address[:port] specified"
    );
    assert_eq!(
        invalid("-D -t 10.0.0.1:65536"),
        "illegal virtual server address[:port] specified"
    );
}

#[test]
fn sched_flags() {
    let sched = |line: &str| match command(line) {
        Command::AddService(s) => s.scheduler,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        sched("-A -t 10.0.0.1:80 -s sh -b sh-fallback,sh-port"),
        SchedulerKind::Sh {
            fallback: true,
            port: true
        }
    );
    assert_eq!(
        sched("-A -t 10.0.0.1:80 -b sh-port -s sh"),
        SchedulerKind::Sh {
            fallback: false,
            port: true
        }
    );
    // flag-1/flag-2 are the same bits (ip_vs.h:36).
    assert_eq!(
        sched("-A -t 10.0.0.1:80 -s sh -b flag-1"),
        SchedulerKind::Sh {
            fallback: true,
            port: false
        }
    );
    assert_eq!(
        sched("--add-service -t 10.0.0.1:80 --scheduler sh --sched-flags sh-fallback"),
        SchedulerKind::Sh {
            fallback: true,
            port: false
        }
    );
    // ipvsadm.c:1307
    assert_eq!(
        invalid("-A -t 10.0.0.1:80 -s rr -b sh-port"),
        "incompatible scheduler flag `sh-port'"
    );
    assert_eq!(
        invalid("-A -t 10.0.0.1:80 -s sh -b mh-port"),
        "incompatible scheduler flag `mh-port'"
    );
    // ipvsadm.c:1325
    assert_eq!(
        invalid("-A -t 10.0.0.1:80 -s sh -b foo"),
        "invalid scheduler flag `foo'"
    );
    assert!(unsupported("-A -t 10.0.0.1:80 -s rr -b flag-1").contains("flag-1"));
}

#[test]
fn schedulers_xvs_lacks_are_refused_by_name() {
    let message = unsupported("-A -t 10.0.0.1:80 -s lc");
    assert!(
        message.contains("'lc'") && message.contains("rr, wrr, sh"),
        "{message}"
    );
    // Without -s ipvsadm picks wlc (ipvsadm.c:1034), which XVS cannot do.
    let message = unsupported("-A -t 10.0.0.1:80");
    assert!(
        message.contains("wlc") && message.contains("-s rr"),
        "{message}"
    );
    assert!(unsupported("-E -t 10.0.0.1:80 -p").contains("wlc"));
}

#[test]
fn edit_service() {
    assert_eq!(
        command("-E -t 10.0.0.1:80 -s wrr"),
        Command::EditService(VirtualService {
            id: tcp("10.0.0.1", 80),
            scheduler: SchedulerKind::Wrr,
            persistence: None
        })
    );
}

#[test]
fn service_value_errors() {
    // ipvsadm.c:1177, 1024, 729
    assert_eq!(
        invalid("-A -t 10.0.0.1:80 -s rr -p 0"),
        "invalid timeout value `0' specified"
    );
    assert_eq!(
        invalid("-A -t 10.0.0.1:80 -s rr -p 2678401"),
        "invalid timeout value `2678401' specified"
    );
    assert_eq!(
        invalid("-A -t 10.0.0.1:80 -s rr -p x"),
        "invalid timeout value `x' specified"
    );
    assert_eq!(
        invalid("-A -t 10.0.0.1 -s rr"),
        "Zero port specified for non-persistent service"
    );
    assert_eq!(
        invalid("-A -t 10.0.0.1:80 -s rr -p -M 300.0.0.0"),
        "illegal virtual server persistent mask specified"
    );
    assert!(unsupported("-A -t 10.0.0.1:80 -s rr -p -M 255.0.255.0").contains("not contiguous"));
}

#[test]
fn add_server_direct_routing() {
    let real = |addr: &str, weight| {
        Command::AddServer(RealServer {
            service: tcp("10.0.0.1", 80),
            addr: addr.parse().unwrap(),
            port: 80,
            weight,
        })
    };
    assert_eq!(
        command("-a -t 10.0.0.1:80 -r 10.0.0.2"),
        real("10.0.0.2", 1)
    );
    assert_eq!(
        command("-a -t 10.0.0.1:80 -r 10.0.0.2 -g -w 5"),
        real("10.0.0.2", 5)
    );
    assert_eq!(
        command("-a -t 10.0.0.1:80 -r 10.0.0.2:80 -g -w 0"),
        real("10.0.0.2", 0)
    );
    assert_eq!(
        command("--add-server -t 10.0.0.1:80 --real-server 10.0.0.2 --gatewaying --weight 3"),
        real("10.0.0.2", 3)
    );
    // Direct routing keeps the service's port (ipvsadm.c:1048).
    assert_eq!(
        command("-a -t 10.0.0.1:80 -r 10.0.0.2:8080"),
        real("10.0.0.2", 1)
    );
    // -r before -t works too.
    assert_eq!(
        command("-a -r 10.0.0.2 -t 10.0.0.1:80"),
        real("10.0.0.2", 1)
    );
    assert_eq!(
        command("-e -t 10.0.0.1:80 -r 10.0.0.2 -w 7"),
        Command::EditServer(RealServer {
            service: tcp("10.0.0.1", 80),
            addr: "10.0.0.2".parse().unwrap(),
            port: 80,
            weight: 7
        })
    );
    assert_eq!(
        command("-a -t [2001:db8::1]:80 -r [2001:db8::2]:80"),
        Command::AddServer(RealServer {
            service: tcp("2001:db8::1", 80),
            addr: "2001:db8::2".parse().unwrap(),
            port: 80,
            weight: 1
        })
    );
}

#[test]
fn add_server_errors() {
    // ipvsadm.c:766, 745, 1056
    assert_eq!(
        invalid("-a -t 10.0.0.1:80 -r 10.0.0.2 -w 65536"),
        "illegal weight specified"
    );
    assert_eq!(
        invalid("-a -t 10.0.0.1:80 -r 10.0.0.2 -w x"),
        "illegal weight specified"
    );
    assert_eq!(
        invalid("-a -t 10.0.0.1:80 -r 10.0.0.2:nope"),
        "illegal real server address[:port] specified"
    );
    assert_eq!(
        invalid("-a -t 10.0.0.1:80 -r [2001:db8::2]:80"),
        "Different address family is allowed only for tunneling servers"
    );
    assert!(unsupported("-a -t 10.0.0.1:80 -r 10.0.0.2 -m").contains("not supported yet"));
    assert!(unsupported("-a -t 10.0.0.1:80 -r 10.0.0.2 --masquerading").contains("-m"));
    assert!(unsupported("-a -t 10.0.0.1:80 -r 10.0.0.2 -i").contains("not supported yet"));
}

#[test]
fn delete_server_keeps_the_given_port() {
    assert_eq!(
        command("-d -t 10.0.0.1:80 -r 10.0.0.2:8080"),
        Command::DeleteServer {
            service: tcp("10.0.0.1", 80),
            addr: "10.0.0.2".parse().unwrap(),
            port: 8080
        }
    );
    assert_eq!(
        command("-d -t 10.0.0.1:80 -r 10.0.0.2"),
        Command::DeleteServer {
            service: tcp("10.0.0.1", 80),
            addr: "10.0.0.2".parse().unwrap(),
            port: 80
        }
    );
}

#[test]
fn clear_zero_set_save_restore() {
    assert_eq!(command("-C"), Command::Clear);
    assert_eq!(command("--clear"), Command::Clear);
    assert_eq!(command("-Z"), Command::Zero(None));
    assert_eq!(
        command("--zero -t 10.0.0.1:80"),
        Command::Zero(Some(tcp("10.0.0.1", 80)))
    );
    assert_eq!(
        command("--set 900 120 300"),
        Command::SetTimeouts(Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300
        })
    );
    assert_eq!(
        command("--set 0 0 0"),
        Command::SetTimeouts(Timeouts {
            tcp: 0,
            tcp_fin: 0,
            udp: 0
        })
    );
    assert_eq!(command("-S"), Command::Save { numeric: false });
    assert_eq!(command("-S -n"), Command::Save { numeric: true });
    assert_eq!(command("--save --numeric"), Command::Save { numeric: true });
    assert_eq!(command("-R"), Command::Restore);
    assert_eq!(command("--restore"), Command::Restore);
    assert_eq!(command("-h"), Command::Help);
    assert_eq!(command("--version"), Command::Version);
}

#[test]
fn list_variants() {
    let numeric = ListFormat {
        numeric: true,
        ..ListFormat::default()
    };
    assert_eq!(command(""), list(ListWhat::All, ListFormat::default()));
    assert_eq!(command("-L"), list(ListWhat::All, ListFormat::default()));
    assert_eq!(command("-l -n"), list(ListWhat::All, numeric));
    assert_eq!(command("-Ln"), list(ListWhat::All, numeric));
    assert_eq!(command("--list --numeric"), list(ListWhat::All, numeric));
    assert_eq!(command("-L -n --sort"), list(ListWhat::All, numeric));
    // ipvsadm wants the command first; xvsadm takes it anywhere.
    assert_eq!(command("-n -L"), list(ListWhat::All, numeric));
    let bare_json = parse("--json").unwrap();
    assert!(bare_json.json);
    assert_eq!(
        bare_json.command,
        list(ListWhat::All, ListFormat::default())
    );
    assert_eq!(
        command("-L -n --stats --exact --nosort"),
        list(
            ListWhat::All,
            ListFormat {
                stats: true,
                exact: true,
                nosort: true,
                ..numeric
            }
        )
    );
    assert_eq!(
        command("-L --rate"),
        list(
            ListWhat::All,
            ListFormat {
                rate: true,
                ..ListFormat::default()
            }
        )
    );
    assert_eq!(
        command("-L --persistent-conn"),
        list(
            ListWhat::All,
            ListFormat {
                persistent_conn: true,
                ..ListFormat::default()
            }
        )
    );
    assert_eq!(command("-L -c -n"), list(ListWhat::Connections, numeric));
    assert_eq!(command("-Lcn"), list(ListWhat::Connections, numeric));
    assert_eq!(
        command("-L --connection"),
        list(ListWhat::Connections, ListFormat::default())
    );
    assert_eq!(
        command("-L --timeout"),
        list(ListWhat::Timeouts, ListFormat::default())
    );
    assert_eq!(
        command("-L -n -t 10.0.0.1:80"),
        list(ListWhat::Service(tcp("10.0.0.1", 80)), numeric)
    );
}

#[test]
fn option_table_errors() {
    // generic_opt_check, ipvsadm.c:1360-1376
    assert_eq!(
        invalid("-L -s rr"),
        "Illegal 'scheduler' option with the 'list' command"
    );
    assert_eq!(
        invalid("-C -n"),
        "Illegal 'numeric' option with the 'flush' command"
    );
    assert_eq!(
        invalid("-S --stats"),
        "Illegal 'stats' option with the 'save' command"
    );
    assert_eq!(
        invalid("-d -t 10.0.0.1:80 -r 10.0.0.2 -w 3"),
        "Illegal 'weight' option with the 'delete-server' command"
    );
    assert_eq!(
        invalid("-A -s rr"),
        "You need to supply the 'service-address' option for the 'add-service' command"
    );
    assert_eq!(
        invalid("-a -t 10.0.0.1:80"),
        "You need to supply the 'real-server' option for the 'add-server' command"
    );
    assert_eq!(
        invalid("-L -c -t 10.0.0.1:80"),
        "The option 'service-address' conflicts with the 'connection' option in the 'list' command"
    );
    assert_eq!(
        invalid("-L -c --timeout"),
        "The option 'timeout' conflicts with the 'connection' option in the 'list' command"
    );
    // ipvsadm.c:1076
    assert_eq!(
        invalid("-L -c --stats"),
        "options conflicts in the list command"
    );
    assert_eq!(
        invalid("-L --timeout --persistent-conn"),
        "options conflicts in the list command"
    );
    // set_option / set_command, ipvsadm.c:1421, 1430
    assert_eq!(
        invalid("-a -t 10.0.0.1:80 -r 10.0.0.2 -g -g"),
        "multiple 'forwarding-method' options specified"
    );
    assert_eq!(invalid("-L -n -n"), "multiple 'numeric' options specified");
    assert_eq!(
        invalid("-A -E -t 10.0.0.1:80"),
        "multiple commands specified"
    );
}

#[test]
fn syntax_errors() {
    // popt's messages as ipvsadm prints them (ipvsadm.c:931)
    assert_eq!(invalid("-L --foo"), "--foo: unknown option");
    assert_eq!(invalid("-L -q"), "-q: unknown option");
    assert_eq!(invalid("-A -t"), "-t: missing argument");
    assert_eq!(
        invalid("-L --numeric=yes"),
        "--numeric: option does not take an argument"
    );
    // ipvsadm.c:951, 955
    assert_eq!(
        invalid("--set 1 2"),
        "--set option requires 3 timeout values"
    );
    assert_eq!(invalid("--set 1 2 3 4"), "unexpected argument 4");
    assert_eq!(
        invalid("--set 1 2 x"),
        "invalid timeout value `x' specified"
    );
    assert_eq!(invalid("-L extra"), "unexpected argument extra");
    assert!(invalid("-n").contains("no command"));
}

#[test]
fn ipvsadm_features_xvs_lacks() {
    for line in [
        "-A -f 1 -s rr",
        "-A --sctp-service 10.0.0.1:80 -s rr",
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -x 5",
        "-A -t 10.0.0.1:80 -s rr -o",
        "-A -t 10.0.0.1:80 -s rr --pe sip",
        "--start-daemon master",
        "--stop-daemon backup",
        "-L --daemon",
        "-L --thresholds",
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type gue",
    ] {
        assert!(unsupported(line).contains("not supported"), "{line}");
    }
}

#[test]
fn json_and_socket() {
    let inv = parse("--json -L -n").unwrap();
    assert!(inv.json);
    assert_eq!(inv.socket, None);
    let inv = parse("-L --socket /run/xvs.sock").unwrap();
    assert_eq!(inv.socket, Some(PathBuf::from("/run/xvs.sock")));
    let inv = parse("--socket=/run/a.sock -C").unwrap();
    assert_eq!(inv.socket, Some(PathBuf::from("/run/a.sock")));
    assert!(invalid("--json -A -t 10.0.0.1:80 -s rr").contains("--json"));
    assert!(invalid("-L --socket").contains("missing argument"));
}

#[test]
fn socket_from_the_environment_unless_given() {
    let args: Vec<String> = vec!["-L".into()];
    let from_env = parse_args_with_env(&args, &Names::new(), Some("/env.sock".into())).unwrap();
    assert_eq!(from_env.socket, Some(PathBuf::from("/env.sock")));
    let args: Vec<String> = ["-L", "--socket", "/flag.sock"].map(String::from).to_vec();
    let from_flag = parse_args_with_env(&args, &Names::new(), Some("/env.sock".into())).unwrap();
    assert_eq!(from_flag.socket, Some(PathBuf::from("/flag.sock")));
}

#[test]
fn realserver_subcommand() {
    let v4: IpAddr = "10.0.0.100".parse().unwrap();
    let v6: IpAddr = "2001:db8::100".parse().unwrap();
    assert_eq!(
        command("realserver up --vip 10.0.0.100"),
        Command::RealServer {
            action: RealServerAction::Up,
            vips: vec![v4]
        }
    );
    assert_eq!(
        command("realserver down --vip 10.0.0.100 --vip=[2001:db8::100]"),
        Command::RealServer {
            action: RealServerAction::Down,
            vips: vec![v4, v6]
        }
    );
    let inv = parse("--socket /s realserver status --vip 2001:db8::100 --json").unwrap();
    assert_eq!(
        inv.command,
        Command::RealServer {
            action: RealServerAction::Status,
            vips: vec![v6]
        }
    );
    assert!(inv.json);
    assert_eq!(inv.socket, Some(PathBuf::from("/s")));

    assert!(invalid("realserver up").contains("--vip"));
    assert!(invalid("realserver --vip 10.0.0.100").contains("up, down or status"));
    assert!(invalid("realserver sideways --vip 10.0.0.100").contains("sideways"));
    assert!(invalid("realserver up --vip nothere").contains("not an IP address"));
    assert!(invalid("realserver up --vip").contains("missing argument"));
    assert!(invalid("realserver up --vip 10.0.0.1 --bogus").contains("--bogus"));
}

#[test]
fn vrrp_subcommand() {
    assert_eq!(command("vrrp"), Command::Vrrp);
    let inv = parse("--json vrrp --socket=/s").unwrap();
    assert_eq!(
        (inv.command, inv.json, inv.socket),
        (Command::Vrrp, true, Some(PathBuf::from("/s")))
    );
    assert!(invalid("vrrp now").contains("unexpected argument now"));
    assert!(invalid("vrrp --socket").contains("missing argument"));
}

#[test]
fn odd_input_never_panics() {
    for line in [
        "-",
        "--",
        "-- -L",
        "---",
        "-L -t :",
        "-L -t [",
        "-L -t []:",
        "-A -t 10.0.0.1:80 -s sh -b ,",
        "-A -t 10.0.0.1:80 -s sh -b ,,",
        "-A -t 10.0.0.1:80 -s",
        "-A -t 10.0.0.1:80 -s rr -p -M",
        "-p",
        "--persistent=",
        "-A -t é:80 -s rr",
        "-A -té -s rr",
        "-Lé",
        "-A -t 10.0.0.1:80 -s rr -p -M ::",
        "--set -1 0 0",
        "realserver",
        "--json",
        "--socket",
    ] {
        let _ = parse(line);
    }
}
