#!/usr/bin/env python3
"""capture.py's capture for an architecture no gdb here knows (loongarch64:
Debian 12's gdb-multiarch 13 has no LoongArch), through qemu-user's gdb
stub alone, speaking the remote serial protocol itself. It writes what
capture.py writes but live.txt (no gdb, no live view): registers.txt,
program.json, host.json and mem/ (hostview.py).

The environment is capture.py's: CAPTURE_DIR, CAPTURE_PORT,
CAPTURE_QEMU_PID, CAPTURE_EXE (the executable, for its symbols).

qemu 7.2's loongarch64 stub numbers its registers (`p` packets, each in
target byte order): 0-31 r0-r31, 32 orig_a0, 33 pc, 34 badv, 35-66 f0-f31,
67 fcc (fcc0-fcc7, one byte each, fcc0 first), 68 fcsr. `p` answers only
once target.xml was read; the xml's own fpu part cannot be read (qemu 7.2
names it loongarch-fpu.xml and serves loongarch-fpu64.xml), which is why
the layout is written here, and checked: `g` must hold 35 registers of 8
bytes, and the sizes below must be those `p` gives.
"""
import json
import os
import socket
import struct
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hostview  # noqa: E402

LOONGARCH64 = (
    [("r%d" % i, 8) for i in range(32)]
    + [("orig_a0", 8), ("pc", 8), ("badv", 8)]
    + [("f%d" % i, 8) for i in range(32)]
    + [("fcc", 8), ("fcsr", 4)]
)


class Stub:
    def __init__(self, port):
        for _ in range(50):
            try:
                self.s = socket.create_connection(("127.0.0.1", int(port)))
                break
            except ConnectionRefusedError:
                time.sleep(0.1)
        else:
            raise hostview.CaptureError("qemu's stub does not answer on port %s" % port)
        self.buf = b""

    def recv(self):
        while True:
            self.buf = self.buf.lstrip(b"+")
            if self.buf.startswith(b"$") and b"#" in self.buf:
                end = self.buf.index(b"#")
                if len(self.buf) >= end + 3:
                    data, self.buf = self.buf[1:end], self.buf[end + 3:]
                    self.s.sendall(b"+")
                    return data.decode()
            elif self.buf and not self.buf.startswith(b"$"):
                raise hostview.CaptureError("unexpected bytes from the stub: %r" % self.buf[:40])
            chunk = self.s.recv(65536)
            if not chunk:
                raise hostview.CaptureError("the stub closed the connection")
            self.buf += chunk

    def ask(self, cmd):
        b = cmd.encode()
        self.s.sendall(b"$" + b + b"#%02x" % (sum(b) & 0xFF))
        reply = self.recv()
        if reply.startswith("E") and len(reply) == 3:
            raise hostview.CaptureError("%s: error %s" % (cmd, reply))
        return reply

    def read(self, addr, length):
        out = bytearray()
        while length:
            n = min(length, 0x7F0)
            out += bytes.fromhex(self.ask("m%x,%x" % (addr, n)))
            addr, length = addr + n, length - n
        return bytes(out)


def symbols(path):
    """name → address of a little-endian ELF64's .symtab."""
    data = open(path, "rb").read()
    if data[:6] != b"\x7fELF\x02\x01":
        raise hostview.CaptureError("%s is not a little-endian ELF64" % path)
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    secs = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    out = {}
    for _, stype, _, _, off, size, link, _, _, entsize in secs:
        if stype != 2:  # SHT_SYMTAB
            continue
        stroff = secs[link][4]
        for i in range(size // entsize):
            name, _, _, _, value, _ = struct.unpack_from("<IBBHQQ", data, off + i * entsize)
            end = data.index(b"\0", stroff + name)
            out[data[stroff + name:end].decode()] = value
    return out


def main():
    out = os.environ["CAPTURE_DIR"]
    exe = os.environ["CAPTURE_EXE"]
    sym = symbols(exe)
    stub = Stub(os.environ["CAPTURE_PORT"])
    stub.ask("qSupported")
    if not stub.ask("qXfer:features:read:target.xml:0,ffff").startswith("l<?xml"):
        raise hostview.CaptureError("no target.xml from the stub")
    if "<architecture>loongarch64</architecture>" not in stub.ask("qXfer:features:read:target.xml:0,ffff"):
        raise hostview.CaptureError("the stub is not loongarch64's")
    if len(stub.ask("g")) != 35 * 16:
        raise hostview.CaptureError("the stub's g packet is not 35 registers of 8 bytes")

    stub.ask("Z0,%x,4" % sym["checkpoint_here"])
    stop = stub.ask("c")
    if not stop.startswith("T05"):
        raise hostview.CaptureError("stopped with %s, not at the breakpoint" % stop)
    stub.ask("z0,%x,4" % sym["checkpoint_here"])
    pc = int.from_bytes(bytes.fromhex(stub.ask("p21")), "little")
    if pc != sym["checkpoint_here"]:
        raise hostview.CaptureError("stopped at %#x, not checkpoint_here" % pc)

    tids = []
    reply = stub.ask("qfThreadInfo")
    while reply.startswith("m"):
        tids += [int(t, 16) for t in reply[1:].split(",")]
        reply = stub.ask("qsThreadInfo")
    current = int(stop.split("thread:")[1].split(";")[0], 16)
    tids.sort(key=lambda t: (t != current, t))

    with open(os.path.join(out, "registers.txt"), "w") as f:
        for t in tids:
            stub.ask("Hg%x" % t)
            f.write("thread %d\n" % t)
            for n, (name, size) in enumerate(LOONGARCH64):
                raw = bytes.fromhex(stub.ask("p%x" % n))
                if len(raw) != size:
                    raise hostview.CaptureError("register %d (%s) is %d bytes, not %d" % (n, name, len(raw), size))
                f.write("%s %d 0x%s\n" % (name, size, raw[::-1].hex()))
    stub.ask("Hg%x" % tids[0])

    def longs(name, n):
        return list(struct.unpack("<%dQ" % n, stub.read(sym[name], 8 * n)))

    program = {
        "tids": longs("thread_tids", 3),
        "thread_pointers": longs("thread_pointers", 3),
        "program_break": longs("program_break", 1)[0],
    }
    with open(os.path.join(out, "program.json"), "w") as f:
        json.dump(program, f, indent=1)

    hostview.capture(out, int(os.environ["CAPTURE_QEMU_PID"]), exe, tids, stub.read)
    stub.s.sendall(b"$k#6b")


if __name__ == "__main__":
    try:
        main()
    except hostview.CaptureError as e:
        sys.exit("capture_rsp.py: %s" % e)
