//! The integration tests, in one binary (one link instead of one per file),
//! run by libtest-mimic so that a test whose tool is missing is reported as
//! ignored, with the reason, instead of passing without having checked
//! anything. Where CRIU2CORE_REQUIRE_TOOLS is set (`.ci/run` sets it), such
//! a test runs and fails instead.
//!
//! Each module lists its tests in `tests()`. A test function that is not
//! listed there is dead code, which `cargo clippy -- -D warnings` refuses;
//! and `#[test]` attributes, which this harness would silently drop, are
//! refused by [`no_stray_test_attributes`].

/// The trials of a module: each test function, optionally followed by
/// `needs [Need, ...]`.
macro_rules! trials {
    ($($f:ident $(needs [$($need:expr),* $(,)?])?),* $(,)?) => {
        vec![$(
            crate::trial(
                concat!(module_path!(), "::", stringify!($f)).trim_start_matches("it::"),
                $f,
                &[$($($need),*)?],
            )
        ),*]
    };
}

mod common;

mod arches;
mod archives;
mod batch;
mod consumers;
mod container_images;
mod deploy;
mod diff;
mod engines;
mod fds;
mod fleet;
mod gdb;
mod grep;
mod hashes;
mod hostile;
mod hostile_walks;
mod images;
mod library;
mod onepass;
mod readme;
mod sysroot;
mod terminal;
mod trust;
mod yara;

use std::collections::HashMap;
use std::sync::Mutex;

use libtest_mimic::{Arguments, Failed, Trial};

/// Something a test needs that a machine may lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Need {
    /// A program on PATH.
    Tool(&'static str),
    /// lldb, under any of Debian's names (lldb, lldb-16, ...).
    Lldb,
    /// A Python with drgn 0.0.25 or later.
    Drgn,
    /// The host holds the shared libraries the fixtures mapped, at their
    /// paths (eu-stack and lldb read a core's libraries from the host).
    FixtureLibraries,
    /// moto's S3 server (`moto_server`, from PyPI's moto[server]; .ci/run
    /// installs it into target/s3-venv).
    S3Server,
    /// Azurite's blob service (npm's azurite; .ci/run installs it into
    /// target/azurite) and Azure's Python SDK (in target/s3-venv).
    AzureServer,
    /// A private mount namespace in which tmpfs can be mounted (`unshare
    /// -m`, as root), to hide directories from a program.
    MountNamespace,
    /// A criu2core with the yara feature (`common::yara_criu2core`): the
    /// tests' own, built with `cargo test --features yara`, or where
    /// CRIU2CORE_REQUIRE_TOOLS is set (CI) the static one
    /// scripts/build-static builds with it, as the image ships it.
    Yara,
}

impl Need {
    /// Why the need is not met, or `None` if it is.
    fn unmet(self) -> Option<String> {
        match self {
            Need::Tool(t) => (!common::on_path(t)).then(|| format!("{t} is not installed")),
            Need::Lldb => common::lldb_program()
                .is_none()
                .then(|| "lldb is not installed".into()),
            Need::Drgn => common::drgn_python().is_none().then(|| {
                "no Python with drgn >= 0.0.25 (target/ci-venv, DRGN_PYTHON or python3)".into()
            }),
            Need::FixtureLibraries => common::missing_fixture_libraries(),
            Need::MountNamespace => common::mount_namespace_unavailable(),
            Need::Yara => (!cfg!(feature = "yara")
                && std::env::var_os("CRIU2CORE_REQUIRE_TOOLS").is_none())
            .then(|| {
                "the tests were built without the yara feature: run them with `cargo test --features yara` (or set CRIU2CORE_REQUIRE_TOOLS=1 to build and use scripts/build-static's binary)".into()
            }),
            Need::S3Server => fleet::moto_server().is_none().then(|| {
                "no moto_server (target/s3-venv, MOTO_SERVER or PATH; pip install 'moto[server]')"
                    .into()
            }),
            Need::AzureServer => match (fleet::azurite_blob(), fleet::azure_python()) {
                (None, _) => Some(
                    "no azurite-blob (target/azurite, AZURITE_BLOB or PATH; npm install azurite)"
                        .into(),
                ),
                (_, None) => Some(
                    "no azure-storage-blob in target/s3-venv (pip install azure-storage-blob)"
                        .into(),
                ),
                _ => None,
            },
        }
    }
}

/// Memoised [`Need::unmet`]: each need is probed once per run.
fn unmet(need: Need) -> Option<String> {
    static SEEN: Mutex<Option<HashMap<Need, Option<String>>>> = Mutex::new(None);
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    seen.get_or_insert_with(HashMap::new)
        .entry(need)
        .or_insert_with(|| need.unmet())
        .clone()
}

/// A trial for the test function `f`, named `name`, that needs `needs`.
/// With a need unmet it is ignored (the reason printed on stderr), unless
/// CRIU2CORE_REQUIRE_TOOLS is set, where it fails saying what is missing.
pub fn trial(name: &str, f: fn(), needs: &[Need]) -> Trial {
    let missing: Vec<String> = needs.iter().filter_map(|&n| unmet(n)).collect();
    if missing.is_empty() {
        return Trial::test(name, move || {
            f();
            Ok(())
        });
    }
    let why = missing.join("; ");
    if std::env::var_os("CRIU2CORE_REQUIRE_TOOLS").is_some() {
        return Trial::test(name, move || {
            Err(Failed::from(format!(
                "{why}, and CRIU2CORE_REQUIRE_TOOLS is set"
            )))
        });
    }
    // libtest-mimic shows no reason beside "ignored": say it here, once.
    eprintln!("{name}: ignored: {why}");
    Trial::test(name, || Ok(())).with_ignored_flag(true)
}

/// The harness drops `#[test]` functions without a word; every test must
/// be listed in its module's `tests()` instead.
fn no_stray_test_attributes() {
    let sources = [
        ("arches.rs", include_str!("arches.rs")),
        ("archives.rs", include_str!("archives.rs")),
        ("batch.rs", include_str!("batch.rs")),
        ("common.rs", include_str!("common.rs")),
        ("consumers.rs", include_str!("consumers.rs")),
        ("container_images.rs", include_str!("container_images.rs")),
        ("deploy.rs", include_str!("deploy.rs")),
        ("diff.rs", include_str!("diff.rs")),
        ("engines.rs", include_str!("engines.rs")),
        ("fds.rs", include_str!("fds.rs")),
        ("fleet.rs", include_str!("fleet.rs")),
        ("gdb.rs", include_str!("gdb.rs")),
        ("grep.rs", include_str!("grep.rs")),
        ("hashes.rs", include_str!("hashes.rs")),
        ("hostile.rs", include_str!("hostile.rs")),
        ("hostile_walks.rs", include_str!("hostile_walks.rs")),
        ("images.rs", include_str!("images.rs")),
        ("library.rs", include_str!("library.rs")),
        ("onepass.rs", include_str!("onepass.rs")),
        ("readme.rs", include_str!("readme.rs")),
        ("sysroot.rs", include_str!("sysroot.rs")),
        ("terminal.rs", include_str!("terminal.rs")),
        ("trust.rs", include_str!("trust.rs")),
        ("yara.rs", include_str!("yara.rs")),
    ];
    for (file, text) in sources {
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            assert!(
                !(l.starts_with("#[test") || l.starts_with("#[ignore")),
                "tests/it/{file}:{}: `{l}` is ignored by this harness; list the test in tests()",
                i + 1
            );
        }
    }
    let listed: Vec<&str> = sources.iter().map(|&(file, _)| file).collect();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it");
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            name == "main.rs" || listed.contains(&name.as_str()),
            "tests/it/{name} is not checked for #[test] attributes: add it to no_stray_test_attributes"
        );
    }
}

fn main() {
    let args = Arguments::from_args();
    let mut tests = vec![trial(
        "no_stray_test_attributes",
        no_stray_test_attributes,
        &[],
    )];
    tests.extend(arches::tests());
    tests.extend(archives::tests());
    tests.extend(batch::tests());
    tests.extend(consumers::tests());
    tests.extend(container_images::tests());
    tests.extend(deploy::tests());
    tests.extend(diff::tests());
    tests.extend(engines::tests());
    tests.extend(fds::tests());
    tests.extend(fleet::tests());
    tests.extend(gdb::tests());
    tests.extend(grep::tests());
    tests.extend(hashes::tests());
    tests.extend(onepass::tests());
    tests.extend(hostile::tests());
    tests.extend(hostile_walks::tests());
    tests.extend(images::tests());
    tests.extend(library::tests());
    tests.extend(readme::tests());
    tests.extend(sysroot::tests());
    tests.extend(terminal::tests());
    tests.extend(trust::tests());
    tests.extend(yara::tests());
    libtest_mimic::run(&args, tests).exit();
}
