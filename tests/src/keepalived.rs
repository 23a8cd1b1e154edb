//! Debian's keepalived as a real VRRP peer, in a namespace of a lab.

use anyhow::{Context, Result};
use std::{
    fs::File,
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::{
    daemon::{wait_for, TempDir},
    netns::Netns,
};

/// `keepalived -P` (VRRP only) in the foreground, logging to a file.
pub struct Keepalived {
    child: Option<Child>,
    log: PathBuf,
    vrrp_pid: PathBuf,
}

impl Keepalived {
    /// Starts keepalived on `conf` in `ns`; files go to `dir` under `name`.
    pub fn start(ns: &Netns, dir: &TempDir, name: &str, conf: &str) -> Result<Keepalived> {
        let conf_path = dir.join(&format!("{name}.conf"));
        std::fs::write(&conf_path, conf)?;
        let log = dir.join(&format!("{name}.log"));
        let vrrp_pid = dir.join(&format!("{name}-vrrp.pid"));
        let pid = dir.join(&format!("{name}.pid"));
        let checkers_pid = dir.join(&format!("{name}-checkers.pid"));
        // keepalived refuses to start ("daemon is already running") when a
        // pid file of an earlier run names a live process, which a reused
        // pid can do.
        for stale in [&vrrp_pid, &pid, &checkers_pid] {
            let _ = std::fs::remove_file(stale);
        }
        let out = File::create(&log)?;
        let mut command = Command::new("ip");
        // SAFETY: prctl in the child before exec; no allocation.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command
            .args(["netns", "exec", ns.name(), "keepalived"])
            .args(["--dont-fork", "--log-console", "--log-detail", "--vrrp"])
            .arg("--use-file")
            .arg(&conf_path)
            .arg("--pid")
            .arg(&pid)
            .arg("--vrrp_pid")
            .arg(&vrrp_pid)
            .arg("--checkers_pid")
            .arg(&checkers_pid)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting keepalived (apt-get install keepalived)")?;
        let k = Keepalived {
            child: Some(child),
            log,
            vrrp_pid,
        };
        wait_for("keepalived's VRRP process", Duration::from_secs(10), || {
            Ok(k.vrrp_child().map(|_| ()))
        })
        .with_context(|| k.log())?;
        Ok(k)
    }

    fn vrrp_child(&self) -> Option<libc::pid_t> {
        std::fs::read_to_string(&self.vrrp_pid)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A crash: SIGKILL to the VRRP process first (its parent's death would
    /// otherwise make it stop cleanly), then to the parent.
    pub fn kill(&mut self) {
        if let Some(pid) = self.vrrp_child() {
            // SAFETY: plain kill(2).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A clean stop (SIGTERM): a MASTER sends priority 0.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain kill(2).
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let _ = child.wait();
        }
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.kill();
        }
    }
}
