//! `xvsd --backend ipvs` against the kernel's real IPVS, in a guest.
//!
//! This machine's kernel has no IPVS, so `ipvs_guest_suite` builds the
//! guest of `cargo xtask vm` (a stock Debian 6.1 kernel under QEMU/TCG, see
//! xtask/src/vm.rs), boots it, and runs this same test binary inside with
//! `XVS_IN_GUEST=1`, where the `guest_*` tests do the work (outside the
//! guest they return at once). When the guest cannot be built the suite
//! fails, saying so.
//!
//! Inside: the lab's topology in network namespaces (client, director,
//! two DR real servers on one bridge), a seeds-shaped keepalived.conf, and
//! `xvsd --backend ipvs -C` (the VIP put on the director as VRRP's MASTER
//! would) programming IPVS. The real `ipvsadm -L -n`, `--stats` and `-c`
//! must read byte for byte as `xvsadm`'s, version line apart; traffic must
//! split by weight; health checks must take a real out of IPVS and put it
//! back.
//!
//! ```sh
//! cargo build --release -p lb-userspace --bins
//! cargo test --release -p xvs-tests --test ipvs_guest -- --nocapture
//! ```

#[path = "../../xtask/src/vm.rs"]
mod vm;

use anyhow::{bail, ensure, Context, Result};
use std::{
    collections::BTreeMap,
    net::{SocketAddr, UdpSocket},
    path::{Path, PathBuf},
    time::Duration,
};
use xvs_tests::daemon::{binary, wait_for, Admin, Daemon, DaemonArgs, TempDir};
use xvs_tests::netns::{configure_dr_real, fetch_reply, Lab, Netns, TcpResponder, UdpResponder};

const IN_GUEST: &str = "XVS_IN_GUEST";

const PREFIX_LEN: u8 = 24;
const CLIENT_IP: &str = "10.213.0.10";
const DIRECTOR_IP: &str = "10.213.0.2";
const VIP: &str = "10.213.0.100";
const REALS: [(&str, &str); 2] = [("real1", "10.213.0.11"), ("real2", "10.213.0.12")];
const IO_TIMEOUT: Duration = Duration::from_secs(3);
/// Slow: everything runs under software emulation.
const SETTLE: Duration = Duration::from_secs(30);

/// seed 004's shape: one VRRP instance, a TCP service with TCP_CHECKs, and
/// a persistent UDP one.
const CONFIG: &str = "\
global_defs {
    router_id xvs_ipvs_guest
    lvs_timeouts tcp 3600 tcpfin 60 udp 120
}

vrrp_instance VI_1 {
    state MASTER
    interface %DIRECTOR_IF%
    virtual_router_id 51
    priority 150
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass xvsguest
    }
    virtual_ipaddress {
        10.213.0.100/32
    }
}

virtual_server 10.213.0.100 80 {
    delay_loop 1
    lb_algo wrr
    lb_kind DR
    protocol TCP

    real_server 10.213.0.11 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 1
        }
    }
    real_server 10.213.0.12 80 {
        weight 2
        TCP_CHECK {
            connect_timeout 1
        }
    }
}

virtual_server 10.213.0.100 3478 {
    delay_loop 1
    lb_algo rr
    lb_kind DR
    persistence_timeout 60
    protocol UDP

    real_server 10.213.0.11 3478 {
        weight 1
    }
    real_server 10.213.0.12 3478 {
        weight 1
    }
}
";

fn in_guest() -> bool {
    std::env::var(IN_GUEST).as_deref() == Ok("1")
}

// ---------------------------------------------------------------------------
// The host side: build the guest, run the guest_* tests in it.

#[test]
fn ipvs_guest_suite() {
    if in_guest() {
        return;
    }
    if let Err(e) = run_suite_in_guest() {
        panic!("{e:#}");
    }
}

fn run_suite_in_guest() -> Result<()> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()?;
    let guest = vm::Guest::prepare(&vm::default_cache(&workspace)).map_err(|e| {
        anyhow::anyhow!(
            "\n\n*** THE IPVS GUEST CANNOT BE BUILT, SO NO IPVS TEST RAN ***\n{e:#}\n\
             (it needs root, apt with Debian 12 sources, dpkg-deb and ldd; \
             `cargo xtask vm` builds the same guest)\n"
        )
    })?;
    let exe = std::env::current_exe()?;
    let xvsd = binary("xvsd")?;
    let xvsadm = binary("xvsadm")?;
    let mut shares: Vec<PathBuf> = vec![workspace.clone()];
    for p in [&exe, &xvsd, &xvsadm] {
        // The directory cargo builds into (.../target), wherever it is.
        let target = p
            .ancestors()
            .find(|a| a.join("CACHEDIR.TAG").exists())
            .unwrap_or_else(|| p.parent().unwrap())
            .to_path_buf();
        if !shares.iter().any(|s| target.starts_with(s)) {
            shares.push(target);
        }
    }
    let opts = vm::RunOptions {
        shares,
        env: vec![
            (IN_GUEST.into(), "1".into()),
            ("RUST_BACKTRACE".into(), "1".into()),
        ],
        workdir: Some(workspace),
        binaries: vec![exe.clone(), xvsd, xvsadm],
        timeout: Duration::from_secs(1200),
        ..vm::RunOptions::default()
    };
    let argv: Vec<String> = [
        exe.display().to_string(),
        "--test-threads=1".into(),
        "--nocapture".into(),
        "guest_".into(),
    ]
    .to_vec();
    let out = guest.run(&argv, &opts).context("running the guest")?;
    ensure!(
        out.code == 0,
        "the IPVS tests failed in the guest (exit {}); see its console above",
        out.code
    );
    ensure!(
        out.output.contains("test result: ok") && !out.output.contains(" 0 passed"),
        "the guest ran no IPVS test"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// The guest side.

struct Topology {
    // Dropped last: deletes the namespaces.
    _lab: Lab,
    client: Netns,
    director: Netns,
    director_if: String,
    reals: Vec<Netns>,
}

fn cidr(ip: &str) -> String {
    format!("{ip}/{PREFIX_LEN}")
}

fn sock(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

fn build_topology(tag: &str) -> Result<Topology> {
    let mut lab = Lab::new(tag);
    let switch = lab.add_switch("switch")?;
    let client = lab.add_netns("client")?;
    switch.plug(&client, "eth0", &cidr(CLIENT_IP))?;
    let director = lab.add_netns("director")?;
    let director_if = format!("{tag}{}", std::process::id() % 10_000);
    switch.plug(&director, &director_if, &cidr(DIRECTOR_IP))?;
    // What VRRP's MASTER does; xvsd runs with -C (no VRRP) here.
    director.add_addr(&director_if, &format!("{VIP}/32"))?;
    let mut reals = Vec::new();
    for (name, ip) in REALS {
        let real = lab.add_netns(name)?;
        switch.plug(&real, "eth0", &cidr(ip))?;
        configure_dr_real(&real, VIP)?;
        reals.push(real);
    }
    Ok(Topology {
        _lab: lab,
        client,
        director,
        director_if,
        reals,
    })
}

/// The reals' servers: TCP (any address, so health checks reach it too)
/// answering their name, UDP on the VIP.
struct Servers {
    tcp: Vec<Option<TcpResponder>>,
    _udp: Vec<UdpResponder>,
}

fn start_servers(t: &Topology) -> Result<Servers> {
    let mut tcp = Vec::new();
    let mut udp = Vec::new();
    for (ns, (name, _)) in t.reals.iter().zip(REALS) {
        tcp.push(Some(TcpResponder::start(ns, sock("0.0.0.0", 80), name)?));
        udp.push(UdpResponder::start(ns, sock(VIP, 3478), name)?);
    }
    Ok(Servers { tcp, _udp: udp })
}

fn start_daemon(t: &Topology, dir: &TempDir, extra: &[&str]) -> Result<Daemon> {
    let conf = dir.join("keepalived.conf");
    std::fs::write(&conf, CONFIG.replace("%DIRECTOR_IF%", &t.director_if))?;
    let mut args = vec!["--backend", "ipvs", "-C"];
    args.extend_from_slice(extra);
    Daemon::start(
        &t.director,
        &DaemonArgs {
            conf: &conf,
            iface: &t.director_if,
            xdp_mode: "skb",
            instance: Some("ipvsguest"),
            extra: &args,
        },
        dir,
    )
}

fn ipvsadm(ns: &Netns, args: &[&str]) -> Result<String> {
    ns.exec("ipvsadm", args)
}

/// Without the first line (`IP Virtual Server version 1.2.1 (size=4096)` /
/// `XDP Virtual Server version ...`).
fn body(listing: &str) -> String {
    listing.lines().skip(1).collect::<Vec<_>>().join("\n")
}

/// The same listing from ipvsadm and xvsadm, byte for byte apart from the
/// version line. Read a few times: counters and expiry times move.
fn assert_listings_agree(director: &Netns, admin: &Admin, args: &[&str]) -> Result<String> {
    let mut last = (String::new(), String::new());
    for _ in 0..10 {
        let real = ipvsadm(director, args)?;
        let ours = admin.run(args)?;
        if args.contains(&"-c") {
            // -c has no version line.
            if real == ours {
                return Ok(real);
            }
        } else if body(&real) == body(&ours) {
            return Ok(real);
        }
        last = (real, ours);
        std::thread::sleep(Duration::from_millis(300));
    }
    bail!(
        "`ipvsadm {0}` and `xvsadm {0}` differ:\n--- ipvsadm\n{1}--- xvsadm\n{2}",
        args.join(" "),
        last.0,
        last.1
    )
}

/// Waits for IPVS to hold `want` reals on the TCP service.
fn wait_for_tcp_reals(director: &Netns, want: &[&str]) -> Result<String> {
    wait_for("IPVS to carry the TCP reals", SETTLE, || {
        let l = ipvsadm(director, &["-L", "-n"])?;
        let tcp: Vec<&str> = l
            .lines()
            .skip_while(|l| !l.starts_with("TCP "))
            .skip(1)
            .take_while(|l| l.starts_with("  ->"))
            .collect();
        let ok = tcp.len() == want.len() && want.iter().all(|w| tcp.iter().any(|l| l.contains(w)));
        Ok(ok.then_some(l))
    })
}

fn tcp_requests(client: &Netns, count: usize) -> Result<BTreeMap<String, u64>> {
    client.run(|| {
        let mut split = BTreeMap::new();
        for _ in 0..count {
            let name = fetch_reply(sock(VIP, 80), IO_TIMEOUT)?;
            *split.entry(name).or_insert(0) += 1;
        }
        Ok(split)
    })
}

#[test]
fn guest_ipvsadm_agrees_and_traffic_splits_by_weight() -> Result<()> {
    if !in_guest() {
        eprintln!("runs inside the IPVS guest (ipvs_guest_suite)");
        return Ok(());
    }
    let t = build_topology("ipa")?;
    let _servers = start_servers(&t)?;
    let dir = TempDir::new("xvs-ipvs-guest-a")?;
    let daemon = start_daemon(&t, &dir, &[])?;
    let admin = Admin::new(&daemon, &t.director)?;
    let listing = wait_for_tcp_reals(&t.director, &["10.213.0.11:80", "10.213.0.12:80"])?;
    println!("{listing}");
    assert!(
        listing.contains("UDP  10.213.0.100:3478 rr persistent 60"),
        "{listing}"
    );
    assert_listings_agree(&t.director, &admin, &["-L", "-n"])?;
    let timeouts = ipvsadm(&t.director, &["-L", "--timeout"])?;
    assert_eq!(timeouts.trim(), "Timeout (tcp tcpfin udp): 3600 60 120");
    assert_eq!(admin.run(&["-L", "--timeout"])?, timeouts);

    // wrr 1:2 over whole cycles (IPVS may start a fresh service with one
    // plain rr pass, so allow one off).
    let split = tcp_requests(&t.client, 30)?;
    println!("TCP split: {split:?}");
    let (r1, r2) = (
        split.get("real1").copied().unwrap_or(0),
        split.get("real2").copied().unwrap_or(0),
    );
    ensure!(r1 + r2 == 30, "every request answered by a real: {split:?}");
    ensure!(
        r1.abs_diff(10) <= 1 && r2.abs_diff(20) <= 1,
        "wrr 1:2 split, got {split:?}"
    );

    // UDP with persistence: one client stays on one real.
    let udp_names = t.client.run(|| {
        let mut names = Vec::new();
        for _ in 0..3 {
            let s = UdpSocket::bind("0.0.0.0:0")?;
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.send_to(b"xvs ipvs guest probe", sock(VIP, 3478))?;
            let mut buf = [0u8; 64];
            let (n, _) = s.recv_from(&mut buf)?;
            names.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        Ok(names)
    })?;
    ensure!(
        udp_names.iter().all(|n| *n == udp_names[0]),
        "persistence keeps a client on one real: {udp_names:?}"
    );

    // IPVS folds its per-CPU counters into what it reports every 2 s.
    wait_for("IPVS to count 30 TCP connections", SETTLE, || {
        let stats = ipvsadm(&t.director, &["-L", "-n", "--stats"])?;
        let conns = stats
            .lines()
            .find(|l| l.starts_with("TCP  10.213.0.100:80 "))
            .and_then(|l| l.split_whitespace().nth(2).map(str::to_string));
        Ok((conns.as_deref() == Some("30")).then_some(()))
    })?;
    let stats = assert_listings_agree(&t.director, &admin, &["-L", "-n", "--stats"])?;
    println!("{stats}");
    assert_listings_agree(&t.director, &admin, &["-L", "-n"])?;
    let conns = assert_listings_agree(&t.director, &admin, &["-L", "-n", "-c"])?;
    println!("{conns}");
    ensure!(
        conns.lines().count() > 30,
        "the connection table lists the flows:\n{conns}"
    );
    let mut daemon = daemon;
    daemon.stop()?;
    Ok(())
}

#[test]
fn guest_health_checks_remove_and_restore_reals() -> Result<()> {
    if !in_guest() {
        eprintln!("runs inside the IPVS guest (ipvs_guest_suite)");
        return Ok(());
    }
    let t = build_topology("iph")?;
    let mut servers = start_servers(&t)?;
    let dir = TempDir::new("xvs-ipvs-guest-h")?;
    // As keepalived does with IPVS: a failed real leaves the table (its
    // established flows are the kernel's business: expire_nodest_conn).
    let mut daemon = start_daemon(&t, &dir, &["--expire-nodest-conn"])?;
    let admin = Admin::new(&daemon, &t.director)?;
    wait_for_tcp_reals(&t.director, &["10.213.0.11:80", "10.213.0.12:80"])?;
    assert_listings_agree(&t.director, &admin, &["-L", "-n"])?;

    // real2's server stops: TCP_CHECK fails, IPVS loses the real.
    servers.tcp[1] = None;
    let listing = wait_for_tcp_reals(&t.director, &["10.213.0.11:80"])?;
    println!("real2 down:\n{listing}");
    assert_listings_agree(&t.director, &admin, &["-L", "-n"])?;
    let split = tcp_requests(&t.client, 6)?;
    ensure!(
        split.get("real1") == Some(&6),
        "with real2 out, real1 answers all: {split:?}"
    );

    // Back: the check succeeds again and the real returns, weight and all.
    servers.tcp[1] = Some(TcpResponder::start(
        &t.reals[1],
        sock("0.0.0.0", 80),
        "real2",
    )?);
    let listing = wait_for_tcp_reals(&t.director, &["10.213.0.11:80", "10.213.0.12:80"])?;
    println!("real2 back:\n{listing}");
    ensure!(
        listing.contains("  -> 10.213.0.12:80               Route   2"),
        "real2 is back with weight 2:\n{listing}"
    );
    assert_listings_agree(&t.director, &admin, &["-L", "-n"])?;
    let split = tcp_requests(&t.client, 9)?;
    ensure!(
        split.get("real2").copied().unwrap_or(0) >= 5,
        "real2 takes traffic again: {split:?}"
    );
    daemon.stop()?;
    // Stopping xvsd removes what it put in IPVS.
    let after = ipvsadm(&t.director, &["-L", "-n"])?;
    ensure!(!after.contains("TCP "), "services left behind:\n{after}");
    Ok(())
}
