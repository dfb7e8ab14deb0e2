//! Decoding CRIU images into the process model: the process tree and file
//! tables of a set of images ([`Images`]), each process's threads
//! ([`regs`]: their register state, one module per architecture) and
//! memory ([`memory`]: mappings, and the page runs the pagemaps describe),
//! through one implementation of image framing ([`mod@image`]) over a store of
//! image files ([`store`]); and, for inspect, the open files, sockets and
//! mounts ([`fds`], [`sockets`], [`mounts`]). Nothing here knows ELF.

pub mod fds;
pub mod files;
pub mod ghost;
pub(crate) mod guess;
pub mod image;
pub mod magic;
pub(crate) mod members;
pub mod memory;
pub mod mounts;
pub mod pagemap;
pub(crate) mod regs;
pub mod sockets;
pub mod store;

/// Messages of CRIU's image format, generated from `proto/*.proto`.
#[allow(missing_docs, dead_code, clippy::all, clippy::pedantic)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/criu.rs"));
}

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use prost::Message;

use crate::error::{corrupt, fault, ErrorKind, Fault};
use crate::model::Arch;
use crate::model::{
    ExitStatus, Loaded, MappingKind, Process, ProcessState, Thread, TreeEntry, Zombie,
};
use crate::rootfs::FileView;
use crate::warning::{Warning, WarningKind};
use files::FileTable;
use image::{Image, ImageReader};
use store::ImageStore;

/// Most threads one process may have. Linux allows up to pid_max (2^22),
/// but a real process has at most thousands; criu2core holds each
/// thread's registers (up to about 3 KiB with AVX-512) while it writes a
/// core, so this bounds that to about 200 MiB.
pub const MAX_THREADS: usize = 1 << 16;

/// Most processes and threads a checkpoint may list in all: they share one
/// PID namespace, which holds at most 2^22 ids (PID_MAX_LIMIT).
pub const MAX_PIDS: usize = 1 << 22;

/// Longest pstree.img entry accepted: a process's ids and [`MAX_THREADS`]
/// thread ids of at most 6 bytes each.
const MAX_PSTREE_ENTRY_BYTES: usize = MAX_THREADS * 6 + 64;

/// Most VMAs one process may have: Linux's default vm.max_map_count is
/// 65,530 and tuned databases raise it to a few hundred thousand. Each
/// mapping takes about 150 bytes while its process is converted.
pub const MAX_VMAS: usize = 1 << 21;

/// How many pids or images a warning names (the rest are counted).
const NAMED: usize = 8;

/// AT_PAGESZ in the auxiliary vector.
const AT_PAGESZ: u64 = 6;

/// Smallest and largest page sizes accepted (AT_PAGESZ).
pub const MIN_PAGE_SIZE: u64 = 4096;
/// See [`MIN_PAGE_SIZE`].
pub const MAX_PAGE_SIZE: u64 = 1 << 20;

/// The page size an mm image's auxiliary vector records, read either as a
/// 64-bit or as a 32-bit (compat) task's vector, where it is a sane one.
/// For sizing things before the process is decoded; decoding checks it
/// against the architecture.
pub fn page_size_hint(mm: &proto::MmHead) -> Option<u64> {
    let sane =
        |v: u64| (v.is_power_of_two() && (MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&v)).then_some(v);
    [Arch::X86_64, Arch::I386].into_iter().find_map(|a| {
        auxv_pairs(&mm.saved_auxv, a)
            .ok()?
            .into_iter()
            .find(|p| p.0 == AT_PAGESZ)
            .and_then(|p| sane(p.1))
    })
}

/// A set of CRIU images: the process tree, file tables and the store
/// behind them.
pub struct Images {
    store: Arc<dyn ImageStore>,
    /// inventory.img, if present.
    pub inventory: Option<proto::Inventory>,
    /// pstree.img: every process, the root first.
    pub tree: Vec<TreeEntry>,
    files: FileTable,
    /// Pids whose pstree entries contradict each other or another's, with
    /// why: loading them is an error.
    unsound: HashMap<u32, String>,
    /// What is wrong with the checkpoint as a whole but did not stop it
    /// being read.
    pub warnings: Vec<Warning>,
}

/// Checks the process tree: a pid listed twice, a thread listed by two
/// processes, a process that is its own ancestor. Returns the pids that
/// cannot be converted soundly (with why) and warnings.
fn check_tree(tree: &[TreeEntry], at: &[u64], loc: &str) -> (HashMap<u32, String>, Vec<Warning>) {
    let name = format!("{loc}/pstree.img");
    let mut unsound: HashMap<u32, String> = HashMap::new();
    let mut warnings = Vec::new();
    let mut first: HashMap<u32, usize> = HashMap::with_capacity(tree.len());
    for (i, e) in tree.iter().enumerate() {
        match first.get(&e.pid) {
            None => {
                first.insert(e.pid, i);
            }
            Some(&j) if tree[j] == *e => warnings.push(
                Warning::new(
                    WarningKind::EntryIgnored,
                    format!(
                        "{name}: pid {} is listed twice (offsets {} and {}), the same both times; converted once",
                        e.pid, at[j], at[i]
                    ),
                )
                .about(&name),
            ),
            Some(&j) => {
                unsound.entry(e.pid).or_insert_with(|| {
                    format!(
                        "{name}: pid {} is listed twice, differently (offsets {} and {}); which is right cannot be told",
                        e.pid, at[j], at[i]
                    )
                });
            }
        }
    }
    // Every thread id belongs to one process (its leader's pid included).
    let mut owner: HashMap<u32, u32> = HashMap::new();
    for (i, e) in tree.iter().enumerate() {
        if first.get(&e.pid) != Some(&i) {
            continue;
        }
        for tid in std::iter::once(e.pid).chain(e.threads.iter().copied().filter(|&t| t != e.pid)) {
            match owner.insert(tid, e.pid) {
                Some(other) if other != e.pid => {
                    let why = format!(
                        "{name}: thread {tid} is listed by pid {other} and by pid {}; its registers cannot belong to both",
                        e.pid
                    );
                    unsound.entry(other).or_insert_with(|| why.clone());
                    unsound.entry(e.pid).or_insert(why);
                }
                _ => {}
            }
        }
    }
    warnings.extend(parent_loops(tree, &first, &name));
    (unsound, warnings)
}

/// A warning for each loop of parents in `tree` (`first`: where each pid
/// is listed first): following ppid must leave the tree (0, or a pid
/// outside it). `name` names pstree.img.
fn parent_loops(tree: &[TreeEntry], first: &HashMap<u32, usize>, name: &str) -> Vec<Warning> {
    let mut warnings = Vec::new();
    let parent: HashMap<u32, u32> = first.keys().map(|&p| (p, tree[first[&p]].ppid)).collect();
    let mut done: HashSet<u32> = HashSet::new();
    let mut pids: Vec<u32> = first.keys().copied().collect();
    pids.sort_unstable();
    for start in pids {
        let mut path = Vec::new();
        let mut on_path = HashSet::new();
        let mut p = start;
        while parent.contains_key(&p) && !done.contains(&p) {
            if !on_path.insert(p) {
                let from = path.iter().position(|&q| q == p).unwrap_or(0);
                let ring: Vec<String> = path[from..]
                    .iter()
                    .chain(std::iter::once(&p))
                    .map(u32::to_string)
                    .collect();
                let message = if ring.len() == 2 {
                    format!("{name}: pid {p} is its own parent")
                } else {
                    format!(
                        "{name}: pids {} are each other's ancestors",
                        ring.join(" -> ")
                    )
                };
                warnings.push(Warning::new(WarningKind::InconsistentTree, message).about(name));
                break;
            }
            path.push(p);
            p = parent[&p];
        }
        done.extend(path);
    }
    warnings
}

/// The ids of the pages files the pagemaps of `store` name, or `None` if
/// some pagemap's head cannot be read (its process's conversion says why).
fn named_pages(store: &dyn ImageStore) -> Result<Option<HashSet<u32>>> {
    let mut named = HashSet::new();
    for name in store.names()? {
        if !(name.starts_with("pagemap-") && name.ends_with(".img")) {
            continue;
        }
        let Some((stream, len)) = store.open(&name)? else {
            continue;
        };
        let head = ImageReader::new(name.as_str(), stream, len, magic::PAGEMAP, 4096)
            .and_then(|mut r| r.expect::<proto::PagemapHead>());
        match head {
            Ok(h) => named.insert(h.pages_id),
            Err(_) => return Ok(None),
        };
    }
    Ok(Some(named))
}

/// Warnings naming the images of processes that the images hold but
/// pstree.img does not list, and the pages files no pagemap names: none of
/// them is converted.
fn unlisted_images(store: &dyn ImageStore, tree: &[TreeEntry]) -> Result<Vec<Warning>> {
    let pids: HashSet<u32> = tree.iter().map(|e| e.pid).collect();
    let tids: HashSet<u32> = tree
        .iter()
        .flat_map(|e| e.threads.iter().copied())
        .chain(pids.iter().copied())
        .collect();
    let (mut unlisted, mut unnamed) = (Vec::new(), Vec::new());
    let mut named: Option<Option<HashSet<u32>>> = None;
    for name in store.names()? {
        let num = |prefix: &str| {
            let d = name.strip_prefix(prefix)?.strip_suffix(".img")?;
            d.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| d.parse::<u32>().ok())?
        };
        match (num("core-"), num("mm-"), num("pagemap-"), num("pages-")) {
            (Some(t), _, _, _) if !tids.contains(&t) => unlisted.push(name),
            (_, Some(p), _, _) | (_, _, Some(p), _) if !pids.contains(&p) => unlisted.push(name),
            (_, _, _, Some(id)) => {
                if named.is_none() {
                    named = Some(named_pages(store)?);
                }
                if named
                    .as_ref()
                    .and_then(Option::as_ref)
                    .is_some_and(|n| !n.contains(&id))
                {
                    unnamed.push(name);
                }
            }
            _ => {}
        }
    }
    let loc = store.location();
    // About the one image, where it is one; else the directory of them.
    let about = |names: &[String]| match names {
        [one] => format!("{loc}/{one}"),
        _ => loc.clone(),
    };
    let list = |mut names: Vec<String>| {
        let more = names.len().saturating_sub(NAMED);
        names.truncate(NAMED);
        let more = if more > 0 {
            format!(" and {more} more images")
        } else {
            String::new()
        };
        format!("{}{more}", names.join(", "))
    };
    let mut out = Vec::new();
    if !unlisted.is_empty() {
        let file = about(&unlisted);
        out.push(
            Warning::new(
                WarningKind::EntryIgnored,
                format!(
                    "{loc}: {} belong to no process pstree.img lists; not converted",
                    list(unlisted)
                ),
            )
            .about(file),
        );
    }
    if !unnamed.is_empty() {
        let file = about(&unnamed);
        out.push(
            Warning::new(
                WarningKind::EntryIgnored,
                format!("{loc}: {} named by no pagemap; not used", list(unnamed)),
            )
            .about(file),
        );
    }
    Ok(out)
}

/// Options for loading processes.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions<'a> {
    /// Where to find the contents of file-backed pages.
    pub root: Option<&'a FileView>,
    /// Leave out the contents of files deleted while open that the
    /// checkpoint keeps (a search of memory alone).
    pub skip_ghosts: bool,
}

fn image(store: &dyn ImageStore, name: &str, magic: u32) -> Result<Image> {
    let data = store
        .read(name)?
        .with_context(|| format!("{}: {name} is missing", store.location()))?;
    Image::parse(format!("{}/{name}", store.location()), data, magic)
}

/// The process tree pstree.img lists, with the offset of each entry.
fn read_tree(store: &dyn ImageStore) -> Result<(Vec<TreeEntry>, Vec<u64>)> {
    let loc = store.location();
    let (stream, len) = store
        .open("pstree.img")?
        .with_context(|| format!("{loc}: pstree.img is missing"))?;
    let mut pstree = ImageReader::new(
        format!("{loc}/pstree.img"),
        stream,
        len,
        magic::PSTREE,
        MAX_PSTREE_ENTRY_BYTES,
    )?;
    let mut tree: Vec<TreeEntry> = Vec::new();
    let mut at = Vec::new();
    let mut ids = 0usize;
    loop {
        let offset = pstree.offset();
        let Some(e) = pstree.entry::<proto::PstreeEntry>()? else {
            break;
        };
        if e.threads.len() > MAX_THREADS {
            return Err(fault(
                ErrorKind::Limit,
                format!(
                    "{loc}/pstree.img: offset {offset}: pid {} has {} threads, more than criu2core converts ({MAX_THREADS})",
                    e.pid,
                    e.threads.len()
                ),
            ));
        }
        ids += e.threads.len().max(1);
        if ids > MAX_PIDS {
            return Err(fault(
                ErrorKind::Limit,
                format!(
                    "{loc}/pstree.img: offset {offset}: more than {MAX_PIDS} processes and threads, more than one PID namespace holds"
                ),
            ));
        }
        tree.push(TreeEntry {
            pid: e.pid,
            ppid: e.ppid,
            pgid: e.pgid,
            sid: e.sid,
            threads: e.threads,
        });
        at.push(offset);
    }
    Ok((tree, at))
}

impl Images {
    /// Reads the process tree and file tables of the images in `store`.
    pub fn open(store: Arc<dyn ImageStore>) -> Result<Images> {
        let (tree, at) = read_tree(&*store)?;
        Images::with_tree(store, tree, &at)
    }

    /// The images in `store` with the process tree `tree` (whose entries
    /// are at offsets `at` of pstree.img, for messages): the tree read
    /// from pstree.img, or one made up before it was read
    /// ([`guess::guess_tree`]).
    pub(crate) fn with_tree(
        store: Arc<dyn ImageStore>,
        tree: Vec<TreeEntry>,
        at: &[u64],
    ) -> Result<Images> {
        let inventory = match store.read("inventory.img")? {
            Some(data) => Some(
                Image::parse(
                    format!("{}/inventory.img", store.location()),
                    data,
                    magic::INVENTORY,
                )?
                .expect()?,
            ),
            None => None,
        };
        let loc = store.location();
        if tree.is_empty() {
            bail!("{loc}/pstree.img lists no processes");
        }
        let (unsound, mut warnings) = check_tree(&tree, at, &loc);
        warnings.extend(unlisted_images(&*store, &tree)?);
        let files = FileTable::load(&*store)?;
        Ok(Images {
            store,
            inventory,
            tree,
            files,
            unsound,
            warnings,
        })
    }

    /// The paths of the regular files the checkpoint's processes had open
    /// or mapped, as the kernel named them (not deleted ones).
    pub fn regular_names(&self) -> impl Iterator<Item = &[u8]> {
        self.files.regular_names()
    }

    /// The images.
    pub fn store(&self) -> &Arc<dyn ImageStore> {
        &self.store
    }

    /// Pids of every process, in pstree order, each once.
    pub fn pids(&self) -> Vec<u32> {
        let mut seen = HashSet::new();
        self.tree
            .iter()
            .map(|e| e.pid)
            .filter(|p| seen.insert(*p))
            .collect()
    }

    /// Reads one thread's core image.
    fn core(&self, tid: u32) -> Result<proto::Core> {
        image(&*self.store, &format!("core-{tid}.img"), magic::CORE)?.expect()
    }

    /// The tree entry of `pid`, if it is there and sound.
    fn entry(&self, pid: u32) -> Result<&TreeEntry> {
        let entry = self.tree.iter().find(|e| e.pid == pid).ok_or_else(|| {
            fault(
                ErrorKind::NoSuchProcess,
                format!("pid {pid} is not in {}/pstree.img", self.store.location()),
            )
        })?;
        if let Some(why) = self.unsound.get(&pid) {
            return Err(corrupt(
                format!("{}/pstree.img", self.store.location()),
                None,
                why.clone(),
            ));
        }
        Ok(entry)
    }

    /// Decodes process `pid`.
    pub fn load(&self, pid: u32, opts: LoadOptions<'_>) -> Result<Loaded> {
        let entry = self.entry(pid)?;
        let leader = self.core(pid)?;
        let loc = self.store.location();
        let tc = leader
            .tc
            .as_ref()
            .with_context(|| format!("{loc}/core-{pid}.img has no task state"))?;
        let state = match task_state(tc).with_context(|| format!("{loc}/core-{pid}.img"))? {
            Ok(state) => state,
            Err(exit) => {
                return Ok(Loaded::Zombie(Zombie {
                    pid,
                    comm: tc.comm.clone(),
                    exit,
                }))
            }
        };
        if entry.threads.is_empty() {
            bail!("{loc}/pstree.img lists no threads for pid {pid}");
        }
        let arch = regs::arch_of(&leader).with_context(|| format!("{loc}/core-{pid}.img"))?;
        let threads = self.threads(entry, &leader, tc.blk_sigset, arch)?;
        let mem = self.memory(pid, arch, opts)?;
        tracing::debug!(
            pid,
            arch = arch.name(),
            threads = threads.len(),
            vmas = mem.mapped.mappings.len(),
            page_size = mem.page_size,
            blobs = mem.mapped.blobs.len(),
            "decoded process"
        );
        let creds = leader.thread_core.as_ref().and_then(|t| t.creds.as_ref());
        let mm = &mem.mm;
        Ok(Loaded::Process(Box::new(Process {
            pid,
            ppid: entry.ppid,
            pgid: entry.pgid,
            sid: entry.sid,
            comm: tc.comm.clone(),
            state,
            flags: tc.flags,
            uid: creds.map_or(0, |c| c.uid),
            gid: creds.map_or(0, |c| c.gid),
            arch,
            page_size: mem.page_size,
            threads,
            auxv: mem.auxv,
            arg_range: (mm.arg_start, mm.arg_end),
            env_range: (mm.env_start, mm.env_end),
            exe: self.files.regular_path(mm.exe_file_id),
            mappings: mem.mapped.mappings,
            runs: std::sync::Arc::new(mem.mapped.runs),
            blobs: mem.mapped.blobs,
            source: std::sync::Arc::new(crate::blobio::Files),
            warnings: mem.mapped.warnings,
            files: mem.mapped.files,
            dumps: mem.mapped.dumps,
        })))
    }

    /// The threads of `entry`, the leader (whose core image is `leader`)
    /// first, then the others in pstree order.
    fn threads(
        &self,
        entry: &TreeEntry,
        leader: &proto::Core,
        process_blocked: u64,
        arch: Arch,
    ) -> Result<Vec<Thread>> {
        let (pid, loc) = (entry.pid, self.store.location());
        if entry.threads.len() > MAX_THREADS {
            return Err(fault(
                ErrorKind::Limit,
                format!(
                    "{loc}/pstree.img lists {} threads for pid {pid}, more than Linux allows ({MAX_THREADS})",
                    entry.threads.len()
                ),
            ));
        }
        let mut sorted = entry.threads.clone();
        sorted.sort_unstable();
        if let Some(dup) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(corrupt(
                format!("{loc}/pstree.img"),
                None,
                format!(
                    "{loc}/pstree.img lists thread {} of pid {pid} twice",
                    dup[0]
                ),
            ));
        }
        let tids = std::iter::once(pid).chain(entry.threads.iter().copied().filter(|&t| t != pid));
        let mut threads = Vec::new();
        for tid in tids {
            let other;
            let core = if tid == pid {
                leader
            } else {
                other = self.core(tid)?;
                &other
            };
            let t = thread(core, tid, process_blocked, arch)
                .with_context(|| format!("{loc}/core-{tid}.img"))?;
            threads.push(t);
        }
        Ok(threads)
    }

    /// The memory of process `pid`: its mm entry, auxiliary vector, page
    /// size and mappings.
    fn memory(&self, pid: u32, arch: Arch, opts: LoadOptions<'_>) -> Result<Memory> {
        let mm_name = format!("{}/mm-{pid}.img", self.store.location());
        let mut mm_img = image(&*self.store, &format!("mm-{pid}.img"), magic::MM)?;
        let (mm_at, mm_bytes) = mm_img
            .next_raw()?
            .ok_or_else(|| corrupt(&mm_name, None, format!("{mm_name}: no mm entry")))?;
        let mm = proto::MmHead::decode(mm_bytes).map_err(|e| {
            anyhow::Error::new(e).context(Fault::corrupt(
                &mm_name,
                Some(mm_at as u64),
                format!("{mm_name}: offset {mm_at}: cannot decode mm entry"),
            ))
        })?;
        let auxv = auxv_pairs(&mm.saved_auxv, arch).with_context(|| mm_name.clone())?;
        let page_size = match auxv.iter().find(|p| p.0 == AT_PAGESZ) {
            Some(&(_, ps))
                if ps.is_power_of_two() && (MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&ps) =>
            {
                ps
            }
            Some(&(_, ps)) => bail!("{mm_name}: AT_PAGESZ {ps} is not a page size"),
            None => arch.default_page_size(),
        };
        let count = image::Submessages::new(mm_bytes, MM_VMAS_FIELD).count();
        if count > MAX_VMAS {
            return Err(fault(
                ErrorKind::Limit,
                format!("{mm_name}: {count} VMAs, more than criu2core converts ({MAX_VMAS})"),
            ));
        }
        let vmas = vmas(&mm_name, mm_bytes, mm_at as u64 + 4);
        let mut mapped = memory::MemoryBuilder::new(
            self.store.clone(),
            pid,
            page_size,
            &self.files,
            opts.root,
            arch.big_endian(),
        )
        .skip_ghosts(opts.skip_ghosts)
        .build(vmas, count, &mm_name)?;
        // CRIU does not flag the main stack; the kernel's [stack] is the
        // mapping that holds mm->start_stack.
        if let Some(m) = mapped
            .mappings
            .iter_mut()
            .find(|m| m.start <= mm.start_stack && mm.start_stack < m.end)
        {
            if m.kind == MappingKind::Anonymous {
                m.kind = MappingKind::Stack;
            }
        }
        Ok(Memory {
            mm,
            auxv,
            page_size,
            mapped,
        })
    }
}

/// What a process's mm image says about its memory.
struct Memory {
    mm: proto::MmHead,
    auxv: Vec<(u64, u64)>,
    page_size: u64,
    mapped: memory::Mapped,
}

/// Field number of `vmas` in CRIU's MmEntry.
const MM_VMAS_FIELD: u32 = 14;

/// The VMAs in the bytes of an mm entry that starts at `entry_start` in
/// `mm_name`, decoded one at a time as they are asked for, never all at
/// once.
fn vmas<'a>(
    mm_name: &'a str,
    mm_bytes: &'a [u8],
    entry_start: u64,
) -> impl Iterator<Item = Result<proto::Vma>> + 'a {
    image::Submessages::new(mm_bytes, MM_VMAS_FIELD).map(move |r| match r {
        Ok((at, b)) => {
            let at = entry_start + at as u64;
            proto::Vma::decode(b).map_err(|e| {
                anyhow::Error::new(e).context(Fault::corrupt(
                    mm_name,
                    Some(at),
                    format!("{mm_name}: offset {at}: cannot decode VMA"),
                ))
            })
        }
        Err(at) => {
            let at = entry_start + at as u64;
            Err(corrupt(
                mm_name,
                Some(at),
                format!("{mm_name}: offset {at}: mm entry is corrupt"),
            ))
        }
    })
}

/// The state of a task, from its core image: `Err` with how it ended for a
/// zombie. CRIU writes TASK_ALIVE, TASK_STOPPED, and TASK_DEAD for a zombie
/// (cr-dump.c, dump_one_zombie; its restore makes a zombie of state 2).
/// TASK_ZOMBIE (6) is compel's answer while seizing, never written, but
/// means the same.
fn task_state(tc: &proto::TaskCore) -> Result<std::result::Result<ProcessState, ExitStatus>> {
    Ok(match proto::TaskState::try_from(tc.task_state as i32) {
        Ok(proto::TaskState::TaskDead | proto::TaskState::TaskZombie) => {
            Err(ExitStatus::from_wait_status(tc.exit_code))
        }
        Ok(proto::TaskState::TaskAlive) => Ok(ProcessState::Running),
        Ok(proto::TaskState::TaskStopped) => Ok(ProcessState::Stopped(tc.stop_signo)),
        _ => bail!(
            "task state {} is none CRIU writes (alive 1, dead 2, stopped 3)",
            tc.task_state
        ),
    })
}

/// The auxiliary vector's (key, value) pairs, up to AT_NULL, from mm.img's
/// saved_auxv. CRIU reads /proc/PID/auxv into 64-bit words whatever the
/// task; a 32-bit task's vector is made of 32-bit words, so each saved word
/// of an i386 task holds two of them, the first in its low half.
fn auxv_pairs(saved: &[u64], arch: Arch) -> Result<Vec<(u64, u64)>> {
    let words: Vec<u64> = if arch == Arch::I386 {
        saved
            .iter()
            .flat_map(|w| [w & 0xffff_ffff, w >> 32])
            .collect()
    } else {
        if saved.len() % 2 != 0 {
            bail!("saved auxv has an odd number of words ({})", saved.len());
        }
        saved.to_vec()
    };
    Ok(words
        .chunks_exact(2)
        .map(|p| (p[0], p[1]))
        .take_while(|p| p.0 != 0)
        .collect())
}

fn thread(core: &proto::Core, tid: u32, process_blocked: u64, arch: Arch) -> Result<Thread> {
    let regs = regs::registers(core, arch)?;
    let tc = core.thread_core.as_ref();
    Ok(Thread {
        tid,
        blocked: tc.and_then(|t| t.blk_sigset).unwrap_or(process_blocked),
        pending: pending_mask(tc.and_then(|t| t.signals_private.as_ref()), arch),
        nice: tc.and_then(|t| t.sched_nice).unwrap_or(0),
        regs,
    })
}

/// The signal bitmask of a queue of raw siginfos (bit n-1 for signal n).
fn pending_mask(queue: Option<&proto::SignalQueue>, arch: Arch) -> u64 {
    let big = arch.big_endian();
    queue
        .map(|q| {
            q.signals
                .iter()
                .filter_map(|s| {
                    let b: [u8; 4] = s.raw.get(..4)?.try_into().ok()?;
                    let signo = if big {
                        u32::from_be_bytes(b)
                    } else {
                        u32::from_le_bytes(b)
                    };
                    (1..=64).contains(&signo).then(|| 1u64 << (signo - 1))
                })
                .fold(0, |a, b| a | b)
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auxv_of_a_compat_task_is_unpacked_from_64_bit_words() {
        // /proc/PID/auxv of a 32-bit task read as 64-bit words:
        // (AT_PAGESZ, 4096), (AT_BASE, 0xf7f4d000), (AT_NULL, 0), padding.
        let saved = [4096 << 32 | 6, 0xf7f4_d000 << 32 | 7, 0, 0];
        assert_eq!(
            auxv_pairs(&saved, Arch::I386).unwrap(),
            [(6, 4096), (7, 0xf7f4_d000)]
        );
        // An odd count of words is fine there, not for a 64-bit task.
        assert_eq!(auxv_pairs(&saved[..3], Arch::I386).unwrap().len(), 2);
        assert!(auxv_pairs(&saved[..3], Arch::X86_64).is_err());
        assert_eq!(
            auxv_pairs(&[6, 4096, 0, 0], Arch::X86_64).unwrap(),
            [(6, 4096)]
        );
    }
}
