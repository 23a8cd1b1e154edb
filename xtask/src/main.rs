//! `cargo xtask <command>`: the project's build, test and bench entry points.
//! Every command that builds runs `setup` first, so a fresh machine works.

mod setup;
mod vm;

use anyhow::{bail, Context, Result};
use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

const USAGE: &str = "\
usage: cargo xtask <command> [args]

  lab [up|down|status]
               setup + build, then the lab (needs root): a client, two
               directors and three real servers in network namespaces,
               and each thing XVS does, step by step; `up` leaves it
               running, `down` removes it, `status` shows it
  setup        install what the build and tests need (idempotent)
  build-ebpf   build the XDP objects into target/bpf
  build        setup + build-ebpf + build the userspace (release)
  test         setup + build-ebpf + run every test (needs root)
  lint         rustfmt --check and clippy -D warnings, userspace and eBPF
  bench [-- ARGS]  setup + build-ebpf + run the benchmark (needs root)
  run [-- ARGS]    build, then run xvsd with ARGS
  vm [OPTIONS] [-- COMMAND ARGS]
               boot a stock Debian kernel (real IPVS) under QEMU/TCG, run
               COMMAND inside (default: ipvsadm -L -n), exit with its code.
               --mem MB, --smp N, --timeout SECS, --share DIR (read-only at
               the same path; default: the workspace and its target dir),
               --env K=V, --no-build (skip building the release binaries);
               --bench: instead, IPVS DR vs XVS XDP forwarding in the guest,
               guest_pps_ratio_vs_ipvs_emulated (emulated: indicative only)";

fn main() -> Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        println!("{USAGE}");
        return Ok(());
    };
    let rest: Vec<&str> = args[1..]
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--")
        .collect();
    match cmd.as_str() {
        "setup" => setup::run(),
        "build-ebpf" => build_ebpf(),
        "build" => {
            prepare()?;
            cargo(&["build", "--release", "--workspace"])
        }
        "test" => {
            prepare()?;
            test(&rest)
        }
        "lint" => {
            prepare()?;
            lint()
        }
        "bench" => {
            prepare()?;
            // The lab parts run xvsd.
            cargo(&["build", "--release", "-p", "lb-userspace", "--bins"])?;
            let mut a = vec![
                "run",
                "--release",
                "-p",
                "xvs-tests",
                "--bin",
                "xvs-bench",
                "--",
            ];
            a.extend(rest);
            cargo(&a)
        }
        "run" => {
            prepare()?;
            let mut a = vec![
                "run",
                "--release",
                "-p",
                "lb-userspace",
                "--bin",
                "xvsd",
                "--",
            ];
            a.extend(rest);
            cargo(&a)
        }
        "lab" => lab(&rest),
        "vm" => vm_command(&args[1..]),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command {other:?}\n{USAGE}"),
    }
}

/// `cargo xtask vm`: see vm.rs.
fn vm_command(args: &[String]) -> Result<()> {
    let mut opts = vm::RunOptions::default();
    let mut build = true;
    let mut command: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--" => {
                command = it.by_ref().cloned().collect();
                break;
            }
            "--mem" => opts.mem_mb = value(arg)?.parse().context("--mem")?,
            "--smp" => opts.smp = value(arg)?.parse().context("--smp")?,
            "--timeout" => {
                opts.timeout =
                    std::time::Duration::from_secs(value(arg)?.parse().context("--timeout")?)
            }
            "--share" => opts.shares.push(PathBuf::from(value(arg)?)),
            "--env" => {
                let v = value(arg)?;
                let (k, v) = v.split_once('=').context("--env wants K=V")?;
                opts.env.push((k.to_string(), v.to_string()));
            }
            "--no-build" => build = false,
            "--bench" => {
                prepare()?;
                return vm::bench(&root());
            }
            other => bail!("unknown vm option {other:?}\n{USAGE}"),
        }
    }
    if !is_root() {
        bail!("cargo xtask vm needs root (apt, and the guest's downloads)");
    }
    if build {
        prepare()?;
        cargo(&["build", "--release", "-p", "lb-userspace", "--bins"])?;
    }
    let root = root();
    if opts.shares.is_empty() {
        opts.shares.push(root.clone());
        let target = env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        if !target.starts_with(&root) {
            opts.shares.push(target);
        }
    }
    // The release binaries run in the guest: their libraries go in.
    let target = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    for bin in ["xvsd", "xvsadm"] {
        let path = target.join("release").join(bin);
        if path.is_file() {
            opts.binaries.push(path);
        }
    }
    opts.env.push(("XVS_IN_GUEST".into(), "1".into()));
    opts.workdir = Some(root.clone());
    if command.is_empty() {
        command = ["sh", "-c", "uname -r; ipvsadm -L -n"]
            .map(String::from)
            .to_vec();
    }
    let guest = vm::Guest::prepare(&vm::default_cache(&root)).context("building the guest")?;
    let out = guest.run(&command, &opts)?;
    if out.code != 0 {
        eprintln!("xtask vm: the command exited {} in the guest", out.code);
    }
    std::process::exit(out.code);
}

/// `cargo xtask lab [up|down|status]`: builds xvsd, xvsadm and xvs-lab
/// (setup included), then runs xvs-lab. `down` and `status` only build
/// xvs-lab, and use the one there is should that fail: a lab left up must
/// be removable whatever state the tree is in.
fn lab(args: &[&str]) -> Result<()> {
    let sub = args.first().copied().unwrap_or("run");
    if !["run", "up", "down", "status", "help", "-h", "--help"].contains(&sub) {
        bail!("unknown lab command {sub:?}: cargo xtask lab [up|down|status]");
    }
    let xvs_lab = target_dir().join("release/xvs-lab");
    let build_lab = || cargo(&["build", "--release", "-p", "xvs-tests", "--bin", "xvs-lab"]);
    if sub == "down" || sub == "status" {
        if let Err(e) = build_lab() {
            if !xvs_lab.is_file() {
                return Err(e);
            }
            eprintln!(
                "xtask: building xvs-lab failed ({e:#}); using {}",
                xvs_lab.display()
            );
        }
    } else {
        prepare()?;
        cargo(&["build", "--release", "-p", "lb-userspace", "--bins"])?;
        build_lab()?;
    }
    if !is_root() {
        bail!(
            "the lab needs root (network namespaces, XDP): run `sudo -E cargo xtask lab{}`",
            args.iter().map(|a| format!(" {a}")).collect::<String>()
        );
    }
    let mut child = Command::new(&xvs_lab)
        .args(args)
        .spawn()
        .with_context(|| format!("starting {}", xvs_lab.display()))?;
    // A Ctrl-C reaches xvs-lab too, which then removes the lab: wait for
    // that rather than return to the shell in the middle of it.
    // SAFETY: plain signal(2), after the child has its own dispositions.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    let status = child.wait()?;
    if !status.success() {
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}

fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn prepare() -> Result<()> {
    setup::run()?;
    build_ebpf()
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// Builds lb-ebpf for bpfel-unknown-none into target/bpf.
fn build_ebpf() -> Result<()> {
    run(ebpf_cargo(&["build", "--release"])).context("building the XDP program")
}

/// Cargo in lb-ebpf, on nightly when installed, else on stable with
/// RUSTC_BOOTSTRAP (the object is the same).
fn ebpf_cargo(args: &[&str]) -> Command {
    let root = root();
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root.join("lb-ebpf"))
        .args(args)
        .env("CARGO_TARGET_DIR", root.join("target/bpf"))
        .env_remove("RUSTC")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    let toolchain = setup::ebpf_toolchain();
    if toolchain != "nightly" {
        cmd.env("RUSTC_BOOTSTRAP", "1");
    }
    cmd.env("RUSTUP_TOOLCHAIN", toolchain);
    cmd
}

/// Unit tests, then the integration tests that load XDP (root only). The
/// end-to-end tests run the xvsd/xvsadm binaries, so those are built first.
fn test(extra: &[&str]) -> Result<()> {
    cargo(&["build", "--release", "--workspace", "--bins"])?;
    let mut a = vec!["test", "--release", "--workspace", "--no-fail-fast"];
    a.extend(extra);
    if !is_root() {
        eprintln!("xtask: not root: tests that load XDP programs will fail; run as root");
    }
    cargo(&a)
}

fn lint() -> Result<()> {
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "clippy",
        "--release",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    run(ebpf_cargo(&["fmt", "--check"]))?;
    run(ebpf_cargo(&["clippy", "--release", "--", "-D", "warnings"]))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn cargo(args: &[&str]) -> Result<()> {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root()).args(args);
    run(cmd)
}

pub fn run(mut cmd: Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}
