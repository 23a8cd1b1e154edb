//! `cargo xtask setup`: installs what a fresh Debian 12 machine lacks for
//! building and testing XVS. Silent when everything is already there.

use anyhow::{bail, Result};
use std::process::{Command, Stdio};

/// Debian packages: LLVM for bpf-linker, then the real peers and tools the
/// tests drive.
const PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "iproute2",
    "iputils-ping",
    "ethtool",
    "tcpdump",
    "curl",
    "keepalived",
    "ipvsadm",
    "xdp-tools",
    // The bench's plots: DejaVu Sans, read at run time.
    "fonts-dejavu-core",
];

pub fn run() -> Result<()> {
    apt_packages()?;
    rust_src()?;
    bpf_linker()
}

fn quiet_ok(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn apt_packages() -> Result<()> {
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("setup: installing {}", missing.join(" "));
    let mut update = Command::new("apt-get");
    update.args(["update", "-qq"]);
    crate::run(update)?;
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive");
    crate::run(install)
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// The toolchain that builds the eBPF object: nightly when present, else
/// stable (built with RUSTC_BOOTSTRAP=1).
pub fn ebpf_toolchain() -> String {
    let nightly = quiet_ok(Command::new("rustup").args(["run", "nightly", "rustc", "--version"]));
    if nightly { "nightly" } else { "stable" }.to_string()
}

/// rust-src (for build-std), and rustfmt and clippy (for `xtask lint`), on
/// the toolchain that builds the eBPF object.
fn rust_src() -> Result<()> {
    let toolchain = ebpf_toolchain();
    let list = Command::new("rustup")
        .args([
            "component",
            "list",
            "--installed",
            "--toolchain",
            &toolchain,
        ])
        .output()?;
    let installed = String::from_utf8_lossy(&list.stdout).into_owned();
    for component in ["rust-src", "rustfmt", "clippy"] {
        if installed.lines().any(|l| l.starts_with(component)) {
            continue;
        }
        eprintln!("setup: adding {component} to the {toolchain} toolchain");
        let mut add = Command::new("rustup");
        add.args(["component", "add", component, "--toolchain", &toolchain]);
        crate::run(add)?;
    }
    Ok(())
}

fn bpf_linker() -> Result<()> {
    if quiet_ok(Command::new("bpf-linker").arg("--version")) {
        return Ok(());
    }
    eprintln!("setup: building bpf-linker against LLVM 22 (a few minutes, once)");
    // bpf-linker's build script reads LLVM_PREFIX; llvm-sys reads the other.
    let mut install = Command::new("cargo");
    install
        .args([
            "install",
            "--locked",
            "bpf-linker",
            "--no-default-features",
            "--features",
            "llvm-22",
        ])
        .env("LLVM_PREFIX", "/usr/lib/llvm-22")
        .env("LLVM_SYS_221_PREFIX", "/usr/lib/llvm-22");
    crate::run(install)?;
    if !quiet_ok(Command::new("bpf-linker").arg("--version")) {
        bail!("bpf-linker installed but not runnable: is ~/.cargo/bin on PATH?");
    }
    Ok(())
}
