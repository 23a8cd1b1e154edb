//! ipvsadm 1.31's listings, byte for byte (trailing blanks included), from
//! the `listing` model. The printf formats are quoted next to the code that
//! reproduces them, with their ipvsadm.c lines. The one deliberate change:
//! the banner says "XDP Virtual Server" where ipvsadm says "IP Virtual
//! Server".

use std::{fmt::Write as _, net::IpAddr};

use serde::Serialize;

use crate::model::Protocol;

use super::{
    c_compat::{inet_ntop, truncate_bytes},
    listing::{Connection, Dest, ForwardMethod, Service, ServiceTable, Timeouts},
    resolve::Resolver,
    sort::{cmp_dests, cmp_services, glibc_qsort_order},
};

/// The `-L` options that change what is printed (ipvsadm's `FMT_*` flags,
/// ipvsadm.c:342).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListFormat {
    /// `-n`: no name lookups.
    pub numeric: bool,
    /// `--exact`: no K/M/G/T scaling of counters.
    pub exact: bool,
    /// `--stats`.
    pub stats: bool,
    /// `--rate`.
    pub rate: bool,
    /// `--persistent-conn`.
    pub persistent_conn: bool,
    /// `--nosort`: the daemon's order.
    pub nosort: bool,
}

/// Which body layout a listing uses; ipvsadm tests its flags in this order
/// (`print_title`, ipvsadm.c:1873, and `print_service_entry`, :2017, :2086).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    Stats,
    Rate,
    PersistentConn,
    Plain,
}

impl ListFormat {
    fn layout(&self) -> Layout {
        if self.stats {
            Layout::Stats
        } else if self.rate {
            Layout::Rate
        } else if self.persistent_conn {
            Layout::PersistentConn
        } else {
            Layout::Plain
        }
    }
}

/// `ipvsadm -L [-n] [--stats|--rate|--persistent-conn] [--exact]`:
/// `list_all` (ipvsadm.c:2145).
pub fn service_table(table: &ServiceTable, format: &ListFormat, names: &dyn Resolver) -> String {
    // ipvsadm.c:2151 "IP Virtual Server version %d.%d.%d (size=%d)\n"
    let mut out = format!(
        "XDP Virtual Server version {} (size={})\n",
        table.version, table.size
    );
    out.push_str(&title(format.layout()));
    for service in services_in_order(table, format.nosort) {
        write_service(&mut out, service, format, names);
    }
    out
}

/// `ipvsadm -L -t|-u VIP:PORT`: `list_service` (ipvsadm.c:2129), which
/// prints no banner.
pub fn single_service(service: &Service, format: &ListFormat, names: &dyn Resolver) -> String {
    let mut out = title(format.layout());
    write_service(&mut out, service, format, names);
    out
}

/// `ipvsadm -S [-n]`: `list_all` with `FMT_RULE`, always sorted (SAVE takes
/// no `--nosort`, ipvsadm.c:293).
pub fn rules(table: &ServiceTable, numeric: bool, names: &dyn Resolver) -> String {
    let mut out = String::new();
    for service in services_in_order(table, false) {
        write_rules(&mut out, service, numeric, names);
    }
    out
}

/// `ipvsadm -L -c [-n] [--persistent-conn]`: `list_conn` (ipvsadm.c:1708),
/// in the order given (ipvsadm prints /proc/net/ip_vs_conn as it reads it).
pub fn connections(conns: &[Connection], format: &ListFormat, names: &dyn Resolver) -> String {
    let mut out = String::from("IPVS connection entries\n");
    if format.persistent_conn {
        // ipvsadm.c:1727 "pro expire %-11s %-18s %-18s %-18s %-16s %s\n". The
        // rows keep the short form: XVS has no persistence engine data, and
        // ipvsadm only widens a row that has it (ipvsadm.c:1694).
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} pe_data",
            "state", "source", "virtual", "destination", "pe name"
        );
    } else {
        // ipvsadm.c:1731 "pro expire %-11s %-18s %-18s %s\n"
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} destination",
            "state", "source", "virtual"
        );
    }
    for conn in conns {
        write_connection(&mut out, conn, format.numeric, names);
    }
    out
}

/// `ipvsadm -L --timeout`: ipvsadm.c:2175
/// "Timeout (tcp tcpfin udp): %d %d %d\n".
pub fn timeouts(t: &Timeouts) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        t.tcp, t.tcp_fin, t.udp
    )
}

/// `--json`: the listing's model as pretty JSON, ending in a newline.
pub fn json<T: Serialize>(value: &T) -> String {
    let mut text =
        serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

/// The table with services and their reals in the order ipvsadm lists them
/// (for `--json`, and for anyone who wants ipvsadm's order).
pub fn sorted_table(table: &ServiceTable) -> ServiceTable {
    let services = services_in_order(table, false)
        .into_iter()
        .map(|s| Service {
            dests: dests_in_order(s, false).into_iter().cloned().collect(),
            ..s.clone()
        })
        .collect();
    ServiceTable {
        services,
        ..table.clone()
    }
}

fn services_in_order(table: &ServiceTable, nosort: bool) -> Vec<&Service> {
    if nosort {
        table.services.iter().collect()
    } else {
        // ipvsadm.c:2160 ipvs_sort_services(get, ipvs_cmp_services)
        glibc_qsort_order(&table.services, cmp_services)
    }
}

fn dests_in_order(service: &Service, nosort: bool) -> Vec<&Dest> {
    if nosort {
        service.dests.iter().collect()
    } else {
        // ipvsadm.c:2061 ipvs_sort_dests(d, ipvs_cmp_dests)
        glibc_qsort_order(&service.dests, cmp_dests)
    }
}

/// The column titles (`print_title`, ipvsadm.c:1873).
fn title(layout: Layout) -> String {
    const FIRST: &str = "Prot LocalAddress:Port";
    const REMOTE: &str = "  -> RemoteAddress:Port";
    match layout {
        // ipvsadm.c:1876 "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n"
        Layout::Stats => format!(
            "{FIRST:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{REMOTE}\n",
            "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        ),
        // ipvsadm.c:1881, the same format with the rate names
        Layout::Rate => format!(
            "{FIRST:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{REMOTE}\n",
            "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        ),
        // ipvsadm.c:1891 "%-33s %-9s %-11s %-10s %-10s\n  -> RemoteAddress:Port\n"
        Layout::PersistentConn => format!(
            "{FIRST:<33} {:<9} {:<11} {:<10} {:<10}\n{REMOTE}\n",
            "Weight", "PersistConn", "ActiveConn", "InActConn"
        ),
        // ipvsadm.c:1899
        Layout::Plain => concat!(
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        )
        .to_string(),
    }
}

/// One service and its reals in a `-L` listing (`print_service_entry`,
/// ipvsadm.c:1945).
fn write_service(out: &mut String, service: &Service, format: &ListFormat, names: &dyn Resolver) {
    let name = service_column(service, format.numeric, names);
    match format.layout() {
        Layout::Stats => {
            // ipvsadm.c:2018 "%-33s" then print_largenum of each counter
            let s = &service.stats;
            let _ = write!(out, "{name:<33}");
            for n in [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes] {
                out.push_str(&largenum(n, format.exact));
            }
        }
        Layout::Rate => {
            // ipvsadm.c:2025 "%-33s" then print_largenum of each rate
            let r = &service.rates;
            let _ = write!(out, "{name:<33}");
            for n in [r.cps, r.inpps, r.outpps, r.inbps, r.outbps] {
                out.push_str(&largenum(n, format.exact));
            }
        }
        Layout::PersistentConn | Layout::Plain => {
            // ipvsadm.c:2032 "%s %s", then " (%s)" flags, " persistent %u",
            // " mask %s" / " mask %i"
            let _ = write!(out, "{name} {}", service.scheduler);
            if !service.sched_flags.is_empty() {
                let _ = write!(out, " ({})", service.sched_flags.join(","));
            }
            if let Some(p) = &service.persistence {
                let _ = write!(out, " persistent {}", p.timeout);
                if let Some(mask) = persistence_mask(service.addr, p.prefix_len) {
                    let _ = write!(out, " mask {mask}");
                }
            }
        }
    }
    out.push('\n');
    for dest in dests_in_order(service, format.nosort) {
        write_dest(out, dest, service.proto, format, names);
    }
}

/// One real in a `-L` listing (ipvsadm.c:2086-2122).
fn write_dest(
    out: &mut String,
    dest: &Dest,
    proto: Protocol,
    format: &ListFormat,
    names: &dyn Resolver,
) {
    let name = dest_column(dest, proto, format.numeric, names);
    match format.layout() {
        Layout::Stats => {
            // ipvsadm.c:2087 "  -> %-28s" then print_largenum of each counter
            let s = &dest.stats;
            let _ = write!(out, "  -> {name:<28}");
            for n in [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes] {
                out.push_str(&largenum(n, format.exact));
            }
            out.push('\n');
        }
        Layout::Rate => {
            // ipvsadm.c:2095 "  -> %-28s %8llu %8llu %8llu": a real's packet
            // rates are never scaled; its byte rates go through print_largenum.
            let r = &dest.rates;
            let _ = write!(
                out,
                "  -> {name:<28} {:>8} {:>8} {:>8}",
                r.cps, r.inpps, r.outpps
            );
            out.push_str(&largenum(r.inbps, format.exact));
            out.push_str(&largenum(r.outbps, format.exact));
            out.push('\n');
        }
        Layout::PersistentConn => {
            // ipvsadm.c:2107 "  -> %-28s %-9u %-11u %-10u %-10u\n"
            let _ = writeln!(
                out,
                "  -> {name:<28} {:<9} {:<11} {:<10} {:<10}",
                dest.weight, dest.persist_conns, dest.active_conns, dest.inact_conns
            );
        }
        Layout::Plain => {
            // ipvsadm.c:2120 "  -> %-28s %-7s %-6d %-10u %-10u\n"
            let _ = writeln!(
                out,
                "  -> {name:<28} {:<7} {:<6} {:<10} {:<10}",
                forward_name(dest.forward),
                dest.weight,
                dest.active_conns,
                dest.inact_conns
            );
        }
    }
}

/// A service and its reals as restore commands (ipvsadm.c:1974-1978,
/// 1992-2016, 2076-2085).
fn write_rules(out: &mut String, service: &Service, numeric: bool, names: &dyn Resolver) {
    // ipvsadm.c:1978 "%s %s" of option_from_protocol and the address
    let vname = addrport_to_anyname(service.addr, service.port, service.proto, numeric, names);
    let svc = format!("{} {vname}", protocol_switch(service.proto));

    // ipvsadm.c:1993 "-A %s -s %s", then " -p %u", " -M %s" / " -M %i", " -b "
    let _ = write!(out, "-A {svc} -s {}", service.scheduler);
    if let Some(p) = &service.persistence {
        let _ = write!(out, " -p {}", p.timeout);
        if let Some(mask) = persistence_mask(service.addr, p.prefix_len) {
            let _ = write!(out, " -M {mask}");
        }
    }
    if !service.sched_flags.is_empty() {
        let _ = write!(out, " -b {}", service.sched_flags.join(","));
    }
    out.push('\n');

    for dest in dests_in_order(service, false) {
        let dname = addrport_to_anyname(dest.addr, dest.port, service.proto, numeric, names);
        // ipvsadm.c:2080 "-a %s -r %s %s -w %d\n"
        let _ = write!(
            out,
            "-a {svc} -r {dname} {} -w {}",
            forward_switch(dest.forward),
            dest.weight
        );
        if dest.forward == ForwardMethod::Tunnel {
            // ipvsadm.c:1928: XVS has no tunnel types, so any tunnel is ipip.
            out.push_str(" --tun-type ipip");
        }
        out.push('\n');
    }
}

/// One connection line (`print_conn`, ipvsadm.c:1630).
fn write_connection(out: &mut String, conn: &Connection, numeric: bool, names: &dyn Resolver) {
    let name =
        |a: std::net::SocketAddr| addrport_to_anyname(a.ip(), a.port(), conn.proto, numeric, names);
    // ipvsadm.c:1692 "%02d:%02d"
    let expire = format!("{:02}:{:02}", conn.expires / 60, conn.expires % 60);
    // ipvsadm.c:1699 "%-3s %-6s %-11s %-18s %-18s %s\n"
    let _ = writeln!(
        out,
        "{:<3} {expire:<6} {:<11} {:<18} {:<18} {}",
        conn.proto.to_string(),
        conn.state,
        name(conn.client),
        name(conn.vip),
        name(conn.dest)
    );
}

/// `"%-4s %s"` of protocol and address, cut at 33 bytes unless IPv6
/// (ipvsadm.c:1983-1986).
fn service_column(service: &Service, numeric: bool, names: &dyn Resolver) -> String {
    let vname = addrport_to_anyname(service.addr, service.port, service.proto, numeric, names);
    let column = format!("{:<4} {vname}", service.proto.to_string());
    if service.addr.is_ipv6() {
        column
    } else {
        truncate_bytes(column, 33)
    }
}

/// A real's address, cut at 28 bytes unless IPv6 (ipvsadm.c:2073).
fn dest_column(dest: &Dest, proto: Protocol, numeric: bool, names: &dyn Resolver) -> String {
    let dname = addrport_to_anyname(dest.addr, dest.port, proto, numeric, names);
    if dest.addr.is_ipv6() {
        dname
    } else {
        truncate_bytes(dname, 28)
    }
}

/// `addrport_to_anyname` (ipvsadm.c:2315): `addr:port`, `[addr]:port` for
/// IPv6, names unless numeric, in a 60-byte buffer.
fn addrport_to_anyname(
    addr: IpAddr,
    port: u16,
    proto: Protocol,
    numeric: bool,
    names: &dyn Resolver,
) -> String {
    let (host, service) = if numeric {
        (inet_ntop(addr), port.to_string())
    } else {
        (
            names.host_name(addr).unwrap_or_else(|| inet_ntop(addr)),
            names
                .service_name(port, proto)
                .unwrap_or_else(|| port.to_string()),
        )
    };
    let text = match addr {
        IpAddr::V4(_) => format!("{host}:{service}"),
        IpAddr::V6(_) => format!("[{host}]:{service}"),
    };
    truncate_bytes(text, 59)
}

/// The `mask` ipvsadm prints for a persistent service, if not per client:
/// an IPv4 netmask by `inet_ntoa` (ipvsadm.c:2043), an IPv6 prefix length by
/// `%i` (:2049).
fn persistence_mask(addr: IpAddr, prefix_len: u8) -> Option<String> {
    match addr {
        IpAddr::V4(_) if prefix_len < 32 => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix_len))
                .unwrap_or(0);
            Some(std::net::Ipv4Addr::from(mask).to_string())
        }
        IpAddr::V6(_) if prefix_len != 128 => Some(prefix_len.to_string()),
        _ => None,
    }
}

/// `print_largenum` (ipvsadm.c:1819): nine columns, scaled to K/M/G/T
/// beyond 8 digits unless `--exact`, which widens the column instead.
fn largenum(n: u64, exact: bool) -> String {
    if exact {
        let digits = n.to_string();
        let width = if digits.len() <= 8 {
            9
        } else {
            digits.len() + 1
        };
        return format!("{digits:>width$}");
    }
    match n {
        0..=99_999_999 => format!("{n:>9}"),
        100_000_000..=999_999_999 => format!("{:>8}K", n / 1_000),
        1_000_000_000..=99_999_999_999 => format!("{:>8}M", n / 1_000_000),
        100_000_000_000..=99_999_999_999_999 => format!("{:>8}G", n / 1_000_000_000),
        _ => format!("{:>8}T", n / 1_000_000_000_000),
    }
}

/// `fwd_name` (ipvsadm.c:1746).
fn forward_name(method: ForwardMethod) -> &'static str {
    match method {
        ForwardMethod::Masq => "Masq",
        ForwardMethod::Local => "Local",
        ForwardMethod::Tunnel => "Tunnel",
        ForwardMethod::Route => "Route",
    }
}

/// `fwd_switch` (ipvsadm.c:1767): a local real is saved as `-g`.
fn forward_switch(method: ForwardMethod) -> &'static str {
    match method {
        ForwardMethod::Masq => "-m",
        ForwardMethod::Tunnel => "-i",
        ForwardMethod::Local | ForwardMethod::Route => "-g",
    }
}

/// `option_from_protocol` (ipvsadm.c:494).
fn protocol_switch(proto: Protocol) -> &'static str {
    match proto {
        Protocol::Tcp => "-t",
        Protocol::Udp => "-u",
    }
}

/// `xvsadm vrrp`: one line per VRRP instance, then whether this director
/// forwards.
pub fn vrrp(instances: &[crate::vrrp::runtime::InstanceStatus], forwarding: bool) -> String {
    let mut out = format!(
        "{:<16} {:<7} {:>4} {:>4} {:<12} {:>4} {:>10} {:>10}  {}\n",
        "Instance", "State", "Prio", "Base", "Interface", "VRID", "AdvSent", "AdvRecv", "Rejected"
    );
    for i in instances {
        let rejected: Vec<String> = i.rejected.iter().map(|(r, n)| format!("{r}={n}")).collect();
        out += &format!(
            "{:<16} {:<7} {:>4} {:>4} {:<12} {:>4} {:>10} {:>10}  {}\n",
            i.name,
            i.state,
            i.priority,
            i.base_priority,
            i.interface,
            i.vrid,
            i.adverts_sent,
            i.adverts_received,
            if rejected.is_empty() {
                "-".to_string()
            } else {
                rejected.join(",")
            }
        );
    }
    if instances.is_empty() {
        out += "(no vrrp_instance: VRRP is not running)\n";
    }
    out += &format!(
        "data plane: {}\n",
        if forwarding {
            "forwarding"
        } else {
            "passing (not MASTER)"
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largenum_scales_like_print_largenum() {
        assert_eq!(largenum(0, false), "        0");
        assert_eq!(largenum(99_999_999, false), " 99999999");
        assert_eq!(largenum(100_000_000, false), "  100000K");
        assert_eq!(largenum(999_999_999, false), "  999999K");
        assert_eq!(largenum(1_000_000_000, false), "    1000M");
        assert_eq!(largenum(99_999_999_999, false), "   99999M");
        assert_eq!(largenum(100_000_000_000, false), "     100G");
        assert_eq!(largenum(100_000_000_000_000, false), "     100T");
        assert_eq!(largenum(u64::MAX, false), "18446744T");
    }

    #[test]
    fn exact_widens_instead_of_scaling() {
        assert_eq!(largenum(12, true), "       12");
        assert_eq!(largenum(12_345_678, true), " 12345678");
        assert_eq!(largenum(123_456_789, true), " 123456789");
        assert_eq!(largenum(u64::MAX, true), " 18446744073709551615");
    }

    #[test]
    fn titles_match_the_printf_widths() {
        // Each stats/rate title column is " %8s", after a 33-wide first one.
        for layout in [Layout::Stats, Layout::Rate] {
            let text = title(layout);
            let first = text.lines().next().unwrap();
            assert_eq!(first.len(), 33 + 5 * 9, "{layout:?}");
        }
        let text = title(Layout::PersistentConn);
        let pc = text.lines().next().unwrap();
        assert_eq!(pc.len(), 33 + 1 + 9 + 1 + 11 + 1 + 10 + 1 + 10);
    }

    #[test]
    fn masks() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(persistence_mask(v4, 32), None);
        assert_eq!(persistence_mask(v4, 24).as_deref(), Some("255.255.255.0"));
        assert_eq!(persistence_mask(v4, 0).as_deref(), Some("0.0.0.0"));
        assert_eq!(persistence_mask(v6, 128), None);
        assert_eq!(persistence_mask(v6, 64).as_deref(), Some("64"));
    }
}
