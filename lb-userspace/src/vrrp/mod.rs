//! VRRP v2 (RFC 3768) and v3 (RFC 5798), interoperable with keepalived:
//! the wire format (`packet`), the protocol state machine (`fsm`), and the
//! runtime around them: sockets, VIPs, gratuitous ARPs, tracking and the
//! data-plane hand-off.

pub mod fsm;
pub mod garp;
pub mod packet;
pub mod runtime;
pub mod socket;
pub mod spec;
pub mod track;
