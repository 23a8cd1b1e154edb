//! notify_up / notify_down / quorum_up / quorum_down scripts.
//!
//! A script is started and left alone: a thread of its own waits for it, so
//! a slow script never holds up the checks or the state changes. Scripts
//! run as their own `user [group]`, else global_defs' `script_user`, else
//! as the daemon itself (root under systemd). As keepalived does, the
//! command line is split into arguments and executed without a shell, with
//! stdin/stdout/stderr on /dev/null.

use std::{
    ffi::CString,
    os::unix::process::CommandExt,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tokio::sync::oneshot;

use crate::config::model::{Script, ScriptUser};

/// Starts notification scripts.
#[derive(Clone, Debug, Default)]
pub struct Notifier {
    /// global_defs' `script_user`.
    script_user: Option<ScriptUser>,
}

impl Notifier {
    pub fn new(script_user: Option<ScriptUser>) -> Notifier {
        Notifier { script_user }
    }

    /// Starts `script` and returns at once. `why` goes into the logs.
    pub fn spawn(&self, script: &Script, why: &str) {
        self.launch(script, why, None);
    }

    /// Starts `script` and returns a receiver that completes when it has
    /// exited, or after `limit` (it is killed then). For shutdown, where
    /// keepalived gives each script one second.
    pub fn spawn_bounded(
        &self,
        script: &Script,
        why: &str,
        limit: Duration,
    ) -> oneshot::Receiver<()> {
        let (done, rx) = oneshot::channel();
        self.launch(script, why, Some((limit, done)));
        rx
    }

    fn launch(&self, script: &Script, why: &str, bound: Option<(Duration, oneshot::Sender<()>)>) {
        let job = Job {
            command: script.command.clone(),
            user: self.user_for(script),
            why: why.to_owned(),
        };
        let spawned = std::thread::Builder::new()
            .name("xvs-notify".into())
            .spawn(move || {
                let limit = bound.as_ref().map(|(limit, _)| *limit);
                job.run(limit);
                if let Some((_, done)) = bound {
                    let _ = done.send(());
                }
            });
        if let Err(e) = spawned {
            tracing::error!(
                "cannot start notify script {:?} ({why}): {e}",
                script.command
            );
        }
    }

    /// The script's own user, else the global script_user.
    fn user_for(&self, script: &Script) -> Option<ScriptUser> {
        match &script.user {
            Some(user) => Some(ScriptUser {
                user: user.clone(),
                group: script.group.clone(),
            }),
            None => self.script_user.clone(),
        }
    }
}

/// One script run, owned by its thread.
struct Job {
    command: String,
    user: Option<ScriptUser>,
    why: String,
}

impl Job {
    fn run(&self, limit: Option<Duration>) {
        let mut child = match self.start() {
            Ok(child) => child,
            Err(e) => {
                tracing::error!(
                    "notify script {:?} ({}) not run: {e}",
                    self.command,
                    self.why
                );
                return;
            }
        };
        tracing::debug!("notify script {:?} started ({})", self.command, self.why);
        let status = match limit {
            None => child.wait().ok(),
            Some(limit) => wait_at_most(&mut child, limit),
        };
        match status {
            Some(s) if s.success() => {}
            Some(s) => tracing::info!(
                "notify script {:?} ({}) exited with {s}",
                self.command,
                self.why
            ),
            None => tracing::warn!(
                "notify script {:?} ({}) killed after its time limit",
                self.command,
                self.why
            ),
        }
    }

    fn start(&self) -> Result<Child, String> {
        let args = split_command(&self.command);
        let Some((program, rest)) = args.split_first() else {
            return Err("empty command".into());
        };
        let mut cmd = Command::new(program);
        cmd.args(rest)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(user) = &self.user {
            let (uid, gid) = lookup_user(user)?;
            // Only switch when needed, so an unprivileged daemon (tests)
            // can still run its scripts as itself.
            // SAFETY: geteuid/getegid have no preconditions.
            if (uid, gid) != unsafe { (libc::geteuid(), libc::getegid()) } {
                cmd.uid(uid).gid(gid);
            }
        }
        cmd.spawn().map_err(|e| e.to_string())
    }
}

/// Waits for `child` up to `limit`, then kills it (None).
fn wait_at_most(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// The uid and gid of `user` (its primary group unless one is given).
fn lookup_user(u: &ScriptUser) -> Result<(u32, u32), String> {
    let (uid, primary) =
        passwd(&u.user).ok_or_else(|| format!("unknown script user {}", u.user))?;
    let gid = match &u.group {
        None => primary,
        Some(g) => group(g).ok_or_else(|| format!("unknown script group {g}"))?,
    };
    Ok((uid, gid))
}

fn passwd(name: &str) -> Option<(u32, u32)> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0u8; 16384];
    // SAFETY: all-zero is a valid `passwd` (pointers null, ids 0).
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; buf outlives the result.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pw,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        )
    };
    if rc == 0 && !found.is_null() {
        return Some((pw.pw_uid, pw.pw_gid));
    }
    // A numeric id is accepted as is.
    name.parse().ok().map(|id: u32| (id, id))
}

fn group(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0u8; 16384];
    // SAFETY: all-zero is a valid `group`.
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as for getpwnam_r.
    let rc = unsafe {
        libc::getgrnam_r(
            cname.as_ptr(),
            &mut gr,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        )
    };
    if rc == 0 && !found.is_null() {
        return Some(gr.gr_gid);
    }
    name.parse().ok()
}

/// Splits a command line into arguments: blanks separate them, '...' and
/// "..." group, and a backslash escapes the next character (outside
/// single quotes).
pub fn split_command(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut in_arg = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('\''), '\'') | (Some('"'), '"') => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => {
                in_arg = true;
                if let Some(next) = chars.next() {
                    cur.push(next);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                in_arg = true;
                quote = Some(c);
            }
            (None, c) if c.is_whitespace() => {
                if in_arg {
                    args.push(std::mem::take(&mut cur));
                    in_arg = false;
                }
            }
            (None, c) => {
                in_arg = true;
                cur.push(c);
            }
        }
    }
    if in_arg {
        args.push(cur);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_keepalived() {
        assert_eq!(split_command("/bin/x.sh a  b"), ["/bin/x.sh", "a", "b"]);
        assert_eq!(
            split_command(r#"/bin/x "two words" 'it''s' a\ b """#),
            ["/bin/x", "two words", "its", "a b", ""]
        );
        assert!(split_command("   ").is_empty());
    }

    #[test]
    fn users_resolve() {
        assert_eq!(passwd("root"), Some((0, 0)));
        assert_eq!(group("root"), Some(0));
        assert_eq!(passwd("1234"), Some((1234, 1234)));
        assert!(passwd("no-such-user-xvs").is_none());
        let u = ScriptUser {
            user: "root".into(),
            group: Some("0".into()),
        };
        assert_eq!(lookup_user(&u), Ok((0, 0)));
    }
}
