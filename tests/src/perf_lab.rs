//! The bench's figures that need namespaces, daemons or time: forwarded
//! pps through the veth lab, the control plane and VRRP failover. Every
//! figure is taken in interleaved A/B rounds against a baseline of the same
//! run and reported as median with p25/p75 ([`Figure`]); none is asserted.
//! Built on [`crate::lab`]'s public API only.

use anyhow::{anyhow, bail, Context, Result};
use aya::{
    maps::{Array, PerCpuArray},
    programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp, XdpMode},
    Ebpf,
};
use std::{
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr},
    time::{Duration, Instant},
};
use xvs::{
    dataplane::{xdp::AttachMode, Dataplane, XdpDataplane, XdpOptions},
    model::{Protocol, SchedulerKind, ServiceSpec},
};

use crate::{
    bench::{paired_deltas, Record, Rng, Summary},
    daemon::{wait_for, TempDir},
    fixtures::{real, service},
    keepalived::Keepalived,
    lab::{outage, DrLab, Prober, Shape, DIRECTOR_IF, SERVICE_PORT},
    netns::{attach_xdp_pass, spawn_in_netns, Netns},
    packet::{checksum, Frame, TCP_ACK},
};

/// One figure of the report: median with p25/p75 over its runs.
#[derive(Clone, Debug)]
pub struct Figure {
    pub group: &'static str,
    pub name: String,
    pub unit: String,
    pub value: f64,
    pub p25: f64,
    pub p75: f64,
    /// The baseline's median, same unit (None for raw figures).
    pub baseline: Option<f64>,
    pub target: Option<f64>,
    /// The target as printed beside the figure.
    pub target_text: String,
    pub method: String,
    pub runs: usize,
}

impl Figure {
    pub fn of(group: &'static str, name: &str, unit: &str, s: &Summary) -> Figure {
        Figure {
            group,
            name: name.to_string(),
            unit: unit.to_string(),
            value: s.median,
            p25: s.p25,
            p75: s.p75,
            baseline: None,
            target: None,
            target_text: "(informational)".into(),
            method: String::new(),
            runs: s.count,
        }
    }

    pub fn baseline(mut self, b: f64) -> Figure {
        self.baseline = Some(b);
        self
    }

    /// A target the value should not exceed (`at_least`: not fall below).
    pub fn target(mut self, t: f64, at_least: bool) -> Figure {
        self.target = Some(t);
        let met = if at_least {
            self.value >= t
        } else {
            self.value <= t
        };
        let op = if at_least { ">=" } else { "<=" };
        self.target_text = format!("{op} {t}: {}", if met { "met" } else { "NOT MET" });
        self
    }

    pub fn target_text(mut self, text: impl Into<String>) -> Figure {
        self.target_text = text.into();
        self
    }

    pub fn method(mut self, m: impl Into<String>) -> Figure {
        self.method = m.into();
        self
    }

    pub fn record(&self) -> Record {
        Record {
            name: self.name.clone(),
            value: self.value,
            unit: self.unit.clone(),
            baseline: self.baseline,
            target: self.target,
            method: self.method.clone(),
            runs: self.runs,
        }
    }
}

/// The figures as a text table, one section per group.
pub fn render_figures(figures: &[Figure]) -> String {
    let mut t = String::new();
    let mut group = "";
    for f in figures {
        if f.group != group {
            group = f.group;
            let _ = writeln!(
                t,
                "\n{group}\n{:<44} {:>12} {:>12} {:>12} {:<10} {:>12} | target",
                "figure", "median", "p25", "p75", "unit", "baseline"
            );
        }
        let base = f.baseline.map_or("-".to_string(), fmt_num);
        let _ = writeln!(
            t,
            "{:<44} {:>12} {:>12} {:>12} {:<10} {:>12} | {}",
            f.name,
            fmt_num(f.value),
            fmt_num(f.p25),
            fmt_num(f.p75),
            f.unit,
            base,
            f.target_text
        );
    }
    t
}

fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v.abs() >= 10_000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

// ---------------------------------------------------------------- helpers

/// The bridge port (in the lab's switch namespace) of `iface` in `ns`.
fn bridge_port(lab: &DrLab, ns: &Netns, iface: &str) -> Result<String> {
    let line = ns.ip(&["-o", "link", "show", iface])?;
    let peer: u32 = line
        .split_once("@if")
        .and_then(|(_, rest)| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no veth peer index in {line:?}"))?;
    let links = lab.switch.ip(&["-o", "link", "show"])?;
    links
        .lines()
        .find_map(|l| {
            let (idx, rest) = l.split_once(": ")?;
            (idx.trim().parse::<u32>().ok()? == peer)
                .then(|| rest.split(['@', ':']).next().unwrap_or("").to_string())
        })
        .with_context(|| format!("no interface {peer} in the switch namespace"))
}

fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn load_baseline_prog(ebpf: &mut Ebpf, name: &str) -> Result<()> {
    let prog: &mut Xdp = ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("{name} missing from the baseline object (rebuild lb-ebpf)"))?
        .try_into()?;
    prog.load().with_context(|| format!("loading {name}"))
}

fn xdp_of<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    Ok(ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("{name} missing"))?
        .try_into()?)
}

/// Frames `xvs_count_drop` counted in `ebpf`, over all CPUs.
fn counted(ebpf: &Ebpf) -> Result<u64> {
    let map: PerCpuArray<_, u64> =
        PerCpuArray::try_from(ebpf.map("XVS_BENCH_COUNT").context("XVS_BENCH_COUNT")?)?;
    Ok(map.get(&0, 0)?.iter().sum())
}

/// `VmRSS` of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")
}

/// utime + stime of `pid`, in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat.rsplit_once(')').context("bad stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / hz)
}

/// Median of per-round `a / b`.
fn ratios(a: &[f64], b: &[f64]) -> Summary {
    let r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    Summary::of(&r)
}

// ---------------------------------------------------------------- lab pps

/// Samples behind the lab figures, for the plots.
#[derive(Default)]
pub struct LabSamples {
    /// pps per round: XVS, baseline.
    pub pps: Vec<(f64, f64)>,
}

pub struct LabOut {
    pub figures: Vec<Figure>,
    pub samples: LabSamples,
    pub notes: Vec<String>,
}

/// What the lab bench does.
pub struct LabPlan {
    pub rounds: usize,
    pub window: Duration,
    pub flows: u32,
    /// Services beside the lab's own, 10 reals each, for the control-plane
    /// figures (the weight change then diffs a realistic table).
    pub extra_services: u32,
    /// Health-checked reals of the daemon figures (0: skip the daemons).
    pub checks: u32,
    pub daemon_windows: usize,
}

/// The MAC `xvs_mac_swap_tx` writes: real 1 gets it, so the baseline
/// delivers there.
const BASELINE_NEXT_HOP: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];

/// Figures 2 and 4: forwarded pps through the veth lab (native XDP on the
/// director), XVS vs the MAC-rewrite+TX baseline; the control plane.
pub fn lab_bench(plan: &LabPlan, rng: &mut Rng) -> Result<LabOut> {
    let mut figures = Vec::new();
    let mut notes = Vec::new();
    let mut lab = DrLab::build(Shape {
        tag: "xbench",
        subnet: 87,
        directors: 3,
        reals: 2,
        directors_are_reals: false,
    })
    .context("building the bench lab (root, iproute2)")?;
    if plan.checks > 0 {
        figures.extend(daemon_figures(&mut lab, plan, &mut notes)?);
    }

    // Real 1 takes the baseline's fixed next hop; static FDB entries keep
    // the bridge from flooding (a flooded frame would count twice).
    lab.reals[0].ns.ip(&[
        "link",
        "set",
        "eth0",
        "address",
        &mac_string(BASELINE_NEXT_HOP),
    ])?;
    let mut real_macs = Vec::new();
    for r in &lab.reals {
        let mac = r.ns.mac("eth0")?;
        let port = bridge_port(&lab, &r.ns, "eth0")?;
        lab.switch.exec(
            "bridge",
            &[
                "fdb",
                "replace",
                &mac_string(mac),
                "dev",
                &port,
                "master",
                "static",
            ],
        )?;
        real_macs.push(mac);
    }
    let dir = &lab.directors[0];
    let dir_mac = dir.ns.mac(DIRECTOR_IF)?;
    let dir_port = bridge_port(&lab, &dir.ns, DIRECTOR_IF)?;
    lab.switch.exec(
        "bridge",
        &[
            "fdb",
            "replace",
            &mac_string(dir_mac),
            "dev",
            &dir_port,
            "master",
            "static",
        ],
    )?;
    // The client's bridge end takes XDP_REDIRECTed frames only with an XDP
    // program attached.
    let client_port = bridge_port(&lab, &lab.client, "eth0")?;
    let _client_stub = attach_xdp_pass(&lab.switch, &client_port)?;
    // The reals' arrival counters.
    let mut counters = Vec::new();
    for r in &lab.reals {
        counters.push(r.ns.run(|| {
            let mut ebpf = Ebpf::load(xvs::objects::BASELINE)?;
            load_baseline_prog(&mut ebpf, "xvs_count_drop")?;
            xdp_of(&mut ebpf, "xvs_count_drop")?
                .attach("eth0", XdpMode::Driver)
                .context("attaching xvs_count_drop (native) on a real")?;
            Ok(ebpf)
        })?);
    }
    let delivered = |c: &[Ebpf]| -> Result<u64> { c.iter().map(counted).sum() };

    // The director: XVS (this process's data plane) or the baseline.
    let vip = lab.vip;
    let mut specs = lab_services(vip, &lab, &real_macs, plan.extra_services, 1);
    let mut xvs_dp = XdpDataplane::load(XdpOptions {
        conn_table_size: (plan.flows * 4).next_power_of_two().max(1 << 16),
        persist_table_size: 1 << 12,
    })?;
    let t = Instant::now();
    xvs_dp.apply(&specs)?;
    notes.push(format!(
        "lab director: {} services, {} reals applied in {:.0} ms",
        specs.len(),
        specs.iter().map(|s| s.reals.len()).sum::<usize>(),
        t.elapsed().as_secs_f64() * 1e3
    ));
    xvs_dp.set_active(true)?;
    // Open every flow the generator will send (SYN, then ACK), untimed.
    for n in 0..plan.flows {
        for flags in [lb_common_syn(), TCP_ACK] {
            let (action, _) =
                xvs_dp.test_run(&gen_frame(dir_mac, lab.client.mac("eth0")?, vip, n, flags))?;
            if action != 3 {
                bail!("opening lab flow {n}: XDP action {action}");
            }
        }
    }
    let mut baseline = Ebpf::load(xvs::objects::BASELINE)?;
    load_baseline_prog(&mut baseline, "xvs_mac_swap_tx")?;
    let template = gen_frame(dir_mac, lab.client.mac("eth0")?, vip, 0, TCP_ACK);
    let client_name = lab.client.name().to_string();
    let dir_ns = lab.directors[0].ns.clone();

    let mut xvs_pps = Vec::new();
    let mut base_pps = Vec::new();
    let mut sent_pps = Vec::new();
    let mut weight_loaded = Vec::new();
    let mut weight_idle = Vec::new();
    let mut weight = 1;
    for round in 0..plan.rounds + 1 {
        let mut order = [true, false];
        rng.shuffle(&mut order);
        let mut sample = [0.0f64; 2];
        for use_xvs in order {
            if use_xvs {
                dir_ns.run(|| xvs_dp.attach(DIRECTOR_IF, AttachMode::Native).map(drop))?;
            } else {
                dir_ns.run(|| {
                    xdp_of(&mut baseline, "xvs_mac_swap_tx")?
                        .attach(DIRECTOR_IF, XdpMode::Driver)
                        .map(drop)
                        .context("attaching xvs_mac_swap_tx (native)")
                })?;
            }
            std::thread::sleep(Duration::from_millis(30));
            let before = delivered(&counters)?;
            let gen = {
                let (name, frame, flows, window) = (
                    client_name.clone(),
                    template.clone(),
                    plan.flows,
                    plan.window,
                );
                spawn_in_netns(&name, move || generate(&frame, flows, window))
            };
            if use_xvs {
                // One weight change half-way through the window, under load.
                std::thread::sleep(plan.window / 2);
                weight = 3 - weight;
                specs = lab_services(vip, &lab, &real_macs, plan.extra_services, weight);
                let t = Instant::now();
                xvs_dp.apply(&specs)?;
                weight_loaded.push(t.elapsed().as_secs_f64() * 1e3);
            }
            let (sent, took) = gen.join().map_err(|_| anyhow!("generator panicked"))??;
            std::thread::sleep(Duration::from_millis(30));
            let got = delivered(&counters)? - before;
            sample[usize::from(!use_xvs)] = got as f64 / took;
            if use_xvs {
                sent_pps.push(sent as f64 / took);
                dir_ns.run(|| xvs_dp.detach())?;
                // The same change with no traffic.
                weight = 3 - weight;
                specs = lab_services(vip, &lab, &real_macs, plan.extra_services, weight);
                let t = Instant::now();
                xvs_dp.apply(&specs)?;
                weight_idle.push(t.elapsed().as_secs_f64() * 1e3);
            } else {
                // Unloading detaches the program's links; load it again.
                dir_ns.run(|| {
                    let prog = xdp_of(&mut baseline, "xvs_mac_swap_tx")?;
                    prog.unload()?;
                    prog.load()?;
                    Ok(())
                })?;
            }
        }
        if round > 0 {
            xvs_pps.push(sample[0]);
            base_pps.push(sample[1]);
        }
    }
    let xs = Summary::of(&xvs_pps);
    let bs = Summary::of(&base_pps);
    let method = format!(
        "veth lab (client, bridge, director with native XDP, 2 reals): {} rounds of {} ms windows, \
         XVS and baseline in shuffled order per round (+1 warm-up round dropped); generator: \
         xvs_flow_gen in the kernel's XDP live-frames TEST_RUN mode on the client's eth0, \
         60-byte (64 on the wire) TCP ACKs cycling {} flows opened beforehand; pps = frames \
         counted by xvs_count_drop (native XDP) on the reals / window",
        plan.rounds,
        plan.window.as_millis(),
        plan.flows
    );
    figures.push(
        Figure::of(
            "lab: forwarded pps (veth, native XDP)",
            "lab_pps_ratio_vs_baseline",
            "ratio",
            &ratios(&xvs_pps, &base_pps),
        )
        .baseline(1.0)
        .target(0.9, true)
        .method(format!("median over rounds of XVS pps / baseline pps (xvs_mac_swap_tx) in the same round; {method}")),
    );
    figures.push(
        Figure::of(
            "lab: forwarded pps (veth, native XDP)",
            "lab_pps_xvs",
            "pps",
            &xs,
        )
        .baseline(bs.median)
        .method(method.clone()),
    );
    figures.push(
        Figure::of(
            "lab: forwarded pps (veth, native XDP)",
            "lab_pps_baseline_mac_swap_tx",
            "pps",
            &bs,
        )
        .method(method.clone()),
    );
    figures.push(
        Figure::of(
            "lab: forwarded pps (veth, native XDP)",
            "lab_generator_pps_offered",
            "pps",
            &Summary::of(&sent_pps),
        )
        .method("frames the generator sent per second in XVS windows (offered load)"),
    );
    let wl = Summary::of(&weight_loaded[1..]);
    let wi = Summary::of(&weight_idle[1..]);
    figures.push(
        Figure::of("control plane", "cp_weight_change_under_load_ms", "ms", &wl)
            .baseline(wi.median)
            .method(format!(
                "XdpDataplane::apply of the lab director's {} services with one real's weight \
             toggled 1<->2, timed half-way through each XVS pps window (full load) vs the same \
             change right after it with no traffic (baseline), {} rounds",
                specs.len(),
                plan.rounds
            )),
    );
    figures.push(
        Figure::of(
            "control plane",
            "cp_weight_change_load_minus_idle_ms",
            "ms",
            &Summary::of(&paired_deltas(&weight_loaded[1..], &weight_idle[1..])),
        )
        .baseline(wi.median)
        .method("per-round difference of the two above"),
    );
    Ok(LabOut {
        figures,
        samples: LabSamples {
            pps: xvs_pps.into_iter().zip(base_pps).collect(),
        },
        notes,
    })
}

fn lb_common_syn() -> u8 {
    crate::packet::TCP_SYN
}

/// The lab's service (VIP:80 -> both reals, real 2 at `weight`) and
/// `extra` services of 10 reals each on other VIPs.
fn lab_services(
    vip: Ipv4Addr,
    lab: &DrLab,
    macs: &[[u8; 6]],
    extra: u32,
    weight: u32,
) -> Vec<ServiceSpec> {
    let reals = lab
        .reals
        .iter()
        .zip(macs)
        .enumerate()
        .map(|(i, (r, mac))| {
            real(
                &r.ip.to_string(),
                SERVICE_PORT,
                if i == 1 { weight } else { 1 },
                *mac,
            )
        })
        .collect();
    let mut out = vec![service(
        &vip.to_string(),
        SERVICE_PORT,
        Protocol::Tcp,
        SchedulerKind::Wrr,
        reals,
    )];
    for s in 0..extra {
        let v = Ipv4Addr::from(0x0a65_0001 + s);
        let reals = (0..10u32)
            .map(|r| {
                let a = Ipv4Addr::from(0x0ac9_0001 + r);
                real(&a.to_string(), SERVICE_PORT, 1, [2, 0xee, 0, 0, 1, r as u8])
            })
            .collect();
        out.push(service(
            &v.to_string(),
            SERVICE_PORT,
            Protocol::Tcp,
            SchedulerKind::Wrr,
            reals,
        ));
    }
    out
}

/// The generator's template, or flow `n` of it as `xvs_flow_gen` makes it:
/// source 10.250.h.h' (h = n / 64512) port 1024 + n % 64512, IP ID !h.
fn gen_frame(dst_mac: [u8; 6], src_mac: [u8; 6], vip: Ipv4Addr, n: u32, flags: u8) -> Vec<u8> {
    let high = (n / 64512) as u16;
    let src = IpAddr::V4(Ipv4Addr::from(0x0afa_0000 + high as u32));
    let mut frame = Frame::tcp(
        src,
        1024 + (n % 64512) as u16,
        IpAddr::V4(vip),
        SERVICE_PORT,
        flags,
    );
    frame.eth_dst = dst_mac;
    frame.eth_src = src_mac;
    let mut f = frame.payload(&[0; 6]).build();
    f[18..20].copy_from_slice(&(!high).to_be_bytes());
    f[24..26].copy_from_slice(&[0, 0]);
    let sum = checksum(&f[14..34], 0);
    f[24..26].copy_from_slice(&sum.to_be_bytes());
    f
}

/// Sends `template` as `flows` flows out of this namespace's eth0 for
/// `window`, in XDP live-frames mode; returns (frames sent, seconds).
fn generate(template: &[u8], flows: u32, window: Duration) -> Result<(u64, f64)> {
    let mut ebpf = Ebpf::load(xvs::objects::BASELINE)?;
    {
        let mut cfg: Array<_, u32> =
            Array::try_from(ebpf.map_mut("XVS_BENCH_GEN").context("XVS_BENCH_GEN")?)?;
        cfg.set(0, flows, 0)?;
    }
    load_baseline_prog(&mut ebpf, "xvs_flow_gen")?;
    let prog: &Xdp = ebpf.program("xvs_flow_gen").unwrap().try_into()?;
    let ifindex = unsafe { libc::if_nametoindex(c"eth0".as_ptr()) };
    if ifindex == 0 {
        bail!("no eth0 in the generator's namespace");
    }
    // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&(template.len() as u32).to_ne_bytes());
    ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
    let repeat = 1 << 14;
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < window {
        prog.test_run(TestRunOptions {
            data_in: Some(template),
            ctx_in: Some(&ctx),
            repeat,
            attrs: TestRunAttrs::new().xdp_live_frames(64),
            ..Default::default()
        })
        .context("XDP live-frames TEST_RUN (kernel >= 5.18)")?;
        sent += repeat as u64;
    }
    Ok((sent, started.elapsed().as_secs_f64()))
}

// ---------------------------------------------------------------- daemons

/// keepalived.conf of `services` virtual servers on the lab's VIP, ports
/// 10000.., each with both reals, with or without TCP_CHECK at delay_loop 1.
fn checks_conf(lab: &DrLab, services: u32, checks: bool) -> String {
    let mut text = String::from("global_defs {\n    router_id xvs_bench\n}\n\n");
    for s in 0..services {
        let _ = writeln!(
            text,
            "virtual_server {} {} {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind DR\n    protocol TCP",
            lab.vip,
            10_000 + s
        );
        for r in &lab.reals {
            let check = if checks {
                format!(
                    "        TCP_CHECK {{\n            connect_port {SERVICE_PORT}\n            connect_timeout 1\n        }}\n"
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                text,
                "    real_server {} {} {{\n        weight 1\n{check}    }}",
                r.ip,
                10_000 + s
            );
        }
        text.push_str("}\n");
    }
    text
}

/// The daemon's RSS and the CPU of `plan.checks` health checks at
/// delay_loop 1: xvsd on director 2 with the checks, beside xvsd on
/// director 3 with the same services and no checks (the baseline), sampled
/// over the same windows.
fn daemon_figures(lab: &mut DrLab, plan: &LabPlan, notes: &mut Vec<String>) -> Result<Vec<Figure>> {
    let services = plan.checks.div_ceil(lab.reals.len() as u32);
    let with = checks_conf(lab, services, true);
    let without = checks_conf(lab, services, false);
    let t = Instant::now();
    lab.start_director(1, &with)?;
    let started_with = t.elapsed().as_secs_f64();
    let t = Instant::now();
    lab.start_director(2, &without)?;
    let started_without = t.elapsed().as_secs_f64();
    notes.push(format!(
        "xvsd with {services} services x {} reals started (control socket up) in {started_with:.2} s \
         with TCP_CHECKs, {started_without:.2} s without",
        lab.reals.len()
    ));
    let pid = |lab: &DrLab, i: usize| -> Result<u32> {
        Ok(lab.directors[i].daemon.as_ref().context("no daemon")?.pid())
    };
    let (p_with, p_without) = (pid(lab, 1)?, pid(lab, 2)?);
    // Let the first checks settle.
    std::thread::sleep(Duration::from_secs(2));
    let mut cpu_with = Vec::new();
    let mut cpu_without = Vec::new();
    let window = Duration::from_secs(1);
    for _ in 0..plan.daemon_windows {
        let (a0, b0, t0) = (
            cpu_seconds(p_with)?,
            cpu_seconds(p_without)?,
            Instant::now(),
        );
        std::thread::sleep(window);
        let secs = t0.elapsed().as_secs_f64();
        cpu_with.push((cpu_seconds(p_with)? - a0) / secs * 100.0);
        cpu_without.push((cpu_seconds(p_without)? - b0) / secs * 100.0);
    }
    let rss_with = rss_kib(p_with)? / 1024.0;
    let rss_without = rss_kib(p_without)? / 1024.0;
    let up = lab.admin(1).and_then(|a| a.run(&["-L", "-n"])).map(|out| {
        out.lines()
            .filter(|l| l.trim_start().starts_with("->") && !l.contains("RemoteAddress"))
            .count()
    });
    notes.push(format!(
        "health-checked xvsd lists {:?} reals as up (of {})",
        up.ok(),
        services as usize * lab.reals.len()
    ));
    lab.stop_director(1)?;
    lab.stop_director(2)?;
    let checks = services * lab.reals.len() as u32;
    let cw = Summary::of(&cpu_with);
    let cb = Summary::of(&cpu_without);
    Ok(vec![
        Figure::of(
            "control plane",
            "cp_health_checks_cpu_percent",
            "% of a core",
            &cw,
        )
        .baseline(cb.median)
        .method(format!(
            "xvsd CPU (utime+stime from /proc) over {} 1-s windows with {checks} TCP_CHECKs at \
                 delay_loop 1 ({services} services x {} reals, connect to a live responder), vs \
                 xvsd with the same services and no checks, sampled over the same windows",
            plan.daemon_windows,
            lab.reals.len()
        )),
        Figure::of(
            "control plane",
            "cp_health_checks_cpu_over_baseline_percent",
            "% of a core",
            &Summary::of(&paired_deltas(&cpu_with, &cpu_without)),
        )
        .baseline(cb.median)
        .method("per-window difference of the two daemons' CPU"),
        Figure::of(
            "control plane",
            "cp_daemon_rss_mib",
            "MiB",
            &Summary::of(&[rss_with]),
        )
        .baseline(rss_without)
        .method(format!(
            "VmRSS of xvsd with {services} services x {} reals and {checks} TCP_CHECKs; baseline: \
             the same services without checks",
            lab.reals.len()
        )),
    ])
}

/// Time to apply `services` x `reals` to a fresh data plane, against a
/// no-op re-apply of the same configuration, interleaved over `rounds`.
pub fn apply_time(services: u32, reals: u32, rounds: usize, rng: &mut Rng) -> Result<Vec<Figure>> {
    let specs: Vec<ServiceSpec> = (0..services)
        .map(|s| {
            let vip = Ipv4Addr::from(0x0a66_0001 + s);
            let rs = (0..reals)
                .map(|r| {
                    let a = Ipv4Addr::from(0x0aca_0001 + r);
                    real(&a.to_string(), 80, 1 + r % 3, [2, 0xee, 0, 0, 2, r as u8])
                })
                .collect();
            service(&vip.to_string(), 80, Protocol::Tcp, SchedulerKind::Wrr, rs)
        })
        .collect();
    let mut dp = XdpDataplane::load(XdpOptions {
        conn_table_size: 1 << 12,
        persist_table_size: 1 << 12,
    })?;
    let (mut full, mut noop) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let mut order = [true, false];
        rng.shuffle(&mut order);
        for from_empty in order {
            if from_empty {
                dp.apply(&[])?;
                let t = Instant::now();
                dp.apply(&specs)?;
                full.push(t.elapsed().as_secs_f64() * 1e3);
            } else {
                dp.apply(&specs)?;
                let t = Instant::now();
                dp.apply(&specs)?;
                noop.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    let f = Summary::of(&full);
    let n = Summary::of(&noop);
    Ok(vec![Figure::of(
        "control plane",
        &format!("cp_apply_{services}x{reals}_ms"),
        "ms",
        &f,
    )
    .baseline(n.median)
    .method(format!(
        "XdpDataplane::apply of {services} services x {reals} reals (wrr) into an emptied data \
         plane (maps written: services, dests, scheduler rings, VIP filter), {rounds} rounds \
         interleaved with the baseline: a no-op re-apply of the same config (the diff alone)"
    ))])
}

// ---------------------------------------------------------------- failover

/// (label, XVS client outage, XVS takeover, keepalived takeover), ms.
pub type FailoverSeries = (String, Vec<f64>, Vec<f64>, Vec<f64>);

/// Samples behind the failover figures, in ms, for the histograms.
#[derive(Default)]
pub struct FailoverSamples {
    /// (label, XVS client outage, XVS takeover, keepalived takeover)
    pub series: Vec<FailoverSeries>,
}

fn vrrp_conf(lab: &DrLab, state: &str, priority: u8, version: u8, advert: &str) -> String {
    let auth = if version == 2 {
        "    authentication {\n        auth_type PASS\n        auth_pass xvs-pass\n    }\n"
    } else {
        ""
    };
    let mut text = format!(
        "global_defs {{\n    router_id xvs_bench\n    vrrp_version {version}\n}}\n\n\
         vrrp_instance VI_1 {{\n    state {state}\n    interface {DIRECTOR_IF}\n    \
         virtual_router_id 51\n    priority {priority}\n    advert_int {advert}\n{auth}    \
         virtual_ipaddress {{\n        {}/24\n    }}\n}}\n\n",
        lab.vip
    );
    let _ = writeln!(
        text,
        "virtual_server {} {SERVICE_PORT} {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind DR\n    protocol TCP",
        lab.vip
    );
    for r in &lab.reals {
        let _ = writeln!(
            text,
            "    real_server {} {SERVICE_PORT} {{\n        weight 1\n        TCP_CHECK {{\n            connect_timeout 1\n        }}\n    }}",
            r.ip
        );
    }
    text + "}\n"
}

const LONG: Duration = Duration::from_secs(20);

/// One XVS failover: (client outage, kill -> director 2 holds the VIP), ms.
fn xvs_failover(lab: &mut DrLab, version: u8, advert: &str) -> Result<(f64, f64)> {
    let (m, b) = (
        vrrp_conf(lab, "MASTER", 150, version, advert),
        vrrp_conf(lab, "BACKUP", 100, version, advert),
    );
    lab.start_director(0, &m)?;
    lab.start_director(1, &b)?;
    lab.wait_master(0, LONG)?;
    let prober = Prober::start(&lab.client, lab.service(), Duration::from_millis(10));
    prober.wait_success_after(Instant::now(), LONG)?;
    std::thread::sleep(Duration::from_millis(200));
    let killed = Instant::now();
    lab.kill_director(0)?;
    wait_for("director 2 holds the VIP", LONG, || {
        Ok(lab.holds_vip(1)?.then_some(()))
    })?;
    let took = killed.elapsed().as_secs_f64() * 1e3;
    prober.wait_success_after(Instant::now(), LONG)?;
    std::thread::sleep(Duration::from_millis(100));
    let gap = outage(&prober.finish(), killed)?.as_secs_f64() * 1e3;
    lab.stop_director(1)?;
    Ok((gap, took))
}

/// One keepalived failover (keepalived as both directors, VRRP only): kill
/// the MASTER host (its keepalived and its VIP) -> director 2 holds the VIP.
fn keepalived_failover(lab: &DrLab, dir: &TempDir, version: u8, advert: &str) -> Result<f64> {
    // No VIP left over from an earlier run on either director.
    let vip_cidr = format!("{}/24", lab.vip);
    for d in &lab.directors {
        let _ = d.ns.ip(&["addr", "del", &vip_cidr, "dev", DIRECTOR_IF]);
    }
    let mut a = Keepalived::start(
        &lab.directors[0].ns,
        dir,
        "ka1",
        &vrrp_conf(lab, "MASTER", 150, version, advert),
    )?;
    let mut b = Keepalived::start(
        &lab.directors[1].ns,
        dir,
        "ka2",
        &vrrp_conf(lab, "BACKUP", 100, version, advert),
    )?;
    wait_for("keepalived 1 holds the VIP", LONG, || {
        Ok((lab.holds_vip(0)? && !lab.holds_vip(1)?).then_some(()))
    })
    .with_context(|| format!("keepalived logs:\n{}\n{}", a.log(), b.log()))?;
    std::thread::sleep(Duration::from_millis(300));
    let killed = Instant::now();
    a.kill();
    let vip = format!("{}/24", lab.vip);
    let _ = lab.directors[0]
        .ns
        .ip(&["addr", "del", &vip, "dev", DIRECTOR_IF]);
    wait_for("keepalived 2 holds the VIP", LONG, || {
        Ok(lab.holds_vip(1)?.then_some(()))
    })?;
    let took = killed.elapsed().as_secs_f64() * 1e3;
    b.stop();
    // keepalived removes its VIP on a clean stop; make sure.
    let _ = lab.directors[1]
        .ns
        .ip(&["addr", "del", &vip, "dev", DIRECTOR_IF]);
    Ok(took)
}

/// Figure 5: `runs` failovers of each scenario, XVS and keepalived
/// interleaved run by run in a shuffled order.
pub fn failover_bench(
    scenarios: &[(u8, &'static str)],
    runs: usize,
    rng: &mut Rng,
) -> Result<(Vec<Figure>, FailoverSamples)> {
    let mut lab = DrLab::build(Shape {
        tag: "xbfo",
        subnet: 88,
        directors: 2,
        reals: 2,
        directors_are_reals: false,
    })?;
    let dir = TempDir::new("xbfo-ka")?;
    let mut figures = Vec::new();
    let mut samples = FailoverSamples::default();
    for &(version, advert) in scenarios {
        let (mut gaps, mut takes, mut ka) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let mut order = [true, false];
            rng.shuffle(&mut order);
            for xvs in order {
                if xvs {
                    let (g, t) = xvs_failover(&mut lab, version, advert)
                        .with_context(|| lab.director_log(1))?;
                    gaps.push(g);
                    takes.push(t);
                } else {
                    ka.push(keepalived_failover(&lab, &dir, version, advert)?);
                }
            }
        }
        let adv: f64 = advert.parse()?;
        let skew = (256.0 - 100.0) / 256.0 * adv;
        let bound = (3.0 * adv + skew) * 1e3;
        let label = format!("v{version}_advert_{}", advert.replace('.', "_"));
        let k = Summary::of(&ka);
        let method = format!(
            "lab with 2 directors, 2 reals; {runs} runs, XVS and keepalived (both directors, VRRP \
             only) alternating in shuffled order; SIGKILL of the MASTER (keepalived's host also \
             loses its VIP) -> BACKUP holds the VIP, polled every few ms; VRRPv{version}, \
             advert_int {advert}, priorities 150/100"
        );
        figures.push(
            Figure::of(
                "failover",
                &format!("failover_{label}_client_outage_ms"),
                "ms",
                &Summary::of(&gaps),
            )
            .baseline(k.median)
            .target(bound + 50.0, false)
            .method(format!(
                "XVS: the client's longest gap between served requests (one every 10 ms) around \
                 the kill; target 3 x advert + skew + 50 ms; baseline: keepalived's VIP takeover; {method}"
            )),
        );
        figures.push(
            Figure::of(
                "failover",
                &format!("failover_{label}_xvs_vip_takeover_ms"),
                "ms",
                &Summary::of(&takes),
            )
            .baseline(k.median)
            .method(format!("XVS: kill -> director 2 holds the VIP; {method}")),
        );
        figures.push(
            Figure::of(
                "failover",
                &format!("failover_{label}_keepalived_vip_takeover_ms"),
                "ms",
                &k,
            )
            .method(format!(
                "keepalived as both directors: kill -> director 2 holds the VIP; {method}"
            )),
        );
        figures.push(
            Figure::of(
                "failover",
                &format!("failover_{label}_xvs_minus_keepalived_ms"),
                "ms",
                &Summary::of(&paired_deltas(&takes, &ka)),
            )
            .baseline(k.median)
            .method("per-run difference of the VIP takeover times (XVS - keepalived)"),
        );
        samples.series.push((label, gaps, takes, ka));
    }
    Ok((figures, samples))
}
