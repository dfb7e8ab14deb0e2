# Runs inside gdb-multiarch (-x capture.py), attached to qemu-user's gdb stub
# through `target remote`. It stops the test program at checkpoint_here() and
# writes, into $CAPTURE_DIR:
#   registers.txt  per thread: "thread TID", then "NAME SIZE VALUE" for every
#                  raw register (VALUE as gdb prints it: the register's bytes
#                  read as a target-endian number)
#   program.json   what the program recorded of itself: each thread's id,
#                  thread pointer, and the program break
#   host.json,     what the host kernel shows of the qemu process, and the
#   mem/ADDR.bin   bytes of every readable mapping (hostview.py)
#   live.txt       what gdb shows of the live process, for the commands in
#                  $CAPTURE_COMMANDS (one per line, "@@NAME" opens a section)
import json
import os
import sys

import gdb

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hostview  # noqa: E402

out = os.environ["CAPTURE_DIR"]
port = os.environ["CAPTURE_PORT"]
qpid = int(os.environ["CAPTURE_QEMU_PID"])
host_exe = os.environ["CAPTURE_EXE"]

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


hostview.capture(out, qpid, host_exe, [t.ptid[1] for t in threads],
                 lambda start, length: bytes(inf.read_memory(start, length)))

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
