//! Sockets as a checkpoint records them (inet, unix, netlink and packet
//! entries of files.img, or of the separate images of older CRIU), decoded
//! into the model's [`Socket`]; `fds.rs` adds the queued bytes of
//! `tcp-stream-<ino>.img` and sk-queues.img.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use crate::model::sockets::endpoint_bytes;
use crate::model::sockets::{Endpoint, Family, Socket};
use crate::proto;

/// AF_INET6 (AF_INET is 2).
const AF_INET6: u32 = 10;

/// IP protocols (IPPROTO_*).
const IPPROTO_ICMP: u32 = 1;
const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;
const IPPROTO_ICMPV6: u32 = 58;
const IPPROTO_UDPLITE: u32 = 136;
const IPPROTO_RAW: u32 = 255;

fn sock_type(t: u32) -> String {
    match t {
        1 => "stream".into(),
        2 => "dgram".into(),
        3 => "raw".into(),
        4 => "rdm".into(),
        5 => "seqpacket".into(),
        10 => "packet".into(),
        n => n.to_string(),
    }
}

/// The kernel's TCP states (include/net/tcp_states.h), as ss shows them.
fn tcp_state(s: u32) -> String {
    match s {
        1 => "ESTABLISHED",
        2 => "SYN-SENT",
        3 => "SYN-RECV",
        4 => "FIN-WAIT-1",
        5 => "FIN-WAIT-2",
        6 => "TIME-WAIT",
        7 => "UNCONN",
        8 => "CLOSE-WAIT",
        9 => "LAST-ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        _ => return format!("state {s}"),
    }
    .into()
}

/// An address CRIU saved as the u32 words of its bytes, each written in
/// the byte order of the host that dumped it.
fn ip(words: &[u32], family: Family, big_endian: bool) -> Option<IpAddr> {
    let bytes: Vec<u8> = words
        .iter()
        .flat_map(|w| {
            if big_endian {
                w.to_be_bytes()
            } else {
                w.to_le_bytes()
            }
        })
        .collect();
    match family {
        Family::Inet => Some(IpAddr::V4(Ipv4Addr::from(
            <[u8; 4]>::try_from(bytes.get(..4)?).ok()?,
        ))),
        _ => Some(IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(bytes.get(..16)?).ok()?,
        ))),
    }
}

/// An inet socket; `big_endian`: the byte order of the dumping host.
pub fn inet(e: &proto::InetSkEntry, big_endian: bool) -> Socket {
    let family = if e.family == AF_INET6 {
        Family::Inet6
    } else {
        Family::Inet
    };
    let protocol = match e.proto {
        IPPROTO_TCP => "tcp".into(),
        IPPROTO_UDP => "udp".into(),
        IPPROTO_UDPLITE => "udplite".into(),
        IPPROTO_ICMP => "icmp".into(),
        IPPROTO_ICMPV6 => "icmp6".into(),
        IPPROTO_RAW => "raw".into(),
        n => n.to_string(),
    };
    let end = |words: &[u32], port: u32| {
        ip(words, family, big_endian).map(|addr| Endpoint::Inet {
            addr,
            port: port as u16,
        })
    };
    // A socket with no peer has an all-zero remote end.
    let remote = end(&e.dst_addr, e.dst_port)
        .filter(|r| !matches!(r, Endpoint::Inet { addr, port: 0 } if addr.is_unspecified()));
    let state = if e.proto == IPPROTO_TCP {
        tcp_state(e.state)
    } else if remote.is_some() {
        "ESTAB".into()
    } else {
        "UNCONN".into()
    };
    Socket {
        inode: e.ino,
        family,
        kind: sock_type(e.r#type),
        protocol,
        state,
        local: end(&e.src_addr, e.src_port),
        remote,
        peer: None,
        queues: None,
        backlog: e.backlog,
        ifindex: None,
    }
}

/// A unix socket (its remote end, the peer's name, is left for the
/// caller, who knows the other sockets).
pub fn unix(e: &proto::UnixSkEntry) -> Socket {
    // sun_path as bound, with the NUL that ends a path.
    let mut name = e.name.clone();
    if name.first() != Some(&0) {
        while name.last() == Some(&0) {
            name.pop();
        }
    }
    let state = match e.state {
        1 => "ESTAB".to_string(),
        7 => "UNCONN".to_string(),
        10 => "LISTEN".to_string(),
        s => tcp_state(s),
    };
    Socket {
        inode: e.ino,
        family: Family::Unix,
        kind: sock_type(e.r#type),
        protocol: "unix".into(),
        state,
        local: Some(Endpoint::Unix(name)),
        remote: None,
        peer: (e.peer != 0).then_some(e.peer),
        queues: None,
        backlog: e.backlog,
        ifindex: None,
    }
}

/// A netlink socket.
pub fn netlink(e: &proto::NetlinkSkEntry) -> Socket {
    let protocol = match e.protocol {
        0 => "route".into(),
        4 => "sock_diag".into(),
        9 => "audit".into(),
        15 => "uevent".into(),
        16 => "generic".into(),
        12 => "netfilter".into(),
        n => n.to_string(),
    };
    Socket {
        inode: e.ino,
        family: Family::Netlink,
        kind: "raw".into(),
        protocol,
        state: "UNCONN".into(),
        local: Some(Endpoint::Netlink {
            portid: e.portid,
            group: e.groups.first().copied().unwrap_or(0),
        }),
        remote: (e.dst_portid != 0 || e.dst_group != 0).then_some(Endpoint::Netlink {
            portid: e.dst_portid,
            group: e.dst_group,
        }),
        peer: None,
        queues: None,
        backlog: 0,
        ifindex: None,
    }
}

/// A packet socket; `big_endian`: the byte order of the dumping host.
pub fn packet(e: &proto::PacketSockEntry, big_endian: bool) -> Socket {
    // CRIU records the ethertype as socket(2) takes it: in network byte
    // order, as a 16-bit number of the dumping host.
    let raw = e.protocol as u16;
    let ethertype = if big_endian { raw } else { raw.swap_bytes() };
    Socket {
        inode: 0,
        family: Family::Packet,
        kind: sock_type(e.r#type),
        protocol: format!("0x{ethertype:04x}"),
        state: "UNCONN".into(),
        local: None,
        remote: None,
        peer: None,
        queues: None,
        backlog: 0,
        ifindex: Some(e.ifindex),
    }
}

/// [`endpoint_bytes`] as text (bytes that are not UTF-8 as U+FFFD).
#[cfg(test)]
fn endpoint_text(e: &Endpoint) -> String {
    String::from_utf8_lossy(&endpoint_bytes(e)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inet_addresses_come_out_in_network_order_from_either_host() {
        // 127.0.0.1 as an x86 CRIU saves it, and as an s390x one does.
        let mut e = proto::InetSkEntry {
            family: 2,
            proto: IPPROTO_TCP,
            r#type: 1,
            state: 1,
            src_port: 47011,
            dst_port: 50984,
            src_addr: vec![0x0100_007f],
            dst_addr: vec![0x0100_007f],
            ..Default::default()
        };
        let s = inet(&e, false);
        assert_eq!(s.short_name(), "tcp");
        assert_eq!(s.state, "ESTABLISHED");
        assert_eq!(endpoint_text(s.local.as_ref().unwrap()), "127.0.0.1:47011");
        assert_eq!(endpoint_text(s.remote.as_ref().unwrap()), "127.0.0.1:50984");
        e.src_addr = vec![0x7f00_0001];
        assert_eq!(
            endpoint_text(inet(&e, true).local.as_ref().unwrap()),
            "127.0.0.1:47011"
        );
        // A listener has no remote end; ::1 in IPv6.
        let l = proto::InetSkEntry {
            family: AF_INET6,
            proto: IPPROTO_TCP,
            state: 10,
            src_port: 80,
            src_addr: vec![0, 0, 0, 0x0100_0000],
            dst_addr: vec![0, 0, 0, 0],
            ..Default::default()
        };
        let s = inet(&l, false);
        assert_eq!(
            (s.short_name().as_str(), s.state.as_str()),
            ("tcp6", "LISTEN")
        );
        assert_eq!(endpoint_text(s.local.as_ref().unwrap()), "[::1]:80");
        assert_eq!(s.remote, None);
    }

    #[test]
    fn netlink_and_packet_sockets() {
        let n = netlink(&proto::NetlinkSkEntry {
            ino: 9,
            protocol: 0,
            portid: 1234,
            groups: vec![1],
            ..Default::default()
        });
        assert_eq!(
            (n.short_name().as_str(), n.protocol.as_str()),
            ("netlink", "route")
        );
        assert_eq!(endpoint_text(n.local.as_ref().unwrap()), "1234/1");
        assert_eq!(n.remote, None);
        // ETH_P_ALL (0x0003), in network byte order as the kernel keeps it.
        let mut e = proto::PacketSockEntry {
            r#type: 3,
            protocol: 0x0300,
            ifindex: 2,
            ..Default::default()
        };
        let p = packet(&e, false);
        assert_eq!(
            (p.protocol.as_str(), p.kind.as_str(), p.ifindex),
            ("0x0003", "raw", Some(2))
        );
        e.protocol = 0x0800;
        assert_eq!(packet(&e, true).protocol, "0x0800");
    }

    #[test]
    fn unix_names_and_peers() {
        let named = unix(&proto::UnixSkEntry {
            ino: 5,
            r#type: 1,
            state: 10,
            name: b"/tmp/s.sock\0".to_vec(),
            ..Default::default()
        });
        assert_eq!(endpoint_text(named.local.as_ref().unwrap()), "/tmp/s.sock");
        let abs = unix(&proto::UnixSkEntry {
            ino: 6,
            r#type: 2,
            state: 7,
            peer: 7,
            name: b"\0abs".to_vec(),
            ..Default::default()
        });
        assert_eq!(endpoint_text(abs.local.as_ref().unwrap()), "@abs");
        assert_eq!(
            (abs.short_name().as_str(), abs.peer),
            ("unix/dgram", Some(7))
        );
    }
}
