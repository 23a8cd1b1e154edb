//! `xvs-bench`: nanoseconds per packet of the XVS XDP program under
//! BPF_PROG_TEST_RUN, next to reference programs measured the same way.
//! It prints figures and writes `target/bench/{summary.json,report.md}`; it
//! never asserts on timing (it does abort when a case takes the wrong path).
//!
//! Method, in short:
//! - The kernel times TEST_RUN itself and reports the mean ns per run
//!   (total / repeat, truncated to whole ns); the bench checks that at start.
//! - Cases whose packet stays on the same path when re-run use one call with
//!   a large `repeat`. `new_flow` cannot (the second run would find the flow
//!   the first one opened), so it makes one repeat=1 call per packet, each a
//!   new flow, and is compared with a baseline measured the same way.
//! - All cases run once per round, in a shuffled order; the per-round
//!   difference to the baseline is what cancels the VM's speed swings
//!   (a slow phase still scales the difference itself: see Δp25).
//!
//! Usage: `cargo xtask bench [-- --quick | --rounds N ...]` (needs root).

use anyhow::{anyhow, bail, Context, Result};
use aya::{
    programs::{TestRun, TestRunOptions, Xdp},
    Ebpf,
};
use lb_common::Verdict;
use std::{
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    time::{Instant, SystemTime, UNIX_EPOCH},
};
use xvs::{
    dataplane::{xdp::addr_bytes, Dataplane, XdpDataplane, XdpOptions},
    model::{Protocol, SchedulerKind, ServiceSpec},
};
use xvs_tests::{
    bench::{paired_deltas, records_json, MachineInfo, Record, Rng, Summary},
    fixtures::{real, real_mac, service},
    packet::{Frame, TCP_ACK, TCP_SYN},
};

const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

const VIP4: &str = "10.0.0.100";
const VIP6: &str = "2001:db8::100";
const PORT: u16 = 80;
/// The client of the flow the `established` cases replay.
const CLIENT4: &str = "10.9.0.1";
const CLIENT6: &str = "2001:db8:9::1";
const CLIENT_PORT: u16 = 40000;

/// Rounds whose samples are thrown away: they warm caches and the CPU's
/// clock, and double as the check that every case takes its expected path.
const WARMUP_ROUNDS: usize = 1;
/// Seed of the per-round shuffle: runs are repeatable in order.
const SHUFFLE_SEED: u64 = 0x5eed_0fa1;

const USAGE: &str = "\
usage: xvs-bench [--quick] [--rounds N] [--repeat N] [--calls N] [--cpu N]

  --quick       5 rounds, repeat=2000, 200 calls per batch (a smoke run)
  --rounds N    measured rounds (default 30)
  --repeat N    TEST_RUN repeat of the repeat-mode cases (default 20000)
  --calls N     repeat=1 calls per batch of the per-call cases (default 2000)
  --cpu N       CPU to pin to (default: the last one this process may use)";

fn main() -> Result<()> {
    let args = Args::parse()?;
    let cpu = pin_to_cpu(args.cpu)?;
    let machine = MachineInfo::read();
    let started = Instant::now();
    println!(
        "xvs-bench: {} rounds (+{WARMUP_ROUNDS} warm-up), repeat={}, calls={}, pinned to CPU {cpu}",
        args.rounds, args.repeat, args.calls
    );
    println!(
        "machine: {} | {} cores | kernel {} | clocksource {}",
        machine.cpu_model, machine.cores, machine.kernel, machine.clocksource
    );

    let conn_table_size = conn_table_size(&args);
    let mut programs = Programs::load(conn_table_size)?;
    let setup = Setup::install(&mut programs.dp)?;
    let duration_note = check_duration_semantics(&programs)?;
    println!("{duration_note}");
    let table_note = format!(
        "conn table: {conn_table_size} LRU entries (daemon default {}) for {} new flows: sized \
         so the LRU never evicts; new_flow times lookup miss + schedule + insert into a table \
         that is not full",
        lb_common::DEFAULT_CONN_TABLE,
        planned_new_flows(&args)
    );
    println!("{table_note}");

    let cases = cases(&setup);
    let mut bench = Bench::new(programs, &args);
    // Flows for established_many to revisit from its first round on.
    bench.open_flows(Family::V4, args.calls)?;
    println!("warm-up round: checking every case takes its expected path ...");
    bench.run_rounds(&cases, WARMUP_ROUNDS)?;
    println!("  all {} cases return the expected XDP action", cases.len());
    let samples = bench.run_rounds(&cases, args.rounds)?;
    let results = summarize(&cases, &samples);
    let eviction_note = bench.check_no_eviction(started)?;

    let table = render_table(&cases, &results);
    let methods = render_methods(&cases, &args);
    println!("\n{table}\n{methods}\n{eviction_note}");
    println!(
        "ran {:.1} s (wall clock, including setup)",
        started.elapsed().as_secs_f64()
    );

    let notes = [duration_note, table_note, eviction_note];
    let written = write_outputs(
        &cases, &results, &args, &machine, cpu, &table, &methods, &notes,
    )?;
    println!("wrote {written}");
    Ok(())
}

// ---------------------------------------------------------------- arguments

struct Args {
    quick: bool,
    rounds: usize,
    repeat: u32,
    calls: u32,
    cpu: Option<usize>,
}

impl Args {
    fn parse() -> Result<Args> {
        let mut quick = false;
        let (mut rounds, mut repeat, mut calls, mut cpu) = (None, None, None, None);
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--quick" => quick = true,
                "--rounds" => rounds = Some(number(&mut it, "--rounds")?),
                "--repeat" => repeat = Some(number(&mut it, "--repeat")?),
                "--calls" => calls = Some(number(&mut it, "--calls")?),
                "--cpu" => cpu = Some(number(&mut it, "--cpu")?),
                "--" => {}
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other:?}\n{USAGE}"),
            }
        }
        let (d_rounds, d_repeat, d_calls) = if quick {
            (5, 2_000, 200)
        } else {
            (30, 20_000, 2_000)
        };
        let args = Args {
            quick,
            rounds: rounds.unwrap_or(d_rounds),
            repeat: repeat.unwrap_or(d_repeat as usize) as u32,
            calls: calls.unwrap_or(d_calls as usize) as u32,
            cpu,
        };
        if args.rounds == 0 || args.repeat == 0 || args.calls == 0 {
            bail!("--rounds, --repeat and --calls must be at least 1");
        }
        Ok(args)
    }

    fn command_line(&self) -> String {
        let mode = if self.quick { " --quick" } else { "" };
        format!(
            "xvs-bench{mode} --rounds {} --repeat {} --calls {}",
            self.rounds, self.repeat, self.calls
        )
    }
}

fn number(it: &mut impl Iterator<Item = String>, flag: &str) -> Result<usize> {
    let v = it.next().ok_or_else(|| anyhow!("{flag} needs a value"))?;
    v.parse()
        .with_context(|| format!("{flag} {v:?}: not a number"))
}

// ---------------------------------------------------------------- CPU pinning

/// Pins this single-threaded process to one CPU: TEST_RUN runs the program
/// on the calling CPU, so every sample then comes from the same core.
fn pin_to_cpu(wanted: Option<usize>) -> Result<usize> {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    let mut allowed_set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if unsafe { libc::sched_getaffinity(0, size, &mut allowed_set) } != 0 {
        bail!("sched_getaffinity: {}", std::io::Error::last_os_error());
    }
    let allowed: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &allowed_set) })
        .collect();
    // The last CPU by default: CPU 0 tends to take more housekeeping work.
    let cpu = match wanted {
        Some(c) if allowed.contains(&c) => c,
        Some(c) => bail!("--cpu {c}: this process may only use CPUs {allowed:?}"),
        None => *allowed.last().ok_or_else(|| anyhow!("no CPU allowed"))?,
    };
    let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu, &mut one) };
    if unsafe { libc::sched_setaffinity(0, size, &one) } != 0 {
        bail!(
            "sched_setaffinity(CPU {cpu}): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(cpu)
}

// ---------------------------------------------------------------- programs

/// Which program a case runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Program {
    /// The balancer, with the bench's services loaded and active.
    Xvs,
    /// Baseline: rewrite both MACs, XDP_TX.
    MacSwapTx,
    /// Baseline: bare XDP_PASS.
    Pass,
}

impl Program {
    fn label(self) -> &'static str {
        match self {
            Program::Xvs => "xvs",
            Program::MacSwapTx => "xvs_mac_swap_tx",
            Program::Pass => "xvs_pass",
        }
    }
}

struct Programs {
    dp: XdpDataplane,
    baseline: Ebpf,
}

impl Programs {
    fn load(conn_table_size: u32) -> Result<Programs> {
        let dp = XdpDataplane::load(XdpOptions {
            conn_table_size,
            persist_table_size: 1 << 12,
        })
        .context("loading XVS (run as root)")?;
        let mut baseline =
            Ebpf::load(xvs::objects::BASELINE).context("loading the baseline object")?;
        for name in [Program::MacSwapTx.label(), Program::Pass.label()] {
            let prog: &mut Xdp = baseline
                .program_mut(name)
                .ok_or_else(|| anyhow!("program {name} missing from the baseline object"))?
                .try_into()?;
            prog.load()
                .with_context(|| format!("loading baseline program {name}"))?;
        }
        Ok(Programs { dp, baseline })
    }

    /// One BPF_PROG_TEST_RUN of `frame`, `repeat` times in the kernel: the
    /// XDP action and the kernel-reported mean ns per run.
    fn run(&self, program: Program, frame: &[u8], repeat: u32) -> Result<(u32, f64)> {
        if program == Program::Xvs {
            // Returns TestRunResult.duration, i.e. the kernel's per-run mean.
            return self.dp.test_run_repeat(frame, repeat);
        }
        let prog: &Xdp = self
            .baseline
            .program(program.label())
            .ok_or_else(|| anyhow!("program {} not loaded", program.label()))?
            .try_into()?;
        // Same buffers as XdpDataplane::test_run_repeat; the copies happen
        // outside the kernel's timed loop anyway.
        let mut out = vec![0u8; frame.len() + 256];
        let result = prog.test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            repeat,
            ..Default::default()
        })?;
        Ok((result.return_value, result.duration.as_nanos() as f64))
    }
}

/// Checks what TestRunResult.duration means: a per-run mean gives similar
/// values for repeat=1 and repeat=10000, a total would differ ~10000-fold.
fn check_duration_semantics(programs: &Programs) -> Result<String> {
    let frame = Frame::tcp(ip(CLIENT4), CLIENT_PORT, ip(VIP4), PORT, TCP_ACK).build();
    let calls = 500;
    let mut single = 0.0;
    for _ in 0..calls {
        single += programs.run(Program::MacSwapTx, &frame, 1)?.1;
    }
    single /= calls as f64;
    let repeated = programs.run(Program::MacSwapTx, &frame, 10_000)?.1;
    if repeated > 100.0 * single.max(1.0) {
        bail!(
            "TEST_RUN duration looks like a total, not a per-run mean \
             (repeat=1: {single:.1} ns, repeat=10000: {repeated:.0} ns); the figures would be wrong"
        );
    }
    Ok(format!(
        "TEST_RUN duration check (xvs_mac_swap_tx): repeat=1 -> {single:.1} ns/call (mean of {calls}), \
         repeat=10000 -> {repeated:.0} ns: the kernel reports the mean per run, not the total \
         (repeat=1 also carries the timer's own cost, hence per-call cases get a per-call baseline)"
    ))
}

// ---------------------------------------------------------------- setup

fn ip(s: &str) -> IpAddr {
    s.parse().expect("a valid address literal")
}

/// The services, the established flows and the non-VIP destinations.
struct Setup {
    established_v4: Vec<u8>,
    established_v6: Vec<u8>,
    non_vip_v4: (IpAddr, Vec<u8>),
    non_vip_v6: (IpAddr, Vec<u8>),
}

impl Setup {
    fn install(dp: &mut XdpDataplane) -> Result<Setup> {
        dp.apply(&services())?;
        dp.set_active(true)?;
        let established_v4 = open_flow(dp, ip(CLIENT4), ip(VIP4))?;
        let established_v6 = open_flow(dp, ip(CLIENT6), ip(VIP6))?;
        let vips = [ip(VIP4), ip(VIP6)];
        let v4 = non_vip(
            (1..=250).map(|n| IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))),
            &vips,
        )?;
        let v6 = non_vip(
            (1..=250).map(|n| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n))),
            &vips,
        )?;
        let client = |to: IpAddr| {
            if to.is_ipv4() {
                ip(CLIENT4)
            } else {
                ip(CLIENT6)
            }
        };
        let to_non_vip =
            |to: IpAddr| Frame::tcp(client(to), CLIENT_PORT, to, PORT, TCP_ACK).build();
        Ok(Setup {
            established_v4,
            established_v6,
            non_vip_v4: (v4, to_non_vip(v4)),
            non_vip_v6: (v6, to_non_vip(v6)),
        })
    }
}

/// One TCP service per family, rr over two reals (a new flow reads the
/// per-CPU ring cursor, one table slot and the real).
fn services() -> Vec<ServiceSpec> {
    let svc = |vip: &str, reals: [&str; 2]| {
        let reals = reals
            .iter()
            .enumerate()
            .map(|(i, r)| real(r, PORT, 1, real_mac(i as u8 + 1)))
            .collect();
        service(vip, PORT, Protocol::Tcp, SchedulerKind::Rr, reals)
    };
    vec![
        svc(VIP4, ["10.0.1.1", "10.0.1.2"]),
        svc(VIP6, ["2001:db8:1::1", "2001:db8:1::2"]),
    ]
}

/// Opens `client -> vip` with a SYN and an ACK, checks the table holds it as
/// ESTABLISHED, and returns the ACK frame that replays it.
fn open_flow(dp: &XdpDataplane, client: IpAddr, vip: IpAddr) -> Result<Vec<u8>> {
    for flags in [TCP_SYN, TCP_ACK] {
        let frame = Frame::tcp(client, CLIENT_PORT, vip, PORT, flags).build();
        let (action, _) = dp.test_run(&frame)?;
        if action != XDP_TX {
            bail!("opening the flow {client} -> {vip}: XDP action {action}, expected XDP_TX");
        }
    }
    let state = dp
        .connections()?
        .into_iter()
        .find(|c| c.client == (client, CLIENT_PORT))
        .map(|c| c.state);
    if state != Some(lb_common::ipvs::ConnState::Established) {
        bail!("flow {client} -> {vip} is {state:?} after SYN+ACK, expected ESTABLISHED");
    }
    Ok(Frame::tcp(client, CLIENT_PORT, vip, PORT, TCP_ACK).build())
}

/// The first candidate whose VIP-filter bit no VIP sets, so the program
/// drops it at the filter (the path a non-VIP packet takes in production),
/// not after a service lookup.
fn non_vip(mut candidates: impl Iterator<Item = IpAddr>, vips: &[IpAddr]) -> Result<IpAddr> {
    let vip_bits: Vec<u32> = vips.iter().map(|&v| filter_bit(v)).collect();
    candidates
        .find(|&a| !vips.contains(&a) && !vip_bits.contains(&filter_bit(a)))
        .ok_or_else(|| anyhow!("no non-VIP candidate with a clear VIP-filter bit"))
}

fn filter_bit(addr: IpAddr) -> u32 {
    let (family, bytes) = addr_bytes(addr);
    lb_common::vip_filter_bit(family, lb_common::addr_words(&bytes))
}

/// New flows the run opens: every per-call batch of both families, the
/// warm-up included, and the pool opened for `established_many`.
fn planned_new_flows(args: &Args) -> u64 {
    (args.rounds + WARMUP_ROUNDS) as u64 * args.calls as u64 * 2 + args.calls as u64
}

/// The daemon's default size, or twice the flows the run opens if that is
/// more, so the LRU never evicts. A fixed size keeps new_flow comparable
/// between runs: its cost grows with the table (cache and TLB misses).
fn conn_table_size(args: &Args) -> u32 {
    let wanted = (planned_new_flows(args) * 2).next_power_of_two();
    wanted.clamp(lb_common::DEFAULT_CONN_TABLE as u64, 1 << 26) as u32
}

// ---------------------------------------------------------------- cases

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

/// What a case sends.
enum Packet {
    /// The same frame every time.
    Fixed(Vec<u8>),
    /// A TCP SYN of a flow never seen before, for every call.
    NewFlow(Family),
    /// A TCP ACK of a random flow among the last `REVISIT_WINDOW` new flows
    /// of the family: the established path with a conn entry that is
    /// (mostly) not in the CPU cache, as with many concurrent clients.
    RevisitFlow(Family),
}

/// How far back `RevisitFlow` reaches: far enough that the entries do not
/// stay cached, recent enough that none has hit the 60 s SYN_RECV timeout.
const REVISIT_WINDOW: u32 = 50_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// One TEST_RUN with repeat=N: the sample is the kernel's mean per run.
    Repeat,
    /// N TEST_RUN calls with repeat=1: the sample is the mean of their
    /// kernel-reported durations.
    PerCall,
}

/// How a case's figure is judged.
struct Comparison {
    baseline: &'static str,
    /// Allowed median per-round difference, ns; `None` = informational.
    target_ns: Option<f64>,
    record: &'static str,
}

struct Case {
    name: &'static str,
    program: Program,
    packet: Packet,
    mode: Mode,
    /// XDP action every run must return.
    action: u32,
    /// Verdict XVS must count for every packet (XVS cases only).
    verdict: Option<Verdict>,
    compare: Option<Comparison>,
    /// The packet and path, for the method line.
    what: String,
}

impl Case {
    fn new(name: &'static str, program: Program, packet: Packet, mode: Mode) -> Case {
        Case {
            name,
            program,
            packet,
            mode,
            action: XDP_TX,
            verdict: None,
            compare: None,
            what: String::new(),
        }
    }

    /// Every run must return `action`; XVS must also count `verdict`.
    fn expect(mut self, action: u32, verdict: Option<Verdict>) -> Case {
        self.action = action;
        self.verdict = verdict;
        self
    }

    /// Report the per-round difference to `baseline` as `record`.
    fn vs(mut self, baseline: &'static str, target_ns: Option<f64>, record: &'static str) -> Case {
        self.compare = Some(Comparison {
            baseline,
            target_ns,
            record,
        });
        self
    }

    fn what(mut self, what: impl Into<String>) -> Case {
        self.what = what.into();
        self
    }
}

fn cases(setup: &Setup) -> Vec<Case> {
    use Mode::{PerCall, Repeat};
    use Program::{MacSwapTx, Pass, Xvs};
    let fixed = |frame: &Vec<u8>| Packet::Fixed(frame.clone());
    let (est4, est6) = (&setup.established_v4, &setup.established_v6);
    let (non_vip4, non_vip6) = (&setup.non_vip_v4, &setup.non_vip_v6);
    let tx = Some(Verdict::Tx);
    let not_service = Some(Verdict::PassNotService);
    let opened_flow = |client, vip| {
        format!("TCP ACK {client} -> {vip} of a flow opened (SYN, ACK) before timing")
    };
    let flow4 = opened_flow(format!("{CLIENT4}:{CLIENT_PORT}"), format!("{VIP4}:{PORT}"));
    let flow6 = opened_flow(
        format!("[{CLIENT6}]:{CLIENT_PORT}"),
        format!("[{VIP6}]:{PORT}"),
    );
    let rerun = "the re-run buffer differs only in MACs, the flow stays ESTABLISHED";
    let new_flow_to =
        |vip| format!("TCP SYN to {vip} from a client address/port never used before");
    vec![
        Case::new("xvs_pass", Pass, fixed(&non_vip4.1), Repeat)
            .expect(XDP_PASS, None)
            .what("baseline program xvs_pass (bare XDP_PASS), TCP frame"),
        Case::new("mac_swap_tx", MacSwapTx, fixed(est4), Repeat)
            .what("baseline program xvs_mac_swap_tx (set both MACs, XDP_TX), TCP frame"),
        Case::new("mac_swap_tx_call", MacSwapTx, fixed(est4), PerCall)
            .what("baseline xvs_mac_swap_tx, measured like new_flow (repeat=1 calls)"),
        Case::new("established", Xvs, fixed(est4), Repeat)
            .expect(XDP_TX, tx)
            .vs("mac_swap_tx", Some(30.0), "tc_established_over_baseline_ns")
            .what(format!("{flow4}; {rerun}")),
        Case::new("established_v6", Xvs, fixed(est6), Repeat)
            .expect(XDP_TX, tx)
            .vs(
                "mac_swap_tx",
                Some(30.0),
                "tc_established_v6_over_baseline_ns",
            )
            .what(format!("{flow6}; {rerun}")),
        Case::new("non_vip", Xvs, fixed(&non_vip4.1), Repeat)
            .expect(XDP_PASS, not_service)
            .vs("xvs_pass", Some(10.0), "tc_non_vip_over_pass_ns")
            .what(format!(
                "TCP ACK to {}, not a VIP: its VIP-filter bit is clear",
                non_vip4.0
            )),
        Case::new("non_vip_v6", Xvs, fixed(&non_vip6.1), Repeat)
            .expect(XDP_PASS, not_service)
            .vs("xvs_pass", Some(10.0), "tc_non_vip_v6_over_pass_ns")
            .what(format!(
                "TCP ACK to {}, not a VIP: its VIP-filter bit is clear",
                non_vip6.0
            )),
        Case::new("established_call", Xvs, fixed(est4), PerCall)
            .expect(XDP_TX, tx)
            .vs(
                "mac_swap_tx_call",
                None,
                "tc_established_call_over_baseline_ns",
            )
            .what(format!(
                "{flow4}; measured like new_flow, to show what new_flow adds"
            )),
        Case::new(
            "established_many",
            Xvs,
            Packet::RevisitFlow(Family::V4),
            PerCall,
        )
        .expect(XDP_TX, tx)
        .vs(
            "mac_swap_tx_call",
            None,
            "tc_established_many_over_baseline_ns",
        )
        .what(format!(
            "TCP ACK to {VIP4} of a random one of the last {REVISIT_WINDOW} flows opened by \
                 new_flow: a different, mostly uncached conn entry per call"
        )),
        Case::new("new_flow", Xvs, Packet::NewFlow(Family::V4), PerCall)
            .expect(XDP_TX, tx)
            .vs(
                "mac_swap_tx_call",
                Some(90.0),
                "tc_new_flow_over_baseline_ns",
            )
            .what(new_flow_to(VIP4)),
        Case::new("new_flow_v6", Xvs, Packet::NewFlow(Family::V6), PerCall)
            .expect(XDP_TX, tx)
            .vs(
                "mac_swap_tx_call",
                Some(90.0),
                "tc_new_flow_v6_over_baseline_ns",
            )
            .what(new_flow_to(VIP6)),
    ]
}

// ---------------------------------------------------------------- sampling

/// XVS's own counters, read around a sample to prove which path it took.
#[derive(Clone, Copy, Debug)]
struct PathCounts {
    verdicts: [u64; lb_common::VERDICT_COUNT as usize],
    new_conns: u64,
}

struct Bench {
    programs: Programs,
    repeat: u32,
    calls: u32,
    rng: Rng,
    /// New flows opened so far, per family: the next flow's number.
    flows_opened: [u32; 2],
}

impl Bench {
    fn new(programs: Programs, args: &Args) -> Bench {
        Bench {
            programs,
            repeat: args.repeat,
            calls: args.calls,
            rng: Rng::new(SHUFFLE_SEED),
            flows_opened: [0; 2],
        }
    }

    /// `rounds` rounds of every case in a freshly shuffled order; returns
    /// one sample per case per round, indexed [case][round].
    fn run_rounds(&mut self, cases: &[Case], rounds: usize) -> Result<Vec<Vec<f64>>> {
        let mut samples = vec![Vec::with_capacity(rounds); cases.len()];
        let mut order: Vec<usize> = (0..cases.len()).collect();
        for _ in 0..rounds {
            self.rng.shuffle(&mut order);
            for &i in &order {
                samples[i].push(self.sample(&cases[i])?);
            }
        }
        Ok(samples)
    }

    /// One batch of `case`: its ns/packet, after checking every packet
    /// took the expected path.
    fn sample(&mut self, case: &Case) -> Result<f64> {
        let before = self.path_counts()?;
        let (ns, packets) = match case.mode {
            Mode::Repeat => (self.sample_repeat(case)?, self.repeat as u64),
            Mode::PerCall => (self.sample_per_call(case)?, self.calls as u64),
        };
        if case.program == Program::Xvs {
            self.check_path(case, before, packets)?;
        }
        Ok(ns)
    }

    fn sample_repeat(&self, case: &Case) -> Result<f64> {
        let Packet::Fixed(frame) = &case.packet else {
            bail!("case {}: repeat mode needs a fixed frame", case.name);
        };
        let (action, ns) = self.programs.run(case.program, frame, self.repeat)?;
        expect_action(case, action)?;
        Ok(ns)
    }

    fn sample_per_call(&mut self, case: &Case) -> Result<f64> {
        // Built up front so the calls follow each other closely.
        let frames: Vec<Vec<u8>> = (0..self.calls).map(|_| self.next_frame(case)).collect();
        let mut total_ns = 0.0;
        for frame in &frames {
            let (action, ns) = self.programs.run(case.program, frame, 1)?;
            expect_action(case, action)?;
            total_ns += ns;
        }
        Ok(total_ns / frames.len() as f64)
    }

    fn next_frame(&mut self, case: &Case) -> Vec<u8> {
        match &case.packet {
            Packet::Fixed(frame) => frame.clone(),
            Packet::NewFlow(family) => {
                let n = &mut self.flows_opened[*family as usize];
                *n += 1;
                flow_frame(*family, *n, TCP_SYN)
            }
            Packet::RevisitFlow(family) => {
                let opened = self.flows_opened[*family as usize];
                let back = (self.rng.next_u64() % opened.min(REVISIT_WINDOW) as u64) as u32;
                flow_frame(*family, opened - back, TCP_ACK)
            }
        }
    }

    /// Opens `count` new flows of `family`, untimed.
    fn open_flows(&mut self, family: Family, count: u32) -> Result<()> {
        for _ in 0..count {
            let n = &mut self.flows_opened[family as usize];
            *n += 1;
            let (action, _) = self
                .programs
                .dp
                .test_run(&flow_frame(family, *n, TCP_SYN))?;
            if action != XDP_TX {
                bail!("opening flow {n} of {family:?}: XDP action {action}, expected XDP_TX");
            }
        }
        Ok(())
    }

    fn path_counts(&self) -> Result<PathCounts> {
        let mut verdicts = [0; lb_common::VERDICT_COUNT as usize];
        for (v, n) in self.programs.dp.verdicts()? {
            verdicts[v as usize] = n;
        }
        let new_conns = self
            .programs
            .dp
            .stats()?
            .iter()
            .map(|s| s.counters.conns)
            .sum();
        Ok(PathCounts {
            verdicts,
            new_conns,
        })
    }

    /// Every packet got the case's verdict, and opened a flow exactly when
    /// the case is meant to (so `new_flow` never re-hits, `established`
    /// never re-schedules).
    fn check_path(&self, case: &Case, before: PathCounts, packets: u64) -> Result<()> {
        let after = self.path_counts()?;
        if let Some(v) = case.verdict {
            let got = after.verdicts[v as usize] - before.verdicts[v as usize];
            if got != packets {
                bail!(
                    "case {}: {got} of {packets} packets got verdict {} (counters: {:?})",
                    case.name,
                    v.name(),
                    verdict_deltas(&before, &after)
                );
            }
        }
        let expected_conns = match case.packet {
            Packet::NewFlow(_) => packets,
            Packet::Fixed(_) | Packet::RevisitFlow(_) => 0,
        };
        let opened = after.new_conns - before.new_conns;
        if opened != expected_conns {
            bail!(
                "case {}: {opened} new connections for {packets} packets, expected {expected_conns}",
                case.name
            );
        }
        Ok(())
    }

    /// With no eviction, the table holds every flow the run opened.
    fn check_no_eviction(&self, started: Instant) -> Result<String> {
        // SYN_RECV entries expire after 60 s, and the listing hides
        // expired ones: past that, a shortfall would prove nothing.
        if started.elapsed().as_secs() >= 55 {
            return Ok(
                "eviction check skipped: the run outlasted the 60 s SYN_RECV timeout".into(),
            );
        }
        let opened: u64 = self.flows_opened.iter().map(|&n| n as u64).sum::<u64>() + 2;
        let live = self.programs.dp.connections()?.len() as u64;
        Ok(if live >= opened {
            format!("eviction check: {live} flows in the conn table = all {opened} opened, none evicted")
        } else {
            format!(
                "eviction check: WARNING {live} flows in the conn table, {opened} opened: {} evicted",
                opened - live
            )
        })
    }
}

fn expect_action(case: &Case, action: u32) -> Result<()> {
    if action != case.action {
        bail!(
            "case {}: XDP action {} ({}), expected {} ({}); the bench setup is wrong, \
             so its timing would be meaningless",
            case.name,
            action,
            action_name(action),
            case.action,
            action_name(case.action)
        );
    }
    Ok(())
}

fn action_name(action: u32) -> &'static str {
    match action {
        0 => "XDP_ABORTED",
        1 => "XDP_DROP",
        2 => "XDP_PASS",
        3 => "XDP_TX",
        4 => "XDP_REDIRECT",
        _ => "unknown",
    }
}

fn verdict_deltas(before: &PathCounts, after: &PathCounts) -> Vec<(&'static str, u64)> {
    Verdict::ALL
        .iter()
        .map(|&v| {
            (
                v.name(),
                after.verdicts[v as usize] - before.verdicts[v as usize],
            )
        })
        .filter(|&(_, n)| n > 0)
        .collect()
}

/// A packet of flow number `n` (from 1) of a family: the client address
/// carries `n`, the port varies too, so no two flows share a 5-tuple.
fn flow_frame(family: Family, n: u32, tcp_flags: u8) -> Vec<u8> {
    let sport = 1024 + (n % 60_000) as u16;
    let (src, dst) = match family {
        Family::V4 => (IpAddr::V4(Ipv4Addr::from(0x0a80_0000 + n)), ip(VIP4)),
        Family::V6 => {
            let base = u128::from(ip_v6("2001:db8:ffff::"));
            (IpAddr::V6(Ipv6Addr::from(base + n as u128)), ip(VIP6))
        }
    };
    Frame::tcp(src, sport, dst, PORT, tcp_flags).build()
}

fn ip_v6(s: &str) -> Ipv6Addr {
    s.parse().expect("a valid IPv6 literal")
}

// ---------------------------------------------------------------- results

struct CaseResult {
    summary: Summary,
    /// Per-round differences to the baseline, and the baseline's summary.
    delta: Option<(Summary, Summary)>,
}

fn summarize(cases: &[Case], samples: &[Vec<f64>]) -> Vec<CaseResult> {
    let index = |name: &str| cases.iter().position(|c| c.name == name);
    cases
        .iter()
        .zip(samples)
        .map(|(case, own)| {
            let delta = case.compare.as_ref().and_then(|cmp| {
                let base = &samples[index(cmp.baseline)?];
                Some((Summary::of(&paired_deltas(own, base)), Summary::of(base)))
            });
            CaseResult {
                summary: Summary::of(own),
                delta,
            }
        })
        .collect()
}

fn mode_label(mode: Mode) -> &'static str {
    match mode {
        Mode::Repeat => "repeat",
        Mode::PerCall => "per-call",
    }
}

fn render_table(cases: &[Case], results: &[CaseResult]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "ns/packet, per-round samples          median     p25     p75     min     max | \
         minus (same round)   Δmedian    Δp25    Δp75 | target (median Δ)"
    );
    for (case, r) in cases.iter().zip(results) {
        let s = &r.summary;
        let _ = write!(
            t,
            "{:<20} {:<12} {:>9.1} {:>7.1} {:>7.1} {:>7.1} {:>7.1} |",
            case.name,
            mode_label(case.mode),
            s.median,
            s.p25,
            s.p75,
            s.min,
            s.max
        );
        if let (Some(cmp), Some((d, _))) = (&case.compare, &r.delta) {
            let _ = write!(
                t,
                " {:<18} {:>9.1} {:>7.1} {:>7.1} | {}",
                cmp.baseline,
                d.median,
                d.p25,
                d.p75,
                target_status(cmp.target_ns, d.median)
            );
        }
        t.push('\n');
    }
    t
}

fn target_status(target_ns: Option<f64>, median_delta: f64) -> String {
    match target_ns {
        Some(limit) if median_delta <= limit => format!("<= {limit:.0} ns: met"),
        Some(limit) => format!("<= {limit:.0} ns: NOT MET"),
        None => "(informational)".to_string(),
    }
}

/// How each figure was obtained, one line per case.
fn render_methods(cases: &[Case], args: &Args) -> String {
    let mut m = String::from("How each figure was obtained:\n");
    for case in cases {
        let _ = writeln!(m, "  {:<18} {}", case.name, method(case, args));
    }
    let _ = writeln!(
        m,
        "  Every round runs all cases once, in a shuffled order; median/p25/p75/min/max are over \
         {} rounds (percentiles interpolated). Δ = case − baseline computed within each round, \
         then summarised. Targets are printed, never asserted.",
        args.rounds
    );
    m
}

fn method(case: &Case, args: &Args) -> String {
    let timing = match case.mode {
        Mode::Repeat => format!(
            "one BPF_PROG_TEST_RUN per round with repeat={} on one buffer; sample = the kernel's \
             mean ns per run (whole ns)",
            args.repeat
        ),
        Mode::PerCall => format!(
            "{} BPF_PROG_TEST_RUN calls with repeat=1 per round; sample = mean of the \
             kernel-reported per-call durations",
            args.calls
        ),
    };
    let checked = match case.verdict {
        Some(v) => format!(
            "; every packet checked: action {}, verdict {}",
            action_name(case.action),
            v.name()
        ),
        None => format!("; action {} checked", action_name(case.action)),
    };
    format!(
        "[{}] {}; {timing}{checked}",
        case.program.label(),
        case.what
    )
}

// ---------------------------------------------------------------- outputs

fn records(cases: &[Case], results: &[CaseResult], args: &Args) -> Vec<Record> {
    let mut out = Vec::new();
    for (case, r) in cases.iter().zip(results) {
        if let (Some(cmp), Some((d, base))) = (&case.compare, &r.delta) {
            out.push(Record {
                name: cmp.record.to_string(),
                value: d.median,
                unit: "ns".into(),
                baseline: Some(base.median),
                target: cmp.target_ns,
                method: format!(
                    "median over rounds of ({} − {}) ns/packet within each round; {}",
                    case.name,
                    cmp.baseline,
                    method(case, args)
                ),
                runs: d.count,
            });
        }
    }
    for (case, r) in cases.iter().zip(results) {
        out.push(Record {
            name: format!("{}_ns", case.name),
            value: r.summary.median,
            unit: "ns/packet".into(),
            baseline: r.delta.as_ref().map(|(_, base)| base.median),
            target: None,
            method: format!("median over rounds; {}", method(case, args)),
            runs: r.summary.count,
        });
    }
    out
}

/// Writes summary.json and report.md under `<workspace>/target/bench`.
#[allow(clippy::too_many_arguments)]
fn write_outputs(
    cases: &[Case],
    results: &[CaseResult],
    args: &Args,
    machine: &MachineInfo,
    cpu: usize,
    table: &str,
    methods: &str,
    notes: &[String],
) -> Result<String> {
    let dir = workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = dir.join("summary.json");
    std::fs::write(&json, records_json(&records(cases, results, args)))?;
    let report = dir.join("report.md");
    std::fs::write(
        &report,
        report_md(args, machine, cpu, table, methods, notes),
    )?;
    Ok(format!("{} and {}", json.display(), report.display()))
}

fn workspace_root() -> PathBuf {
    // This crate sits one level below the workspace root.
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::current_dir().unwrap_or_default())
}

fn report_md(
    args: &Args,
    machine: &MachineInfo,
    cpu: usize,
    table: &str,
    methods: &str,
    notes: &[String],
) -> String {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut r = String::from("# XVS per-packet benchmark (BPF_PROG_TEST_RUN)\n\n");
    let _ = writeln!(r, "- command: `{}`", args.command_line());
    let _ = writeln!(r, "- finished: unix time {unix}");
    let _ = writeln!(r, "- CPU: {}", machine.cpu_model);
    let _ = writeln!(r, "- cores: {} (pinned to CPU {cpu})", machine.cores);
    let _ = writeln!(r, "- kernel: {}", machine.kernel);
    let _ = writeln!(r, "- clocksource: {}\n", machine.clocksource);
    let _ = writeln!(r, "## Results\n\n```text\n{table}```\n");
    let _ = writeln!(r, "## Method\n\n```text\n{methods}```\n");
    let _ = writeln!(r, "## Checks\n");
    for note in notes {
        let _ = writeln!(r, "- {note}");
    }
    r
}
