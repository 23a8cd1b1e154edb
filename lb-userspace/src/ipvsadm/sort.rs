//! The order ipvsadm lists services and reals in, byte for byte.
//!
//! ipvsadm sorts with `qsort` and libipvs's comparators unless `--nosort`
//! (ipvsadm.c:2060, 2159). The comparators subtract `ntohl`'d addresses as
//! unsigned 32-bit values and return the difference as an `int`
//! (libipvs.c:820-846, 1035-1049), so two addresses more than 2^31 apart
//! compare the wrong way round: 10.0.0.1 sorts after 192.168.0.1. Such a
//! comparator is not even transitive, so the result depends on the sorting
//! algorithm; glibc's `qsort` is its top-down merge sort (stdlib/msort.c,
//! `msort_with_tmp`), reproduced here.

use std::net::IpAddr;

use crate::model::Protocol;

use super::listing::{Dest, Service};

/// The items in the order glibc's `qsort(items, cmp)` leaves them.
pub(crate) fn glibc_qsort_order<T>(items: &[T], cmp: impl Fn(&T, &T) -> i32) -> Vec<&T> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    let mut scratch = Vec::with_capacity(items.len());
    msort(&mut order, &mut scratch, &|a, b| cmp(&items[a], &items[b]));
    order.into_iter().map(|i| &items[i]).collect()
}

/// `msort_with_tmp`: sort the first n/2 and the rest, then merge, taking
/// from the left run while `cmp(left, right) <= 0`.
fn msort(run: &mut [usize], scratch: &mut Vec<usize>, cmp: &dyn Fn(usize, usize) -> i32) {
    if run.len() <= 1 {
        return;
    }
    let middle = run.len() / 2;
    msort(&mut run[..middle], scratch, cmp);
    msort(&mut run[middle..], scratch, cmp);

    scratch.clear();
    let (mut left, mut right) = (0, middle);
    while left < middle && right < run.len() {
        if cmp(run[left], run[right]) <= 0 {
            scratch.push(run[left]);
            left += 1;
        } else {
            scratch.push(run[right]);
            right += 1;
        }
    }
    // What is left of the right run is already in place at the end.
    scratch.extend_from_slice(&run[left..middle]);
    run[..scratch.len()].copy_from_slice(scratch);
}

/// An address as the four 32-bit host-order words of `union nf_inet_addr`
/// (an IPv4 address fills the first word).
fn host_order_words(addr: IpAddr) -> [u32; 4] {
    match addr {
        IpAddr::V4(v4) => [u32::from(v4), 0, 0, 0],
        IpAddr::V6(v6) => {
            let o = v6.octets();
            std::array::from_fn(|i| {
                u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
            })
        }
    }
}

/// `r = ntohl(a) - ntohl(b)` into an `int`, word by word for IPv6 until one
/// differs; the family of `a` decides, as in libipvs.
fn cmp_addrs(a: IpAddr, b: IpAddr) -> i32 {
    let (wa, wb) = (host_order_words(a), host_order_words(b));
    let words = if a.is_ipv6() { 4 } else { 1 };
    (0..words)
        .map(|i| wa[i].wrapping_sub(wb[i]) as i32)
        .find(|&r| r != 0)
        .unwrap_or(0)
}

/// AF_INET = 2, AF_INET6 = 10.
fn address_family(addr: IpAddr) -> i32 {
    if addr.is_ipv6() {
        10
    } else {
        2
    }
}

fn protocol_number(proto: Protocol) -> i32 {
    i32::from(proto.number())
}

/// `ipvs_cmp_services` (libipvs.c:820): fwmark (always 0 here), family,
/// protocol, address, port.
pub(crate) fn cmp_services(a: &Service, b: &Service) -> i32 {
    [
        address_family(a.addr) - address_family(b.addr),
        protocol_number(a.proto) - protocol_number(b.proto),
        cmp_addrs(a.addr, b.addr),
        i32::from(a.port) - i32::from(b.port),
    ]
    .into_iter()
    .find(|&r| r != 0)
    .unwrap_or(0)
}

/// `ipvs_cmp_dests` (libipvs.c:1035): address, then port.
pub(crate) fn cmp_dests(a: &Dest, b: &Dest) -> i32 {
    match cmp_addrs(a.addr, b.addr) {
        0 => i32::from(a.port) - i32::from(b.port),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn wrapping_subtraction_reverses_far_apart_addresses() {
        assert!(cmp_addrs(v4("10.0.0.1"), v4("10.0.0.2")) < 0);
        assert!(cmp_addrs(v4("10.0.0.1"), v4("192.168.0.1")) > 0);
        assert!(cmp_addrs(v4("192.168.0.1"), v4("10.0.0.1")) < 0);
    }

    #[test]
    fn merge_sort_of_a_plain_order_is_ascending() {
        let items = [5, 3, 9, 1, 1, 7, 2];
        let sorted: Vec<i32> = glibc_qsort_order(&items, |a, b| a - b)
            .into_iter()
            .copied()
            .collect();
        assert_eq!(sorted, [1, 1, 2, 3, 5, 7, 9]);
    }

    #[test]
    fn merge_sort_is_stable() {
        let items = [(1, 'a'), (0, 'b'), (1, 'c'), (0, 'd')];
        let sorted: Vec<char> = glibc_qsort_order(&items, |a, b| a.0 - b.0)
            .into_iter()
            .map(|x| x.1)
            .collect();
        assert_eq!(sorted, ['b', 'd', 'a', 'c']);
    }
}
