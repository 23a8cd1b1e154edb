//! The C library behaviours ipvsadm's grammar and output rest on, redone in
//! Rust so that xvsadm accepts and prints exactly what ipvsadm does:
//! `strtol`/`atoi` number parsing, glibc's `inet_aton` (which takes `10.1` or
//! `0x0a000001`) and glibc's `inet_ntop` for IPv6 (which writes `::1.2.3.4`
//! where Rust's `Display` writes `::102:304`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `isspace` in the C locale.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// ipvsadm's `string_to_number` (ipvsadm.c:1149): `strtol(s, &end, 10)` must
/// consume the whole string and land in `min..=max`.
pub(crate) fn string_to_number(s: &str, min: i64, max: i64) -> Option<i64> {
    let body = s.trim_start_matches(is_c_space);
    let (negative, digits) = match body.as_bytes().first() {
        Some(b'-') => (true, &body[1..]),
        Some(b'+') => (false, &body[1..]),
        _ => (false, body),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Out of range for `long` is ERANGE in strtol, which ipvsadm rejects too.
    let magnitude: i64 = digits.parse().ok()?;
    let number = if negative { -magnitude } else { magnitude };
    (min..=max).contains(&number).then_some(number)
}

/// `atoi`: leading blanks, a sign, then as many digits as there are; 0 when
/// there are none. ipvsadm reads an IPv6 `-M` prefix with it (ipvsadm.c:731).
pub(crate) fn atoi(s: &str) -> i64 {
    let body = s.trim_start_matches(is_c_space);
    let (negative, rest) = match body.as_bytes().first() {
        Some(b'-') => (true, &body[1..]),
        Some(b'+') => (false, &body[1..]),
        _ => (false, body),
    };
    let digits: String = rest
        .chars()
        .take_while(char::is_ascii_digit)
        .take(18)
        .collect();
    let value: i64 = digits.parse().unwrap_or(0);
    if negative {
        -value
    } else {
        value
    }
}

/// glibc `inet_aton`: one to four parts separated by dots, each decimal,
/// octal (leading `0`) or hex (`0x`); the last part fills the remaining
/// bytes, so `10.1` is 10.0.0.1. ipvsadm parses addresses and IPv4 netmasks
/// with it (ipvsadm.c:1213, 1263).
pub(crate) fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    let values: Vec<u32> = parts.iter().map(|p| c_unsigned(p)).collect::<Option<_>>()?;
    let (last, leading) = values.split_last()?;
    if leading.iter().any(|&v| v > 0xff) {
        return None;
    }
    let last_bits = 8 * (4 - leading.len() as u32);
    if last_bits < 32 && *last >= 1 << last_bits {
        return None;
    }
    let high = leading
        .iter()
        .enumerate()
        .fold(0u32, |acc, (i, &v)| acc | v << (24 - 8 * i));
    Some(Ipv4Addr::from(high | last))
}

/// One `inet_aton` part: must start with a digit; `0x` hex, `0` octal.
fn c_unsigned(part: &str) -> Option<u32> {
    if !part.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let (radix, digits) = if let Some(hex) = part.strip_prefix("0x").or(part.strip_prefix("0X")) {
        (16, hex)
    } else if part.len() > 1 && part.starts_with('0') {
        (8, &part[1..])
    } else {
        (10, part)
    };
    if digits.is_empty() {
        // "0x" alone is 0 in glibc.
        return Some(0);
    }
    u32::from_str_radix(digits, radix).ok()
}

/// glibc `inet_ntop` (resolv/inet_ntop.c): the text ipvsadm prints for an
/// address with `-n` (ipvsadm.c:2327).
pub(crate) fn inet_ntop(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => inet_ntop6(v6),
    }
}

/// IPv6 as glibc writes it: the first longest run of two or more zero words
/// becomes `::`, and an address whose first 96 bits are zero except for an
/// optional `ffff` in word 5 ends in dotted IPv4 (`::1.2.3.4`,
/// `::ffff:1.2.3.4`).
fn inet_ntop6(addr: Ipv6Addr) -> String {
    let words = addr.segments();
    let (run_start, run_len) = longest_zero_run(&words);
    let mut out = String::new();
    let mut i = 0;
    while i < 8 {
        if run_len >= 2 && i == run_start {
            out.push(':');
            i += run_len;
            if i == 8 {
                out.push(':');
            }
            continue;
        }
        if i != 0 {
            out.push(':');
        }
        let embeds_ipv4 =
            i == 6 && run_start == 0 && (run_len == 6 || (run_len == 5 && words[5] == 0xffff));
        if embeds_ipv4 {
            let o = addr.octets();
            out.push_str(&Ipv4Addr::new(o[12], o[13], o[14], o[15]).to_string());
            break;
        }
        out.push_str(&format!("{:x}", words[i]));
        i += 1;
    }
    out
}

/// The first longest run of zero words, as (start, length); length 0 if none.
fn longest_zero_run(words: &[u16; 8]) -> (usize, usize) {
    let mut best = (0, 0);
    let mut i = 0;
    while i < 8 {
        if words[i] != 0 {
            i += 1;
            continue;
        }
        let start = i;
        while i < 8 && words[i] == 0 {
            i += 1;
        }
        if i - start > best.1 {
            best = (start, i - start);
        }
    }
    best
}

/// Truncate to at most `max` bytes, as ipvsadm does by writing a NUL into a
/// char buffer (never splitting a UTF-8 character).
pub(crate) fn truncate_bytes(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtol_rules() {
        assert_eq!(string_to_number("80", 0, 65535), Some(80));
        assert_eq!(string_to_number(" +80", 0, 65535), Some(80));
        assert_eq!(string_to_number("80x", 0, 65535), None);
        assert_eq!(string_to_number("", 0, 65535), None);
        assert_eq!(string_to_number("65536", 0, 65535), None);
        assert_eq!(string_to_number("-1", 0, 65535), None);
        assert_eq!(string_to_number("99999999999999999999", 0, 65535), None);
    }

    #[test]
    fn atoi_takes_the_leading_number() {
        assert_eq!(atoi("64"), 64);
        assert_eq!(atoi("64abc"), 64);
        assert_eq!(atoi("abc"), 0);
        assert_eq!(atoi("-3"), -3);
    }

    #[test]
    fn inet_aton_forms() {
        assert_eq!(inet_aton("10.0.0.1"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(inet_aton("10.1"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(inet_aton("10.1.2"), Some(Ipv4Addr::new(10, 1, 0, 2)));
        assert_eq!(inet_aton("0x0a000001"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(inet_aton("010.0.0.1"), Some(Ipv4Addr::new(8, 0, 0, 1)));
        assert_eq!(inet_aton("1"), Some(Ipv4Addr::new(0, 0, 0, 1)));
        assert_eq!(inet_aton("1.2.3.256"), None);
        assert_eq!(inet_aton("1.2.3.4.5"), None);
        assert_eq!(inet_aton("09.1.1.1"), None);
        assert_eq!(inet_aton("www"), None);
        assert_eq!(inet_aton(""), None);
        assert_eq!(inet_aton("1..2"), None);
    }

    #[test]
    fn inet_ntop6_like_glibc() {
        let cases = [
            ("::", "::"),
            ("::1", "::1"),
            ("2001:db8::1", "2001:db8::1"),
            ("2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1"),
            ("2001:0:0:1:0:0:1:1", "2001::1:0:0:1:1"),
            ("1:0:1:1:1:1:1:1", "1:0:1:1:1:1:1:1"),
            ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
            ("::1.2.3.4", "::1.2.3.4"),
            ("fe80::", "fe80::"),
        ];
        for (input, want) in cases {
            let addr: Ipv6Addr = input.parse().unwrap();
            assert_eq!(inet_ntop6(addr), want, "{input}");
        }
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_bytes("abcdef".into(), 3), "abc");
        assert_eq!(truncate_bytes("ab".into(), 3), "ab");
        assert_eq!(truncate_bytes("aé".into(), 2), "a");
    }
}
