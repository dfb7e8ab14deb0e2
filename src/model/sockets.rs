//! Sockets as a process had them open: family, kind, protocol, state,
//! both ends and the bytes queued in them.

use std::net::IpAddr;

/// A socket's family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// AF_INET
    Inet,
    /// AF_INET6
    Inet6,
    /// AF_UNIX
    Unix,
    /// AF_NETLINK
    Netlink,
    /// AF_PACKET
    Packet,
}

impl Family {
    /// "inet", "inet6", "unix", "netlink" or "packet".
    pub fn name(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Inet6 => "inet6",
            Family::Unix => "unix",
            Family::Netlink => "netlink",
            Family::Packet => "packet",
        }
    }
}

/// One end of a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// An IP address and port.
    Inet {
        /// The address.
        addr: IpAddr,
        /// The port.
        port: u16,
    },
    /// A unix socket's name: a path, or an abstract name (starting with a
    /// NUL byte); empty for an unnamed socket.
    Unix(Vec<u8>),
    /// A netlink port id and multicast group.
    Netlink {
        /// Port id.
        portid: u32,
        /// Multicast group (0: none).
        group: u32,
    },
}

/// Bytes waiting in a socket's queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Queues {
    /// Received and not yet read.
    pub recv: u64,
    /// Written and not yet sent or acknowledged.
    pub send: u64,
}

/// A socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    /// The socket's inode number.
    pub inode: u32,
    /// Its family.
    pub family: Family,
    /// SOCK_STREAM, SOCK_DGRAM, ...: "stream", "dgram", "raw", "rdm",
    /// "seqpacket", "packet", or the number.
    pub kind: String,
    /// The protocol: "tcp", "udp", "udplite", "icmp", "icmp6", "raw" for
    /// inet sockets, the netlink family ("route", "audit", ...), the
    /// ethertype for packet sockets; else the number.
    pub protocol: String,
    /// The state, as ss names it: "ESTABLISHED", "LISTEN", "UNCONN", ...
    pub state: String,
    /// The local end.
    pub local: Option<Endpoint>,
    /// The remote end (for a unix socket, its peer's name where it has one).
    pub remote: Option<Endpoint>,
    /// A unix socket's peer, by inode.
    pub peer: Option<u32>,
    /// Queued bytes, where the checkpoint records them (established TCP
    /// connections, and datagram and unix sockets with packets queued).
    pub queues: Option<Queues>,
    /// Listen backlog.
    pub backlog: u32,
    /// A packet socket's interface index.
    pub ifindex: Option<u32>,
}

impl Socket {
    /// The name ss gives its kind: "tcp", "udp", "tcp6", "unix", ...
    pub fn short_name(&self) -> String {
        match self.family {
            Family::Inet | Family::Inet6 => {
                let six = if self.family == Family::Inet6 {
                    "6"
                } else {
                    ""
                };
                format!("{}{six}", self.protocol)
            }
            Family::Unix => format!("unix/{}", self.kind),
            Family::Netlink => "netlink".into(),
            Family::Packet => "packet".into(),
        }
    }
}

/// An endpoint as ss writes it: `127.0.0.1:80`, `[::1]:80`, a path,
/// `@name` for an abstract name, `*` for an unnamed unix socket; as bytes,
/// since a unix socket's name need not be UTF-8.
pub fn endpoint_bytes(e: &Endpoint) -> Vec<u8> {
    match e {
        Endpoint::Inet {
            addr: IpAddr::V4(a),
            port,
        } => format!("{a}:{}", port_text(*port)).into_bytes(),
        Endpoint::Inet {
            addr: IpAddr::V6(a),
            port,
        } => format!("[{a}]:{}", port_text(*port)).into_bytes(),
        Endpoint::Unix(name) if name.is_empty() => b"*".to_vec(),
        Endpoint::Unix(name) => match name.strip_prefix(&[0]) {
            Some(abs) => [&b"@"[..], abs].concat(),
            None => name.clone(),
        },
        Endpoint::Netlink { portid, group } => format!("{portid}/{group}").into_bytes(),
    }
}

fn port_text(p: u16) -> String {
    if p == 0 {
        "*".into()
    } else {
        p.to_string()
    }
}
