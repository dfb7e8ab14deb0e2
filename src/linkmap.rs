//! The names the dynamic loader gave the shared objects it loaded, read
//! from a process's memory as gdb reads them from a core: the executable's
//! program headers (`AT_PHDR`, `AT_PHNUM`, `AT_PHENT` in the auxiliary
//! vector), its `PT_DYNAMIC` section, the `r_debug` its `DT_DEBUG` entry
//! points to (on MIPS, `DT_MIPS_RLD_MAP` or `DT_MIPS_RLD_MAP_REL`), and
//! the `link_map` list `r_debug.r_map` starts, each entry's `l_name`.
//!
//! The memory is the checkpoint's, so every count and length is bounded
//! and a loop in the list ends the walk.

use std::collections::HashSet;

use anyhow::Result;

use crate::model::{Arch, Process};

/// Most program headers read.
const MAX_PHDRS: u64 = 4096;
/// Most bytes of the dynamic section read (4096 entries).
const MAX_DYNAMIC: u64 = 64 << 10;
/// Most link map entries followed.
pub(crate) const MAX_LINK_MAP: usize = 4096;
/// Longest name read (Linux's PATH_MAX).
const MAX_NAME: u64 = 4096;

const AT_PHDR: u64 = 3;
const AT_PHENT: u64 = 4;
const AT_PHNUM: u64 = 5;
const PT_DYNAMIC: u64 = 2;
const PT_PHDR: u64 = 6;
const DT_NULL: u64 = 0;
const DT_DEBUG: u64 = 21;
const DT_MIPS_RLD_MAP: u64 = 0x7000_0016;
const DT_MIPS_RLD_MAP_REL: u64 = 0x7000_0035;

/// Reads words of a process's memory, as its architecture lays them out.
struct Words<'a> {
    p: &'a Process,
    /// Bytes a word.
    size: u64,
}

impl Words<'_> {
    fn decode(&self, b: &[u8]) -> u64 {
        let mut v = [0u8; 8];
        let n = b.len().min(8);
        if self.p.arch.big_endian() {
            v[8 - n..].copy_from_slice(&b[..n]);
            u64::from_be_bytes(v)
        } else {
            v[..n].copy_from_slice(&b[..n]);
            u64::from_le_bytes(v)
        }
    }

    fn at(&self, addr: u64) -> Result<u64> {
        Ok(self.decode(&self.p.read_memory(addr, self.size)?))
    }

    /// The NUL-terminated string at `addr` (at most [`MAX_NAME`] bytes),
    /// read a page at a time so that none past its end is needed.
    fn string(&self, addr: u64) -> Result<Vec<u8>> {
        let page = self.p.page_size.max(1);
        let mut out = Vec::new();
        let mut at = addr;
        while (out.len() as u64) < MAX_NAME {
            let n = (page - at % page).min(MAX_NAME - out.len() as u64);
            let bytes = self.p.read_memory(at, n)?;
            if let Some(nul) = bytes.iter().position(|&b| b == 0) {
                out.extend_from_slice(&bytes[..nul]);
                return Ok(out);
            }
            out.extend_from_slice(&bytes);
            at = at
                .checked_add(n)
                .ok_or_else(|| anyhow::anyhow!("a name past the end of memory"))?;
        }
        Err(crate::error::fault(
            crate::ErrorKind::Limit,
            format!("a name at {addr:#x} longer than {MAX_NAME} bytes"),
        ))
    }
}

/// The address of the executable's dynamic section (and its size), from
/// the program headers the auxiliary vector points to.
fn dynamic_section(w: &Words<'_>) -> Result<Option<(u64, u64)>> {
    let aux = |t: u64| w.p.auxv.iter().find(|(k, _)| *k == t).map(|&(_, v)| v);
    let (Some(phdr), Some(phent), Some(phnum)) = (aux(AT_PHDR), aux(AT_PHENT), aux(AT_PHNUM))
    else {
        return Ok(None);
    };
    let wide = w.size == 8;
    if phnum == 0 || phnum > MAX_PHDRS || phent < if wide { 56 } else { 32 } || phent > 1024 {
        return Ok(None);
    }
    let table = w.p.read_memory(phdr, phent * phnum)?;
    // (p_type, p_vaddr, p_memsz) of each.
    let field = |e: &[u8], o64: usize, o32: usize| {
        if wide {
            w.decode(&e[o64..o64 + 8])
        } else {
            w.decode(&e[o32..o32 + 4])
        }
    };
    let headers: Vec<(u64, u64, u64)> = table
        .chunks_exact(phent as usize)
        .map(|e| (w.decode(&e[..4]), field(e, 16, 8), field(e, 40, 20)))
        .collect();
    // Where the program was loaded: PT_PHDR says where its headers would be.
    let Some(&(_, phdr_vaddr, _)) = headers.iter().find(|h| h.0 == PT_PHDR) else {
        return Ok(None);
    };
    let bias = phdr.wrapping_sub(phdr_vaddr);
    Ok(headers
        .iter()
        .find(|h| h.0 == PT_DYNAMIC)
        .map(|&(_, vaddr, memsz)| (bias.wrapping_add(vaddr), memsz.min(MAX_DYNAMIC))))
}

/// Where `r_debug` is, from the dynamic section at `dynamic` (`0` where
/// the loader has not filled it in).
fn r_debug(w: &Words<'_>, (dynamic, size): (u64, u64)) -> Result<u64> {
    let entry = 2 * w.size;
    let bytes = w.p.read_memory(dynamic, size - size % entry)?;
    for (i, e) in bytes.chunks_exact(entry as usize).enumerate() {
        let tag = w.decode(&e[..w.size as usize]);
        let val = w.decode(&e[w.size as usize..]);
        match tag {
            DT_NULL => break,
            DT_DEBUG => return Ok(val),
            DT_MIPS_RLD_MAP if val != 0 => return w.at(val),
            DT_MIPS_RLD_MAP_REL => {
                return w.at(dynamic.wrapping_add(i as u64 * entry).wrapping_add(val))
            }
            _ => {}
        }
    }
    Ok(0)
}

/// The `l_name` of every entry of process `p`'s link map, in list order
/// (the executable's own, empty, and the vDSO's included); none for a
/// process with no dynamic loader.
pub(crate) fn names(p: &Process) -> Result<Vec<Vec<u8>>> {
    let w = Words {
        p,
        size: if matches!(p.arch, Arch::I386 | Arch::Arm) {
            4
        } else {
            8
        },
    };
    let Some(dynamic) = dynamic_section(&w)? else {
        return Ok(Vec::new());
    };
    let debug = r_debug(&w, dynamic)?;
    if debug == 0 {
        return Ok(Vec::new());
    }
    // r_debug: int r_version (padded to a word), then r_map; link_map:
    // l_addr, l_name, l_ld, l_next, l_prev.
    let mut entry = w.at(debug + w.size)?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    while entry != 0 && seen.insert(entry) {
        if out.len() >= MAX_LINK_MAP {
            return Err(crate::error::fault(
                crate::ErrorKind::Limit,
                format!("a link map of more than {MAX_LINK_MAP} entries"),
            ));
        }
        let name = w.at(entry + w.size)?;
        out.push(if name == 0 {
            Vec::new()
        } else {
            w.string(name)?
        });
        entry = w.at(entry + 3 * w.size)?;
    }
    Ok(out)
}
