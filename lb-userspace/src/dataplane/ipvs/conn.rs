//! IPVS's connection table as `/proc/net/ip_vs_conn` shows it, the file
//! `ipvsadm -L -c` reads. One line per entry (the kernel's
//! `ip_vs_conn_seq_show`):
//!
//! ```text
//! Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
//! TCP 0AD4000A 9C40 0AD40064 0050 0AD4000B 0050 ESTABLISHED     899
//! ```
//!
//! IPv4 addresses are 8 hex digits, IPv6 ones in `%pI6` form (eight groups
//! of four hex digits), ports 4 hex digits, expiry in seconds.

use crate::dataplane::Connection;
use crate::model::Protocol;
use lb_common::ipvs::ConnState;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const PROC_PATH: &str = "/proc/net/ip_vs_conn";

/// The entries of the file's text, in its order. Lines of protocols XVS
/// does not serve (SCTP, the `IP` templates of firewall-mark services) and
/// lines it cannot read are skipped.
pub fn parse(text: &str) -> Vec<Connection> {
    text.lines().skip(1).filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Connection> {
    let mut f = line.split_whitespace();
    let proto = match f.next()? {
        "TCP" => Protocol::Tcp,
        "UDP" => Protocol::Udp,
        _ => return None,
    };
    let client = (addr(f.next()?)?, port(f.next()?)?);
    let virtual_ = (addr(f.next()?)?, port(f.next()?)?);
    let real = (addr(f.next()?)?, port(f.next()?)?);
    let state_name = f.next()?;
    let expires_in_s = f.next()?.parse().ok()?;
    // A template (persistence) has client port 0 and the template states
    // NONE or ASSURED; a connection's state comes from its protocol.
    let template = client.1 == 0 && matches!(state_name, "NONE" | "ASSURED");
    let state = if template {
        ConnState::None
    } else {
        state_of(state_name)?
    };
    Some(Connection {
        proto,
        client,
        virtual_,
        real: Some(real),
        state,
        expires_in_s,
        template,
    })
}

fn state_of(name: &str) -> Option<ConnState> {
    (0..lb_common::ipvs::STATE_COUNT as u8)
        .map(ConnState::from_u8)
        .find(|s| s.name() == name)
}

fn addr(s: &str) -> Option<IpAddr> {
    if s.len() == 8 && !s.contains(':') {
        return u32::from_str_radix(s, 16)
            .ok()
            .map(|a| IpAddr::V4(Ipv4Addr::from(a)));
    }
    s.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

fn port(s: &str) -> Option<u16> {
    u16::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
TCP 0AD4000A 9C40 0AD40064 0050 0AD4000B 0050 ESTABLISHED     899
TCP 0AD4000A 9C42 0AD40064 0050 0AD4000C 0050 FIN_WAIT        119
UDP 0AD4000A D431 0AD40064 0D96 0AD4000B 0D96 UDP             119
UDP 0AD4000A 0000 0AD40064 0D96 0AD4000B 0D96 NONE             59
TCP 0AD4000A 0000 0AD40064 0050 0AD4000B 0050 ASSURED          30
IP  0AD4000A 0000 00000000 0000 0AD4000B 0000 NONE            300
SCTP 0AD4000A 9C40 0AD40064 0050 0AD4000B 0050 ESTABLISHED     899
TCP 2001:0db8:0000:0000:0000:0000:0000:000a 9C40 2001:0db8:0000:0000:0000:0000:0000:0064 0050 2001:0db8:0000:0000:0000:0000:0000:000b 0050 SYN_RECV         59
";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn reads_connections_and_templates() {
        let conns = parse(SAMPLE);
        assert_eq!(conns.len(), 6);
        assert_eq!(
            conns[0],
            Connection {
                proto: Protocol::Tcp,
                client: (ip("10.212.0.10"), 40000),
                virtual_: (ip("10.212.0.100"), 80),
                real: Some((ip("10.212.0.11"), 80)),
                state: ConnState::Established,
                expires_in_s: 899,
                template: false,
            }
        );
        assert_eq!(conns[1].state, ConnState::FinWait);
        assert_eq!(conns[2].state, ConnState::Udp);
        assert!(!conns[2].template);
        assert!(conns[3].template && conns[3].state == ConnState::None);
        assert_eq!(conns[3].virtual_, (ip("10.212.0.100"), 3478));
        assert!(conns[4].template, "an ASSURED template is a template");
        assert_eq!(conns[5].client, (ip("2001:db8::a"), 40000));
        assert_eq!(conns[5].real, Some((ip("2001:db8::b"), 80)));
        assert_eq!(conns[5].state, ConnState::SynRecv);
    }

    #[test]
    fn an_empty_table_is_the_header_only() {
        assert!(parse(SAMPLE.lines().next().unwrap()).is_empty());
        assert!(parse("").is_empty());
    }
}
