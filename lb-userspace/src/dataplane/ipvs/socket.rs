//! A blocking generic-netlink socket speaking the IPVS family: resolves the
//! family id once, then does one request/acknowledge or dump at a time.
//!
//! Like every netlink socket, it works on the network namespace of the
//! thread that opened it.

use super::attr::{IpvsMessage, FAMILY_NAME};
use netlink_packet_core::{
    NetlinkBuffer, NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    NetlinkSerializable, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_generic::{
    ctrl::{nlas::GenlCtrlAttrs, GenlCtrl, GenlCtrlCmd},
    GenlMessage,
};
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};
use std::{fmt::Debug, io};

/// Dump replies are sized after the reader's buffer; 64 KiB is plenty.
const RECEIVE_BUFFER_LEN: usize = 64 * 1024;

pub struct IpvsSocket {
    socket: Socket,
    family_id: u16,
    sequence: u32,
    buffer: Vec<u8>,
}

/// The error when the kernel has no IPVS family (module not loaded, or
/// no IPVS at all).
pub fn is_family_missing(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOENT)
}

impl IpvsSocket {
    /// Opens a socket and resolves the IPVS family. ENOENT means the kernel
    /// has no IPVS family (see [`is_family_missing`]).
    pub fn open() -> io::Result<IpvsSocket> {
        let mut socket = Socket::new(NETLINK_GENERIC)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        let mut s = IpvsSocket {
            socket,
            family_id: 0,
            sequence: 0,
            buffer: Vec::with_capacity(RECEIVE_BUFFER_LEN),
        };
        s.family_id = s.resolve_family()?;
        Ok(s)
    }

    pub fn family_id(&self) -> u16 {
        self.family_id
    }

    fn resolve_family(&mut self) -> io::Result<u16> {
        let request = GenlMessage::from_payload(GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(FAMILY_NAME.to_string())],
        });
        let sequence = self.send(request, NLM_F_REQUEST | NLM_F_ACK)?;
        let replies: Vec<GenlMessage<GenlCtrl>> = self.receive(sequence)?;
        replies
            .iter()
            .flat_map(|m| m.payload.nlas.iter())
            .find_map(|a| match a {
                GenlCtrlAttrs::FamilyId(id) => Some(*id),
                _ => None,
            })
            .ok_or_else(|| io::Error::other("the genetlink controller named no IPVS family id"))
    }

    /// A command the kernel acknowledges; returns what it sent before the
    /// acknowledgement (the reply of a GET, nothing for a change).
    pub fn request(&mut self, message: IpvsMessage) -> io::Result<Vec<IpvsMessage>> {
        let sequence = self.send(self.genl(message), NLM_F_REQUEST | NLM_F_ACK)?;
        Ok(self
            .receive::<GenlMessage<IpvsMessage>>(sequence)?
            .into_iter()
            .map(|m| m.payload)
            .collect())
    }

    /// A GET with NLM_F_DUMP: every entry. NLM_F_ACK too, as libipvs sets
    /// it (the kernel acknowledges no dump; DONE ends it).
    pub fn dump(&mut self, message: IpvsMessage) -> io::Result<Vec<IpvsMessage>> {
        let sequence = self.send(self.genl(message), NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP)?;
        Ok(self
            .receive::<GenlMessage<IpvsMessage>>(sequence)?
            .into_iter()
            .map(|m| m.payload)
            .collect())
    }

    fn genl(&self, message: IpvsMessage) -> GenlMessage<IpvsMessage> {
        let mut m = GenlMessage::from_payload(message);
        m.set_resolved_family_id(self.family_id);
        m
    }

    fn send<T: NetlinkSerializable + Debug>(&mut self, inner: T, flags: u16) -> io::Result<u32> {
        self.sequence = self.sequence.wrapping_add(1);
        let bytes = serialize(inner, flags, self.sequence);
        self.socket.send(&bytes, 0)?;
        Ok(self.sequence)
    }

    /// Reads until the DONE of a dump or the acknowledgement of a request
    /// with this sequence number; a negative acknowledgement is the error.
    fn receive<T>(&mut self, sequence: u32) -> io::Result<Vec<T>>
    where
        T: NetlinkDeserializable + Debug,
    {
        let mut out = Vec::new();
        loop {
            self.buffer.clear();
            self.buffer.reserve(RECEIVE_BUFFER_LEN);
            let capacity = self.buffer.capacity();
            let length = self.socket.recv(&mut self.buffer, libc::MSG_TRUNC)?;
            if length > capacity {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "netlink datagram of {length} bytes exceeds the {capacity}-byte buffer"
                    ),
                ));
            }
            let mut rest = &self.buffer[..length.min(self.buffer.len())];
            while !rest.is_empty() {
                let len = NetlinkBuffer::new_checked(rest)
                    .map_err(undecodable)?
                    .length() as usize;
                let message =
                    NetlinkMessage::<T>::deserialize(&rest[..len]).map_err(undecodable)?;
                rest = &rest[len.next_multiple_of(4).min(rest.len())..];
                if message.header.sequence_number != sequence {
                    continue;
                }
                match message.payload {
                    NetlinkPayload::InnerMessage(inner) => out.push(inner),
                    NetlinkPayload::Done(done) if done.code < 0 => {
                        return Err(io::Error::from_raw_os_error(-done.code))
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
                    NetlinkPayload::Error(_ack) => return Ok(out),
                    _ => {}
                }
            }
        }
    }
}

/// The datagram for `inner` (port id 0: the kernel fills it in).
pub fn serialize<T: NetlinkSerializable + Debug>(inner: T, flags: u16, sequence: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = sequence;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(inner));
    packet.finalize();
    let mut bytes = vec![0; packet.buffer_len()];
    packet.serialize(&mut bytes);
    bytes
}

fn undecodable(e: netlink_packet_core::DecodeError) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("undecodable IPVS netlink message: {e}"),
    )
}
