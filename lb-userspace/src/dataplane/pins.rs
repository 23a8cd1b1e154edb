//! The data plane's bpffs pins: `<dir>/<MAP NAME>` for every map and
//! `<dir>/link` for the XDP attachment (a bpf_link). Pinned objects outlive
//! the process, so a restarted daemon finds the running data plane and takes
//! it over — same maps, same flows — and traffic keeps flowing while no
//! daemon runs at all.
//!
//! One daemon at a time owns a pin directory: it holds an exclusive `flock`
//! on the directory, so a second daemon of the same instance fails at once
//! instead of rewriting the first one's maps.

use crate::dataplane::AttachMode;
use anyhow::{bail, Context, Result};
use aya::maps::{MapInfo, MapType};
use lb_common::*;
use std::{
    ffi::CString,
    fs, io,
    mem::size_of,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::{ffi::OsStrExt, fs::MetadataExt},
    },
    path::{Path, PathBuf},
};

/// Where bpffs is mounted on every systemd host.
pub const BPFFS_ROOT: &str = "/sys/fs/bpf";
/// The XDP link's pin, inside the pin directory.
pub const LINK_PIN: &str = "link";
const BPF_FS_MAGIC: libc::c_long = 0xcafe_4a11;

/// `/sys/fs/bpf/xvs/<instance>`, the pin directory of `xvsd --instance NAME`.
pub fn instance_dir(instance: &str) -> Result<PathBuf> {
    let valid = !instance.is_empty()
        && instance != "."
        && instance != ".."
        && instance
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !valid {
        bail!("bad instance name {instance:?}: use letters, digits, '-', '_' and '.'");
    }
    Ok(Path::new(BPFFS_ROOT).join("xvs").join(instance))
}

/// Makes sure `root` is a bpffs mount, mounting one if it is not, as
/// systemd does at boot and bpftool does when it pins; true when it did.
/// (`ip netns exec` remounts /sys in a mount namespace of its own, which
/// hides the host's bpffs: a bpffs mounted there ends with that namespace.)
pub fn ensure_bpffs(root: &Path) -> Result<bool> {
    if is_bpffs(root).with_context(|| format!("checking {}", root.display()))? {
        return Ok(false);
    }
    let target = CString::new(root.as_os_str().as_bytes())?;
    // SAFETY: every pointer is a valid NUL-terminated string for the call.
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            0,
            c"mode=0700".as_ptr().cast(),
        )
    };
    if rc != 0 {
        bail!(
            "no BPF filesystem at {} and mounting one failed: {} \
             (mount it with `mount -t bpf bpf {0}`)",
            root.display(),
            io::Error::last_os_error()
        );
    }
    log::info!("mounted a BPF filesystem (bpffs) at {}", root.display());
    Ok(true)
}

/// Whether `path` lies on a BPF filesystem.
pub fn is_bpffs(path: &Path) -> io::Result<bool> {
    let c_path = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: statfs fills the zeroed struct; the path is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c_path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type as libc::c_long == BPF_FS_MAGIC)
}

/// What a map must look like for the program of this build to use it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MapSpec {
    pub name: &'static str,
    pub map_type: MapType,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    /// A pinned map of another size is used as it is (with a warning): its
    /// size was a load-time choice (`--conn-table-size`), not the layout.
    pub resizable: bool,
}

fn spec<K, V>(name: &'static str, map_type: MapType, max_entries: u32) -> MapSpec {
    MapSpec {
        name,
        map_type,
        key_size: size_of::<K>() as u32,
        value_size: size_of::<V>() as u32,
        max_entries,
        resizable: false,
    }
}

/// Every map of the XDP program (lb-ebpf/src/maps.rs), with the table sizes
/// chosen at load time.
pub(crate) fn map_specs(conn_table: u32, persist_table: u32) -> Vec<MapSpec> {
    use MapType::*;
    vec![
        spec::<u32, GlobalConfig>(maps::GLOBAL, Array, 1),
        spec::<u32, u64>(maps::VIP_FILTER, Array, VIP_FILTER_WORDS),
        spec::<ServiceKey, ServiceInfo>(maps::SERVICES, Hash, MAX_SERVICES),
        spec::<u32, Dest>(maps::DESTS, Array, MAX_DESTS),
        spec::<u32, u32>(maps::SCHED_POOL, Array, SCHED_POOL_SLOTS),
        spec::<u32, u32>(maps::SCHED_CURSOR, PerCpuArray, MAX_SERVICES),
        MapSpec {
            resizable: true,
            ..spec::<ConnKey, ConnEntry>(maps::CONNS, LruHash, conn_table)
        },
        spec::<u32, FlowCacheSlot>(maps::FLOW_CACHE, PerCpuArray, FLOW_CACHE_SLOTS),
        MapSpec {
            resizable: true,
            ..spec::<PersistKey, PersistEntry>(maps::PERSIST, LruHash, persist_table)
        },
        spec::<u32, Counters>(maps::SERVICE_STATS, PerCpuArray, MAX_SERVICES),
        spec::<u32, Counters>(maps::DEST_STATS, PerCpuArray, MAX_DESTS),
        spec::<u32, u64>(maps::VERDICTS, PerCpuArray, VERDICT_COUNT),
        spec::<u32, IfaceMac>(maps::IFACE_MACS, Array, MAX_IFACES),
    ]
}

/// A pin directory, locked for this process while the value lives.
#[derive(Debug)]
pub(crate) struct PinDir {
    path: PathBuf,
    _lock: OwnedFd,
}

impl PinDir {
    /// Creates (if needed) and locks `path`, which must be on bpffs.
    pub fn open(path: &Path) -> Result<PinDir> {
        // Whatever part of the path exists already decides the filesystem.
        let existing = path.ancestors().find(|p| p.exists());
        if !existing.is_some_and(|p| is_bpffs(p).unwrap_or(false)) {
            bail!(
                "{} is not on a BPF filesystem (bpffs); mount one with `mount -t bpf bpf {BPFFS_ROOT}`",
                path.display()
            );
        }
        // A directory removed by a daemon that was just exiting is made again.
        for _ in 0..3 {
            fs::create_dir_all(path)
                .with_context(|| format!("creating pin directory {}", path.display()))?;
            let lock = lock_dir(path)?;
            if same_inode(&lock, path) {
                return Ok(PinDir {
                    path: path.to_path_buf(),
                    _lock: lock,
                });
            }
        }
        bail!("pin directory {} keeps disappearing", path.display())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn map_path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn link_path(&self) -> PathBuf {
        self.path.join(LINK_PIN)
    }

    /// The maps already pinned here, each checked against this build: an
    /// incompatible one is an error, since the program would misread it.
    pub fn pinned_maps(&self, specs: &[MapSpec]) -> Result<Vec<&'static str>> {
        let mut found = Vec::new();
        for spec in specs {
            let path = self.map_path(spec.name);
            if !path.exists() {
                continue;
            }
            let info = MapInfo::from_pin(&path)
                .with_context(|| format!("opening pinned map {}", path.display()))?;
            check_compatible(spec, &info, &path)?;
            found.push(spec.name);
        }
        Ok(found)
    }

    /// Unpins everything: the link (which detaches the program once no
    /// process holds it either), the maps, and the directory itself.
    pub fn remove(&self, specs: &[MapSpec]) -> Result<()> {
        let names = std::iter::once(LINK_PIN).chain(specs.iter().map(|s| s.name));
        for name in names {
            match fs::remove_file(self.path.join(name)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("unpinning {name}"))
                }
                _ => {}
            }
        }
        fs::remove_dir(&self.path)
            .with_context(|| format!("removing pin directory {}", self.path.display()))
    }
}

fn check_compatible(spec: &MapSpec, info: &MapInfo, path: &Path) -> Result<()> {
    let map_type = info.map_type().ok();
    let layout_ok = map_type == Some(spec.map_type)
        && info.key_size() == spec.key_size
        && info.value_size() == spec.value_size;
    if layout_ok && info.max_entries() == spec.max_entries {
        return Ok(());
    }
    if layout_ok && spec.resizable {
        log::warn!(
            "pinned {} has {} entries, not the {} asked for: keeping it (flows live in it); \
             a clean stop and start resizes it",
            spec.name,
            info.max_entries(),
            spec.max_entries
        );
        return Ok(());
    }
    bail!(
        "pinned map {} ({map_type:?}, key {} B, value {} B, {} entries) does not match this \
         build ({:?}, key {} B, value {} B, {} entries): it belongs to another XVS version. \
         Stop that data plane cleanly, or remove {} (this drops its flows)",
        path.display(),
        info.key_size(),
        info.value_size(),
        info.max_entries(),
        spec.map_type,
        spec.key_size,
        spec.value_size,
        spec.max_entries,
        path.parent().unwrap_or(path).display()
    )
}

/// An exclusive, non-blocking flock on the directory itself.
fn lock_dir(path: &Path) -> Result<OwnedFd> {
    let c_path = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: a NUL-terminated path; the fd is owned right after.
    let fd = unsafe {
        libc::open(
            c_path.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(e).with_context(|| format!("opening {}", path.display()));
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            bail!(
                "{} is in use by another running data plane (another xvsd with the same --instance?)",
                path.display()
            );
        }
        return Err(e).with_context(|| format!("locking {}", path.display()));
    }
    Ok(fd)
}

/// Whether the locked fd is still the directory at `path`.
fn same_inode(fd: &OwnedFd, path: &Path) -> bool {
    let Ok(on_disk) = fs::metadata(path) else {
        return false;
    };
    // SAFETY: fstat fills the zeroed struct for a valid fd.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return false;
    }
    st.st_dev == on_disk.dev() && st.st_ino == on_disk.ino()
}

/// Whether XDP attaches through a bpf_link (Linux 5.9), which is what can
/// be pinned and updated in place; older kernels attach through netlink.
pub(crate) fn xdp_links_supported() -> bool {
    aya::util::KernelVersion::current()
        .map(|v| v >= aya::util::KernelVersion::new(5, 9, 0))
        .unwrap_or(false)
}

/// The XDP programs attached to an interface (of the calling thread's
/// network namespace), with their mode, as rtnetlink reports them.
pub fn attached_xdp_programs(ifindex: u32) -> io::Result<Vec<(AttachMode, u32)>> {
    use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
    use netlink_packet_route::{
        link::{LinkAttribute, LinkMessage, LinkXdp},
        RouteNetlinkMessage,
    };
    use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut request = LinkMessage::default();
    request.header.index = ifindex;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST;
    let mut packet = NetlinkMessage::new(
        header,
        NetlinkPayload::from(RouteNetlinkMessage::GetLink(request)),
    );
    packet.finalize();
    let mut bytes = vec![0; packet.buffer_len()];
    packet.serialize(&mut bytes);
    socket.send(&bytes, 0)?;

    let mut reply = Vec::with_capacity(64 * 1024);
    socket.recv(&mut reply, 0)?;
    let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&reply)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    let link = match message.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => link,
        NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
        other => {
            let msg = format!("unexpected rtnetlink reply {other:?}");
            return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
        }
    };
    let mut programs = Vec::new();
    for attr in link.attributes {
        let LinkAttribute::Xdp(xdp) = attr else {
            continue;
        };
        for x in xdp {
            // The kernel reports each attached program by mode.
            match x {
                LinkXdp::DrvProgId(id) => programs.push((AttachMode::Native, id)),
                LinkXdp::SkbProgId(id) => programs.push((AttachMode::Skb, id)),
                _ => {}
            }
        }
    }
    Ok(programs)
}
