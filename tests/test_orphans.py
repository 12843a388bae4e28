"""kill -9 of a command's main process (a user's `kill -9 PID`, the OOM killer) leaves nothing
running: its worker processes (``pipelines.pool.exit_with_parent``) and its local Prefect
server (parent-death signal) go with it. Only the main process is killed here, not its group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _children(pid: int) -> dict[int, str]:
    """Live (not zombie) processes whose parent is ``pid``: pid -> command line."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found[int(stat.parent.name)] = cmdline
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _kill_main_and_wait(proc: subprocess.Popen, children: dict[int, str]) -> list[str]:
    """kill -9 the main process only; the children still alive 15 s later."""
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 15
    while any(_alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [cmd for p, cmd in children.items() if _alive(p)]
    for p in children:  # whatever the outcome, leave nothing behind
        if _alive(p):
            os.kill(p, signal.SIGKILL)
    return left


def _wait_for(proc: subprocess.Popen, pred, timeout: float) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the command ended before it could be killed"
        kids = _children(proc.pid)
        if pred(kids):
            return kids
        time.sleep(0.1)
    raise AssertionError(f"not reached within {timeout} s: {_children(proc.pid)}")


def _workers(kids: dict[int, str]) -> int:
    return sum("multiprocessing.spawn" in cmd for cmd in kids.values())


def test_pool_workers_exit_when_their_parent_is_killed():
    script = textwrap.dedent(
        """
        import time
        from pipelines.pool import parallel
        parallel(time.sleep, [(600,), (600,)], workers=2)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    try:
        kids = _wait_for(proc, lambda k: _workers(k) == 2, timeout=60)
        assert _kill_main_and_wait(proc, kids) == []
    finally:
        proc.kill()


@pytest.mark.slow
def test_fineweb_workers_and_server_exit_when_the_command_is_killed(web_warcs, tmp_path):
    """`tokenmill fineweb --workers 2` in local mode, killed mid-run: no worker process and no
    Prefect server survives it."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "home")
    inputs = [str(p) for p in web_warcs]
    args = ["fineweb", "--input", *inputs, "--output", str(tmp_path / "out"), "--workers", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        kids = _wait_for(
            proc,
            lambda k: _workers(k) == 2 and any("prefect server" in c for c in k.values()),
            timeout=300,
        )
        assert _kill_main_and_wait(proc, kids) == []
    finally:
        proc.kill()


@pytest.mark.slow
def test_a_closed_console_pipe_neither_hangs_nor_loses_work(web_warcs, tmp_path):
    """`tokenmill fineweb ... 2>&1 | head -1`: the reader quits while the workers still log.
    The command ends (it used to wait forever: rich raised SystemExit in a worker, which killed
    the process pool's result thread in the command), leaves nothing running, and a re-run
    completes the output from the finished shards."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "home")
    out = tmp_path / "out"
    args = ["fineweb", "--input", *map(str, web_warcs), "--output", str(out), "--workers", "2"]
    cmd = [sys.executable, "-m", "flows.cli", *args]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        for line in proc.stdout:  # the flow's last line before the workers' shard lines:
            if b"input shards" in line:  # then the reader is gone
                break
        proc.stdout.close()
        kids = _children(proc.pid)
        proc.wait(timeout=300)
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in kids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [c for p, c in kids.items() if _alive(p)]
    finally:
        proc.kill()
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(list((out / "stats").glob("*.json"))) == len(web_warcs)
    assert (out / "stats.json").is_file()
