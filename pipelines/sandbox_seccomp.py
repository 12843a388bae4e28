"""The seccomp filter of the bubblewrap sandbox: no new processes, no kernel attack surface.

Why a filter on top of the namespaces: when the caller is root, the sandbox's uid 65534 maps to
the host's uid 0, and the kernel never applies ``RLIMIT_NPROC`` to uid 0, so rlimits alone
cannot stop a fork bomb. The filter makes process creation fail with ``EPERM`` for everyone:
``fork``/``vfork``, ``clone`` without ``CLONE_THREAD`` (threads still work) and ``clone3``
(answered ``ENOSYS`` so the C library falls back to the checked ``clone``). It also refuses the
calls a contained program never needs and exploits like: ptrace and cross-process memory access,
(u)mounts, namespace changes, kernel keyrings, bpf, perf, userfaultfd, io_uring, module loading,
and sockets of any family but ``AF_UNIX`` (the network namespace is empty anyway).

The BPF program is compiled by libseccomp (``libseccomp.so.2``, on every Debian/Ubuntu system as a
dependency of apt) through ctypes; bubblewrap loads it with ``--seccomp FD`` just before it execs
Python. Non-native syscall ABIs (x86 ``int 0x80``, x32) are killed by libseccomp's default.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import socket

_ACT_ALLOW = 0x7FFF0000
_CMP_NE = 1
_CMP_MASKED_EQ = 7
_CLONE_THREAD = 0x00010000

#: Syscalls refused outright (EPERM). Missing names (other architectures) are skipped.
DENIED = (
    "fork",
    "vfork",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsmount",
    "fsconfig",
    "fspick",
    "mount_setattr",
    "unshare",
    "setns",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "syslog",
    "lookup_dcookie",
    "open_by_handle_at",
    "name_to_handle_at",
    "personality",
)


class SeccompUnavailable(RuntimeError):
    """libseccomp could not be loaded or could not build the filter."""


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def _errno_action(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


def _lib() -> ctypes.CDLL:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as e:
        raise SeccompUnavailable(f"libseccomp not found ({e}); install libseccomp2") from e
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


@functools.lru_cache(maxsize=1)
def filter_bpf() -> bytes:
    """The compiled filter (raw ``struct sock_filter`` array), built once per process."""
    lib = _lib()
    ctx = lib.seccomp_init(_ACT_ALLOW)
    if not ctx:
        raise SeccompUnavailable("seccomp_init failed")
    try:

        def rule(action: int, name: str, *cmps: tuple[int, int, int, int]) -> None:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr < 0:
                return  # not a syscall on this architecture
            arr = (_ArgCmp * max(1, len(cmps)))(*[_ArgCmp(*c) for c in cmps])
            rc = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), arr)
            if rc < 0:
                raise SeccompUnavailable(f"seccomp rule for {name} failed: {os.strerror(-rc)}")

        eperm = _errno_action(errno.EPERM)
        for name in DENIED:
            rule(eperm, name)
        # clone: only threads (CLONE_THREAD set) are allowed.
        rule(eperm, "clone", (0, _CMP_MASKED_EQ, _CLONE_THREAD, 0))
        rule(_errno_action(errno.ENOSYS), "clone3")
        rule(_errno_action(errno.EAFNOSUPPORT), "socket", (0, _CMP_NE, socket.AF_UNIX, 0))
        read_fd, write_fd = os.pipe()
        try:
            rc = lib.seccomp_export_bpf(ctx, write_fd)
            os.close(write_fd)
            write_fd = -1
            if rc < 0:
                raise SeccompUnavailable(f"seccomp_export_bpf failed: {os.strerror(-rc)}")
            chunks = []
            while chunk := os.read(read_fd, 65536):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
    finally:
        lib.seccomp_release(ctx)
