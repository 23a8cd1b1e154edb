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
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};
use xvs::{
    dataplane::{xdp::addr_bytes, Dataplane, XdpDataplane, XdpOptions},
    model::{Protocol, SchedulerKind, ServiceSpec},
};
use xvs_tests::{
    bench::{paired_deltas, records_json, MachineInfo, Record, Rng, Summary},
    fixtures::{real, real_mac, service},
    packet::{Frame, TCP_ACK, TCP_SYN},
    perf_lab::{apply_time, failover_bench, lab_bench, render_figures, Figure, LabPlan},
    plot,
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
usage: xvs-bench [--quick] [--rounds N] [--repeat N] [--calls N] [--cpu N] [--skip PARTS]

  --quick       5 rounds, repeat=2000, 200 calls per batch (a smoke run)
  --rounds N    measured rounds (default 30)
  --repeat N    TEST_RUN repeat of the repeat-mode cases (default 20000)
  --calls N     repeat=1 calls per batch of the per-call cases (default 2000)
  --cpu N       CPU to pin to (default: the last one this process may use)
  --skip PARTS  comma-separated parts not to run: matrix (schedulers, persistence,
                table sizes), scale (conn table, SYN flood), lab (veth pps),
                control (apply, RSS, health checks), failover (VRRP vs keepalived)";

fn main() -> Result<()> {
    let args = Args::parse()?;
    let machine = MachineInfo::read();
    let started = Instant::now();
    // The lab parts run first, before this process is pinned to one CPU:
    // their generator, daemons and probers need both cores.
    let mut rng = Rng::new(SHUFFLE_SEED ^ 0x1ab);
    let mut figures: Vec<Figure> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut plots = Plots::default();
    if args.runs("control") {
        println!("control plane: apply 1,000 services x 10 reals ...");
        figures.extend(apply_time(
            1000,
            10,
            if args.quick { 3 } else { 10 },
            &mut rng,
        )?);
    }
    if args.runs("lab") {
        println!("lab: forwarded pps through the veth lab, XVS vs xvs_mac_swap_tx ...");
        let plan = LabPlan {
            rounds: if args.quick { 4 } else { 15 },
            window: Duration::from_millis(if args.quick { 500 } else { 1000 }),
            flows: if args.quick { 4096 } else { 65_536 },
            extra_services: 999,
            checks: if args.runs("control") { 2000 } else { 0 },
            daemon_windows: if args.quick { 3 } else { 10 },
        };
        match lab_bench(&plan, &mut rng) {
            Ok(out) => {
                figures.extend(out.figures);
                notes.extend(out.notes);
                plots.pps = out.samples.pps;
            }
            Err(e) => {
                eprintln!("lab bench failed: {e:#}");
                notes.push(format!("lab bench failed: {e:#}"));
            }
        }
    }
    if args.runs("failover") {
        let (scenarios, runs): (&[(u8, &str)], usize) = if args.quick {
            (&[(3, "0.1")], 2)
        } else {
            (&[(2, "1"), (3, "0.1")], 20)
        };
        println!("failover: {runs} runs each of {scenarios:?}, XVS and keepalived interleaved ...");
        match failover_bench(scenarios, runs, &mut rng) {
            Ok((f, samples)) => {
                figures.extend(f);
                plots.failover = samples.series;
            }
            Err(e) => {
                eprintln!("failover bench failed: {e:#}");
                notes.push(format!("failover bench failed: {e:#}"));
            }
        }
        if args.quick {
            notes.push("--quick: failover only VRRPv3 advert_int 0.1, 2 runs (full: v2 advert_int 1 and v3 0.1, 20 runs each)".into());
        }
    }

    let cpu = pin_to_cpu(args.cpu)?;
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

    let mut cases = cases(&setup);
    let mut matrix_note = String::from("matrix skipped (--skip matrix)");
    if args.runs("matrix") {
        println!("loading the matrix's data planes (schedulers, persistence, table sizes) ...");
        let (more, note) = matrix_cases(&mut programs, &args)?;
        cases.extend(more);
        matrix_note = note;
        println!("{matrix_note}");
    }
    let mut bench = Bench::new(programs, &args);
    // Flows for established_many to revisit from its first round on.
    bench.open_flows(Family::V4, args.calls)?;
    println!("warm-up round: checking every case takes its expected path ...");
    bench.run_rounds(&cases, WARMUP_ROUNDS)?;
    println!("  all {} cases return the expected XDP action", cases.len());
    let samples = bench.run_rounds(&cases, args.rounds)?;
    let results = summarize(&cases, &samples);
    let eviction_note = bench.check_no_eviction(started)?;
    let programs = bench.programs;
    if args.runs("scale") {
        println!("connection-table scale and SYN flood ...");
        let (f, note) = table_scale(&programs, &args)?;
        figures.extend(f);
        notes.push(note);
    }
    drop(programs);

    let table = render_table(&cases, &results);
    let methods = render_methods(&cases, &args);
    let fig_table = render_figures(&figures);
    println!("\n{table}\n{methods}\n{eviction_note}\n{fig_table}");
    for n in &notes {
        println!("note: {n}");
    }
    println!(
        "ran {:.1} s (wall clock, including setup)",
        started.elapsed().as_secs_f64()
    );

    notes.splice(
        0..0,
        [duration_note, table_note, matrix_note, eviction_note],
    );
    plots.cases = cases
        .iter()
        .zip(&results)
        .filter_map(|(c, r)| {
            r.delta
                .as_ref()
                .map(|(_, base)| (c.name.to_string(), c.group, r.summary.median, base.median))
        })
        .collect();
    let written = write_outputs(
        &cases, &results, &args, &machine, cpu, &table, &methods, &notes, &figures, &plots,
    )?;
    println!("wrote {written}");
    Ok(())
}

/// What the PNG plots are drawn from.
#[derive(Default)]
struct Plots {
    /// (case, group, median ns, its baseline's median ns)
    cases: Vec<(String, &'static str, f64, f64)>,
    pps: Vec<(f64, f64)>,
    failover: Vec<xvs_tests::perf_lab::FailoverSeries>,
}

// ---------------------------------------------------------------- table scale

/// Figure 3: established-flow cost (and so single-core pps) with 10k, 100k
/// and 1M live flows in the table, against the per-call baseline in the
/// same rounds; the table's memory; then the LRU under a SYN flood.
fn table_scale(programs: &Programs, args: &Args) -> Result<(Vec<Figure>, String)> {
    let sizes: &[u32] = if args.quick {
        &[10_000, 100_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    };
    let table = 1u32 << 21;
    let mut dp = XdpDataplane::load(XdpOptions {
        conn_table_size: table,
        persist_table_size: 1 << 12,
    })?;
    dp.apply(&services())?;
    dp.set_active(true)?;
    let memlock = map_memlock(table);
    let mut figures = Vec::new();
    let mut opened = 0u32;
    let rounds = args.rounds.min(if args.quick { 5 } else { 15 });
    let calls = args.calls;
    let mut rng = Rng::new(SHUFFLE_SEED ^ 0x5ca1e);
    let base_frame = Frame::tcp(ip(CLIENT4), CLIENT_PORT, ip(VIP4), PORT, TCP_ACK).build();
    for &n in sizes {
        while opened < n {
            opened += 1;
            for flags in [TCP_SYN, TCP_ACK] {
                let (action, _) = dp.test_run(&flow_frame(Family::V4, opened, flags))?;
                if action != XDP_TX {
                    bail!("opening scale flow {opened}: action {action}");
                }
            }
        }
        let live = dp.connections()?.len();
        let (mut case, mut base) = (Vec::new(), Vec::new());
        for _ in 0..rounds + 1 {
            let mut order = [true, false];
            rng.shuffle(&mut order);
            let mut s = [0.0; 2];
            for xvs in order {
                let frames: Vec<Vec<u8>> = (0..calls)
                    .map(|_| {
                        if xvs {
                            let f = 1 + (rng.next_u64() % n as u64) as u32;
                            flow_frame(Family::V4, f, TCP_ACK)
                        } else {
                            base_frame.clone()
                        }
                    })
                    .collect();
                let mut total = 0.0;
                for f in &frames {
                    let (action, ns) = if xvs {
                        dp.test_run_repeat(f, 1)?
                    } else {
                        programs.run(Program::MacSwapTx, f, 1)?
                    };
                    if action != XDP_TX {
                        bail!("scale case: action {action}");
                    }
                    total += ns;
                }
                s[usize::from(!xvs)] = total / calls as f64;
            }
            case.push(s[0]);
            base.push(s[1]);
        }
        let (case, base) = (&case[1..], &base[1..]);
        let d = Summary::of(&paired_deltas(case, base));
        let b = Summary::of(base);
        let method = format!(
            "{live} live flows in a {table}-entry LRU conn table (opened with SYN+ACK); {rounds} \
             rounds, each {calls} repeat=1 TEST_RUN calls of an ACK of a random live flow, \
             interleaved with the same number of xvs_mac_swap_tx calls (baseline)"
        );
        let label = match n {
            1_000_000 => "1m".to_string(),
            n => format!("{}k", n / 1000),
        };
        figures.push(
            Figure::of(
                "connection-table scale",
                &format!("scale_{label}_flows_established_over_baseline_ns"),
                "ns",
                &d,
            )
            .baseline(b.median)
            .method(method.clone()),
        );
        let pps: Vec<f64> = case.iter().map(|ns| 1e9 / ns).collect();
        let ratio: Vec<f64> = case.iter().zip(base).map(|(c, b)| b / c).collect();
        figures.push(
            Figure::of(
                "connection-table scale",
                &format!("scale_{label}_flows_pps_one_core"),
                "pps",
                &Summary::of(&pps),
            )
            .baseline(1e9 / b.median)
            .method(format!("1e9 / per-call ns; {method}")),
        );
        figures.push(
            Figure::of(
                "connection-table scale",
                &format!("scale_{label}_flows_pps_ratio_vs_baseline"),
                "ratio",
                &Summary::of(&ratio),
            )
            .baseline(1.0)
            .method(format!("per-round baseline ns / XVS ns; {method}")),
        );
        if let Some(bytes) = memlock {
            figures.push(
                Figure::of(
                    "connection-table scale",
                    &format!("scale_{label}_flows_conn_table_mib"),
                    "MiB",
                    &Summary::of(&[bytes as f64 / (1 << 20) as f64]),
                )
                .method(format!(
                    "memlock of the {table}-entry conn table map (/proc/self/fdinfo): the LRU \
                     hash is preallocated, so it does not grow with live flows"
                )),
            );
        }
    }
    drop(dp);
    let (flood, note) = syn_flood(args)?;
    figures.extend(flood);
    Ok((figures, note))
}

/// `memlock` of this process's LRU hash map with `entries` entries.
fn map_memlock(entries: u32) -> Option<u64> {
    let dir = std::fs::read_dir("/proc/self/fdinfo").ok()?;
    for e in dir.flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        let field = |k: &str| {
            text.lines()
                .find(|l| l.starts_with(k))
                .and_then(|l| l.split_whitespace().nth(1))
                .map(str::to_string)
        };
        if field("map_type:").as_deref() == Some("9")
            && field("max_entries:").as_deref() == Some(&entries.to_string())
        {
            return field("memlock:").and_then(|v| v.parse().ok());
        }
    }
    None
}

/// The LRU under a SYN flood: a 65,536-entry table with established flows
/// that keep sending, flooded with 4x its size of SYNs from new clients.
fn syn_flood(args: &Args) -> Result<(Vec<Figure>, String)> {
    let table = 1u32 << 16;
    let established = 2_000u32;
    let flood = if args.quick { table } else { 4 * table };
    let every = 8u32;
    let mut dp = XdpDataplane::load(XdpOptions {
        conn_table_size: table,
        persist_table_size: 1 << 12,
    })?;
    dp.apply(&services())?;
    dp.set_active(true)?;
    for n in 1..=established {
        for flags in [TCP_SYN, TCP_ACK] {
            dp.test_run(&flow_frame(Family::V4, n, flags))?;
        }
    }
    let verdict = |dp: &XdpDataplane, v: Verdict| -> Result<u64> {
        Ok(dp
            .verdicts()?
            .into_iter()
            .find(|(x, _)| *x == v)
            .map_or(0, |(_, n)| n))
    };
    let t = Instant::now();
    let mut lost_during = 0u64;
    let mut next = 0u32;
    for i in 0..flood {
        let (action, _) = dp.test_run(&flow_frame(Family::V6, i + 1, TCP_SYN))?;
        if action != XDP_TX {
            bail!("flood SYN {i}: action {action}");
        }
        if i % every == 0 {
            next = next % established + 1;
            let before = verdict(&dp, Verdict::PassNoConn)?;
            dp.test_run(&flow_frame(Family::V4, next, TCP_ACK))?;
            lost_during += verdict(&dp, Verdict::PassNoConn)? - before;
        }
    }
    let flood_s = t.elapsed().as_secs_f64();
    let before = verdict(&dp, Verdict::PassNoConn)?;
    for n in 1..=established {
        dp.test_run(&flow_frame(Family::V4, n, TCP_ACK))?;
    }
    let evicted_est = verdict(&dp, Verdict::PassNoConn)? - before;
    let live = dp.connections()?.len() as u64;
    let total = (established + flood) as u64;
    let method = format!(
        "{table}-entry LRU conn table, {established} established flows, then {flood} SYNs of new \
         clients (IPv6, one TEST_RUN each, {:.0} k/s) with an ACK of the next established flow \
         every {every} SYNs (each established flow sends every {} flood SYNs); afterwards an ACK \
         of every established flow: one without its entry gets PassNoConn",
        flood as f64 / flood_s / 1e3,
        established * every
    );
    let fig = |name: &str, unit: &str, v: f64| {
        Figure::of("LRU under a SYN flood", name, unit, &Summary::of(&[v])).method(method.clone())
    };
    let figures = vec![
        fig("lru_flood_established_evicted", "flows", evicted_est as f64)
            .target(0.0, false)
            .baseline(established as f64),
        fig(
            "lru_flood_established_misses_during",
            "packets",
            lost_during as f64,
        ),
        fig(
            "lru_flood_entries_evicted",
            "flows",
            (total - live.min(total)) as f64,
        )
        .baseline(total as f64),
    ];
    Ok((
        figures,
        format!(
            "SYN flood: {flood} new flows into a {table}-entry table: {live} entries live after, \
             {} established flows of {established} evicted",
            evicted_est
        ),
    ))
}

// ---------------------------------------------------------------- arguments

struct Args {
    quick: bool,
    rounds: usize,
    repeat: u32,
    calls: u32,
    cpu: Option<usize>,
    skip: Vec<String>,
}

impl Args {
    /// Whether `part` runs (not in `--skip`).
    fn runs(&self, part: &str) -> bool {
        !self.skip.iter().any(|s| s == part)
    }

    fn parse() -> Result<Args> {
        let mut quick = false;
        let (mut rounds, mut repeat, mut calls, mut cpu) = (None, None, None, None);
        let mut skip = Vec::new();
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--quick" => quick = true,
                "--rounds" => rounds = Some(number(&mut it, "--rounds")?),
                "--repeat" => repeat = Some(number(&mut it, "--repeat")?),
                "--calls" => calls = Some(number(&mut it, "--calls")?),
                "--cpu" => cpu = Some(number(&mut it, "--cpu")?),
                "--skip" => {
                    let v = it.next().ok_or_else(|| anyhow!("--skip needs a value"))?;
                    skip.extend(v.split(',').map(|p| p.trim().to_string()));
                }
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
            skip,
        };
        if args.rounds == 0 || args.repeat == 0 || args.calls == 0 {
            bail!("--rounds, --repeat and --calls must be at least 1");
        }
        Ok(args)
    }

    fn command_line(&self) -> String {
        let mode = if self.quick { " --quick" } else { "" };
        let skip = if self.skip.is_empty() {
            String::new()
        } else {
            format!(" --skip {}", self.skip.join(","))
        };
        format!(
            "xvs-bench{mode} --rounds {} --repeat {} --calls {}{skip}",
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
    /// The balancer loaded with one of the matrix's configurations
    /// (`Programs::tables[i]`).
    Table(usize),
}

impl Program {
    fn label(self) -> &'static str {
        match self {
            Program::Xvs | Program::Table(_) => "xvs",
            Program::MacSwapTx => "xvs_mac_swap_tx",
            Program::Pass => "xvs_pass",
        }
    }
}

struct Programs {
    dp: XdpDataplane,
    baseline: Ebpf,
    /// The matrix's data planes: other schedulers, persistence, table sizes.
    tables: Vec<XdpDataplane>,
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
        Ok(Programs {
            dp,
            baseline,
            tables: Vec::new(),
        })
    }

    /// The data plane a program runs on; None for the baselines.
    fn dataplane(&self, program: Program) -> Option<&XdpDataplane> {
        match program {
            Program::Xvs => Some(&self.dp),
            Program::Table(i) => self.tables.get(i),
            Program::MacSwapTx | Program::Pass => None,
        }
    }

    /// One BPF_PROG_TEST_RUN of `frame`, `repeat` times in the kernel: the
    /// XDP action and the kernel-reported mean ns per run.
    fn run(&self, program: Program, frame: &[u8], repeat: u32) -> Result<(u32, f64)> {
        if let Some(dp) = self.dataplane(program) {
            // Returns TestRunResult.duration, i.e. the kernel's per-run mean.
            return dp.test_run_repeat(frame, repeat);
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
        .find(|c| c.client == (client, CLIENT_PORT) && c.virtual_.0 == vip)
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

// ---------------------------------------------------------------- matrix

/// The table sizes of the size grid, (services, reals per service). The
/// full 3 x 3 cross product of {1, 100, 10,000} services and {1, 10, 1,000}
/// reals would need up to 10M reals; the data plane holds 65,536
/// (`MAX_DESTS`), so the grid keeps the six combinations that fit.
const GRID: [(u32, u32); 6] = [(1, 1), (1, 10), (1, 1000), (100, 1), (100, 10), (10_000, 1)];

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// The schedulers x persistence matrix, one case per service.
fn sched_variants() -> Vec<(SchedulerKind, bool)> {
    let mut out = Vec::new();
    for sched in [
        SchedulerKind::Rr,
        SchedulerKind::Wrr,
        SchedulerKind::Sh {
            fallback: false,
            port: false,
        },
    ] {
        for persist in [false, true] {
            out.push((sched, persist));
        }
    }
    out
}

/// Conn-table entries of every matrix data plane: room for all the new
/// flows of the busiest one (6 services) without eviction; the full run
/// lands on the daemon's default, 2^20, like the main cases.
fn matrix_conn_table(args: &Args) -> u32 {
    let wanted = 2 * 6 * (args.rounds + WARMUP_ROUNDS) as u64 * args.calls as u64;
    (wanted * 2)
        .next_power_of_two()
        .clamp(1 << 16, lb_common::DEFAULT_CONN_TABLE as u64) as u32
}

/// Loads the matrix's data planes into `programs.tables` and returns their
/// cases: each scheduler with and without persistence (IPv4 and IPv6), and
/// the size grid (IPv4, rr), each compared with its baseline in the same
/// rounds as everything else.
fn matrix_cases(programs: &mut Programs, args: &Args) -> Result<(Vec<Case>, String)> {
    use Mode::{PerCall, Repeat};
    let conn_table_size = matrix_conn_table(args);
    let load = || {
        XdpDataplane::load(XdpOptions {
            conn_table_size,
            persist_table_size: lb_common::DEFAULT_PERSIST_TABLE,
        })
        .context("loading a matrix data plane")
    };
    let tx = Some(Verdict::Tx);
    let mut cases = Vec::new();
    let mut note =
        format!("matrix: every data plane has a {conn_table_size}-entry conn table; apply times:");
    // Schedulers x persistence, 10 reals each, one data plane per family.
    for family in [Family::V4, Family::V6] {
        let fam = if family == Family::V4 { "v4" } else { "v6" };
        let mut specs = Vec::new();
        for (i, (sched, persist)) in sched_variants().into_iter().enumerate() {
            let i = i as u16 + 1;
            let vip = match family {
                Family::V4 => IpAddr::V4(Ipv4Addr::new(10, 0, 2, i as u8)),
                Family::V6 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, i)),
            };
            let reals = (1..=10u16)
                .map(|r| {
                    let addr = match family {
                        Family::V4 => IpAddr::V4(Ipv4Addr::new(10, 1, i as u8, r as u8)),
                        Family::V6 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, i, 0, 0, 0, r)),
                    };
                    real(&addr.to_string(), PORT, r as u32, real_mac(r as u8))
                })
                .collect();
            let mut svc = service(&vip.to_string(), PORT, Protocol::Tcp, sched, reals);
            if persist {
                svc = xvs_tests::fixtures::persistent(svc, 300, 32);
            }
            specs.push((vip, sched, persist, svc));
        }
        let mut dp = load()?;
        let t = Instant::now();
        dp.apply(&specs.iter().map(|s| s.3.clone()).collect::<Vec<_>>())?;
        dp.set_active(true)?;
        let _ = write!(
            note,
            " sched/{fam} {:.0} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
        let client = ip(if family == Family::V4 {
            CLIENT4
        } else {
            CLIENT6
        });
        let index = programs.tables.len();
        let mut established = Vec::new();
        for (vip, ..) in &specs {
            established.push(open_flow(&dp, client, *vip)?);
        }
        programs.tables.push(dp);
        for ((vip, sched, persist, _), est) in specs.iter().zip(established) {
            let tag = format!(
                "{fam}_{}_{}",
                sched.name(),
                if *persist { "persist" } else { "nopersist" }
            );
            let what = format!(
                "{} with {} persistence, 10 reals (weights 1..10), VIP {vip}",
                sched.name(),
                if *persist { "/32 300 s" } else { "no" }
            );
            cases.push(
                Case::new(
                    leak(format!("{tag}_established")),
                    Program::Table(index),
                    Packet::Fixed(est),
                    Repeat,
                )
                .expect(XDP_TX, tx)
                .vs(
                    "mac_swap_tx",
                    Some(30.0),
                    leak(format!("tc_{tag}_established_over_baseline_ns")),
                )
                .group("scheduler x persistence")
                .what(format!("established flow; {what}")),
            );
            cases.push(
                Case::new(
                    leak(format!("{tag}_new_flow")),
                    Program::Table(index),
                    Packet::NewFlowTo(family, vec![*vip]),
                    PerCall,
                )
                .expect(XDP_TX, tx)
                .vs(
                    "mac_swap_tx_call",
                    Some(90.0),
                    leak(format!("tc_{tag}_new_flow_over_baseline_ns")),
                )
                .group("scheduler x persistence")
                .what(format!("TCP SYN of a never-seen client; {what}")),
            );
        }
    }
    // The size grid: IPv4, rr, no persistence.
    for (services, reals) in GRID {
        let vips: Vec<IpAddr> = (0..services)
            .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a64_0001 + i)))
            .collect();
        let specs: Vec<ServiceSpec> = vips
            .iter()
            .map(|vip| {
                let reals = (0..reals)
                    .map(|r| {
                        let addr = Ipv4Addr::from(0x0ac8_0001 + r);
                        real(&addr.to_string(), PORT, 1, real_mac((r % 250) as u8 + 1))
                    })
                    .collect();
                service(
                    &vip.to_string(),
                    PORT,
                    Protocol::Tcp,
                    SchedulerKind::Rr,
                    reals,
                )
            })
            .collect();
        let mut dp = load()?;
        let t = Instant::now();
        dp.apply(&specs)?;
        dp.set_active(true)?;
        let _ = write!(
            note,
            " {services}x{reals} {:.0} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
        let est = open_flow(&dp, ip(CLIENT4), vips[0])?;
        let other = non_vip(
            (1..=250).map(|n| IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))),
            &vips,
        )?;
        let non_vip_frame = Frame::tcp(ip(CLIENT4), CLIENT_PORT, other, PORT, TCP_ACK).build();
        let index = programs.tables.len();
        programs.tables.push(dp);
        let tag = format!("grid_s{services}_r{reals}");
        let what = format!("{services} services x {reals} reals, rr, IPv4");
        let group = "table size (services x reals)";
        cases.push(
            Case::new(
                leak(format!("{tag}_established")),
                Program::Table(index),
                Packet::Fixed(est),
                Repeat,
            )
            .expect(XDP_TX, tx)
            .vs(
                "mac_swap_tx",
                Some(30.0),
                leak(format!("tc_{tag}_established_over_baseline_ns")),
            )
            .group(group)
            .what(format!("established flow to the first VIP; {what}")),
        );
        cases.push(
            Case::new(
                leak(format!("{tag}_new_flow")),
                Program::Table(index),
                Packet::NewFlowTo(Family::V4, vips),
                PerCall,
            )
            .expect(XDP_TX, tx)
            .vs(
                "mac_swap_tx_call",
                Some(90.0),
                leak(format!("tc_{tag}_new_flow_over_baseline_ns")),
            )
            .group(group)
            .what(format!(
                "TCP SYN of a never-seen client to a random VIP; {what}"
            )),
        );
        cases.push(
            Case::new(
                leak(format!("{tag}_non_vip")),
                Program::Table(index),
                Packet::Fixed(non_vip_frame),
                Repeat,
            )
            .expect(XDP_PASS, Some(Verdict::PassNotService))
            .vs(
                "xvs_pass",
                Some(10.0),
                leak(format!("tc_{tag}_non_vip_over_pass_ns")),
            )
            .group(group)
            .what(format!("TCP ACK to {other}, not a VIP; {what}")),
        );
    }
    Ok((cases, note))
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
    /// A TCP SYN of a flow never seen before (its own numbering, see
    /// `MATRIX_CLIENTS4`), to a random one of `vips`, port 80.
    NewFlowTo(Family, Vec<IpAddr>),
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
    /// The table this case belongs to in the report.
    group: &'static str,
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
            group: "main",
        }
    }

    fn group(mut self, group: &'static str) -> Case {
        self.group = group;
        self
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
    /// The same for the matrix's data planes (`Packet::NewFlowTo`).
    matrix_flows: u32,
}

impl Bench {
    fn new(programs: Programs, args: &Args) -> Bench {
        Bench {
            programs,
            repeat: args.repeat,
            calls: args.calls,
            rng: Rng::new(SHUFFLE_SEED),
            flows_opened: [0; 2],
            matrix_flows: 0,
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
        let before = self.path_counts(case.program)?;
        let (ns, packets) = match case.mode {
            Mode::Repeat => (self.sample_repeat(case)?, self.repeat as u64),
            Mode::PerCall => (self.sample_per_call(case)?, self.calls as u64),
        };
        if self.programs.dataplane(case.program).is_some() {
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
            Packet::NewFlowTo(family, vips) => {
                self.matrix_flows += 1;
                let vip = vips[(self.rng.next_u64() % vips.len() as u64) as usize];
                matrix_frame(*family, self.matrix_flows, vip)
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

    fn path_counts(&self, program: Program) -> Result<PathCounts> {
        let mut verdicts = [0; lb_common::VERDICT_COUNT as usize];
        let Some(dp) = self.programs.dataplane(program) else {
            return Ok(PathCounts {
                verdicts,
                new_conns: 0,
            });
        };
        for (v, n) in dp.verdicts()? {
            verdicts[v as usize] = n;
        }
        let new_conns = dp.stats()?.iter().map(|s| s.counters.conns).sum();
        Ok(PathCounts {
            verdicts,
            new_conns,
        })
    }

    /// Every packet got the case's verdict, and opened a flow exactly when
    /// the case is meant to (so `new_flow` never re-hits, `established`
    /// never re-schedules).
    fn check_path(&self, case: &Case, before: PathCounts, packets: u64) -> Result<()> {
        let after = self.path_counts(case.program)?;
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
            Packet::NewFlow(_) | Packet::NewFlowTo(..) => packets,
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

/// Flow `n` of the matrix's new-flow cases: clients 11.0.0.0/8 (IPv4) and
/// 2001:db8:fffe::/48 (IPv6), apart from every other case's.
fn matrix_frame(family: Family, n: u32, vip: IpAddr) -> Vec<u8> {
    let sport = 1024 + (n % 60_000) as u16;
    let src = match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + n)),
        Family::V6 => {
            let base = u128::from(ip_v6("2001:db8:fffe::"));
            IpAddr::V6(Ipv6Addr::from(base + n as u128))
        }
    };
    Frame::tcp(src, sport, vip, PORT, TCP_SYN).build()
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
    figures: &[Figure],
    plots: &Plots,
) -> Result<String> {
    let dir = workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = dir.join("summary.json");
    let mut recs = records(cases, results, args);
    recs.extend(figures.iter().map(Figure::record));
    std::fs::write(&json, records_json(&recs))?;
    let (pngs, plot_note) = match draw_plots(&dir, plots) {
        Ok(p) => (p, None),
        Err(e) => (Vec::new(), Some(format!("plots not drawn: {e:#}"))),
    };
    let mut notes = notes.to_vec();
    notes.extend(plot_note);
    let report = dir.join("report.md");
    std::fs::write(
        &report,
        report_md(args, machine, cpu, table, methods, &notes, figures, &pngs),
    )?;
    Ok(format!(
        "{}, {} and {} plots",
        json.display(),
        report.display(),
        pngs.len()
    ))
}

/// The PNG plots; returns their file names.
fn draw_plots(dir: &std::path::Path, plots: &Plots) -> Result<Vec<String>> {
    if !plot::init_font() {
        bail!("no DejaVu Sans font (apt-get install fonts-dejavu-core)");
    }
    let mut out = Vec::new();
    let mut groups: Vec<&'static str> = plots.cases.iter().map(|c| c.1).collect();
    groups.dedup();
    for (i, group) in groups.iter().enumerate() {
        let rows: Vec<(String, f64, f64)> = plots
            .cases
            .iter()
            .filter(|c| c.1 == *group)
            .map(|c| (c.0.clone(), c.2, c.3))
            .collect();
        let name = format!("ns_per_packet_{i}.png");
        plot::bars_with_baseline(
            &dir.join(&name),
            &format!("ns/packet, BPF_PROG_TEST_RUN: {group}"),
            "ns/packet (median over rounds)",
            &rows,
        )?;
        out.push(name);
    }
    if !plots.pps.is_empty() {
        let (a, b): (Vec<f64>, Vec<f64>) = plots.pps.iter().copied().unzip();
        plot::rounds_lines(
            &dir.join("lab_pps.png"),
            "veth lab: forwarded pps per round, XVS vs MAC-rewrite+XDP_TX baseline",
            "packets/s delivered to the reals",
            ("XVS", &a),
            ("xvs_mac_swap_tx (baseline)", &b),
        )?;
        out.push("lab_pps.png".into());
    }
    for (label, gaps, takes, ka) in &plots.failover {
        let name = format!("failover_{label}.png");
        let bin = if label.starts_with("v2") { 100.0 } else { 20.0 };
        plot::histograms(
            &dir.join(&name),
            &format!("failover {label}: outage / VIP takeover"),
            &[
                ("XVS client outage", gaps),
                ("XVS VIP takeover", takes),
                ("keepalived VIP takeover", ka),
            ],
            bin,
        )?;
        out.push(name);
    }
    Ok(out)
}

fn workspace_root() -> PathBuf {
    // This crate sits one level below the workspace root.
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::current_dir().unwrap_or_default())
}

#[allow(clippy::too_many_arguments)]
fn report_md(
    args: &Args,
    machine: &MachineInfo,
    cpu: usize,
    table: &str,
    methods: &str,
    notes: &[String],
    figures: &[Figure],
    pngs: &[String],
) -> String {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut r = String::from("# XVS benchmark\n\n");
    let _ = writeln!(r, "- command: `{}`", args.command_line());
    let _ = writeln!(r, "- finished: unix time {unix}");
    let _ = writeln!(r, "- CPU: {}", machine.cpu_model);
    let _ = writeln!(r, "- cores: {} (pinned to CPU {cpu})", machine.cores);
    let _ = writeln!(r, "- kernel: {}", machine.kernel);
    let _ = writeln!(r, "- clocksource: {}\n", machine.clocksource);
    let _ = writeln!(
        r,
        "Every figure is an interleaved A/B comparison with a baseline measured in the same \
         run; median, p25 and p75 over the rounds; targets are printed, never asserted.\n"
    );
    let _ = writeln!(
        r,
        "## Per-packet cost (BPF_PROG_TEST_RUN)\n\n```text\n{table}```\n"
    );
    let _ = writeln!(
        r,
        "## Lab pps, connection-table scale, control plane, failover\n\n```text{}```\n",
        render_figures(figures)
    );
    for f in figures {
        let _ = writeln!(r, "- `{}`: {}", f.name, f.method);
    }
    if !pngs.is_empty() {
        let _ = writeln!(r, "\n## Plots\n");
        for p in pngs {
            let _ = writeln!(r, "![{p}]({p})");
        }
        r.push('\n');
    }
    let _ = writeln!(r, "## Method\n\n```text\n{methods}```\n");
    let _ = writeln!(r, "## Checks\n");
    for note in notes {
        let _ = writeln!(r, "- {note}");
    }
    r
}
