//! A process's open file descriptors as a checkpoint records them, decoded
//! into the model's [`ProcessFiles`].
//!
//! CRIU 3.x and 4.x write, per process, `fdinfo-<files_id>.img` (fd
//! number, flags, file id; `files_id` from `ids-<pid>.img`, shared by
//! processes that share their file table) and, for the whole dump,
//! files.img with one entry per open file of any kind; sockets, pipes,
//! ttys and the rest are entries there, with queued bytes in
//! `tcp-stream-<ino>.img`, sk-queues.img and pipes-data.img. Older CRIU
//! wrote one image per kind (reg-files.img, inetsk.img, unixsk.img, ...)
//! and `fdinfo-<pid>.img`; those are read where files.img lacks an id.

use std::collections::{HashMap, HashSet};

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use prost::Message;

use super::files::MAX_FILE_ENTRIES;
use super::image::Image;
use super::magic;
use super::sockets;
pub use crate::model::fds::{FileObject, OpenFile, ProcessFiles};
use crate::model::sockets::{Endpoint, Queues};

use super::store::ImageStore;
use crate::proto;

/// Most watches or targets listed for one inotify or epoll file.
const MAX_LISTED: usize = 4096;

/// Image `name` of `store`, checked against `magic`, or `None` if the store
/// has no such image.
fn read_image(store: &dyn ImageStore, name: &str, magic: u32) -> Result<Option<Image>> {
    match store.read(name)? {
        None => Ok(None),
        Some(data) => Ok(Some(Image::parse(
            format!("{}/{name}", store.location()),
            data,
            magic,
        )?)),
    }
}

/// Most descriptors listed for one process: Linux's default limit on
/// open files (fs.nr_open).
pub const MAX_FDS: usize = 1 << 20;

/// The entries of one image, kept as the image's bytes and decoded one at
/// a time when asked for. The index costs 12 bytes an entry (an entry
/// takes at least 6), so what is held stays in proportion to the image,
/// whatever its entries claim.
struct Indexed {
    name: String,
    data: Arc<[u8]>,
    /// (key, where the entry's message starts, its length), by key; the
    /// first entry of a key wins.
    index: Vec<(u32, u32, u32)>,
}

impl Indexed {
    /// Indexes image `name` by the key `key` takes from each entry decoded
    /// as `K`; `None` if the store has no such image.
    fn load<K: Message + Default>(
        store: &dyn ImageStore,
        name: &str,
        magic: u32,
        key: impl Fn(&K) -> u32,
    ) -> Result<Option<Indexed>> {
        let Some(data) = store.read(name)? else {
            return Ok(None);
        };
        let full = format!("{}/{name}", store.location());
        let data: Arc<[u8]> = data.into();
        let mut img = Image::parse(full.clone(), Arc::clone(&data), magic)?;
        let mut index = Vec::new();
        while let Some((at, bytes)) = img.next_raw()? {
            let k = K::decode(bytes)
                .with_context(|| format!("{full}: offset {at}: cannot decode entry"))?;
            let (start, len) = (u32::try_from(at + 4), u32::try_from(bytes.len()));
            let (Ok(start), Ok(len)) = (start, len) else {
                bail!("{full}: offset {at}: beyond 4 GiB, larger than any image criu2core reads");
            };
            if index.len() >= MAX_FILE_ENTRIES {
                return Err(crate::error::fault(crate::ErrorKind::Limit, format!("{full}: offset {at}: more than {MAX_FILE_ENTRIES} entries, more than criu2core reads")));
            }
            index.push((key(&k), start, len));
        }
        index.sort_by_key(|e| e.0);
        index.dedup_by_key(|e| e.0);
        Ok(Some(Indexed {
            name: full,
            data,
            index,
        }))
    }

    /// The raw message of entry `key`, with its offset.
    fn raw(&self, key: u32) -> Option<(usize, &[u8])> {
        let i = self.index.binary_search_by_key(&key, |e| e.0).ok()?;
        let (_, start, len) = self.index[i];
        let (start, len) = (start as usize, len as usize);
        Some((start - 4, self.data.get(start..start + len)?))
    }

    /// Entry `key` decoded as `M`.
    fn get<M: Message + Default>(&self, key: u32) -> Result<Option<M>> {
        match self.raw(key) {
            None => Ok(None),
            Some((at, bytes)) => M::decode(bytes)
                .map(Some)
                .with_context(|| format!("{}: offset {at}: cannot decode entry", self.name)),
        }
    }

    /// Every entry's raw message, by key.
    fn all(&self) -> impl Iterator<Item = (u32, usize, &[u8])> + '_ {
        self.index.iter().filter_map(|&(k, start, len)| {
            let (start, len) = (start as usize, len as usize);
            Some((k, start - 4, self.data.get(start..start + len)?))
        })
    }
}

impl std::fmt::Debug for Indexed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Indexed")
            .field("name", &self.name)
            .field("entries", &self.index.len())
            .finish()
    }
}

/// The file images of a checkpoint, read once for all its processes.
#[derive(Debug, Default)]
pub struct FileTables {
    /// files.img, by file id.
    files: Option<Indexed>,
    /// The per-kind images of CRIU before files.img, by file id.
    per_kind: Vec<(proto::FdType, Indexed)>,
    /// tty-info.img, by id.
    ttys: Option<Indexed>,
    memfd_names: HashMap<u64, Vec<u8>>,
    deleted: HashSet<u32>,
    /// Bytes queued for a socket (by its file id), from sk-queues.img.
    sk_queued: HashMap<u32, u64>,
    /// Bytes queued in a pipe or fifo (by its inode).
    pipe_queued: HashMap<u32, u64>,
    /// The names of the named unix sockets, by inode.
    unix_names: HashMap<u32, Vec<u8>>,
}

/// Decodes every entry of image `name` as `M`, if the store has it.
fn entries<M: Message + Default>(store: &dyn ImageStore, name: &str, magic: u32) -> Result<Vec<M>> {
    match read_image(store, name, magic)? {
        Some(mut img) => img.all(),
        None => Ok(Vec::new()),
    }
}

/// Sums the payloads that follow each entry of a queue image (sk-queues,
/// pipes-data, fifo-data) per key.
fn queued<M: Message + Default>(
    store: &dyn ImageStore,
    name: &str,
    magic: u32,
    key_len: impl Fn(&M) -> (u32, u64),
    into: &mut HashMap<u32, u64>,
) -> Result<()> {
    if let Some(mut img) = read_image(store, name, magic)? {
        while let Some(e) = img.entry::<M>()? {
            let (key, len) = key_len(&e);
            img.skip(len)?;
            *into.entry(key).or_insert(0) += len;
        }
    }
    Ok(())
}

/// The descriptors that need nothing but their own entry: event and
/// notification files (eventfd, epoll, inotify, fanotify, signalfd,
/// timerfd) and kernel objects (namespaces, tun, BPF maps, pidfds,
/// external files); `None` for any other type, or where the entry lacks
/// its type's fields.
fn event_or_kernel_object(kind: proto::FdType, f: &proto::FileDescEntry) -> Option<FileObject> {
    use proto::FdType as T;
    match kind {
        T::Eventfd => f
            .efd
            .as_ref()
            .map(|e| FileObject::Eventfd { counter: e.counter }),
        T::Eventpoll => f.epfd.as_ref().map(|e| FileObject::Eventpoll {
            targets: e.tfd.iter().take(MAX_LISTED).map(|t| t.tfd).collect(),
        }),
        T::Inotify => f.ify.as_ref().map(|e| FileObject::Inotify {
            watches: e.wd.iter().take(MAX_LISTED).map(|w| w.i_ino).collect(),
        }),
        T::Fanotify => Some(FileObject::Fanotify),
        T::Signalfd => f
            .sgfd
            .as_ref()
            .map(|e| FileObject::Signalfd { mask: e.sigmask }),
        T::Timerfd => f.tfd.as_ref().map(|e| FileObject::Timerfd {
            clock: e.clockid,
            value: (e.vsec, e.vnsec),
            interval: (e.isec, e.insec),
        }),
        T::Ns => f.nsf.as_ref().map(|n| FileObject::Namespace {
            kind: ns_kind(n.ns_cflag),
        }),
        T::Tunf => Some(FileObject::Tun {
            device: f.tunf.as_ref().and_then(|t| t.netdev.clone()),
        }),
        T::Bpfmap => f.bpf.as_ref().map(|b| FileObject::BpfMap {
            name: b.map_name.clone(),
            id: b.map_id,
        }),
        T::Pidfd => f.pidfd.as_ref().map(|p| FileObject::Pidfd { pid: p.nspid }),
        T::Ext => Some(FileObject::External),
        _ => None,
    }
}

/// The per-kind images of CRIU before files.img: (image, magic, kind).
const PER_KIND: [(&str, u32, proto::FdType); 12] = [
    ("reg-files.img", magic::REG_FILES, proto::FdType::Reg),
    ("inetsk.img", magic::INETSK, proto::FdType::Inetsk),
    ("unixsk.img", magic::UNIXSK, proto::FdType::Unixsk),
    ("packetsk.img", magic::PACKETSK, proto::FdType::Packetsk),
    ("netlinksk.img", magic::NETLINK_SK, proto::FdType::Netlinksk),
    ("pipes.img", magic::PIPES, proto::FdType::Pipe),
    ("fifo.img", magic::FIFO, proto::FdType::Fifo),
    ("eventfd.img", magic::EVENTFD_FILE, proto::FdType::Eventfd),
    ("signalfd.img", magic::SIGNALFD, proto::FdType::Signalfd),
    ("timerfd.img", magic::TIMERFD, proto::FdType::Timerfd),
    ("tty.img", magic::TTY_FILES, proto::FdType::Tty),
    ("ns-files.img", magic::NS_FILES, proto::FdType::Ns),
];

impl FileTables {
    /// Reads the file images of `store`; images it lacks mean no such files.
    pub fn load(store: &dyn ImageStore) -> Result<FileTables> {
        let mut t = FileTables {
            files: Indexed::load::<proto::FileEntryKey>(store, "files.img", magic::FILES, |k| {
                k.id.unwrap_or(0)
            })?,
            ttys: Indexed::load::<proto::EntryId>(store, "tty-info.img", magic::TTY_INFO, |k| {
                k.id.unwrap_or(0)
            })?,
            ..Default::default()
        };
        for (name, magic, kind) in PER_KIND {
            if let Some(idx) =
                Indexed::load::<proto::EntryId>(store, name, magic, |k| k.id.unwrap_or(0))?
            {
                t.per_kind.push((kind, idx));
            }
        }
        t.unix_names = t.unix_names()?;
        t.read_memfd_and_remaps(store)?;
        t.read_queues(store)?;
        Ok(t)
    }

    /// The names of the named unix sockets, by inode, from files.img and
    /// unixsk.img (a socket's peer may be another process's, so every one
    /// is named).
    fn unix_names(&self) -> Result<HashMap<u32, Vec<u8>>> {
        let unix = proto::FdType::Unixsk as u32;
        let mut names = HashMap::new();
        for (_, at, bytes) in self.files.iter().flat_map(Indexed::all) {
            let key = proto::FileEntryKey::decode(bytes).unwrap_or_default();
            if key.r#type != Some(unix) {
                continue;
            }
            let e = proto::FileDescEntry::decode(bytes).with_context(|| {
                format!(
                    "{}: offset {at}: cannot decode entry",
                    self.files.as_ref().map_or("", |f| f.name.as_str())
                )
            })?;
            if let Some(u) = e.usk {
                names.insert(u.ino, sockets::unix(&u));
            }
        }
        for (kind, idx) in &self.per_kind {
            if *kind == proto::FdType::Unixsk {
                for (_, at, bytes) in idx.all() {
                    let u = proto::UnixSkEntry::decode(bytes).with_context(|| {
                        format!("{}: offset {at}: cannot decode entry", idx.name)
                    })?;
                    names.entry(u.ino).or_insert_with(|| sockets::unix(&u));
                }
            }
        }
        let mut unix_names = HashMap::new();
        for (ino, s) in names {
            if let Some(Endpoint::Unix(name)) = s.local {
                if !name.is_empty() {
                    unix_names.insert(ino, name);
                }
            }
        }
        Ok(unix_names)
    }

    /// The names of memfds (memfd.img) and which files were unlinked
    /// while open (remap-fpath.img).
    fn read_memfd_and_remaps(&mut self, store: &dyn ImageStore) -> Result<()> {
        for m in entries::<proto::MemfdInode>(store, "memfd.img", magic::MEMFD_INODE)? {
            self.memfd_names.insert(m.inode_id, m.name);
        }
        for r in entries::<proto::RemapFilePath>(store, "remap-fpath.img", magic::REMAP_FPATH)? {
            // LINKED (0) and GHOST (1) remaps stand for files unlinked while open.
            if r.remap_type.unwrap_or(0) <= 1 {
                self.deleted.insert(r.orig_id);
            }
        }
        Ok(())
    }

    /// The bytes queued in sockets (sk-queues.img) and in pipes and fifos
    /// (pipes-data.img, fifo-data.img).
    fn read_queues(&mut self, store: &dyn ImageStore) -> Result<()> {
        queued::<proto::SkPacketEntry>(
            store,
            "sk-queues.img",
            magic::SK_QUEUES,
            |e| (e.id_for, u64::from(e.length)),
            &mut self.sk_queued,
        )?;
        for (name, magic) in [
            ("pipes-data.img", magic::PIPES_DATA),
            ("fifo-data.img", magic::FIFO_DATA),
        ] {
            queued::<proto::PipeDataEntry>(
                store,
                name,
                magic,
                |e| (e.pipe_id, u64::from(e.bytes)),
                &mut self.pipe_queued,
            )?;
        }
        Ok(())
    }

    /// File `id`: its files.img entry, or one made of its entry in a
    /// per-kind image.
    fn entry(&self, id: u32) -> Result<Option<proto::FileDescEntry>> {
        if let Some(e) = self
            .files
            .as_ref()
            .map(|f| f.get(id))
            .transpose()?
            .flatten()
        {
            return Ok(Some(e));
        }
        use proto::FdType as T;
        for (kind, idx) in &self.per_kind {
            let mut e = proto::FileDescEntry {
                r#type: *kind as i32,
                id,
                ..Default::default()
            };
            let found = match kind {
                T::Reg => idx.get(id)?.map(|m| e.reg = Some(m)),
                T::Inetsk => idx.get(id)?.map(|m| e.isk = Some(m)),
                T::Unixsk => idx.get(id)?.map(|m| e.usk = Some(m)),
                T::Packetsk => idx.get(id)?.map(|m| e.psk = Some(m)),
                T::Netlinksk => idx.get(id)?.map(|m| e.nlsk = Some(m)),
                T::Pipe => idx.get(id)?.map(|m| e.pipe = Some(m)),
                T::Fifo => idx.get(id)?.map(|m| e.fifo = Some(m)),
                T::Eventfd => idx.get(id)?.map(|m| e.efd = Some(m)),
                T::Signalfd => idx.get(id)?.map(|m| e.sgfd = Some(m)),
                T::Timerfd => idx.get(id)?.map(|m| e.tfd = Some(m)),
                T::Tty => idx.get(id)?.map(|m| e.tty = Some(m)),
                T::Ns => idx.get(id)?.map(|m| e.nsf = Some(m)),
                _ => None,
            };
            if found.is_some() {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    /// The path of regular file `id`, as the kernel shows it.
    fn path(&self, id: u32) -> Result<Option<Vec<u8>>> {
        let Some(reg) = self.entry(id)?.and_then(|e| e.reg) else {
            return Ok(None);
        };
        let mut p = reg.name;
        if self.deleted.contains(&id) {
            p.extend_from_slice(b" (deleted)");
        }
        Ok(Some(p))
    }

    /// What process `pid` had open; `big_endian`: the byte order of the
    /// host it ran on (CRIU saves IP addresses in it).
    pub fn process(
        &self,
        store: &dyn ImageStore,
        pid: u32,
        big_endian: bool,
    ) -> Result<ProcessFiles> {
        let loc = store.location();
        let ids = match read_image(store, &format!("ids-{pid}.img"), magic::IDS)? {
            Some(mut img) => img.entry::<proto::TaskKobjIds>()?,
            None => None,
        };
        // CRIU before ids images named the fd table after the pid.
        let table = ids.as_ref().map_or(pid, |i| i.files_id);
        let name = format!("fdinfo-{table}.img");
        let mut fds = Vec::new();
        if let Some(mut img) = read_image(store, &name, magic::FDINFO)? {
            while let Some(e) = img.entry::<proto::FdinfoEntry>()? {
                if fds.len() >= MAX_FDS {
                    return Err(crate::error::fault(crate::ErrorKind::Limit, format!("{loc}/{name}: more than {MAX_FDS} descriptors, Linux's default limit (fs.nr_open); not listed")));
                }
                let object = match self.entry(e.id)? {
                    Some(f) => self
                        .object(store, &f, big_endian)
                        .with_context(|| format!("{loc}/{name}: fd {}: file id {}", e.fd, e.id))?,
                    None => FileObject::Unknown {
                        type_code: e.r#type,
                    },
                };
                fds.push(OpenFile {
                    fd: e.fd,
                    id: e.id,
                    cloexec: e.flags & 1 != 0,
                    object,
                });
            }
        }
        fds.sort_by_key(|f| f.fd);
        let fs = match read_image(store, &format!("fs-{pid}.img"), magic::FS)? {
            Some(mut img) => img.entry::<proto::FsEntry>()?,
            None => None,
        };
        Ok(ProcessFiles {
            fds,
            cwd: self.regf_path(fs.as_ref().map(|f| f.cwd_id))?,
            root: self.regf_path(fs.as_ref().map(|f| f.root_id))?,
            mount_namespace: ids.and_then(|i| i.mnt_ns_id),
        })
    }

    /// What file entry `f` is, by its type; `Unknown` where its type is
    /// not one criu2core knows or its entry lacks the type's fields.
    fn object(
        &self,
        store: &dyn ImageStore,
        f: &proto::FileDescEntry,
        big_endian: bool,
    ) -> Result<FileObject> {
        use proto::FdType as T;
        let found = match T::try_from(f.r#type) {
            Ok(T::Reg) => f.reg.as_ref().map(|r| self.regular(f.id, r)).transpose()?,
            Ok(T::Pipe) => f.pipe.as_ref().map(|p| self.pipe(p)),
            Ok(T::Fifo) => f.fifo.as_ref().map(|p| self.fifo(p)).transpose()?,
            Ok(T::Inetsk | T::Unixsk | T::Netlinksk | T::Packetsk) => {
                self.socket(store, f, big_endian)?
            }
            Ok(T::Tty) => f.tty.as_ref().map(|t| self.tty(t)).transpose()?,
            Ok(T::Memfd) => f.memfd.as_ref().map(|m| self.memfd(m)),
            Ok(kind) => event_or_kernel_object(kind, f),
            Err(_) => None,
        };
        Ok(found.unwrap_or(FileObject::Unknown {
            type_code: f.r#type,
        }))
    }

    /// Regular file `id` (or directory), whose entry is `r`.
    fn regular(&self, id: u32, r: &proto::RegFile) -> Result<FileObject> {
        Ok(FileObject::Regular {
            path: self.path(id)?.unwrap_or_else(|| r.name.clone()),
            flags: r.flags,
            pos: r.pos,
            size: r.size,
            directory: r.mode.is_some_and(|m| m & 0o170000 == 0o040000),
        })
    }

    /// One end of a pipe, with the bytes queued in it.
    fn pipe(&self, p: &proto::PipeEntry) -> FileObject {
        FileObject::Pipe {
            inode: p.pipe_id,
            write: p.flags & 3 == 1,
            queued: self.pipe_queued.get(&p.pipe_id).copied().unwrap_or(0),
        }
    }

    /// A named pipe, with its path and the bytes queued in it.
    fn fifo(&self, p: &proto::FifoEntry) -> Result<FileObject> {
        Ok(FileObject::Fifo {
            inode: p.pipe_id,
            path: self.regf_path(p.regf_id)?,
            queued: self.pipe_queued.get(&p.pipe_id).copied().unwrap_or(0),
        })
    }

    /// A socket of any family, with its queues and (for a unix socket) its
    /// peer's name; `None` where the entry lacks its family's fields.
    fn socket(
        &self,
        store: &dyn ImageStore,
        f: &proto::FileDescEntry,
        big_endian: bool,
    ) -> Result<Option<FileObject>> {
        use proto::FdType as T;
        let s = match T::try_from(f.r#type) {
            Ok(T::Inetsk) => match &f.isk {
                Some(e) => {
                    let mut s = sockets::inet(e, big_endian);
                    s.queues = self.inet_queues(store, e)?;
                    Some(s)
                }
                None => None,
            },
            Ok(T::Unixsk) => f.usk.as_ref().map(|e| {
                let mut s = sockets::unix(e);
                // The peer may be another process's, or nameless.
                s.remote = s
                    .peer
                    .and_then(|p| self.unix_names.get(&p))
                    .map(|n| Endpoint::Unix(n.clone()));
                s.queues = self
                    .sk_queued
                    .get(&e.id)
                    .map(|&recv| Queues { recv, send: 0 });
                s
            }),
            Ok(T::Netlinksk) => f.nlsk.as_ref().map(sockets::netlink),
            Ok(T::Packetsk) => f.psk.as_ref().map(|e| sockets::packet(e, big_endian)),
            _ => None,
        };
        Ok(s.map(|s| FileObject::Socket(Box::new(s))))
    }

    /// A memfd, named from memfd.img.
    fn memfd(&self, m: &proto::MemfdFile) -> FileObject {
        FileObject::Memfd {
            name: self
                .memfd_names
                .get(&u64::from(m.inode_id))
                .cloned()
                .unwrap_or_default(),
            pos: m.pos,
        }
    }

    /// An inet socket's queues: an established TCP connection's from its
    /// tcp-stream image, a datagram socket's from sk-queues.img.
    fn inet_queues(
        &self,
        store: &dyn ImageStore,
        e: &proto::InetSkEntry,
    ) -> Result<Option<Queues>> {
        if e.proto == 6 {
            let name = format!("tcp-stream-{:x}.img", e.ino);
            return Ok(match read_image(store, &name, magic::TCP_STREAM)? {
                Some(mut img) => img.entry::<proto::TcpStreamEntry>()?.map(|t| Queues {
                    recv: u64::from(t.inq_len),
                    send: u64::from(t.outq_len),
                }),
                None => None,
            });
        }
        Ok(self
            .sk_queued
            .get(&e.id)
            .map(|&recv| Queues { recv, send: 0 }))
    }

    /// The path of regular file `id`, if there is an id.
    fn regf_path(&self, id: Option<u32>) -> Result<Option<Vec<u8>>> {
        match id {
            Some(id) => self.path(id),
            None => Ok(None),
        }
    }

    fn tty(&self, t: &proto::TtyFileEntry) -> Result<FileObject> {
        let info: Option<proto::TtyInfoEntry> = match &self.ttys {
            Some(idx) => idx.get(t.tty_info_id)?,
            None => None,
        };
        let info = info.as_ref();
        let kind = match info.map(|i| i.r#type) {
            Some(1) => "pty",
            Some(2) => "console",
            Some(3) => "vt",
            Some(4) => "ctty",
            Some(5) => "external",
            Some(6) => "serial",
            _ => "unknown",
        };
        // The kernel's dev_t encoding: major 5 minor 2 is /dev/ptmx.
        let rdev = info.map_or(0, |i| i.rdev);
        let (major, minor) = (
            (rdev & 0xfff00) >> 8,
            (rdev & 0xff) | ((rdev >> 12) & 0xfff00),
        );
        Ok(FileObject::Tty {
            path: self.regf_path(t.regf_id)?,
            kind,
            index: info.and_then(|i| i.pty.as_ref()).map(|p| p.index),
            master: kind == "pty" && major == 5 && minor == 2,
        })
    }
}

/// Bytes CRIU saved for a descriptor outside the process's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedData {
    /// Which queue: "tcp-recv", "tcp-send", "socket-queue", "pipe", "fifo".
    pub source: &'static str,
    /// The bytes, in queue order (a socket's packets one after another).
    pub data: Vec<u8>,
}

impl FileTables {
    /// The bytes queued for descriptor `f` that the checkpoint holds: an
    /// established TCP connection's receive and send queues
    /// (`tcp-stream-<ino>.img`), a socket's queued packets (sk-queues.img),
    /// a pipe's or FIFO's buffer (pipes-data.img, fifo-data.img).
    pub fn queued_data(&self, store: &dyn ImageStore, f: &OpenFile) -> Result<Vec<QueuedData>> {
        let mut out = Vec::new();
        let (name, magic, key, source) = match &f.object {
            FileObject::Pipe { inode, queued, .. } if *queued > 0 => {
                ("pipes-data.img", magic::PIPES_DATA, *inode, "pipe")
            }
            FileObject::Fifo { inode, queued, .. } if *queued > 0 => {
                ("fifo-data.img", magic::FIFO_DATA, *inode, "fifo")
            }
            FileObject::Socket(s) if s.protocol == "tcp" && s.queues.is_some() => {
                let name = format!("tcp-stream-{:x}.img", s.inode);
                if let Some(mut img) = read_image(store, &name, magic::TCP_STREAM)? {
                    if let Some(t) = img.entry::<proto::TcpStreamEntry>()? {
                        for (len, source) in [(t.inq_len, "tcp-recv"), (t.outq_len, "tcp-send")] {
                            let data = img.payload(u64::from(len))?.to_vec();
                            if !data.is_empty() {
                                out.push(QueuedData { source, data });
                            }
                        }
                    }
                }
                return Ok(out);
            }
            FileObject::Socket(s) if s.queues.is_some() => {
                ("sk-queues.img", magic::SK_QUEUES, f.id, "socket-queue")
            }
            _ => return Ok(out),
        };
        let mut data = Vec::new();
        if let Some(mut img) = read_image(store, name, magic)? {
            let sk = source == "socket-queue";
            while let Some((id, len)) = match sk {
                true => img
                    .entry::<proto::SkPacketEntry>()?
                    .map(|e| (e.id_for, u64::from(e.length))),
                false => img
                    .entry::<proto::PipeDataEntry>()?
                    .map(|e| (e.pipe_id, u64::from(e.bytes))),
            } {
                let bytes = img.payload(len)?;
                if id == key {
                    data.extend_from_slice(bytes);
                }
            }
        }
        if !data.is_empty() {
            out.push(QueuedData { source, data });
        }
        Ok(out)
    }
}

/// The namespace a CLONE_NEW* flag creates.
fn ns_kind(cflag: u32) -> &'static str {
    match cflag {
        0x0002_0000 => "mnt",
        0x0200_0000 => "cgroup",
        0x0400_0000 => "uts",
        0x0800_0000 => "ipc",
        0x1000_0000 => "user",
        0x2000_0000 => "pid",
        0x4000_0000 => "net",
        0x0000_0080 => "time",
        _ => "unknown",
    }
}
