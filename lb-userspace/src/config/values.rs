//! Parsing single values (numbers, timers, booleans, addresses). Errors are
//! messages; the caller attaches the position.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

/// keepalived's timers have microsecond resolution (TIMER_HZ_DIGITS = 6).
const TIMER_DIGITS: usize = 6;
/// Upper bound for any timer: about 136 years, far above anything useful.
const TIMER_MAX_SECS: u64 = u32::MAX as u64;

/// A decimal unsigned integer in `min..=max`.
pub(crate) fn uint(text: &str, min: u64, max: u64) -> Result<u64, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{text}' is not a whole number"));
    }
    match text.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("{text} is out of range {min}..{max}")),
    }
}

/// A decimal integer, possibly negative, in `min..=max`.
pub(crate) fn int(text: &str, min: i64, max: i64) -> Result<i64, String> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{text}' is not a whole number"));
    }
    match text.parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("{text} is out of range {min}..{max}")),
    }
}

pub(crate) fn u32_in(text: &str, min: u32, max: u32) -> Result<u32, String> {
    uint(text, min.into(), max.into()).map(|n| n as u32)
}

pub(crate) fn u8_in(text: &str, min: u8, max: u8) -> Result<u8, String> {
    uint(text, min.into(), max.into()).map(|n| n as u8)
}

/// Seconds with up to six decimals, e.g. `3` or `0.5` (keepalived's TIMER).
pub(crate) fn timer(text: &str) -> Result<Duration, String> {
    let bad = || format!("'{text}' is not a time in seconds (like 3 or 0.5)");
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !all_digits(whole) || !all_digits(fraction) {
        return Err(bad());
    }
    if fraction.len() > TIMER_DIGITS {
        return Err(format!(
            "'{text}' has more than {TIMER_DIGITS} decimals (microsecond resolution)"
        ));
    }
    let secs: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    if secs > TIMER_MAX_SECS {
        return Err(format!("{text} seconds is too long"));
    }
    let micros: u32 = format!("{fraction:0<TIMER_DIGITS$}")
        .parse()
        .map_err(|_| bad())?;
    Ok(Duration::new(secs, micros * 1000))
}

/// A timer that must not be zero.
pub(crate) fn positive_timer(text: &str) -> Result<Duration, String> {
    match timer(text)? {
        d if d.is_zero() => Err(format!("{text} must be greater than 0")),
        d => Ok(d),
    }
}

/// Whole seconds (keepalived reads some delays as integers only).
pub(crate) fn seconds(text: &str) -> Result<Duration, String> {
    uint(text, 0, TIMER_MAX_SECS).map(Duration::from_secs)
}

/// keepalived's <BOOL>: on|off|true|false|yes|no.
pub(crate) fn boolean(text: &str) -> Result<bool, String> {
    match text {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(format!(
            "'{text}' is not one of on, off, true, false, yes, no"
        )),
    }
}

pub(crate) fn ip(text: &str) -> Result<IpAddr, String> {
    text.parse()
        .map_err(|_| format!("'{text}' is not an IP address"))
}

/// A port; 0 means "no port" as in keepalived.
pub(crate) fn port_or_none(text: &str) -> Result<Option<u16>, String> {
    let port = uint(text, 0, 65535).map_err(|e| format!("port {e}"))? as u16;
    Ok((port != 0).then_some(port))
}

/// A port in 1..65535.
pub(crate) fn port(text: &str) -> Result<u16, String> {
    uint(text, 1, 65535)
        .map(|p| p as u16)
        .map_err(|e| format!("port {e}"))
}

/// `ADDR[/PREFIX]`, the prefix defaulting to the full length.
pub(crate) fn ip_prefix(text: &str) -> Result<(IpAddr, u8), String> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (ip(a)?, Some(p)),
        None => (ip(text)?, None),
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(p) => u8_in(p, 0, max).map_err(|e| format!("prefix length {e}"))?,
        None => max,
    };
    Ok((addr, prefix))
}

/// The prefix length of a contiguous IPv4 netmask such as 255.255.255.0.
pub(crate) fn netmask_prefix(mask: Ipv4Addr) -> Result<u8, String> {
    let bits = u32::from(mask);
    let prefix = bits.leading_ones();
    if bits.checked_shl(prefix).unwrap_or(0) != 0 {
        return Err(format!("netmask {mask} is not contiguous"));
    }
    Ok(prefix as u8)
}

/// keepalived's free-format hex string ("Ab12f 3 456" → AB 12 0F 03 45 06):
/// each space-separated group is read as pairs of digits, an odd group
/// ending with a single digit. With `wildcards`, X/x stands for any nibble;
/// the mask has 0 bits there.
pub(crate) fn hex_bytes(groups: &[&str], wildcards: bool) -> Result<(Vec<u8>, Vec<u8>), String> {
    let mut bytes = Vec::new();
    let mut mask = Vec::new();
    for group in groups {
        let digits: Vec<char> = group.chars().collect();
        for pair in digits.chunks(2) {
            let mut value = 0u8;
            let mut bits = 0u8;
            for &c in pair {
                let (v, m) = match c.to_digit(16) {
                    Some(v) => (v as u8, 0xf),
                    None if wildcards && (c == 'x' || c == 'X') => (0, 0),
                    None => return Err(format!("'{group}' is not a hex string")),
                };
                value = (value << 4) | v;
                bits = (bits << 4) | m;
            }
            bytes.push(value);
            mask.push(bits);
        }
    }
    Ok((bytes, mask))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_are_decimal_seconds() {
        assert_eq!(timer("3"), Ok(Duration::from_secs(3)));
        assert_eq!(timer("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(timer("2.71828"), Ok(Duration::from_micros(2_718_280)));
        assert_eq!(timer(".25"), Ok(Duration::from_millis(250)));
        assert!(timer("1.0000001").is_err());
        assert!(timer("-1").is_err());
        assert!(timer("").is_err());
        assert!(timer(".").is_err());
        assert!(timer("1e3").is_err());
    }

    #[test]
    fn numbers_and_ranges() {
        assert_eq!(uint("255", 1, 255), Ok(255));
        assert!(uint("256", 1, 255).is_err());
        assert!(uint("0x10", 0, 255).is_err());
        assert_eq!(int("-253", -253, 253), Ok(-253));
        assert!(int("-", -1, 1).is_err());
        assert!(uint("99999999999999999999999", 0, 1).is_err());
    }

    #[test]
    fn netmasks_must_be_contiguous() {
        assert_eq!(netmask_prefix(Ipv4Addr::new(255, 255, 255, 0)), Ok(24));
        assert_eq!(netmask_prefix(Ipv4Addr::new(255, 255, 255, 255)), Ok(32));
        assert_eq!(netmask_prefix(Ipv4Addr::new(0, 0, 0, 0)), Ok(0));
        assert!(netmask_prefix(Ipv4Addr::new(255, 0, 255, 0)).is_err());
    }

    #[test]
    fn hex_strings_like_keepalived() {
        let (b, _) = hex_bytes(&["Ab12f", "3", "456", "546443123"], false).unwrap();
        assert_eq!(
            b,
            [0xab, 0x12, 0x0f, 0x03, 0x45, 0x06, 0x54, 0x64, 0x43, 0x12, 0x03]
        );
        let (b, m) = hex_bytes(&["aX"], true).unwrap();
        assert_eq!((b, m), (vec![0xa0], vec![0xf0]));
        assert!(hex_bytes(&["zz"], false).is_err());
    }

    #[test]
    fn prefixes() {
        assert_eq!(ip_prefix("10.0.0.1").unwrap().1, 32);
        assert_eq!(ip_prefix("10.0.0.1/24").unwrap().1, 24);
        assert_eq!(ip_prefix("fe80::1").unwrap().1, 128);
        assert!(ip_prefix("10.0.0.1/33").is_err());
    }
}
