//! `cargo xtask vm`: a throwaway guest with a stock Debian kernel, where the
//! kernel's own IPVS exists (this machine's kernel has none), booted under
//! QEMU's software emulation, running one command and handing back its
//! output and exit code.
//!
//! Built only from Debian packages, downloaded once into a cache
//! (`target/vm-cache`, or `$XVS_VM_CACHE`):
//! - `qemu-system-x86` (+ `-common`, `-data`, `seabios`), unpacked with
//!   `dpkg-deb -x` rather than installed (it conflicts with the backports
//!   qemu-utils here); only QEMU's library dependencies are installed, and
//!   `QEMU_MODULE_DIR` points at the unpacked module folder;
//! - the newest `linux-image-6.1.0-*-amd64` (IPVS, veth, bridge, 9p as
//!   modules); `$XVS_VM_KERNEL` names another;
//! - `busybox-static` for the initramfs (Debian's busybox runs its own `ip`
//!   applet ahead of `$PATH`, so the `ip` applet links are removed and
//!   iproute2 is copied in and called by full path in scripts);
//! - `ipvsadm`, plus iproute2's `ip` from this host, each with the shared
//!   libraries `ldd` names.
//!
//! Boot: `-accel tcg,thread=multi -cpu max`, the kernel and a fresh initramfs
//! (a few MB, rebuilt per run: cheap), serial console on stdio. The init
//! script loads the modules, mounts the given host directories over 9p at
//! their own paths (so binaries and tests run where cargo put them), runs
//! the job's script from a per-run job directory (also 9p), prints
//! `XVS-VM-EXIT=<code>` and powers off.
//!
//! This file is also compiled into the `tests` crate (`#[path]`), so it
//! uses only std and anyhow.

#![allow(dead_code)]

use anyhow::{anyhow, bail, Context, Result};
use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

/// The line the guest prints last; the host reads the exit code from it.
pub const EXIT_MARKER: &str = "XVS-VM-EXIT=";

/// Debian packages unpacked into the cache (the kernel comes on top).
const PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "qemu-system-common",
    "qemu-system-data",
    "seabios",
    "busybox-static",
    "ipvsadm",
];

/// Modules the guest loads at boot (with what modules.dep says they need).
pub const MODULES: &[&str] = &[
    "virtio_pci",
    "9pnet_virtio",
    "9p",
    "crc32c_generic",
    "ip_vs",
    "ip_vs_rr",
    "ip_vs_wrr",
    "ip_vs_sh",
    "ip_vs_lc",
    "ip_vs_wlc",
    "veth",
    "bridge",
    "dummy",
];

/// Host programs copied in with their libraries: (path in the guest,
/// candidates on the host). Missing optional ones are skipped.
const HOST_PROGRAMS: &[(&str, &[&str], bool)] = &[
    (
        "/usr/sbin/ip",
        &["/usr/sbin/ip", "/sbin/ip", "/bin/ip"],
        true,
    ),
    ("/usr/bin/strace", &["/usr/bin/strace"], false),
    (
        "/usr/sbin/ethtool",
        &["/usr/sbin/ethtool", "/sbin/ethtool"],
        false,
    ),
];

/// How to run one job.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub mem_mb: u32,
    pub smp: u32,
    pub timeout: Duration,
    /// Host directories mounted read-only at the same path in the guest.
    pub shares: Vec<PathBuf>,
    /// Environment of the command.
    pub env: Vec<(String, String)>,
    /// Working directory of the command (default: /).
    pub workdir: Option<PathBuf>,
    /// Copy the guest's console to our stdout as it comes.
    pub echo: bool,
    /// Programs (on a share) that will run in the guest: the shared
    /// libraries `ldd` names for them are copied into the initramfs.
    pub binaries: Vec<PathBuf>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            mem_mb: 2048,
            smp: 2,
            timeout: Duration::from_secs(900),
            shares: Vec::new(),
            env: Vec::new(),
            workdir: None,
            echo: true,
            binaries: Vec::new(),
        }
    }
}

/// What the guest did.
#[derive(Clone, Debug)]
pub struct RunOutput {
    /// The command's exit code.
    pub code: i32,
    /// The console from the start of the job to the marker (`\r` removed).
    pub output: String,
}

/// An unpacked guest: kernel, modules, QEMU and the tools, in the cache.
#[derive(Clone, Debug)]
pub struct Guest {
    pub cache: PathBuf,
    /// `dpkg-deb -x` of every package.
    pub root: PathBuf,
    pub kernel_version: String,
}

/// The cache directory: `$XVS_VM_CACHE`, else `<workspace>/target/vm-cache`.
pub fn default_cache(workspace: &Path) -> PathBuf {
    std::env::var_os("XVS_VM_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target/vm-cache"))
}

impl Guest {
    /// Downloads and unpacks what is missing from the cache (nothing, once
    /// done), installs QEMU's missing libraries, and indexes the modules.
    pub fn prepare(cache: &Path) -> Result<Guest> {
        fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
        let cache = cache.canonicalize()?;
        let kernel_pkg = match std::env::var("XVS_VM_KERNEL") {
            Ok(k) => k,
            Err(_) => newest_kernel_package(&cache)?,
        };
        let kernel_version = kernel_pkg
            .strip_prefix("linux-image-")
            .ok_or_else(|| anyhow!("{kernel_pkg} is not a linux-image package"))?
            .to_string();
        let root = cache.join("root");
        let mut packages: Vec<&str> = PACKAGES.to_vec();
        packages.push(&kernel_pkg);
        for pkg in packages {
            unpack(&cache, &root, pkg)
                .with_context(|| format!("getting the Debian package {pkg}"))?;
        }
        let guest = Guest {
            cache,
            root,
            kernel_version,
        };
        guest.qemu_libraries()?;
        guest.depmod()?;
        Ok(guest)
    }

    fn qemu(&self) -> PathBuf {
        self.root.join("usr/bin/qemu-system-x86_64")
    }

    fn modules_dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.kernel_version)
    }

    fn busybox(&self) -> PathBuf {
        self.root.join("bin/busybox")
    }

    /// QEMU's shared libraries: the `lib*` dependencies of the package, via
    /// apt, when `ldd` finds any missing.
    fn qemu_libraries(&self) -> Result<()> {
        if missing_libraries(&self.qemu())?.is_empty() {
            return Ok(());
        }
        let deb = find_deb(&self.cache.join("debs"), "qemu-system-x86")?;
        let depends = output(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Depends"))?;
        let libs: Vec<String> = depends
            .split(',')
            .map(|d| d.split(['(', '|']).next().unwrap_or("").trim().to_string())
            .filter(|d| d.starts_with("lib") || d.starts_with("zlib"))
            .collect();
        eprintln!("xtask vm: installing QEMU's libraries: {}", libs.join(" "));
        apt_get(&{
            let mut a = vec!["install", "-y", "--no-install-recommends"];
            a.extend(libs.iter().map(String::as_str));
            a
        })?;
        let still = missing_libraries(&self.qemu())?;
        if !still.is_empty() {
            bail!("QEMU still misses libraries after installing its dependencies: {still:?}");
        }
        Ok(())
    }

    /// modules.dep for the unpacked kernel (the package's postinst would
    /// run depmod; busybox's does it here).
    fn depmod(&self) -> Result<()> {
        let dep = self.modules_dir().join("modules.dep");
        if dep.exists() {
            return Ok(());
        }
        let base = self.root.clone();
        run_checked(
            Command::new(self.busybox())
                .arg("depmod")
                .arg("-b")
                .arg(&base)
                .arg(&self.kernel_version),
        )
        .context("indexing the guest kernel's modules (busybox depmod)")
    }

    /// `(module file relative to the modules dir)` for `names` and what they
    /// need, dependencies first.
    fn module_files(&self, names: &[&str]) -> Result<Vec<String>> {
        let text = read_text(&self.modules_dir().join("modules.dep"))?;
        let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut by_name: BTreeMap<String, String> = BTreeMap::new();
        for line in text.lines() {
            let Some((module, rest)) = line.split_once(':') else {
                continue;
            };
            let name = Path::new(module)
                .file_name()
                .and_then(|n| n.to_str())
                .map(|n| n.split(".ko").next().unwrap_or(n).replace('-', "_"))
                .unwrap_or_default();
            by_name.insert(name, module.to_string());
            deps.insert(
                module.to_string(),
                rest.split_whitespace().map(str::to_string).collect(),
            );
        }
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for name in names {
            let module = by_name
                .get(&name.replace('-', "_"))
                .ok_or_else(|| anyhow!("the guest kernel has no module {name} (built in?)"))?;
            for m in deps[module].iter().rev().chain(std::iter::once(module)) {
                if seen.insert(m.clone()) {
                    out.push(m.clone());
                }
            }
        }
        Ok(out)
    }

    /// The initramfs: busybox, modules, ipvsadm, iproute2 and the init script.
    pub fn initramfs(&self, shares: &[PathBuf], binaries: &[PathBuf]) -> Result<Vec<u8>> {
        let mut cpio = Cpio::default();
        for dir in [
            "bin", "sbin", "usr", "usr/bin", "usr/sbin", "lib", "lib64", "proc", "sys", "dev",
            "run", "tmp", "root", "etc", "mnt", "xvs-job",
        ] {
            cpio.dir(dir);
        }
        cpio.symlink("var/run", "../run");
        cpio.file("bin/busybox", &read(self.busybox())?, 0o755);
        cpio.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644);
        cpio.file("etc/group", b"root:x:0:\n", 0o644);
        cpio.file("etc/hosts", b"127.0.0.1 localhost\n", 0o644);
        let mut libs = BTreeSet::new();
        // bookworm's package has it in /sbin (not yet merged-/usr).
        let ipvsadm = ["usr/sbin/ipvsadm", "sbin/ipvsadm"]
            .iter()
            .map(|p| self.root.join(p))
            .find(|p| p.is_file())
            .ok_or_else(|| anyhow!("no ipvsadm in the unpacked ipvsadm package"))?;
        cpio.file("usr/sbin/ipvsadm", &read(&ipvsadm)?, 0o755);
        libs.extend(libraries(&ipvsadm)?);
        for (at, candidates, required) in HOST_PROGRAMS {
            match candidates.iter().map(Path::new).find(|p| p.is_file()) {
                Some(p) => {
                    cpio.file(at.trim_start_matches('/'), &read(p)?, 0o755);
                    libs.extend(libraries(p)?);
                }
                None if *required => bail!(
                    "{} is needed in the guest and missing here (apt-get install iproute2)",
                    candidates[0]
                ),
                None => {}
            }
        }
        for binary in binaries {
            libs.extend(
                libraries(binary)
                    .with_context(|| format!("the libraries of {}", binary.display()))?,
            );
        }
        for lib in libs {
            cpio.file(lib.trim_start_matches('/'), &read(&lib)?, 0o755);
        }
        let moddir = format!("lib/modules/{}", self.kernel_version);
        let files = self.module_files(MODULES)?;
        let mut dep = String::new();
        for f in &files {
            let data = fs::read(self.modules_dir().join(f))?;
            cpio.file(&format!("{moddir}/{f}"), &data, 0o644);
        }
        // A modules.dep of just these, so busybox modprobe (and the kernel's
        // request_module through it) finds them.
        let full = read_text(&self.modules_dir().join("modules.dep"))?;
        for line in full.lines() {
            if let Some((m, _)) = line.split_once(':') {
                if files.iter().any(|f| f == m) {
                    dep.push_str(line);
                    dep.push('\n');
                }
            }
        }
        cpio.file(&format!("{moddir}/modules.dep"), dep.as_bytes(), 0o644);
        for extra in ["modules.alias", "modules.builtin", "modules.order"] {
            if let Ok(data) = fs::read(self.modules_dir().join(extra)) {
                cpio.file(&format!("{moddir}/{extra}"), &data, 0o644);
            }
        }
        cpio.file("init", init_script(shares).as_bytes(), 0o755);
        Ok(cpio.finish())
    }

    /// Boots the guest and runs `script` (a shell script body) in it.
    pub fn run_script(&self, script: &str, opts: &RunOptions) -> Result<RunOutput> {
        let job = self
            .cache
            .join(format!("job-{}-{}", std::process::id(), unique()));
        fs::create_dir_all(&job)?;
        let result = self.boot(&job, script, opts);
        let _ = fs::remove_dir_all(&job);
        result
    }

    /// Boots the guest and runs `argv` in it.
    pub fn run(&self, argv: &[String], opts: &RunOptions) -> Result<RunOutput> {
        let mut script = String::new();
        for (k, v) in &opts.env {
            script.push_str(&format!("export {k}={}\n", quote(v)));
        }
        if let Some(dir) = &opts.workdir {
            script.push_str(&format!("cd {}\n", quote(&dir.display().to_string())));
        }
        let words: Vec<String> = argv.iter().map(|a| quote(a)).collect();
        script.push_str(&words.join(" "));
        script.push('\n');
        let mut opts = opts.clone();
        if let Some(program) = argv.first().map(PathBuf::from) {
            if program.is_absolute() && program.is_file() && !opts.binaries.contains(&program) {
                opts.binaries.push(program);
            }
        }
        self.run_script(&script, &opts)
    }

    fn boot(&self, job: &Path, script: &str, opts: &RunOptions) -> Result<RunOutput> {
        fs::write(job.join("run.sh"), script)?;
        let initrd = job.join("initrd.cpio");
        fs::write(&initrd, self.initramfs(&opts.shares, &opts.binaries)?)?;
        let kernel = self
            .root
            .join(format!("boot/vmlinuz-{}", self.kernel_version));
        let mut cmd = Command::new(self.qemu());
        cmd.env(
            "QEMU_MODULE_DIR",
            self.root.join("usr/lib/x86_64-linux-gnu/qemu"),
        )
        .arg("-L")
        .arg(self.root.join("usr/share/seabios"))
        .arg("-L")
        .arg(self.root.join("usr/share/qemu"))
        .args(["-accel", "tcg,thread=multi", "-cpu", "max"])
        .args([
            "-smp",
            &opts.smp.to_string(),
            "-m",
            &opts.mem_mb.to_string(),
        ])
        .args([
            "-nodefaults",
            "-no-reboot",
            "-display",
            "none",
            "-serial",
            "stdio",
        ])
        .arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(&initrd)
        .args([
            "-append",
            "console=ttyS0 loglevel=1 panic=-1 mitigations=off",
        ]);
        let mut virtfs = |path: &Path, tag: &str, readonly: bool| {
            cmd.arg("-virtfs").arg(format!(
                "local,path={},mount_tag={tag},security_model=none{}",
                path.display(),
                if readonly { ",readonly=on" } else { "" }
            ));
        };
        virtfs(job, "xvsjob", false);
        for (i, share) in opts.shares.iter().enumerate() {
            virtfs(share, &format!("share{i}"), true);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", self.qemu().display()))?;
        let (tx, rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).split(b'\n') {
                let Ok(line) = line else { break };
                let line = String::from_utf8_lossy(&line).replace('\r', "");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = child.stderr.take().unwrap();
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s);
            s
        });
        let deadline = Instant::now() + opts.timeout;
        let mut output = String::new();
        let mut code = None;
        let mut started = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(500))) {
                Ok(line) => {
                    if let Some(c) = line.trim().strip_prefix(EXIT_MARKER) {
                        code = c.trim().parse::<i32>().ok();
                        continue;
                    }
                    if line.contains("XVS-VM-JOB-START") {
                        started = true;
                        continue;
                    }
                    if code.is_some() {
                        continue; // power-off chatter
                    }
                    if opts.echo {
                        println!("{line}");
                        let _ = std::io::stdout().flush();
                    }
                    // Lines before the job starts are boot problems
                    // (a module that failed): worth keeping too.
                    let _ = started;
                    output.push_str(&line);
                    output.push('\n');
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if Instant::now() >= deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        bail!(
                            "the guest did not finish within {:?}; its console:\n{output}",
                            opts.timeout
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let status = child.wait()?;
        let _ = reader.join();
        let qemu_err = err_reader.join().unwrap_or_default();
        let code = match code {
            Some(c) => c,
            None => match fs::read_to_string(job.join("exit")) {
                Ok(c) => c.trim().parse().unwrap_or(-1),
                Err(_) => bail!(
                    "the guest ended ({status}) without reporting an exit code; \
                     QEMU said: {}\nconsole:\n{output}",
                    qemu_err.trim()
                ),
            },
        };
        Ok(RunOutput { code, output })
    }
}

fn read(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn read_text(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Single-quoted for sh.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn init_script(shares: &[PathBuf]) -> String {
    let mut mounts = String::new();
    for (i, share) in shares.iter().enumerate() {
        let p = quote(&share.display().to_string());
        mounts.push_str(&format!(
            "mkdir -p {p} && mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,ro share{i} {p} || echo 'xvs-vm: mounting {p} failed'\n"
        ));
    }
    format!(
        r#"#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox mount -t tmpfs run /run
/bin/busybox mount -t tmpfs tmp /tmp
/bin/busybox --install -s
# Debian's busybox would answer `ip` itself: iproute2 is /usr/sbin/ip.
rm -f /bin/ip /sbin/ip /usr/bin/ip
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb
echo 1 > /proc/sys/kernel/printk
mkdir -p /sys/fs/bpf /dev/pts /dev/shm /run/netns
mount -t bpf bpf /sys/fs/bpf
mount -t devpts devpts /dev/pts
mount -t tmpfs shm /dev/shm
for m in {modules}; do modprobe $m || echo "xvs-vm: modprobe $m failed"; done
/usr/sbin/ip link set lo up
hostname xvs-guest
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 xvsjob /xvs-job || echo 'xvs-vm: no job directory'
{mounts}echo XVS-VM-JOB-START
cd /
sh /xvs-job/run.sh
code=$?
echo $code > /xvs-job/exit
sync
echo "{marker}$code"
poweroff -f
"#,
        modules = MODULES.join(" "),
        marker = EXIT_MARKER,
    )
}

// ---------------------------------------------------------------------------
// The emulated forwarding comparison

/// `cargo xtask vm --bench`: IPVS's DR forwarding against XVS's XDP
/// forwarding in the guest (same topology, generator and packets), run by
/// the ignored test `ipvs_guest_bench` of tests/tests/ipvs_guest.rs, which
/// prints `guest_pps_ratio_vs_ipvs_emulated` and writes it, with both pps
/// figures, to `target/bench/guest.json`. Emulated (QEMU TCG): indicative
/// only, never part of `cargo xtask bench --quick`. Builds the release
/// binaries first; the caller has built the XDP objects.
pub fn bench(workspace: &Path) -> Result<()> {
    let cargo = |args: &[&str]| -> Result<()> {
        let status = Command::new("cargo")
            .current_dir(workspace)
            .args(args)
            .status()
            .context("starting cargo")?;
        if !status.success() {
            bail!("cargo {} failed: {status}", args.join(" "));
        }
        Ok(())
    };
    cargo(&["build", "--release", "-p", "lb-userspace", "--bins"])?;
    cargo(&[
        "test",
        "--release",
        "-p",
        "xvs-tests",
        "--test",
        "ipvs_guest",
        "--",
        "--ignored",
        "--exact",
        "ipvs_guest_bench",
        "--nocapture",
    ])
}

// ---------------------------------------------------------------------------
// Debian packages

fn apt_get(args: &[&str]) -> Result<()> {
    let out = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .context("running apt-get")?;
    if !out.status.success() {
        bail!(
            "`apt-get {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `linux-image-6.1.0-N-amd64` with the highest N apt knows.
fn newest_kernel_package(cache: &Path) -> Result<String> {
    // Reuse what is already unpacked: no apt query once cached.
    if let Ok(entries) = fs::read_dir(cache.join("root/boot")) {
        let mut found: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_prefix("vmlinuz-")
                    .map(|v| format!("linux-image-{v}"))
            })
            .collect();
        found.sort_by_key(|p| kernel_abi(p));
        if let Some(p) = found.pop() {
            return Ok(p);
        }
    }
    let search = |()| {
        output(Command::new("apt-cache").args([
            "search",
            "--names-only",
            r"^linux-image-6\.1\.0-[0-9]+-amd64$",
        ]))
    };
    let mut text = search(())?;
    if text.trim().is_empty() {
        apt_get(&["update"])?;
        text = search(())?;
    }
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .max_by_key(|p| kernel_abi(p))
        .map(str::to_string)
        .ok_or_else(|| {
            anyhow!("apt knows no linux-image-6.1.0-*-amd64 package (is this Debian 12 with bookworm sources?)")
        })
}

fn kernel_abi(pkg: &str) -> u32 {
    pkg.trim_start_matches("linux-image-6.1.0-")
        .split('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn find_deb(dir: &Path, pkg: &str) -> Result<PathBuf> {
    let prefix = format!("{pkg}_");
    fs::read_dir(dir)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        })
        .ok_or_else(|| anyhow!("no {pkg} package in {}", dir.display()))
}

/// Downloads `pkg` (once) and unpacks it into `root` (once).
fn unpack(cache: &Path, root: &Path, pkg: &str) -> Result<()> {
    let marker = cache.join("unpacked").join(pkg);
    if marker.exists() {
        return Ok(());
    }
    let debs = cache.join("debs");
    fs::create_dir_all(&debs)?;
    let deb = match find_deb(&debs, pkg) {
        Ok(d) => d,
        Err(_) => {
            eprintln!("xtask vm: downloading {pkg}");
            // Into a private directory first, so a concurrent run never
            // sees half a file.
            let tmp = cache.join(format!("download-{}-{}", std::process::id(), unique()));
            fs::create_dir_all(&tmp)?;
            let mut result = apt_download(&tmp, pkg);
            if result.is_err() {
                apt_get(&["update"])?;
                result = apt_download(&tmp, pkg);
            }
            result?;
            let got = find_deb(&tmp, pkg)?;
            let dest = debs.join(got.file_name().unwrap());
            fs::rename(&got, &dest)?;
            let _ = fs::remove_dir_all(&tmp);
            dest
        }
    };
    fs::create_dir_all(root)?;
    run_checked(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(root))
        .with_context(|| format!("unpacking {}", deb.display()))?;
    fs::create_dir_all(marker.parent().unwrap())?;
    fs::write(&marker, deb.display().to_string())?;
    Ok(())
}

fn apt_download(dir: &Path, pkg: &str) -> Result<()> {
    let out = Command::new("apt-get")
        .args(["download", pkg])
        .current_dir(dir)
        .output()
        .context("running apt-get download")?;
    if !out.status.success() {
        bail!(
            "`apt-get download {pkg}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Shared libraries

/// The files `ldd` resolves for `binary` (the loader included).
fn libraries(binary: &Path) -> Result<Vec<String>> {
    let text = output(Command::new("ldd").arg(binary))?;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.contains("not found") {
            bail!("{}: {}", binary.display(), line.trim());
        }
        if let Some(path) = line.split_whitespace().find(|w| w.starts_with('/')) {
            out.push(path.to_string());
        }
    }
    Ok(out)
}

fn missing_libraries(binary: &Path) -> Result<Vec<String>> {
    let text = output(Command::new("ldd").arg(binary))?;
    Ok(text
        .lines()
        .filter(|l| l.contains("not found"))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect())
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run_checked(cmd: &mut Command) -> Result<()> {
    output(cmd).map(drop)
}

// ---------------------------------------------------------------------------
// cpio (newc), the initramfs format

#[derive(Default)]
struct Cpio {
    data: Vec<u8>,
    ino: u32,
    dirs: BTreeSet<String>,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, body: &[u8]) {
        self.ino += 1;
        let header = format!(
            "070701{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}",
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            body.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        );
        self.data.extend_from_slice(header.as_bytes());
        self.data.extend_from_slice(name.as_bytes());
        self.data.push(0);
        self.pad();
        self.data.extend_from_slice(body);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.data.len().is_multiple_of(4) {
            self.data.push(0);
        }
    }

    fn dir(&mut self, name: &str) {
        if self.dirs.insert(name.to_string()) {
            self.entry(name, 0o040755, &[]);
        }
    }

    fn parents(&mut self, name: &str) {
        let mut acc = String::new();
        let parts: Vec<&str> = name.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(part);
            let a = acc.clone();
            self.dir(&a);
        }
    }

    fn file(&mut self, name: &str, body: &[u8], perm: u32) {
        self.parents(name);
        self.entry(name, 0o100000 | perm, body);
    }

    fn symlink(&mut self, name: &str, target: &str) {
        self.parents(name);
        self.entry(name, 0o120777, target.as_bytes());
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.data
    }
}
