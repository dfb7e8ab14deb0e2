//! The command line's definitions: subcommands, options, help texts, and
//! how the option values are parsed.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

/// CRIU image versions this release reads.
pub const IMAGE_VERSIONS: &str =
    "CRIU image format v2 (CRIU 3.x and 4.x; v1.1 images of CRIU 1.x-2.x too)";

/// The version and the source revision it was built from (build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("CRIU2CORE_REVISION"),
    ")"
);

pub(crate) fn long_version() -> &'static str {
    let arches: Vec<&str> = criu2core::model::Arch::ALL
        .iter()
        .map(|a| a.name())
        .collect();
    let text = format!(
        "{VERSION}\nreads:         {IMAGE_VERSIONS}\narchitectures: {} (on any host)",
        arches.join(", ")
    );
    Box::leak(text.into_boxed_str())
}

/// Parses a byte count as `--max-spill` takes it: a number, optionally
/// followed by K, M, G or T (powers of 1024; "KiB", "MB" and the like mean
/// the same).
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = t.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size (a number, with K, M, G or T)"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(format!("{text:?}: unknown unit (K, M, G or T)")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Convert CRIU checkpoints into ELF core files for gdb, lldb, eu-stack and drgn.
#[derive(Parser)]
#[command(name = "criu2core", version = VERSION, long_version = long_version(), about, long_about = None)]
pub struct Cli {
    /// More diagnostics on stderr (-v, -vv, -vvv); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Write one core file per process of a checkpoint.
    #[command(after_help = "\
Inputs are CRIU image directories (Docker's checkpoints too), unpacked
container checkpoints (a directory with checkpoint/), checkpoint archives
(.tar, .tar.gz, .tar.zst as Podman, CRI-O and the kubelet on CRI-O or
containerd write them), and checkpoint images (containerd's ctr image
export, podman --create-image, CRI-O's buildah recipe: OCI layouts, OCI
archives, docker-archives); all recognised by content. With several
inputs, each gets a subdirectory of OUT_DIR named after it (docs/batch.md
gives the rule).

After each core, convert prints the gdb command that opens it. With --root
or --sysroot that is gdb -iex 'set sysroot DIR' DIR/EXE CORE: the sysroot
must be set with -iex (before the core is loaded), not -ex, or gdb cannot
place a position-independent program.

Examples:
  criu2core convert -i /var/lib/criu/dump -o cores
  criu2core convert checkpoint-web_default-app-2026-11-24T10:00:00Z.tar -o cores
  criu2core convert dump/ -o cores -p 1 --root /srv/rootfs
  criu2core convert ck.tar -o cores --image app.oci.tar --sysroot sysroot
  gdb -iex 'set sysroot sysroot' sysroot/usr/bin/app cores/core.1")]
    Convert(ConvertArgs),
    /// Show a checkpoint's container, processes and memory.
    #[command(after_help = "\
Examples:
  criu2core inspect checkpoint.tar.zst
  criu2core inspect --env /var/lib/criu/dump
  criu2core inspect --json checkpoint.tar | jq '.processes[].argv'
  criu2core inspect --json --sockets ck.tar | jq '.processes[].sockets[].remote.address'")]
    Inspect(InspectArgs),
    /// Show what changed between two checkpoints of the same processes.
    #[command(after_help = "\
Matches processes by pid and reports those added, removed and changed;
per process its threads, name, state, command line and environment, its
mappings (start, end, protection, kind, path, file offset), the pages
whose contents differ (a page only one side holds counts; a hole on both
does not), and its open files and sockets. A summary of counts comes
first. Memory is compared as both checkpoints are read, in address order,
never held. File pages come from --root or --image where given.

Exit status: 0 the same, 1 different, 2 an error.

Examples:
  criu2core diff yesterday.tar.zst today.tar.zst
  criu2core diff --json dump-1/ dump-2/ | jq '.processes[].pages'
  criu2core diff --quiet a/ b/ && echo unchanged")]
    Diff(DiffArgs),
    /// Search the memory of checkpointed processes.
    #[command(after_help = "\
Searches each process's memory as its core would hold it: dumped pages,
shared memory, pages of parent dumps; never across an unmapped gap or an
anonymous hole CRIU did not dump. A line per match: input, pid, comm,
address, and the mapping [start-end prot kind path +file-offset].

Exit status: 0 something matched, 1 nothing did, 2 an error.

-v after grep is refused (grep's -v inverts the match, which has no
meaning here): write --verbose for diagnostics.

Examples:
  criu2core grep RANDOM_1432_KEY checkpoint.tar.zst
  criu2core grep -E 'AKIA[0-9A-Z]{16}' --kind heap --kind anon /var/lib/kubelet/checkpoints
  criu2core grep --utf16 -i password -C 32 dump/
  criu2core grep --hex 'de ad be ef' --prot rw --json dump/ | jq .address")]
    Grep(GrepArgs),
    /// Run YARA rules over the memory of checkpointed processes.
    #[command(after_help = "\
Runs the rules (compiled once by yara-x) over each process's memory as its
core would hold it, with grep's filters. A rule's condition sees one
process at a time, each byte at its virtual address (offsets in
conditions are addresses, as yara -p sees a live process); a string
match never spans a hole, a gap or two mappings, and is found whole up to
64 KiB long. filesize, uint32() and file-parsing modules are undefined.
A line per string match: input, pid, comm, namespace:rule [tags],
string, address, mapping [start-end prot kind path +offset]: bytes.
The bytes CRIU saved in TCP, socket, pipe and FIFO queues are scanned
too, each queue on its own as a file (offsets from its start): such a
match names fd N, the queue, the descriptor [object] and +offset
(--memory-only skips them).

Needs the yara feature (cargo install --features yara).
Exit status: 0 some rule matched, 1 none did, 2 an error.

Examples:
  criu2core yara rules/ /var/lib/kubelet/checkpoints
  criu2core yara -r more.yar keys.yar checkpoint.tar.zst --json | jq .address")]
    Yara(YaraArgs),
    /// Write the bytes at an address of a checkpointed process's memory.
    #[command(after_help = "\
Writes raw bytes to stdout (refused when stdout is a terminal: use
--hexdump, or redirect). Addresses are hexadecimal with 0x, else decimal.

Examples:
  criu2core read dump/ --pid 1 0x7f3a5c000000 64 --hexdump
  criu2core read dump/ --pid 1 --mapping 0x55a1500d50c0 > data.bin")]
    Read(ReadArgs),

    /// Convert many checkpoints in parallel, resumably, with a summary.
    #[command(after_help = "\
Each input (checkpoint, or a directory searched for checkpoints 8 levels
deep) gets OUT_DIR/<name>/, named after it and kept for it on later runs;
OUT_DIR/summary.json says what became of every input there. A later run
skips inputs whose cores are complete, and refuses to replace cores made
with other options, unless --force. Exits non-zero if any input failed.

Inputs and OUT_DIR may be object-storage URLs (s3://bucket/prefix/,
gs://, az://, file://): a prefix is searched as a directory is, and cores
are uploaded as they are written. For S3 the endpoint, region and
credentials come from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_PROFILE, web identity or instance metadata;
AWS_ALLOW_HTTP=true permits a plain-HTTP endpoint.

With --shard K/N (or --shards N in a Kubernetes Indexed Job, K from
JOB_COMPLETION_INDEX) only the inputs whose identity hashes to K are
converted, and the summary is OUT_DIR/summary-K-of-N.json; criu2core
summary OUT_DIR merges the shards' summaries.

One writer at a time: a batch (or a watch) holds OUT_DIR's lock
(.criu2core.lock; a lease object in object storage) alone, the shards of
one N together; any other writer is refused at once, naming the holder.

Examples:
  criu2core batch /var/lib/kubelet/checkpoints -o cores
  criu2core batch a.tar b.tar.zst dump-dir/ -o cores -j 4
  criu2core batch s3://ckpt/checkpoints/ -o s3://ckpt/cores/ --shards 8 --compress zstd")]
    Batch(BatchArgs),
    /// Merge the summaries of a sharded batch into summary.json.
    #[command(after_help = "\
Reads every summary-K-of-N.json in OUT_DIR (and summary.json, if there is
one) and writes OUT_DIR/summary.json with every input's entry; lists the
inputs some shard listed that no shard converted, the shards that wrote no
summary, and the inputs that failed. Exits non-zero if any input failed or
is missing.

Examples:
  criu2core summary cores
  criu2core summary s3://ckpt/cores/ --json | jq .missing")]
    Summary(SummaryArgs),
    /// Convert each checkpoint archive that appears in a directory, once complete.
    #[command(after_help = "\
Watches DIR (inotify) for checkpoint archives, as the kubelet writes them
into /var/lib/kubelet/checkpoints, and converts each once it is complete:
its writer (if one was seen writing) has closed it, and its size and
modification time have stayed the same for --settle. An archive renamed
or linked into DIR, or chmodded, waits for --settle alone. Each archive is
converted once, as batch converts it (its directory, record and entry in
OUT_DIR/summary.json); at start, and after a restart, the archives
already there are converted unless already done. OUT_DIR's lock is held
while it runs. SIGTERM or SIGINT ends it cleanly.

OUT_DIR may be an object-storage URL (s3://bucket/prefix/, gs://, az://,
file://), configured as for batch: for S3 AWS_ENDPOINT_URL, AWS_REGION,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, web identity or
instance metadata; AWS_ALLOW_HTTP=true permits a plain-HTTP endpoint.

Examples:
  criu2core watch /var/lib/kubelet/checkpoints -o /var/lib/criu2core/cores
  criu2core watch /var/lib/kubelet/checkpoints -o s3://ckpt/cores/node-1/ --compress zstd")]
    Watch(WatchArgs),
    /// Print a shell completion script.
    #[command(after_help = "\
Examples:
  criu2core completions bash > /etc/bash_completion.d/criu2core
  criu2core completions zsh > \"${fpath[1]}/_criu2core\"
  criu2core completions fish > ~/.config/fish/completions/criu2core.fish")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (or write one per subcommand into a directory).
    #[command(after_help = "\
Examples:
  criu2core man | man -l -
  criu2core man --out-dir /usr/local/share/man/man1")]
    Man {
        /// Write criu2core.1 and criu2core-SUBCOMMAND.1 here instead.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

/// Where and how much a compressed archive may unpack: the same two
/// options for every subcommand that opens checkpoints.
#[derive(Args)]
pub struct Spill {
    /// Where compressed archives are unpacked (default: $TMPDIR).
    #[arg(long, value_name = "DIR")]
    pub tmpdir: Option<PathBuf>,
    /// The most any one compressed archive may unpack into --tmpdir (K, M,
    /// G, T; default: half of the space free there when it is opened).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_spill: Option<u64>,
}

impl Spill {
    /// The library's spill options these two give.
    pub fn options(&self) -> criu2core::SpillOptions {
        let mut o = criu2core::SpillOptions::default();
        o.dir.clone_from(&self.tmpdir);
        o.max = self.max_spill;
        o
    }
}

#[derive(Args)]
pub struct ConvertArgs {
    /// Checkpoints: image directories or archives.
    #[arg(value_name = "INPUT", required_unless_present = "images_dir")]
    pub inputs: Vec<PathBuf>,
    /// A checkpoint (as criu-coredump's -i); may be repeated.
    #[arg(short = 'i', long = "images-dir", value_name = "INPUT")]
    pub images_dir: Vec<PathBuf>,
    /// Directory for the core files (created if missing).
    #[arg(
        short = 'o',
        long = "out-dir",
        value_name = "OUT_DIR",
        default_value = "."
    )]
    pub out_dir: PathBuf,
    /// Convert only this process (repeatable).
    #[arg(short = 'p', long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,
    /// Root filesystem (sysroot or container rootfs) to read unmodified
    /// file-backed pages from, so the core holds them too. Files in an
    /// archive's rootfs-diff.tar take precedence.
    #[arg(long, value_name = "DIR", conflicts_with = "image")]
    pub root: Option<PathBuf>,
    /// The container's image (OCI layout directory, OCI archive or
    /// docker-archive; FILE:NAME:TAG or FILE@sha256:... to choose one):
    /// unmodified file pages come from its layers, under the archive's
    /// rootfs-diff.tar.
    #[arg(long, value_name = "IMAGE", value_parser = parse_image)]
    pub image: Option<criu2core::ImageRef>,
    /// Write every file the cores map (and the program interpreter) under
    /// DIR, at its path, for gdb -iex 'set sysroot DIR' (needs --image or
    /// --root; with several inputs, each in DIR/<its output name>).
    #[arg(long, value_name = "DIR")]
    pub sysroot: Option<PathBuf>,
    /// Replace existing core files.
    #[arg(short, long)]
    pub force: bool,
    /// Print nothing but errors and warnings.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub spill: Spill,
    /// Store cores compressed: zstd writes core.<pid>.zst.
    #[arg(long, value_name = "HOW", value_parser = parse_compress)]
    pub compress: Option<criu2core::CoreCompression>,
    /// Print a JSON report (schema criu2core.convert/5) instead of lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct InspectArgs {
    /// A checkpoint: image directory or archive.
    #[arg(value_name = "INPUT")]
    pub input: PathBuf,
    /// Also show each process's environment.
    #[arg(long)]
    pub env: bool,
    /// Also show each process's open file descriptors and directories.
    #[arg(long)]
    pub fds: bool,
    /// Also show each process's sockets: protocol, state, addresses, queues.
    #[arg(long)]
    pub sockets: bool,
    /// Also show the mounts of each mount namespace.
    #[arg(long)]
    pub mounts: bool,
    /// All of the above: --env --fds --sockets --mounts.
    #[arg(long)]
    pub all: bool,
    /// Say which image of IMAGE (as convert --image takes it) would be used,
    /// and whether it is the image the checkpoint names; and check each
    /// mapped file found there against what the checkpoint recorded.
    #[arg(long, value_name = "IMAGE", value_parser = parse_image)]
    pub image: Option<criu2core::ImageRef>,
    /// Check each mapped file found under this root filesystem (and the
    /// container's changed files) against what the checkpoint recorded.
    #[arg(long, value_name = "DIR", conflicts_with = "image")]
    pub root: Option<PathBuf>,
    /// Print JSON (schema in docs/inspect.schema.json).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub spill: Spill,
}

#[derive(Args)]
pub struct DiffArgs {
    /// The first checkpoint (image directory, archive, image).
    #[arg(value_name = "A")]
    pub a: PathBuf,
    /// The second checkpoint.
    #[arg(value_name = "B")]
    pub b: PathBuf,
    /// Read the unmodified pages of mapped files, on both sides, from
    /// this image (as convert --image takes it).
    #[arg(long, value_name = "IMAGE", value_parser = parse_image)]
    pub image: Option<criu2core::ImageRef>,
    /// Read the unmodified pages of mapped files, on both sides, from this
    /// root filesystem.
    #[arg(long, value_name = "DIR", conflicts_with = "image")]
    pub root: Option<PathBuf>,
    /// Print JSON (schema in docs/diff.schema.json).
    #[arg(long, conflicts_with = "quiet")]
    pub json: bool,
    /// Print nothing: the exit status alone says.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub spill: Spill,
}

#[derive(Args)]
pub struct GrepArgs {
    /// What to look for: a literal (default), a regular expression (-E) or
    /// hex bytes (--hex). With -e or -f, the first INPUT.
    #[arg(value_name = "PATTERN")]
    pub pattern: Option<String>,
    /// Checkpoints (image directories, archives), or directories holding them.
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// A pattern (repeatable): all are found in one pass, each match
    /// saying which (literals or --hex; -i folds ASCII letters).
    #[arg(short = 'e', long = "regexp", value_name = "PATTERN")]
    pub patterns: Vec<String>,
    /// Patterns from FILE, one a line (empty lines skipped).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub pattern_files: Vec<PathBuf>,
    /// PATTERN is a regular expression over bytes (the regex crate's syntax).
    #[arg(short = 'E', long = "extended-regexp", visible_alias = "regex")]
    pub regex: bool,
    /// Letters match either case.
    #[arg(short = 'i', long)]
    pub ignore_case: bool,
    /// PATTERN is bytes in hex: 'de ad be ef', deadbeef, 0xde,0xad.
    #[arg(long, conflicts_with = "regex")]
    pub hex: bool,
    /// Also find the UTF-16LE form of PATTERN (Java, .NET and Windows strings).
    #[arg(long, conflicts_with = "regex")]
    pub utf16: bool,
    #[command(flatten)]
    pub only: Only,
    /// Show N bytes of context before and after each match.
    #[arg(short = 'C', long = "context", value_name = "N", default_value_t = 0)]
    pub context: usize,
    /// Print the number of matches of each process instead.
    #[arg(short = 'c', long, conflicts_with_all = ["list", "hexdump"])]
    pub count: bool,
    /// Print only the processes with a match.
    #[arg(short = 'l', long = "list", conflicts_with = "hexdump")]
    pub list: bool,
    /// Stop after N matches in each process.
    #[arg(short = 'm', long = "max-count", value_name = "N")]
    pub max_count: Option<u64>,
    /// Show each match and its context as a hex dump.
    #[arg(long, conflicts_with = "json")]
    pub hexdump: bool,
    /// Print JSON Lines (schema in docs/grep.schema.json).
    #[arg(long)]
    pub json: bool,
    /// Processes searched at once (default: number of CPUs).
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,
    /// Also search the unmodified pages of mapped files, read from this root filesystem.
    #[arg(long, value_name = "DIR", requires = "files", conflicts_with = "image")]
    pub root: Option<PathBuf>,
    /// Also search the unmodified pages of mapped files, read from the
    /// container's image (as convert --image takes it).
    #[arg(long, value_name = "IMAGE", requires = "files", value_parser = parse_image)]
    pub image: Option<criu2core::ImageRef>,
    /// Search the contents of mapped files too: those the checkpoint keeps
    /// (deleted while open, changed by the container) and, with --root or
    /// --image, the others (the same in every copy of a program).
    #[arg(long)]
    pub files: bool,
    /// Longest regular-expression match found whole across a read boundary.
    #[arg(long, value_name = "BYTES")]
    pub span: Option<usize>,
    /// Search memory only, not the bytes CRIU saved in TCP, socket, pipe
    /// and FIFO queues.
    #[arg(long)]
    pub memory_only: bool,
    /// Colour matches: auto (on a terminal), always, never.
    #[arg(long, value_name = "WHEN", default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub color: String,
    #[command(flatten)]
    pub spill: Spill,
}

/// Which processes, mappings and addresses grep and yara look at.
#[derive(Args)]
pub struct Only {
    /// Only this process (repeatable).
    #[arg(short = 'p', long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,
    /// Only mappings of this kind (repeatable): anon, heap, stack, file, shmem, vdso, other.
    #[arg(long = "kind", value_name = "KIND", value_parser = parse_kind)]
    pub kinds: Vec<criu2core::search::Kind>,
    /// Only mappings with this protection: letters (rw: at least readable
    /// and writable) or three columns (r-x: exactly).
    #[arg(long, value_name = "PROT", value_parser = parse_prot)]
    pub prot: Option<criu2core::search::ProtFilter>,
    /// Only mappings whose path matches this glob (repeatable; * matches / too).
    #[arg(long = "path", value_name = "GLOB")]
    pub paths: Vec<String>,
    /// Only addresses from START up to END (hex with 0x, or decimal).
    #[arg(long, value_name = "START-END", value_parser = parse_range)]
    pub range: Option<(u64, u64)>,
}

#[derive(Args)]
pub struct YaraArgs {
    /// A YARA rule file, or a directory of .yar/.yara files.
    #[arg(value_name = "RULES")]
    pub rules: PathBuf,
    /// Checkpoints (image directories, archives), or directories holding them.
    #[arg(value_name = "INPUT", required = true)]
    pub inputs: Vec<PathBuf>,
    /// More rule files or directories (repeatable), compiled with RULES.
    #[arg(short = 'r', long = "rules", value_name = "RULES")]
    pub more_rules: Vec<PathBuf>,
    #[command(flatten)]
    pub only: Only,
    /// Print the number of string matches of each process and rule instead.
    #[arg(short = 'c', long, conflicts_with = "list")]
    pub count: bool,
    /// Print only the processes some rule matched.
    #[arg(short = 'l', long = "list")]
    pub list: bool,
    /// Print each rule's metadata too.
    #[arg(long)]
    pub meta: bool,
    /// Print JSON Lines (schema in docs/yara.schema.json).
    #[arg(long)]
    pub json: bool,
    /// Processes scanned at once (default: number of CPUs).
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,
    /// Also scan the unmodified pages of mapped files, read from this root filesystem.
    #[arg(long, value_name = "DIR", requires = "files", conflicts_with = "image")]
    pub root: Option<PathBuf>,
    /// Also scan the unmodified pages of mapped files, read from the container's image.
    #[arg(long, value_name = "IMAGE", requires = "files", value_parser = parse_image)]
    pub image: Option<criu2core::ImageRef>,
    /// Scan the contents of mapped files too (as grep --files).
    #[arg(long)]
    pub files: bool,
    /// Scan memory only, not the bytes CRIU saved in TCP, socket, pipe
    /// and FIFO queues.
    #[arg(long)]
    pub memory_only: bool,
    #[command(flatten)]
    pub spill: Spill,
}

fn parse_image(s: &str) -> Result<criu2core::ImageRef, String> {
    if s.is_empty() {
        return Err("an empty image path".into());
    }
    Ok(criu2core::ImageRef::parse(s))
}

fn parse_kind(s: &str) -> Result<criu2core::search::Kind, criu2core::Error> {
    s.parse()
}

fn parse_prot(s: &str) -> Result<criu2core::search::ProtFilter, criu2core::Error> {
    s.parse()
}

/// Parses an address: `0x` hexadecimal or decimal.
fn parse_address(s: &str) -> anyhow::Result<u64> {
    let t = s.trim();
    let r = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => t.replace('_', "").parse(),
    };
    r.with_context(|| format!("{s:?} is not an address (0x... hexadecimal, or decimal)"))
}

/// Parses `START-END` (each as [`parse_address`]): the addresses from
/// START up to, not including, END.
fn parse_range(s: &str) -> anyhow::Result<(u64, u64)> {
    {
        let (a, b) = s
            .split_once('-')
            .with_context(|| format!("--range {s:?}: write START-END"))?;
        let (start, end) = (parse_address(a)?, parse_address(b)?);
        if start >= end {
            bail!("--range {s:?}: START must be below END");
        }
        Ok((start, end))
    }
}

#[derive(Args)]
pub struct ReadArgs {
    /// A checkpoint: image directory or archive.
    #[arg(value_name = "INPUT")]
    pub input: PathBuf,
    /// The process.
    #[arg(short = 'p', long = "pid", value_name = "PID")]
    pub pid: u32,
    /// Where to start (hex with 0x, or decimal).
    #[arg(value_name = "ADDR", value_parser = parse_address, required_unless_present = "mapping")]
    pub addr: Option<u64>,
    /// How many bytes (default 256).
    #[arg(value_name = "LEN", value_parser = parse_address)]
    pub len: Option<u64>,
    /// Read the whole mapping that holds this address.
    #[arg(long, value_name = "ADDR", value_parser = parse_address, conflicts_with_all = ["addr", "len"])]
    pub mapping: Option<u64>,
    /// Write a hex dump instead of raw bytes.
    #[arg(long)]
    pub hexdump: bool,
    /// Read anonymous pages CRIU did not dump as zeros, as a core holds them.
    #[arg(long)]
    pub zeros: bool,
    /// Root filesystem to read unmodified file-backed pages from.
    #[arg(long, value_name = "DIR", conflicts_with = "image")]
    pub root: Option<PathBuf>,
    /// The container's image to read unmodified file-backed pages from.
    #[arg(long, value_name = "IMAGE", value_parser = parse_image)]
    pub image: Option<criu2core::ImageRef>,
    #[command(flatten)]
    pub spill: Spill,
}

#[derive(Args)]
pub struct BatchArgs {
    /// Checkpoints, or directories holding them.
    #[arg(value_name = "INPUT", required = true)]
    pub inputs: Vec<PathBuf>,
    /// Directory for the cores and summary.json.
    #[arg(short = 'o', long = "out-dir", value_name = "OUT_DIR")]
    pub out_dir: PathBuf,
    /// Inputs converted at once (default: number of CPUs).
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,
    /// Convert again inputs whose cores are already complete, and replace
    /// cores made with other options.
    #[arg(short, long)]
    pub force: bool,
    /// Root filesystem for unmodified file-backed pages.
    #[arg(long, value_name = "DIR", conflicts_with = "image")]
    pub root: Option<PathBuf>,
    /// The containers' image, for unmodified file-backed pages (as convert
    /// --image takes it).
    #[arg(long, value_name = "IMAGE", value_parser = parse_image)]
    pub image: Option<criu2core::ImageRef>,
    /// Write every file the cores map under DIR/<the input's output name>,
    /// for gdb's set sysroot (needs --image or --root).
    #[arg(long, value_name = "DIR")]
    pub sysroot: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub spill: Spill,
    /// Print the summary (as in summary.json) on stdout.
    #[arg(long)]
    pub json: bool,
    /// Store cores compressed: zstd writes core.<pid>.zst.
    #[arg(long, value_name = "HOW", value_parser = parse_compress)]
    pub compress: Option<criu2core::CoreCompression>,
    /// Convert only the inputs of shard K of N (K from 0).
    #[arg(long, value_name = "K/N", value_parser = parse_shard, conflicts_with = "shards")]
    pub shard: Option<criu2core::batch::Shard>,
    /// Be one of N shards, K taken from JOB_COMPLETION_INDEX (a Kubernetes
    /// Indexed Job's index).
    #[arg(long, value_name = "N")]
    pub shards: Option<u64>,
}

#[derive(Args)]
pub struct SummaryArgs {
    /// The output directory (or object-storage prefix) of the shards.
    #[arg(value_name = "OUT_DIR")]
    pub out_dir: PathBuf,
    /// Merge the summaries of N shards (needed only where shards of
    /// several counts left summaries).
    #[arg(long, value_name = "N")]
    pub shards: Option<u64>,
    /// Print the merged summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// Print nothing but the inputs that failed or are missing.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args)]
pub struct WatchArgs {
    /// The directory archives appear in.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Directory (or object-storage prefix) for the cores and summary.json.
    #[arg(short = 'o', long = "out-dir", value_name = "OUT_DIR")]
    pub out_dir: PathBuf,
    /// How long an archive's size must stay the same, after its writer
    /// closed it, before it is converted (seconds).
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    pub settle: f64,
    /// Also look every this many seconds, besides inotify (0: never).
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    pub rescan: f64,
    /// Root filesystem for unmodified file-backed pages.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    #[command(flatten)]
    pub spill: Spill,
    /// Store cores compressed: zstd writes core.<pid>.zst.
    #[arg(long, value_name = "HOW", value_parser = parse_compress)]
    pub compress: Option<criu2core::CoreCompression>,
    /// Convert what is there, then exit (no watching).
    #[arg(long)]
    pub once: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
}

fn parse_compress(s: &str) -> Result<criu2core::CoreCompression, String> {
    match s {
        "zstd" => Ok(criu2core::CoreCompression::Zstd),
        "none" => Ok(criu2core::CoreCompression::None),
        _ => Err(format!("{s:?}: zstd or none")),
    }
}

fn parse_shard(s: &str) -> Result<criu2core::batch::Shard, criu2core::Error> {
    s.parse()
}

/// `checkpointctl coredump`: criu2core convert as a checkpointctl plugin.
#[derive(Parser)]
#[command(
    name = "checkpointctl-coredump",
    bin_name = "checkpointctl coredump",
    version = VERSION,
    about = "Write one ELF core file per process of a checkpoint, for gdb, lldb, eu-stack and drgn.",
    after_help = "\
Inputs are checkpoint archives (.tar, .tar.gz, .tar.zst as Podman, CRI-O
and the kubelet write them; recognised by content), unpacked container
checkpoints and CRIU image directories. With several inputs, each gets a
subdirectory of OUT_DIR named after it (criu2core's docs/batch.md gives the rule).

Examples:
  checkpointctl coredump checkpoint-web_default-app-2026-11-24T10:00:00Z.tar -o cores
  checkpointctl coredump checkpoint.tar.zst -o cores -p 1 --root /srv/rootfs
  gdb -iex 'set sysroot /srv/rootfs' /srv/rootfs/usr/bin/app cores/core.1"
)]
pub struct PluginCli {
    /// More diagnostics on stderr (-v, -vv, -vvv); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(flatten)]
    pub convert: ConvertArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("10GiB"), Ok(10 << 30));
        assert_eq!(parse_size(" 2 t "), Ok(2 << 40));
        assert!(parse_size("").is_err());
        assert!(parse_size("1.5G").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn addresses_and_ranges_parse() {
        assert_eq!(parse_address("0x10").unwrap(), 16);
        assert_eq!(parse_address("4_096").unwrap(), 4096);
        assert!(parse_address("0xg").is_err());
        assert_eq!(parse_range("0x1000-0x2000").unwrap(), (0x1000, 0x2000));
        assert!(parse_range("0x2000-0x1000").is_err());
        assert!(parse_range("0x2000").is_err());
    }
}
