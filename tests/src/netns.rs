//! Network-namespace topologies for end-to-end tests and the lab: hosts
//! plugged into a Linux bridge, LVS-DR real-server setup, and small TCP and
//! UDP responders.
//!
//! Everything is created under a unique name prefix and owned by a [`Lab`],
//! whose `Drop` deletes it again (deleting a namespace also deletes the veth
//! ends inside it), pass or fail.
//!
//! Threads and namespaces: bpf() calls are global, but interface lookups,
//! XDP attach (netlink, `if_nametoindex`, ioctl) and sockets act in the
//! calling *thread's* network namespace. [`in_netns`] and [`spawn_in_netns`]
//! run code on a fresh thread moved into a namespace, so the test process
//! itself never changes namespace.

use anyhow::{anyhow, bail, Context, Result};
use std::{
    fs::File,
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    os::fd::{AsRawFd, RawFd},
    process::Command,
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

/// Runs a command and returns its stdout; a non-zero exit is an error
/// carrying stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Moves the calling thread into the named namespace (`/run/netns/<name>`).
pub fn enter_netns(name: &str) -> Result<()> {
    let path = format!("/run/netns/{name}");
    let file = File::open(&path).with_context(|| format!("opening {path}"))?;
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!("setns into {name}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `f` on a thread inside namespace `name` and returns its result. The
/// closure may borrow; the thread ends with it.
pub fn in_netns<T, F>(name: &str, f: F) -> Result<T>
where
    T: Send,
    F: FnOnce() -> Result<T> + Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            enter_netns(name)?;
            f()
        })
        .join()
        .map_err(|_| anyhow!("thread in namespace {name} panicked"))?
    })
}

/// Starts `f` on a long-lived thread inside namespace `name`.
pub fn spawn_in_netns<T, F>(name: &str, f: F) -> JoinHandle<Result<T>>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let name = name.to_string();
    std::thread::spawn(move || {
        enter_netns(&name)?;
        f()
    })
}

/// A network namespace of a [`Lab`], by name.
#[derive(Clone, Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// The existing namespace `name` (e.g. one a previous run left up).
    pub fn named(name: &str) -> Netns {
        Netns {
            name: name.to_string(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n <ns> ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// `ip netns exec <ns> PROGRAM ARGS`.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String> {
        let mut all = vec!["netns", "exec", &self.name, program];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.exec("sysctl", &["-qw", &format!("{key}={value}")])
            .map(drop)
    }

    /// See [`in_netns`].
    pub fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send,
        F: FnOnce() -> Result<T> + Send,
    {
        in_netns(&self.name, f)
    }

    /// The MAC address of `iface` in this namespace.
    pub fn mac(&self, iface: &str) -> Result<[u8; 6]> {
        self.run(|| xvs::dataplane::xdp::iface_index_and_mac(iface).map(|(_, mac)| mac))
    }

    /// Adds `cidr` (e.g. `10.0.0.1/24`) to `iface`.
    pub fn add_addr(&self, iface: &str, cidr: &str) -> Result<()> {
        self.ip(&["addr", "add", cidr, "dev", iface]).map(drop)
    }
}

/// Owns the namespaces of one test or lab run; dropping it deletes them.
pub struct Lab {
    prefix: String,
    namespaces: Vec<Netns>,
}

impl Lab {
    /// A lab whose namespaces are named `<tag><pid % 10000>-<short name>`,
    /// unique per process so parallel runs and the user's own don't clash.
    pub fn new(tag: &str) -> Lab {
        Lab {
            prefix: format!("{tag}{}-", std::process::id() % 10000),
            namespaces: Vec::new(),
        }
    }

    /// A lab whose namespaces are named exactly `<prefix><short name>`:
    /// for a lab that must be found again by name (`xvs-lab down`).
    pub fn with_prefix(prefix: &str) -> Lab {
        Lab {
            prefix: prefix.to_string(),
            namespaces: Vec::new(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Leaves the namespaces in place when this is dropped.
    pub fn keep(&mut self) {
        self.namespaces.clear();
    }

    /// Names of the namespaces created so far.
    pub fn namespace_names(&self) -> Vec<String> {
        self.namespaces.iter().map(|n| n.name.clone()).collect()
    }

    /// Creates namespace `<prefix><short>` with `lo` up.
    pub fn add_netns(&mut self, short: &str) -> Result<Netns> {
        let name = format!("{}{short}", self.prefix);
        run("ip", &["netns", "add", &name]).with_context(|| {
            format!("creating namespace {name} (left over from a crashed run?)")
        })?;
        let ns = Netns { name };
        self.namespaces.push(ns.clone());
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Creates a namespace holding a bridge that hosts are plugged into.
    pub fn add_switch(&mut self, short: &str) -> Result<Switch> {
        let ns = self.add_netns(short)?;
        ns.ip(&["link", "add", Switch::BRIDGE, "type", "bridge"])?;
        ns.ip(&["link", "set", Switch::BRIDGE, "up"])?;
        Ok(Switch { ns })
    }

    /// Deletes every namespace created, newest first; returns the failures.
    pub fn teardown(&mut self) -> Vec<anyhow::Error> {
        let mut errors = Vec::new();
        while let Some(ns) = self.namespaces.pop() {
            if let Err(e) = run("ip", &["netns", "del", &ns.name]) {
                errors.push(e);
            }
        }
        errors
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for e in self.teardown() {
            eprintln!("lab teardown: {e:#}");
        }
    }
}

/// A namespace with one bridge; each plugged host gets a veth pair.
pub struct Switch {
    ns: Netns,
}

/// Both ends of a host's veth pair.
#[derive(Clone, Debug)]
pub struct Port {
    /// The end inside the host namespace.
    pub host_if: String,
    /// The end enslaved to the bridge, in the switch namespace.
    pub bridge_if: String,
}

impl Switch {
    pub const BRIDGE: &'static str = "br0";

    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    /// Connects `host` to the bridge: `host_if` in the host (up, with
    /// `cidr`), and `p-<host short name>` on the bridge. The pair is created
    /// inside the namespaces, so no name ever appears in the caller's one.
    ///
    /// The host end computes its own checksums, as a real NIC puts complete
    /// ones on the wire: with veth's default TX checksum offload, packets
    /// carry only a partial checksum plus skb metadata saying so, and that
    /// metadata is lost when native XDP turns the packet into a frame and
    /// XDP_TXes it, so the receiver drops it as corrupt.
    pub fn plug(&self, host: &Netns, host_if: &str, cidr: &str) -> Result<Port> {
        let short = host.name.rsplit('-').next().unwrap_or(&host.name);
        let bridge_if = format!("p-{short}");
        if bridge_if.len() > 15 {
            bail!("interface name {bridge_if} is longer than 15 characters");
        }
        self.ns.ip(&[
            "link", "add", &bridge_if, "type", "veth", "peer", "name", host_if, "netns", &host.name,
        ])?;
        self.ns
            .ip(&["link", "set", &bridge_if, "master", Self::BRIDGE, "up"])?;
        host.run(|| disable_tx_checksum_offload(host_if))?;
        host.ip(&["link", "set", host_if, "up"])?;
        host.add_addr(host_if, cidr)?;
        Ok(Port {
            host_if: host_if.to_string(),
            bridge_if,
        })
    }
}

/// Turns off TX checksum offload of `iface` in the calling thread's
/// namespace (`ethtool -K IFACE tx off`, through the ethtool ioctl).
pub fn disable_tx_checksum_offload(iface: &str) -> Result<()> {
    /// `struct ethtool_value` of linux/ethtool.h.
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    const ETHTOOL_STXCSUM: u32 = 0x17;

    let name = std::ffi::CString::new(iface)?;
    if name.as_bytes().len() >= libc::IFNAMSIZ {
        bail!("interface name {iface} is too long");
    }
    let mut value = EthtoolValue {
        cmd: ETHTOOL_STXCSUM,
        data: 0,
    };
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    req.ifr_ifru.ifru_data = (&mut value as *mut EthtoolValue).cast();
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        bail!("socket: {}", std::io::Error::last_os_error());
    }
    let rc = unsafe { libc::ioctl(sock, libc::SIOCETHTOOL, &mut req) };
    let err = std::io::Error::last_os_error();
    unsafe { libc::close(sock) };
    if rc < 0 {
        bail!("disabling TX checksum offload on {iface}: {err}");
    }
    Ok(())
}

/// Makes `ns` an LVS-DR real server for `vip`, as realserver.sh scripts
/// do: the VIP as a /32 on `lo`, and ARP restricted so that only the director
/// answers for it (arp_ignore=1: reply only for addresses of the receiving
/// interface; arp_announce=2: never use the VIP as the source of our ARP).
pub fn configure_dr_real(ns: &Netns, vip: &str) -> Result<()> {
    for scope in ["lo", "all"] {
        ns.sysctl(&format!("net.ipv4.conf.{scope}.arp_ignore"), "1")?;
        ns.sysctl(&format!("net.ipv4.conf.{scope}.arp_announce"), "2")?;
    }
    ns.add_addr("lo", &format!("{vip}/32"))
}

/// Attaches the do-nothing `xvs_pass` XDP program (native mode) to `iface`
/// in `ns`. A veth only delivers native XDP_TX frames when its peer has an
/// XDP program too, so the peer of every interface that XDP_TXes needs this.
/// Dropping the returned object detaches it.
pub fn attach_xdp_pass(ns: &Netns, iface: &str) -> Result<aya::Ebpf> {
    ns.run(|| {
        let mut ebpf = aya::Ebpf::load(xvs::objects::BASELINE)?;
        let prog: &mut aya::programs::Xdp = ebpf
            .program_mut("xvs_pass")
            .ok_or_else(|| anyhow!("xvs_pass missing from the baseline object"))?
            .try_into()?;
        prog.load()?;
        prog.attach(iface, aya::programs::XdpMode::Driver)
            .with_context(|| format!("attaching xvs_pass to {iface} in {}", ns.name))?;
        Ok(ebpf)
    })
}

/// Binds a TCP listener on `addr` inside `ns`, on a thread of its own, and
/// runs `serve` on it there. Returns once the socket is bound, with its fd
/// (for waking `accept` at stop time) and the thread.
fn spawn_tcp_server(
    ns: &Netns,
    addr: SocketAddr,
    serve: impl FnOnce(TcpListener) -> Result<()> + Send + 'static,
) -> Result<(RawFd, JoinHandle<Result<()>>)> {
    let (bound_tx, bound_rx) = mpsc::channel();
    let thread = spawn_in_netns(&ns.name, move || {
        let listener = match TcpListener::bind(addr) {
            Ok(l) => l,
            Err(e) => {
                let _ = bound_tx.send(Err(e));
                return Ok(());
            }
        };
        let _ = bound_tx.send(Ok(listener.as_raw_fd()));
        serve(listener)
    });
    let listener_fd = bound_rx
        .recv_timeout(Duration::from_secs(5))
        .context("server thread did not start")?
        .with_context(|| format!("binding {addr} in {}", ns.name))?;
    Ok((listener_fd, thread))
}

/// A TCP server in a namespace that answers every connection with a fixed
/// reply and then closes it. Dropping it stops the server.
pub struct TcpResponder {
    listener_fd: RawFd,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl TcpResponder {
    /// Listens on `addr` inside `ns`; returns once the socket is bound.
    pub fn start(ns: &Netns, addr: SocketAddr, reply: &str) -> Result<TcpResponder> {
        let stop = Arc::new(AtomicBool::new(false));
        let (reply, stopping) = (reply.as_bytes().to_vec(), stop.clone());
        let (listener_fd, thread) = spawn_tcp_server(ns, addr, move |listener| {
            serve(&listener, &reply, &stopping)
        })?;
        Ok(TcpResponder {
            listener_fd,
            stop,
            thread: Some(thread),
        })
    }
}

fn serve(listener: &TcpListener, reply: &[u8], stop: &AtomicBool) -> Result<()> {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        // One failed client must not take the server down.
        if let Ok(mut stream) = conn {
            let _ = stream.write_all(reply);
            let _ = stream.shutdown(Shutdown::Write);
        }
    }
    Ok(())
}

impl Drop for TcpResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // On Linux, shutting down a listening socket wakes a blocked accept().
        unsafe { libc::shutdown(self.listener_fd, libc::SHUT_RDWR) };
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Connects to `addr` and reads until the server closes, with `timeout` on
/// connect and on each read. Call it from inside the client's namespace.
pub fn fetch_reply(addr: SocketAddr, timeout: Duration) -> Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .with_context(|| format!("reading from {addr}"))?;
    Ok(reply)
}

/// A TCP server in a namespace that answers every line a client sends with
/// a fixed reply, for as long as the client keeps the connection open. A
/// held-open connection can so be probed again later (e.g. after a reload)
/// to prove its flow still reaches the same server. Each connection gets
/// its own thread; dropping the responder closes them all and stops it.
pub struct LineResponder {
    listener_fd: RawFd,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<()>>>,
}

/// The open connections of a [`LineResponder`] and their threads.
type Connections = Arc<std::sync::Mutex<Vec<(TcpStream, JoinHandle<()>)>>>;

impl LineResponder {
    /// Listens on `addr` inside `ns`; returns once the socket is bound.
    pub fn start(ns: &Netns, addr: SocketAddr, reply: &str) -> Result<LineResponder> {
        let stop = Arc::new(AtomicBool::new(false));
        let (reply, stopping) = (reply.as_bytes().to_vec(), stop.clone());
        let (listener_fd, thread) = spawn_tcp_server(ns, addr, move |listener| {
            let connections = Connections::default();
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = conn else { continue };
                let Ok(handle) = stream.try_clone() else {
                    continue;
                };
                let reply = reply.clone();
                let thread = std::thread::spawn(move || answer_lines(stream, &reply));
                connections.lock().unwrap().push((handle, thread));
            }
            // Wake every connection thread blocked in read, then wait for it.
            for (stream, thread) in connections.lock().unwrap().drain(..) {
                let _ = stream.shutdown(Shutdown::Both);
                let _ = thread.join();
            }
            Ok(())
        })?;
        Ok(LineResponder {
            listener_fd,
            stop,
            thread: Some(thread),
        })
    }
}

/// Writes `reply` for every `\n`-terminated line read, until EOF or error.
fn answer_lines(stream: TcpStream, reply: &[u8]) {
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = std::io::BufReader::new(stream);
    let mut line = Vec::new();
    while let Ok(n) = std::io::BufRead::read_until(&mut reader, b'\n', &mut line) {
        if n == 0 || writer.write_all(reply).is_err() {
            break;
        }
        line.clear();
    }
}

impl Drop for LineResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // On Linux, shutting down a listening socket wakes a blocked accept().
        unsafe { libc::shutdown(self.listener_fd, libc::SHUT_RDWR) };
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sends `line` on `stream` and reads one line back (without its `\n`).
pub fn exchange_line(stream: &mut TcpStream, line: &str) -> Result<String> {
    stream.write_all(line.as_bytes())?;
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte, so nothing past the reply is consumed from the stream.
    loop {
        match stream.read(&mut byte)? {
            0 => bail!("connection closed after {} bytes", reply.len()),
            _ if byte[0] == b'\n' => break,
            _ => reply.push(byte[0]),
        }
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// A UDP server in a namespace that answers every datagram with a fixed
/// reply, sent from the address it is bound to. Bind it to the VIP on a DR
/// real server: replies must come from the VIP, which a socket bound to
/// 0.0.0.0 would not guarantee. Dropping it stops the server.
pub struct UdpResponder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl UdpResponder {
    /// How often the server looks at its stop flag.
    const POLL: Duration = Duration::from_millis(100);

    /// Binds `addr` inside `ns`; returns once the socket is bound.
    pub fn start(ns: &Netns, addr: SocketAddr, reply: &str) -> Result<UdpResponder> {
        let (bound_tx, bound_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let (reply, stopping) = (reply.as_bytes().to_vec(), stop.clone());
        let thread = spawn_in_netns(&ns.name, move || {
            let socket = match std::net::UdpSocket::bind(addr)
                .and_then(|s| s.set_read_timeout(Some(Self::POLL)).map(|()| s))
            {
                Ok(s) => s,
                Err(e) => {
                    let _ = bound_tx.send(Err(e));
                    return Ok(());
                }
            };
            let _ = bound_tx.send(Ok(()));
            let mut buf = [0u8; 2048];
            while !stopping.load(Ordering::SeqCst) {
                // Timeouts just bring the loop back to the stop flag.
                if let Ok((_, peer)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(&reply, peer);
                }
            }
            Ok(())
        });
        bound_rx
            .recv_timeout(Duration::from_secs(5))
            .context("UDP responder thread did not start")?
            .with_context(|| format!("binding UDP {addr} in {}", ns.name))?;
        Ok(UdpResponder {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for UdpResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A minimal HTTP/1.0 server in a namespace: every request (read up to its
/// blank line) gets the current status and a fixed body, then the
/// connection is closed. The status can be changed while it runs, e.g. to
/// make a health check fail. Dropping it stops the server.
pub struct HttpResponder {
    listener_fd: RawFd,
    stop: Arc<AtomicBool>,
    status: Arc<std::sync::atomic::AtomicU16>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl HttpResponder {
    /// How long one client may take to send its request.
    const READ_TIMEOUT: Duration = Duration::from_secs(2);

    /// Listens on `addr` inside `ns`; returns once the socket is bound.
    pub fn start(ns: &Netns, addr: SocketAddr, status: u16, body: &str) -> Result<HttpResponder> {
        let stop = Arc::new(AtomicBool::new(false));
        let status = Arc::new(std::sync::atomic::AtomicU16::new(status));
        let (body, stopping, current) = (body.as_bytes().to_vec(), stop.clone(), status.clone());
        let (listener_fd, thread) = spawn_tcp_server(ns, addr, move |listener| {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = conn {
                    // One failed client must not take the server down.
                    let _ = answer_http(stream, current.load(Ordering::SeqCst), &body);
                }
            }
            Ok(())
        })?;
        Ok(HttpResponder {
            listener_fd,
            stop,
            status,
            thread: Some(thread),
        })
    }

    /// The status code of the answers from now on.
    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }
}

/// Reads the request head, answers `status` with `body`, closes.
fn answer_http(mut stream: TcpStream, status: u16, body: &[u8]) -> std::io::Result<()> {
    stream.set_read_timeout(Some(HttpResponder::READ_TIMEOUT))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf)? {
            0 => break,
            n => head.extend_from_slice(&buf[..n]),
        }
    }
    let reason = if status == 200 { "OK" } else { "Status" };
    let header = format!(
        "HTTP/1.0 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes())?;
    stream.write_all(body)?;
    stream.shutdown(Shutdown::Write)
}

impl Drop for HttpResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // On Linux, shutting down a listening socket wakes a blocked accept().
        unsafe { libc::shutdown(self.listener_fd, libc::SHUT_RDWR) };
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
