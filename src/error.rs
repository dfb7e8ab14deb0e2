//! The library's error: what went wrong, as a message that names the file
//! (and the offset in it, where there is one) and the context it arose
//! in, and as an [`ErrorKind`] a caller can act on.
//!
//! Inside the crate errors are `anyhow` errors; the kind is decided where
//! the error arises, by raising a [`Fault`] (or by the error being an
//! `std::io::Error` or a cancellation), never by reading messages.

use std::fmt;

use crate::cancel::Cancelled;

/// What the library's functions return.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input is no checkpoint criu2core reads: no `pstree.img` or
    /// `checkpoint/pstree.img`, and no archive holding one.
    NotACheckpoint,
    /// A CRIU image is damaged: truncated, undecodable, or contradicting
    /// itself or another image.
    CorruptImage {
        /// The image, as messages name it.
        file: String,
        /// Where in it, where known.
        offset: Option<u64>,
    },
    /// An archive (a checkpoint archive or its rootfs diff) is damaged, or
    /// holds what criu2core refuses (paths out of it, device files, ...).
    BadArchive,
    /// The checkpoint is of an architecture criu2core does not convert.
    UnsupportedArch,
    /// The input exceeds one of criu2core's bounds (threads, mappings,
    /// archive members, unpacked bytes, ...).
    Limit,
    /// The process asked for is not in the checkpoint.
    NoSuchProcess,
    /// A core is already there and replacing it was not asked for.
    Exists,
    /// The work was cancelled through a [`crate::Cancel`], with the reason
    /// it was cancelled for.
    Cancelled(usize),
    /// Reading or writing a file failed.
    Io(std::io::ErrorKind),
    /// Anything else.
    Other,
}

/// An error of the library: its message (with the context it arose in)
/// and its [`ErrorKind`].
#[derive(thiserror::Error)]
#[error("{inner:#}")]
pub struct Error {
    kind: ErrorKind,
    inner: anyhow::Error,
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {:#}", self.kind, self.inner)
    }
}

impl Error {
    /// Wraps an internal error, deciding its kind from what raised it.
    pub(crate) fn new(inner: anyhow::Error) -> Error {
        Error {
            kind: kind_of(&inner),
            inner,
        }
    }

    /// What kind of failure it is.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The I/O error underneath, if reading or writing a file failed.
    pub fn io_error(&self) -> Option<&std::io::Error> {
        self.inner
            .chain()
            .find_map(|e| e.downcast_ref::<std::io::Error>())
    }
}

/// An error whose kind is known where it arises; its message is the whole
/// message (context added later goes before it).
#[derive(Debug)]
pub(crate) struct Fault {
    kind: ErrorKind,
    message: String,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fault {}

impl Fault {
    /// A failure of `kind` saying `message`: to raise with
    /// [`anyhow::Error::new`] or to add as context to the error underneath
    /// (whose kind it then decides).
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Fault {
        Fault {
            kind,
            message: message.into(),
        }
    }

    /// A damaged image, as [`corrupt`] makes one.
    pub(crate) fn corrupt(
        file: impl Into<String>,
        offset: Option<u64>,
        what: impl Into<String>,
    ) -> Fault {
        Fault::new(
            ErrorKind::CorruptImage {
                file: file.into(),
                offset,
            },
            what,
        )
    }
}

/// An error of `kind` saying `message`.
pub(crate) fn fault(kind: ErrorKind, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Fault::new(kind, message))
}

/// A damaged image: `file`, at `offset` where known; `what` is the whole
/// message (it names the file and offset itself).
pub(crate) fn corrupt(
    file: impl Into<String>,
    offset: Option<u64>,
    what: impl Into<String>,
) -> anyhow::Error {
    anyhow::Error::new(Fault::corrupt(file, offset, what))
}

/// The kind of an internal error: the [`Fault`], cancellation or public
/// [`Error`] in its chain, else the I/O error underneath, else
/// [`ErrorKind::Other`].
pub(crate) fn kind_of(e: &anyhow::Error) -> ErrorKind {
    let mut io = None;
    for cause in e.chain() {
        if let Some(f) = cause.downcast_ref::<Fault>() {
            return f.kind.clone();
        }
        if let Some(c) = cause.downcast_ref::<Cancelled>() {
            return ErrorKind::Cancelled(c.0);
        }
        // A public function's error, passed on inside the crate.
        if let Some(e) = cause.downcast_ref::<Error>() {
            return e.kind.clone();
        }
        if let Some(e) = cause.downcast_ref::<std::io::Error>() {
            // A reader that stopped for a cancellation (CancelReader).
            if let Some(c) = e.get_ref().and_then(|i| i.downcast_ref::<Cancelled>()) {
                return ErrorKind::Cancelled(c.0);
            }
            io = io.or(Some(e.kind()));
        }
    }
    // A Fault or cancellation added as context rather than raised.
    if let Some(f) = e.downcast_ref::<Fault>() {
        return f.kind.clone();
    }
    if let Some(c) = e.downcast_ref::<Cancelled>() {
        return ErrorKind::Cancelled(c.0);
    }
    io.map_or(ErrorKind::Other, ErrorKind::Io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn the_kind_survives_context_and_the_message_keeps_it() {
        let e: anyhow::Result<()> =
            Err(corrupt("a/mm-1.img", Some(8), "a/mm-1.img: offset 8: bad"));
        let e = Error::new(e.context("loading pid 1").context("a").unwrap_err());
        assert_eq!(
            e.kind(),
            &ErrorKind::CorruptImage {
                file: "a/mm-1.img".into(),
                offset: Some(8)
            }
        );
        assert_eq!(e.to_string(), "a: loading pid 1: a/mm-1.img: offset 8: bad");

        let io = std::fs::File::open("/nonexistent/criu2core").context("opening");
        let e = Error::new(io.unwrap_err());
        assert_eq!(e.kind(), &ErrorKind::Io(std::io::ErrorKind::NotFound));
        assert!(e.io_error().is_some());

        let c = crate::cancel::Cancel::new();
        c.cancel(2);
        let e = Error::new(c.check().context("while writing").unwrap_err());
        assert_eq!(e.kind(), &ErrorKind::Cancelled(2));
        assert_eq!(
            Error::new(anyhow::anyhow!("plain")).kind(),
            &ErrorKind::Other
        );
    }

    /// The calls in `src` that raise an error with a message, each with
    /// its file and line: `bail!(...)`, `anyhow!(...)`, `fault(...)`,
    /// `Fault::new(...)`, their whole argument text (test modules left
    /// out: they end a file here).
    fn raise_sites() -> Vec<(String, usize, String)> {
        fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    files(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push(p);
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut paths = Vec::new();
        files(&root, &mut paths);
        paths.sort();
        let mut sites = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(&path).unwrap();
            let text = text.split("#[cfg(test)]\nmod tests").next().unwrap();
            let name = path.strip_prefix(&root).unwrap().display().to_string();
            for opener in ["bail!(", "anyhow!(", "fault(", "Fault::new("] {
                for (at, _) in text.match_indices(opener) {
                    let prev = text[..at].chars().next_back();
                    if prev.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        continue; // another name ending so, as corrupt_fault(
                    }
                    let body = &text[at + opener.len()..];
                    let mut depth = 1;
                    let end = body
                        .char_indices()
                        .find(|&(_, c)| {
                            depth += i32::from(c == '(') - i32::from(c == ')');
                            depth == 0
                        })
                        .map_or(body.len(), |(i, _)| i);
                    let line = text[..at].lines().count();
                    sites.push((name.clone(), line, body[..end].to_string()));
                }
            }
        }
        sites
    }

    /// Every error whose message names one of the bounds (a `MAX_`
    /// constant) is raised as [`ErrorKind::Limit`] where it arises, so
    /// that no bound's error reaches a caller as [`ErrorKind::Other`].
    #[test]
    fn every_bound_is_raised_as_a_limit() {
        let sites = raise_sites();
        assert!(sites.len() > 100, "found only {} raise sites", sites.len());
        // Not bounds on input: the command line's own errors, and ranges
        // of a caller's options (a shard K/N, --span, -C).
        let options = ["{MAX_SHARDS}", "{MAX_SPAN}", "{MAX_CONTEXT}"];
        let mut wrong = Vec::new();
        for (file, line, args) in &sites {
            if file.starts_with("cli/") || options.iter().any(|o| args.contains(o)) {
                continue;
            }
            let names_bound =
                args.contains("{MAX_") || args.contains(", MAX_") || args.contains("(MAX_");
            if names_bound && !args.contains("ErrorKind::Limit") {
                wrong.push(format!("src/{file}:{line}: {}", args.trim()));
            }
        }
        assert!(
            wrong.is_empty(),
            "bounds raised without ErrorKind::Limit:\n{}",
            wrong.join("\n")
        );
    }
}
