//! `xvsadm realserver up|down|status --vip VIP...`: what every LVS-DR
//! `realserver.sh` does on a real server, made idempotent and reversible.
//!
//! A direct-routing director hands the real a frame still addressed to the
//! VIP, so the real must own the VIP (as a host address on `lo`) without
//! answering ARP for it, which would steal the VIP from the director:
//! `arp_ignore=1` (answer only for addresses of the receiving interface) and
//! `arp_announce=2` (never use the VIP as the source of an ARP request), on
//! `lo` and `all`. IPv6 needs no such setting: Linux answers a neighbour
//! solicitation only for addresses of the interface it arrived on.
//!
//! `up` records what it changed in a small state file; `down` undoes exactly
//! that: it removes only the addresses `up` added, and puts the sysctls back
//! once no IPv4 VIP brought up still needs them.

use std::{
    collections::BTreeMap,
    fmt, fs,
    io::{self, Write},
    net::IpAddr,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::netlink::{self, host_prefix_len, AddrEntry};

/// Where `up` records what it changed, unless [`STATE_PATH_ENV`] says otherwise.
pub const DEFAULT_STATE_PATH: &str = "/run/xvs/realserver.state";
/// Environment variable overriding [`DEFAULT_STATE_PATH`].
pub const STATE_PATH_ENV: &str = "XVS_REALSERVER_STATE";

const LOOPBACK: &str = "lo";
/// The label of IPv4 VIPs on `lo`, as `lo:0` was in the scripts.
const VIP_LABEL: &str = "lo:xvs";

/// One `net.ipv4.conf.<interface>.<name>` setting and the value a real needs.
#[derive(Debug, Clone, Copy)]
struct ArpSysctl {
    interface: &'static str,
    name: &'static str,
    wanted: i64,
}

const ARP_SYSCTLS: [ArpSysctl; 4] = [
    ArpSysctl::new("lo", "arp_ignore", 1),
    ArpSysctl::new("lo", "arp_announce", 2),
    ArpSysctl::new("all", "arp_ignore", 1),
    ArpSysctl::new("all", "arp_announce", 2),
];

impl ArpSysctl {
    const fn new(interface: &'static str, name: &'static str, wanted: i64) -> Self {
        Self {
            interface,
            name,
            wanted,
        }
    }

    fn key(&self) -> String {
        format!("net.ipv4.conf.{}.{}", self.interface, self.name)
    }

    /// Under /proc/sys/net, which shows the network namespace of the thread
    /// that opens it.
    fn path(&self) -> PathBuf {
        Path::new("/proc/sys/net/ipv4/conf")
            .join(self.interface)
            .join(self.name)
    }

    fn read(&self) -> Result<i64> {
        let path = self.path();
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        text.trim()
            .parse()
            .with_context(|| format!("{}: not a number: {text:?}", path.display()))
    }

    fn write(&self, value: i64) -> Result<()> {
        let path = self.path();
        fs::write(&path, format!("{value}\n"))
            .with_context(|| format!("writing {value} to {}", path.display()))
    }
}

// ---------------------------------------------------------------------------
// The report

/// Which command produced a [`Report`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Up,
    Down,
    Status,
}

/// What happened to, or was found for, one VIP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum VipOutcome {
    /// `up` put it on `lo`.
    Added { prefix_len: u8 },
    /// `up` found it on `lo` already (put there by an earlier `up` or not),
    /// and left it as it is, even with a prefix wider than a host's.
    AlreadyOnLo { prefix_len: u8, added_by_xvs: bool },
    /// `down` took it off `lo`.
    Removed,
    /// `down`: it was added by `up` but someone removed it since.
    AlreadyGone,
    /// `down`: it was on `lo` before `up`, so it stays.
    LeftInPlace,
    /// `down`: `up` has no record of it, so it is left alone.
    NotManaged,
    /// `status`: on `lo` with this prefix length.
    OnLo { prefix_len: u8 },
    /// `status`: not on `lo`.
    Missing,
}

/// What happened to, or was found for, one ARP sysctl.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum SysctlOutcome {
    /// `up` changed it.
    Set { from: i64, to: i64 },
    /// `up` found the wanted value already.
    AlreadySet { value: i64 },
    /// `down` put the value from before `up` back.
    Restored { from: i64, to: i64 },
    /// `down` keeps it: another IPv4 VIP brought up still needs it.
    StillNeeded { value: i64 },
    /// `down` leaves it: someone changed it since `up`.
    ChangedSinceUp { value: i64 },
    /// `status`: its value and the value a real needs.
    Checked { value: i64, wanted: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VipLine {
    pub vip: IpAddr,
    #[serde(flatten)]
    pub outcome: VipOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SysctlLine {
    /// `net.ipv4.conf.lo.arp_ignore`, ...
    pub key: String,
    #[serde(flatten)]
    pub outcome: SysctlOutcome,
}

/// The outcome of `up`, `down` or `status`, one line per VIP and sysctl.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub action: Action,
    pub vips: Vec<VipLine>,
    /// Empty when only IPv6 VIPs are concerned.
    pub sysctls: Vec<SysctlLine>,
}

impl Report {
    fn new(action: Action) -> Self {
        Self {
            action,
            vips: Vec::new(),
            sysctls: Vec::new(),
        }
    }

    /// Whether this run changed anything on the host.
    pub fn changed(&self) -> bool {
        let vip_changed =
            |line: &VipLine| matches!(line.outcome, VipOutcome::Added { .. } | VipOutcome::Removed);
        let sysctl_changed = |line: &SysctlLine| {
            matches!(
                line.outcome,
                SysctlOutcome::Set { .. } | SysctlOutcome::Restored { .. }
            )
        };
        self.vips.iter().any(vip_changed) || self.sysctls.iter().any(sysctl_changed)
    }

    /// Whether the host is as the report's action wants it. Always true for
    /// `up` and `down` (their failures are errors); for `status`, false when
    /// a VIP is missing from `lo`, is not a host address there, or a sysctl
    /// has the wrong value. The CLI exits non-zero then.
    pub fn is_ok(&self) -> bool {
        self.problems() == 0
    }

    fn problems(&self) -> usize {
        let vip_problem = |line: &&VipLine| match line.outcome {
            VipOutcome::Missing => true,
            VipOutcome::OnLo { prefix_len } => prefix_len != host_prefix_len(line.vip),
            _ => false,
        };
        let sysctl_problem = |line: &&SysctlLine| match line.outcome {
            SysctlOutcome::Checked { value, wanted } => value != wanted,
            _ => false,
        };
        self.vips.iter().filter(vip_problem).count()
            + self.sysctls.iter().filter(sysctl_problem).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.vips {
            writeln!(f, "{}: {}", line.vip, describe_vip(line.vip, &line.outcome))?;
        }
        for line in &self.sysctls {
            writeln!(f, "{}: {}", line.key, describe_sysctl(&line.outcome))?;
        }
        match (self.action, self.changed()) {
            (Action::Status, _) if self.is_ok() => {
                write!(f, "status: ok, this host is ready as a DR real server")
            }
            (Action::Status, _) => write!(
                f,
                "status: NOT ready ({} problem(s) above)",
                self.problems()
            ),
            (Action::Up, false) => write!(f, "up: nothing to change, already up"),
            (Action::Down, false) => write!(f, "down: nothing to undo"),
            (Action::Up, true) => write!(f, "up: done"),
            (Action::Down, true) => write!(f, "down: done"),
        }
    }
}

/// Why a VIP on `lo` must be a host address.
const WIDE_PREFIX_ON_LO: &str = "a wider prefix on lo swallows the whole subnet";

fn describe_vip(vip: IpAddr, outcome: &VipOutcome) -> String {
    let host = host_prefix_len(vip);
    match outcome {
        VipOutcome::Added { prefix_len } => format!("added to lo as {vip}/{prefix_len}"),
        VipOutcome::AlreadyOnLo { prefix_len, .. } if *prefix_len != host => format!(
            "already on lo as {vip}/{prefix_len}, left as it is: WRONG, must be /{host} \
             ({WIDE_PREFIX_ON_LO}); fix it by hand"
        ),
        VipOutcome::AlreadyOnLo {
            added_by_xvs: true, ..
        } => "already on lo (added by xvs), unchanged".into(),
        VipOutcome::AlreadyOnLo {
            added_by_xvs: false,
            ..
        } => "already on lo (not added by xvs: down will leave it), unchanged".into(),
        VipOutcome::Removed => "removed from lo".into(),
        VipOutcome::AlreadyGone => "already gone from lo".into(),
        VipOutcome::LeftInPlace => "left on lo (it was there before up)".into(),
        VipOutcome::NotManaged => "not brought up by xvs, left alone".into(),
        VipOutcome::OnLo { prefix_len } if *prefix_len == host => {
            format!("on lo as {vip}/{prefix_len}, ok")
        }
        VipOutcome::OnLo { prefix_len } => {
            format!("on lo as {vip}/{prefix_len}: WRONG, must be /{host} ({WIDE_PREFIX_ON_LO})")
        }
        VipOutcome::Missing => "MISSING from lo".into(),
    }
}

fn describe_sysctl(outcome: &SysctlOutcome) -> String {
    match outcome {
        SysctlOutcome::Set { from, to } => format!("{from} -> {to}"),
        SysctlOutcome::AlreadySet { value } => format!("already {value}, unchanged"),
        SysctlOutcome::Restored { from, to } => format!("{from} -> {to} (restored)"),
        SysctlOutcome::StillNeeded { value } => format!("kept at {value}: other VIPs are still up"),
        SysctlOutcome::ChangedSinceUp { value } => {
            format!("left at {value}: changed by someone else since up")
        }
        SysctlOutcome::Checked { value, wanted } if value == wanted => format!("{value}, ok"),
        SysctlOutcome::Checked { value, wanted } => format!("{value}: WRONG, must be {wanted}"),
    }
}

// ---------------------------------------------------------------------------
// The state file

/// What `up` changed, so that `down` can undo exactly that.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    /// VIPs `up` put on `lo`: `down` removes them.
    added: Vec<IpAddr>,
    /// VIPs that were on `lo` before `up`: `down` leaves them.
    preexisting: Vec<IpAddr>,
    /// Sysctl values from before `up` changed them, by key.
    previous_sysctls: BTreeMap<String, i64>,
}

impl State {
    fn load(path: &Path) -> Result<Self> {
        match fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("{}: unreadable state", path.display())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Self::default()),
            Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the state (atomically: a crash leaves the old or the new
    /// file), or removes the file once there is nothing left to undo.
    fn save(&self, path: &Path) -> Result<()> {
        if *self == Self::default() {
            return match fs::remove_file(path) {
                Err(error) if error.kind() != io::ErrorKind::NotFound => {
                    Err(error).with_context(|| format!("removing {}", path.display()))
                }
                _ => Ok(()),
            };
        }
        let write = || -> io::Result<()> {
            if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                fs::create_dir_all(dir)?;
            }
            let temporary = path.with_extension("tmp");
            let mut file = fs::File::create(&temporary)?;
            file.write_all(serde_json::to_string_pretty(self)?.as_bytes())?;
            file.sync_all()?;
            fs::rename(&temporary, path)
        };
        write().with_context(|| format!("writing {}", path.display()))
    }

    fn manages(&self, vip: IpAddr) -> bool {
        self.added.contains(&vip) || self.preexisting.contains(&vip)
    }

    fn needs_arp_sysctls(&self) -> bool {
        self.added
            .iter()
            .chain(&self.preexisting)
            .any(IpAddr::is_ipv4)
    }

    fn forget(&mut self, vip: IpAddr) {
        self.added.retain(|&a| a != vip);
        self.preexisting.retain(|&a| a != vip);
    }
}

// ---------------------------------------------------------------------------
// The commands

/// `up`, `down` and `status` with a given state file.
#[derive(Debug, Clone)]
pub struct RealServer {
    state_path: PathBuf,
}

/// `up` with the state file of [`RealServer::from_env`].
pub fn up(vips: &[IpAddr]) -> Result<Report> {
    RealServer::from_env().up(vips)
}

/// `down` with the state file of [`RealServer::from_env`].
pub fn down(vips: &[IpAddr]) -> Result<Report> {
    RealServer::from_env().down(vips)
}

/// `status` (it needs no state file).
pub fn status(vips: &[IpAddr]) -> Result<Report> {
    RealServer::from_env().status(vips)
}

impl RealServer {
    pub fn new(state_path: impl Into<PathBuf>) -> Self {
        Self {
            state_path: state_path.into(),
        }
    }

    /// The state file named by `XVS_REALSERVER_STATE`, else `/run/xvs/realserver.state`.
    pub fn from_env() -> Self {
        Self::new(std::env::var_os(STATE_PATH_ENV).unwrap_or_else(|| DEFAULT_STATE_PATH.into()))
    }

    pub fn state_path(&self) -> &Path {
        &self.state_path
    }

    /// Puts each VIP on `lo` as a host address and sets the ARP sysctls
    /// (when a VIP is IPv4). Running it again changes nothing.
    pub fn up(&self, vips: &[IpAddr]) -> Result<Report> {
        let vips = checked_vips(vips)?;
        let mut state = State::load(&self.state_path)?;
        let mut report = Report::new(Action::Up);
        // Record whatever was done, even when a later step fails.
        let outcome = bring_up(&vips, &mut state, &mut report);
        state.save(&self.state_path)?;
        outcome.map(|()| report)
    }

    /// Undoes what `up` did for these VIPs: removes those it added, and
    /// restores the sysctls once no IPv4 VIP it brought up remains.
    pub fn down(&self, vips: &[IpAddr]) -> Result<Report> {
        let vips = checked_vips(vips)?;
        let mut state = State::load(&self.state_path)?;
        let mut report = Report::new(Action::Down);
        let outcome = bring_down(&vips, &mut state, &mut report);
        state.save(&self.state_path)?;
        outcome.map(|()| report)
    }

    /// Reports each VIP's presence on `lo` and the ARP sysctls against the
    /// values a real needs; see [`Report::is_ok`].
    pub fn status(&self, vips: &[IpAddr]) -> Result<Report> {
        let vips = checked_vips(vips)?;
        let lo_addrs = loopback_addrs()?.1;
        let mut report = Report::new(Action::Status);
        for &vip in &vips {
            let outcome = match lo_addrs.iter().find(|entry| entry.addr == vip) {
                Some(entry) => VipOutcome::OnLo {
                    prefix_len: entry.prefix_len,
                },
                None => VipOutcome::Missing,
            };
            report.vips.push(VipLine { vip, outcome });
        }
        if vips.iter().any(IpAddr::is_ipv4) {
            for sysctl in ARP_SYSCTLS {
                let outcome = SysctlOutcome::Checked {
                    value: sysctl.read()?,
                    wanted: sysctl.wanted,
                };
                report.sysctls.push(SysctlLine {
                    key: sysctl.key(),
                    outcome,
                });
            }
        }
        Ok(report)
    }
}

fn bring_up(vips: &[IpAddr], state: &mut State, report: &mut Report) -> Result<()> {
    let (lo, lo_addrs) = loopback_addrs()?;
    for &vip in vips {
        let outcome = put_vip_on_lo(lo, &lo_addrs, vip, state)?;
        report.vips.push(VipLine { vip, outcome });
    }
    if vips.iter().any(IpAddr::is_ipv4) {
        for sysctl in ARP_SYSCTLS {
            let outcome = set_arp_sysctl(sysctl, state)?;
            report.sysctls.push(SysctlLine {
                key: sysctl.key(),
                outcome,
            });
        }
    }
    Ok(())
}

fn put_vip_on_lo(
    lo: u32,
    lo_addrs: &[AddrEntry],
    vip: IpAddr,
    state: &mut State,
) -> Result<VipOutcome> {
    let added_by_xvs = state.added.contains(&vip);
    if let Some(entry) = lo_addrs.iter().find(|entry| entry.addr == vip) {
        if !state.manages(vip) {
            state.preexisting.push(vip);
        }
        return Ok(VipOutcome::AlreadyOnLo {
            prefix_len: entry.prefix_len,
            added_by_xvs,
        });
    }
    // Absent: new, or added by an earlier `up` and removed by hand since.
    let prefix_len = host_prefix_len(vip);
    let label = vip.is_ipv4().then_some(VIP_LABEL);
    netlink::add_addr(lo, vip, prefix_len, label).with_context(|| format!("adding {vip} to lo"))?;
    state.forget(vip);
    state.added.push(vip);
    Ok(VipOutcome::Added { prefix_len })
}

fn set_arp_sysctl(sysctl: ArpSysctl, state: &mut State) -> Result<SysctlOutcome> {
    let value = sysctl.read()?;
    if value == sysctl.wanted {
        return Ok(SysctlOutcome::AlreadySet { value });
    }
    // Keep the first value seen: that is the one from before any `up`.
    state.previous_sysctls.entry(sysctl.key()).or_insert(value);
    sysctl.write(sysctl.wanted)?;
    Ok(SysctlOutcome::Set {
        from: value,
        to: sysctl.wanted,
    })
}

fn bring_down(vips: &[IpAddr], state: &mut State, report: &mut Report) -> Result<()> {
    let (lo, lo_addrs) = loopback_addrs()?;
    for &vip in vips {
        let outcome = take_vip_off_lo(lo, &lo_addrs, vip, state)?;
        report.vips.push(VipLine { vip, outcome });
    }
    if state.needs_arp_sysctls() {
        for sysctl in ARP_SYSCTLS
            .iter()
            .filter(|s| state.previous_sysctls.contains_key(&s.key()))
        {
            let value = sysctl.read()?;
            report.sysctls.push(SysctlLine {
                key: sysctl.key(),
                outcome: SysctlOutcome::StillNeeded { value },
            });
        }
        return Ok(());
    }
    for sysctl in ARP_SYSCTLS {
        let Some(&previous) = state.previous_sysctls.get(&sysctl.key()) else {
            continue;
        };
        let outcome = restore_arp_sysctl(sysctl, previous)?;
        state.previous_sysctls.remove(&sysctl.key());
        report.sysctls.push(SysctlLine {
            key: sysctl.key(),
            outcome,
        });
    }
    Ok(())
}

fn take_vip_off_lo(
    lo: u32,
    lo_addrs: &[AddrEntry],
    vip: IpAddr,
    state: &mut State,
) -> Result<VipOutcome> {
    if state.preexisting.contains(&vip) {
        state.forget(vip);
        return Ok(VipOutcome::LeftInPlace);
    }
    if !state.added.contains(&vip) {
        return Ok(VipOutcome::NotManaged);
    }
    let prefix_len = host_prefix_len(vip);
    let present = lo_addrs
        .iter()
        .any(|entry| entry.addr == vip && entry.prefix_len == prefix_len);
    if present {
        netlink::del_addr(lo, vip, prefix_len)
            .with_context(|| format!("removing {vip} from lo"))?;
    }
    state.forget(vip);
    Ok(if present {
        VipOutcome::Removed
    } else {
        VipOutcome::AlreadyGone
    })
}

fn restore_arp_sysctl(sysctl: ArpSysctl, previous: i64) -> Result<SysctlOutcome> {
    let value = sysctl.read()?;
    if value != sysctl.wanted {
        // Someone set it since `up`: their value wins.
        return Ok(SysctlOutcome::ChangedSinceUp { value });
    }
    sysctl.write(previous)?;
    Ok(SysctlOutcome::Restored {
        from: value,
        to: previous,
    })
}

fn loopback_addrs() -> Result<(u32, Vec<AddrEntry>)> {
    let lo = netlink::ifindex(LOOPBACK)?;
    let addrs = netlink::list_addrs(Some(lo))?;
    Ok((lo, addrs))
}

/// The VIPs without duplicates, in order; addresses that cannot be a VIP
/// are refused before anything is changed.
fn checked_vips(vips: &[IpAddr]) -> Result<Vec<IpAddr>> {
    let mut unique = Vec::new();
    for &vip in vips {
        if vip.is_unspecified() || vip.is_loopback() || vip.is_multicast() {
            bail!("{vip} cannot be a VIP (unspecified, loopback or multicast)");
        }
        if let IpAddr::V4(v4) = vip {
            if v4.is_broadcast() {
                bail!("{vip} cannot be a VIP (broadcast)");
            }
        }
        if !unique.contains(&vip) {
            unique.push(vip);
        }
    }
    if unique.is_empty() {
        bail!("no VIP given");
    }
    Ok(unique)
}
