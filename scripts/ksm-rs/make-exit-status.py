#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""make-exit-status.py PID CODE: make process PID exit with CODE.

GNU make turns any failing recipe into its own exit status 2, but
`make vm CMD=...` promises CMD's exit status. A failing recipe starts this
helper in the background before it exits: it attaches to make with ptrace,
lets it run until it calls exit_group(), puts CODE into the exit code
argument and detaches. Where ptrace is not permitted, make exits 2 as usual
(the recipe has printed the real status). x86_64 only.
"""
import ctypes
import os
import sys

PTRACE_GETREGS, PTRACE_SETREGS, PTRACE_SYSCALL = 12, 13, 24
PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT = 17, 0x4206, 0x4207
PTRACE_O_TRACESYSGOOD = 1
SYS_EXIT, SYS_EXIT_GROUP = 60, 231


class Regs(ctypes.Structure):
    _fields_ = [(n, ctypes.c_ulonglong) for n in (
        "r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax "
        "rip cs eflags rsp ss fs_base gs_base ds es fs gs").split()]


def main():
    pid, code = int(sys.argv[1]), int(sys.argv[2])
    ready_fd = int(sys.argv[3]) if len(sys.argv) > 3 else -1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    ok = libc.ptrace(PTRACE_SEIZE, pid, None, PTRACE_O_TRACESYSGOOD) == 0
    if ready_fd >= 0:
        os.write(ready_fd, b"1" if ok else b"0")
        os.close(ready_fd)
    if not ok:
        return 1
    libc.ptrace(PTRACE_INTERRUPT, pid, None, None)
    sig = 0
    while True:
        _, status = os.waitpid(pid, 0)
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            return 0
        stopsig = os.WSTOPSIG(status)
        if stopsig == (0x80 | 5):           # syscall stop
            regs = Regs()
            libc.ptrace(PTRACE_GETREGS, pid, None, ctypes.byref(regs))
            if regs.orig_rax in (SYS_EXIT, SYS_EXIT_GROUP):
                regs.rdi = code
                libc.ptrace(PTRACE_SETREGS, pid, None, ctypes.byref(regs))
                libc.ptrace(PTRACE_DETACH, pid, None, None)
                return 0
            sig = 0
        elif (status >> 16) != 0 or stopsig == 5:
            sig = 0                         # event or interrupt stop
        else:
            sig = stopsig                   # a real signal: deliver it
        libc.ptrace(PTRACE_SYSCALL, pid, None, sig)


if __name__ == "__main__":
    sys.exit(main())
