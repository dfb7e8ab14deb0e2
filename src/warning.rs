//! Warnings: what was wrong with a checkpoint but did not stop it being
//! read or converted, each with a kind a caller can act on and the file
//! it is about.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a [`Warning`] is about, decided where it is raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WarningKind {
    /// A file the checkpoint names was not found where it was looked for
    /// (the root, the image, the checkpoint's own images, this machine).
    FileNotFound,
    /// A file was found, but it is not the one CRIU recorded.
    FileMismatch,
    /// A path could not be followed for too many symbolic links.
    LinkLoop,
    /// Part of the input could not be read or decoded, and is not used (a
    /// rootfs diff, a container description, a mapped file).
    Unreadable,
    /// Memory of a process is not in its core (pages a lazy-pages or
    /// parent dump lacks, a file mapped again past one copy).
    PagesLeftOut,
    /// Data of the checkpoint that nothing uses was ignored (pagemap
    /// entries outside every mapping, pages no entry claims, images no
    /// process owns, a pid listed twice alike).
    EntryIgnored,
    /// Archive members whose paths leave their root (`..`) were skipped.
    UnsafePath,
    /// The process tree contradicts itself (a pid its own ancestor).
    InconsistentTree,
    /// One of criu2core's bounds was reached; what lies past it is left
    /// out.
    Limit,
    /// The input uses something criu2core does not support (a sparse file
    /// in a rootfs diff).
    Unsupported,
    /// The work was cancelled before it was done.
    Cancelled,
    /// Files were wanted from the container's root and neither `--root`
    /// nor `--image` was given.
    NoRoot,
    /// A file `--sysroot` should hold could not be written there.
    NotWritten,
    /// A warning recorded by an earlier criu2core, which had no kinds.
    Unclassified,
}

/// A warning: its kind, the checkpoint file or path it is about (where
/// there is one), and its message as criu2core prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Stored")]
#[non_exhaustive]
pub struct Warning {
    /// What it is about.
    pub kind: WarningKind,
    /// The file or path it concerns, as messages name it.
    pub file: Option<String>,
    /// What happened, in words.
    pub message: String,
}

/// A warning as JSON holds it: an object, or (in the records of an
/// earlier criu2core) its message alone.
#[derive(Deserialize)]
#[serde(untagged)]
enum Stored {
    Full {
        kind: WarningKind,
        file: Option<String>,
        message: String,
    },
    Text(String),
}

impl From<Stored> for Warning {
    fn from(s: Stored) -> Warning {
        match s {
            Stored::Full {
                kind,
                file,
                message,
            } => Warning {
                kind,
                file,
                message,
            },
            Stored::Text(message) => Warning::new(WarningKind::Unclassified, message),
        }
    }
}

impl WarningKind {
    /// The kind of a warning that something could not be read for error
    /// `e`: [`WarningKind::Limit`] where a bound stopped it, else
    /// [`WarningKind::Unreadable`].
    pub(crate) fn unread(e: &anyhow::Error) -> WarningKind {
        match crate::error::kind_of(e) {
            crate::ErrorKind::Limit => WarningKind::Limit,
            _ => WarningKind::Unreadable,
        }
    }
}

impl Warning {
    /// A warning of `kind` about no file in particular.
    pub(crate) fn new(kind: WarningKind, message: impl Into<String>) -> Warning {
        Warning {
            kind,
            file: None,
            message: message.into(),
        }
    }

    /// The same warning, about `file`.
    pub(crate) fn about(mut self, file: impl Into<String>) -> Warning {
        self.file = Some(file.into());
        self
    }

    /// The same warning with `prefix` before its message (a pid, a side).
    pub(crate) fn prefixed(&self, prefix: &str) -> Warning {
        Warning {
            message: format!("{prefix}{}", self.message),
            ..self.clone()
        }
    }
}

impl fmt::Display for Warning {
    /// The message alone, as criu2core prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind, listed through a match so that a kind added to the
    /// enum and not here fails to compile.
    fn all_kinds() -> Vec<WarningKind> {
        use WarningKind::*;
        let all = vec![
            FileNotFound,
            FileMismatch,
            LinkLoop,
            Unreadable,
            PagesLeftOut,
            EntryIgnored,
            UnsafePath,
            InconsistentTree,
            Limit,
            Unsupported,
            Cancelled,
            NoRoot,
            NotWritten,
            Unclassified,
        ];
        for k in &all {
            match k {
                FileNotFound | FileMismatch | LinkLoop | Unreadable | PagesLeftOut
                | EntryIgnored | UnsafePath | InconsistentTree | Limit | Unsupported
                | Cancelled | NoRoot | NotWritten | Unclassified => {}
            }
        }
        all
    }

    /// Each kind is raised by the code outside the tests (`Unclassified`
    /// only where an old record is read back, here): a kind nothing raises
    /// is one a caller waits for in vain.
    #[test]
    fn every_kind_is_raised_somewhere() {
        fn files(dir: &std::path::Path, out: &mut String) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    files(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("warning.rs") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    out.push_str(text.split("#[cfg(test)]\nmod tests").next().unwrap());
                }
            }
        }
        let mut code = String::new();
        files(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut code,
        );
        let unraised: Vec<_> = all_kinds()
            .into_iter()
            .filter(|&k| k != WarningKind::Unclassified)
            .filter(|k| !code.contains(&format!("WarningKind::{k:?}")))
            .collect();
        assert!(unraised.is_empty(), "never raised: {unraised:?}");
    }

    /// Each kind's JSON name is what docs/inspect.md and the schemas list.
    #[test]
    fn every_kind_is_documented() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let doc = std::fs::read_to_string(root.join("docs/inspect.md")).unwrap();
        for k in all_kinds() {
            let name = serde_json::to_value(k).unwrap();
            let name = name.as_str().unwrap();
            assert!(
                doc.contains(&format!("| `{name}` |")),
                "{name} not in docs/inspect.md"
            );
            for schema in ["inspect", "convert", "batch", "diff"] {
                let path = root.join(format!("docs/{schema}.schema.json"));
                let text = std::fs::read_to_string(path).unwrap();
                assert!(
                    text.contains(&format!("\"{name}\"")),
                    "{name} not in {schema}'s schema"
                );
            }
        }
    }

    #[test]
    fn json_is_an_object_and_an_old_string_reads_as_unclassified() {
        let w = Warning::new(WarningKind::LinkLoop, "x: too many links").about("/x");
        let json = serde_json::to_value(&w).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "link_loop", "file": "/x", "message": "x: too many links"})
        );
        assert_eq!(serde_json::from_value::<Warning>(json).unwrap(), w);
        let old: Warning = serde_json::from_str("\"pid 1: lost\"").unwrap();
        assert_eq!(old.kind, WarningKind::Unclassified);
        assert_eq!((old.to_string(), old.file), ("pid 1: lost".into(), None));
    }
}
