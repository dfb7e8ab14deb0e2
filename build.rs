//! Compiles criu2core's own CRIU message definitions (`proto/*.proto`) with
//! protox, a pure-Rust protobuf compiler, so no system `protoc` is needed;
//! and records the source revision `--version` names
//! (`CRIU2CORE_REVISION`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "core.proto",
        "arch.proto",
        "mm.proto",
        "tree.proto",
        "files.proto",
        "fds.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed=proto/{f}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    prost_build::Config::new()
        .out_dir(&out)
        .compile_fds(descriptors)?;
    println!("cargo:rustc-env=CRIU2CORE_REVISION={}", revision());
    Ok(())
}

/// The commit the sources come from: CRIU2CORE_REVISION if set (a build
/// from an export, such as a container build without `.git`), else git's
/// HEAD, else the commit `cargo package` recorded in
/// `.cargo_vcs_info.json`, else "unknown".
fn revision() -> String {
    println!("cargo:rerun-if-env-changed=CRIU2CORE_REVISION");
    if let Ok(r) = std::env::var("CRIU2CORE_REVISION") {
        if !r.trim().is_empty() {
            return r.trim().to_string();
        }
    }
    if let Some(r) = git_head() {
        return r;
    }
    println!("cargo:rerun-if-changed=.cargo_vcs_info.json");
    std::fs::read_to_string(".cargo_vcs_info.json")
        .ok()
        .and_then(|t| vcs_info_sha1(&t))
        .unwrap_or_else(|| "unknown".into())
}

/// `git rev-parse HEAD` (12 digits), rerun when HEAD or the branch moves.
fn git_head() -> Option<String> {
    let git = |args: &[&str]| -> Option<String> {
        let o = Command::new("git").args(args).output().ok()?;
        let s = String::from_utf8(o.stdout).ok()?;
        (o.status.success() && !s.trim().is_empty()).then(|| s.trim().to_string())
    };
    // Only the repository this crate is the root of: a crate unpacked
    // inside some other checkout must not take that checkout's commit.
    let top = git(&["rev-parse", "--show-toplevel"])?;
    let here = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    if Path::new(&top).canonicalize().ok()? != Path::new(&here).canonicalize().ok()? {
        return None;
    }
    let rev = git(&["rev-parse", "--short=12", "HEAD"])?;
    // (A path that does not exist would rerun this script on every build.)
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    for p in ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref()) {
        if let Some(f) = git(&["rev-parse", "--git-path", p]).filter(|f| Path::new(f).exists()) {
            println!("cargo:rerun-if-changed={f}");
        }
    }
    Some(rev)
}

/// The `"sha1"` of `.cargo_vcs_info.json`'s `"git"` object.
fn vcs_info_sha1(text: &str) -> Option<String> {
    let at = text.find("\"sha1\"")? + "\"sha1\"".len();
    let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let sha: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
    (sha.len() >= 12).then(|| sha[..12].to_string())
}
