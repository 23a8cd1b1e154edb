//! The health probes against real listeners on loopback, started by each
//! test: TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK, UDP_CHECK, PING_CHECK.
//! Checkers are built from keepalived.conf text, as the daemon builds them.
//! Every test is bounded in time.

use std::{
    collections::HashMap,
    future::Future,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use md5::{Digest, Md5};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, UdpSocket},
};
use xvs::{
    config::{model::CheckerKind, parse_str, LoadOptions},
    health::{checkers::build, Checker, Outcome},
};

const LIMIT: Duration = Duration::from_secs(30);

/// Runs a test body with an upper bound on its time.
async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test took too long")
}

/// The config text for one real server at `real`:`port` with the given
/// checker block (and global_defs lines).
fn config_text(global: &str, real: IpAddr, port: u16, checker: &str) -> String {
    let vip = if real.is_ipv4() {
        "192.0.2.100"
    } else {
        "2001:db8::100"
    };
    format!(
        "global_defs {{\n{global}\n}}\n\
         virtual_server {vip} {port} {{\n  delay_loop 3\n  lvs_sched rr\n  lvs_method DR\n  protocol TCP\n\
           real_server {real} {port} {{\n    weight 7\n    {checker}\n  }}\n}}\n"
    )
}

/// Builds the checkers of a real server, or the first build error.
fn try_build(
    global: &str,
    real: IpAddr,
    port: u16,
    checker: &str,
) -> anyhow::Result<Box<dyn Checker>> {
    let text = config_text(global, real, port, checker);
    let (cfg, diags) = parse_str("health.conf", &text, &LoadOptions::default());
    let cfg = cfg.unwrap_or_else(|| panic!("config rejected: {diags:?}\n{text}"));
    let vs = &cfg.virtual_servers[0];
    let rs = &vs.real_servers[0];
    build(&cfg, vs, rs, &rs.checkers[0])
}

fn checker(real: IpAddr, port: u16, block: &str) -> Box<dyn Checker> {
    try_build("", real, port, block).expect("checker builds")
}

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const LO6: IpAddr = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);

fn assert_up(o: &Outcome) {
    assert!(o.up, "expected up, got {o:?}");
}

fn assert_down(o: &Outcome, reason: &str) {
    assert!(!o.up, "expected down, got {o:?}");
    assert!(
        o.reason.contains(reason),
        "reason {:?} lacks {reason:?}",
        o.reason
    );
}

/// A port nothing listens on (bound, then released).
fn closed_port(ip: IpAddr) -> u16 {
    let l = std::net::TcpListener::bind((ip, 0)).unwrap();
    l.local_addr().unwrap().port()
}

// ---------------------------------------------------------------- TCP

#[tokio::test]
async fn tcp_up_when_listening_down_when_refused() {
    bounded(async {
        let listener = TcpListener::bind((LO, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = checker(LO, port, "TCP_CHECK { connect_timeout 2 }");
        assert_eq!(up.describe(), format!("TCP_CHECK 127.0.0.1:{port}"));
        assert_up(&up.check().await);

        let down = checker(LO, closed_port(LO), "TCP_CHECK { connect_timeout 2 }");
        assert_down(&down.check().await, "connection refused");
    })
    .await
}

#[tokio::test]
async fn tcp_ipv6() {
    bounded(async {
        let listener = TcpListener::bind((LO6, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_up(&checker(LO6, port, "TCP_CHECK { }").check().await);
    })
    .await
}

#[tokio::test]
async fn tcp_honours_bindto_and_bind_port() {
    bounded(async {
        let listener = TcpListener::bind((LO, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let src_port = closed_port(LO);
        let c = checker(
            LO,
            port,
            &format!("TCP_CHECK {{ bindto 127.0.0.2\n bind_port {src_port} }}"),
        );
        let (outcome, accepted) = tokio::join!(c.check(), listener.accept());
        assert_up(&outcome);
        let peer = accepted.unwrap().1;
        assert_eq!(peer, SocketAddr::from(([127, 0, 0, 2], src_port)));
    })
    .await
}

/// A listener whose accept queue is full drops new SYNs: the connect
/// neither succeeds nor is refused, so connect_timeout decides.
#[tokio::test]
async fn tcp_connect_timeout() {
    bounded(async {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.bind(&SocketAddr::from((LO, 0)).into()).unwrap();
        sock.listen(0).unwrap();
        let addr = sock.local_addr().unwrap().as_socket().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..8 {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(s) => fillers.push(s),
                Err(_) => break,
            }
        }
        let c = checker(LO, addr.port(), "TCP_CHECK { connect_timeout 0.3 }");
        let start = Instant::now();
        let o = c.check().await;
        assert_down(&o, "timeout");
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(280) && took < Duration::from_secs(2),
            "{took:?}"
        );
    })
    .await
}

// ---------------------------------------------------------------- HTTP

/// What a test web server answers for a path: status and body.
type Routes = HashMap<&'static str, (u16, Vec<u8>)>;

/// A small HTTP/1.0 server: answers from `routes` (404 otherwise), closes
/// each connection, and keeps every request it got.
struct WebServer {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    /// The SNI of each TLS connection (SSL_GET).
    sni: Arc<Mutex<Vec<Option<String>>>>,
}

impl WebServer {
    async fn start(
        ip: IpAddr,
        routes: Routes,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> WebServer {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let sni = Arc::new(Mutex::new(Vec::new()));
        let routes = Arc::new(routes);
        let (reqs, snis) = (requests.clone(), sni.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (routes, reqs, snis, tls) =
                    (routes.clone(), reqs.clone(), snis.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        None => serve(tcp, &routes, &reqs).await,
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(tcp).await else {
                                return;
                            };
                            snis.lock()
                                .unwrap()
                                .push(stream.get_ref().1.server_name().map(str::to_owned));
                            serve(stream, &routes, &reqs).await
                        }
                    }
                });
            }
        });
        WebServer {
            port,
            requests,
            sni,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    routes: &Routes,
    reqs: &Mutex<Vec<String>>,
) {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&req).into_owned();
    let path = text.split(' ').nth(1).unwrap_or("").to_owned();
    reqs.lock().unwrap().push(text);
    let (status, body) = routes
        .get(path.as_str())
        .cloned()
        .unwrap_or((404, b"nope".to_vec()));
    let head = format!(
        "HTTP/1.0 {status} X\r\nContent-Length: {}\r\nServer: test\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes()).await;
    let _ = s.write_all(&body).await;
    let _ = s.shutdown().await;
}

fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn routes(list: &[(&'static str, u16, &[u8])]) -> Routes {
    list.iter().map(|&(p, s, b)| (p, (s, b.to_vec()))).collect()
}

#[tokio::test]
async fn http_status_codes() {
    bounded(async {
        let web = WebServer::start(
            LO,
            routes(&[
                ("/ok", 200, b"fine"),
                ("/busy", 503, b"busy"),
                ("/moved", 302, b""),
            ]),
            None,
        )
        .await;
        let get = |url: &str| {
            checker(
                LO,
                web.port,
                &format!("HTTP_GET {{ url {{ {url} }}\n connect_timeout 2 }}"),
            )
        };
        assert_up(&get("path /ok").check().await);
        assert_down(
            &get("path /busy").check().await,
            "HTTP status 503 (expected 200-299)",
        );
        assert_down(&get("path /moved").check().await, "HTTP status 302");
        assert_up(&get("path /moved\n status_code 200 300-399").check().await);
        assert_down(
            &get("path /ok\n status_code 201").check().await,
            "HTTP status 200 (expected 201)",
        );
        let o = get("path /busy").check().await;
        assert!(o.reason.contains("/busy"), "{o:?}");
    })
    .await
}

#[tokio::test]
async fn http_digest() {
    bounded(async {
        let page = b"<html>hello keepalived</html>\n".repeat(500);
        let web = WebServer::start(LO, routes(&[("/page", 200, &page)]), None).await;
        let good = md5_hex(&page);
        let bad = md5_hex(b"something else");
        let get = |d: &str| {
            checker(
                LO,
                web.port,
                &format!("HTTP_GET {{ url {{ path /page\n digest {d} }} }}"),
            )
        };
        assert_up(&get(&good).check().await);
        assert_up(&get(&good.to_uppercase()).check().await);
        assert_down(&get(&bad).check().await, "digest mismatch");
    })
    .await
}

#[tokio::test]
async fn http_every_url_must_pass() {
    bounded(async {
        let web = WebServer::start(
            LO,
            routes(&[("/a", 200, b"a"), ("/b", 200, b"b"), ("/c", 500, b"c")]),
            None,
        )
        .await;
        let two = checker(
            LO,
            web.port,
            "HTTP_GET { url { path /a }\n url { path /b } }",
        );
        let o = two.check().await;
        assert_up(&o);
        assert_eq!(o.reason, "2 urls ok");
        let three = checker(
            LO,
            web.port,
            "HTTP_GET { url { path /a }\n url { path /c }\n url { path /b } }",
        );
        assert_down(&three.check().await, "url /c: HTTP status 500");
    })
    .await
}

#[tokio::test]
async fn http_request_and_virtualhost() {
    bounded(async {
        let web = WebServer::start(LO, routes(&[("/", 200, b"x")]), None).await;
        let port = web.port;
        // No virtualhost: the connect address and port, HTTP/1.0 without Connection.
        assert_up(&checker(LO, port, "HTTP_GET { url { path / } }").check().await);
        // The checker's virtualhost, HTTP/1.1 with Connection: close.
        let c = checker(LO, port, "HTTP_GET { virtualhost www.example.org\n http_protocol 1.1\n url { path / } }");
        assert_up(&c.check().await);
        // The url's virtualhost wins.
        let c = checker(LO, port, "HTTP_GET { virtualhost www.example.org\n url { path /\n virtualhost api.example.org } }");
        assert_up(&c.check().await);
        let reqs = web.requests();
        assert_eq!(
            reqs[0],
            format!("GET / HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: 127.0.0.1:{port}\r\n\r\n")
        );
        assert_eq!(
            reqs[1],
            "GET / HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: www.example.org\r\n\r\n"
        );
        assert!(reqs[2].contains("\r\nHost: api.example.org\r\n"), "{}", reqs[2]);
    })
    .await
}

#[tokio::test]
async fn http_ipv6_host_is_bracketed() {
    bounded(async {
        let web = WebServer::start(LO6, routes(&[("/", 200, b"x")]), None).await;
        assert_up(
            &checker(LO6, web.port, "HTTP_GET { url { path / } }")
                .check()
                .await,
        );
        assert!(web.requests()[0].contains(&format!("Host: [::1]:{}\r\n", web.port)));
    })
    .await
}

#[tokio::test]
async fn http_refused_and_silent_server() {
    bounded(async {
        let c = checker(LO, closed_port(LO), "HTTP_GET { url { path / } }");
        assert_down(&c.check().await, "connection refused");
        // Accepts, never answers: the read times out.
        let listener = TcpListener::bind((LO, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let c = checker(
            LO,
            port,
            "HTTP_GET { url { path / }\n connect_timeout 0.3 }",
        );
        assert_down(&c.check().await, "timeout");
        hold.abort();
    })
    .await
}

#[test]
fn regex_is_refused() {
    let e = try_build("", LO, 80, "HTTP_GET { url { path /\n regex \"ok\" } }")
        .err()
        .expect("regex is refused");
    assert!(e.to_string().contains("regex is not supported yet"), "{e}");
}

// ---------------------------------------------------------------- SSL

fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let ck = rcgen::generate_simple_self_signed(vec!["self-signed.invalid".to_owned()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

#[tokio::test]
async fn ssl_get_ignores_the_certificate() {
    bounded(async {
        let page = b"secure page".to_vec();
        let web = WebServer::start(
            LO,
            routes(&[("/s", 200, &page), ("/e", 500, b"")]),
            Some(tls_acceptor()),
        )
        .await;
        let c = checker(
            LO,
            web.port,
            &format!(
                "SSL_GET {{ url {{ path /s\n digest {} }} }}",
                md5_hex(&page)
            ),
        );
        assert_eq!(c.describe(), format!("SSL_GET 127.0.0.1:{}", web.port));
        assert_up(&c.check().await);
        assert_down(
            &checker(LO, web.port, "SSL_GET { url { path /e } }")
                .check()
                .await,
            "HTTP status 500",
        );
        // Plain HTTP to a TLS port fails.
        assert!(
            !checker(
                LO,
                web.port,
                "HTTP_GET { url { path /s }\n connect_timeout 1 }"
            )
            .check()
            .await
            .up
        );
        // No SNI unless enable_sni.
        assert_eq!(web.sni.lock().unwrap()[0], None);
    })
    .await
}

#[tokio::test]
async fn ssl_get_sends_sni_when_enabled() {
    bounded(async {
        let web = WebServer::start(LO, routes(&[("/", 200, b"x")]), Some(tls_acceptor())).await;
        let c = checker(
            LO,
            web.port,
            "SSL_GET { virtualhost www.example.org\n enable_sni\n url { path / } }",
        );
        assert_up(&c.check().await);
        let c = checker(
            LO,
            web.port,
            "SSL_GET { virtualhost www.example.org\n url { path / } }",
        );
        assert_up(&c.check().await);
        assert_eq!(
            *web.sni.lock().unwrap(),
            [Some("www.example.org".to_owned()), None]
        );
        assert!(web.requests()[0].contains("Host: www.example.org\r\n"));
    })
    .await
}

#[tokio::test]
async fn ssl_get_to_a_plain_server_fails() {
    bounded(async {
        let web = WebServer::start(LO, routes(&[("/", 200, b"x")]), None).await;
        let c = checker(
            LO,
            web.port,
            "SSL_GET { url { path / }\n connect_timeout 1 }",
        );
        assert_down(&c.check().await, "TLS");
    })
    .await
}

// ---------------------------------------------------------------- MISC

static SCRIPTS: AtomicUsize = AtomicUsize::new(0);

/// An executable shell script in a fresh private directory, removed with
/// its directory when dropped.
struct TempScript(PathBuf);

impl std::ops::Deref for TempScript {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempScript {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn script(body: &str) -> TempScript {
    use std::os::unix::fs::PermissionsExt;
    let n = SCRIPTS.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("xvs-health-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.join("check.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    TempScript(path)
}

fn misc(path: &str, extra: &str) -> Box<dyn Checker> {
    checker(
        LO,
        80,
        &format!("MISC_CHECK {{ misc_path \"{path}\"\n {extra} }}"),
    )
}

#[tokio::test]
async fn misc_exit_codes() {
    bounded(async {
        let s = script("exit $1");
        let p = s.display();
        let o = misc(&format!("{p} 0"), "").check().await;
        assert_up(&o);
        assert_eq!(o.weight, None);
        assert_down(&misc(&format!("{p} 1"), "").check().await, "exit status 1");
        // Without misc_dynamic, 2..255 are failures too.
        assert_down(&misc(&format!("{p} 5"), "").check().await, "exit status 5");
        // Words split as keepalived does: quotes group.
        let s2 = script("[ \"$1\" = 'a b' ] && exit 0; exit 1");
        assert_up(&misc(&format!("{} 'a b'", s2.display()), "").check().await);
        // A file without #! runs through /bin/sh, as keepalived's system().
        let bare = script("");
        std::fs::write(&*bare, "exit 3\n").unwrap();
        assert_down(
            &misc(&bare.display().to_string(), "").check().await,
            "exit status 3",
        );
        // A leading redirection is a shell file test.
        assert_up(&misc("</dev/null", "").check().await);
        assert_down(&misc("</nonexistent/xvs", "").check().await, "exit status");
        // Missing scripts are refused when the checker is built.
        let e = try_build(
            "",
            LO,
            80,
            "MISC_CHECK { misc_path /nonexistent/xvs-check }",
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("/nonexistent/xvs-check"), "{e}");
    })
    .await
}

#[tokio::test]
async fn misc_dynamic_sets_the_weight() {
    bounded(async {
        let s = script("exit $1");
        let p = s.display();
        let o = misc(&format!("{p} 5"), "misc_dynamic").check().await;
        assert_up(&o);
        assert_eq!(o.weight, Some(3));
        let o = misc(&format!("{p} 255"), "misc_dynamic").check().await;
        assert_eq!((o.up, o.weight), (true, Some(253)));
        let o = misc(&format!("{p} 2"), "misc_dynamic").check().await;
        assert_eq!((o.up, o.weight), (true, Some(0)));
        // Exit 0 restores the configured weight (7).
        let o = misc(&format!("{p} 0"), "misc_dynamic").check().await;
        assert_eq!((o.up, o.weight), (true, Some(7)));
        let o = misc(&format!("{p} 1"), "misc_dynamic").check().await;
        assert_eq!((o.up, o.weight), (false, None));
    })
    .await
}

fn alive(pid: i32) -> bool {
    // A zombie is dead for our purpose.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

#[tokio::test]
async fn misc_timeout_kills_the_process_group() {
    bounded(async {
        let holder = script("");
        let pidfile = holder.parent().unwrap().join("child.pid");
        let s = script(&format!(
            "sleep 60 &\necho $! > {}\nwait",
            pidfile.display()
        ));
        let c = misc(&s.display().to_string(), "misc_timeout 1");
        let start = Instant::now();
        let o = c.check().await;
        let took = start.elapsed();
        assert_down(&o, "timed out");
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(5),
            "{took:?}"
        );
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        while alive(pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!alive(pid), "the script's child {pid} survived");
    })
    .await
}

#[tokio::test]
async fn misc_runs_as_the_script_user() {
    bounded(async {
        let s = script("[ \"$(id -u)\" = \"$1\" ]");
        let p = s.display();
        let nobody = "script_user nobody";
        let as_nobody = try_build(
            nobody,
            LO,
            80,
            &format!("MISC_CHECK {{ misc_path \"{p} 65534\" }}"),
        )
        .unwrap();
        assert_up(&as_nobody.check().await);
        // The checker's own user overrides script_user.
        let as_root = try_build(
            nobody,
            LO,
            80,
            &format!("MISC_CHECK {{ misc_path \"{p} 0\"\n user root }}"),
        )
        .unwrap();
        assert_up(&as_root.check().await);
        let e = try_build(
            "",
            LO,
            80,
            &format!("MISC_CHECK {{ misc_path {p}\n user no-such-user-xvs }}"),
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("no-such-user-xvs"), "{e}");
    })
    .await
}

#[test]
fn misc_script_security() {
    use std::os::unix::fs::PermissionsExt;
    let s = script("exit 0");
    let dir = s.parent().unwrap();
    let block = format!("MISC_CHECK {{ misc_path {} }}", s.display());
    let secure = "enable_script_security\nscript_user root";
    assert!(try_build(secure, LO, 80, &block).is_ok());
    // A directory anyone may write to lets anyone replace the script.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = try_build(secure, LO, 80, &block)
        .err()
        .expect("insecure script refused");
    assert!(e.to_string().contains("unsafe permissions"), "{e}");
    // Without enable_script_security it is only a warning.
    assert!(try_build("script_user root", LO, 80, &block).is_ok());
}

// ---------------------------------------------------------------- UDP

/// A UDP server that answers each datagram with `reply` (or the datagram
/// itself when None); it keeps what it received.
async fn udp_server(ip: IpAddr, reply: Option<Vec<u8>>) -> (u16, Arc<Mutex<Vec<Vec<u8>>>>) {
    let sock = UdpSocket::bind((ip, 0)).await.unwrap();
    let port = sock.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            seen.lock().unwrap().push(buf[..n].to_vec());
            let answer = reply.clone().unwrap_or_else(|| buf[..n].to_vec());
            let _ = sock.send_to(&answer, from).await;
        }
    });
    (port, got)
}

fn udp_closed_port(ip: IpAddr) -> u16 {
    let s = std::net::UdpSocket::bind((ip, 0)).unwrap();
    s.local_addr().unwrap().port()
}

#[tokio::test]
async fn udp_closed_port_is_down_by_icmp() {
    bounded(async {
        for ip in [LO, LO6] {
            let c = checker(ip, udp_closed_port(ip), "UDP_CHECK { connect_timeout 2 }");
            let start = Instant::now();
            assert_down(&c.check().await, "connection refused");
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "the ICMP error ends the check early"
            );
        }
    })
    .await
}

#[tokio::test]
async fn udp_without_require_reply_silence_is_up() {
    bounded(async {
        // Bound but never reading: no ICMP error, no reply.
        let sock = std::net::UdpSocket::bind((LO, 0)).unwrap();
        let port = sock.local_addr().unwrap().port();
        let c = checker(LO, port, "UDP_CHECK { connect_timeout 0.3 }");
        assert_up(&c.check().await);
        let c = checker(
            LO,
            port,
            "UDP_CHECK { connect_timeout 0.3\n require_reply }",
        );
        assert_down(&c.check().await, "no reply");
    })
    .await
}

#[tokio::test]
async fn udp_echo_with_require_reply() {
    bounded(async {
        let (port, got) = udp_server(LO, None).await;
        let c = checker(
            LO,
            port,
            "UDP_CHECK { payload 68656c6c6f\n require_reply 68656c6c6f }",
        );
        assert_up(&c.check().await);
        assert_eq!(got.lock().unwrap()[0], b"hello");
        // keepalived's default payload: its 32-byte filler.
        assert_up(
            &checker(LO, port, "UDP_CHECK { require_reply }")
                .check()
                .await,
        );
        assert_eq!(got.lock().unwrap()[1], b"keepalived check - keepalived ch");
        // A different reply is down; X nibbles do not count.
        let c = checker(
            LO,
            port,
            "UDP_CHECK { payload 68656c6c6f\n require_reply 68656c6c70 }",
        );
        assert_down(&c.check().await, "reply mismatch");
        let c = checker(
            LO,
            port,
            "UDP_CHECK { payload 68656c6c6f\n require_reply 68656cXXXX }",
        );
        assert_up(&c.check().await);
        // Length limits apply with reply bytes.
        let c = checker(
            LO,
            port,
            "UDP_CHECK { payload 68656c6c6f\n require_reply 68\n max_reply_length 4 }",
        );
        assert_down(&c.check().await, "reply length 5");
        let c = checker(
            LO,
            port,
            "UDP_CHECK { payload 68656c6c6f\n require_reply 68\n min_reply_length 6 }",
        );
        assert_down(&c.check().await, "reply length 5");
    })
    .await
}

#[tokio::test]
async fn udp_wrong_fixed_reply_is_down() {
    bounded(async {
        let (port, _) = udp_server(LO6, Some(b"NOPE".to_vec())).await;
        let c = checker(
            LO6,
            port,
            "UDP_CHECK { payload 01020304\n require_reply 4f4b }",
        );
        assert_down(&c.check().await, "reply mismatch");
    })
    .await
}

// ---------------------------------------------------------------- PING

#[tokio::test]
async fn ping_loopback() {
    bounded(async {
        for ip in [LO, LO6] {
            let c = checker(ip, 80, "PING_CHECK { connect_timeout 2 }");
            assert_eq!(c.describe(), format!("PING_CHECK {ip}"));
            let o = c.check().await;
            assert_up(&o);
        }
        // Many at once: each gets its own reply.
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let c = checker(LO, 80, "PING_CHECK { }");
            set.spawn(async move { c.check().await });
        }
        while let Some(o) = set.join_next().await {
            assert_up(&o.unwrap());
        }
    })
    .await
}

// ---------------------------------------------------------------- others

#[test]
fn unsupported_checkers_are_refused() {
    let text = config_text("", LO, 80, "TCP_CHECK { }");
    let (cfg, _) = parse_str("t.conf", &text, &LoadOptions::default());
    let cfg = cfg.unwrap();
    let vs = &cfg.virtual_servers[0];
    let rs = &vs.real_servers[0];
    let kinds = [
        CheckerKind::Dns(Default::default()),
        CheckerKind::Smtp(Default::default()),
        CheckerKind::Bfd(Default::default()),
        CheckerKind::File(Default::default()),
    ];
    for kind in kinds {
        let mut ck = rs.checkers[0].clone();
        let name = kind.name();
        ck.kind = kind;
        let e = build(&cfg, vs, rs, &ck).err().expect("refused");
        assert_eq!(e.to_string(), format!("{name} is not supported yet"));
    }
}
