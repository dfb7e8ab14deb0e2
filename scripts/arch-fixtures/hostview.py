"""What the host kernel shows of a qemu-user process stopped at the
checkpoint, which is the guest task as far as the kernel knows it, and the
bytes of the guest's memory; shared by capture.py (through gdb) and
capture_rsp.py (through qemu's stub alone).

capture() writes into OUT:
  host.json     from /proc/QPID: the process's status (credentials,
                capabilities, umask), limits, loginuid, oom_score_adj,
                personality and cwd, each guest thread's stat (nice,
                policy), its open descriptors but qemu's own sockets
                (target, fdinfo, mode, size, inode, pipe size, and
                `same_as` where kcmp finds one open file description), the
                securebits this process inherited as qemu did, guest_base,
                and `pages`: for every readable guest mapping, one letter
                per 4 KiB host page from the host's pagemap of the guest's
                memory (qemu maps guest address A at host address
                A + guest_base): `a` present or swapped and private to the
                process, `f` a page of the file's page cache, `z` the zero
                page, `-` not present. Needs root (page frame numbers).
  mem/ADDR.bin  the bytes of every readable mapping of OUT/state.maps, as
                read_memory(start, length) reads them from the guest, after
                the pagemap (reading could change it); in anonymous
                mappings only the present pages are read, the others being
                zeros; every present page is checked to hold the same bytes
                at its host address.
"""
import ctypes
import fcntl
import json
import mmap
import os
import re
import struct

HOST_PAGE = 4096


class CaptureError(Exception):
    pass


def read(path):
    with open(path) as f:
        return f.read()


def maps(text):
    for line in text.splitlines():
        cols = line.split(None, 5)
        start, end = (int(x, 16) for x in cols[0].split("-"))
        yield start, end, cols[1], int(cols[2], 16), cols[5].strip() if len(cols) > 5 else ""


def capture(out, qpid, host_exe, tids, read_memory):
    """See the module's doc."""
    proc = "/proc/%d" % qpid
    guest_maps = list(maps(read(os.path.join(out, "state.maps"))))

    # guest_base: the one distance between each of the executable's guest
    # mappings and a host mapping of the file at the same offset.
    host_maps = list(maps(read(proc + "/maps")))
    deltas = None
    for g in (m for m in guest_maps if m[4] == host_exe):
        d = {h[0] - g[0] for h in host_maps if h[4] == host_exe and h[3] == g[3]}
        deltas = d if deltas is None else deltas & d
    if not deltas or len(deltas) != 1:
        raise CaptureError("cannot place the guest's mappings of the executable among qemu's: %s" % deltas)
    guest_base = deltas.pop()

    # The zero page's frame: a page of our own read but never written.
    zero = mmap.mmap(-1, HOST_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    zero_addr = ctypes.addressof(ctypes.c_char.from_buffer(zero))
    _ = zero[0]
    PFN = (1 << 55) - 1
    with open("/proc/self/pagemap", "rb") as pm:
        pm.seek(zero_addr // HOST_PAGE * 8)
        zero_pfn = struct.unpack("<Q", pm.read(8))[0] & PFN
    if zero_pfn == 0:
        raise CaptureError("no page frame numbers in /proc/self/pagemap: run as root")

    pages = {}
    with open(proc + "/pagemap", "rb") as pm:
        for start, end, perms, _, _ in guest_maps:
            if perms[0] != "r":
                continue
            n = (end - start) // HOST_PAGE
            pm.seek((start + guest_base) // HOST_PAGE * 8)
            letters = []
            for (e,) in struct.iter_unpack("<Q", pm.read(8 * n)):
                if not e & (3 << 62):  # neither present nor swapped
                    letters.append("-")
                elif e & (1 << 61):  # a file page (or shared anonymous)
                    letters.append("f")
                elif e & (1 << 63) and e & PFN == zero_pfn:
                    letters.append("z")
                else:
                    letters.append("a")
            pages["%x" % start] = "".join(letters)

    libc = ctypes.CDLL(None, use_errno=True)
    # kcmp(2) tells descriptors that share an open file description.
    SYS_KCMP = {"x86_64": 312, "aarch64": 272}.get(os.uname().machine)
    if SYS_KCMP is None:
        raise CaptureError("kcmp's system call number on %s is not known here" % os.uname().machine)

    fds, qemu_fds = {}, {}
    for fd in sorted(os.listdir(proc + "/fd"), key=int):
        target = os.readlink("%s/fd/%s" % (proc, fd))
        if target.startswith("socket:"):
            qemu_fds[fd] = target  # qemu's gdb stub
            continue
        st = os.stat("%s/fd/%s" % (proc, fd))
        info = dict(
            line.split(":\t", 1) for line in read("%s/fdinfo/%s" % (proc, fd)).splitlines() if ":\t" in line
        )
        entry = {
            "target": target,
            "pos": int(info["pos"]),
            "flags": int(info["flags"], 8),
            "mode": st.st_mode,
            "size": st.st_size,
            "ino": st.st_ino,
        }
        for other in fds:
            if libc.syscall(SYS_KCMP, qpid, qpid, 0, int(other), int(fd)) == 0:  # KCMP_FILE
                entry["same_as"] = fds[other].get("same_as", other)
                break
        if target.startswith("pipe:"):
            p = os.open("%s/fd/%s" % (proc, fd), os.O_RDONLY | os.O_NONBLOCK)
            entry["pipe_size"] = fcntl.fcntl(p, 1032)  # F_GETPIPE_SZ
            os.close(p)
        fds[fd] = entry

    host = {
        "status": read(proc + "/status"),
        "limits": read(proc + "/limits"),
        "loginuid": int(read(proc + "/loginuid")),
        "oom_score_adj": int(read(proc + "/oom_score_adj")),
        "personality": read(proc + "/personality").strip(),
        "cwd": os.readlink(proc + "/cwd"),
        "securebits": libc.prctl(27, 0, 0, 0, 0),  # PR_GET_SECUREBITS
        "threads": {str(t): read("%s/task/%d/stat" % (proc, t)) for t in tids},
        "fds": fds,
        "qemu_fds": qemu_fds,
        "guest_base": guest_base,
        "pages": pages,
    }
    with open(os.path.join(out, "host.json"), "w") as f:
        json.dump(host, f, indent=1)

    # The memory, read from the guest after the pagemap, which reading
    # could change.
    os.makedirs(os.path.join(out, "mem"), exist_ok=True)
    with open(proc + "/mem", "rb") as host_mem:
        for start, end, perms, _, path in guest_maps:
            if perms[0] != "r":
                continue
            letters = pages["%x" % start]
            if path.startswith("/"):
                data = read_memory(start, end - start)
            else:
                # Anonymous memory that is not present, or is the zero page,
                # reads as zeros: only the rest is read (a stub reads slowly).
                data = bytearray(end - start)
                for run in re.finditer("[af]+", letters):
                    a, b = run.start() * HOST_PAGE, run.end() * HOST_PAGE
                    data[a:b] = read_memory(start + a, b - a)
                data = bytes(data)
            with open(os.path.join(out, "mem", "%x.bin" % start), "wb") as m:
                m.write(data)
            # guest_base is right: the present pages' bytes are the same at
            # the host address.
            for i, letter in enumerate(letters):
                if letter in "af":
                    host_mem.seek(start + guest_base + i * HOST_PAGE)
                    if host_mem.read(HOST_PAGE) != data[i * HOST_PAGE:(i + 1) * HOST_PAGE]:
                        raise CaptureError("guest page %x is not at host %x" % (start + i * HOST_PAGE,
                                                                              start + guest_base + i * HOST_PAGE))

