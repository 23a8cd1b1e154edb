//! IPVS semantics both sides must agree on: connection states, their default
//! timeouts, the DR ("input only") TCP state table and the sh hash.
//! Sources: net/netfilter/ipvs/ip_vs_proto_tcp.c, ip_vs_proto_udp.c, ip_vs_sh.c.

/// Connection states. TCP values are IPVS's `IP_VS_TCP_S_*`; UDP flows use
/// `Udp`, which IPVS prints as "UDP".
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    None = 0,
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait = 4,
    TimeWait = 5,
    Close = 6,
    CloseWait = 7,
    LastAck = 8,
    Listen = 9,
    SynAck = 10,
    Udp = 11,
}

pub const STATE_COUNT: usize = 12;

impl ConnState {
    pub const fn from_u8(v: u8) -> ConnState {
        match v {
            1 => ConnState::Established,
            2 => ConnState::SynSent,
            3 => ConnState::SynRecv,
            4 => ConnState::FinWait,
            5 => ConnState::TimeWait,
            6 => ConnState::Close,
            7 => ConnState::CloseWait,
            8 => ConnState::LastAck,
            9 => ConnState::Listen,
            10 => ConnState::SynAck,
            11 => ConnState::Udp,
            _ => ConnState::None,
        }
    }

    /// The name `ipvsadm -L -c` prints.
    pub const fn name(self) -> &'static str {
        match self {
            ConnState::None => "NONE",
            ConnState::Established => "ESTABLISHED",
            ConnState::SynSent => "SYN_SENT",
            ConnState::SynRecv => "SYN_RECV",
            ConnState::FinWait => "FIN_WAIT",
            ConnState::TimeWait => "TIME_WAIT",
            ConnState::Close => "CLOSE",
            ConnState::CloseWait => "CLOSE_WAIT",
            ConnState::LastAck => "LAST_ACK",
            ConnState::Listen => "LISTEN",
            ConnState::SynAck => "SYNACK",
            ConnState::Udp => "UDP",
        }
    }

    /// IPVS's `tcp_state_active_table`: these count as ActiveConn, all
    /// others (and every UDP flow) as InActConn.
    pub const fn is_active(self) -> bool {
        matches!(
            self,
            ConnState::Established | ConnState::SynSent | ConnState::SynRecv | ConnState::SynAck
        )
    }
}

/// IPVS's default timeouts in seconds, indexed by `ConnState`.
/// `ipvsadm --set tcp tcpfin udp` changes Established, FinWait and Udp.
pub const DEFAULT_TIMEOUTS_S: [u32; STATE_COUNT] = [
    2,       // NONE
    15 * 60, // ESTABLISHED
    2 * 60,  // SYN_SENT
    60,      // SYN_RECV
    2 * 60,  // FIN_WAIT
    2 * 60,  // TIME_WAIT
    10,      // CLOSE
    60,      // CLOSE_WAIT
    30,      // LAST_ACK
    2 * 60,  // LISTEN
    2 * 60,  // SYNACK
    5 * 60,  // UDP
];

/// Which TCP event a segment is, in IPVS's precedence: rst, syn, fin, ack.
#[inline(always)]
pub const fn tcp_event(flags: u8) -> Option<usize> {
    const FIN: u8 = 0x01;
    const SYN: u8 = 0x02;
    const RST: u8 = 0x04;
    const ACK: u8 = 0x10;
    if flags & RST != 0 {
        Some(3)
    } else if flags & SYN != 0 {
        Some(0)
    } else if flags & FIN != 0 {
        Some(1)
    } else if flags & ACK != 0 {
        Some(2)
    } else {
        None
    }
}

use ConnState as S;
const ES: u8 = S::Established as u8;
const SS: u8 = S::SynSent as u8;
const SR: u8 = S::SynRecv as u8;
const FW: u8 = S::FinWait as u8;
const TW: u8 = S::TimeWait as u8;
const CL: u8 = S::Close as u8;
const CW: u8 = S::CloseWait as u8;
const LA: u8 = S::LastAck as u8;
const LI: u8 = S::Listen as u8;

/// IPVS's INPUT-ONLY rows of `tcp_states[]`: a DR director sees only the
/// client's half of the flow. Rows: syn, fin, ack, rst; columns: the
/// current state NO..SA.
pub const TCP_INPUT_ONLY: [[u8; 11]; 4] = [
    /*        sNO sES sSS sSR sFW sTW sCL sCW sLA sLI sSA */
    /*syn*/
    [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    /*fin*/ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
    /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
];

/// The state after a segment with `flags` arrives in `state`. As in IPVS's
/// `set_tcp_state()`, a segment with none of rst/syn/fin/ack means CLOSE.
#[inline(always)]
pub fn tcp_next_state(state: u8, flags: u8) -> u8 {
    match tcp_event(flags) {
        Some(event) => {
            // An opaque copy keeps the bounds check next to the load: the
            // verifier of kernels before 6.4 (Debian 12's 6.1) forgets a
            // bound across the spill and fill LLVM may put between them.
            let column = core::hint::black_box(state) as usize;
            match TCP_INPUT_ONLY[event].get(column) {
                Some(next) => *next,
                None => state,
            }
        }
        None => CL,
    }
}

/// sh's bucket count (CONFIG_IP_VS_SH_TAB_BITS = 8).
pub const SH_TAB_BITS: u32 = 8;
pub const SH_TAB_SIZE: u32 = 1 << SH_TAB_BITS;

/// The kernel's `hash_32()`.
#[inline(always)]
pub const fn hash_32(val: u32, bits: u32) -> u32 {
    val.wrapping_mul(0x61C8_8647) >> (32 - bits)
}

/// `ip_vs_sh_hashkey()` at offset 0. `addr_fold_host` is the IPv4 address,
/// or the XOR of the four IPv6 words, in host byte order; `port_host` is the
/// source port in host order when sh-port is set, else 0.
#[inline(always)]
pub const fn sh_bucket(addr_fold_host: u32, port_host: u16) -> u32 {
    hash_32((port_host as u32).wrapping_add(addr_fold_host), SH_TAB_BITS) & (SH_TAB_SIZE - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_and_close() {
        let mut s = ConnState::None as u8;
        s = tcp_next_state(s, 0x02); // SYN
        assert_eq!(s, ConnState::SynRecv as u8);
        s = tcp_next_state(s, 0x10); // ACK
        assert_eq!(s, ConnState::Established as u8);
        s = tcp_next_state(s, 0x11); // FIN|ACK
        assert_eq!(s, ConnState::FinWait as u8);
        s = tcp_next_state(s, 0x10);
        assert_eq!(s, ConnState::FinWait as u8);
        s = tcp_next_state(s, 0x14); // RST|ACK
        assert_eq!(s, ConnState::Close as u8);
    }

    #[test]
    fn hash_matches_kernel_constant() {
        assert_eq!(hash_32(1, 8), 0x61C8_8647 >> 24);
        assert!(sh_bucket(0xC0A8_0001, 0) < SH_TAB_SIZE);
    }
}
