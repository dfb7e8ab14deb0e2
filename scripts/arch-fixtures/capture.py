# Runs inside gdb-multiarch (-x capture.py), attached to qemu-user's gdb stub
# through `target remote`. It stops the test program at checkpoint_here() and
# writes, into $CAPTURE_DIR:
#   registers.txt  per thread: "thread TID", then "NAME SIZE VALUE" for every
#                  raw register (VALUE as gdb prints it: the register's bytes
#                  read as a target-endian number)
#   mem/ADDR.bin   the bytes of every readable mapping in state.maps
#   live.txt       what gdb shows of the live process, for the commands in
#                  $CAPTURE_COMMANDS (one per line, "@@NAME" opens a section)
import os

import gdb

out = os.environ["CAPTURE_DIR"]
port = os.environ["CAPTURE_PORT"]

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
        hidden = 0
        for line in raw.splitlines()[1:]:
            cols = line.split()
            if len(cols) < 7 or not cols[-1].startswith("0x"):
                continue
            name, size, value = cols[0], cols[4], cols[-1]
            if name == "''":
                # Raw halves that the target description hides behind
                # pseudo registers (ppc64 vsNh, s390x vNl), numbered in order.
                name = "#%d" % hidden
                hidden += 1
            f.write("%s %s %s\n" % (name, size, value))
threads[0].switch()

os.makedirs(os.path.join(out, "mem"), exist_ok=True)
with open(os.path.join(out, "state.maps")) as maps:
    for line in maps:
        cols = line.split()
        start, end = (int(x, 16) for x in cols[0].split("-"))
        if cols[1][0] != "r":
            continue
        data = inf.read_memory(start, end - start)
        with open(os.path.join(out, "mem", "%x.bin" % start), "wb") as m:
            m.write(bytes(data))

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
