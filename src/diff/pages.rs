//! The pages whose contents differ between two loaded processes: both
//! walked in address order at once (the second on a thread of its own,
//! handing its runs over in small batches), their bytes read a chunk at a
//! time from where they lie and compared page by page. Neither process's
//! memory is ever held.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::mpsc::{sync_channel, Receiver};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::blobio::BlobFile;
use crate::cancel::Cancel;
use crate::error::{fault, ErrorKind};
use crate::model::{BlobId, PageSource, Process};

/// Bytes read from each side at a time.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Most page ranges reported for one process (16 bytes each): past it the
/// diff stops with a limit error rather than grow without bound.
pub const MAX_PAGE_RANGES: usize = 1 << 20;

/// Runs handed from the second walk to the first at a time.
const BATCH: usize = 1024;

/// A range of pages, `start` to one past the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PageRange {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
}

/// Bytes of one side with one source, `start..end`.
#[derive(Debug, Clone, Copy)]
struct Piece {
    start: u64,
    end: u64,
    source: PageSource,
}

impl Piece {
    /// The source of the bytes at `at`, a blob's offset moved there.
    fn source_at(&self, at: u64) -> PageSource {
        match self.source {
            PageSource::Blob { blob, offset } => PageSource::Blob {
                blob,
                offset: offset + (at - self.start),
            },
            other => other,
        }
    }
}

/// The pages of `a` and `b` whose contents differ: where both hold bytes
/// and they differ, or where only one of them holds any (a page neither
/// holds — unmapped, never dumped, or unknown — is not compared).
pub(crate) fn changed_pages(a: &Process, b: &Process, cancel: &Cancel) -> Result<Vec<PageRange>> {
    let page = a.page_size.max(b.page_size).max(1);
    std::thread::scope(|s| {
        let (tx, rx) = sync_channel::<Vec<Piece>>(4);
        let walker = s.spawn(move || -> Result<()> {
            let mut batch = Vec::with_capacity(BATCH);
            b.walk_runs(0, &mut |_, _, at, run| {
                batch.push(Piece {
                    start: at,
                    end: at + run.len,
                    source: run.source,
                });
                if batch.len() == BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    if tx.send(full).is_err() {
                        return Ok(ControlFlow::Break(()));
                    }
                }
                Ok(ControlFlow::Continue(()))
            })?;
            let _ = tx.send(batch);
            Ok(())
        });
        let mut merge = Merge {
            cmp: Compare {
                a,
                b,
                page,
                files_a: HashMap::new(),
                files_b: HashMap::new(),
                buf_a: Vec::new(),
                buf_b: Vec::new(),
                ranges: Vec::new(),
                cancel,
            },
            rx,
            queue: Vec::new().into_iter(),
            cur: None,
        };
        let walked = a.walk_runs(0, &mut |_, _, at, run| {
            merge.feed(Piece {
                start: at,
                end: at + run.len,
                source: run.source,
            })?;
            Ok(ControlFlow::Continue(()))
        });
        let finished = walked.and_then(|()| merge.finish());
        // Let the walker end if the first side stopped early.
        drop(merge.rx);
        let walker = walker
            .join()
            .map_err(|_| anyhow::anyhow!("the walk of pid {} stopped", b.pid))?;
        finished?;
        walker?;
        Ok(merge.cmp.ranges)
    })
}

/// The second side's pieces as they come, merged with the first's.
struct Merge<'a> {
    cmp: Compare<'a>,
    rx: Receiver<Vec<Piece>>,
    queue: std::vec::IntoIter<Piece>,
    /// The second side's current piece, from where it is not yet compared.
    cur: Option<Piece>,
}

impl Merge<'_> {
    /// The second side's piece not yet compared, starting where comparing
    /// it starts.
    fn peek(&mut self) -> Option<Piece> {
        while self.cur.is_none() {
            match self.queue.next() {
                Some(p) if p.end > p.start => self.cur = Some(p),
                Some(_) => {}
                None => match self.rx.recv() {
                    Ok(batch) => self.queue = batch.into_iter(),
                    Err(_) => return None,
                },
            }
        }
        self.cur
    }

    /// Compares the second side up to `to`, where the first side has
    /// nothing.
    fn only_b_until(&mut self, to: u64) -> Result<()> {
        while let Some(p) = self.peek() {
            if p.start >= to {
                break;
            }
            let end = p.end.min(to);
            self.cmp.compare(p.start, end, None, Some(p.source))?;
            self.advance(end);
        }
        Ok(())
    }

    /// Marks the second side's current piece compared up to `to`.
    fn advance(&mut self, to: u64) {
        if let Some(p) = self.cur {
            self.cur = (to < p.end).then(|| Piece {
                start: to,
                end: p.end,
                source: p.source_at(to),
            });
        }
    }

    /// Compares one piece of the first side with what the second has there.
    fn feed(&mut self, a: Piece) -> Result<()> {
        self.only_b_until(a.start)?;
        let mut pos = a.start;
        while pos < a.end {
            match self.peek() {
                Some(p) if p.start < a.end => {
                    if p.start > pos {
                        self.cmp
                            .compare(pos, p.start, Some(a.source_at(pos)), None)?;
                        pos = p.start;
                    }
                    let end = p.end.min(a.end);
                    self.cmp
                        .compare(pos, end, Some(a.source_at(pos)), Some(p.source))?;
                    self.advance(end);
                    pos = end;
                }
                _ => {
                    self.cmp.compare(pos, a.end, Some(a.source_at(pos)), None)?;
                    pos = a.end;
                }
            }
        }
        Ok(())
    }

    /// Compares what is left of the second side.
    fn finish(&mut self) -> Result<()> {
        self.only_b_until(u64::MAX)
    }
}

/// The byte comparison, and the ranges found so far.
struct Compare<'a> {
    a: &'a Process,
    b: &'a Process,
    page: u64,
    files_a: HashMap<BlobId, BlobFile>,
    files_b: HashMap<BlobId, BlobFile>,
    buf_a: Vec<u8>,
    buf_b: Vec<u8>,
    ranges: Vec<PageRange>,
    cancel: &'a Cancel,
}

impl Compare<'_> {
    /// Compares `start..end`, whose bytes come from `a` on the first side
    /// and `b` on the second (`None`: not mapped there).
    fn compare(
        &mut self,
        start: u64,
        end: u64,
        a: Option<PageSource>,
        b: Option<PageSource>,
    ) -> Result<()> {
        let held = |s: Option<PageSource>| match s {
            Some(PageSource::Blob { blob, offset }) => Some((blob, offset)),
            _ => None,
        };
        match (held(a), held(b)) {
            (Some(x), Some(y)) => self.compare_bytes(start, end, x, y),
            (None, None) => Ok(()),
            _ => self.mark(start, end),
        }
    }

    /// Compares bytes held on both sides, a chunk at a time.
    fn compare_bytes(
        &mut self,
        start: u64,
        end: u64,
        (blob_a, off_a): (BlobId, u64),
        (blob_b, off_b): (BlobId, u64),
    ) -> Result<()> {
        let mut pos = start;
        while pos < end {
            self.cancel.check()?;
            let n = (end - pos).min(CHUNK_BYTES as u64) as usize;
            let d = pos - start;
            read(
                self.a,
                &mut self.files_a,
                blob_a,
                off_a + d,
                n,
                &mut self.buf_a,
            )?;
            read(
                self.b,
                &mut self.files_b,
                blob_b,
                off_b + d,
                n,
                &mut self.buf_b,
            )?;
            if self.buf_a != self.buf_b {
                // Pages as the address space has them: the chunk need not
                // start on a page boundary.
                let mut i = 0;
                while i < n {
                    let addr = pos + i as u64;
                    let next = ((addr / self.page + 1) * self.page).min(pos + n as u64);
                    let j = (next - pos) as usize;
                    if self.buf_a[i..j] != self.buf_b[i..j] {
                        self.mark(addr, next)?;
                    }
                    i = j;
                }
            }
            pos += n as u64;
        }
        Ok(())
    }

    /// Records `start..end`, widened to whole pages, as changed.
    fn mark(&mut self, start: u64, end: u64) -> Result<()> {
        let start = start / self.page * self.page;
        let end = end.div_ceil(self.page).saturating_mul(self.page);
        match self.ranges.last_mut() {
            Some(last) if last.end >= start => last.end = last.end.max(end),
            _ => {
                if self.ranges.len() >= MAX_PAGE_RANGES {
                    return Err(fault(
                        ErrorKind::Limit,
                        format!(
                            "pid {}: more than {MAX_PAGE_RANGES} ranges of changed pages; stopped",
                            self.a.pid
                        ),
                    ));
                }
                self.ranges.push(PageRange { start, end });
            }
        }
        Ok(())
    }
}

/// Reads `n` bytes of blob `id` of `p` at `offset` into `buf`.
fn read(
    p: &Process,
    files: &mut HashMap<BlobId, BlobFile>,
    id: BlobId,
    offset: u64,
    n: usize,
    buf: &mut Vec<u8>,
) -> Result<()> {
    let blob = p.blob(id).context("page run names an unknown blob")?;
    let file = match files.entry(id) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(BlobFile::open(blob).with_context(|| format!("{}: cannot open", blob.label))?)
        }
    };
    buf.resize(n, 0);
    file.read_exact_at(buf, blob.offset + offset)
        .with_context(|| format!("{}: cannot read {n} bytes at offset {offset}", blob.label))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Blob, Mapping, MappingKind, Missing, PageRun, Prot, RunList};
    use std::sync::Arc;

    /// A process of `page`-byte pages whose mappings are `maps` (start,
    /// end, runs), its blob 0 the file `data`.
    fn process(
        dir: &std::path::Path,
        name: &str,
        data: &[u8],
        page: u64,
        maps: Vec<(u64, u64, Vec<PageRun>)>,
    ) -> Process {
        let path = dir.join(name);
        std::fs::write(&path, data).unwrap();
        let mappings = maps
            .iter()
            .map(|&(start, end, _)| Mapping {
                start,
                end,
                prot: Prot::default(),
                shared: false,
                kind: MappingKind::Anonymous,
                file: None,
                stored: 0,
                dumped: 0,
            })
            .collect();
        Process {
            pid: 7,
            ppid: 0,
            pgid: 7,
            sid: 7,
            comm: "t".into(),
            state: crate::model::ProcessState::Running,
            flags: 0,
            uid: 0,
            gid: 0,
            arch: crate::model::Arch::X86_64,
            page_size: page,
            threads: Vec::new(),
            auxv: Vec::new(),
            arg_range: (0, 0),
            env_range: (0, 0),
            exe: None,
            mappings,
            runs: Arc::new(RunList(maps.into_iter().map(|(_, _, r)| r).collect())),
            blobs: vec![Blob {
                label: name.into(),
                path,
                offset: 0,
                len: data.len() as u64,
                remote: None,
            }],
            source: std::sync::Arc::new(crate::blobio::Files),
            warnings: Vec::new(),
            files: Vec::new(),
            dumps: Vec::new(),
        }
    }

    fn run(len: u64, source: PageSource) -> PageRun {
        PageRun { len, source }
    }

    fn blob(offset: u64) -> PageSource {
        PageSource::Blob { blob: 0, offset }
    }

    fn ranges(v: &[PageRange]) -> Vec<(u64, u64)> {
        v.iter().map(|r| (r.start, r.end)).collect()
    }

    /// Runs that split differently on each side are compared byte for
    /// byte; a page only one side holds is changed, a hole on both is not,
    /// and a mapping only one side has is compared with nothing.
    #[test]
    fn pages_of_both_sides_merged() {
        let dir = tempfile::tempdir().unwrap();
        // A: 0x100..0x110 one blob run; 0x110..0x118 zero; 0x120..0x124
        // unknown.
        let a = process(
            dir.path(),
            "a",
            b"aaaabbbbccccdddd",
            4,
            vec![
                (
                    0x100,
                    0x118,
                    vec![run(16, blob(0)), run(8, PageSource::Zero)],
                ),
                (
                    0x120,
                    0x124,
                    vec![run(4, PageSource::Missing(Missing::FileBacked))],
                ),
            ],
        );
        // B: the same bytes in three runs but for the third page; zero
        // then held where A is zero; a mapping A lacks, held.
        let b = process(
            dir.path(),
            "b",
            b"xxaaaabbbbCCCCddddeeeezzzz",
            4,
            vec![
                (
                    0x100,
                    0x118,
                    vec![
                        run(6, blob(2)),
                        run(10, blob(8)),
                        run(4, PageSource::Zero),
                        run(4, blob(18)),
                    ],
                ),
                (
                    0x120,
                    0x124,
                    vec![run(4, PageSource::Missing(Missing::FileBacked))],
                ),
                (0x200, 0x204, vec![run(4, blob(22))]),
            ],
        );
        let got = changed_pages(&a, &b, &Cancel::new()).unwrap();
        assert_eq!(
            ranges(&got),
            [(0x108, 0x10c), (0x114, 0x118), (0x200, 0x204)]
        );
        // Each side against itself: nothing.
        assert!(changed_pages(&a, &a, &Cancel::new()).unwrap().is_empty());
        // The other way round: the same pages.
        assert_eq!(
            ranges(&changed_pages(&b, &a, &Cancel::new()).unwrap()),
            ranges(&got)
        );
    }

    /// Past MAX_PAGE_RANGES ranges the comparison stops with a limit error.
    #[test]
    fn page_ranges_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let n = 2 * (MAX_PAGE_RANGES as u64 + 1);
        let zeros = vec![0u8; n as usize];
        let alternate: Vec<u8> = (0..n).map(|i| (i % 2) as u8).collect();
        let a = process(
            dir.path(),
            "a",
            &zeros,
            1,
            vec![(0, n, vec![run(n, blob(0))])],
        );
        let b = process(
            dir.path(),
            "b",
            &alternate,
            1,
            vec![(0, n, vec![run(n, blob(0))])],
        );
        let e = changed_pages(&a, &b, &Cancel::new()).unwrap_err();
        assert_eq!(crate::error::kind_of(&e), ErrorKind::Limit);
    }
}
