//! Finding the checkpoints of batch's command line: checkpoints as they
//! are, and those in directories that are not one.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::input;

/// How many directory levels below a directory named on the command line
/// are searched for checkpoints.
pub const MAX_DEPTH: usize = 8;
/// Most checkpoints taken from one directory named on the command line.
pub const MAX_FOUND: usize = 100_000;

/// An input found on the command line, or why it cannot be one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The path.
    pub path: PathBuf,
    /// Why it is no checkpoint, if it is not.
    pub problem: Option<String>,
}

/// Expands the command line's inputs: checkpoints as they are, and the
/// checkpoints found in directories that are not one, down to
/// [`MAX_DEPTH`] levels, in name order. A directory that is a checkpoint is
/// not searched further; symbolic links inside a directory are not
/// followed; `skip` (the output directory) is not searched. An argument
/// that is no checkpoint and no directory holding any is returned with its
/// problem.
pub fn expand_inputs(args: &[PathBuf], skip: Option<&Path>) -> Vec<Found> {
    let skip_url = skip
        .and_then(|p| p.to_str())
        .filter(|u| crate::remote::is_url(u))
        .map(crate::blobio::normalize_url);
    let skip_url = skip_url.as_deref();
    let skip = skip
        .and_then(|p| fs::metadata(p).ok())
        .map(|m| (m.dev(), m.ino()));
    let mut out = Vec::new();
    for a in args {
        if let Some(url) = crate::blobio::url_of(a) {
            out.extend(expand_url(url, skip_url));
            continue;
        }
        let problem = match input::detect(a) {
            Ok(Some(_)) => None,
            Err(e) => Some(format!("{e:#}")),
            Ok(None) if fs::metadata(a).is_ok_and(|m| m.is_dir()) => {
                let mut found = Vec::new();
                let full = walk(a, 1, skip, &mut found);
                let n = found.len();
                out.extend(found.into_iter().map(|path| Found {
                    path,
                    problem: None,
                }));
                if full {
                    Some(format!(
                        "{}: more than {MAX_FOUND} checkpoints; the rest are left out",
                        a.display()
                    ))
                } else if n == 0 {
                    Some(format!(
                        "{}: holds no checkpoints ({MAX_DEPTH} levels searched, links not followed)",
                        a.display()
                    ))
                } else {
                    continue;
                }
            }
            Ok(None) => Some(format!(
                "{}: not a checkpoint (image directory or archive) nor a directory holding any",
                a.display()
            )),
        };
        out.push(Found {
            path: a.clone(),
            problem,
        });
    }
    out
}

/// Adds the checkpoints under `dir` (at `depth`) to `found`; true if it
/// stopped at [`MAX_FOUND`].
fn walk(dir: &Path, depth: usize, skip: Option<(u64, u64)>, found: &mut Vec<PathBuf>) -> bool {
    let mut entries: Vec<(PathBuf, fs::FileType)> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .filter_map(|e| Some((e.path(), e.file_type().ok()?)))
            .collect(),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot list; skipped");
            return false;
        }
    };
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, ty) in entries {
        if found.len() >= MAX_FOUND {
            return true;
        }
        if ty.is_dir() {
            if skip.is_some() && fs::metadata(&path).ok().map(|m| (m.dev(), m.ino())) == skip {
                continue;
            }
            match input::detect(&path) {
                Ok(Some(_)) => found.push(path),
                Ok(None) if depth < MAX_DEPTH => {
                    if walk(&path, depth + 1, skip, found) {
                        return true;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %format!("{e:#}"), "skipped")
                }
            }
        } else if ty.is_file() {
            match input::detect(&path) {
                Ok(Some(_)) => found.push(path),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %format!("{e:#}"), "skipped")
                }
            }
        }
        // Links, fifos, devices and sockets are never opened.
    }
    false
}

/// The checkpoint archives an object-storage URL names: the object, or
/// those under the prefix, searched as a directory is (in name order, down
/// to [`MAX_DEPTH`] levels, at most [`MAX_FOUND`], recognised by their
/// first bytes, read with one ranged GET each); `skip` (the output
/// prefix) is not searched.
fn expand_url(url: &str, skip: Option<&str>) -> Vec<Found> {
    let url = crate::blobio::normalize_url(url);
    let problem = |p: String| Found {
        path: PathBuf::from(&url),
        problem: Some(p),
    };
    let loc = match crate::remote::Location::parse(&url) {
        Ok(l) => l,
        Err(e) => return vec![problem(format!("{e:#}"))],
    };
    match loc.head() {
        Err(e) => return vec![problem(format!("{e:#}"))],
        Ok(Some(m)) => {
            return match sniff_object(&loc, m.size) {
                Ok(true) => vec![Found {
                    path: PathBuf::from(&url),
                    problem: None,
                }],
                Ok(false) => vec![problem(format!(
                    "{url}: not a checkpoint archive (tar, tar.gz or tar.zst)"
                ))],
                Err(e) => vec![problem(format!("{e:#}"))],
            };
        }
        Ok(None) => {}
    }
    let mut found = Vec::new();
    let full = match walk_url(&loc, 1, skip, &mut found) {
        Ok(full) => full,
        Err(e) => return vec![problem(format!("{e:#}"))],
    };
    let n = found.len();
    let mut out = found;
    if full {
        out.push(problem(format!(
            "{url}: more than {MAX_FOUND} checkpoints; the rest are left out"
        )));
    } else if n == 0 {
        out.push(problem(format!(
            "{url}: holds no checkpoint archives ({MAX_DEPTH} levels searched)"
        )));
    }
    out
}

/// Whether the object's first bytes are a tar, tar.gz or tar.zst's.
fn sniff_object(loc: &crate::remote::Location, size: u64) -> anyhow::Result<bool> {
    Ok(crate::compress::tar_compression(&loc.read_start(512.min(size))?).is_some())
}

/// Adds the archives under the prefix `loc` (at `depth`) to `found`, and
/// the keys that cannot be read with why (never skipped: they are failed
/// inputs); true if it stopped at [`MAX_FOUND`].
fn walk_url(
    loc: &crate::remote::Location,
    depth: usize,
    skip: Option<&str>,
    found: &mut Vec<Found>,
) -> anyhow::Result<bool> {
    let listing = loc.list()?;
    let failed = |path: String, why: String| Found {
        path: PathBuf::from(path),
        problem: Some(why),
    };
    for (key, name, why) in &listing.bad {
        let why = format!("key \"{key}\": no object-storage path can name it ({why})");
        found.push(failed(format!("{}/{name}", loc.url()), why));
    }
    if listing.objects.iter().any(|(n, _)| n == "pstree.img") {
        tracing::warn!(
            prefix = %loc.url(),
            "CRIU images in object storage are read only as an archive; skipped"
        );
    }
    for (name, meta) in &listing.objects {
        if found.len() >= MAX_FOUND {
            return Ok(true);
        }
        let obj = loc.join(name);
        match sniff_object(&obj, meta.size) {
            Ok(true) => found.push(Found {
                path: PathBuf::from(obj.url()),
                problem: None,
            }),
            Ok(false) => {}
            Err(e) => found.push(failed(obj.url(), format!("{e:#}"))),
        }
    }
    if depth >= MAX_DEPTH {
        return Ok(false);
    }
    for name in &listing.dirs {
        let sub = loc.join(name);
        if skip.is_some_and(|s| s == sub.url()) {
            continue;
        }
        if walk_url(&sub, depth + 1, skip, found)? {
            return Ok(true);
        }
    }
    Ok(false)
}
