//! HTTP_GET and SSL_GET, as keepalived's check_http.c / check_ssl.c: for
//! each url, one connection, `GET path HTTP/1.x`, then the response is
//! read to the end. The status code must be in the url's ranges (default
//! 200-299) and, with `digest`, the MD5 of the body must match (genhash's
//! value). Every url must pass. Each step (connect, handshake, send, each
//! read) is bounded by connect_timeout, as keepalived's threads are.

use std::{net::SocketAddr, time::Duration};

use md5::{Digest, Md5};
use rustls::pki_types::ServerName;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    time::timeout,
};
use tokio_rustls::TlsConnector;

use super::{
    socket::{self, secs, ConnOpts},
    tls::{self, TlsConfigs},
};
use crate::{
    config::model::{self, HttpProtocol},
    health::{BoxFuture, Checker, Outcome},
};

/// keepalived reads the header into a 4 KiB buffer; XVS allows more.
const MAX_HEADER: usize = 16 * 1024;

/// The virtual hosts inherited from the real and virtual server.
#[derive(Clone, Copy, Debug, Default)]
pub struct VirtualHosts<'a> {
    pub real_server: Option<&'a str>,
    pub virtual_server: Option<&'a str>,
}

pub struct HttpCheck {
    name: &'static str,
    conn: ConnOpts,
    urls: Vec<UrlCheck>,
}

struct UrlCheck {
    path: String,
    request: Vec<u8>,
    status_codes: Vec<(u16, u16)>,
    /// Lowercase hex.
    digest: Option<String>,
    tls: Option<TlsTarget>,
}

struct TlsTarget {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl HttpCheck {
    /// `tls` is Some for SSL_GET.
    pub fn new(
        h: &model::HttpCheck,
        vhosts: VirtualHosts<'_>,
        conn: ConnOpts,
        tls: Option<&TlsConfigs>,
    ) -> HttpCheck {
        let urls = h
            .urls
            .iter()
            .map(|u| UrlCheck {
                path: u.path.clone().unwrap_or_else(|| "/".into()),
                request: request(h, u, vhosts, conn.dst),
                status_codes: u.effective_status_codes(),
                digest: u.digest.as_ref().map(|d| d.to_ascii_lowercase()),
                tls: tls.map(|t| tls_target(t, h, u, vhosts, conn.dst)),
            })
            .collect();
        HttpCheck {
            name: if tls.is_some() { "SSL_GET" } else { "HTTP_GET" },
            conn,
            urls,
        }
    }

    async fn check_url(&self, url: &UrlCheck) -> Result<u16, String> {
        let tcp = socket::connect_tcp(&self.conn).await?;
        let t = self.conn.timeout;
        match &url.tls {
            None => exchange(tcp, url, t, false).await,
            Some(target) => {
                let handshake = target.connector.connect(target.name.clone(), tcp);
                let stream = timeout(t, handshake)
                    .await
                    .map_err(|_| format!("TLS handshake timeout ({})", secs(t)))?
                    .map_err(|e| format!("TLS handshake failed: {e}"))?;
                exchange(stream, url, t, true).await
            }
        }
    }
}

impl Checker for HttpCheck {
    fn describe(&self) -> String {
        format!("{} {}", self.name, self.conn.dst)
    }

    fn check(&self) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let mut last = 0;
            for url in &self.urls {
                match self.check_url(url).await {
                    Ok(status) => last = status,
                    Err(reason) => return Outcome::down(format!("url {}: {reason}", url.path)),
                }
            }
            match self.urls.len() {
                1 => Outcome::up(format!("HTTP status {last}")),
                n => Outcome::up(format!("{n} urls ok")),
            }
        })
    }
}

/// keepalived's request_template: `Connection: close` only for 1.0C and
/// 1.1; Host is the first virtualhost of url, checker, real server,
/// virtual server, else the connect address and port.
fn request(h: &model::HttpCheck, u: &model::Url, vh: VirtualHosts<'_>, dst: SocketAddr) -> Vec<u8> {
    let vhost = u
        .virtualhost
        .as_deref()
        .or(h.virtualhost.as_deref())
        .or(vh.real_server)
        .or(vh.virtual_server);
    // SocketAddr's Display brackets IPv6 literals, as RFC 2732 wants.
    let host = vhost.map_or_else(|| dst.to_string(), str::to_owned);
    let (minor, close) = match h.http_protocol {
        HttpProtocol::V1_0 => (0, ""),
        HttpProtocol::V1_0C => (0, "Connection: close\r\n"),
        HttpProtocol::V1_1 => (1, "Connection: close\r\n"),
    };
    let path = u.path.as_deref().unwrap_or("/");
    format!(
        "GET {path} HTTP/1.{minor}\r\nUser-Agent: KeepAliveClient\r\n{close}Host: {host}\r\n\r\n"
    )
    .into_bytes()
}

/// With enable_sni, keepalived sends the url's, the checker's or the
/// virtual server's virtualhost (not the real server's) as SNI.
fn tls_target(
    t: &TlsConfigs,
    h: &model::HttpCheck,
    u: &model::Url,
    vh: VirtualHosts<'_>,
    dst: SocketAddr,
) -> TlsTarget {
    let sni = h
        .enable_sni
        .then(|| {
            u.virtualhost
                .as_deref()
                .or(h.virtualhost.as_deref())
                .or(vh.virtual_server)
        })
        .flatten()
        .and_then(tls::sni_name);
    match sni {
        Some(name) => TlsTarget {
            connector: TlsConnector::from(t.sni.clone()),
            name,
        },
        None => TlsTarget {
            connector: TlsConnector::from(t.plain.clone()),
            name: ServerName::IpAddress(dst.ip().into()),
        },
    }
}

/// Sends the request and judges the whole response.
async fn exchange<S>(mut s: S, url: &UrlCheck, t: Duration, tls: bool) -> Result<u16, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let send = async {
        s.write_all(&url.request).await?;
        s.flush().await
    };
    timeout(t, send)
        .await
        .map_err(|_| format!("send timeout ({})", secs(t)))?
        .map_err(|e| format!("send failed: {}", socket::describe(&e)))?;
    let mut response = Response::new(url.digest.is_some());
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match timeout(t, s.read(&mut buf)).await {
            Err(_) => return Err(format!("read timeout ({})", secs(t))),
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => response.feed(&buf[..n])?,
            // keepalived ends an SSL stream on any error, close_notify or
            // not, and judges what it got (ssl_read_thread).
            Ok(Err(_)) if tls => break,
            Ok(Err(e)) => return Err(format!("read error: {}", socket::describe(&e))),
        }
    }
    response.judge(url)
}

/// A response read so far: the header, then the body's MD5.
struct Response {
    head: Vec<u8>,
    header_done: bool,
    content_length: Option<u64>,
    body_len: u64,
    md5: Option<Md5>,
}

impl Response {
    fn new(digest: bool) -> Response {
        Response {
            head: Vec::new(),
            header_done: false,
            content_length: None,
            body_len: 0,
            md5: digest.then(Md5::new),
        }
    }

    fn feed(&mut self, data: &[u8]) -> Result<(), String> {
        if self.header_done {
            self.body(data);
            return Ok(());
        }
        let from = self.head.len().saturating_sub(3);
        self.head.extend_from_slice(data);
        match find(&self.head[from..], b"\r\n\r\n") {
            Some(i) => {
                let rest = self.head.split_off(from + i + 4);
                self.header_done = true;
                self.content_length = content_length(&self.head);
                self.body(&rest);
                Ok(())
            }
            None if self.head.len() > MAX_HEADER => Err(format!(
                "no end of HTTP header in the first {MAX_HEADER} bytes"
            )),
            None => Ok(()),
        }
    }

    /// As genhash: the body up to Content-Length, when there is one.
    fn body(&mut self, data: &[u8]) {
        let room = match self.content_length {
            Some(len) => len.saturating_sub(self.body_len),
            None => u64::MAX,
        };
        let take = data.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        if let Some(md5) = &mut self.md5 {
            md5.update(&data[..take]);
        }
        self.body_len += data.len() as u64;
    }

    fn judge(self, url: &UrlCheck) -> Result<u16, String> {
        if !self.header_done {
            return Err(if self.head.is_empty() {
                "no data received".into()
            } else {
                "incomplete HTTP header".into()
            });
        }
        let expected = ranges(&url.status_codes);
        let Some(status) = status_code(&self.head) else {
            return Err(format!("invalid HTTP status line (expected {expected})"));
        };
        if !url
            .status_codes
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&status))
        {
            return Err(format!("HTTP status {status} (expected {expected})"));
        }
        if let (Some(want), Some(md5)) = (&url.digest, self.md5) {
            let got = hex(&md5.finalize());
            if &got != want {
                return Err(format!("digest mismatch (got {got}, expected {want})"));
            }
        }
        Ok(status)
    }
}

/// keepalived's extract_status_code: the three digits after the first
/// space of the status line, followed by a space.
fn status_code(head: &[u8]) -> Option<u16> {
    let line = &head[..find(head, b"\r").unwrap_or(head.len())];
    let space = line.iter().position(|&b| b == b' ')?;
    match line.get(space + 1..space + 5)? {
        [a, b, c, b' '] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
            Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => None,
    }
}

/// The Content-Length header, if present and valid.
fn content_length(head: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(head);
    text.split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if name.trim().eq_ignore_ascii_case("content-length") {
            value.trim().parse().ok()
        } else {
            None
        }
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// "200-299", "200,301-302"
fn ranges(codes: &[(u16, u16)]) -> String {
    codes
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_as_keepalived() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(status_code(b"HTTP/1.0 503 \r\n"), Some(503));
        assert_eq!(status_code(b"HTTP/1.1 200\r\n"), None);
        assert_eq!(status_code(b"HTTP/1.1 20x OK\r\n"), None);
        assert_eq!(status_code(b"garbage\r\n"), None);
    }

    #[test]
    fn content_length_any_case() {
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n";
        assert_eq!(content_length(head), Some(12));
        assert_eq!(content_length(b"HTTP/1.1 200 OK\r\n\r\n"), None);
    }

    #[test]
    fn digest_stops_at_content_length() {
        let mut r = Response::new(true);
        r.feed(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabcdef")
            .unwrap();
        let got = hex(&r.md5.unwrap().finalize());
        assert_eq!(got, hex(&Md5::digest(b"abc")));
    }
}
