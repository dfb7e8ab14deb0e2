//! The parts of the report about files: open descriptors, sockets and
//! mounts, from what the model says each process had open.

use std::collections::BTreeMap;

use super::report::{FdInfo, MountInfo, MountNamespace, ProcessInfo, SocketAddress, SocketInfo};
use super::{Bytes, InspectOptions};
use crate::input::{Checkpoint, OpenFiles};
use crate::model::fds::{FileObject, OpenFile};
use crate::model::mounts::Mount;
use crate::model::sockets::{endpoint_bytes, Endpoint, Socket};
use crate::model::Arch;
use crate::text::escape_bytes;

/// Bytes from a checkpoint as escaped text.
fn esc(b: &[u8]) -> String {
    escape_bytes(b).into_owned()
}

fn access_mode(flags: u32) -> &'static str {
    match flags & 3 {
        0 => "r",
        1 => "w",
        _ => "rw",
    }
}

/// What inspect reports of open file `f`: its fields where its type has
/// them, and one line of text.
fn fd_info(f: &OpenFile) -> FdInfo {
    let mut i = FdInfo {
        fd: f.fd,
        kind: f.object.kind_name(),
        cloexec: f.cloexec,
        path: None,
        mode: None,
        flags: None,
        pos: None,
        inode: None,
        queued: None,
        detail: String::new(),
    };
    set_fields(&mut i, &f.object);
    i.detail = match &f.object {
        FileObject::Regular {
            path,
            flags,
            pos,
            size,
            directory,
        } => regular_text(path, *flags, *pos, *size, *directory),
        FileObject::Pipe {
            inode,
            write,
            queued,
        } => format!(
            "pipe:[{inode}] {} end{}",
            if *write { "write" } else { "read" },
            queue_text(*queued)
        ),
        FileObject::Fifo {
            inode,
            path,
            queued,
        } => format!(
            "{} (pipe:[{inode}]{})",
            path.as_deref().map_or("?".into(), esc),
            queue_text(*queued)
        ),
        FileObject::Socket(s) => socket_text(s),
        FileObject::Tty {
            path,
            kind,
            index,
            master,
        } => tty_text(path.as_deref(), kind, *index, *master),
        other => event_or_kernel_text(other),
    };
    i
}

/// The fields of `i` that `object`'s type has: path, mode, flags,
/// position, inode, queued bytes.
fn set_fields(i: &mut FdInfo, object: &FileObject) {
    let bytes = |p: &[u8]| Some(Bytes(p.to_vec()));
    match object {
        FileObject::Regular {
            path, flags, pos, ..
        } => {
            (i.path, i.mode, i.flags, i.pos) = (
                bytes(path),
                Some(access_mode(*flags)),
                Some(*flags),
                Some(*pos),
            );
        }
        FileObject::Pipe {
            inode,
            write,
            queued,
        } => {
            (i.inode, i.queued, i.mode) = (
                Some(*inode),
                Some(*queued),
                Some(if *write { "w" } else { "r" }),
            );
        }
        FileObject::Fifo {
            inode,
            path,
            queued,
        } => {
            (i.inode, i.queued, i.path) =
                (Some(*inode), Some(*queued), path.as_deref().and_then(bytes));
        }
        FileObject::Socket(s) => {
            i.inode = Some(s.inode);
            i.queued = s.queues.map(|q| q.recv + q.send);
        }
        FileObject::Tty { path, .. } => i.path = path.as_deref().and_then(bytes),
        FileObject::Memfd { pos, .. } => i.pos = Some(*pos),
        _ => {}
    }
}

/// ", N bytes queued", or nothing where none are.
fn queue_text(n: u64) -> String {
    if n > 0 {
        format!(", {n} bytes queued")
    } else {
        String::new()
    }
}

/// A regular file or directory: its path, access mode, and for a file its
/// position and size.
fn regular_text(path: &[u8], flags: u32, pos: u64, size: Option<u64>, directory: bool) -> String {
    let size = size.map(|s| format!(", size {s}")).unwrap_or_default();
    if directory {
        format!("{} ({})", esc(path), access_mode(flags))
    } else {
        format!("{} ({}, pos {pos}{size})", esc(path), access_mode(flags))
    }
}

/// A terminal: its path, kind, index and whether it is the master side.
fn tty_text(path: Option<&[u8]>, kind: &str, index: Option<u32>, master: bool) -> String {
    let mut d = path.map_or_else(|| "?".into(), esc);
    d.push_str(&format!(" ({kind}"));
    if let Some(n) = index {
        d.push_str(&format!(" {n}"));
    }
    if master {
        d.push_str(", master");
    }
    d.push(')');
    d
}

/// The text of the descriptors that have no path, pipe or socket: event
/// and notification files, memfds and kernel objects.
fn event_or_kernel_text(object: &FileObject) -> String {
    match object {
        FileObject::Eventfd { counter } => format!("counter {counter}"),
        FileObject::Eventpoll { targets } => {
            let t: Vec<String> = targets.iter().map(u32::to_string).collect();
            format!(
                "watching fds {}",
                if t.is_empty() {
                    "none".into()
                } else {
                    t.join(", ")
                }
            )
        }
        FileObject::Inotify { watches } => format!("{} watches", watches.len()),
        FileObject::Signalfd { mask } => format!("signals {mask:#x}"),
        FileObject::Timerfd {
            clock,
            value,
            interval,
        } => format!(
            "clock {clock}, next in {}.{:09} s, interval {}.{:09} s",
            value.0, value.1, interval.0, interval.1
        ),
        FileObject::Memfd { name, pos } => format!("memfd:{} (pos {pos})", esc(name)),
        FileObject::Namespace { kind } => format!("{kind} namespace"),
        FileObject::Tun { device } => device.as_deref().map_or("detached".into(), esc),
        FileObject::BpfMap { name, id } => format!("{} (id {id})", esc(name)),
        FileObject::Pidfd { pid } => format!("pid {pid}"),
        FileObject::External => "left to the restorer (--external)".into(),
        FileObject::Unknown { type_code } => format!("CRIU file type {type_code}"),
        FileObject::Fanotify => String::new(),
        // fd_info describes these itself.
        FileObject::Regular { .. }
        | FileObject::Pipe { .. }
        | FileObject::Fifo { .. }
        | FileObject::Socket(_)
        | FileObject::Tty { .. } => String::new(),
    }
}

/// A socket as one line: state, local end, remote end, queues (escaped).
fn socket_text(s: &Socket) -> String {
    let mut t = format!(
        "{} {}",
        s.state,
        s.local
            .as_ref()
            .map_or("*".into(), |e| esc(&endpoint_bytes(e)))
    );
    if let Some(r) = &s.remote {
        t.push_str(&format!(" -> {}", esc(&endpoint_bytes(r))));
    } else if let Some(p) = s.peer {
        t.push_str(&format!(" -> socket:[{p}]"));
    }
    if let Some(q) = s.queues {
        t.push_str(&format!(" (recv-q {}, send-q {})", q.recv, q.send));
    }
    t
}

fn address(e: &Endpoint) -> SocketAddress {
    let mut a = SocketAddress {
        address: esc(&endpoint_bytes(e)),
        ip: None,
        port: None,
        path: None,
    };
    match e {
        Endpoint::Inet { addr, port } => {
            (a.ip, a.port) = (Some(addr.to_string()), Some(u32::from(*port)));
        }
        Endpoint::Unix(name) => a.path = Some(Bytes(name.clone())),
        Endpoint::Netlink { portid, .. } => a.port = Some(*portid),
    }
    a
}

fn socket_info(fd: u32, s: &Socket) -> SocketInfo {
    SocketInfo {
        fd,
        family: s.family.name(),
        kind: s.kind.clone(),
        protocol: s.protocol.clone(),
        state: s.state.clone(),
        local: s.local.as_ref().map(address),
        remote: s.remote.as_ref().map(address),
        recv_queue: s.queues.map(|q| q.recv),
        send_queue: s.queues.map(|q| q.send),
        backlog: s.backlog,
        inode: s.inode,
        peer_inode: s.peer,
    }
}

fn mount_info(m: &Mount) -> MountInfo {
    MountInfo {
        id: m.id,
        parent: m.parent,
        mountpoint: Bytes(m.mountpoint.clone()),
        fstype: m.fstype.clone(),
        source: Bytes(m.source.clone()),
        root: Bytes(m.root.clone()),
        options: Bytes(m.options.clone()),
        read_only: m.read_only,
        external: m.external.clone().map(Bytes),
        shared: m.shared,
        master: m.master,
    }
}

/// Fills in what `opts` ask for of process `info`'s files.
pub(super) fn add_files(
    info: &mut ProcessInfo,
    files: &OpenFiles<'_>,
    arch: Arch,
    opts: &InspectOptions,
    namespaces: &mut BTreeMap<u32, Vec<u32>>,
) {
    match files.process(info.pid, arch) {
        Err(e) => {
            let msg = format!("open files: {e:#}");
            info.error = Some(match info.error.take() {
                Some(prev) => format!("{prev}; {msg}"),
                None => msg,
            });
        }
        Ok(files) => {
            if opts.fds {
                info.fds = Some(files.fds.iter().map(fd_info).collect());
                info.cwd = files.cwd.clone().map(Bytes);
                info.root = files.root.clone().map(Bytes);
            }
            if opts.sockets {
                info.sockets = Some(
                    files
                        .fds
                        .iter()
                        .filter_map(|f| match &f.object {
                            FileObject::Socket(s) => Some(socket_info(f.fd, s)),
                            _ => None,
                        })
                        .collect(),
                );
            }
            if let Some(ns) = files.mount_namespace {
                namespaces.entry(ns).or_default().push(info.pid);
            }
        }
    }
}

/// The mounts of each mount namespace in `namespaces` (with the processes
/// in it).
pub(super) fn mount_namespaces(
    ckpt: &Checkpoint,
    namespaces: &BTreeMap<u32, Vec<u32>>,
) -> Vec<MountNamespace> {
    namespaces
        .iter()
        .map(|(&id, pids)| {
            let (mounts, error) = match ckpt.mounts(id) {
                Ok(m) => (m.map(|m| m.iter().map(mount_info).collect()), None),
                Err(e) => (None, Some(format!("{e:#}"))),
            };
            MountNamespace {
                id,
                processes: pids.clone(),
                mounts,
                error,
            }
        })
        .collect()
}
