# Runs inside gdb-multiarch (-x capture.py), attached to qemu-user's gdb stub
# through `target remote`. It stops the test program at checkpoint_here() and
# writes, into $CAPTURE_DIR:
#   registers.txt  per thread: "thread TID", then "NAME SIZE VALUE" for every
#                  raw register (VALUE as gdb prints it: the register's bytes
#                  read as a target-endian number)
#   program.json   what the program recorded of itself: each thread's id,
#                  thread pointer, and the program break
#   host.json      what the host kernel shows of the qemu process, which is
#                  the guest task as far as the kernel knows it (see below)
#   mem/ADDR.bin   the bytes of every readable mapping in state.maps
#   live.txt       what gdb shows of the live process, for the commands in
#                  $CAPTURE_COMMANDS (one per line, "@@NAME" opens a section)
#
# host.json, from /proc/$CAPTURE_QEMU_PID while the guest is stopped: the
# process's status (credentials, capabilities, umask), limits, loginuid,
# oom_score_adj, personality and cwd, each guest thread's stat (nice,
# policy), its open descriptors but qemu's own sockets (target, fdinfo,
# mode, size, inode, pipe size), the securebits this process inherited as
# qemu did, and `pages`: for every readable guest mapping, one letter per
# 4 KiB host page from the host's pagemap of the guest's memory (qemu maps
# guest address A at host address A + guest_base): `a` present or swapped
# and private to the process, `f` a page of the file's page cache, `z` the
# zero page, `-` not present. Needs root (page frame numbers).
import ctypes
import fcntl
import json
import mmap
import os
import struct

import gdb

out = os.environ["CAPTURE_DIR"]
port = os.environ["CAPTURE_PORT"]
qpid = int(os.environ["CAPTURE_QEMU_PID"])
host_exe = os.environ["CAPTURE_EXE"]
proc = "/proc/%d" % qpid
HOST_PAGE = 4096

for c in ["set pagination off", "set width 0", "set height 0", "set confirm off"]:
    gdb.execute(c)
gdb.execute("target remote :" + port)
gdb.execute("break checkpoint_here")
gdb.execute("continue")

inf = gdb.selected_inferior()
threads = sorted(inf.threads(), key=lambda t: t.num)

with open(os.path.join(out, "registers.txt"), "w") as f:
    for t in threads:
        t.switch()
        f.write("thread %d\n" % t.ptid[1])
        raw = gdb.execute("maint print raw-registers", to_string=True)
        hidden, by_number = 0, {}
        for line in raw.splitlines()[1:]:
            cols = line.split()
            if len(cols) < 7 or not cols[-1].startswith("0x"):
                continue
            name, nr, size, value = cols[0], int(cols[1]), cols[4], cols[-1]
            by_number[nr] = (name, size, value)
            if name == "''":
                # Raw registers the target description hides behind pseudo
                # registers (ppc64 vsNh, s390x vNl, all of mips), numbered
                # in order.
                name = "#%d" % hidden
                hidden += 1
            f.write("%s %s %s\n" % (name, size, value))
        # A pseudo register that is a hidden raw register under a name (the
        # cooked register Rel reads raw register Rel, or its low half, as all
        # of mips's do) is written under that name too.
        cooked = gdb.execute("maint print cooked-registers", to_string=True)
        for line in cooked.splitlines()[1:]:
            cols = line.split()
            if len(cols) < 7 or not cols[-1].startswith("0x"):
                continue
            name, nr, rel, size, value = cols[0], int(cols[1]), int(cols[2]), cols[4], cols[-1]
            if nr in by_number or name == "''":
                continue
            raw_name, raw_size, raw_value = by_number.get(rel, (None, "0", "0x0"))
            # mips's 32-bit fsr and fir read the low half of 64-bit raw ones.
            low = int(raw_value, 16) & ((1 << 8 * int(size)) - 1)
            if raw_name == "''" and int(size) <= int(raw_size) and int(value, 16) == low:
                f.write("%s %s %s\n" % (name, size, value))
threads[0].switch()


def value(expr):
    return int(gdb.parse_and_eval(expr))


program = {
    "tids": [value("thread_tids[%d]" % i) for i in range(3)],
    "thread_pointers": [value("(unsigned long)thread_pointers[%d]" % i) for i in range(3)],
    "program_break": value("(unsigned long)program_break"),
}
with open(os.path.join(out, "program.json"), "w") as f:
    json.dump(program, f, indent=1)


def read(path):
    with open(path) as f:
        return f.read()


def maps(text):
    for line in text.splitlines():
        cols = line.split(None, 5)
        start, end = (int(x, 16) for x in cols[0].split("-"))
        yield start, end, cols[1], int(cols[2], 16), cols[5].strip() if len(cols) > 5 else ""


guest_maps = list(maps(read(os.path.join(out, "state.maps"))))

# guest_base: the host address of the executable's first mapping less its
# guest address.
host_maps = list(maps(read(proc + "/maps")))
g = next(m for m in guest_maps if m[4] == host_exe and m[3] == 0)
h = [m for m in host_maps if m[4] == host_exe and m[3] == 0]
if len(h) != 1:
    raise gdb.GdbError("cannot find the executable's first mapping among qemu's: %s" % h)
guest_base = h[0][0] - g[0]

# The zero page's frame: a page of our own read but never written.
zero = mmap.mmap(-1, HOST_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
zero_addr = ctypes.addressof(ctypes.c_char.from_buffer(zero))
_ = zero[0]
PFN = (1 << 55) - 1
with open("/proc/self/pagemap", "rb") as pm:
    pm.seek(zero_addr // HOST_PAGE * 8)
    zero_pfn = struct.unpack("<Q", pm.read(8))[0] & PFN
if zero_pfn == 0:
    raise gdb.GdbError("no page frame numbers in /proc/self/pagemap: run as root")

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
    raise gdb.GdbError("kcmp's system call number on %s is not known here" % os.uname().machine)

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
    "threads": {str(t.ptid[1]): read("%s/task/%d/stat" % (proc, t.ptid[1])) for t in threads},
    "fds": fds,
    "qemu_fds": qemu_fds,
    "guest_base": guest_base,
    "pages": pages,
}
with open(os.path.join(out, "host.json"), "w") as f:
    json.dump(host, f, indent=1)

# The memory, read through qemu's stub after the pagemap, which reading
# through the stub could change.
os.makedirs(os.path.join(out, "mem"), exist_ok=True)
with open(proc + "/mem", "rb") as host_mem:
    for start, end, perms, _, _ in guest_maps:
        if perms[0] != "r":
            continue
        data = bytes(inf.read_memory(start, end - start))
        with open(os.path.join(out, "mem", "%x.bin" % start), "wb") as m:
            m.write(data)
        # guest_base is right: the present pages' bytes are the same at
        # the host address.
        for i, letter in enumerate(pages["%x" % start]):
            if letter in "af":
                host_mem.seek(start + guest_base + i * HOST_PAGE)
                if host_mem.read(HOST_PAGE) != data[i * HOST_PAGE:(i + 1) * HOST_PAGE]:
                    raise gdb.GdbError("guest page %x is not at host %x" % (start + i * HOST_PAGE,
                                                                          start + guest_base + i * HOST_PAGE))

with open(os.path.join(out, "live.txt"), "w") as f:
    for c in open(os.environ["CAPTURE_COMMANDS"]).read().splitlines():
        if not c.strip():
            continue
        if c.startswith("@@"):
            f.write(c + "\n")
            continue
        try:
            f.write(gdb.execute(c, to_string=True))
        except gdb.error as e:
            f.write("error: %s\n" % e)

gdb.execute("kill")
