"""Run untrusted Python (model-written tool calls) in a separate, limited process.

``run_python(code)`` never raises for anything the code does: it returns a ``SandboxResult`` with
``ok``, the captured ``output`` (stdout) and a clear ``error`` ("timeout: ...", "memory limit
...", "blocked by sandbox: ...").

Layers, from hard (kernel) to soft (interpreter):

* a fresh process ``sys.executable -I -B`` in its own session/process group; on a wall-clock
  timeout the whole *group* is SIGKILLed, and stray children are killed when the main one ends;
* rlimits: RLIMIT_CPU (CPU seconds), RLIMIT_AS (address space, so huge allocations fail with
  MemoryError), RLIMIT_FSIZE (largest file it may write; stdout/stderr go to capped files, so
  printing forever cannot exhaust the caller's memory), RLIMIT_NOFILE, RLIMIT_CORE=0 and
  RLIMIT_NPROC (fork bombs). Honest caveat: the kernel does not apply RLIMIT_NPROC to root, so
  when the caller runs as root, fork prevention rests on the audit hook below;
* no network: when ``unshare --net`` works (root, or unprivileged user namespaces) the child runs
  in an empty network namespace (only a down loopback), so no socket can reach anything;
  additionally, always, the audit hook refuses to create sockets;
* an audit hook (``sys.addaudithook``, PEP 578) installed before the user code runs: file opens
  for writing and file-system changes (remove, rename, mkdir, chmod...) are refused outside the
  temporary working directory; opens for reading are refused outside an allow-list (the
  temporary directory and the Python installation, so the standard library still imports);
  process creation (fork, exec, spawn, subprocess, os.system), signalling other processes and
  loading ``ctypes``/``_posixsubprocess`` (which could bypass the hook) are refused. Audit hooks
  are a tripwire, not a proof against memory-corruption exploits: the kernel limits are what
  bound time, memory, processes and network.
"""

from __future__ import annotations

import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

#: Runs in the child before the user's code: installs the audit hook, then execs main.py.
_BOOTSTRAP = r'''
import os, sys
_work = os.path.realpath(sys.argv[1])
_allow_read = tuple(os.path.realpath(p) for p in sys.argv[2].split(os.pathsep) if p)
with open(os.path.join(_work, "main.py"), encoding="utf-8") as _f:
    _src = _f.read()
os.chdir(_work)

class SandboxViolation(PermissionError):
    pass

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_FS_CHANGES = {"os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.link",
               "os.symlink", "os.truncate", "os.utime", "os.chflags", "os.mkfifo", "os.mknod",
               "shutil.rmtree", "shutil.move", "shutil.copytree", "os.setxattr", "os.removexattr"}
_PROCESS = {"os.system", "os.exec", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn",
            "subprocess.Popen", "os.kill", "os.killpg", "signal.pthread_kill", "pty.spawn",
            "os.startfile", "sys.remote_exec"}
_BANNED_IMPORTS = {"ctypes", "_ctypes", "_posixsubprocess", "_xxsubinterpreters", "_testcapi"}

def _real(p):
    if isinstance(p, int):
        return None
    return os.path.realpath(os.fsdecode(p))

def _inside(path, roots):
    return any(path == r or path.startswith(r + os.sep) for r in roots)

def _deny(what):
    raise SandboxViolation(f"blocked by sandbox: {what}")

def _hook(event, args):
    if event == "open":
        path = _real(args[0])
        if path is None:
            return
        mode, flags = args[1], args[2]
        writing = (mode is not None and any(c in str(mode) for c in "wax+")) or (
            mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS)
        if writing:
            if not _inside(path, (_work,)):
                _deny(f"open({path!r}) for writing outside the sandbox directory")
        elif not _inside(path, (_work,) + _allow_read) and path not in ("/dev/null", "/dev/urandom"):
            _deny(f"open({path!r}) for reading (not in the sandbox allow-list)")
    elif event in ("os.listdir", "os.scandir", "glob.glob"):
        path = _real(args[0] if args and args[0] is not None else ".")
        if path is not None and not _inside(path, (_work,) + _allow_read):
            _deny(f"listing {path!r}")
    elif event in _FS_CHANGES or event == "os.rename":
        for p in args[:2] if event == "os.rename" else args[:1]:
            path = _real(p) if isinstance(p, (str, bytes, os.PathLike)) else None
            if path is not None and not _inside(path, (_work,)):
                _deny(f"{event}({path!r}) outside the sandbox directory")
    elif event.startswith("socket."):
        _deny(f"network access ({event})")
    elif event in _PROCESS:
        _deny(f"process control ({event})")
    elif event == "import" and args[0] in _BANNED_IMPORTS:
        _deny(f"import {args[0]}")
    elif event.startswith("ctypes."):
        _deny(event)

sys.addaudithook(_hook)
del _f
_code = compile(_src, "<sandbox>", "exec")
_g = {"__name__": "__main__", "__builtins__": __builtins__}
exec(_code, _g)
'''


class SandboxConfig(BaseModel):
    """Limits of one ``run_python`` call (defaults suit short model-written snippets)."""

    timeout_s: float = Field(5.0, description="wall-clock limit; the process group is killed after it")
    memory_mb: int = Field(256, description="RLIMIT_AS of the child (address space)")
    max_output_bytes: int = Field(1_000_000, description="RLIMIT_FSIZE: largest file / captured stdout")
    max_processes: int = Field(1, description="RLIMIT_NPROC (not enforced by the kernel for root)")
    network_namespace: bool = Field(True, description="use `unshare --net` when the kernel allows it")


@dataclass
class SandboxResult:
    ok: bool
    output: str
    error: str | None = None
    returncode: int | None = None


@functools.lru_cache(maxsize=1)
def _netns_prefix() -> tuple[str, ...]:
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


def network_isolation() -> str:
    """'namespace' when children get an empty network namespace, else 'audit-hook'."""
    return "namespace" if _netns_prefix() else "audit-hook"


def _allowed_read_roots() -> list[str]:
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    return sorted(r for r in roots if r and r != "/")


def _limits(cfg: SandboxConfig):
    def apply() -> None:
        cpu = max(1, int(cfg.timeout_s) + 1)
        mem = cfg.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_FSIZE, (cfg.max_output_bytes, cfg.max_output_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # unshare itself execs (no fork), so one process suffices for the whole chain.
        resource.setrlimit(resource.RLIMIT_NPROC, (cfg.max_processes, cfg.max_processes))

    return apply


def _error_from(returncode: int, stderr: str, timed_out: bool, cfg: SandboxConfig) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    if timed_out:
        return f"timeout: killed after {cfg.timeout_s:g}s wall clock"
    if returncode == -signal.SIGXCPU or returncode == -signal.SIGKILL and not last:
        return "cpu time limit exceeded"
    if returncode == -signal.SIGXFSZ or "File too large" in last:
        return f"output limit exceeded ({cfg.max_output_bytes} bytes)"
    if "MemoryError" in last or "Cannot allocate memory" in stderr:
        return f"memory limit exceeded ({cfg.memory_mb} MB): {last}"
    if "SandboxViolation" in last:
        return last.split("SandboxViolation: ", 1)[-1]
    if returncode < 0:
        return f"killed by signal {signal.Signals(-returncode).name}"
    return last or f"exit status {returncode}"


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_python(code: str, timeout_s: float = 5.0, memory_mb: int = 256,
               config: SandboxConfig | None = None) -> SandboxResult:
    """Run ``code`` in a limited child process; stdout is the output (see module docstring)."""
    cfg = config or SandboxConfig(timeout_s=timeout_s, memory_mb=memory_mb)
    root = Path(tempfile.mkdtemp(prefix="tokenmill-sandbox-"))
    work = root / "work"
    work.mkdir()
    (work / "main.py").write_text(code, encoding="utf-8")
    prefix = _netns_prefix() if cfg.network_namespace else ()
    argv = [*prefix, sys.executable, "-I", "-B", "-c", _BOOTSTRAP, str(work),
            os.pathsep.join(_allowed_read_roots())]
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}
    timed_out = False
    try:
        with open(root / "stdout", "wb") as out, open(root / "stderr", "wb") as err:
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                        cwd=work, env=env, start_new_session=True,
                                        preexec_fn=_limits(cfg))
            except OSError as e:
                return SandboxResult(False, "", f"could not start the sandbox: {e}")
            deadline = time.monotonic() + cfg.timeout_s
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc.pid)
                proc.wait()
            _kill_group(proc.pid)  # children it may have left behind
        stdout = (root / "stdout").read_bytes().decode("utf-8", "replace")
        stderr = (root / "stderr").read_bytes().decode("utf-8", "replace")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rc = proc.returncode
    if rc == 0 and not timed_out:
        return SandboxResult(True, stdout, None, rc)
    return SandboxResult(False, stdout, _error_from(rc, stderr, timed_out, cfg), rc)
