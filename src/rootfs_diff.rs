//! A container's rootfs-diff.tar (the files it changed, as OCI layer
//! changes: whiteouts `.wh.NAME` and opaque directories `.wh..opq`), read
//! once: only the members that matter to the files a checkpoint wants are
//! recorded, the wanted files where their bytes lie (in place in a plain
//! tar) or unpacked (from a compressed one). Nothing here knows of CRIU:
//! which files are wanted is the caller's to say.

use std::io::{self, BufReader, Read};
#[cfg(feature = "testkit")]
use std::path::Path;

use anyhow::{Context, Result};

use crate::blobio::BlobReader;
use crate::compress::{decoder, layer_compression, peek, read_head, Compression, HEAD_BYTES};
use crate::error::{fault, ErrorKind};
use crate::model::{display_bytes, Blob};
use crate::oci::{Recorded, Wanted};
use crate::rootfs::clean_key;
use crate::spill::Spill;
#[cfg(feature = "testkit")]
use crate::spill::SpillOptions;
use crate::tar::{self, Kind, Source, TarReader};
use crate::warning::{Warning, WarningKind};

/// Most members a rootfs-diff.tar may have. Only the files the
/// checkpoint's processes mapped are kept (their paths and where they
/// lie), so this bounds the time spent reading headers, not memory.
pub const MAX_DIFF_MEMBERS: usize = 1 << 20;
/// How many members of a rootfs diff with `..` in their paths are named
/// in its warning (the rest are counted).
const NAMED_BAD_MEMBERS: usize = 5;

/// A container's rootfs-diff.tar (the files it changed), read once: the
/// members a checkpoint can use ([`Recorded`]: the files its processes
/// had open or mapped, the directories above them, the whiteouts that
/// touch them), each wanted file where its bytes lie.
#[derive(Debug, Clone, Default)]
pub struct DiffIndex {
    /// How messages name the diff.
    pub label: String,
    /// Its members and wanted files, to be laid over an image's layers.
    pub(crate) recorded: Recorded,
    /// What was wrong with the diff (members skipped, and why).
    pub warnings: Vec<Warning>,
}

impl DiffIndex {
    /// The wanted files it holds: their paths (clean, relative) and where
    /// their bytes are (for the fuzz targets, through the testkit).
    #[cfg(feature = "testkit")]
    pub fn files(&self) -> Vec<(Vec<u8>, Blob)> {
        self.recorded
            .members
            .iter()
            .filter_map(|m| {
                let blob = self.recorded.copies.get(&u32::try_from(m.index).ok()?)?;
                Some((clean_key(&m.name)?, blob.clone()))
            })
            .collect()
    }
}

/// Reads the rootfs diff lying in `blob` (plain, gzip or zstd), keeping
/// the files `wanted` names (clean paths) as a checkpoint would: those of
/// a compressed diff copied into a new directory in `spill_dir`, at most
/// `max_spill` bytes. For tests and fuzz targets.
#[cfg(feature = "testkit")]
pub fn index_diff(
    blob: &Blob,
    wanted: &[&[u8]],
    spill_dir: &Path,
    max_spill: u64,
) -> crate::Result<(DiffIndex, impl Drop)> {
    let mut spill = Spill::new(&SpillOptions {
        dir: Some(spill_dir.to_path_buf()),
        max: Some(max_spill),
    });
    let wanted = Wanted::new::<[u8]>(wanted.iter().copied());
    let ix = read_diff(blob, &wanted, &mut spill).map_err(crate::Error::new)?;
    Ok((ix, SpillGuard(spill)))
}

/// Keeps a spill directory until dropped.
#[cfg(feature = "testkit")]
struct SpillGuard(Spill);

#[cfg(feature = "testkit")]
impl Drop for SpillGuard {
    fn drop(&mut self) {
        self.0.remove();
    }
}

/// Reads the rootfs diff lying in `blob` (a plain tar used in place, or a
/// gzip or zstd one whose wanted files are unpacked into `spill`).
pub(crate) fn read_diff(blob: &Blob, wanted: &Wanted, spill: &mut Spill) -> Result<DiffIndex> {
    let label = &blob.label;
    let sub = || BlobReader::open(blob).with_context(|| format!("{label}: cannot open"));
    let head = read_head(sub()?, HEAD_BYTES).with_context(|| format!("{label}: cannot read"))?;
    let compression = layer_compression(&head, label)?;
    if blob.len == 0 {
        return Ok(DiffIndex {
            label: label.clone(),
            ..DiffIndex::default()
        });
    }
    if compression == Compression::None {
        let mut r = TarReader::new(tar::Seekable(BufReader::new(sub()?)), Some(blob.len));
        return record_members(&mut r, label, wanted, &mut |m, _| {
            let name = format!("{label}:{}", display_bytes(&m.name));
            Ok(blob.part(name, m.data_offset, m.size))
        });
    }
    read_decoded(decoder(sub()?, compression, label)?, label, wanted, spill)
}

/// Reads the rootfs diff arriving as `stream` (plain, gzip or zstd by its
/// first bytes) to its end, its wanted files unpacked into `spill`.
pub(crate) fn read_diff_stream(
    stream: &mut dyn Read,
    label: &str,
    wanted: &Wanted,
    spill: &mut Spill,
) -> Result<DiffIndex> {
    let (head, rest) = peek(stream, HEAD_BYTES).with_context(|| format!("{label}: cannot read"))?;
    let compression = layer_compression(&head, label)?;
    let dec = decoder(io::Cursor::new(head).chain(rest), compression, label)?;
    read_decoded(dec, label, wanted, spill)
}

/// Reads the decompressed rootfs diff `dec` to its end (so that the
/// decompressor checks its checksum), its wanted files unpacked into
/// `spill`.
fn read_decoded(
    mut dec: impl Read,
    label: &str,
    wanted: &Wanted,
    spill: &mut Spill,
) -> Result<DiffIndex> {
    let index = {
        let mut r = TarReader::new(tar::Stream(&mut dec), None);
        let index = record_members(&mut r, label, wanted, &mut |m, data| {
            spill.copy_out(data, m.size, &format!("{label}:{}", display_bytes(&m.name)))
        })?;
        io::copy(&mut r.into_inner(), &mut io::sink())?;
        index
    };
    io::copy(&mut dec, &mut io::sink()).with_context(|| format!("{label}: corrupt"))?;
    Ok(index)
}

/// What [`record_members`] calls to keep a wanted file: it gets the
/// member and the reader positioned at its data.
type Keep<'k> = dyn FnMut(&tar::Member, &mut dyn Read) -> Result<Blob> + 'k;

/// Reads the members of a rootfs diff, recording those a checkpoint can
/// use: the wanted files (kept through `keep`), the directories, links and
/// other members on the way to them, and the whiteouts that delete them or
/// hide what is above them. A member with `..` in its path is skipped
/// with a warning, never used; so is a sparse one that is wanted (it would
/// have to be expanded). The later of two members with one path wins, as
/// when the tar is unpacked.
fn record_members<S: Source>(
    r: &mut TarReader<S>,
    label: &str,
    wanted: &Wanted,
    keep: &mut Keep<'_>,
) -> Result<DiffIndex> {
    let mut out = DiffIndex {
        label: label.to_string(),
        ..DiffIndex::default()
    };
    let mut dotdot = Vec::new();
    let mut dotdot_count = 0usize;
    while let Some(m) = r
        .next_member()
        .with_context(|| format!("{label}: cannot read"))?
    {
        if m.index >= MAX_DIFF_MEMBERS {
            return Err(fault(
                ErrorKind::Limit,
                format!("{label}: more than {MAX_DIFF_MEMBERS} members, more than criu2core reads"),
            ));
        }
        let Some(key) = clean_key(&m.name) else {
            dotdot_count += 1;
            if dotdot.len() < NAMED_BAD_MEMBERS {
                dotdot.push(format!("#{} {:?}", m.index, display_bytes(&m.name)));
            }
            continue;
        };
        if !relevant(wanted, &key) {
            continue;
        }
        let mut m = m;
        match m.kind {
            Kind::File if wanted.is_file(&key) => {
                let blob = keep(&m, r)?;
                out.recorded.copies.insert(member_u32(m.index)?, blob);
            }
            Kind::Sparse { .. } if wanted.is_file(&key) => {
                out.warnings.push(
                    Warning::new(
                        WarningKind::Unsupported,
                        format!(
                            "{label}: {} is a sparse file, which criu2core does not expand; its pages come from --root or --image, if given",
                            display_bytes(&m.name)
                        ),
                    )
                    .about(display_bytes(&m.name)),
                );
                m.kind = Kind::Other(b'S');
            }
            _ => {}
        }
        out.recorded.members.push(m);
    }
    if dotdot_count > 0 {
        let more = dotdot_count - dotdot.len();
        out.warnings.push(
            Warning::new(
                WarningKind::UnsafePath,
                format!(
                    "{label}: {dotdot_count} member{} with '..' in {} path skipped: {}{}",
                    if dotdot_count == 1 { "" } else { "s" },
                    if dotdot_count == 1 { "its" } else { "their" },
                    dotdot.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                ),
            )
            .about(label),
        );
    }
    Ok(out)
}

/// Whether diff member `key` matters to the files `wanted` keeps: one of
/// them, a whiteout of one (`.wh.NAME`), or an opaque directory
/// (`.wh..opq`) over them.
fn relevant(wanted: &Wanted, key: &[u8]) -> bool {
    let (dir, base) = match key.iter().rposition(|&b| b == b'/') {
        Some(i) => (&key[..i], &key[i + 1..]),
        None => (&key[..0], key),
    };
    match base.strip_prefix(b".wh.") {
        // An opaque directory hides what is below it.
        Some(b".wh..opq") => wanted.keeps(dir) && !wanted.is_file(dir),
        Some(target) => {
            let mut t = dir.to_vec();
            if !t.is_empty() {
                t.push(b'/');
            }
            t.extend_from_slice(target);
            wanted.keeps(&t)
        }
        None => wanted.keeps(key),
    }
}

/// A member's index as a view keeps it.
fn member_u32(index: usize) -> Result<u32> {
    u32::try_from(index).context("more members than a diff has")
}
