"""The WEAK sandbox: only for machines without a working bubblewrap, and only when the caller
explicitly opts in (``SandboxConfig.allow_weak_sandbox`` / ``--allow-weak-sandbox`` /
``TOKENMILL_ALLOW_WEAK_SANDBOX=1``).

It is NOT a security boundary. The code runs as the caller's user, sees the caller's files and
(without ``unshare --net``) the network. What it has: rlimits and the wall-clock kill from
``pipelines.sandbox``, an empty network namespace when ``unshare --net`` works, and a PEP 578
audit hook that refuses obvious mistakes (writes outside the temp dir, sockets, subprocesses).
Audit hooks are bypassable from pure Python (issue 9 lists several ways), so this mode only
guards against a model's accidents, never against deliberate escapes.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys

#: Runs in the child before the user's code: installs the audit hook, then execs main.py.
BOOTSTRAP = r"""
import os, sys
_work = os.path.realpath(sys.argv[1])
_allow_read = tuple(os.path.realpath(p) for p in sys.argv[2].split(os.pathsep) if p)
with open(os.path.join(_work, "main.py"), encoding="utf-8") as _f:
    _src = _f.read()
os.chdir(_work)

def _make_hook():
    class SandboxViolation(PermissionError):
        pass
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    fs_changes = {"os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.link",
                  "os.symlink", "os.truncate", "os.utime", "os.chflags", "os.mkfifo", "os.mknod",
                  "shutil.rmtree", "shutil.move", "shutil.copytree", "os.setxattr",
                  "os.removexattr", "os.rename"}
    process = {"os.system", "os.exec", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn",
               "subprocess.Popen", "os.kill", "os.killpg", "signal.pthread_kill", "pty.spawn",
               "os.startfile", "sys.remote_exec"}
    banned = ("ctypes", "_ctypes", "_posixsubprocess", "_xxsubinterpreters", "_testcapi",
              "_cffi_backend", "cffi")
    work, allow_read = _work, _allow_read

    def real(p):
        return None if isinstance(p, int) else os.path.realpath(os.fsdecode(p))

    def inside(path, roots):
        return any(path == r or path.startswith(r + os.sep) for r in roots)

    def deny(what):
        raise SandboxViolation(f"blocked by sandbox: {what}")

    def hook(event, args):
        if event == "open":
            path = real(args[0])
            if path is None:
                return
            mode, flags = args[1], args[2]
            writing = (mode is not None and any(c in str(mode) for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & write_flags)
            if writing and not inside(path, (work,)):
                deny(f"open({path!r}) for writing outside the sandbox directory")
            if not writing and not inside(path, (work,) + allow_read) and path not in (
                    "/dev/null", "/dev/urandom"):
                deny(f"open({path!r}) for reading")
        elif event in ("os.listdir", "os.scandir", "glob.glob"):
            path = real(args[0] if args and args[0] is not None else ".")
            if path is not None and not inside(path, (work,) + allow_read):
                deny(f"listing {path!r}")
        elif event in fs_changes:
            for p in args[:2] if event in ("os.rename", "os.link", "os.symlink") else args[:1]:
                path = real(p) if isinstance(p, (str, bytes, os.PathLike)) else None
                if path is not None and not inside(path, (work,)):
                    deny(f"{event}({path!r}) outside the sandbox directory")
        elif event.startswith("socket.") or event in process or event.startswith("ctypes."):
            deny(event)
        elif event == "import" and str(args[0]).rsplit(".", 1)[-1] in banned:
            deny(f"import {args[0]}")
    return hook

sys.addaudithook(_make_hook())
del _f, _make_hook
exec(compile(_src, "<sandbox>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
"""


@functools.lru_cache(maxsize=1)
def netns_prefix() -> tuple[str, ...]:
    """The ``unshare`` invocation that gives an empty network namespace here, or () when none."""
    exe = shutil.which("unshare")
    if not exe:
        return ()
    candidates = [(exe, "--net")] if os.geteuid() == 0 else []
    candidates.append((exe, "--net", "--map-current-user"))
    for prefix in candidates:
        try:
            r = subprocess.run([*prefix, "true"], capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.returncode == 0:
            return prefix
    return ()


def weak_argv(work: str, network_namespace: bool) -> list[str]:
    """The child's command line: [unshare --net] python -I -B -c BOOTSTRAP WORK READ_ROOTS."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    read_roots = os.pathsep.join(sorted(r for r in roots if r and r != "/"))
    prefix = netns_prefix() if network_namespace else ()
    return [*prefix, sys.executable, "-I", "-B", "-c", BOOTSTRAP, work, read_roots]
