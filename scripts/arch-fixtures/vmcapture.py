#!/usr/bin/env python3
"""The host's side of a capture in a VM (scripts/make-kernel-fixture).

  vmcapture.py initramfs OUT INIT EXE EXE_PATH CONF
      a newc cpio archive: INIT as /init, EXE at EXE_PATH, CONF as
      /capture.conf, /dev/null, and empty /proc and /out
  vmcapture.py capture ARCH CONSOLE_LOG CAPTURE_DIR EXE
      reads what scripts/arch-fixtures/vminit.c wrote to the console and
      writes CAPTURE_DIR as scripts/arch-fixtures/capture.py does for
      images.py: registers.txt, program.json, host.json, mem/ADDR.bin,
      state.maps, state.auxv, state.stat; and smaps (CRIU's VMA flags
      come from it on a real kernel)

ARCH is ppc64le or aarch64. The registers are its regsets as
PTRACE_GETREGSET gives them, named as gdb names them (and, for ppc64le,
orig_r3 and trap, which gdb's stub view lacks); program.json's values are read from the program's globals in the
captured memory, at the addresses of its symbol table.
"""
import base64
import json
import os
import re
import struct
import sys

NT_PRSTATUS, NT_PRFPREG, NT_PPC_VMX, NT_PPC_VSX, NT_ARM_TLS = 1, 2, 0x100, 0x102, 0x401


def fail(msg):
    sys.exit("vmcapture.py: " + msg)


def newc(entries):
    """A newc cpio archive of (name, mode, data, rdev major, rdev minor)."""
    out = bytearray()
    for ino, (name, mode, data, major, minor) in enumerate(entries + [("TRAILER!!!", 0, b"", 0, 0)], 1):
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, major, minor, len(name) + 1, 0]
        head = b"070701" + b"".join(b"%08x" % f for f in fields) + name.encode() + b"\0"
        out += head + bytes(-len(head) % 4) + data + bytes(-len(data) % 4)
    return bytes(out)


def initramfs(out, init, exe, exe_path, conf):
    entries = [("dev", 0o40755, b"", 0, 0), ("dev/null", 0o20666, b"", 1, 3),
               ("proc", 0o40755, b"", 0, 0), ("out", 0o40755, b"", 0, 0)]
    parts = exe_path.strip("/").split("/")
    for i in range(1, len(parts)):
        entries.append(("/".join(parts[:i]), 0o40755, b"", 0, 0))
    entries += [(exe_path.strip("/"), 0o100755, open(exe, "rb").read(), 0, 0),
                ("init", 0o100755, open(init, "rb").read(), 0, 0),
                ("capture.conf", 0o100644, open(conf, "rb").read(), 0, 0)]
    with open(out, "wb") as f:
        f.write(newc(entries))


def console_files(log):
    """NAME → bytes, from the @@FILE records of the console log."""
    files, cur, lines = {}, None, []

    def flush():
        if cur:
            name, off, total = cur
            data = base64.b64decode("".join(lines))
            buf = files.setdefault(name, bytearray(total))
            if len(buf) != total or off + len(data) > total:
                fail("%s: record past its length" % name)
            buf[off:off + len(data)] = data

    done = False
    for raw in open(log, "rb").read().decode("latin-1").splitlines():
        line = raw.strip("\r")
        # A record starts on a line of its own, but the kernel's console
        # may have left a line unfinished before it.
        at = line.find("@@")
        if at > 0:
            line = line[at:]
        if line.startswith("@@ERROR"):
            fail("the VM says: " + line)
        if line.startswith("@@FILE ") or line == "@@DONE":
            flush()
            cur, lines = None, []
            if line == "@@DONE":
                done = True
                break
            _, name, off, total = line.split()
            cur = (name, int(off), int(total))
        elif cur and re.fullmatch(r"[A-Za-z0-9+/=]+", line):
            lines.append(line)
    if not done:
        fail("%s: the capture did not finish" % log)
    return {k: bytes(v) for k, v in files.items()}


def symbols(exe):
    """name → address of the executable's symbols (64-bit little-endian ELF)."""
    d = open(exe, "rb").read()
    shoff, = struct.unpack_from("<Q", d, 40)
    shentsize, shnum = struct.unpack_from("<HH", d, 58)
    secs = [struct.unpack_from("<IIQQQQIIQQ", d, shoff + i * shentsize) for i in range(shnum)]
    out = {}
    for s in secs:
        if s[1] != 2:  # SHT_SYMTAB
            continue
        strtab = secs[s[6]]
        for off in range(s[4], s[4] + s[5], 24):
            name, _, _, _, value, _ = struct.unpack_from("<IBBHQQ", d, off)
            end = d.index(b"\0", strtab[4] + name)
            out[d[strtab[4] + name:end].decode()] = value
    return out


def ppc64le_registers(regset, put):
    """ppc64le's regsets (pt_regs, the FPRs and fpscr, VMX, the VSX
    doublewords that are not FPRs), named as gdb names them, and orig_r3
    and trap, which gdb's stub view lacks."""
    g = regset(NT_PRSTATUS)
    w = [g[8 * i:8 * i + 8] for i in range(len(g) // 8)]
    for i in range(32):
        put("r%d" % i, w[i])
    for i, name in [(32, "pc"), (33, "msr"), (34, "orig_r3"), (35, "ctr"), (36, "lr")]:
        put(name, w[i])
    put("xer", w[37][:4])
    put("cr", w[38][:4])
    put("trap", w[40])
    fp = regset(NT_PRFPREG)
    for i in range(32):
        put("f%d" % i, fp[8 * i:8 * i + 8])
    put("fpscr", fp[256:264])
    vmx = regset(NT_PPC_VMX)
    for i in range(32):
        put("vr%d" % i, vmx[16 * i:16 * i + 16])
    # vscr and vrsave, each in the first word of its 16-byte slot.
    if any(vmx[512 + 4:528]):
        fail("vscr's slot holds more than its first word")
    put("vscr", vmx[512:516])
    put("vrsave", vmx[528:532])
    vsx = regset(NT_PPC_VSX)
    for i in range(32):
        put("#%d" % i, vsx[8 * i:8 * i + 8])


def aarch64_registers(regset, put):
    """aarch64's regsets (user_pt_regs, user_fpsimd_state, TPIDR_EL0),
    named as gdb names them."""
    g = regset(NT_PRSTATUS)
    w = [g[8 * i:8 * i + 8] for i in range(len(g) // 8)]
    if len(w) != 34:
        fail("NT_PRSTATUS of %d bytes, not 272" % len(g))
    for i in range(31):
        put("x%d" % i, w[i])
    put("sp", w[31])
    put("pc", w[32])
    # gdb's cpsr is pstate's low word: the bits above are zero in EL0.
    if any(w[33][4:]):
        fail("pstate %s has bits above 32" % w[33][::-1].hex())
    put("cpsr", w[33][:4])
    fp = regset(NT_PRFPREG)
    if len(fp) != 528:
        fail("NT_PRFPREG of %d bytes, not 528" % len(fp))
    for i in range(32):
        put("v%d" % i, fp[16 * i:16 * i + 16])
    put("fpsr", fp[512:516])
    put("fpcr", fp[516:520])
    # TPIDR_EL0, then TPIDR2_EL0 where the CPU has SME.
    tls = regset(NT_ARM_TLS)
    if len(tls) not in (8, 16):
        fail("NT_ARM_TLS of %d bytes" % len(tls))
    put("TPIDR_EL0", tls[:8])


REGISTERS = {"ppc64le": ppc64le_registers, "aarch64": aarch64_registers}


def capture(arch, log, cap, exe):
    if arch not in REGISTERS:
        fail("no registers known for " + arch)
    files = console_files(log)
    os.makedirs(os.path.join(cap, "mem"), exist_ok=True)
    tids = sorted({int(n.split("/")[1]) for n in files if n.startswith("regs/")})

    def text(name):
        return files[name].decode()

    # Registers, as gdb names them: "NAME SIZE VALUE", VALUE the bytes read
    # as a little-endian number.
    with open(os.path.join(cap, "registers.txt"), "w") as f:
        for t in tids:
            f.write("thread %d\n" % t)

            def put(name, b):
                f.write("%s %d 0x%s\n" % (name, len(b), b[::-1].hex()))

            REGISTERS[arch](lambda n: files["regs/%d/%d" % (t, n)], put)

    # program.json: the program's record of itself, from its globals.
    sym = symbols(exe)
    maps = [(int(a, 16), int(b, 16)) for a, b in
            (l.split()[0].split("-") for l in text("state.maps").splitlines())]

    def memory(addr, n):
        for start, end in maps:
            if start <= addr and addr + n <= end:
                m = files.get("mem/%x" % start) or fail("no memory of %x" % start)
                return m[addr - start:addr - start + n]
        fail("%x is in no mapping" % addr)

    def u64s(name, n):
        return list(struct.unpack("<%dQ" % n, memory(sym[name], 8 * n)))

    program = {"tids": u64s("thread_tids", 3), "thread_pointers": u64s("thread_pointers", 3),
               "program_break": u64s("program_break", 1)[0]}
    if sorted(program["tids"]) != tids:
        fail("the program recorded threads %s, the VM stopped %s" % (program["tids"], tids))
    json.dump(program, open(os.path.join(cap, "program.json"), "w"), indent=1)

    # host.json, as hostview.py writes it for a qemu-user process.
    auxv = files["state.auxv"]
    pairs = dict(struct.iter_unpack("<QQ", auxv[:len(auxv) // 16 * 16]))
    page = pairs[6]
    zero_pfn = int(text("zero_pfn"))
    pfn_mask = (1 << 55) - 1
    pages = {}
    for start, end in maps:
        pm = files.get("pagemap/%x" % start)
        if pm is None:
            continue
        letters = []
        for (e,) in struct.iter_unpack("<Q", pm):
            if not e & (3 << 62):
                letters.append("-")
            elif e & (1 << 61):
                letters.append("f")
            elif e & (1 << 63) and e & pfn_mask == zero_pfn:
                letters.append("z")
            else:
                letters.append("a")
        pages["%x" % start] = "".join(letters)
    fds = {}
    for line in text("fds").splitlines():
        fd, target, mode, size, ino, pos, flags, pipe_size, same = line.split(" ")
        entry = {"target": target, "pos": int(pos), "flags": int(flags, 8), "mode": int(mode, 8),
                 "size": int(size), "ino": int(ino)}
        if int(same) >= 0:
            entry["same_as"] = fds[same].get("same_as", same)
        if int(pipe_size) >= 0:
            entry["pipe_size"] = int(pipe_size)
        fds[fd] = entry
    host = {
        "status": text("proc/status"), "limits": text("proc/limits"),
        "loginuid": int(text("proc/loginuid")), "oom_score_adj": int(text("proc/oom_score_adj")),
        "personality": text("proc/personality").strip(), "cwd": text("proc/cwd"),
        "securebits": int(text("securebits")),
        "threads": {str(t): text("proc/task/%d/stat" % t) for t in tids},
        "fds": fds, "qemu_fds": {}, "guest_base": 0, "pages": pages, "host_page": page,
        "kernel": True,
    }
    json.dump(host, open(os.path.join(cap, "host.json"), "w"), indent=1)
    for start, end in maps:
        m = files.get("mem/%x" % start)
        if m is not None:
            if len(m) != end - start:
                fail("mem/%x is %d bytes, not %d" % (start, len(m), end - start))
            open(os.path.join(cap, "mem", "%x.bin" % start), "wb").write(m)
    for name in ("state.maps", "state.auxv", "state.stat"):
        open(os.path.join(cap, name), "wb").write(files[name])
    open(os.path.join(cap, "smaps"), "wb").write(files["proc/smaps"])
    if files["proc/maps"] != files["state.maps"]:
        fail("the process's maps changed between its record and the capture")


if __name__ == "__main__":
    sys.dont_write_bytecode = True
    if sys.argv[1:2] == ["initramfs"] and len(sys.argv) == 7:
        initramfs(*sys.argv[2:])
    elif sys.argv[1:2] == ["capture"] and len(sys.argv) == 6:
        capture(*sys.argv[2:])
    else:
        fail(__doc__)
