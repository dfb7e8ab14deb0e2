//! `criu2core diff`'s report as text for a terminal: the counts first, then each process
//! that differs. Everything from a checkpoint goes through [`escape`].

use std::fmt::Write as _;

use criu2core::diff::{Counts, DiffReport, FdDiff, MappingDiff, ProcessDiff, SocketDiff, Status};
use criu2core::inspect::{Bytes, FdInfo, MappingInfo, SocketAddress, SocketInfo};

use super::text::{escape, human_bytes, Escaped};

fn counts(c: &Counts) -> String {
    format!(
        "{} added, {} removed, {} changed",
        c.added, c.removed, c.changed
    )
}

/// The diff as text: the two inputs, a summary of counts, then the details
/// of each process that differs.
pub(crate) fn diff_text(r: &DiffReport) -> String {
    let mut o = String::new();
    let s = &r.summary;
    for (name, i) in [("a", &r.a), ("b", &r.b)] {
        let _ = writeln!(o, "{name}: {} ({})", escape(&i.path), i.kind);
    }
    let _ = writeln!(
        o,
        "processes: {}, {} same",
        counts(&s.processes),
        s.same_processes
    );
    let _ = writeln!(
        o,
        "threads: {} added, {} removed",
        s.threads.added, s.threads.removed
    );
    let _ = writeln!(o, "mappings: {}", counts(&s.mappings));
    let _ = writeln!(
        o,
        "pages: {} differ in {} range{}",
        human_bytes(s.page_bytes),
        s.page_ranges,
        if s.page_ranges == 1 { "" } else { "s" }
    );
    let _ = writeln!(o, "fds: {}", counts(&s.fds));
    let _ = writeln!(o, "sockets: {}", counts(&s.sockets));
    for w in &r.warnings {
        let _ = writeln!(o, "warning: {}", escape(&w.message));
    }
    for p in r.processes.iter().filter(|p| p.status != Status::Same) {
        o.push('\n');
        process_text(&mut o, p);
    }
    o
}

fn bytes(b: &Option<Bytes>) -> String {
    b.as_ref().map_or("-".into(), |b| b.escaped().into_owned())
}

fn process_text(o: &mut String, p: &ProcessDiff) {
    let _ = writeln!(
        o,
        "pid {} ({}): {}",
        p.pid,
        bytes(&p.process.comm),
        p.status.name()
    );
    for f in &p.fields {
        let _ = writeln!(o, "  {}: {} -> {}", f.field, f.shown_a, f.shown_b);
    }
    for t in &p.threads {
        let _ = writeln!(o, "  thread {}: {}", t.tid, t.status.name());
    }
    for m in &p.mappings {
        mapping_text(o, m);
    }
    for r in &p.pages {
        let _ = writeln!(
            o,
            "  pages {:#x}-{:#x} ({})",
            r.start,
            r.end,
            human_bytes(r.end - r.start)
        );
    }
    for f in &p.fds {
        fd_text(o, f);
    }
    for s in &p.sockets {
        socket_text(o, s);
    }
}

/// What changed, `name: before -> after` each.
fn changes(o: &mut String, list: &[&str], show: impl Fn(&str) -> (String, String)) {
    if list.is_empty() {
        o.push('\n');
        return;
    }
    let parts: Vec<String> = list
        .iter()
        .map(|c| {
            let (a, b) = show(c);
            format!("{c} {a} -> {b}")
        })
        .collect();
    let _ = writeln!(o, " ({})", parts.join(", "));
}

fn mapping_line(m: &MappingInfo) -> String {
    let mut s = format!("{:#x}-{:#x} {} {}", m.start, m.end, m.prot, m.kind);
    if let Some(p) = &m.path {
        let _ = write!(s, " {}", p.escaped());
    }
    if let Some(off) = m.offset {
        let _ = write!(s, " +{off:#x}");
    }
    s
}

fn mapping_text(o: &mut String, d: &MappingDiff) {
    let _ = write!(
        o,
        "  mapping {}: {}",
        mapping_line(&d.mapping),
        d.status.name()
    );
    let show = |c: &str| {
        let (x, y) = (d.before.as_ref().unwrap_or(&d.mapping), &d.mapping);
        match c {
            "end" => (format!("{:#x}", x.end), format!("{:#x}", y.end)),
            "prot" => (x.prot.clone(), y.prot.clone()),
            "kind" => (x.kind.into(), y.kind.into()),
            "path" => (bytes(&x.path), bytes(&y.path)),
            _ => (
                x.offset.map_or("-".into(), |v| format!("{v:#x}")),
                y.offset.map_or("-".into(), |v| format!("{v:#x}")),
            ),
        }
    };
    changes(o, &d.changes, show);
}

fn fd_line(f: &FdInfo) -> String {
    let mut s = format!("fd {} {}", f.fd, f.kind);
    if let Some(p) = &f.path {
        let _ = write!(s, " {}", p.escaped());
    }
    if let Some(pos) = f.pos {
        let _ = write!(s, " pos {pos}");
    }
    s
}

fn fd_text(o: &mut String, d: &FdDiff) {
    let _ = write!(o, "  {}: {}", fd_line(&d.fd), d.status.name());
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let show = |c: &str| {
        let (x, y) = (d.before.as_ref().unwrap_or(&d.fd), &d.fd);
        match c {
            "type" => (x.kind.clone(), y.kind.clone()),
            "path" => (bytes(&x.path), bytes(&y.path)),
            "mode" => (opt(x.mode.map(Into::into)), opt(y.mode.map(Into::into))),
            "flags" => (
                opt(x.flags.map(|v| format!("{v:#o}"))),
                opt(y.flags.map(|v| format!("{v:#o}"))),
            ),
            "pos" => (
                opt(x.pos.map(|v| v.to_string())),
                opt(y.pos.map(|v| v.to_string())),
            ),
            "cloexec" => (x.cloexec.to_string(), y.cloexec.to_string()),
            _ => (
                opt(x.inode.map(|v| v.to_string())),
                opt(y.inode.map(|v| v.to_string())),
            ),
        }
    };
    changes(o, &d.changes, show);
}

fn socket_line(s: &SocketInfo) -> String {
    let addr = |a: &Option<SocketAddress>| {
        a.as_ref()
            .map_or("-".to_string(), |a| escape(&a.address).into_owned())
    };
    format!(
        "socket fd {} {} {} {} {} -> {}",
        s.fd,
        s.family,
        escape(&s.protocol),
        escape(&s.state),
        addr(&s.local),
        addr(&s.remote)
    )
}

fn socket_text(o: &mut String, d: &SocketDiff) {
    let _ = write!(o, "  {}: {}", socket_line(&d.socket), d.status.name());
    let show = |c: &str| {
        let (x, y) = (d.before.as_ref().unwrap_or(&d.socket), &d.socket);
        let addr = |a: &Option<SocketAddress>| {
            a.as_ref()
                .map_or("-".to_string(), |a| escape(&a.address).into_owned())
        };
        match c {
            "family" => (x.family.into(), y.family.into()),
            "type" => (escape(&x.kind).into(), escape(&y.kind).into()),
            "protocol" => (escape(&x.protocol).into(), escape(&y.protocol).into()),
            "state" => (escape(&x.state).into(), escape(&y.state).into()),
            "local" => (addr(&x.local), addr(&y.local)),
            "remote" => (addr(&x.remote), addr(&y.remote)),
            _ => (x.inode.to_string(), y.inode.to_string()),
        }
    };
    changes(o, &d.changes, show);
}
