//! Running the real `xvsd` in a test namespace: its private directory, the
//! binaries of this build, and a guard that stops the daemon (and shows its
//! log) whatever happens to the test.

use crate::netns::Netns;
use anyhow::{anyhow, bail, ensure, Context, Result};
use std::{
    fs::File,
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};
use xvs::control::{
    client::call,
    protocol::{RequestBody, ResponseBody, Status},
};

/// How long a SIGTERMed xvsd may take to exit.
pub const STOP_DEADLINE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(25);

/// A private directory for configuration, socket, scripts and logs;
/// removed on drop unless [`TempDir::keep`] was called.
pub struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    pub fn new(tag: &str) -> Result<TempDir> {
        TempDir::at(std::env::temp_dir().join(format!("{tag}-{}", std::process::id())))
    }

    /// A fresh (emptied) directory at exactly `path`.
    pub fn at(path: PathBuf) -> Result<TempDir> {
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir { path, keep: false })
    }

    /// Leaves the directory in place when this is dropped.
    pub fn keep(&mut self) {
        self.keep = true;
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn root(&self) -> &Path {
        &self.path
    }

    pub fn path(&self) -> &str {
        self.path.to_str().expect("temp dir path is UTF-8")
    }

    /// Writes an executable script.
    pub fn script(&self, name: &str, text: &str) -> Result<PathBuf> {
        let path = self.join(name);
        std::fs::write(&path, text)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        Ok(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("removing {}: {e}", self.path.display());
        }
    }
}

/// `xvsd` or `xvsadm` of this build: next to the test's profile directory,
/// or in the workspace's target/release (`cargo xtask test` builds them).
pub fn binary(name: &str) -> Result<PathBuf> {
    let mut candidates = Vec::new();
    let exe = std::env::current_exe()?;
    if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
        candidates.push(profile_dir.join(name));
    }
    // A binary of this crate (xvs-lab) sits in the profile directory itself.
    if let Some(exe_dir) = exe.parent() {
        candidates.push(exe_dir.join(name));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    candidates.push(workspace.join("target/release").join(name));
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            anyhow!(
                "{name} not found (looked at {candidates:?}): build it first with \
                 `cargo build --release -p lb-userspace --bins`"
            )
        })
}

/// How to start xvsd.
pub struct DaemonArgs<'a> {
    pub conf: &'a Path,
    pub iface: &'a str,
    pub xdp_mode: &'a str,
    /// Its pinned data plane's name; distinct per test so tests may run in
    /// parallel. None: xvsd's default.
    pub instance: Option<&'a str>,
    pub extra: &'a [&'a str],
}

/// How [`Daemon::start_with`] runs xvsd beyond its arguments.
#[derive(Clone, Copy, Debug, Default)]
pub struct SpawnOptions {
    /// Let xvsd outlive this process: no parent-death signal, and a
    /// session of its own, so neither this process's exit nor a Ctrl-C at
    /// its terminal stops it. Call [`Daemon::release`] to leave it running
    /// when the guard goes. Default: xvsd dies with this process.
    pub detach: bool,
}

/// `xvsd` running in a namespace. Dropping it stops it (SIGTERM, then
/// SIGKILL) and shows its log unless the test stopped it cleanly.
pub struct Daemon {
    child: Child,
    log: PathBuf,
    pub socket: PathBuf,
    /// Set once the test has stopped the daemon on purpose.
    pub stopped: bool,
    /// Set by [`Daemon::release`]: the drop leaves xvsd running.
    released: bool,
}

impl Daemon {
    pub fn start(ns: &Netns, args: &DaemonArgs, dir: &TempDir) -> Result<Daemon> {
        Daemon::start_with(ns, args, dir, SpawnOptions::default())
    }

    pub fn start_with(
        ns: &Netns,
        args: &DaemonArgs,
        dir: &TempDir,
        spawn: SpawnOptions,
    ) -> Result<Daemon> {
        let log = dir.join("xvsd.log");
        let socket = dir.join("xvsd.sock");
        let out = File::create(&log)?;
        // `ip netns exec` execs the program in place: the child is xvsd.
        let mut command = Command::new("ip");
        if spawn.detach {
            // SAFETY: setsid in the child before exec; no allocation.
            unsafe {
                command.pre_exec(|| {
                    libc::setsid();
                    Ok(())
                });
            }
        } else {
            // Should the test process die without unwinding (SIGKILL, a
            // harness timeout), the kernel stops xvsd: PDEATHSIG survives
            // exec.
            unsafe {
                command.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        command
            .args(["netns", "exec", ns.name()])
            .arg(binary("xvsd")?)
            .arg("-f")
            .arg(args.conf)
            .args(["--interface", args.iface, "--xdp-mode", args.xdp_mode, "-l"])
            .arg("--control-socket")
            .arg(&socket)
            .args(args.extra);
        if let Some(instance) = args.instance {
            command.args(["--instance", instance]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting xvsd")?;
        Ok(Daemon {
            child,
            log,
            socket,
            stopped: false,
            released: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Leaves xvsd running when this guard is dropped (start it detached).
    pub fn release(mut self) {
        self.released = true;
    }

    /// Where xvsd logs.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn signal(&self, signal: libc::c_int) -> Result<()> {
        if unsafe { libc::kill(self.child.id() as libc::pid_t, signal) } != 0 {
            bail!("kill xvsd: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn is_running(&mut self) -> Result<bool> {
        Ok(self.child.try_wait()?.is_none())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() > deadline {
                return Ok(None);
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGTERM; the daemon must exit 0 within `STOP_DEADLINE`.
    pub fn stop(&mut self) -> Result<()> {
        self.signal(libc::SIGTERM)?;
        let status = self
            .wait_exit(STOP_DEADLINE)?
            .with_context(|| format!("xvsd still running {STOP_DEADLINE:?} after SIGTERM"))?;
        ensure!(status.success(), "xvsd exited {status}");
        self.stopped = true;
        Ok(())
    }

    pub fn status(&self) -> Result<Status> {
        match call(&self.socket, RequestBody::Status)? {
            ResponseBody::Status { status } => Ok(status),
            other => bail!("unexpected reply {other:?}"),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.signal(libc::SIGTERM);
            if !matches!(self.wait_exit(STOP_DEADLINE), Ok(Some(_))) {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        if !self.stopped {
            eprintln!("---- xvsd log ----\n{}------------------", self.log());
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// `xvsadm --socket SOCKET ARGS` in the daemon's namespace, as an operator
/// runs it there.
pub struct Admin {
    xvsadm: PathBuf,
    socket: PathBuf,
    ns: Netns,
}

impl Admin {
    pub fn new(daemon: &Daemon, ns: &Netns) -> Result<Admin> {
        Admin::at(&daemon.socket, ns)
    }

    /// The xvsd whose control socket is `socket`, running in `ns`.
    pub fn at(socket: &Path, ns: &Netns) -> Result<Admin> {
        Ok(Admin {
            xvsadm: binary("xvsadm")?,
            socket: socket.to_path_buf(),
            ns: ns.clone(),
        })
    }

    pub fn run(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", self.ns.name()])
            .arg(&self.xvsadm)
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running xvsadm")?;
        ensure!(
            out.status.success(),
            "`xvsadm {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8(out.stdout)?)
    }
}

/// Polls `f` until it gives a value, or fails with its last error once
/// `limit` has passed.
pub fn wait_for<T>(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        let last = match f() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => anyhow!("not yet"),
            Err(e) => e,
        };
        if Instant::now() > deadline {
            return Err(last.context(format!("{what}: gave up after {limit:?}")));
        }
        std::thread::sleep(POLL);
    }
}
