//! MISC_CHECK, as keepalived's check_misc.c: the script runs in its own
//! process group as the script user, with misc_timeout. Exit 0 is up,
//! anything else down; with misc_dynamic, exit 1 is down and 2..255 is up
//! with weight = status - 2. On timeout the group gets SIGTERM, then
//! SIGKILL 2 s later, and the check fails.

use std::{
    ffi::OsString,
    path::Path,
    process::{ExitStatus, Stdio},
    time::Duration,
};

use anyhow::{bail, Result};
use tokio::{process::Command, time::timeout};

use super::socket::secs;
use crate::health::script::{self, Identity};
use crate::{
    config::model::{GlobalDefs, MiscCheck as MiscConfig},
    health::{BoxFuture, Checker, Outcome},
};

/// keepalived waits this long after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);

pub struct MiscCheck {
    /// The misc_path as written, for logs.
    label: String,
    argv: Vec<OsString>,
    timeout: Duration,
    dynamic: bool,
    /// None: run as this process (no setuid/setgid needed).
    run_as: Option<Identity>,
    /// The real's configured weight: what exit 0 restores with misc_dynamic.
    weight: u32,
}

impl MiscCheck {
    /// Resolves the script and its user now, as keepalived does when it
    /// reads the configuration; a script that cannot be run is an error.
    pub fn new(
        m: &MiscConfig,
        global: &GlobalDefs,
        timeout: Duration,
        weight: u32,
    ) -> Result<MiscCheck> {
        let Some(label) = m.misc_path.clone() else {
            bail!("MISC_CHECK has no misc_path");
        };
        let mut argv = script::split_words(&label)?;
        if argv.is_empty() {
            bail!("MISC_CHECK misc_path is empty");
        }
        let id = script::script_identity(global, m.user.as_ref())?;
        let argv = program_argv(&mut argv, id, global.enable_script_security)?;
        let run_as = (id != Identity::current()).then_some(id);
        Ok(MiscCheck {
            label,
            argv,
            timeout,
            dynamic: m.misc_dynamic,
            run_as,
            weight,
        })
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group, so a timeout kills whatever it started too.
            .process_group(0)
            .kill_on_drop(true);
        if let Some(id) = self.run_as {
            cmd.uid(id.uid).gid(id.gid);
        }
        cmd
    }

    /// The script's exit status, or None if it timed out (and was killed).
    async fn run(&self) -> Result<Option<ExitStatus>, String> {
        let mut child = self
            .command()
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.argv[0].to_string_lossy()))?;
        let group = ProcessGroup::new(child.id());
        match timeout(self.timeout, child.wait()).await {
            Ok(status) => {
                // keepalived leaves what a finished script started alone.
                group.forget();
                status.map(Some).map_err(|e| format!("wait failed: {e}"))
            }
            Err(_) => {
                group.signal(libc::SIGTERM);
                let _ = timeout(TERM_GRACE, child.wait()).await;
                // Also what the script started and what ignored SIGTERM.
                group.signal(libc::SIGKILL);
                let _ = timeout(TERM_GRACE, child.wait()).await;
                group.forget();
                Ok(None)
            }
        }
    }

    fn judge(&self, status: ExitStatus) -> Outcome {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), self.dynamic) {
            (Some(0), false) => Outcome::up("exit status 0"),
            (Some(0), true) => Outcome {
                weight: Some(self.weight),
                ..Outcome::up("exit status 0")
            },
            (Some(code @ 2..=255), true) => Outcome {
                weight: Some(code as u32 - 2),
                ..Outcome::up(format!("exit status {code}: weight {}", code - 2))
            },
            (Some(code), _) => Outcome::down(format!("exit status {code}")),
            (None, _) => Outcome::down(format!(
                "killed by signal {}",
                status.signal().unwrap_or_default()
            )),
        }
    }
}

impl Checker for MiscCheck {
    fn describe(&self) -> String {
        format!("MISC_CHECK {}", self.label)
    }

    fn check(&self) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            match self.run().await {
                Ok(Some(status)) => self.judge(status),
                Ok(None) => Outcome::down(format!("timed out after {}", secs(self.timeout))),
                Err(reason) => Outcome::down(reason),
            }
        })
    }
}

/// The argv to execute. A command starting with '<' or '>' (a shell
/// redirection test such as "</dev/tcp/…") and a file the kernel cannot
/// execute itself go through /bin/sh, as keepalived's system() fallback.
fn program_argv(words: &mut [OsString], id: Identity, enforce: bool) -> Result<Vec<OsString>> {
    let first = words[0].as_encoded_bytes();
    if first.starts_with(b"<") || first.starts_with(b">") {
        let line = shell_line(words);
        return Ok(vec!["/bin/sh".into(), "-c".into(), line]);
    }
    let program = script::resolve_program(Path::new(&words[0]), id)?;
    script::check_security(&program, id, enforce)?;
    words[0] = program.clone().into_os_string();
    if script::directly_executable(&program) {
        Ok(words.to_vec())
    } else {
        Ok(std::iter::once("/bin/sh".into())
            .chain(words.iter().cloned())
            .collect())
    }
}

/// keepalived's cmd_str: every word but a leading redirection in '…'.
fn shell_line(words: &[OsString]) -> OsString {
    let mut line = OsString::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            line.push(" '");
            line.push(w);
            line.push("'");
        } else {
            line.push(w);
        }
    }
    line
}

/// The script's process group; SIGKILLed if the check is dropped while
/// the script runs.
struct ProcessGroup(Option<libc::pid_t>);

impl ProcessGroup {
    fn new(pid: Option<u32>) -> ProcessGroup {
        ProcessGroup(pid.and_then(|p| libc::pid_t::try_from(p).ok()))
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(pgid) = self.0 {
            // SAFETY: kill has no memory preconditions; the group is ours.
            unsafe { libc::kill(-pgid, sig) };
        }
    }

    fn forget(mut self) {
        self.0 = None;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
    }
}
