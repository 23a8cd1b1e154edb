//! TCP_CHECK: the real is up when a TCP connection to connect_ip:connect_port
//! is established within connect_timeout (keepalived check_tcp.c); the
//! connection is closed at once.

use super::socket::{self, ConnOpts};
use crate::health::{BoxFuture, Checker, Outcome};

pub struct TcpCheck {
    conn: ConnOpts,
}

impl TcpCheck {
    pub fn new(conn: ConnOpts) -> TcpCheck {
        TcpCheck { conn }
    }
}

impl Checker for TcpCheck {
    fn describe(&self) -> String {
        format!("TCP_CHECK {}", self.conn.dst)
    }

    fn check(&self) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            match socket::connect_tcp(&self.conn).await {
                Ok(_) => Outcome::up("connected"),
                Err(reason) => Outcome::down(reason),
            }
        })
    }
}
