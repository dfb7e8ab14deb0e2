//! One lock per output directory ([`lock`]), taken by every batch, shard
//! of a batch, watch and convert of several inputs before it writes there.
//!
//! A batch of all its inputs, a watch and a convert write alone
//! ([`Writer::Whole`]). The shards of one batch split N ways write
//! together ([`Writer::Shards`]), each into its own inputs' directories,
//! but never beside a whole writer or shards of another N. A writer that
//! may not write beside the holder is refused at once, with the holder
//! named: it neither waits nor writes.
//!
//! In a directory the lock is `.criu2core.lock`, an advisory lock (flock)
//! that ends with its process: exclusive for a whole writer, shared for a
//! shard. The file says who took it (one JSON object); a shard joins a
//! held lock only if its taker was a shard of the same N. Taking it is
//! serialized by a brief flock of the directory itself, so that two
//! writers never both find it free.
//!
//! In object storage it is the object `.criu2core.lock` under the prefix:
//! a lease listing its holders, each with an expiry [`LEASE`] ahead that
//! it renews every [`RENEW`] while it runs. It is made only if absent
//! (a conditional put) and changed only if unchanged since it was read
//! (its ETag), so two writers never both take it; a holder whose expiry
//! has passed (a run that was killed) is dropped by the next writer. The
//! last holder to leave removes it.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use rustix::fs::{flock, FlockOperation as Op};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::outdir::{OutDir, LOCK};
use crate::remote::Location;

/// How long a holder of a lease in object storage holds it unrenewed.
pub const LEASE: Duration = Duration::from_secs(300);
/// How often a holder renews its lease.
pub const RENEW: Duration = Duration::from_secs(60);
/// How long taking a lock waits for another writer that is taking it.
const GATE_WAIT: Duration = Duration::from_secs(10);
/// Largest lock file or lease object read.
const LOCK_LIMIT: u64 = 1 << 20;
/// Writes to a lease that another writer changed meanwhile, at most.
const ATTEMPTS: usize = 20;

/// Who writes into an output directory, and so who may write beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// A batch of all its inputs, a watch, a convert: alone.
    Whole,
    /// A shard of a batch split this many ways: beside the other shards
    /// of the same split only.
    Shards(u64),
}

/// Who holds (or held) a lock: what the lock file or lease says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Holder {
    /// The subcommand (`batch`, `watch`, `convert`).
    command: String,
    /// The N of a shard's split; none for a whole writer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shards: Option<u64>,
    pid: u32,
    host: String,
    /// Host, pid and start time: one run's.
    owner: String,
    /// Seconds since the epoch when a lease ends unless renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires: Option<u64>,
}

impl Holder {
    fn me(writer: Writer, command: &str) -> Holder {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let pid = std::process::id();
        Holder {
            command: command.into(),
            shards: match writer {
                Writer::Whole => None,
                Writer::Shards(n) => Some(n),
            },
            pid,
            owner: format!("{host}/{pid}/{nanos}"),
            host,
            expires: None,
        }
    }

    /// Whether `other` may write beside this holder.
    fn admits(&self, other: &Holder) -> bool {
        self.shards.is_some() && self.shards == other.shards
    }

    /// As a message names it (escaped: a lock file is anyone's to write).
    fn describe(&self) -> String {
        let what = match self.shards {
            Some(n) => format!("a shard of {} split {n} ways", self.command),
            None => self.command.clone(),
        };
        crate::text::escape(&format!("{what}, pid {} on {}", self.pid, self.host)).into_owned()
    }
}

/// Holds an output directory's lock until dropped (see [`lock`]).
#[derive(Debug)]
pub struct OutLock {
    dir: PathBuf,
    writer: Writer,
    _held: Held,
}

/// What holds the lock until dropped.
#[derive(Debug)]
enum Held {
    File { _file: File },
    Lease { _lease: Lease },
}

impl OutLock {
    /// The output directory (canonical path or URL) it locks.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Who it lets write.
    pub fn writer(&self) -> Writer {
        self.writer
    }
}

/// Takes the lock of the output directory `out_dir` (made if missing) for
/// `writer`, whose subcommand is `command`; refused at once where another
/// writer holds it and may not be joined (see the module's rules).
///
/// ```
/// use criu2core::batch::{lock, Writer};
///
/// let out = tempfile::tempdir()?;
/// let first = lock(out.path(), Writer::Shards(2), "batch")?;
/// let second = lock(out.path(), Writer::Shards(2), "batch")?;
/// assert!(lock(out.path(), Writer::Whole, "batch").is_err());
/// assert!(lock(out.path(), Writer::Shards(3), "batch").is_err());
/// drop((first, second));
/// lock(out.path(), Writer::Whole, "batch")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn lock(out_dir: &Path, writer: Writer, command: &str) -> crate::Result<OutLock> {
    OutDir::create(out_dir)
        .and_then(|out| take(&out, writer, command))
        .map_err(Error::new)
}

/// [`lock`] of an opened output directory.
pub(crate) fn take(out: &OutDir, writer: Writer, command: &str) -> Result<OutLock> {
    let me = Holder::me(writer, command);
    let held = match out.object(LOCK)? {
        Some(obj) => Held::Lease {
            _lease: Lease::take(obj, me)?,
        },
        None => Held::File {
            _file: take_file(out, &me)?,
        },
    };
    Ok(OutLock {
        dir: out.path().to_path_buf(),
        writer,
        _held: held,
    })
}

fn busy(dir: &str, holder: Option<&Holder>) -> anyhow::Error {
    let who = holder.map_or("another criu2core run".into(), |h| {
        format!("another criu2core run ({})", h.describe())
    });
    anyhow::anyhow!(
        "{dir}: {who} is writing into this output directory; one run writes into an output directory at a time (the shards of one --shards N together): wait for it to end, or write elsewhere"
    )
}

/// Takes the lock file, while holding the directory's own flock so that
/// no other writer looks at it meanwhile.
fn take_file(out: &OutDir, me: &Holder) -> Result<File> {
    let shown = out.path().display().to_string();
    let dir = File::open(out.path()).with_context(|| format!("{shown}: cannot open"))?;
    let deadline = Instant::now() + GATE_WAIT;
    loop {
        match flock(&dir, Op::NonBlockingLockExclusive) {
            Ok(()) => break,
            Err(rustix::io::Errno::WOULDBLOCK) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(rustix::io::Errno::WOULDBLOCK) => return Err(busy(&shown, None)),
            Err(e) => return Err(e).with_context(|| format!("{shown}: cannot lock")),
        }
    }
    let taken = take_file_gated(out, me, &shown);
    let _ = flock(&dir, Op::Unlock);
    taken
}

fn take_file_gated(out: &OutDir, me: &Holder, shown: &str) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = out.join(LOCK)?;
    // It is written: a link planted under its name is not followed.
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&path)
        .with_context(|| format!("{}: cannot open", path.display()))?;
    let cannot = || format!("{}: cannot lock", path.display());
    match flock(&file, Op::NonBlockingLockExclusive) {
        Ok(()) => {
            // Free: say who holds it now. Whoever reads it holds the
            // directory's flock, as this run does, so never sees it half
            // written.
            let said = serde_json::to_vec(me)?;
            file.set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| file.write_all(&said))
                .with_context(|| format!("{}: cannot write", path.display()))?;
            if me.shards.is_some() {
                // Shared from now on, for the other shards of this split.
                flock(&file, Op::NonBlockingLockShared).map_err(|_| busy(shown, None))?;
            }
            Ok(file)
        }
        Err(rustix::io::Errno::WOULDBLOCK) => {
            let mut said = Vec::new();
            (&mut file)
                .take(LOCK_LIMIT)
                .read_to_end(&mut said)
                .with_context(|| format!("{}: cannot read", path.display()))?;
            let holder = serde_json::from_slice::<Holder>(&said).ok();
            match &holder {
                Some(h) if h.admits(me) => match flock(&file, Op::NonBlockingLockShared) {
                    Ok(()) => Ok(file),
                    Err(rustix::io::Errno::WOULDBLOCK) => Err(busy(shown, None)),
                    Err(e) => Err(e).with_context(cannot),
                },
                _ => Err(busy(shown, holder.as_ref())),
            }
        }
        Err(e) => Err(e).with_context(cannot),
    }
}

/// What a lease object holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct LeaseObject {
    holders: Vec<Holder>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A holding of a lease in object storage: renewed by a thread of its
/// own, given up when dropped.
#[derive(Debug)]
struct Lease {
    obj: Location,
    owner: String,
    stop: Option<mpsc::Sender<()>>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

impl Lease {
    fn take(obj: Location, me: Holder) -> Result<Lease> {
        let owner = me.owner.clone();
        change(&obj, |lease| {
            if let Some(h) = lease.holders.iter().find(|h| !h.admits(&me)) {
                return Err(busy(&obj.url(), Some(h)));
            }
            let mut mine = me.clone();
            mine.expires = Some(now() + LEASE.as_secs());
            lease.holders.push(mine);
            Ok(())
        })?;
        let (stop, stopped) = mpsc::channel::<()>();
        let renewing = obj.clone();
        let who = owner.clone();
        let renewer = std::thread::Builder::new()
            .name("criu2core-lease".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(RENEW) {
                    if let Err(e) = renew(&renewing, &who) {
                        tracing::error!(lease = %renewing.url(), error = %format!("{e:#}"), "cannot renew the output directory's lease");
                    }
                }
            })
            .context("cannot start the lease's renewer")?;
        Ok(Lease {
            obj,
            owner,
            stop: Some(stop),
            renewer: Some(renewer),
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.renewer.take() {
            let _ = t.join();
        }
        let owner = self.owner.clone();
        let left = change(&self.obj, |lease| {
            lease.holders.retain(|h| h.owner != owner);
            Ok(())
        });
        if let Err(e) = left {
            tracing::error!(lease = %self.obj.url(), error = %format!("{e:#}"), "cannot give up the output directory's lease");
        }
    }
}

/// Pushes the expiry of `owner`'s holding a lease ahead again.
fn renew(obj: &Location, owner: &str) -> Result<()> {
    change(obj, |lease| {
        let Some(h) = lease.holders.iter_mut().find(|h| h.owner == owner) else {
            bail!(
                "{}: this run's lease ended (expired and taken over, or removed)",
                obj.url()
            );
        };
        h.expires = Some(now() + LEASE.as_secs());
        Ok(())
    })
}

/// Reads the lease, drops its expired holders, applies `f`, and writes it
/// back only if no one changed it meanwhile (trying again if someone
/// did); a lease left with no holder is removed.
fn change(obj: &Location, mut f: impl FnMut(&mut LeaseObject) -> Result<()>) -> Result<()> {
    for _ in 0..ATTEMPTS {
        let read = obj.read_versioned(LOCK_LIMIT)?;
        let mut lease = match &read {
            None => LeaseObject::default(),
            Some((bytes, _)) => serde_json::from_slice(bytes).with_context(|| {
                format!(
                    "{}: not a criu2core lease; remove it if no criu2core run is writing there",
                    obj.url()
                )
            })?,
        };
        let t = now();
        lease.holders.retain(|h| h.expires.is_some_and(|e| e > t));
        f(&mut lease)?;
        let version = read.as_ref().map(|(_, v)| v);
        if lease.holders.is_empty() {
            if read.is_some() {
                obj.delete()?;
            }
            return Ok(());
        }
        if obj.put_if(serde_json::to_vec_pretty(&lease)?, version)? {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(
            50 + u64::from(std::process::id() % 50),
        ));
    }
    bail!(
        "{}: changed by other writers {ATTEMPTS} times while this run tried to change it",
        obj.url()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_of_one_split_share_the_lock_and_no_one_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutDir::create(dir.path()).unwrap();
        let whole = take(&out, Writer::Whole, "batch").unwrap();
        for w in [Writer::Whole, Writer::Shards(1), Writer::Shards(2)] {
            let e = format!("{:#}", take(&out, w, "batch").unwrap_err());
            assert!(e.contains("(batch, pid "), "{e}");
        }
        drop(whole);
        let a = take(&out, Writer::Shards(2), "batch").unwrap();
        let b = take(&out, Writer::Shards(2), "batch").unwrap();
        assert_eq!(b.writer(), Writer::Shards(2));
        for w in [Writer::Whole, Writer::Shards(3)] {
            let e = format!("{:#}", take(&out, w, "watch").unwrap_err());
            assert!(e.contains("a shard of batch split 2 ways"), "{e}");
        }
        // The one that took it first leaves; the other still holds it.
        drop(a);
        assert!(take(&out, Writer::Whole, "watch").is_err());
        drop(b);
        let w = take(&out, Writer::Whole, "watch").unwrap();
        let e = format!("{:#}", take(&out, Writer::Shards(2), "batch").unwrap_err());
        assert!(e.contains("(watch, pid "), "{e}");
        drop(w);
        assert_eq!(out.files().unwrap(), [LOCK]);
    }

    #[test]
    fn a_link_in_the_lock_files_place_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutDir::create(&dir.path().join("out")).unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"kept").unwrap();
        std::os::unix::fs::symlink(&victim, out.path().join(LOCK)).unwrap();
        assert!(take(&out, Writer::Whole, "batch").is_err());
        assert_eq!(std::fs::read(&victim).unwrap(), b"kept");
    }
}
