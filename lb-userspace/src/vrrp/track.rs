//! Tracked objects: interfaces (`track_interface`, and each instance's own
//! interface) and `vrrp_script`s. Each runs as a task that reports only
//! changes of state; the runtime turns them into priorities and FAULT.

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context, Result};
use tokio::{sync::mpsc, task::JoinHandle};

use super::{garp::link_up, spec::TrackedObject};
use crate::{
    config::model::{GlobalDefs, MiscCheck as MiscConfig, VrrpScript},
    health::{checkers::misc::MiscCheck, Checker},
};

/// How often interface flags are read: one ioctl each, so cheap; a link
/// loss is noticed within this.
const LINK_POLL: Duration = Duration::from_millis(100);

/// A tracked object changed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub what: TrackedObject,
    pub ok: bool,
}

/// The current state of every interface in `names`, read now.
pub fn links_now(names: &[String]) -> BTreeMap<String, bool> {
    names
        .iter()
        .map(|n| (n.clone(), link_up(n).unwrap_or(false)))
        .collect()
}

/// Polls the interfaces and reports each change of up/running.
pub fn watch_links(
    mut known: BTreeMap<String, bool>,
    tx: mpsc::UnboundedSender<Change>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(LINK_POLL);
        loop {
            tick.tick().await;
            for (name, was) in known.iter_mut() {
                let now = link_up(name).unwrap_or(false);
                if now != *was {
                    *was = now;
                    tracing::info!(interface = %name, up = now, "tracked interface changed");
                    let change = Change {
                        what: TrackedObject::Interface(name.clone()),
                        ok: now,
                    };
                    if tx.send(change).is_err() {
                        return;
                    }
                }
            }
        }
    })
}

/// A `vrrp_script` ready to run: the MISC_CHECK runner does the process
/// handling (own process group, timeout, script user).
pub struct ScriptRunner {
    index: usize,
    name: String,
    checker: MiscCheck,
    interval: Duration,
    rise: u32,
    fall: u32,
    /// keepalived's `init_fail`: start failed rather than OK.
    ok: bool,
}

impl ScriptRunner {
    pub fn new(index: usize, s: &VrrpScript, global: &GlobalDefs) -> Result<ScriptRunner> {
        let misc = MiscConfig {
            misc_path: s.script.as_ref().map(|x| x.command.clone()),
            misc_timeout: None,
            misc_dynamic: false,
            user: s.user.clone(),
        };
        let timeout = s.timeout.unwrap_or(s.interval);
        let checker = MiscCheck::new(&misc, global, timeout, 0)
            .with_context(|| format!("vrrp_script {} ({})", s.name, s.pos))?;
        Ok(ScriptRunner {
            index,
            name: s.name.clone(),
            checker,
            interval: s.interval,
            rise: s.rise.max(1),
            fall: s.fall.max(1),
            ok: !s.init_fail,
        })
    }

    /// The state before the first run.
    pub fn initial(&self) -> bool {
        self.ok
    }

    /// Runs the script every interval; `rise` successes in a row make it OK,
    /// `fall` failures in a row make it failed.
    pub fn spawn(mut self, tx: mpsc::UnboundedSender<Change>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut streak = 0u32;
            loop {
                tick.tick().await;
                let outcome = self.checker.check().await;
                if outcome.up == self.ok {
                    streak = 0;
                    continue;
                }
                streak += 1;
                if streak < if outcome.up { self.rise } else { self.fall } {
                    continue;
                }
                streak = 0;
                self.ok = outcome.up;
                tracing::info!(script = %self.name, ok = self.ok, reason = %outcome.reason, "vrrp_script changed");
                let change = Change {
                    what: TrackedObject::Script(self.index),
                    ok: self.ok,
                };
                if tx.send(change).is_err() {
                    return;
                }
            }
        })
    }
}
