#!/usr/bin/env python3
"""Open a core made by criu2core in drgn (0.0.25 or later) as a userspace
program: print the global `secret` and each thread's stack.

usage: drgn-threads.py CORE [SYSROOT]

SYSROOT is where the mapped files live (a container's rootfs); modules are
looked up there by the paths the core's NT_FILE note names.
"""
import os
import sys

import drgn


def main():
    core = sys.argv[1]
    sysroot = sys.argv[2] if len(sys.argv) > 2 else ""
    prog = drgn.Program()
    prog.set_core_dump(core)
    for module, _ in prog.loaded_modules():
        path = sysroot + module.name if module.name.startswith("/") else ""
        if path and os.path.exists(path):
            module.try_file(path)
    try:
        print("secret =", prog["secret"].string_())
    except (KeyError, LookupError):
        pass
    for thread in prog.threads():
        print(thread.tid, [frame.name for frame in thread.stack_trace()][:5])


if __name__ == "__main__":
    main()
