//! Byte-exact messages: what XVS sends must be what ipvsadm 1.31's libipvs
//! sends for the same command (include/uapi/linux/ip_vs.h layouts), and
//! kernel-shaped replies must read back. Netlink header: length, type (the
//! family id, 0x0024 here), flags, sequence 1, port id 0; then the
//! genetlink header: command, version 1, two reserved bytes.

use super::attr::Timeouts;
use super::attr::*;
use super::socket::serialize;
use super::*;
use crate::model::{Persistence, RealSpec};
use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_generic::GenlMessage;

const FAMILY: u16 = 0x24;

/// Hex with spaces, newlines and `#` comments to the end of a line.
fn hex(text: &str) -> Vec<u8> {
    let digits: String = text
        .lines()
        .map(|l| l.split('#').next().unwrap())
        .collect::<String>()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

fn bytes(message: IpvsMessage, flags: u16) -> Vec<u8> {
    let mut m = GenlMessage::from_payload(message);
    m.set_resolved_family_id(FAMILY);
    serialize(m, flags, 1)
}

fn request(message: IpvsMessage) -> Vec<u8> {
    bytes(message, NLM_F_REQUEST | NLM_F_ACK)
}

fn parse(datagram: &[u8]) -> IpvsMessage {
    match NetlinkMessage::<GenlMessage<IpvsMessage>>::deserialize(datagram)
        .unwrap()
        .payload
    {
        NetlinkPayload::InnerMessage(m) => m.payload,
        other => panic!("not an IPVS message: {other:?}"),
    }
}

fn vip_key() -> ServiceKey {
    ServiceKey {
        addr: "10.212.0.100".parse().unwrap(),
        port: 80,
        protocol: 6,
    }
}

fn wrr_service() -> Service {
    Service {
        key: vip_key(),
        fwmark: 0,
        sched_name: "wrr".into(),
        pe_name: None,
        flags: 0,
        timeout: 0,
        netmask: 0xffff_ffff,
        stats: None,
    }
}

/// What ipvsadm 1.31 (Debian 12) sent for the same operation, captured
/// with `strace -e sendmsg -xx` in the guest of `cargo xtask vm`: the
/// message length, its flags, and every byte after the netlink header
/// (sequence and port id are ipvsadm's own, so the header is rebuilt with
/// ours).
fn libipvs(len: u32, flags: u16, payload: &str) -> Vec<u8> {
    let mut v = len.to_ne_bytes().to_vec();
    v.extend(FAMILY.to_ne_bytes());
    v.extend(flags.to_ne_bytes());
    v.extend(1u32.to_ne_bytes());
    v.extend(0u32.to_ne_bytes());
    v.extend(hex(payload));
    assert_eq!(v.len(), len as usize, "capture length");
    v
}

const ACKED: u16 = NLM_F_REQUEST | NLM_F_ACK;

/// `ipvsadm -A -t 10.212.0.100:80 -s wrr`
const ADD_SERVICE: &str = "
    01 01 0000                  # NEW_SERVICE, version 1
    5400 0180                   # IPVS_CMD_ATTR_SERVICE | NLA_F_NESTED, 84 bytes
    0600 0100 0200 0000         #   AF = AF_INET
    0600 0200 0600 0000         #   PROTOCOL = TCP
    1400 0300 0ad40064 00000000 00000000 00000000  # ADDR, nf_inet_addr
    0600 0400 0050 0000         #   PORT 80, network order
    0800 0600 77727200          #   SCHED_NAME \"wrr\"
    0c00 0700 00000000 ffffffff #   FLAGS {flags 0, mask ~0}
    0800 0800 00000000          #   TIMEOUT 0
    0800 0900 ffffffff          #   NETMASK 255.255.255.255
";

/// The service as `-t 10.212.0.100:80` alone names it (no scheduler).
const NAMED_SERVICE: &str = "
    5400 0180
    0600 0100 0200 0000
    0600 0200 0600 0000
    1400 0300 0ad40064 00000000 00000000 00000000
    0600 0400 0050 0000
    0500 0600 00000000          #   SCHED_NAME \"\"
    0c00 0700 00000000 ffffffff
    0800 0800 00000000
    0800 0900 ffffffff
";

/// `-r 10.212.0.11:80 -g -w WEIGHT`: the destination nest, 96 bytes.
fn dest_nest(weight: u8) -> String {
    format!(
        "
    6000 0280                   # IPVS_CMD_ATTR_DEST | NLA_F_NESTED
    0600 0b00 0200 0000         #   ADDR_FAMILY = AF_INET
    1400 0100 0ad4000b 00000000 00000000 00000000
    0600 0200 0050 0000         #   PORT 80
    0800 0300 03000000          #   FWD_METHOD = DROUTE
    0800 0400 {weight:02x}000000          #   WEIGHT
    0500 0d00 00000000          #   TUN_TYPE 0
    0600 0e00 00000000          #   TUN_PORT 0
    0600 0f00 00000000          #   TUN_FLAGS 0
    0800 0500 00000000          #   U_THRESH
    0800 0600 00000000          #   L_THRESH
"
    )
}

fn named() -> Service {
    Service::named(vip_key())
}

fn real(weight: u32) -> Dest {
    Dest::route("10.212.0.11".parse().unwrap(), 80, weight)
}

#[test]
fn services_as_ipvsadm_sends_them() {
    // ipvsadm -A -t 10.212.0.100:80 -s wrr
    assert_eq!(
        request(IpvsMessage::new_service(&wrr_service())),
        libipvs(104, ACKED, ADD_SERVICE)
    );
    // ipvsadm -D -t 10.212.0.100:80
    assert_eq!(
        request(IpvsMessage::del_service(&named())),
        libipvs(104, ACKED, &format!("03 01 0000 {NAMED_SERVICE}"))
    );
    // ipvsadm -A -u 10.212.0.100:3478 -s rr
    let udp = Service {
        key: ServiceKey {
            port: 3478,
            protocol: 17,
            ..vip_key()
        },
        sched_name: "rr".into(),
        ..wrr_service()
    };
    assert_eq!(
        request(IpvsMessage::new_service(&udp)),
        libipvs(
            104,
            ACKED,
            "01010000 54000180 06000100 02000000 06000200 11000000
             14000300 0ad40064 00000000 00000000 00000000
             06000400 0d960000 07000600 72720000 0c000700 00000000 ffffffff
             08000800 00000000 08000900 ffffffff"
        )
    );
}

#[test]
fn persistent_sh_service_carries_flags_timeout_and_netmask() {
    let spec = ServiceSpec {
        id: ServiceId {
            vip: "10.212.0.100".parse().unwrap(),
            port: 3478,
            proto: Protocol::Udp,
        },
        scheduler: SchedulerKind::Sh {
            fallback: true,
            port: true,
        },
        persistence: Some(Persistence {
            timeout_s: 360,
            prefix_len: 24,
        }),
        reals: Vec::new(),
    };
    let svc = service_of(&spec);
    assert_eq!(
        svc.flags,
        svc_flags::PERSISTENT | svc_flags::SCHED1 | svc_flags::SCHED2
    );
    // ipvsadm -E -u 10.212.0.100:3478 -s sh -b sh-fallback,sh-port -p 360 -M 255.255.255.0
    let expected = libipvs(
        104,
        ACKED,
        "
        02 01 0000                              # SET_SERVICE
        5400 0180
        0600 0100 0200 0000
        0600 0200 1100 0000                     #   PROTOCOL = UDP
        1400 0300 0ad40064 00000000 00000000 00000000
        0600 0400 0d96 0000                     #   PORT 3478
        0700 0600 736800 00                     #   SCHED_NAME \"sh\"
        0c00 0700 19000000 ffffffff             #   FLAGS persistent|sched1|sched2
        0800 0800 68010000                      #   TIMEOUT 360
        0800 0900 ffffff00                      #   NETMASK 255.255.255.0
    ",
    );
    assert_eq!(request(IpvsMessage::set_service(&svc)), expected);
}

#[test]
fn ipv6_netmask_is_the_prefix_length() {
    let v6: IpAddr = "2001:db8::100".parse().unwrap();
    assert_eq!(netmask_wire(v6, 64), 64);
    assert_eq!(netmask_prefix_len(AF_INET6, 64), 64);
    let v4: IpAddr = "10.0.0.1".parse().unwrap();
    assert_eq!(netmask_wire(v4, 24).to_ne_bytes(), [255, 255, 255, 0]);
    assert_eq!(netmask_prefix_len(AF_INET, netmask_wire(v4, 24)), 24);
    assert_eq!(netmask_wire(v4, 32), u32::MAX);
    assert_eq!(netmask_wire(v4, 0), 0);
}

#[test]
fn dests_as_ipvsadm_sends_them() {
    // ipvsadm -a -t 10.212.0.100:80 -r 10.212.0.11:80 -g -w 2
    assert_eq!(
        request(IpvsMessage::new_dest(&named(), &real(2))),
        libipvs(
            200,
            ACKED,
            &format!("05 01 0000 {NAMED_SERVICE} {}", dest_nest(2))
        )
    );
    // ipvsadm -e -t 10.212.0.100:80 -r 10.212.0.11:80 -g -w 2
    assert_eq!(
        request(IpvsMessage::set_dest(&named(), &real(2))),
        libipvs(
            200,
            ACKED,
            &format!("06 01 0000 {NAMED_SERVICE} {}", dest_nest(2))
        )
    );
    // ipvsadm -d -t 10.212.0.100:80 -r 10.212.0.11:80 (weight: the default 1)
    assert_eq!(
        request(IpvsMessage::del_dest(&named(), &real(1))),
        libipvs(
            200,
            ACKED,
            &format!("07 01 0000 {NAMED_SERVICE} {}", dest_nest(1))
        )
    );
}

#[test]
fn bare_commands_as_ipvsadm_sends_them() {
    // ipvsadm -L -n (the services dump)
    assert_eq!(
        bytes(
            IpvsMessage::get_services(),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP
        ),
        libipvs(20, 0x305, "04 01 0000")
    );
    // Every ipvsadm run starts with GET_INFO.
    assert_eq!(
        request(IpvsMessage::get_info()),
        libipvs(20, ACKED, "0f 01 0000")
    );
    // ipvsadm -C
    assert_eq!(
        request(IpvsMessage::flush()),
        libipvs(20, ACKED, "11 01 0000")
    );
    // ipvsadm -Z
    assert_eq!(
        request(IpvsMessage::zero(None)),
        libipvs(20, ACKED, "10 01 0000")
    );
    // ipvsadm -Z -t 10.212.0.100:80
    assert_eq!(
        request(IpvsMessage::zero(Some(&named()))),
        libipvs(104, ACKED, &format!("10 01 0000 {NAMED_SERVICE}"))
    );
    // GET_CONFIG (ipvsadm -L --timeout) and GET_DEST (one service's dests).
    assert_eq!(
        request(IpvsMessage::get_timeouts()),
        libipvs(20, ACKED, "0d 01 0000")
    );
    let get_dests = bytes(
        IpvsMessage::get_dests(&named()),
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP,
    );
    assert_eq!(
        get_dests,
        libipvs(104, 0x305, &format!("08 01 0000 {NAMED_SERVICE}"))
    );
}

#[test]
fn set_timeouts_sends_all_three() {
    let t = Timeouts {
        tcp: 900,
        tcp_fin: 120,
        udp: 300,
    };
    // ipvsadm --set 900 120 300
    assert_eq!(
        request(IpvsMessage::set_timeouts(t)),
        libipvs(
            44,
            ACKED,
            "
            0c 01 0000                 # SET_CONFIG
            0800 0400 84030000         # TIMEOUT_TCP 900
            0800 0500 78000000         # TIMEOUT_TCP_FIN 120
            0800 0600 2c010000         # TIMEOUT_UDP 300
        "
        )
    );
}

#[test]
fn daemon_commands() {
    let d = Daemon {
        state: daemon_state::MASTER,
        mcast_ifn: "eth0".into(),
        sync_id: 51,
        sync_maxlen: 0,
        mcast_group: None,
        mcast_port: 0,
        mcast_ttl: 0,
    };
    // ipvsadm --start-daemon master --mcast-interface eth0 --syncid 51
    assert_eq!(
        request(IpvsMessage::new_daemon(&d)),
        libipvs(
            52,
            ACKED,
            "
            09 01 0000                 # NEW_DAEMON
            2000 0380                  # DAEMON | NLA_F_NESTED
            0800 0100 01000000         #   STATE master
            0900 0200 65746830 00 000000  # MCAST_IFN \"eth0\"
            0800 0300 33000000         #   SYNC_ID 51
        "
        )
    );
    // ipvsadm --stop-daemon backup
    assert_eq!(
        request(IpvsMessage::del_daemon(daemon_state::BACKUP)),
        libipvs(
            48,
            ACKED,
            "
            0a 01 0000                 # DEL_DAEMON
            1c00 0380
            0800 0100 02000000         #   STATE backup
            0500 0200 00000000         #   MCAST_IFN \"\"
            0800 0300 00000000         #   SYNC_ID 0
        "
        )
    );
    // A daemon reply reads back, with the optional settings.
    let full = Daemon {
        sync_maxlen: 1472,
        mcast_group: Some("224.0.0.81".parse().unwrap()),
        mcast_port: 8848,
        mcast_ttl: 1,
        ..d
    };
    let reply = request(IpvsMessage::new_daemon(&full));
    assert_eq!(parse(&reply).daemon(), Some(full));
}

/// A GET_SERVICE dump entry as the kernel (6.1, ip_vs_genl_fill_service)
/// writes it: 32-bit STATS and 64-bit STATS64 nests.
#[test]
fn service_dump_entry_reads_stats64() {
    let reply = hex("
        f400 0000 2400 0200 01000000 00000000  # 244 bytes, NLM_F_MULTI
        01 01 0000                             # NEW_SERVICE
        e000 0100                              # SERVICE, 224 bytes
        0600 0100 0200 0000
        0600 0200 0600 0000
        1400 0300 0ad40064 00000000 00000000 00000000
        0600 0400 0050 0000
        0800 0600 77727200
        0c00 0700 02000000 ffffffff            #   FLAGS: hashed
        0800 0800 00000000
        0800 0900 ffffffff
        3400 0a00                              #   STATS (u32 + u64 bytes), 52 bytes
        0800 0100 05000000
        0800 0200 0a000000
        0800 0300 00000000
        0c00 0400 b80b0000 00000000
        0c00 0500 00000000 00000000
        5800 0c00                              #   STATS64, 88 bytes
        0c00 0100 05000000 01000000            #     CONNS 0x1_0000_0005
        0c00 0200 0a000000 00000000
        0c00 0300 00000000 00000000
        0c00 0400 b80b0000 00000000            #     INBYTES 3000
        0c00 0500 00000000 00000000
        0c00 0600 00000000 00000000
        0c00 0700 02000000 00000000            #     INPPS 2
    ");
    let svc = parse(&reply).service().unwrap().unwrap();
    assert_eq!(svc.key, vip_key());
    assert_eq!(svc.sched_name, "wrr");
    assert_eq!(svc.flags, svc_flags::HASHED);
    let stats = svc.stats.unwrap();
    assert_eq!(stats.conns, 0x1_0000_0005, "STATS64 wins over STATS");
    assert_eq!(stats.inpkts, 10);
    assert_eq!(stats.inbytes, 3000);
    assert_eq!(stats.inpps, 2);
    assert!(same_service(&svc, &wrr_service()));
    // And the counters the data plane reports.
    let c = counters(svc.stats);
    assert_eq!((c.conns, c.packets, c.bytes), (0x1_0000_0005, 10, 3000));
}

#[test]
fn dest_dump_entry_reads_connections_and_local_method() {
    let reply = hex("
        9c00 0000 2400 0200 01000000 00000000
        05 01 0000                             # NEW_DEST
        8800 0200                              # DEST, 136 bytes
        1400 0100 0ad4000b 00000000 00000000 00000000
        0600 0200 0050 0000
        0800 0300 01000000                     #   FWD_METHOD = LOCALNODE
        0800 0400 02000000                     #   WEIGHT 2
        0500 0d00 00 000000                    #   TUN_TYPE
        0600 0e00 0000 0000                    #   TUN_PORT
        0600 0f00 0000 0000                    #   TUN_FLAGS
        0800 0500 00000000
        0800 0600 00000000
        0800 0700 03000000                     #   ACTIVE_CONNS 3
        0800 0800 04000000                     #   INACT_CONNS 4
        0800 0900 01000000                     #   PERSIST_CONNS 1
        0600 0b00 0200 0000                    #   ADDR_FAMILY
        1000 0c00                              #   STATS64
        0c00 0100 07000000 00000000
    ");
    let d = parse(&reply).dest(AF_INET).unwrap().unwrap();
    assert_eq!(d.addr, "10.212.0.11".parse::<IpAddr>().unwrap());
    assert_eq!((d.port, d.weight), (80, 2));
    assert_eq!((d.active_conns, d.inact_conns, d.persist_conns), (3, 4, 1));
    assert_eq!(d.stats.unwrap().conns, 7);
    assert!(
        same_dest(&d, &Dest::route(d.addr, 80, 2)),
        "Local is DR to a local address"
    );
    assert!(!same_dest(&d, &Dest::route(d.addr, 80, 3)));
}

#[test]
fn info_and_config_replies() {
    let info = hex("
        2400 0000 2400 0000 01000000 00000000
        0e 01 0000                             # SET_INFO (the GET_INFO reply)
        0800 0100 01020100                     # VERSION 1.2.1
        0800 0200 00100000                     # CONN_TAB_SIZE 4096
    ");
    let i = parse(&info).info();
    assert_eq!(i.version, 0x010201);
    assert_eq!(i.conn_tab_size, 4096);
    let config = hex("
        2c00 0000 2400 0000 01000000 00000000
        0c 01 0000
        0800 0400 84030000
        0800 0500 78000000
        0800 0600 2c010000
    ");
    assert_eq!(
        parse(&config).timeouts(),
        Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300
        }
    );
}

#[test]
fn ipv6_service_round_trips() {
    let svc = Service {
        key: ServiceKey {
            addr: "2001:db8::100".parse().unwrap(),
            port: 443,
            protocol: 6,
        },
        netmask: 128,
        sched_name: "rr".into(),
        ..wrr_service()
    };
    let msg = request(IpvsMessage::new_service(&svc));
    let back = parse(&msg).service().unwrap().unwrap();
    assert_eq!(back, svc);
    assert_eq!(
        &msg[24..36],
        &hex("0600 0100 0a00 0000  0600 0200")[..],
        "AF_INET6"
    );
}

#[test]
fn specs_map_onto_services_and_dests() {
    let spec = ServiceSpec {
        id: ServiceId {
            vip: "10.212.0.100".parse().unwrap(),
            port: 80,
            proto: Protocol::Tcp,
        },
        scheduler: SchedulerKind::Wrr,
        persistence: None,
        reals: vec![RealSpec {
            addr: "10.212.0.11".parse().unwrap(),
            port: 80,
            weight: 1,
            mac: [0; 6],
            local: false,
        }],
    };
    assert_eq!(service_of(&spec), wrr_service());
    assert_eq!(id_of(&key_of(&spec.id)), Some(spec.id));
    let mut twice = vec![spec.clone(), spec.clone()];
    assert!(validate(&twice).is_err());
    twice.pop();
    twice[0].reals[0].addr = "2001:db8::1".parse().unwrap();
    assert!(
        validate(&twice).is_err(),
        "DR cannot cross address families"
    );
}
