//! `virtual_server_group NAME { ... }` entries: addresses, ranges, fwmarks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{args, name_and_block};
use crate::config::{
    diag::Diags,
    model::{VirtualServerGroup, VsgEntry},
    tree::Stmt,
    values,
};

pub(crate) fn virtual_server_group(stmt: &Stmt, d: &mut Diags) -> Option<VirtualServerGroup> {
    let (name, block) = name_and_block(stmt, d)?;
    let mut entries = Vec::new();
    for line in &block.stmts {
        args::no_block(line, d);
        let entry = if line.keyword() == "fwmark" {
            fwmark_entry(line, d)
        } else {
            range_entry(line, d)
        };
        entries.extend(entry);
    }
    Some(VirtualServerGroup {
        name,
        entries,
        pos: stmt.pos().clone(),
    })
}

/// `fwmark N [inet|inet6]`
fn fwmark_entry(line: &Stmt, d: &mut Diags) -> Option<VsgEntry> {
    args::at_most(line, d, 2);
    let mark = args::arg(line, d, 0, "a mark")?;
    let mark = args::parse_at(mark, d, |t| values::uint(t, 0, u32::MAX.into()))? as u32;
    if let Some(family) = line.args().get(1) {
        if family.text != "inet" && family.text != "inet6" {
            d.error(
                &family.pos,
                format!(
                    "unknown fwmark family '{}'; expected inet or inet6",
                    family.text
                ),
            );
        }
    }
    Some(VsgEntry::Fwmark {
        mark,
        pos: line.pos().clone(),
    })
}

/// `ADDR|RANGE [PORT]`
fn range_entry(line: &Stmt, d: &mut Diags) -> Option<VsgEntry> {
    args::at_most(line, d, 1);
    let (first, last) = args::parse_at(&line.words[0], d, address_range)?;
    let port = match line.args().first() {
        Some(t) => args::parse_at(t, d, values::port_or_none)?,
        None => None,
    };
    Some(VsgEntry::Range {
        first,
        last,
        port,
        pos: line.pos().clone(),
    })
}

/// The forms keepalived takes: `A`, `A/N`, `A-B` (full end address) and
/// `A-N` (N replaces the last IPv4 octet, or the last IPv6 group in hex).
pub(crate) fn address_range(text: &str) -> Result<(IpAddr, IpAddr), String> {
    if let Some((addr, bits)) = text.split_once('/') {
        return cidr_range(text, addr, bits);
    }
    let Some((start, end)) = text.split_once('-') else {
        let addr = values::ip(text)?;
        return Ok((addr, addr));
    };
    let first = values::ip(start)?;
    let last = match first {
        IpAddr::V4(_) if end.contains('.') => values::ip(end)?,
        IpAddr::V6(_) if end.contains(':') => values::ip(end)?,
        IpAddr::V4(a) => {
            let octet = values::u8_in(end, 0, 255).map_err(|e| format!("range end {e}"))?;
            let [x, y, z, _] = a.octets();
            IpAddr::V4(Ipv4Addr::new(x, y, z, octet))
        }
        IpAddr::V6(a) => {
            let group = u16::from_str_radix(end, 16)
                .map_err(|_| format!("range end '{end}' is not a hex number up to ffff"))?;
            let mut segments = a.segments();
            segments[7] = group;
            IpAddr::V6(Ipv6Addr::from(segments))
        }
    };
    if first.is_ipv4() != last.is_ipv4() {
        return Err(format!("range {text} mixes IPv4 and IPv6"));
    }
    if last <= first {
        return Err(format!("range {text} does not end above its start"));
    }
    Ok((first, last))
}

/// `A/N`: the whole network, which must have no host bits set.
fn cidr_range(text: &str, addr: &str, bits: &str) -> Result<(IpAddr, IpAddr), String> {
    let addr = values::ip(addr)?;
    let width: u32 = if addr.is_ipv4() { 32 } else { 128 };
    let bits =
        values::uint(bits, 1, width.into()).map_err(|e| format!("prefix length {e}"))? as u32;
    let value = match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    let host_mask: u128 = if bits == width {
        0
    } else {
        (u128::MAX >> (128 - width)) >> bits
    };
    if value & host_mask != 0 {
        return Err(format!(
            "{text} has host bits set; write the network address"
        ));
    }
    let last = value | host_mask;
    let to_addr = |v: u128| match addr {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(v as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(v)),
    };
    Ok((addr, to_addr(last)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> (String, String) {
        let (a, b) = address_range(text).unwrap();
        (a.to_string(), b.to_string())
    }

    #[test]
    fn keepalived_range_forms() {
        assert_eq!(range("10.0.0.5"), ("10.0.0.5".into(), "10.0.0.5".into()));
        assert_eq!(
            range("10.0.0.1-10"),
            ("10.0.0.1".into(), "10.0.0.10".into())
        );
        assert_eq!(
            range("10.0.0.250-10.0.1.3"),
            ("10.0.0.250".into(), "10.0.1.3".into())
        );
        assert_eq!(
            range("10.0.0.8/29"),
            ("10.0.0.8".into(), "10.0.0.15".into())
        );
        assert_eq!(
            range("2001:db8::1-a"),
            ("2001:db8::1".into(), "2001:db8::a".into())
        );
        assert!(address_range("10.0.0.9/29").is_err());
        assert!(address_range("10.0.0.10-5").is_err());
        assert!(address_range("10.0.0.1-300").is_err());
    }
}
