"""Run untrusted Python (model-written tool calls) behind an OS boundary: bubblewrap.

``run_python(code)`` never raises for anything the code does; it returns a ``SandboxResult`` whose
status fields (``exit_status``, ``timed_out``, ``*_truncated``, ``error``) are decided by this
process from what the kernel reported, never parsed from the code's output, so printing
"timeout" or a fake traceback to stderr cannot pose as the sandbox's verdict.

The boundary (``/usr/bin/bwrap``, Debian package ``bubblewrap``):

* fresh user, mount, pid, network, ipc, uts and cgroup namespaces (``--unshare-all``), running as
  uid/gid 65534 with every capability dropped, no nested user namespaces, a new session (no
  terminal injection), and ``--die-with-parent``. Outside its namespace that uid is the caller's
  (root when the caller is root, as bwrap maps it): harmless because the code can name no host
  process, file or socket, but it is why process limits come from seccomp, not RLIMIT_NPROC;
* a filesystem built from nothing: ``/usr`` (and the ``/bin``, ``/lib*`` links) and the Python
  installation read-only, a private ``/proc`` and minimal ``/dev`` (read-only), a synthesized
  ``/etc/passwd``/``/etc/group``, and one writable path, ``/sandbox``: a size-capped tmpfs that is
  the working directory, ``HOME`` and ``TMPDIR``. No host ``/home``, ``/root``, ``/tmp``, repo or
  ``/etc``; nothing written survives the run or reaches the host's disk;
* an empty network namespace (no interface up; abstract AF_UNIX sockets are per namespace) and
  no visible host sockets, processes or pids;
* a seccomp filter (``pipelines.sandbox_seccomp``): no new processes (fork bombs, subprocess,
  os.system fail with EPERM; threads work), no ptrace, mounts, namespace changes, bpf, ...;
* rlimits: CPU seconds, address space (so allocations fail with MemoryError), file size, open
  files, core dumps, and ``RLIMIT_NPROC`` where the kernel applies it (not to uid 0);
* a wall-clock limit: the sandbox's init (pid 1 of its pid namespace, host pid from bwrap's
  ``--info-fd``) is SIGKILLed, the kernel kills every process left in the namespace, and
  ``run_python`` returns only once they are gone; if the caller itself dies, bwrap and with it
  the namespace die too (``--die-with-parent``);
* output limits: stdout and stderr are read concurrently (no pipe deadlock) and capped; past the
  cap the run is killed and the stream marked truncated.

Where bwrap is missing or does not work (probed once per process), ``run_python`` raises
``SandboxUnavailable`` unless the caller opted into the WEAK mode explicitly
(``SandboxConfig.allow_weak_sandbox``, ``TOKENMILL_ALLOW_WEAK_SANDBOX=1``): see
``pipelines.sandbox_weak``, which is a tripwire, not a boundary.
"""

from __future__ import annotations

import functools
import logging
import os
import resource
import select
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from pipelines.tool_output import clean_tool_output
from schemas.strict import StrictModel

log = logging.getLogger(__name__)

WEAK_ENV = "TOKENMILL_ALLOW_WEAK_SANDBOX"
SANDBOX_DIR = "/sandbox"
SANDBOX_UID = 65534
_CHILD_ENV = {
    "PATH": "/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONIOENCODING": "utf-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


class SandboxUnavailable(PermissionError):
    """bubblewrap cannot isolate code here and the weak mode was not explicitly allowed: running
    the code is refused (a PermissionError, so the CLI reports it as one line)."""


def _weak_from_env() -> bool:
    return os.environ.get(WEAK_ENV, "").strip().lower() in ("1", "true", "yes")


def allow_weak_sandbox() -> None:
    """``--allow-weak-sandbox``: every ``SandboxConfig`` made after this in this process (and its
    children) defaults to accepting the weak mode; explicit config values still win."""
    os.environ[WEAK_ENV] = "1"


#: The CLI flag's help, shared by every command that runs model-written code.
WEAK_FLAG_HELP = (
    "DANGER: where bubblewrap is missing or broken, run model-written code with only "
    "rlimits and an audit hook (NOT a security boundary) instead of refusing"
)


class SandboxConfig(StrictModel):
    """Limits of one ``run_python`` call (defaults suit short model-written snippets)."""

    timeout_s: float = Field(
        5.0, gt=0, description="wall clock; the whole process tree is killed after it"
    )
    memory_mb: int = Field(256, ge=32, description="RLIMIT_AS of the code (address space)")
    max_output_bytes: int = Field(
        1_000_000, ge=1, description="cap on captured stdout and on stderr each"
    )
    max_file_bytes: int = Field(
        16 * 1024**2, ge=1, description="RLIMIT_FSIZE: largest file it may write"
    )
    disk_mb: int = Field(64, ge=1, description="size of the writable tmpfs /sandbox (bwrap mode)")
    max_open_files: int = Field(64, ge=16, description="RLIMIT_NOFILE")
    max_processes: int = Field(
        16,
        ge=1,
        description="RLIMIT_NPROC headroom over the caller's own tasks "
        "(threads); not applied by the kernel to root, where seccomp refuses forks",
    )
    allow_weak_sandbox: bool = Field(
        default_factory=_weak_from_env,
        description=f"DANGER: without a working bubblewrap, run code with only rlimits and an audit hook "
        f"(no OS boundary) instead of refusing; default from ${WEAK_ENV}",
    )
    network_namespace: bool = Field(
        True, description="weak mode only: use `unshare --net` when it works"
    )


@dataclass(frozen=True)
class SandboxResult:
    """What happened, decided by the caller's process. ``output``/``stderr`` are the code's own
    streams (valid UTF-8, special-token markers escaped); ``error`` is None on success, else the
    sandbox's verdict: "timeout: ...", "output limit exceeded ...", "exit status N ..."."""

    ok: bool
    output: str
    error: str | None = None
    returncode: int | None = None
    stderr: str = ""
    timed_out: bool = False
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    isolation: str = "bwrap"

    @property
    def stdout(self) -> str:
        return self.output

    @property
    def exit_status(self) -> int | None:
        return self.returncode

    def tool_output(self) -> str:
        """The text a model sees: stdout, then stderr and the verdict in brackets when not clean."""
        extra = [f"[stderr]\n{self.stderr.rstrip()}"] if self.stderr.strip() else []
        if self.error:
            extra.append(f"[sandbox: {self.error}]")
        if not extra:
            return self.output
        head = self.output if not self.output or self.output.endswith("\n") else self.output + "\n"
        return head + "\n".join(extra)


def _python_roots() -> list[str]:
    """Directories that hold the interpreter and its libraries, minus those inside /usr."""
    roots = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        os.path.dirname(os.path.realpath(sys.executable)),
    }
    roots = {os.path.realpath(r) for r in roots if r}
    roots = {r for r in roots if r != "/" and not (r + "/").startswith("/usr/")}
    return sorted(r for r in roots if not any(r != o and r.startswith(o + "/") for o in roots))


def _system_args() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for root in _python_roots():
        args += ["--ro-bind", root, root]
    return args + ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


@functools.lru_cache(maxsize=4)
def _bwrap_help(bwrap: str) -> str:
    """bwrap's option list: newer options (0.7+: --size, 0.8+: --disable-userns) are used when
    present; without them seccomp still refuses new namespaces and RLIMIT_FSIZE bounds files."""
    try:
        out = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout + out.stderr


def _bwrap_command(
    bwrap: str, code: str, cfg: SandboxConfig, info_fd: int | None = None
) -> tuple[list[str], list[int]]:
    """The bwrap command line for ``code``, and the fds it reads (code, passwd, group, seccomp);
    bwrap writes the sandbox init's host pid to ``info_fd``."""
    from pipelines.sandbox_seccomp import filter_bpf

    bpf = filter_bpf()  # first: it may raise, and no fd is open yet
    code_fd = _memfd("main.py", code.encode("utf-8", "surrogatepass"))
    passwd_fd = _memfd(
        "passwd",
        f"sandbox:x:{SANDBOX_UID}:{SANDBOX_UID}:sandbox:{SANDBOX_DIR}:/usr/sbin/nologin\n".encode(),
    )
    group_fd = _memfd("group", f"sandbox:x:{SANDBOX_UID}:\n".encode())
    seccomp_fd = _memfd("seccomp", bpf)
    env = {**_CHILD_ENV, "HOME": SANDBOX_DIR, "TMPDIR": SANDBOX_DIR, "USER": "sandbox"}
    argv = [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_UID),
        "--hostname",
        "sandbox",
    ]
    features = _bwrap_help(bwrap)
    if "--disable-userns" in features:
        argv.append("--disable-userns")
    if info_fd is not None:
        argv += ["--info-fd", str(info_fd)]
    argv += _system_args()
    argv += ["--proc", "/proc", "--dev", "/dev"]
    if "--size" in features:
        argv += ["--size", str(cfg.disk_mb * 1024 * 1024)]
    argv += [
        "--tmpfs",
        SANDBOX_DIR,
        "--file",
        str(code_fd),
        f"{SANDBOX_DIR}/main.py",
        "--ro-bind-data",
        str(passwd_fd),
        "/etc/passwd",
        "--ro-bind-data",
        str(group_fd),
        "/etc/group",
        "--chdir",
        SANDBOX_DIR,
        "--remount-ro",
        "/dev",
        "--remount-ro",
        "/",
        "--seccomp",
        str(seccomp_fd),
        "--clearenv",
    ]
    for k, v in env.items():
        argv += ["--setenv", k, v]
    argv += ["--", sys.executable, "-I", "-B", f"{SANDBOX_DIR}/main.py"]
    return argv, [code_fd, passwd_fd, group_fd, seccomp_fd]


def _user_tasks() -> int:
    """Tasks (threads included) of this real uid: what RLIMIT_NPROC counts against."""
    uid, total = str(os.getuid()), 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fields = dict(
                ln.split(":", 1)
                for ln in Path(f"/proc/{pid}/status").read_text().splitlines()
                if ":" in ln
            )
        except OSError:
            continue
        if fields.get("Uid", "").split()[:1] == [uid]:
            total += int(fields.get("Threads", "1").strip() or 1)
    return total


def _limits(cfg: SandboxConfig):
    """rlimits applied in the child before exec (inherited by everything in the sandbox)."""
    nproc = None if os.getuid() == 0 else _user_tasks() + cfg.max_processes + 4

    def apply() -> None:
        cpu = max(1, int(cfg.timeout_s) + 1)
        mem = cfg.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_FSIZE, (cfg.max_file_bytes, cfg.max_file_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (cfg.max_open_files, cfg.max_open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))

    return apply


@functools.lru_cache(maxsize=1)
def _probe_bwrap() -> str | None:
    """None when bwrap isolates code here (a trivial program runs inside), else why not."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return "bwrap not found on PATH (install it: apt-get install -y bubblewrap)"
    try:
        argv, fds = _bwrap_command(bwrap, "print('ok')", SandboxConfig())
    except Exception as e:  # noqa: BLE001 - libseccomp missing, memfd unsupported, ...
        return f"cannot build the sandbox: {e}"
    try:
        r = subprocess.run(
            argv,
            capture_output=True,
            timeout=30,
            pass_fds=fds,
            env=dict(_CHILD_ENV),
            preexec_fn=_limits(SandboxConfig()),
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"bwrap failed to start: {e}"
    finally:
        for fd in fds:
            os.close(fd)
    if r.returncode != 0 or r.stdout != b"ok\n":
        detail = r.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"bwrap does not work here (exit {r.returncode}): {detail[-1] if detail else 'no output'}"
    return None


def isolation(config: SandboxConfig | None = None) -> str:
    """'bwrap' when code runs behind the OS boundary, 'weak' when the caller allowed the fallback;
    raises ``SandboxUnavailable`` otherwise."""
    problem = _probe_bwrap()
    if problem is None:
        return "bwrap"
    cfg = config or SandboxConfig()
    if not cfg.allow_weak_sandbox:
        raise SandboxUnavailable(
            f"refusing to run model-written code: {problem}. Install bubblewrap, or accept a sandbox "
            f"that is NOT a security boundary with --allow-weak-sandbox / {WEAK_ENV}=1 / "
            f"sandbox.allow_weak_sandbox=true"
        )
    _warn_weak(problem)
    return "weak"


@functools.cache
def _warn_weak(problem: str) -> None:
    log.warning(
        "WEAK SANDBOX: %s; running code with rlimits and an audit hook only (no OS boundary)",
        problem,
    )


@dataclass
class _Streams:
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    timed_out: bool = False


class _Child:
    """A started sandbox. In bwrap mode ``--info-fd`` tells the host pid of the sandbox's init
    (pid 1 of its pid namespace): killing *that* makes the kernel kill every process in the
    namespace, and bwrap exits only after init has (init's exit waits for the namespace to be
    empty), so once ``reap`` returns nothing of the run is left. Killing bwrap itself would
    return before the namespace is gone (init dies later, by its parent-death signal)."""

    def __init__(self, proc: subprocess.Popen, info_fd: int | None):
        self.proc, self.info_fd = proc, info_fd
        self.sandbox_pid: int | None = None

    def _read_sandbox_pid(self) -> int | None:
        if self.sandbox_pid is None and self.info_fd is not None:
            import json

            data, end = b"", time.monotonic() + 2
            while not data.rstrip().endswith(b"}") and time.monotonic() < end:
                ready, _, _ = select.select([self.info_fd], [], [], 0.1)
                if ready:
                    chunk = os.read(self.info_fd, 4096)
                    if not chunk:
                        break
                    data += chunk
            try:
                self.sandbox_pid = int(json.loads(data)["child-pid"])
            except (ValueError, KeyError, TypeError):
                self.sandbox_pid = None
        return self.sandbox_pid

    def kill(self) -> None:
        if self.proc.returncode is not None:
            return
        pid = self._read_sandbox_pid()
        if pid is None:
            self.killpg()
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def killpg(self) -> None:
        """SIGKILL the process group bwrap (or the weak child) leads (``start_new_session``)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def reap(self) -> int:
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.killpg()
            return self.proc.wait()

    def close(self) -> None:
        if self.info_fd is not None:
            os.close(self.info_fd)
            self.info_fd = None


def _collect(child: _Child, cfg: SandboxConfig) -> _Streams:
    """Read stdout and stderr together (no pipe deadlock) until both close, a stream passes the
    cap (kill) or the wall clock runs out (kill, ``timed_out``)."""
    proc = child.proc
    got = _Streams()
    sel = selectors.DefaultSelector()
    for name, f in (("stdout", proc.stdout), ("stderr", proc.stderr)):
        os.set_blocking(f.fileno(), False)
        sel.register(f.fileno(), selectors.EVENT_READ, name)
    deadline = time.monotonic() + cfg.timeout_s
    killed_at: float | None = None
    exited_at: float | None = None
    while sel.get_map():
        now = time.monotonic()
        if killed_at is None and exited_at is None:
            if now >= deadline:
                got.timed_out = True
                child.kill()
                killed_at = now
            elif proc.poll() is not None:
                exited_at = now
        if (killed_at is not None and now - killed_at > 5) or (
            exited_at is not None and now - exited_at > 1
        ):
            break  # only a weak-mode escapee can hold the pipes this long: never hang on it
        wait = 0.1 if killed_at is not None or exited_at is not None else min(0.1, deadline - now)
        for key, _ in sel.select(timeout=max(0.0, wait)):
            try:
                data = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            if not data:
                sel.unregister(key.fd)
                continue
            name = key.data
            have = getattr(got, name)
            room = cfg.max_output_bytes - len(have)
            setattr(got, name, have + data[: max(0, room)])
            if len(data) > room and not getattr(got, f"{name}_truncated"):
                setattr(got, f"{name}_truncated", True)
                if killed_at is None:
                    child.kill()
                    killed_at = time.monotonic()
    sel.close()
    if killed_at is None and exited_at is None:  # both streams closed, the code may still run
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            got.timed_out = True
            child.kill()
    return got


def _verdict(rc: int, got: _Streams, cfg: SandboxConfig) -> str | None:
    if got.timed_out:
        return f"timeout: killed after {cfg.timeout_s:g}s wall clock"
    if got.stdout_truncated or got.stderr_truncated:
        return f"output limit exceeded ({cfg.max_output_bytes} bytes): killed"
    if rc == 0:
        return None
    sig = -rc if rc < 0 else rc - 128 if 128 < rc < 128 + 65 else 0
    if sig:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hint = " (cpu time limit)" if sig == signal.SIGXCPU else ""
        return f"exit status {rc}: killed by {name}{hint}"
    return f"exit status {rc}"


def run_python(
    code: str, timeout_s: float = 5.0, memory_mb: int = 256, config: SandboxConfig | None = None
) -> SandboxResult:
    """Run ``code`` in the sandbox (see the module docstring); stdout is the output."""
    cfg = config or SandboxConfig(timeout_s=timeout_s, memory_mb=memory_mb)
    mode = isolation(cfg)
    tmp: str | None = None
    fds: list[int] = []
    info_r: int | None = None
    try:
        if mode == "bwrap":
            info_r, info_w = os.pipe()
            fds.append(info_w)
            argv, more = _bwrap_command(shutil.which("bwrap") or "bwrap", code, cfg, info_w)
            fds += more
            cwd = "/"
        else:
            from pipelines.sandbox_weak import weak_argv

            tmp = tempfile.mkdtemp(prefix="tokenmill-sandbox-")
            Path(tmp, "main.py").write_text(code, encoding="utf-8", errors="surrogatepass")
            argv, cwd = weak_argv(tmp, cfg.network_namespace), tmp
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=dict(_CHILD_ENV),
                start_new_session=True,
                preexec_fn=_limits(cfg),
                pass_fds=fds,
            )
        except OSError as e:
            return SandboxResult(
                False, "", f"could not start the sandbox: {e}", None, isolation=mode
            )
        for fd in fds:
            os.close(fd)
        fds = []
        child = _Child(proc, info_r)
        info_r = None
        with proc:
            try:
                got = _collect(child, cfg)
                if mode == "weak":
                    child.killpg()  # children it left in its group (setsid ones escape: weak)
                rc = child.reap()
            finally:
                child.close()
    finally:
        for fd in fds + ([info_r] if info_r is not None else []):
            os.close(fd)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    error = _verdict(rc, got, cfg)
    return SandboxResult(
        error is None,
        clean_tool_output(got.stdout),
        error,
        rc,
        clean_tool_output(got.stderr),
        got.timed_out,
        got.stdout_truncated,
        got.stderr_truncated,
        mode,
    )
