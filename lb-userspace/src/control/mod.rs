//! The control socket between `xvsd` and `xvsadm`: a Unix stream socket,
//! root-only (0600), carrying one JSON request and one JSON reply per
//! connection, each a single line. See docs/control-protocol.md.

pub mod client;
pub mod protocol;

/// Where `xvsd` listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/xvs/xvsd.sock";
