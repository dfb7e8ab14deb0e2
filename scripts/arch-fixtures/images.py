#!/usr/bin/env python3
"""Writes the CRIU images of a process that scripts/arch-fixtures/capture.py
captured under qemu-user, with CRIU's own serializer: the entries of each
image are written as JSON in the shape `crit decode` gives, and `crit
encode` (CRIU 4.2) turns each into the image; pages-1.img, which holds raw
pages, is written directly. Nothing of criu2core is involved, so a misreading
of CRIU's format by criu2core cannot be mirrored here.

Needs crit from CRIU 4.2 on PATH or in $CRIT.

Usage: images.py ARCH CAPTURE_DIR EXE EXE_PATH OUT_DIR ARGV...
  ARCH      aarch64, armv7, loongarch64, mips64el, ppc64le, riscv64 or s390x
  EXE       the executable on this machine; EXE_PATH its path in the process
  OUT_DIR   where images/ (the images) and json/ (what crit encoded) go
  ARGV      the command line the process ran with

Where a value comes from, field by field:
- Registers: qemu's gdb stub (registers.txt), put where CRIU puts them:
  criu/arch/ARCH/crtools.c save_task_regs(), after compel's
  compel_get_task_regs() (its system-call restart fix-ups, which need
  values qemu's stub does not show, so they never apply here). Fields CRIU
  leaves at zero stay zero (arm fpexc/fpinst/fpinst2, mips fpregs lo/hi, s390
  orig_gpr2; loongarch64 f0-f31, which CRIU 4.2 does not copy, hold the
  values it means to). Values no emulated view has are 0: clear_tid_addr (qemu 7.2
  implements no PR_GET_TID_ADDRESS), ppc64 orig_gpr3 and trap, s390
  system_call, arm orig_r0. The thread pointer where the stub shows none
  (mips UserLocal) is the one the thread recorded (thread_pointers[]).
- Memory: the guest's /proc/self/maps as qemu shows it (state.maps), the
  bytes read through the stub, and which pages CRIU dumps by its rules
  (criu/mem.c should_dump_page, generate_iovs) applied to the host's
  pagemap of the guest's memory (host.json `pages`), in pages of AT_PAGESZ.
- A capture on a real kernel (host.json `kernel`, made by vmcapture.py in a
  VM): the process's own maps, memory and pagemap (in its kernel's pages,
  `host_page`); the VMA flags and madvise bits from its smaps' VmFlags as
  CRIU's parse_vma_vmflags() reads them; [vdso] and [vvar] as handle_vma()
  marks them (vvar never dumped); and the registers with orig_gpr3 and
  trap, so that compel's system-call restart (ppc64's handle_syscall())
  applies as on a real machine.
- mm: start/end of code and data as the kernel's load_elf_binary() computes
  them from the executable's program headers; start_brk the end of its bss
  rounded up to the page size (qemu does not randomize it); brk the
  program's sbrk(0); start_stack from the guest's /proc/self/stat; the
  argument and environment strings found on the stack; the auxv as CRIU
  reads it (auxv_t words, at most AT_VECTOR_SIZE of them).
- Identity, credentials, limits, descriptors: the host's /proc of the qemu
  process (host.json), which is the guest task as the kernel knows it; the
  comm of the process and of its threads is the guest's (qemu's emulated
  /proc/self/stat), since the host's names qemu.
- Not written, because no emulated view has them: sigactions, rseq,
  seccomp.img, timens, cgroup.img. The robust-futex list is empty (qemu
  answers get_robust_list with ENOSYS, which CRIU records as 0/0).
"""

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import uuid

# Per architecture: CRIU's march name and thread_info field, word size and
# byte order, the kernel's MAP_ANONYMOUS and MAP_GROWSDOWN, CRIU's
# AT_VECTOR_SIZE (in auxv_t words) and auxv_t size, the rlimit numbering,
# and O_LARGEFILE, O_APPEND, O_NONBLOCK.
GENERIC_RLIMITS = [
    "cpu time", "file size", "data size", "stack size", "core file size",
    "resident set", "processes", "open files", "locked memory", "address space",
    "file locks", "pending signals", "msgqueue size", "nice priority",
    "realtime priority", "realtime timeout",
]
MIPS_RLIMITS = [
    "cpu time", "file size", "data size", "stack size", "core file size",
    "open files", "address space", "resident set", "processes", "locked memory",
    "file locks", "pending signals", "msgqueue size", "nice priority",
    "realtime priority", "realtime timeout",
]
ARCHES = {
    "aarch64": dict(march="AARCH64", ti="ti_aarch64", bits=64, big=False, anon=0x20, growsdown=0x100,
                    auxv_words=50, rlimits=GENERIC_RLIMITS, o=(0o400000, 0o2000, 0o4000)),
    "armv7": dict(march="ARM", ti="ti_arm", bits=32, big=False, anon=0x20, growsdown=0x100,
                  auxv_words=40, rlimits=GENERIC_RLIMITS, o=(0o400000, 0o2000, 0o4000)),
    "mips64el": dict(march="MIPS", ti="ti_mips", bits=64, big=False, anon=0x800, growsdown=0x1000,
                     auxv_words=44, rlimits=MIPS_RLIMITS, o=(0x2000, 0x8, 0x80)),
    "ppc64le": dict(march="PPC64", ti="ti_ppc64", bits=64, big=False, anon=0x20, growsdown=0x100,
                    noreserve=0x40, locked=0x80,
                    auxv_words=54, rlimits=GENERIC_RLIMITS, o=(0o200000, 0o2000, 0o4000)),
    "riscv64": dict(march="RISCV64", ti="ti_riscv64", bits=64, big=False, anon=0x20, growsdown=0x100,
                    auxv_words=64, rlimits=GENERIC_RLIMITS, o=(0o100000, 0o2000, 0o4000)),
    "loongarch64": dict(march="LOONGARCH64", ti="ti_loongarch64", bits=64, big=False, anon=0x20,
                        growsdown=0x100, auxv_words=44, rlimits=GENERIC_RLIMITS,
                        o=(0o100000, 0o2000, 0o4000)),
    "s390x": dict(march="S390", ti="ti_s390", bits=64, big=True, anon=0x20, growsdown=0x100,
                  auxv_words=44, rlimits=GENERIC_RLIMITS, o=(0o100000, 0o2000, 0o4000)),
}

# The host's (x86-64's) open flags, as /proc/PID/fdinfo shows them.
HOST_O_LARGEFILE, HOST_O_APPEND, HOST_O_NONBLOCK = 0o100000, 0o2000, 0o4000
HOST_O_CLOEXEC = 0o2000000

# CRIU's VMA status bits (criu/include/image.h).
VMA_AREA_REGULAR = 1 << 0
VMA_AREA_VSYSCALL = 1 << 2
VMA_AREA_VDSO = 1 << 3
VMA_AREA_HEAP = 1 << 5
VMA_FILE_PRIVATE = 1 << 6
VMA_ANON_PRIVATE = 1 << 9
VMA_AREA_VVAR = 1 << 12
MAP_PRIVATE = 0x2
PE_LAZY, PE_PRESENT = 1 << 1, 1 << 2
ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK, EINTR = 512, 513, 514, 516, 4

# The ids CRIU gives a single dumped process with no namespaces of its own
# (as in a real CRIU 4.2 dump): CRIU's own task has id 1 of each kind.
NS_IDS = dict(pid_ns_id=1, net_ns_id=2, ipc_ns_id=3, uts_ns_id=4, mnt_ns_id=6, user_ns_id=7,
              cgroup_ns_id=8, time_ns_id=5)


def fail(msg):
    sys.exit("images.py: " + msg)


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def read_registers(path):
    """[(tid, {name: value})], values as numbers."""
    threads = []
    for line in read(path).splitlines():
        cols = line.split()
        if cols[0] == "thread":
            threads.append((int(cols[1]), {}))
        else:
            name, size, value = cols
            if len(value) != 2 + 2 * int(size):
                fail("%s: %r is not %s bytes" % (path, line, size))
            threads[-1][1][name] = int(value, 16)
    return threads


def maps_lines(text):
    out = []
    for line in text.splitlines():
        cols = line.split(None, 5)
        start, end = (int(x, 16) for x in cols[0].split("-"))
        out.append(dict(start=start, end=end, perms=cols[1], offset=int(cols[2], 16),
                        path=cols[5].strip() if len(cols) > 5 else ""))
    return out


def split128(v, big):
    """A 128-bit register as the two 64-bit words it is stored as in memory."""
    lo, hi = v & (2**64 - 1), v >> 64
    return [hi, lo] if big else [lo, hi]


def signed(v, bits):
    return v - (1 << bits) if v >> (bits - 1) else v


def thread_info(arch, r, tp, bits):
    """thread_info of one thread, as save_task_regs() fills it."""
    def regs(names):
        return [r[n] for n in names]

    def numbered(prefix, rng):
        return ["%s%d" % (prefix, i) for i in rng]

    if arch == "aarch64":
        return {
            "clear_tid_addr": 0,
            "tls": r["TPIDR_EL0"],
            "gpregs": {"regs": regs(numbered("x", range(31))), "sp": r["sp"], "pc": r["pc"],
                       "pstate": r["cpsr"]},
            # vregs[2i] the low and vregs[2i+1] the high 64 bits of v[i]
            "fpsimd": {"vregs": [w for n in numbered("v", range(32)) for w in split128(r[n], False)],
                       "fpsr": r["fpsr"], "fpcr": r["fpcr"]},
        }
    if arch == "riscv64":
        f = numbered("ft", range(8)) + ["fs0", "fs1"] + numbered("fa", range(8)) + \
            numbered("fs", range(2, 12)) + numbered("ft", range(8, 12))
        g = {n: r[n] for n in ["pc", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s1"] +
             numbered("a", range(8)) + numbered("s", range(2, 12)) + numbered("t", range(3, 7))}
        g["s0"] = r["fp"]
        return {"clear_tid_addr": 0, "tls": r["tp"], "gpregs": g,
                "fpsimd": {"f": regs(f), "fcsr": r["fcsr"]}}
    if arch == "ppc64le":
        vr = [w for n in numbered("vr", range(32)) for w in split128(r[n], False)]
        # The 33rd 128-bit slot holds vscr in its first word (little-endian).
        vr += [r["vscr"], 0]
        g = {"gpr": regs(numbered("r", range(32))), "nip": r["pc"], "msr": r["msr"],
             "orig_gpr3": r.get("orig_r3", 0), "ctr": r["ctr"], "link": r["lr"], "xer": r["xer"],
             "ccr": r["cr"], "trap": r.get("trap", 0)}
        ppc64_restart(g)
        return {
            "clear_tid_addr": 0,
            "gpregs": g,
            "fpstate": {"fpregs": regs(numbered("f", range(32))) + [r["fpscr"]]},
            "vrstate": {"vrregs": vr, "vrsave": r["vrsave"]},
            # The stub's hidden raw halves are vs0h-vs31h, in order: the
            # doublewords of vsr0-31 that are not the FPRs.
            "vsxstate": {"vsxregs": regs(numbered("#", range(32)))},
        }
    if arch == "s390x":
        g = {"psw_mask": r["pswm"], "psw_addr": r["pswa"], "gprs": regs(numbered("r", range(16))),
             "acrs": regs(numbered("acr", range(16))), "orig_gpr2": 0, "system_call": 0}
        s390_restart(g)
        return {
            "clear_tid_addr": 0,
            "gpregs": g,
            "fpregs": {"fpc": r["fpc"], "fprs": regs(numbered("f", range(16)))},
            # The stub's hidden raw halves are v0l-v15l, in order.
            "vxrs_low": {"regs": regs(numbered("#", range(16)))},
            "vxrs_high": {"regs": [w for n in numbered("v", range(16, 32)) for w in split128(r[n], True)]},
        }
    if arch == "armv7":
        g = {n: r[n] for n in numbered("r", range(11)) + ["sp", "lr", "pc", "cpsr"]}
        g["fp"], g["ip"], g["orig_r0"] = r["r11"], r["r12"], 0
        arm_restart(g)
        return {
            "clear_tid_addr": 0,
            "tls": r["TPIDRURO"],
            "gpregs": g,
            "fpstate": {"vfp_regs": regs(numbered("d", range(32))), "fpscr": r["fpscr"],
                        "fpexc": 0, "fpinst": 0, "fpinst2": 0},
        }
    if arch == "mips64el":
        names = ["zero", "at", "v0", "v1"] + numbered("a", range(8)) + numbered("t", range(4)) + \
            numbered("s", range(8)) + ["t8", "t9", "k0", "k1", "gp", "sp", "s8", "ra"]
        g = {"r%d" % i: r[n] for i, n in enumerate(names)}
        g.update(lo=r["lo"], hi=r["hi"], cp0_epc=r["pc"], cp0_badvaddr=r["bad"],
                 cp0_status=r["sr"], cp0_cause=r["cause"])
        mips_restart(g)
        fp = {"r%d" % i: r["f%d" % i] for i in range(32)}
        fp.update(lo=0, hi=0, fpu_fcr31=r["fsr"], fpu_id=r["fir"])
        return {"clear_tid_addr": 0, "tls": tp, "gpregs": g, "fpregs": fp}
    if arch == "loongarch64":
        g = {"regs": regs(numbered("r", range(32))), "pc": r["pc"]}
        loongarch_restart(g, r["orig_a0"])
        # CRIU 4.2's save_task_regs() means to copy f0-f31 here but copies
        # the ptrace buffer onto itself (assign_reg(fpregs, fpregs, ...)),
        # leaving what xmalloc() returned; these are the values it means.
        return {
            "clear_tid_addr": 0,
            "tls": r["r2"],  # arch_get_tls(): $tp
            "gpregs": g,
            "fpregs": {"regs": regs(numbered("f", range(32))), "fcc": r["fcc"], "fcsr": r["fcsr"]},
        }
    fail("unknown architecture " + arch)


# compel_get_task_regs()'s system-call restart, per architecture: where a
# thread sat in an interrupted system call, CRIU saves it at the point where
# it restarts the call.
def arm_restart(g):
    if signed(g["orig_r0"], 32) >= 0:
        r0 = signed(g["r0"], 32)
        if r0 in (-ERESTARTNOHAND, -ERESTARTSYS, -ERESTARTNOINTR):
            g["r0"], g["pc"] = g["orig_r0"], (g["pc"] - 4) % 2**32
        elif r0 == -ERESTART_RESTARTBLOCK:
            g["r0"] = -EINTR % 2**32


def ppc64_restart(g):
    # handle_syscall() for a trap of sc (0xc00, the error in cr0's SO bit)
    # or scv (0x3000, errors negative); then the trap is reset to 0.
    trap = g["trap"] & ~0xF
    if trap in (0xC00, 0x3000):
        ret = g["gpr"][3]
        if trap == 0x3000:
            ret = -signed(ret, 64) if signed(ret, 64) < 0 and signed(ret, 64) >= -4095 else None
        elif not g["ccr"] & 0x10000000:
            ret = None
        if ret in (ERESTARTNOHAND, ERESTARTSYS, ERESTARTNOINTR):
            g["gpr"][3] = g["orig_gpr3"]
            g["nip"] = (g["nip"] - 4) % 2**64
        elif ret == ERESTART_RESTARTBLOCK:
            g["gpr"][3] = -EINTR % 2**64 if trap == 0x3000 else EINTR
    g["trap"] = 0


def mips_restart(g):
    if g["r0"]:
        v0 = signed(g["r2"] & 0xffffffff, 32)
        if v0 in (ERESTARTNOHAND, ERESTARTSYS, ERESTARTNOINTR):
            g["r2"], g["r7"], g["cp0_epc"] = g["r0"], g["r26"], (g["cp0_epc"] - 4) % 2**64
        elif v0 == ERESTART_RESTARTBLOCK:
            g["r2"] = -EINTR % 2**64
        g["r0"] = 0


def loongarch_restart(g, orig_a0):
    r = g["regs"]
    if r[0]:
        a0 = signed(r[4], 64)
        if a0 in (-ERESTARTNOHAND, -ERESTARTSYS, -ERESTARTNOINTR):
            r[4], g["pc"] = orig_a0, (g["pc"] - 4) % 2**64
        elif a0 == -ERESTART_RESTARTBLOCK:
            r[4], r[11], g["pc"] = orig_a0, 128, (g["pc"] - 4) % 2**64  # __NR_restart_syscall
        r[0] = 0


def s390_restart(g):
    if g["system_call"]:
        rewind = g["system_call"] >> 16
        r2 = signed(g["gprs"][2], 64)
        if r2 in (-ERESTARTNOHAND, -ERESTARTSYS, -ERESTARTNOINTR):
            g["gprs"][2] = g["orig_gpr2"]
            g["psw_addr"] = (g["psw_addr"] - rewind) % 2**64
        elif r2 == -ERESTART_RESTARTBLOCK:
            g["gprs"][2] = -EINTR % 2**64


def elf_layout(data):
    """(class, byte order, program headers as (type, flags, offset, vaddr,
    filesz, memsz)) of an ELF file."""
    if data[:4] != b"\x7fELF":
        fail("the executable is not an ELF file")
    is64, e = data[4] == 2, "<" if data[5] == 1 else ">"
    if is64:
        phoff, = struct.unpack_from(e + "Q", data, 32)
        phentsize, phnum = struct.unpack_from(e + "HH", data, 54)
    else:
        phoff, = struct.unpack_from(e + "I", data, 28)
        phentsize, phnum = struct.unpack_from(e + "HH", data, 42)
    phdrs = []
    for i in range(phnum):
        o = phoff + i * phentsize
        if is64:
            t, fl, off, va, _, fs, ms = struct.unpack_from(e + "IIQQQQQ", data, o)
        else:
            t, off, va, _, fs, ms, fl = struct.unpack_from(e + "IIIIIII", data, o)
        phdrs.append((t, fl, off, va, fs, ms))
    return is64, e, phdrs


def build_id_words(data, e):
    """NT_GNU_BUILD_ID's bytes as the uint32 words CRIU stores them in
    (read in the target's byte order)."""
    _, _, phdrs = elf_layout(data)
    for t, _, off, _, fs, _ in phdrs:
        if t != 4:  # PT_NOTE
            continue
        pos = off
        while pos + 12 <= off + fs:
            namesz, descsz, ntype = struct.unpack_from(e + "III", data, pos)
            desc = pos + 12 + (namesz + 3) // 4 * 4
            if ntype == 3:  # NT_GNU_BUILD_ID
                b = data[desc:desc + descsz]
                b += bytes(-len(b) % 4)
                return [struct.unpack_from(e + "I", b, i)[0] for i in range(0, len(b), 4)]
            pos = desc + (descsz + 3) // 4 * 4
    return None


def main():
    if len(sys.argv) < 7:
        fail("usage: images.py ARCH CAPTURE_DIR EXE EXE_PATH OUT_DIR ARGV...")
    arch, cap, exe, exe_path, out = sys.argv[1:6]
    argv = sys.argv[6:]
    a = ARCHES.get(arch) or fail("unknown architecture " + arch)
    crit = os.environ.get("CRIT") or shutil.which("crit") or fail("no crit: put CRIU 4.2's crit on PATH or in $CRIT")
    e = ">" if a["big"] else "<"
    word = "Q" if a["bits"] == 64 else "I"
    wsize = a["bits"] // 8

    host = json.loads(read(os.path.join(cap, "host.json")))
    program = json.loads(read(os.path.join(cap, "program.json")))
    exe_bytes = read(exe, "rb")
    _, _, phdrs = elf_layout(exe_bytes)

    # The auxiliary vector as CRIU reads it: auxv_t words, at most
    # AT_VECTOR_SIZE of them, each saved as a uint64.
    raw = read(os.path.join(cap, "state.auxv"), "rb")
    words = [w for (w,) in struct.iter_unpack(e + word, raw[:len(raw) // wsize * wsize])]
    saved_auxv = words[:a["auxv_words"]]
    pairs = dict(zip(words[0::2], words[1::2]))
    page = pairs.get(6) or fail("no AT_PAGESZ in the auxv")

    # The guest's stat as qemu shows it: comm and start_stack.
    stat = read(os.path.join(cap, "state.stat"))
    comm = stat[stat.index("(") + 1:stat.rindex(")")]
    stat_fields = stat[stat.rindex(")") + 2:].split()  # from field 3 on
    start_stack = int(stat_fields[27 - 2])

    # Threads: registers, and the thread pointer each recorded.
    regs = read_registers(os.path.join(cap, "registers.txt"))
    tps = dict(zip(program["tids"], program["thread_pointers"]))
    if sorted(t for t, _ in regs) != sorted(tps):
        fail("the threads the stub shows %s are not those the program recorded %s" %
             ([t for t, _ in regs], sorted(tps)))
    pid = program["tids"][0]
    regs.sort(key=lambda t: (t[0] != pid, t[0]))
    infos = {}
    for tid, r in regs:
        ti = thread_info(arch, r, tps[tid], a["bits"])
        if "tls" in ti and ti["tls"] != tps[tid]:
            fail("thread %d: tls %#x, but it recorded %#x" % (tid, ti["tls"], tps[tid]))
        infos[tid] = ti

    # Credentials and limits of the task, from the host's view of it.
    status = dict(l.split(":", 1) for l in host["status"].splitlines() if ":" in l)

    def ids(name):
        return [int(x) for x in status[name].split()]

    def caps(name):
        v = int(status[name], 16)
        return [v & 0xffffffff, v >> 32]

    uid, gid = ids("Uid"), ids("Gid")
    creds = {
        "uid": uid[0], "gid": gid[0], "euid": uid[1], "egid": gid[1], "suid": uid[2],
        "sgid": gid[2], "fsuid": uid[3], "fsgid": gid[3],
        "cap_inh": caps("CapInh"), "cap_prm": caps("CapPrm"), "cap_eff": caps("CapEff"),
        "cap_bnd": caps("CapBnd"), "secbits": host["securebits"], "cap_amb": caps("CapAmb"),
    }
    groups = [int(x) for x in status.get("Groups", "").split()]
    if groups:
        creds["groups"] = groups
    limits = {}
    for line in host["limits"].splitlines()[1:]:
        m = re.match(r"Max (.+?)\s{2,}(\S+)\s+(\S+)", line)
        inf = 2**64 - 1
        limits[m.group(1)] = [inf if v == "unlimited" else int(v) for v in m.groups()[1:]]
    rlimits = [{"cur": limits[n][0], "max": limits[n][1]} for n in a["rlimits"]]
    host_stat = host["threads"][str(pid)]
    hs = host_stat[host_stat.rindex(")") + 2:].split()
    pgid, sid, task_flags = int(hs[5 - 3]), int(hs[6 - 3]), int(hs[9 - 3])
    # CRIU reads /proc/PID/personality, printed in hex, with atoi().
    personality = int(re.match(r"\d*", host["personality"]).group() or 0)

    images = os.path.join(out, "images")
    jdir = os.path.join(out, "json")
    for d in (images, jdir):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    written = {}

    def image(name, magic, entries):
        written[name] = {"magic": magic, "entries": entries}

    # inventory, pstree, ids
    image("inventory.img", "INVENTORY", [{
        "img_version": 2, "fdinfo_per_id": True,
        "root_ids": dict(vm_id=1, files_id=1, fs_id=1, sighand_id=1, **NS_IDS),
        "ns_per_id": True, "root_cg_set": 1, "lsmtype": "NO_LSM", "network_lock_method": 0,
        "plugins_entry": {},
        "dump_criu_run_id": str(uuid.UUID(bytes=hashlib.sha256(arch.encode()).digest()[:16], version=4)),
    }])
    image("pstree.img", "PSTREE", [{"pid": pid, "ppid": 0, "pgid": pgid, "sid": sid,
                                    "threads": [t for t, _ in regs]}])
    image("ids-%d.img" % pid, "IDS", [dict(vm_id=2, files_id=2, fs_id=2, sighand_id=2, **NS_IDS)])

    # Threads.
    for i, (tid, _) in enumerate(regs):
        ts = host["threads"][str(tid)]
        f = ts[ts.rindex(")") + 2:].split()
        tc = {
            "futex_rla": 0, "futex_rla_len": 0,
            "sched_nice": int(f[19 - 3]), "sched_policy": int(f[41 - 3]),
            "sas": {"ss_sp": 0, "ss_size": 0, "ss_flags": 2},  # SS_DISABLE: the program sets none
            "signals_p": {}, "creds": creds, "comm": comm,
        }
        core = {"mtype": a["march"], a["ti"]: infos[tid], "thread_core": tc}
        if i == 0:
            core["tc"] = {
                "task_state": 1, "exit_code": 0, "personality": personality, "flags": task_flags,
                "blk_sigset": 0,  # the program blocks no signal
                "comm": comm,
                # The program and qemu set no interval timer.
                "timers": {k: {"isec": 0, "iusec": 0, "vsec": 0, "vusec": 0} for k in ("real", "virt", "prof")},
                "rlimits": {"rlimits": rlimits}, "signals_s": {},
                "loginuid": host["loginuid"], "oom_score_adj": host["oom_score_adj"],
                "child_subreaper": False,
            }
        else:
            tc["blk_sigset"] = 0
        image("core-%d.img" % tid, "CORE", [core])

    # Files: the executable first, then each descriptor (those sharing an
    # open file description share an entry), the cwd and the root.
    # (A capture on the target's own kernel has the target's flags.)
    host_o = a["o"] if host.get("kernel") else (HOST_O_LARGEFILE, HOST_O_APPEND, HOST_O_NONBLOCK)

    def open_flags(flags):
        out_flags = flags & 3
        for h, t in zip(host_o, a["o"]):
            if flags & h:
                out_flags |= t
        rest = flags & ~(3 | HOST_O_CLOEXEC | sum(host_o))
        if rest:
            fail("open flags %#o: bits %#o not translated" % (flags, rest))
        return out_flags

    fown = {"uid": 0, "euid": 0, "signum": 0, "pid_type": 0, "pid": 0}
    exe_st = os.stat(exe)
    reg_exe = {"id": 1, "flags": 0, "pos": 0, "fown": fown, "name": exe_path, "size": len(exe_bytes),
               "mode": exe_st.st_mode}
    bid = build_id_words(exe_bytes, e)
    if bid:
        reg_exe["build_id"] = bid
    files = [{"type": "REG", "id": 1, "reg": reg_exe}]
    fdinfo, pipes, description = [], {}, {}
    for fd, d in sorted(host["fds"].items(), key=lambda kv: int(kv[0])):
        key = d.get("same_as")
        if key is not None:
            fid = description[key]
        else:
            fid = len(files) + 1
            flags = open_flags(d["flags"])
            if d["target"].startswith("pipe:"):
                files.append({"type": "PIPE", "id": fid,
                              "pipe": {"id": fid, "pipe_id": d["ino"], "flags": flags, "fown": fown}})
                pipes[d["ino"]] = d["pipe_size"]
            elif d["target"].startswith("/"):
                reg = {"id": fid, "flags": flags, "pos": d["pos"], "fown": fown, "name": d["target"],
                       "mode": d["mode"]}
                if (d["mode"] & 0o170000) == 0o100000:
                    reg["size"] = d["size"]
                files.append({"type": "REG", "id": fid, "reg": reg})
            else:
                fail("descriptor %s: %s is none this script knows" % (fd, d["target"]))
        description[fd] = fid
        fdinfo.append({"id": fid, "flags": 1 if d["flags"] & HOST_O_CLOEXEC else 0,
                       "type": files[fid - 1]["type"], "fd": int(fd)})
    for name in (host["cwd"], "/"):
        fid = len(files) + 1
        files.append({"type": "REG", "id": fid, "reg": {"id": fid, "flags": 0, "pos": 0, "fown": fown,
                                                         "name": name, "mode": os.stat(name).st_mode}})
    cwd_id, root_id = len(files) - 1, len(files)
    image("files.img", "FILES", files)
    image("fdinfo-2.img", "FDINFO", fdinfo)
    if pipes:
        image("pipes-data.img", "PIPES_DATA", [{"pipe_id": p, "bytes": 0, "size": s} for p, s in pipes.items()])
    umask = int(status["Umask"], 8)
    image("fs-%d.img" % pid, "FS", [{"cwd_id": cwd_id, "root_id": root_id, "umask": umask}])

    # Memory.
    maps = maps_lines(read(os.path.join(cap, "state.maps")))
    kernel = host.get("kernel", False)
    host_page = host.get("host_page", 4096)
    # On a real kernel, each mapping's VmFlags from its smaps.
    vmflags = {}
    if kernel:
        start = None
        for line in read(os.path.join(cap, "smaps")).splitlines():
            m = re.match(r"([0-9a-f]+)-[0-9a-f]+ ", line)
            if m:
                start = int(m.group(1), 16)
            elif line.startswith("VmFlags:"):
                vmflags[start] = line.split()[1:]
    # Each thread's stack pointer, as compel's REG_SP() reads it.
    sp_of = {
        "aarch64": lambda g: g["sp"], "armv7": lambda g: g["sp"], "riscv64": lambda g: g["sp"],
        "ppc64le": lambda g: g["gpr"][1], "s390x": lambda g: g["gprs"][15],
        "mips64el": lambda g: g["r29"], "loongarch64": lambda g: g["regs"][3],
    }[arch]
    sps = [sp_of(infos[t]["gpregs"]) for t, _ in regs]
    vmas, runs = [], []
    arg = env = None
    for m in maps:
        if arch == "armv7" and (m["start"], m["end"], m["path"]) == (0xFFFF0000, 0xFFFF1000, ""):
            # The kuser helpers' page, which an ARM kernel names [vectors]
            # and qemu leaves unnamed.
            m["path"] = "[vectors]"
        if m["start"] % page or m["end"] % page:
            fail("mapping %x-%x is not in pages of %d bytes" % (m["start"], m["end"], page))
        is_file = m["path"] == (exe_path if kernel else exe)
        prot = (m["perms"][0] == "r") | (m["perms"][1] == "w") << 1 | (m["perms"][2] == "x") << 2
        flags = MAP_PRIVATE if m["perms"][3] == "p" else fail("shared mapping %x" % m["start"])
        if m["path"].startswith("/") and not is_file:
            fail("file mapping %s is not the executable's" % m["path"])
        st = VMA_AREA_REGULAR
        if is_file:
            st |= VMA_FILE_PRIVATE
        else:
            flags |= a["anon"]
            st |= VMA_ANON_PRIVATE
        madv = 0
        if kernel:
            # parse_vma_vmflags(): mapping flags and madvise() bits.
            vf = vmflags[m["start"]]
            for tok, fl in (("gd", a["growsdown"]), ("lo", a.get("locked")), ("nr", a.get("noreserve"))):
                if tok in vf:
                    flags |= fl if fl is not None else fail("%s: no MAP_ value for %s" % (arch, tok))
            for tok, bit in (("sr", 2), ("rr", 1), ("dc", 10), ("dd", 16), ("mg", 12), ("hg", 14),
                             ("nh", 15), ("wf", 18)):
                if tok in vf:
                    madv |= 1 << bit
            # VM_IO/VM_PFNMAP, which CRIU cannot splice, it accepts in [vvar].
            if (("io" in vf or "pf" in vf) and m["path"] != "[vvar]") or "sh" in vf or "ht" in vf:
                fail("mapping %x: VmFlags %s, which this script does not handle" % (m["start"], vf))
        if m["path"] == "[heap]":
            st |= VMA_AREA_HEAP
        elif m["path"] == "[stack]":
            # The kernel's stack always has VM_GROWSDOWN ("gd" in smaps).
            flags |= a["growsdown"]
        elif kernel and m["path"] == "[vdso]":
            st |= VMA_AREA_VDSO if prot & 5 == 5 else 0
        elif kernel and m["path"] == "[vvar]":
            st |= VMA_AREA_VVAR if prot & 1 else 0
        elif m["path"] == "[vectors]":
            # handle_vma(): a vsyscall area, not regular, never dumped.
            st = VMA_AREA_VSYSCALL | VMA_ANON_PRIVATE
        elif m["path"] in ("[vdso]", "[vvar]", "[vsyscall]"):
            fail("%s: this script does not handle it" % m["path"])
        elif m["path"] and not is_file:
            fail("mapping %s is none this script knows" % m["path"])
        vma = {"start": m["start"], "end": m["end"], "pgoff": m["offset"] if is_file else 0,
               "shmid": 1 if is_file else 0, "prot": prot, "flags": flags, "status": st, "fd": -1}
        if is_file:
            vma["fdflags"] = 0  # O_RDONLY: the executable is mapped from a read-only open
        if madv:
            vma["madv"] = madv
        vmas.append(vma)
        # VVAR is never dumped (generate_iovs()).
        if m["perms"][0] != "r" or not st & VMA_AREA_REGULAR or st & VMA_AREA_VVAR:
            continue
        letters = host["pages"]["%x" % m["start"]]
        mem = read(os.path.join(cap, "mem", "%x.bin" % m["start"]), "rb")
        if len(mem) != m["end"] - m["start"] or len(letters) * host_page != len(mem):
            fail("short capture of %x" % m["start"])
        if page % host_page:
            fail("pages of %d bytes in host pages of %d" % (page, host_page))
        per = page // host_page
        # vma_entry_can_be_lazy(): private anonymous, not locked, not vDSO.
        lazy_vma = bool(flags & a["anon"]) and not st & VMA_AREA_VDSO and \
            not (a.get("locked") and flags & a["locked"])
        for p in range(0, m["end"] - m["start"], page):
            sub = letters[p // host_page:p // host_page + per]
            # should_dump_page(): not a file page of a private file mapping,
            # present or swapped, not the zero page (a file page of an
            # anonymous mapping, the vDSO's, is dumped).
            if not any(x == "a" or (x == "f" and not is_file) for x in sub):
                continue
            vaddr = m["start"] + p
            # generate_iovs(): lazy where the VMA can be, unless is_stack()
            # (which compares the offset within the page of each thread's sp).
            lazy = lazy_vma and not any(((sp ^ vaddr) & (page - 1)) == 0 for sp in sps)
            fl = PE_PRESENT | (PE_LAZY if lazy else 0)
            data = mem[p:p + page]
            if runs and runs[-1][0] + runs[-1][2] * page == vaddr and runs[-1][1] == fl:
                runs[-1][2] += 1
                runs[-1][3].append(data)
            else:
                runs.append([vaddr, fl, 1, [data]])
        if m["path"] == "[stack]":
            joined = b"\0".join(x.encode() for x in argv) + b"\0"
            at = mem.find(joined)
            if at < 0:
                fail("the command line is not on the stack")
            arg = (m["start"] + at, m["start"] + at + len(joined))
            envlen = 0
            for s in mem[at + len(joined):].split(b"\0"):
                if b"=" not in s:
                    break
                envlen += len(s) + 1
            env = (arg[1], arg[1] + envlen)
    if arg is None:
        fail("no [stack] mapping")

    # CRIU's page pipes hold at most 256 pages (a 1 MiB pipe) of each kind,
    # lazy or not, and a run is split where one fills (as a real dump of
    # scripts/make-i386-fixture shows); that is not modelled here.
    for fl in (PE_PRESENT, PE_PRESENT | PE_LAZY):
        if sum(r[2] for r in runs if r[1] == fl) > 256:
            fail("more than 256 pages of flags %#x: CRIU would split them across page pipes" % fl)
    pagemap = [{"pages_id": 1}] + [{"vaddr": v, "compat_nr_pages": 0, "flags": fl, "nr_pages": n}
                                   for v, fl, n, _ in runs]
    image("pagemap-%d.img" % pid, "PAGEMAP", pagemap)
    with open(os.path.join(images, "pages-1.img"), "wb") as f:
        for run in runs:
            f.write(b"".join(run[3]))

    # mm: code and data as load_elf_binary() computes them (a fixed
    # executable: no load bias).
    loads = [p for p in phdrs if p[0] == 1]
    start_code = min(p[3] for p in loads if p[1] & 1)
    end_code = max(p[3] + p[4] for p in loads if p[1] & 1)
    start_data = max(p[3] for p in loads)
    end_data = max(p[3] + p[4] for p in loads)
    start_brk = -(-max(p[3] + p[5] for p in loads) // page) * page
    image("mm-%d.img" % pid, "MM", [{
        "mm_start_code": start_code, "mm_end_code": end_code, "mm_start_data": start_data,
        "mm_end_data": end_data, "mm_start_stack": start_stack, "mm_start_brk": start_brk,
        "mm_brk": program["program_break"], "mm_arg_start": arg[0], "mm_arg_end": arg[1],
        "mm_env_start": env[0], "mm_env_end": env[1], "exe_file_id": 1, "mm_saved_auxv": saved_auxv,
        "vmas": vmas, "dumpable": 1, "thp_disabled": False,
    }])

    # crit encode each, and check by decoding that crit kept every field.
    for name, content in written.items():
        j = os.path.join(jdir, name[:-4] + ".json")
        with open(j, "w") as f:
            json.dump(content, f, indent=1)
        subprocess.run([crit, "encode", "-i", j, "-o", os.path.join(images, name)], check=True)
        back = json.loads(subprocess.run([crit, "decode", "-i", os.path.join(images, name)],
                                         check=True, capture_output=True, text=True).stdout)
        check_same(name, content, back)
    print("%s: %d threads, %d pages of %d bytes in %d pagemap entries" %
          (images, len(regs), sum(r[2] for r in runs), page, len(runs)), file=sys.stderr)


def check_same(where, wrote, back):
    """Every field written must come back from crit decode (not --pretty:
    numbers as numbers, enums by name) with its value: crit ignores fields
    it does not know."""
    if isinstance(wrote, dict) and isinstance(back, dict):
        for k, v in wrote.items():
            if k not in back:
                fail("%s: crit dropped field %s" % (where, k))
            check_same("%s.%s" % (where, k), v, back[k])
    elif isinstance(wrote, list) and isinstance(back, list) and len(wrote) == len(back):
        for i, (w, b) in enumerate(zip(wrote, back)):
            check_same("%s[%d]" % (where, i), w, b)
    elif wrote != back or type(wrote) is not type(back):
        fail("%s: %r came back as %r" % (where, wrote, back))


if __name__ == "__main__":
    main()
