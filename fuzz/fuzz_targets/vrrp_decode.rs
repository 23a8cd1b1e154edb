//! VRRP adverts as they arrive off the wire: `decode` must never panic, and
//! whatever it accepts with a standard checksum must encode back to the
//! same bytes, when it is something we could send at all (a v3 interval of
//! 0 is accepted, as keepalived does, but never sent).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;
use xvs::vrrp::packet::{
    decode, encode, Auth, ChecksumKind, EncodeOptions, Expect, Family, Version,
};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, payload)) = data.split_first() else {
        return;
    };
    let (v6, version) = match mode % 3 {
        0 => (false, Version::V2),
        1 => (false, Version::V3),
        _ => (true, Version::V3),
    };
    let (src, dst): (IpAddr, IpAddr) = if v6 {
        ("fe80::1".parse().unwrap(), "ff02::12".parse().unwrap())
    } else {
        ("192.0.2.1".parse().unwrap(), "224.0.0.18".parse().unwrap())
    };
    let expect = Expect {
        version,
        family: if v6 { Family::V6 } else { Family::V4 },
        vrid: payload.get(1).copied().unwrap_or(51),
        auth: if version == Version::V2 {
            Auth::pass("secret")
        } else {
            Auth::None
        },
        interval_cs: 100,
        addrs: Vec::new(),
        v3_checksum_as_v2: mode & 4 != 0,
        unicast: mode & 8 != 0,
        strict_addrs: mode & 16 != 0,
    };
    if let Ok(d) = decode(payload, src, dst, 255, &expect) {
        // v3's 4 reserved bits are ignored on receipt and sent as zero.
        let reserved = version == Version::V3 && payload[4] & 0xf0 != 0;
        if d.checksum == ChecksumKind::Standard && !reserved {
            if let Ok(mut again) = encode(&d.advert, src, dst, &EncodeOptions::default()) {
                // 0x0000 and 0xffff are the same one's-complement zero.
                if again[6..8] == [0, 0] && payload[6..8] == [0xff, 0xff] {
                    again[6..8].copy_from_slice(&[0xff, 0xff]);
                }
                assert_eq!(again, payload);
            }
        }
    }
});
