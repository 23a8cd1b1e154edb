//! The control socket against a director with an in-memory data plane:
//! ipvsadm-style edits and listings work, and no request, however broken,
//! gets anything but an error reply or stops the server.

use std::{
    collections::{HashMap, HashSet},
    io::{BufRead, BufReader, Write},
    net::IpAddr,
    os::unix::net::UnixStream,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};
use xvs::{
    config::{parse_str, LoadOptions},
    control::{client::call, protocol::*},
    daemon::{
        control,
        director::{Director, Identity, Neighbours},
    },
    dataplane::{Connection, Dataplane, RealStats, ServiceStats, Timeouts},
    ipvsadm::args::{RealServer, VirtualService},
    model::{Protocol, SchedulerKind, ServiceId, ServiceSpec},
};

/// Remembers what it was given; counters stay zero.
#[derive(Default)]
struct FakeDataplane {
    applied: Arc<Mutex<Vec<ServiceSpec>>>,
    /// Like IPVS: removed reals' flows are kept by the data plane itself.
    keeps_removed_flows: bool,
}

impl Dataplane for FakeDataplane {
    fn drains_at_weight_zero(&self) -> bool {
        !self.keeps_removed_flows
    }
    fn apply(&mut self, services: &[ServiceSpec]) -> anyhow::Result<()> {
        *self.applied.lock().unwrap() = services.to_vec();
        Ok(())
    }
    fn set_active(&mut self, _: bool) -> anyhow::Result<()> {
        Ok(())
    }
    fn set_timeouts(&mut self, _: Timeouts) -> anyhow::Result<()> {
        Ok(())
    }
    fn stats(&self) -> anyhow::Result<Vec<ServiceStats>> {
        Ok(self
            .applied
            .lock()
            .unwrap()
            .iter()
            .map(|s| ServiceStats {
                id: s.id,
                counters: Default::default(),
                reals: s
                    .reals
                    .iter()
                    .map(|r| RealStats {
                        addr: r.addr,
                        port: r.port,
                        counters: Default::default(),
                    })
                    .collect(),
            })
            .collect())
    }
    fn zero(&mut self, _: Option<ServiceId>) -> anyhow::Result<()> {
        Ok(())
    }
    fn connections(&self) -> anyhow::Result<Vec<Connection>> {
        Ok(Vec::new())
    }
}

/// Every real has a MAC; nothing is local.
struct FakeNeighbours;

impl Neighbours for FakeNeighbours {
    fn macs(&mut self, addrs: &[IpAddr]) -> HashMap<IpAddr, [u8; 6]> {
        let mac = |addr: &IpAddr| match addr {
            IpAddr::V4(a) => [2, 0, 0, 0, 0, a.octets()[3]],
            IpAddr::V6(a) => [2, 0, 0, 0, 0, a.octets()[15]],
        };
        addrs.iter().map(|a| (*a, mac(a))).collect()
    }
    fn local_addrs(&mut self) -> HashSet<IpAddr> {
        HashSet::new()
    }
}

const CONFIG: &str = "
virtual_server 10.0.0.100 80 {
    lb_algo wrr
    lb_kind DR
    protocol TCP
    real_server 10.0.0.11 80 {
        weight 1
    }
    real_server 10.0.0.12 80 {
        weight 2
    }
}
";

struct Server {
    socket: PathBuf,
    applied: Arc<Mutex<Vec<ServiceSpec>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn start() -> Server {
    let (config, diags) = parse_str("test.conf", CONFIG, &LoadOptions::default());
    let config = config.unwrap_or_else(|| panic!("{diags:?}"));
    let dp = FakeDataplane::default();
    let applied = dp.applied.clone();
    let identity = Identity {
        instance: "test".into(),
        config_file: "test.conf".into(),
        interface: "eth0".into(),
        xdp_mode: "skb".into(),
        table_size: 4096,
    };
    let director = Director::new(
        Box::new(dp),
        Box::new(FakeNeighbours),
        identity,
        &config,
        Default::default(),
    )
    .unwrap();
    let socket = std::env::temp_dir().join(format!(
        "xvs-ctl-{}-{:?}.sock",
        std::process::id(),
        std::thread::current().id()
    ));
    // The server runs on its own current-thread runtime, as in xvsd.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let path = socket.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = control::bind(&path).unwrap();
            let (tx, _rx) = tokio::sync::mpsc::channel(1);
            ready_tx.send(()).unwrap();
            control::serve(listener, Arc::new(Mutex::new(director)), tx).await;
        });
    });
    ready_rx.recv().unwrap();
    Server { socket, applied }
}

/// Sends raw bytes and returns the raw reply line.
fn raw(socket: &PathBuf, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line
}

fn service_id() -> ServiceId {
    ServiceId {
        vip: "10.0.0.100".parse().unwrap(),
        port: 80,
        proto: Protocol::Tcp,
    }
}

#[test]
fn socket_is_root_only() {
    use std::os::unix::fs::PermissionsExt;
    let server = start();
    let mode = std::fs::metadata(&server.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn edits_and_listings_follow_ipvsadm() {
    let server = start();
    let table = match call(&server.socket, RequestBody::List).unwrap() {
        ResponseBody::Table { table } => table,
        other => panic!("{other:?}"),
    };
    assert_eq!(table.services.len(), 1);
    assert_eq!(table.services[0].dests.len(), 2);

    let add = Edit::AddServer {
        server: RealServer {
            service: service_id(),
            addr: "10.0.0.13".parse().unwrap(),
            port: 80,
            weight: 3,
        },
    };
    call(
        &server.socket,
        RequestBody::Edit {
            edits: vec![add.clone()],
        },
    )
    .unwrap();
    assert_eq!(server.applied.lock().unwrap()[0].reals.len(), 3);
    let err = call(&server.socket, RequestBody::Edit { edits: vec![add] }).unwrap_err();
    assert_eq!(err.to_string(), "Destination already exists");

    // All or nothing: a failing edit leaves the earlier ones unapplied.
    let new_service = Edit::AddService {
        service: VirtualService {
            id: ServiceId {
                port: 443,
                ..service_id()
            },
            scheduler: SchedulerKind::Rr,
            persistence: None,
        },
    };
    let missing = Edit::DeleteService {
        id: ServiceId {
            port: 9,
            ..service_id()
        },
    };
    let err = call(
        &server.socket,
        RequestBody::Edit {
            edits: vec![new_service, missing],
        },
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "No such service");
    assert_eq!(server.applied.lock().unwrap().len(), 1);

    match call(&server.socket, RequestBody::Status).unwrap() {
        ResponseBody::Status { status } => assert_eq!((status.services, status.active), (1, true)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn garbage_gets_error_replies_and_the_server_lives_on() {
    let server = start();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let valid = br#"{"version":1,"request":"edit","edits":[{"op":"zero","service":null}]}"#;
    for i in 0..300 {
        let mut bytes = match i % 3 {
            // Random bytes.
            0 => (0..(next() % 300))
                .map(|_| next() as u8)
                .collect::<Vec<u8>>(),
            // A valid request with bytes changed.
            1 => {
                let mut b = valid.to_vec();
                for _ in 0..=(next() % 4) {
                    let at = (next() as usize) % b.len();
                    b[at] = next() as u8;
                }
                b
            }
            // Valid JSON of the wrong shape.
            _ => format!(
                r#"{{"version":1,"request":"edit","edits":[{{"op":"add_server","server":{}}}]}}"#,
                next() % 1000
            )
            .into_bytes(),
        };
        bytes.push(b'\n');
        let reply = raw(&server.socket, &bytes);
        let parsed: Response = serde_json::from_str(&reply)
            .unwrap_or_else(|e| panic!("reply to {bytes:?} is not JSON ({e}): {reply:?}"));
        assert!(
            matches!(parsed.body, ResponseBody::Error { .. } | ResponseBody::Done),
            "{bytes:?} -> {reply}"
        );
    }
    // Oversized and empty requests.
    let huge = vec![b'x'; MAX_REQUEST_BYTES + 10];
    assert!(raw(&server.socket, &huge).contains("too large"));
    assert!(raw(&server.socket, b"").contains("error"));
    // Still serving.
    assert!(matches!(
        call(&server.socket, RequestBody::List),
        Ok(ResponseBody::Table { .. })
    ));
}

#[test]
fn reload_reapplies_lvs_timeouts_and_drops_runtime_set() {
    // keepalived re-applies lvs_timeouts on every reload (IPVS's defaults
    // when unset), replacing a runtime `ipvsadm --set`.
    let load = |text: &str| {
        parse_str("t.conf", text, &LoadOptions::default())
            .0
            .unwrap()
    };
    let with = load(&format!(
        "global_defs {{\n    lvs_timeouts tcp 3600 tcpfin 60 udp 30\n}}\n{CONFIG}"
    ));
    let identity = Identity {
        instance: "t".into(),
        config_file: "t.conf".into(),
        interface: "eth0".into(),
        xdp_mode: "skb".into(),
        table_size: 1,
    };
    let mut d = Director::new(
        Box::new(FakeDataplane::default()),
        Box::new(FakeNeighbours),
        identity,
        &with,
        Default::default(),
    )
    .unwrap();
    let set = |tcp, tcp_fin, udp| Timeouts { tcp, tcp_fin, udp };
    assert_eq!(d.timeouts(), set(3600, 60, 30));
    d.edit(&[Edit::SetTimeouts {
        timeouts: set(100, 0, 20),
    }])
    .unwrap();
    assert_eq!(d.timeouts(), set(100, 60, 20));
    d.load(&with).unwrap();
    assert_eq!(d.timeouts(), set(3600, 60, 30));
    d.load(&load(CONFIG)).unwrap();
    assert_eq!(d.timeouts(), set(900, 120, 300));
}

#[test]
fn down_real_keeps_its_flows_unless_expire_nodest_conn() {
    let (mut d, applied, down) = director_with_a_down_real(false);
    // Listed as keepalived's IPVS would have it: gone.
    let listed: Vec<IpAddr> = d.table().unwrap().services[0]
        .dests
        .iter()
        .map(|r| r.addr)
        .collect();
    assert!(!listed.contains(&down), "{listed:?}");
    // Carried at weight 0: no new flows, established ones stay on it.
    assert_eq!(weight_of(&applied, down), Some(0));
    d.set_expire_nodest_conn(true).unwrap();
    assert_eq!(weight_of(&applied, down), None);
}

/// A data plane that keeps removed reals' flows itself (IPVS) is given the
/// reals as listed: the down one out, with or without expire_nodest_conn.
#[test]
fn down_real_leaves_a_data_plane_that_keeps_its_flows() {
    let (d, applied, down) = director_with_a_down_real(true);
    let listed: Vec<IpAddr> = d.table().unwrap().services[0]
        .dests
        .iter()
        .map(|r| r.addr)
        .collect();
    assert!(!listed.contains(&down), "{listed:?}");
    assert_eq!(weight_of(&applied, down), None);
    assert_eq!(applied.lock().unwrap()[0].reals.len(), 1);
}

fn weight_of(applied: &Arc<Mutex<Vec<ServiceSpec>>>, addr: IpAddr) -> Option<u32> {
    applied.lock().unwrap()[0]
        .reals
        .iter()
        .find(|r| r.addr == addr)
        .map(|r| r.weight)
}

/// A director whose health view has 10.0.0.11 down (no inhibit_on_failure).
fn director_with_a_down_real(
    keeps_removed_flows: bool,
) -> (Director, Arc<Mutex<Vec<ServiceSpec>>>, IpAddr) {
    use xvs::health::{
        engine::{HealthView, RealHealth},
        RealId,
    };
    let (config, _) = parse_str("t.conf", CONFIG, &LoadOptions::default());
    let dp = FakeDataplane {
        keeps_removed_flows,
        ..FakeDataplane::default()
    };
    let applied = dp.applied.clone();
    let identity = Identity {
        instance: "t".into(),
        config_file: "t.conf".into(),
        interface: "eth0".into(),
        xdp_mode: "skb".into(),
        table_size: 1,
    };
    let mut d = Director::new(
        Box::new(dp),
        Box::new(FakeNeighbours),
        identity,
        &config.unwrap(),
        Default::default(),
    )
    .unwrap();
    let down: IpAddr = "10.0.0.11".parse().unwrap();
    let mut view = HealthView::default();
    view.reals.insert(
        RealId {
            service: service_id(),
            addr: down,
            port: 80,
        },
        RealHealth {
            up: false,
            weight: 1,
            inhibit_on_failure: false,
            reason: "TCP_CHECK failed".into(),
        },
    );
    d.set_health(view).unwrap();
    (d, applied, down)
}
