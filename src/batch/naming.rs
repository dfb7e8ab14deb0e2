//! Naming each input's output directory: stable from run to run, one
//! path component, never another input's nor anything batch did not make.

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::absolute;
use super::record::read_record;
use crate::outdir::OutDir;

/// An input as batch knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputId {
    /// Its canonical path (absolute where it cannot be resolved).
    pub path: PathBuf,
    /// SHA-256 (hex) of that path's bytes.
    pub sha256: String,
    /// Its output name before any digest suffix ([`output_name`]).
    pub base: String,
}

impl InputId {
    /// Identifies the input at `path`.
    pub fn new(path: &Path) -> InputId {
        let path = absolute(path);
        let digest = Sha256::digest(path.as_os_str().as_bytes());
        let sha256 = digest.iter().map(|b| format!("{b:02x}")).collect();
        InputId {
            base: output_name(&path),
            sha256,
            path,
        }
    }
}

/// What sits under a name in an output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Occupant {
    /// Nothing, or an empty directory.
    Free,
    /// The directory of the input whose canonical path has this SHA-256.
    Input(String),
    /// Anything else: a file, a link, a directory without a record.
    Other,
}

pub(crate) fn occupant(out: &OutDir, name: &str) -> Occupant {
    if out.is_free(name).unwrap_or(false) {
        return Occupant::Free;
    }
    match out.existing_subdir(name) {
        Ok(Some(d)) => match read_record(&d) {
            Some(r) => Occupant::Input(r.input_sha256),
            None if d.is_empty().unwrap_or(false) => Occupant::Free,
            None => Occupant::Other,
        },
        _ => Occupant::Other,
    }
}

/// The names an input may get, in order of preference.
fn candidates(base: &str, sha256: &str) -> [String; 3] {
    let d = |n: usize| sha256.get(..n).unwrap_or(sha256);
    [
        base.to_string(),
        format!("{base}-{}", d(8)),
        format!("{base}-{}", d(16)),
    ]
}

/// Chooses each input's output directory name (see the module's rules),
/// given what occupies a name; `None` where every candidate is taken. The
/// choice depends on the set of inputs and the occupants, never on the
/// inputs' order.
pub fn choose_names(
    inputs: &[&InputId],
    occupied: &mut dyn FnMut(&str) -> Occupant,
) -> Vec<Option<String>> {
    let mut seen: HashMap<String, Occupant> = HashMap::new();
    let mut look = |name: &str| {
        seen.entry(name.to_string())
            .or_insert_with(|| occupied(name))
            .clone()
    };
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    order.sort_by(|&a, &b| {
        (&inputs[a].sha256, &inputs[a].base).cmp(&(&inputs[b].sha256, &inputs[b].base))
    });
    let mut per_base: HashMap<&str, usize> = HashMap::new();
    for i in inputs {
        *per_base.entry(i.base.as_str()).or_default() += 1;
    }
    let mut taken: HashSet<String> = HashSet::new();
    let mut names = vec![None; inputs.len()];
    // Directories inputs already have keep them.
    for &i in &order {
        let id = inputs[i];
        for c in candidates(&id.base, &id.sha256) {
            if !taken.contains(&c) && look(&c) == Occupant::Input(id.sha256.clone()) {
                taken.insert(c.clone());
                names[i] = Some(c);
                break;
            }
        }
    }
    for &i in &order {
        if names[i].is_some() {
            continue;
        }
        let id = inputs[i];
        let shared = per_base[id.base.as_str()] > 1;
        for c in candidates(&id.base, &id.sha256)
            .into_iter()
            .skip(usize::from(shared))
        {
            if !taken.contains(&c) && look(&c) == Occupant::Free {
                taken.insert(c.clone());
                names[i] = Some(c);
                break;
            }
        }
    }
    names
}

/// Suffixes taken off an input's file name to make its output name
/// (compared without regard to ASCII case).
pub const ARCHIVE_SUFFIXES: [&str; 6] =
    [".tar.zst", ".tar.zstd", ".tar.gz", ".tgz", ".tzst", ".tar"];
/// Names batch keeps for its own files in an output directory besides
/// dot-names (compared without regard to ASCII case).
pub const RESERVED_NAMES: [&str; 1] = ["summary.json"];
/// Longest output name before a digest suffix, in bytes.
pub const MAX_OUTPUT_NAME: usize = 200;

/// The name of the directory a batch or multi-input run writes an input's
/// cores into, before any digest suffix: the input's file name without an
/// archive suffix, with every character but ASCII letters, digits and
/// punctuation (except `/`) and non-ASCII letters and digits replaced by
/// `_`, `_` put before a leading `.` and before a reserved name (see
/// [`RESERVED_NAMES`]), cut to [`MAX_OUTPUT_NAME`] bytes; `checkpoint`
/// where nothing is left. Always a single safe path component
/// (see the output directory's `is_safe_component`) that starts with neither `.`
/// nor a reserved name. Pass a canonical path: `..` has no file name.
pub fn output_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut stem = name.as_str();
    for suffix in ARCHIVE_SUFFIXES {
        let cut = name.len().saturating_sub(suffix.len());
        if cut > 0 && name.is_char_boundary(cut) && name[cut..].eq_ignore_ascii_case(suffix) {
            stem = &name[..cut];
            break;
        }
    }
    let mut out = String::with_capacity(stem.len());
    for c in stem.chars() {
        let keep = if c.is_ascii() {
            c.is_ascii_graphic() && c != '/'
        } else {
            c.is_alphanumeric()
        };
        let c = if keep { c } else { '_' };
        if out.len() + c.len_utf8() > MAX_OUTPUT_NAME {
            break;
        }
        out.push(c);
    }
    if out.is_empty() {
        return "checkpoint".into();
    }
    if out.starts_with('.') || RESERVED_NAMES.iter().any(|r| out.eq_ignore_ascii_case(r)) {
        out.insert(0, '_');
        while out.len() > MAX_OUTPUT_NAME {
            out.pop();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn id(path: &str) -> InputId {
        InputId::new(Path::new(path))
    }

    fn names(ids: &[&InputId], occupants: &[(&str, Occupant)]) -> Vec<Option<String>> {
        let map: HashMap<&str, Occupant> = occupants.iter().cloned().collect();
        choose_names(ids, &mut |n| map.get(n).cloned().unwrap_or(Occupant::Free))
    }

    #[test]
    fn names_do_not_depend_on_the_order_of_the_inputs() {
        let a = id("/nonexistent/a/images");
        let b = id("/nonexistent/b/images");
        let c = id("/nonexistent/c/web.tar.zst");
        let one = names(&[&a, &b, &c], &[]);
        let two = names(&[&c, &b, &a], &[]);
        assert_eq!(one, [two[2].clone(), two[1].clone(), two[0].clone()]);
        assert_eq!(one[2].as_deref(), Some("web"));
        // Both namesakes get digests: neither is favoured.
        assert_eq!(one[0], Some(format!("images-{}", &a.sha256[..8])));
        assert_eq!(one[1], Some(format!("images-{}", &b.sha256[..8])));
    }

    #[test]
    fn an_input_keeps_its_directory_and_others_never_take_it() {
        let a = id("/nonexistent/a/images");
        let b = id("/nonexistent/b/images");
        // An earlier run gave `images` to a.
        let had = [("images", Occupant::Input(a.sha256.clone()))];
        assert_eq!(
            names(&[&b, &a], &had),
            [
                Some(format!("images-{}", &b.sha256[..8])),
                Some("images".into()),
            ]
        );
        // b alone does not take a's directory, nor a stranger's.
        assert_eq!(
            names(&[&b], &had)[0],
            Some(format!("images-{}", &b.sha256[..8]))
        );
        let other = [
            ("images", Occupant::Other),
            (&*format!("images-{}", &b.sha256[..8]), Occupant::Other),
        ];
        assert_eq!(
            names(&[&b], &other)[0],
            Some(format!("images-{}", &b.sha256[..16]))
        );
        let full = [
            ("images", Occupant::Other),
            (&*format!("images-{}", &b.sha256[..8]), Occupant::Other),
            (
                &*format!("images-{}", &b.sha256[..16]),
                Occupant::Input(a.sha256.clone()),
            ),
        ];
        assert_eq!(names(&[&b], &full)[0], None);
    }

    #[test]
    fn output_names_are_safe_whatever_the_input_is_called() {
        let cases: [(&[u8], &str); 16] = [
            (b"checkpoint-web.tar.zst", "checkpoint-web"),
            (b"dump", "dump"),
            (b"a.TAR.GZ", "a"),
            (b"x.tgz", "x"),
            (b"...tar.zst", "_.."),
            (b"..tar", "_."),
            (b".tar", "_.tar"),
            (b"..tar.gz", "_."),
            (b"...tgz", "_.."),
            (b"summary.json.tar", "_summary.json"),
            (b"SUMMARY.JSON", "_SUMMARY.JSON"),
            (b".criu2core.lock.tar", "_.criu2core.lock"),
            (b"a\x1b[2Jb\nc.tar", "a_[2Jb_c"),
            (b"sp ace\x7f\xff.tar", "sp_ace__"),
            (b"caf\xc3\xa9-\xe2\x80\xae.tar", "caf\u{e9}-_"),
            (b"ab\x00", "ab_"),
        ];
        for (raw, want) in cases {
            let p = Path::new(std::ffi::OsStr::from_bytes(raw));
            let got = output_name(p);
            assert_eq!(got, want, "{raw:?}");
            assert!(crate::outdir::is_safe_component(&got), "{raw:?}");
        }
        assert_eq!(output_name(Path::new("/")), "checkpoint");
        assert_eq!(output_name(Path::new("a/..")), "checkpoint");
        // Found by fuzz/naming: a long dot-name, '_' put before it, was
        // one byte over the bound.
        let dots = format!(".{}", "a".repeat(300));
        assert_eq!(output_name(Path::new(&dots)).len(), MAX_OUTPUT_NAME);
        assert!(output_name(Path::new(&dots)).starts_with("_."));
        let long = "é".repeat(300);
        let got = output_name(Path::new(&long));
        assert!(got.len() <= MAX_OUTPUT_NAME && got.chars().all(|c| c == 'é'));
    }
}
