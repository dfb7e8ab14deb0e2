//! `criu2core inspect`'s report as text for a terminal. Everything that comes from the
//! checkpoint is shown through [`escape`]: no control character of a
//! command line, path or name reaches the terminal.

use std::borrow::Cow;
use std::fmt::Write as _;

use criu2core::inspect::{Bytes, MemoryInfo, MountNamespace, ProcessInfo, Report, SocketInfo};
use criu2core::{ContainerInfo, ImageUse};

use super::text::{escape, human_bytes, Escaped};

/// A field from the checkpoint, escaped for a terminal; "-" if absent.
fn opt(s: &Option<String>) -> Cow<'_, str> {
    s.as_deref().map_or(Cow::Borrowed("-"), escape)
}

fn opt_bytes(b: &Option<Bytes>) -> Cow<'_, str> {
    b.as_ref().map_or(Cow::Borrowed("-"), |b| b.escaped())
}

/// Lines of `items`, the first labelled `label` in a column of `width`
/// (indented by two where the column is a process's).
fn labelled<T: std::fmt::Display>(
    o: &mut String,
    width: usize,
    label: &str,
    items: impl Iterator<Item = T>,
) {
    let indent = if width < 12 { "  " } else { "" };
    for (i, item) in items.enumerate() {
        let _ = writeln!(
            o,
            "{indent}{:<width$} {item}",
            if i == 0 { label } else { "" }
        );
    }
}

/// The report as text for a terminal, every name, path and command line
/// escaped.
pub(crate) fn report_text(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "input        {} ({})",
        escape(&r.input.path),
        r.input.kind
    );
    if let Some(c) = &r.container {
        container_text(&mut o, c);
    }
    if let Some(i) = &r.image {
        image_text(&mut o, i);
    }
    checkpoint_text(r, &mut o);
    table_text(r, &mut o);
    for p in &r.processes {
        process_text(&mut o, p);
    }
    if let Some(spaces) = &r.mounts {
        mounts_text(&mut o, spaces);
    }
    o
}

/// The checkpoint line, its parent dumps and its warnings.
fn checkpoint_text(r: &Report, o: &mut String) {
    let ck = &r.checkpoint;
    let _ = writeln!(
        o,
        "checkpoint   CRIU images v{}, {}, {} process{}, {} thread{}, {} of memory contents",
        ck.image_version.map_or("?".into(), |v| v.to_string()),
        ck.arch.as_deref().unwrap_or("unknown arch"),
        ck.processes,
        if ck.processes == 1 { "" } else { "es" },
        ck.threads,
        if ck.threads == 1 { "" } else { "s" },
        human_bytes(ck.dumped_bytes)
    );
    for (i, parent) in ck.parents.iter().enumerate() {
        let _ = writeln!(
            o,
            "{:<12} {} {}",
            if i == 0 { "parents" } else { "" },
            i + 1,
            escape(parent)
        );
    }
    labelled(
        o,
        12,
        "warning",
        r.warnings.iter().map(|w| escape(&w.message)),
    );
}

/// The process table, as ps shows one.
fn table_text(r: &Report, o: &mut String) {
    let _ = writeln!(
        o,
        "\n{:<8} {:<8} {:<8} {:>7}  {:<16} COMMAND",
        "PID", "PPID", "STATE", "THREADS", "COMM"
    );
    for p in &r.processes {
        // A zombie as ps shows one: it has no command line left.
        let cmd = match (&p.argv, &p.exit) {
            (Some(a), _) => a.iter().map(|b| b.escaped()).collect::<Vec<_>>().join(" "),
            (None, Some(_)) => format!("[{}] <defunct>", opt_bytes(&p.comm)),
            (None, None) => "?".into(),
        };
        let _ = writeln!(
            o,
            "{:<8} {:<8} {:<8} {:>7}  {:<16} {}",
            p.pid,
            p.ppid,
            p.state.name(),
            p.threads.len(),
            opt_bytes(&p.comm),
            cmd
        );
    }
}

/// The lines of the image `--image` gave.
fn image_text(o: &mut String, i: &ImageUse) {
    let names = if i.names.is_empty() {
        "(no name)".to_string()
    } else {
        i.names
            .iter()
            .map(|n| escape(n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        o,
        "image        {}: {names}  {}",
        escape(&i.path),
        opt(&i.digest)
    );
    let verdict = match i.matches {
        Some(true) => "matches the checkpoint's image",
        Some(false) => "does NOT match the checkpoint's image",
        None => "the checkpoint names no image",
    };
    let _ = writeln!(o, "             chosen by {}; {verdict}", i.chosen_by);
}

/// The container's lines.
fn container_text(o: &mut String, c: &ContainerInfo) {
    let id = c.id.as_deref().map(|i| {
        let short = i.char_indices().nth(12).map_or(i, |(at, _)| &i[..at]);
        short.to_string()
    });
    let _ = writeln!(
        o,
        "container    {}  engine {}  id {}",
        opt(&c.name),
        opt(&c.engine),
        opt(&id)
    );
    let reference = c
        .image_ref
        .as_deref()
        .map(|r| format!("  ref {}", escape(r)))
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "             image {}{reference}  runtime {}",
        opt(&c.image),
        opt(&c.runtime)
    );
    if let Some(ci) = &c.checkpoint_image {
        let _ = writeln!(o, "             checkpoint image {}", escape(ci));
    }
    if c.pod.is_some() || c.namespace.is_some() {
        let _ = writeln!(
            o,
            "             pod {}  namespace {}",
            opt(&c.pod),
            opt(&c.namespace)
        );
    }
    let _ = writeln!(
        o,
        "             created {}  checkpointed {}",
        opt(&c.created),
        opt(&c.checkpointed)
    );
}

/// One process's section.
fn process_text(o: &mut String, p: &ProcessInfo) {
    let _ = writeln!(
        o,
        "\npid {} ({})  exe {}",
        p.pid,
        opt_bytes(&p.comm),
        opt_bytes(&p.exe)
    );
    if let Some(exit) = &p.exit {
        let _ = writeln!(o, "  zombie   {exit}: no memory or registers, no core");
    }
    if let Some(e) = &p.error {
        let _ = writeln!(o, "  error    {}", escape(e));
    }
    labelled(
        o,
        8,
        "warning",
        p.warnings.iter().map(|w| escape(&w.message)),
    );
    if let Some(m) = &p.memory {
        memory_text(o, m);
    }
    fds_text(o, p);
    if let Some(socks) = &p.sockets {
        sockets_text(o, socks);
    }
    if let Some(env) = &p.environment {
        labelled(o, 8, "env", env.iter().map(|b| b.escaped()));
    }
}

/// A process's memory lines.
fn memory_text(o: &mut String, m: &MemoryInfo) {
    let _ = writeln!(
        o,
        "  memory   {} mappings, {} mapped, {} dumped",
        m.mappings,
        human_bytes(m.mapped_bytes),
        human_bytes(m.dumped_bytes)
    );
    if m.dumps.len() > 1 {
        let from: Vec<String> = m
            .dumps
            .iter()
            .enumerate()
            .map(|(level, d)| {
                let which = if level == 0 {
                    "this dump".to_string()
                } else {
                    format!("parent {level}")
                };
                format!("{} from {which}", human_bytes(d.dumped_bytes))
            })
            .collect();
        let _ = writeln!(o, "  pages    {}", from.join(", "));
    }
    let kinds = m.by_kind.iter().map(|(k, v)| {
        format!(
            "{k} {} ({}, {} dumped)",
            v.count,
            human_bytes(v.bytes),
            human_bytes(v.dumped_bytes)
        )
    });
    labelled(o, 8, "kinds", kinds);
    let files = m.files.iter().map(|f| {
        let status = match (f.status, &f.detail) {
            (Some("not-sought") | None, _) => String::new(),
            (Some(s), Some(d)) => format!("; {s}: {}", escape(d)),
            (Some(s), None) => format!("; {s}"),
        };
        format!(
            "{} ({} mapping{}, {}{status})",
            f.path.escaped(),
            f.mappings,
            if f.mappings == 1 { "" } else { "s" },
            human_bytes(f.bytes)
        )
    });
    labelled(o, 8, "files", files);
}

/// A process's open descriptors, working and root directory.
fn fds_text(o: &mut String, p: &ProcessInfo) {
    let Some(fds) = &p.fds else {
        return;
    };
    let lines = fds
        .iter()
        .map(|f| format!("{:<4} {:<11} {}", f.fd, f.kind, f.detail));
    labelled(o, 8, "fds", lines);
    if fds.is_empty() {
        let _ = writeln!(o, "  fds      none");
    }
    if let Some(cwd) = &p.cwd {
        let _ = writeln!(o, "  cwd      {}", cwd.escaped());
    }
    if let Some(root) = p.root.as_ref().filter(|r| r.0 != b"/") {
        let _ = writeln!(o, "  root     {}", root.escaped());
    }
}

/// A process's sockets, as ss shows them.
fn sockets_text(o: &mut String, socks: &[SocketInfo]) {
    if socks.is_empty() {
        let _ = writeln!(o, "  sockets  none");
        return;
    }
    let _ = writeln!(
        o,
        "  sockets  {:<4} {:<12} {:<11} {:>6} {:>6}  {:<24} REMOTE",
        "FD", "PROTO", "STATE", "RECV-Q", "SEND-Q", "LOCAL"
    );
    for s in socks {
        let q = |v: Option<u64>| v.map_or("-".to_string(), |n| n.to_string());
        // As ss shows a listener: its backlog as the send queue.
        let send = if s.state == "LISTEN" {
            s.backlog.to_string()
        } else {
            q(s.send_queue)
        };
        let remote = match (&s.remote, s.peer_inode) {
            (Some(r), _) => r.address.clone(),
            (None, Some(p)) => format!("socket:[{p}]"),
            (None, None) => "*".into(),
        };
        let proto = match s.family {
            "inet6" => format!("{}6", s.protocol),
            "unix" => format!("unix/{}", s.kind),
            "inet" => s.protocol.clone(),
            f => f.to_string(),
        };
        let _ = writeln!(
            o,
            "           {:<4} {:<12} {:<11} {:>6} {:>6}  {:<24} {}",
            s.fd,
            proto,
            s.state,
            q(s.recv_queue),
            send,
            s.local.as_ref().map_or("*", |l| l.address.as_str()),
            remote
        );
    }
}

/// The mounts of each mount namespace.
fn mounts_text(o: &mut String, spaces: &[MountNamespace]) {
    if spaces.is_empty() {
        let _ = writeln!(o, "\nmounts       none recorded");
    }
    for ns in spaces {
        let pids: Vec<String> = ns.processes.iter().map(u32::to_string).collect();
        let _ = writeln!(
            o,
            "\nmount namespace {} (pid{} {})",
            ns.id,
            if pids.len() == 1 { "" } else { "s" },
            pids.join(", ")
        );
        if let Some(e) = &ns.error {
            let _ = writeln!(o, "  error    {}", escape(e));
        }
        match &ns.mounts {
            None if ns.error.is_none() => {
                let _ = writeln!(
                    o,
                    "  none recorded: the processes shared the mount namespace of the host CRIU ran on"
                );
            }
            None => {}
            Some(ms) => {
                let _ = writeln!(
                    o,
                    "  {:<5} {:<6} {:<12} {:<20} {:<12} OPTIONS",
                    "ID", "PARENT", "TYPE", "MOUNTPOINT", "SOURCE"
                );
                for m in ms {
                    let mut opts = format!(
                        "{}{}{}",
                        if m.read_only { "ro" } else { "rw" },
                        if m.options.0.is_empty() { "" } else { "," },
                        m.options.escaped()
                    );
                    if m.root.0 != b"/" {
                        opts.push_str(&format!(" (root {})", m.root.escaped()));
                    }
                    if let Some(k) = &m.external {
                        opts.push_str(&format!(" (external {})", k.escaped()));
                    }
                    let _ = writeln!(
                        o,
                        "  {:<5} {:<6} {:<12} {:<20} {:<12} {}",
                        m.id,
                        m.parent,
                        escape(&m.fstype),
                        m.mountpoint.escaped(),
                        m.source.escaped(),
                        opts
                    );
                }
            }
        }
    }
}
