//! A blocking rtnetlink socket that does one request/response exchange at a
//! time, and the parsing of a datagram into messages that the watcher shares.

use std::io;

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP,
    NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// Large enough for any datagram the kernel sends us: the kernel sizes dump
/// datagrams after the largest buffer the reader has offered.
const RECEIVE_BUFFER_LEN: usize = 64 * 1024;

/// A dump that raced with a change to the table it walks (NLM_F_DUMP_INTR) is
/// read again, this many times at most.
const DUMP_ATTEMPTS: usize = 3;

pub(super) type Message = NetlinkMessage<RouteNetlinkMessage>;

/// An `AF_NETLINK`/`NETLINK_ROUTE` socket in the calling thread's network
/// namespace.
pub(super) struct RouteSocket {
    socket: Socket,
    sequence: u32,
    buffer: Vec<u8>,
}

impl RouteSocket {
    pub(super) fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Self {
            socket,
            sequence: 0,
            buffer: Vec::with_capacity(RECEIVE_BUFFER_LEN),
        })
    }

    /// Sends a request the kernel acknowledges, and returns what it answered
    /// before the acknowledgement (nothing for add/delete, the route for a
    /// route lookup). A negative acknowledgement becomes the error.
    pub(super) fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        let sequence = self.send(message, NLM_F_REQUEST | NLM_F_ACK | flags)?;
        Ok(self.receive_until_end(sequence)?.messages)
    }

    /// Dumps a whole table (addresses, neighbours, ...).
    pub(super) fn dump(
        &mut self,
        message: RouteNetlinkMessage,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        for _ in 1..DUMP_ATTEMPTS {
            let sequence = self.send(message.clone(), NLM_F_REQUEST | NLM_F_DUMP)?;
            let reply = self.receive_until_end(sequence)?;
            if !reply.interrupted {
                return Ok(reply.messages);
            }
        }
        // Still changing under us: a slightly inconsistent snapshot is the
        // best there is, and the next dump will catch up.
        let sequence = self.send(message, NLM_F_REQUEST | NLM_F_DUMP)?;
        Ok(self.receive_until_end(sequence)?.messages)
    }

    fn send(&mut self, message: RouteNetlinkMessage, flags: u16) -> io::Result<u32> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.socket.send(&bytes, 0)?;
        Ok(self.sequence)
    }

    /// Reads datagrams until the DONE of a dump or the acknowledgement of a
    /// request with this sequence number; messages of other sequence numbers
    /// (left over from an earlier, abandoned exchange) are skipped.
    fn receive_until_end(&mut self, sequence: u32) -> io::Result<Reply> {
        let mut reply = Reply::default();
        loop {
            receive_datagram(&self.socket, &mut self.buffer, 0)?;
            for message in parse_datagram(&self.buffer) {
                let message = match message {
                    Ok(message) => message,
                    Err(error) => {
                        log::warn!("rtnetlink: skipped: {error}");
                        continue;
                    }
                };
                if message.header.sequence_number != sequence {
                    continue;
                }
                reply.interrupted |= message.header.flags & NLM_F_DUMP_INTR != 0;
                match message.payload {
                    NetlinkPayload::InnerMessage(inner) => reply.messages.push(inner),
                    NetlinkPayload::Done(done) if done.code < 0 => {
                        return Err(io::Error::from_raw_os_error(-done.code))
                    }
                    NetlinkPayload::Done(_) => return Ok(reply),
                    NetlinkPayload::Error(error) if error.code.is_some() => {
                        return Err(error.to_io())
                    }
                    NetlinkPayload::Error(_ack) => return Ok(reply),
                    _ => {}
                }
            }
        }
    }
}

#[derive(Default)]
struct Reply {
    messages: Vec<RouteNetlinkMessage>,
    interrupted: bool,
}

/// Reads one datagram into `buffer` (replacing its contents). `flags` may
/// add `MSG_DONTWAIT`. A datagram larger than the buffer is an error rather
/// than silently cut.
pub(super) fn receive_datagram(
    socket: &Socket,
    buffer: &mut Vec<u8>,
    flags: libc::c_int,
) -> io::Result<()> {
    buffer.clear();
    buffer.reserve(RECEIVE_BUFFER_LEN);
    let capacity = buffer.capacity();
    // MSG_TRUNC makes recv return the datagram's real length.
    let length = socket.recv(buffer, flags | libc::MSG_TRUNC)?;
    if length > capacity {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("netlink datagram of {length} bytes exceeds the {capacity}-byte buffer"),
        ));
    }
    Ok(())
}

/// The netlink messages packed in one datagram. A message this crate cannot
/// decode (say, a kernel newer than it) is an `Err` item and parsing goes on
/// with the next one; a broken netlink header ends the datagram.
pub(super) fn parse_datagram(datagram: &[u8]) -> impl Iterator<Item = io::Result<Message>> + '_ {
    let mut rest = datagram;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let length = match NetlinkBuffer::new_checked(rest) {
            Ok(buffer) => buffer.length() as usize,
            Err(error) => {
                rest = &[];
                return Some(Err(undecodable(error)));
            }
        };
        let message = Message::deserialize(&rest[..length]).map_err(undecodable);
        // Messages are 4-byte aligned within the datagram.
        rest = &rest[length.next_multiple_of(4).min(rest.len())..];
        Some(message)
    })
}

fn undecodable(error: netlink_packet_core::DecodeError) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("undecodable netlink message: {error}"),
    )
}
