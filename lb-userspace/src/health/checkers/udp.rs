//! UDP_CHECK, as keepalived's check_udp.c: send the payload (default
//! keepalived's 32-byte filler) on a connected socket. Without
//! require_reply, the check fails only on an ICMP error (port unreachable
//! shows as ECONNREFUSED) within connect_timeout; a reply or silence pass.
//! With require_reply a reply is needed, and with reply bytes given it must
//! match them (under the mask, over the shorter of the two) and its length
//! must lie within min/max_reply_length.

use tokio::time::timeout;

use super::socket::{self, secs, ConnOpts};
use crate::{
    config::model::UdpCheck as UdpConfig,
    health::{BoxFuture, Checker, Outcome},
};

/// keepalived's UDP_BUFSIZE for the default payload.
const DEFAULT_PAYLOAD_LEN: usize = 32;

pub struct UdpCheck {
    conn: ConnOpts,
    payload: Vec<u8>,
    require_reply: bool,
    /// Expected bytes and the mask of bits that must match.
    reply: Option<(Vec<u8>, Vec<u8>)>,
    min_len: usize,
    max_len: usize,
}

impl UdpCheck {
    pub fn new(u: &UdpConfig, conn: ConnOpts) -> UdpCheck {
        UdpCheck {
            conn,
            payload: u
                .payload
                .clone()
                .unwrap_or_else(|| socket::filler(DEFAULT_PAYLOAD_LEN)),
            require_reply: u.require_reply,
            reply: u.reply.clone(),
            min_len: u.min_reply_length as usize,
            max_len: u.max_reply_length as usize,
        }
    }

    async fn probe(&self) -> Outcome {
        let sock = match socket::connect_udp(&self.conn) {
            Ok(sock) => sock,
            Err(reason) => return Outcome::down(reason),
        };
        if let Err(e) = sock.send(&self.payload).await {
            return Outcome::down(format!("send failed: {}", socket::describe(&e)));
        }
        // One byte more than allowed, to see a reply that is too long.
        let mut buf = vec![0u8; self.max_len + 1];
        match timeout(self.conn.timeout, sock.recv(&mut buf)).await {
            Err(_) if self.require_reply => {
                Outcome::down(format!("no reply within {}", secs(self.conn.timeout)))
            }
            Err(_) => Outcome::up(format!("no ICMP error within {}", secs(self.conn.timeout))),
            Ok(Err(e)) => Outcome::down(socket::describe(&e)),
            Ok(Ok(n)) => self.judge_reply(&buf[..n]),
        }
    }

    /// keepalived checks the reply (check_udp_reply) only when reply bytes
    /// are configured; any reply passes otherwise.
    fn judge_reply(&self, got: &[u8]) -> Outcome {
        let Some((want, mask)) = &self.reply else {
            return Outcome::up(format!("{}-byte reply", got.len()));
        };
        if got.len() < self.min_len || got.len() > self.max_len {
            return Outcome::down(format!(
                "reply length {} outside {}..{}",
                got.len(),
                self.min_len,
                self.max_len
            ));
        }
        let differs = got
            .iter()
            .zip(want)
            .zip(mask)
            .any(|((g, w), m)| (g ^ w) & m != 0);
        if differs {
            Outcome::down("reply mismatch")
        } else {
            Outcome::up("reply matches")
        }
    }
}

impl Checker for UdpCheck {
    fn describe(&self) -> String {
        format!("UDP_CHECK {}", self.conn.dst)
    }

    fn check(&self) -> BoxFuture<'_, Outcome> {
        Box::pin(self.probe())
    }
}
