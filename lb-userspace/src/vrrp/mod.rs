//! VRRP v2 (RFC 3768) and v3 (RFC 5798), interoperable with keepalived:
//! the wire format (`packet`) and the protocol state machine (`fsm`).
//! Sockets, VIPs and the data-plane hand-off build on these.

pub mod fsm;
pub mod packet;
