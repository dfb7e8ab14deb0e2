//! Decoding CRIU images into the process model. Nothing here knows ELF.

pub mod fds;
pub mod files;
pub mod image;
pub mod magic;
pub mod memory;
pub mod mounts;
pub mod pagemap;
pub mod sockets;
pub mod store;
pub mod writer;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use prost::Message;

use crate::arch::{self, Arch, Registers};
use crate::model::{Process, ProcessState, Thread};
use crate::proto;
use crate::rootfs::FileRoots;
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

/// A CRIU checkpoint: its process tree and the images behind it.
pub struct Checkpoint {
    store: Arc<dyn ImageStore>,
    /// inventory.img, if present.
    pub inventory: Option<proto::Inventory>,
    /// pstree.img: every process, the root first.
    pub tree: Vec<proto::PstreeEntry>,
    files: FileTable,
    /// Pids whose pstree entries contradict each other or another's, with
    /// why: loading them is an error.
    unsound: HashMap<u32, String>,
    /// What is wrong with the checkpoint as a whole but did not stop it
    /// being read.
    pub warnings: Vec<String>,
}

/// Checks the process tree: a pid listed twice, a thread listed by two
/// processes, a process that is its own ancestor. Returns the pids that
/// cannot be converted soundly (with why) and warnings.
fn check_tree(
    tree: &[proto::PstreeEntry],
    at: &[u64],
    loc: &str,
) -> (HashMap<u32, String>, Vec<String>) {
    let name = format!("{loc}/pstree.img");
    let mut unsound: HashMap<u32, String> = HashMap::new();
    let mut warnings = Vec::new();
    let mut first: HashMap<u32, usize> = HashMap::with_capacity(tree.len());
    for (i, e) in tree.iter().enumerate() {
        match first.get(&e.pid) {
            None => {
                first.insert(e.pid, i);
            }
            Some(&j) if tree[j] == *e => warnings.push(format!(
                "{name}: pid {} is listed twice (offsets {} and {}), the same both times; converted once",
                e.pid, at[j], at[i]
            )),
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
    // Parents: following ppid must leave the tree (0, or a pid outside it).
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
                warnings.push(if ring.len() == 2 {
                    format!("{name}: pid {p} is its own parent")
                } else {
                    format!(
                        "{name}: pids {} are each other's ancestors",
                        ring.join(" -> ")
                    )
                });
                break;
            }
            path.push(p);
            p = parent[&p];
        }
        done.extend(path);
    }
    (unsound, warnings)
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
fn unlisted_images(store: &dyn ImageStore, tree: &[proto::PstreeEntry]) -> Result<Vec<String>> {
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
        out.push(format!(
            "{}: {} belong to no process pstree.img lists; not converted",
            store.location(),
            list(unlisted)
        ));
    }
    if !unnamed.is_empty() {
        out.push(format!(
            "{}: {} named by no pagemap; not used",
            store.location(),
            list(unnamed)
        ));
    }
    Ok(out)
}

/// What loading one process found.
#[derive(Debug)]
pub enum Loaded {
    /// A process with memory and threads.
    Process(Box<Process>),
    /// A zombie: it has exited and has neither memory nor registers.
    Zombie {
        /// Its pid.
        pid: u32,
        /// Its command name (bytes, as the kernel keeps it).
        comm: Vec<u8>,
        /// How it ended: the wait status CRIU recorded as `exit_code`.
        exit: ExitStatus,
    },
}

/// How a zombie ended, from the wait status CRIU records for it in
/// `TaskCore.exit_code` (the `exit_code` field of /proc/PID/stat, as
/// `waitpid` would return it: `exit(3)` is 768).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExitStatus {
    /// The wait status as recorded.
    pub wait_status: u32,
    /// The status it exited with (`WEXITSTATUS`), if it exited.
    pub exit_status: Option<u32>,
    /// The signal that killed it (`WTERMSIG`), if one did.
    pub signal: Option<u32>,
    /// Whether it dumped core as it died (`WCOREDUMP`).
    pub core_dumped: bool,
}

impl ExitStatus {
    /// Decodes a wait status.
    pub fn from_wait_status(wait_status: u32) -> ExitStatus {
        let low = wait_status & 0x7f;
        ExitStatus {
            wait_status,
            exit_status: (low == 0).then_some((wait_status >> 8) & 0xff),
            signal: (low != 0 && low != 0x7f).then_some(low),
            core_dumped: low != 0 && low != 0x7f && wait_status & 0x80 != 0,
        }
    }
}

/// Names of the signals whose numbers every Linux architecture shares.
fn signal_name(signo: u32) -> Option<&'static str> {
    Some(match signo {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return None,
    })
}

impl std::fmt::Display for ExitStatus {
    /// "exited with status 3 (wait status 768)", "killed by signal 9
    /// (SIGKILL) (wait status 9)", with ", core dumped" where it did.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.exit_status, self.signal) {
            (Some(code), _) => write!(f, "exited with status {code}")?,
            (None, Some(sig)) => {
                write!(f, "killed by signal {sig}")?;
                if let Some(name) = signal_name(sig) {
                    write!(f, " ({name})")?;
                }
                if self.core_dumped {
                    write!(f, ", core dumped")?;
                }
            }
            (None, None) => write!(f, "ended")?,
        }
        write!(f, " (wait status {})", self.wait_status)
    }
}

/// Options for loading processes.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions<'a> {
    /// Where to find the contents of file-backed pages.
    pub root: Option<&'a FileRoots>,
}

fn image(store: &dyn ImageStore, name: &str, magic: u32) -> Result<Image> {
    let data = store
        .read(name)?
        .with_context(|| format!("{}: {name} is missing", store.location()))?;
    Image::parse(format!("{}/{name}", store.location()), data, magic)
}

impl Checkpoint {
    /// Reads the process tree and file tables of the checkpoint in `store`.
    pub fn open(store: Arc<dyn ImageStore>) -> Result<Checkpoint> {
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
        let mut tree: Vec<proto::PstreeEntry> = Vec::new();
        let mut at = Vec::new();
        let mut ids = 0usize;
        loop {
            let offset = pstree.offset();
            let Some(e) = pstree.entry::<proto::PstreeEntry>()? else {
                break;
            };
            if e.threads.len() > MAX_THREADS {
                bail!(
                    "{loc}/pstree.img: offset {offset}: pid {} has {} threads, more than criu2core converts ({MAX_THREADS})",
                    e.pid,
                    e.threads.len()
                );
            }
            ids += e.threads.len().max(1);
            if ids > MAX_PIDS {
                bail!(
                    "{loc}/pstree.img: offset {offset}: more than {MAX_PIDS} processes and threads, more than one PID namespace holds"
                );
            }
            tree.push(e);
            at.push(offset);
        }
        drop(pstree);
        if tree.is_empty() {
            bail!("{loc}/pstree.img lists no processes");
        }
        let (unsound, mut warnings) = check_tree(&tree, &at, &loc);
        warnings.extend(unlisted_images(&*store, &tree)?);
        let files = FileTable::load(&*store)?;
        Ok(Checkpoint {
            store,
            inventory,
            tree,
            files,
            unsound,
            warnings,
        })
    }

    /// The paths of the regular files the checkpoint's processes had open
    /// or mapped, as the keys a rootfs diff is looked up by.
    pub fn regular_file_keys(&self) -> std::collections::HashSet<Vec<u8>> {
        self.files
            .regular_names()
            .filter_map(crate::rootfs::clean_key)
            .collect()
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

    /// Decodes process `pid`.
    pub fn load(&self, pid: u32, opts: LoadOptions<'_>) -> Result<Loaded> {
        let entry =
            self.tree.iter().find(|e| e.pid == pid).with_context(|| {
                format!("pid {pid} is not in {}/pstree.img", self.store.location())
            })?;
        if let Some(why) = self.unsound.get(&pid) {
            bail!("{why}");
        }
        let leader = self.core(pid)?;
        let loc = self.store.location();
        let tc = leader
            .tc
            .as_ref()
            .with_context(|| format!("{loc}/core-{pid}.img has no task state"))?;
        // CRIU writes TASK_ALIVE, TASK_STOPPED, and TASK_DEAD for a zombie
        // (cr-dump.c, dump_one_zombie; its restore makes a zombie of state
        // 2). TASK_ZOMBIE (6) is compel's answer while seizing, never
        // written, but means the same.
        let state = match proto::TaskState::try_from(tc.task_state as i32) {
            Ok(proto::TaskState::TaskDead | proto::TaskState::TaskZombie) => {
                return Ok(Loaded::Zombie {
                    pid,
                    comm: tc.comm.clone(),
                    exit: ExitStatus::from_wait_status(tc.exit_code),
                });
            }
            Ok(proto::TaskState::TaskAlive) => ProcessState::Running,
            Ok(proto::TaskState::TaskStopped) => ProcessState::Stopped(tc.stop_signo),
            _ => bail!(
                "{loc}/core-{pid}.img: task state {} is none CRIU writes (alive 1, dead 2, stopped 3)",
                tc.task_state
            ),
        };
        if entry.threads.is_empty() {
            bail!("{loc}/pstree.img lists no threads for pid {pid}");
        }
        let arch = arch_of(&leader).with_context(|| format!("{loc}/core-{pid}.img"))?;

        if entry.threads.len() > MAX_THREADS {
            bail!(
                "{loc}/pstree.img lists {} threads for pid {pid}, more than Linux allows ({MAX_THREADS})",
                entry.threads.len()
            );
        }
        let mut sorted = entry.threads.clone();
        sorted.sort_unstable();
        if let Some(dup) = sorted.windows(2).find(|w| w[0] == w[1]) {
            bail!(
                "{loc}/pstree.img lists thread {} of pid {pid} twice",
                dup[0]
            );
        }
        // The leader first, then the others in pstree order.
        let tids = std::iter::once(pid).chain(entry.threads.iter().copied().filter(|&t| t != pid));
        let mut threads = Vec::new();
        for tid in tids {
            let core = if tid == pid {
                leader.clone()
            } else {
                self.core(tid)?
            };
            let t = thread(&core, tid, tc.blk_sigset, arch)
                .with_context(|| format!("{loc}/core-{tid}.img"))?;
            threads.push(t);
        }

        let mm_name = format!("{loc}/mm-{pid}.img");
        let mut mm_img = image(&*self.store, &format!("mm-{pid}.img"), magic::MM)?;
        let (mm_at, mm_bytes) = mm_img
            .next_raw()?
            .with_context(|| format!("{mm_name}: no mm entry"))?;
        let mm = proto::MmHead::decode(mm_bytes)
            .with_context(|| format!("{mm_name}: offset {mm_at}: cannot decode mm entry"))?;
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
        // VMAs are decoded one at a time from the entry, never all at once.
        let entry_start = mm_at + 4;
        let vmas = image::Submessages::new(mm_bytes, 14).map(|r| match r {
            Ok((at, b)) => proto::Vma::decode(b).map_err(|e| {
                anyhow::Error::new(e).context(format!(
                    "{mm_name}: offset {}: cannot decode VMA",
                    entry_start + at
                ))
            }),
            Err(at) => Err(anyhow::anyhow!(
                "{mm_name}: offset {}: mm entry is corrupt",
                entry_start + at
            )),
        });
        let count = image::Submessages::new(mm_bytes, 14).count();
        if count > MAX_VMAS {
            bail!("{mm_name}: {count} VMAs, more than criu2core converts ({MAX_VMAS})");
        }
        let mut mapped =
            memory::MemoryBuilder::new(self.store.clone(), pid, page_size, &self.files, opts.root)
                .build(vmas, count, &mm_name)?;
        // CRIU does not flag the main stack; the kernel's [stack] is the
        // mapping that holds mm->start_stack.
        if let Some(m) = mapped
            .mappings
            .iter_mut()
            .find(|m| m.start <= mm.start_stack && mm.start_stack < m.end)
        {
            if m.kind == crate::model::MappingKind::Anonymous {
                m.kind = crate::model::MappingKind::Stack;
            }
        }
        tracing::debug!(
            pid,
            arch = arch.name(),
            threads = threads.len(),
            vmas = count,
            page_size,
            blobs = mapped.blobs.len(),
            "decoded process"
        );
        let creds = leader.thread_core.as_ref().and_then(|t| t.creds.as_ref());
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
            page_size,
            threads,
            shared_pending: pending_mask(tc.signals_shared.as_ref(), arch),
            auxv,
            arg_range: (mm.arg_start, mm.arg_end),
            env_range: (mm.env_start, mm.env_end),
            exe: self.files.regular_path(mm.exe_file_id),
            mappings: mapped.mappings,
            runs: std::sync::Arc::new(mapped.runs),
            blobs: mapped.blobs,
            warnings: mapped.warnings,
            dumps: mapped.dumps,
        })))
    }
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

/// The architecture a core image was dumped on: x86-64 images hold 32-bit
/// (compat) tasks too, whose registers CRIU marks with mode COMPAT.
fn arch_of(core: &proto::Core) -> Result<Arch> {
    use proto::core::Arch as M;
    Ok(match M::try_from(core.mtype) {
        Ok(M::X8664) => match &core.x86 {
            Some(ti) if arch::x86_64::is_compat(ti) => Arch::I386,
            _ => Arch::X86_64,
        },
        Ok(M::Aarch64) => Arch::Aarch64,
        Ok(M::Riscv64) => Arch::Riscv64,
        Ok(M::Ppc64) => Arch::Ppc64le,
        Ok(M::S390) => Arch::S390x,
        Ok(other) => bail!(
            "{} checkpoints are not supported",
            other.as_str_name().to_lowercase()
        ),
        Err(_) => bail!("unknown architecture code {}", core.mtype),
    })
}

fn thread(core: &proto::Core, tid: u32, process_blocked: u64, arch: Arch) -> Result<Thread> {
    let found = arch_of(core)?;
    if found != arch {
        bail!(
            "thread is {} but its process is {}",
            found.name(),
            arch.name()
        );
    }
    let regs = match arch {
        Arch::X86_64 => {
            let ti = core.x86.as_ref().context("no x86 register state")?;
            Registers::X86_64(Box::new(arch::x86_64::Regs::from_criu(ti)?))
        }
        Arch::I386 => {
            let ti = core.x86.as_ref().context("no x86 register state")?;
            Registers::I386(Box::new(arch::i386::Regs::from_criu(ti)?))
        }
        Arch::Aarch64 => {
            let ti = core.aarch64.as_ref().context("no aarch64 register state")?;
            Registers::Aarch64(Box::new(arch::aarch64::Regs::from_criu(ti)?))
        }
        Arch::Riscv64 => {
            let ti = core.riscv64.as_ref().context("no riscv64 register state")?;
            Registers::Riscv64(Box::new(arch::riscv64::Regs::from_criu(ti)?))
        }
        Arch::Ppc64le => {
            let ti = core.ppc64.as_ref().context("no ppc64 register state")?;
            Registers::Ppc64le(Box::new(arch::ppc64::Regs::from_criu(ti)?))
        }
        Arch::S390x => {
            let ti = core.s390.as_ref().context("no s390 register state")?;
            Registers::S390x(Box::new(arch::s390x::Regs::from_criu(ti)?))
        }
    };
    let tc = core.thread_core.as_ref();
    Ok(Thread {
        tid,
        comm: tc.and_then(|t| t.comm.clone()),
        blocked: tc.and_then(|t| t.blk_sigset).unwrap_or(process_blocked),
        pending: pending_mask(tc.and_then(|t| t.signals_private.as_ref()), arch),
        nice: tc.and_then(|t| t.sched_nice).unwrap_or(0),
        regs,
    })
}

/// The signal bitmask of a queue of raw siginfos (bit n-1 for signal n).
fn pending_mask(queue: Option<&proto::SignalQueue>, arch: Arch) -> u64 {
    let big = arch.abi().big_endian;
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

    #[test]
    fn compat_registers_make_an_i386_process() {
        let mut core = proto::Core {
            mtype: proto::core::Arch::X8664 as i32,
            x86: Some(proto::ThreadInfoX86::default()),
            ..Default::default()
        };
        assert_eq!(arch_of(&core).unwrap(), Arch::X86_64);
        if let Some(ti) = core.x86.as_mut() {
            ti.gpregs.mode = Some(proto::X86RegsMode::Compat as i32);
        }
        assert_eq!(arch_of(&core).unwrap(), Arch::I386);
    }
}
