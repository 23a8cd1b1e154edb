//! notify_up / notify_down / quorum_up / quorum_down scripts.
//!
//! A script is started and left alone: a thread of its own waits for it, so
//! a slow script never holds up the checks or the state changes. Scripts
//! run as their own `user [group]`, else global_defs' `script_user`, else
//! as the daemon itself (root under systemd). As keepalived does, the
//! command line is split into arguments and executed without a shell, with
//! stdin/stdout/stderr on /dev/null.

use std::{
    os::unix::process::CommandExt,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tokio::sync::oneshot;

use super::script;
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
        let args = script::split_words(&self.command).map_err(|e| e.to_string())?;
        let Some((program, rest)) = args.split_first() else {
            return Err("empty command".into());
        };
        let mut cmd = Command::new(program);
        cmd.args(rest)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(user) = &self.user {
            let id = script::lookup(&user.user, user.group.as_deref())
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("unknown script user {}", user.user))?;
            let (uid, gid) = (id.uid, id.gid);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_keepalived() {
        let words = |line: &str| -> Vec<String> {
            script::split_words(line)
                .unwrap()
                .into_iter()
                .map(|w| w.into_string().unwrap())
                .collect()
        };
        assert_eq!(words("/bin/x.sh a  b"), ["/bin/x.sh", "a", "b"]);
        assert_eq!(
            words(r#"/bin/x "two words" 'it''s' a\ b """#),
            ["/bin/x", "two words", "its", "a b", ""]
        );
        assert!(words("   ").is_empty());
    }

    #[test]
    fn users_resolve() {
        let root = script::lookup("root", None).unwrap().unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(script::lookup("no-such-user-xvs", None).unwrap().is_none());
    }
}
