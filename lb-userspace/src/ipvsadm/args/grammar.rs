//! ipvsadm's semantics: which options go with which command, their values,
//! defaults and errors (ipvsadm.c:692-968, 992-1068, 1149-1346).

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
};

use crate::model::{Persistence, Protocol, SchedulerKind, ServiceId};

use super::{
    super::{
        c_compat::{atoi, inet_aton, string_to_number},
        format::ListFormat,
        listing::Timeouts,
        resolve::Resolver,
    },
    flags::{tokenize, Cmd, Forward, Given, Meaning, Opt},
    invalid, unsupported, ArgError, Command, ListRequest, ListWhat, Parsed, RealServer,
    VirtualService, DEFAULT_PERSISTENT_TIMEOUT, SUPPORTED_SCHEDULERS,
};

/// ipvsadm's scheduler when `-s` is not given (`DEF_SCHED`, ipvsadm.c:358).
const DEFAULT_SCHEDULER: &str = "wlc";
/// The largest timeout ipvsadm takes (`MAX_TIMEOUT`, ipvsadm.c:124).
const MAX_TIMEOUT: i64 = 86400 * 31;

/// What the flags of one command line add up to, before they are checked.
#[derive(Default)]
struct Collected {
    command: Option<Cmd>,
    options: BTreeMap<Opt, Option<String>>,
    protocol: Option<Protocol>,
    forward: Option<Forward>,
    json: bool,
    socket: Option<PathBuf>,
}

impl Collected {
    /// `set_option` (ipvsadm.c:1426): each option at most once.
    fn set_option(&mut self, opt: Opt, value: Option<String>) -> Result<(), ArgError> {
        if self.options.insert(opt, value).is_some() {
            return Err(invalid(format!(
                "multiple '{}' options specified",
                opt.name()
            )));
        }
        Ok(())
    }

    fn has(&self, opt: Opt) -> bool {
        self.options.contains_key(&opt)
    }

    fn value(&self, opt: Opt) -> Option<&str> {
        self.options.get(&opt).and_then(|v| v.as_deref())
    }
}

/// The ipvsadm grammar (not `realserver`).
pub(crate) fn parse_ipvsadm(args: &[String], names: &dyn Resolver) -> Result<Parsed, ArgError> {
    let tokens = tokenize(args)?;
    let collected = collect(tokens.given)?;
    let Some(cmd) = collected.command else {
        if collected.options.is_empty() && tokens.positional.is_empty() {
            // ipvsadm with no arguments lists the table (ipvsadm.c:467).
            let command = Command::List(ListRequest {
                what: ListWhat::All,
                format: ListFormat::default(),
            });
            return Ok(Parsed {
                command,
                json: collected.json,
                socket: collected.socket,
            });
        }
        return Err(invalid(
            "no command given (one of -A -E -D -a -e -d -C -L -Z -S -R --set); try -h",
        ));
    };
    // ipvsadm -h and -v ignore whatever else is on the line.
    if !matches!(cmd, Cmd::Help | Cmd::Version) {
        check_options(cmd, &collected)?;
    }
    let command = build(cmd, &collected, &tokens.positional, names)?;
    Ok(Parsed {
        command,
        json: collected.json,
        socket: collected.socket,
    })
}

fn collect(given: Vec<Given>) -> Result<Collected, ArgError> {
    let mut c = Collected::default();
    for g in given {
        match g.meaning {
            Meaning::Command(cmd) => {
                // set_command (ipvsadm.c:1418)
                if c.command.replace(cmd).is_some() {
                    return Err(invalid("multiple commands specified"));
                }
            }
            Meaning::Option(opt) => c.set_option(opt, g.value)?,
            Meaning::Service(proto) => {
                c.set_option(Opt::Service, g.value)?;
                c.protocol = Some(proto);
            }
            Meaning::Forward(method) => {
                c.set_option(Opt::Forward, None)?;
                c.forward = Some(method);
            }
            Meaning::Sort => {}
            Meaning::Json => c.json = true,
            Meaning::Socket => c.socket = g.value.map(PathBuf::from),
            Meaning::Unsupported(what) => {
                return Err(unsupported(format!(
                    "{}: {what} is not supported by XVS",
                    g.spelled
                )));
            }
        }
    }
    Ok(c)
}

/// `commands_v_options` (ipvsadm.c:278) for the options XVS implements:
/// one column per `Opt`, in order (n -n, c -c, S -t/-u, s -s, p -p, M -M,
/// r -r, f -g/-m/-i, w -w, T --timeout, t --stats, R --rate,
/// P --persistent-conn, o --nosort, x --exact, b -b). '+' required,
/// 'x' illegal, '1' at most one of the '1's, ' ' optional.
#[rustfmt::skip]
fn option_rules(cmd: Cmd) -> &'static [u8; 16] {
    match cmd {
        //                                ncSspMrfwTtRPoxb
        Cmd::Add | Cmd::Edit =>         b"xx+   xxxxxxxxx ",
        Cmd::Del =>                     b"xx+xxxxxxxxxxxxx",
        Cmd::List =>                    b" 11xxxxxx1     x",
        Cmd::AddDest | Cmd::EditDest => b"xx+xxx+  xxxxxxx",
        Cmd::DelDest =>                 b"xx+xxx+xxxxxxxxx",
        Cmd::Save =>                    b" xxxxxxxxxxxxxxx",
        Cmd::Zero =>                    b"xx xxxxxxxxxxxxx",
        Cmd::Flush | Cmd::SetTimeout | Cmd::Restore | Cmd::Help | Cmd::Version =>
                                        b"xxxxxxxxxxxxxxxx",
    }
}

/// `generic_opt_check` (ipvsadm.c:1348) and the list command's conflicts
/// (ipvsadm.c:1072).
fn check_options(cmd: Cmd, c: &Collected) -> Result<(), ArgError> {
    let rules = option_rules(cmd);
    let mut exclusive: Option<Opt> = None;
    for (opt, rule) in Opt::ALL.into_iter().zip(rules.iter()) {
        match (c.has(opt), rule) {
            (false, b'+') => {
                return Err(invalid(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    opt.name(),
                    cmd.name()
                )));
            }
            (true, b'x') => {
                return Err(invalid(format!(
                    "Illegal '{}' option with the '{}' command",
                    opt.name(),
                    cmd.name()
                )));
            }
            (true, b'1') => {
                if let Some(first) = exclusive {
                    return Err(invalid(format!(
                        "The option '{}' conflicts with the '{}' option in the '{}' command",
                        opt.name(),
                        first.name(),
                        cmd.name()
                    )));
                }
                exclusive = Some(opt);
            }
            _ => {}
        }
    }
    let listing_other_than_services = c.has(Opt::Connection) || c.has(Opt::Timeout);
    if cmd == Cmd::List
        && ((listing_other_than_services && (c.has(Opt::Stats) || c.has(Opt::Rate)))
            || (c.has(Opt::Timeout) && c.has(Opt::PersistentConn)))
    {
        return Err(invalid("options conflicts in the list command"));
    }
    Ok(())
}

/// The typed command, once the options fit the command.
fn build(
    cmd: Cmd,
    c: &Collected,
    positional: &[String],
    names: &dyn Resolver,
) -> Result<Command, ArgError> {
    // ipvsadm.c:954: only --set takes arguments that are not options.
    if let (false, Some(extra)) = (cmd == Cmd::SetTimeout, positional.first()) {
        return Err(invalid(format!("unexpected argument {extra}")));
    }
    Ok(match cmd {
        Cmd::Add => Command::AddService(virtual_service(c, names)?),
        Cmd::Edit => Command::EditService(virtual_service(c, names)?),
        Cmd::Del => Command::DeleteService(service_id(c, names)?),
        Cmd::AddDest => Command::AddServer(real_server(c, names)?),
        Cmd::EditDest => Command::EditServer(real_server(c, names)?),
        Cmd::DelDest => {
            let service = service_id(c, names)?;
            let (addr, port) = server_address(c, service, names)?;
            Command::DeleteServer {
                service,
                addr,
                port,
            }
        }
        Cmd::Flush => Command::Clear,
        Cmd::Zero => Command::Zero(optional_service_id(c, names)?),
        Cmd::SetTimeout => set_timeouts(positional)?,
        Cmd::List => Command::List(list_request(c, names)?),
        Cmd::Save => Command::Save {
            numeric: c.has(Opt::Numeric),
        },
        Cmd::Restore => Command::Restore,
        Cmd::Help => Command::Help,
        Cmd::Version => Command::Version,
    })
}

/// `--set TCP TCPFIN UDP` (ipvsadm.c:938).
fn set_timeouts(positional: &[String]) -> Result<Command, ArgError> {
    let [tcp, tcp_fin, udp, rest @ ..] = positional else {
        return Err(invalid("--set option requires 3 timeout values"));
    };
    if let Some(extra) = rest.first() {
        return Err(invalid(format!("unexpected argument {extra}")));
    }
    Ok(Command::SetTimeouts(Timeouts {
        tcp: parse_timeout(tcp, 0)?,
        tcp_fin: parse_timeout(tcp_fin, 0)?,
        udp: parse_timeout(udp, 0)?,
    }))
}

/// `parse_timeout` (ipvsadm.c:1168).
fn parse_timeout(text: &str, min: i64) -> Result<u32, ArgError> {
    string_to_number(text, min, MAX_TIMEOUT)
        .map(|t| t as u32)
        .ok_or_else(|| invalid(format!("invalid timeout value `{text}' specified")))
}

fn list_request(c: &Collected, names: &dyn Resolver) -> Result<ListRequest, ArgError> {
    let what = if c.has(Opt::Connection) {
        ListWhat::Connections
    } else if let Some(id) = optional_service_id(c, names)? {
        ListWhat::Service(id)
    } else if c.has(Opt::Timeout) {
        ListWhat::Timeouts
    } else {
        ListWhat::All
    };
    let format = ListFormat {
        numeric: c.has(Opt::Numeric),
        exact: c.has(Opt::Exact),
        stats: c.has(Opt::Stats),
        rate: c.has(Opt::Rate),
        persistent_conn: c.has(Opt::PersistentConn),
        nosort: c.has(Opt::NoSort),
    };
    Ok(ListRequest { what, format })
}

fn optional_service_id(c: &Collected, names: &dyn Resolver) -> Result<Option<ServiceId>, ArgError> {
    if c.has(Opt::Service) {
        service_id(c, names).map(Some)
    } else {
        Ok(None)
    }
}

/// `-t|-u VIP[:PORT]` (ipvsadm.c:692); no port is port 0.
fn service_id(c: &Collected, names: &dyn Resolver) -> Result<ServiceId, ArgError> {
    let proto = c.protocol.unwrap_or(Protocol::Tcp);
    let text = c.value(Opt::Service).unwrap_or_default();
    let (vip, port) = parse_service(text, proto, names)
        .ok_or_else(|| invalid("illegal virtual server address[:port] specified"))?;
    Ok(ServiceId {
        vip,
        port: port.unwrap_or(0),
        proto,
    })
}

/// `-A`/`-E` (ipvsadm.c:1020).
fn virtual_service(c: &Collected, names: &dyn Resolver) -> Result<VirtualService, ArgError> {
    let id = service_id(c, names)?;
    let scheduler = scheduler(c.value(Opt::Scheduler), c.value(Opt::SchedFlags))?;
    let persistence = if c.has(Opt::Persistent) {
        let timeout = match c.value(Opt::Persistent) {
            Some(text) => parse_timeout(text, 1)?,
            None => DEFAULT_PERSISTENT_TIMEOUT,
        };
        let prefix_len = match c.value(Opt::Netmask) {
            Some(mask) => persistence_prefix(mask, id.vip, names)?,
            None => full_prefix(id.vip),
        };
        Some(Persistence {
            timeout_s: timeout,
            prefix_len,
        })
    } else {
        // ipvsadm keeps a -M given without -p, but it has no effect.
        if let Some(mask) = c.value(Opt::Netmask) {
            persistence_prefix(mask, id.vip, names)?;
        }
        None
    };
    if id.port == 0 && persistence.is_none() {
        return Err(invalid("Zero port specified for non-persistent service"));
    }
    Ok(VirtualService {
        id,
        scheduler,
        persistence,
    })
}

fn full_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv6() {
        128
    } else {
        32
    }
}

/// `-M`: a netmask for IPv4 (`parse_netmask`, ipvsadm.c:1206), a prefix
/// length for IPv6 (`atoi`, ipvsadm.c:731).
fn persistence_prefix(text: &str, vip: IpAddr, names: &dyn Resolver) -> Result<u8, ArgError> {
    if vip.is_ipv6() {
        let prefix = atoi(text);
        return match u8::try_from(prefix) {
            Ok(p) if (1..=128).contains(&p) => Ok(p),
            _ => Err(invalid("illegal ipv6 netmask specified")),
        };
    }
    let mask = inet_aton(text)
        .or_else(|| names.host_addr(text))
        .ok_or_else(|| invalid("illegal virtual server persistent mask specified"))?;
    contiguous_prefix(mask).ok_or_else(|| {
        unsupported(format!(
            "netmask {mask} is not contiguous; XVS supports prefix netmasks only \
             (e.g. 255.255.255.0)"
        ))
    })
}

/// The prefix length of a netmask made of leading ones only.
fn contiguous_prefix(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    let canonical = (u64::from(u32::MAX) << (32 - ones)) as u32;
    (bits == canonical).then_some(ones as u8)
}

/// `-s` and `-b` (`parse_sched_flags`, ipvsadm.c:1289), limited to what XVS
/// schedules.
fn scheduler(name: Option<&str>, flags: Option<&str>) -> Result<SchedulerKind, ArgError> {
    let sched = name.filter(|n| !n.is_empty()).unwrap_or(DEFAULT_SCHEDULER);
    let bits = match flags {
        Some(text) => sched_flag_bits(sched, text)?,
        None => [false; 3],
    };
    let kind = match sched {
        "rr" => SchedulerKind::Rr,
        "wrr" => SchedulerKind::Wrr,
        // IP_VS_SVC_F_SCHED_SH_FALLBACK is flag-1, _SH_PORT flag-2 (ip_vs.h:36).
        "sh" => SchedulerKind::Sh {
            fallback: bits[0],
            port: bits[1],
        },
        _ if name.is_none() => {
            return Err(unsupported(format!(
                "no scheduler given: ipvsadm's default, {DEFAULT_SCHEDULER}, is not supported \
                 by XVS; use -s rr, -s wrr or -s sh"
            )));
        }
        other => {
            return Err(unsupported(format!(
                "scheduler '{other}' is not supported by XVS (supported: {})",
                SUPPORTED_SCHEDULERS.join(", ")
            )));
        }
    };
    let meaningless = match kind {
        SchedulerKind::Sh { .. } => bits[2].then_some("flag-3"),
        _ => bits
            .iter()
            .position(|&b| b)
            .map(|i| ["flag-1", "flag-2", "flag-3"][i]),
    };
    if let Some(flag) = meaningless {
        return Err(unsupported(format!(
            "scheduler flag '{flag}' has no meaning for {sched} in XVS"
        )));
    }
    Ok(kind)
}

/// Which of IPVS's three scheduler flags a `-b` list sets.
fn sched_flag_bits(sched: &str, text: &str) -> Result<[bool; 3], ArgError> {
    let mut bits = [false; 3];
    // An empty -b is ignored (ipvsadm.c:957); strtok skips empty fields, and
    // ipvsadm would crash on a list of commas only.
    if text.is_empty() {
        return Ok(bits);
    }
    let flags: Vec<&str> = text.split(',').filter(|f| !f.is_empty()).collect();
    if flags.is_empty() {
        return Err(invalid(format!("invalid scheduler flag `{text}'")));
    }
    for flag in flags {
        let (bit, only_for) = match flag {
            "flag-1" => (0, None),
            "flag-2" => (1, None),
            "flag-3" => (2, None),
            "sh-fallback" => (0, Some("sh")),
            "sh-port" => (1, Some("sh")),
            "mh-fallback" => (0, Some("mh")),
            "mh-port" => (1, Some("mh")),
            _ => return Err(invalid(format!("invalid scheduler flag `{flag}'"))),
        };
        if only_for.is_some_and(|s| s != sched) {
            return Err(invalid(format!("incompatible scheduler flag `{flag}'")));
        }
        bits[bit] = true;
    }
    Ok(bits)
}

/// `-a`/`-e` (ipvsadm.c:736-766, 1042-1057).
fn real_server(c: &Collected, names: &dyn Resolver) -> Result<RealServer, ArgError> {
    let service = service_id(c, names)?;
    match c.forward.unwrap_or(Forward::Gatewaying) {
        Forward::Gatewaying => {}
        Forward::Masquerading => {
            return Err(unsupported(
                "masquerading (-m, NAT) is not supported yet: XVS forwards by direct routing (-g)",
            ));
        }
        Forward::Ipip => {
            return Err(unsupported(
                "tunneling (-i) is not supported yet: XVS forwards by direct routing (-g)",
            ));
        }
    }
    let (addr, _) = server_address(c, service, names)?;
    if addr.is_ipv6() != service.vip.is_ipv6() {
        return Err(invalid(
            "Different address family is allowed only for tunneling servers",
        ));
    }
    let weight = match c.value(Opt::Weight) {
        Some(text) => string_to_number(text, 0, 65535)
            .ok_or_else(|| invalid("illegal weight specified"))? as u32,
        None => 1,
    };
    // Direct routing cannot change the port: the real gets the service's.
    Ok(RealServer {
        service,
        addr,
        port: service.port,
        weight,
    })
}

/// `-r RIP[:PORT]`; without a port, the service's (ipvsadm.c:747).
fn server_address(
    c: &Collected,
    service: ServiceId,
    names: &dyn Resolver,
) -> Result<(IpAddr, u16), ArgError> {
    let text = c.value(Opt::Server).unwrap_or_default();
    let (addr, port) = parse_service(text, service.proto, names)
        .ok_or_else(|| invalid("illegal real server address[:port] specified"))?;
    Ok((addr, port.unwrap_or(service.port)))
}

/// `parse_service` (ipvsadm.c:1231): `[IPv6]:port`, a bare IPv6 address
/// (no port), or `IPv4-or-host[:port]`, the port a number or a service
/// name. None where ipvsadm finds no address.
fn parse_service(
    text: &str,
    proto: Protocol,
    names: &dyn Resolver,
) -> Option<(IpAddr, Option<u16>)> {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (addr_text, bracket_port) = match text.strip_prefix('[') {
        Some(inner) => {
            let (addr, after) = inner.split_once(']')?;
            (addr, Some(after.strip_prefix(':')?))
        }
        None => (text, None),
    };
    let (addr, port_text) = match addr_text.parse::<std::net::Ipv6Addr>() {
        Ok(v6) => (IpAddr::V6(v6), bracket_port),
        // Not IPv6: the port follows the last ':' (a port after brackets
        // around a non-IPv6 address is dropped, as in ipvsadm).
        Err(_) => {
            let (host, port) = match addr_text.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (addr_text, None),
            };
            let v4 = inet_aton(host).or_else(|| names.host_addr(host))?;
            (IpAddr::V4(v4), port)
        }
    };
    let port = match port_text {
        Some(p) => Some(parse_port(p, proto, names)?),
        None => None,
    };
    Some((addr, port))
}

/// A port number or a service name (ipvsadm.c:1278-1283).
fn parse_port(text: &str, proto: Protocol, names: &dyn Resolver) -> Option<u16> {
    string_to_number(text, 0, 65535)
        .map(|p| p as u16)
        .or_else(|| names.service_port(text, proto))
}
