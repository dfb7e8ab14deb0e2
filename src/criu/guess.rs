//! The process tree as the images other than pstree.img show it, for
//! laying out cores before pstree.img has been read: in the archives
//! Podman, CRI-O and containerd write, the images come in name order, and
//! `pstree.img` after every `pages-*.img`.
//!
//! Each `core-<tid>.img` with a task core (`tc`) is a process's leader:
//! CRIU gives one only to the thread whose tid is its process's pid
//! (pstree.c, `pstree_alloc_cores`). A leader with an `mm-<pid>.img` is a
//! live process; one without is a zombie. Every other thread goes to the
//! live process whose mappings hold its robust futex list head
//! (`futex_rla`: glibc and musl keep it in the thread's descriptor, in its
//! process's memory), where one process's do; else to the process with
//! the highest pid below its tid (pids and tids are handed out rising);
//! else to the first process. It is a guess: whatever is laid out by it is
//! checked against pstree.img once that has been read.

use anyhow::Result;

use super::image::Image;
use super::store::ImageStore;
use super::{magic, proto, vmas};
use crate::model::TreeEntry;

/// The most thread-in-process lookups [`guess_tree`] makes by memory.
const MAX_LOOKUPS: usize = 1 << 22;

/// A process's leader as its images show it.
struct Leader {
    pid: u32,
    /// Its mappings, sorted, if it has an mm image (a live process).
    vmas: Option<Vec<(u64, u64)>>,
    threads: Vec<u32>,
}

impl Leader {
    fn holds(&self, addr: u64) -> bool {
        let Some(v) = &self.vmas else {
            return false;
        };
        let i = v.partition_point(|&(_, end)| end <= addr);
        v.get(i).is_some_and(|&(start, _)| start <= addr)
    }
}

/// The number in `name` between `prefix` and `.img`.
fn number(name: &str, prefix: &str) -> Option<u32> {
    let d = name.strip_prefix(prefix)?.strip_suffix(".img")?;
    if d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    d.parse().ok()
}

/// The mappings of the mm image `name`, sorted; `None` if it cannot be
/// read (its process's conversion will say why).
fn mappings(store: &dyn ImageStore, name: &str) -> Option<Vec<(u64, u64)>> {
    let data = store.read(name).ok()??;
    let mut img = Image::parse(name, data, magic::MM).ok()?;
    let (at, bytes) = img.next_raw().ok()??;
    let mut v: Vec<(u64, u64)> = vmas(name, bytes, at as u64 + 4)
        .filter_map(|r| r.ok().map(|v| (v.start, v.end)))
        .collect();
    v.sort_unstable();
    Some(v)
}

/// The process tree the images of `store` suggest: a leader per process,
/// its threads, parents unknown (0). Images that cannot be decoded are
/// left out.
pub(crate) fn guess_tree(store: &dyn ImageStore) -> Result<Vec<TreeEntry>> {
    let names = store.names()?;
    let mut leaders: Vec<Leader> = Vec::new();
    let mut others: Vec<(u32, u64)> = Vec::new();
    for name in &names {
        let Some(tid) = number(name, "core-") else {
            continue;
        };
        let Some(core) = store
            .read(name)
            .ok()
            .flatten()
            .and_then(|d| Image::parse(name.as_str(), d, magic::CORE).ok())
            .and_then(|mut img| img.expect::<proto::Core>().ok())
        else {
            continue;
        };
        if core.tc.is_some() {
            let mm = format!("mm-{tid}.img");
            let vmas = names
                .binary_search(&mm)
                .is_ok()
                .then(|| mappings(store, &mm))
                .flatten();
            leaders.push(Leader {
                pid: tid,
                vmas,
                threads: vec![tid],
            });
        } else {
            let rla = core.thread_core.as_ref().map_or(0, |t| t.futex_rla);
            others.push((tid, rla));
        }
    }
    leaders.sort_unstable_by_key(|l| l.pid);
    let live: Vec<usize> = (0..leaders.len())
        .filter(|&i| leaders[i].vmas.is_some())
        .collect();
    // Each thread's list head is looked up in every live process's
    // mappings only while that stays cheap: a hostile archive may hold
    // 200,000 core images.
    let by_memory = live.len().saturating_mul(others.len()) <= MAX_LOOKUPS;
    for (tid, rla) in others {
        let rla = if by_memory { rla } else { 0 };
        if let Some(i) = owner(&leaders, &live, tid, rla) {
            leaders[i].threads.push(tid);
        }
    }
    Ok(leaders
        .into_iter()
        .map(|mut l| {
            l.threads.sort_unstable();
            TreeEntry {
                pid: l.pid,
                ppid: 0,
                pgid: l.pid,
                sid: l.pid,
                threads: l.threads,
            }
        })
        .collect())
}

/// Which of `leaders` (sorted by pid) thread `tid`, whose robust list head
/// is at `rla` (0: not looked up), most likely belongs to; `live` are the
/// indices of the live ones.
fn owner(leaders: &[Leader], live: &[usize], tid: u32, rla: u64) -> Option<usize> {
    let holding: Vec<usize> = live
        .iter()
        .copied()
        .filter(|&i| rla != 0 && leaders[i].holds(rla))
        .collect();
    let among = match holding.len() {
        1 => return Some(holding[0]),
        0 => live,
        _ => &holding,
    };
    // `among` is in pid order: the last below `tid`, else the first.
    match among.partition_point(|&i| leaders[i].pid < tid) {
        0 => among.first().copied(),
        k => Some(among[k - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::criu::store::DirStore;
    use crate::testkit::CheckpointWriter;

    fn core(tc: bool, rla: u64) -> proto::Core {
        proto::Core {
            mtype: proto::core::Arch::X8664 as i32,
            tc: tc.then(proto::TaskCore::default),
            thread_core: Some(proto::ThreadCore {
                futex_rla: rla,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn mm(vmas: &[(u64, u64)]) -> proto::Mm {
        proto::Mm {
            vmas: vmas
                .iter()
                .map(|&(start, end)| proto::Vma {
                    start,
                    end,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn threads_go_to_the_process_whose_memory_holds_their_futex_list() {
        let dir = tempfile::tempdir().unwrap();
        let w = CheckpointWriter::create(dir.path(), 4096).unwrap();
        // A parent forked a child (101), then started threads (102, 103)
        // whose stacks only its own memory holds; the child started one
        // (104) later; 105 has no robust list and 106 is a zombie's pid.
        w.core(100, &core(true, 0x1000)).unwrap();
        w.core(101, &core(true, 0x1000)).unwrap();
        w.core(102, &core(false, 0x7000)).unwrap();
        w.core(103, &core(false, 0x7100)).unwrap();
        w.core(104, &core(false, 0x9000)).unwrap();
        w.core(105, &core(false, 0)).unwrap();
        w.core(106, &core(true, 0)).unwrap();
        w.mm(100, &mm(&[(0x1000, 0x2000), (0x7000, 0x8000)]))
            .unwrap();
        w.mm(101, &mm(&[(0x1000, 0x2000), (0x9000, 0xa000)]))
            .unwrap();
        let tree = guess_tree(&DirStore::open(dir.path()).unwrap()).unwrap();
        let got: Vec<(u32, Vec<u32>)> = tree.into_iter().map(|e| (e.pid, e.threads)).collect();
        assert_eq!(
            got,
            [
                (100, vec![100, 102, 103]),
                (101, vec![101, 104, 105]),
                (106, vec![106]),
            ]
        );
    }
}
