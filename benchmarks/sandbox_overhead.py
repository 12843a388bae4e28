"""What the Python sandbox's OS boundary costs per tool call: bubblewrap vs a bare interpreter.

Every side runs the same snippets as a fresh process, one at a time, runs interleaved round-robin
(noise hits every side alike), median of ``--repeat``:

- **bare** (the anchor): ``python -I -B -c CODE`` via ``subprocess.run``: no isolation at all,
  the floor any out-of-process tool call pays (interpreter start-up);
- **bwrap**: ``pipelines.sandbox.run_python`` (namespaces, read-only system view, tmpfs, seccomp,
  rlimits, capped pipes);
- **weak**: the explicitly opted-in fallback (rlimits + audit hook, ``unshare --net`` when it
  works), for comparison.

Snippets: ``pass`` (pure start-up), a CPU loop (``sum(range(10**6))``: does the seccomp filter or
the namespace slow the code itself?) and ``import numpy`` (many file opens through the read-only
binds). ``--record`` appends to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.results import append_bullets  # noqa: E402
from pipelines import sandbox as sb  # noqa: E402

SNIPPETS = {"pass": "pass", "cpu loop": "print(sum(range(10**6)))", "import numpy": "import numpy"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    assert sb.isolation() == "bwrap", "bubblewrap must work here"
    weak_cfg = sb.SandboxConfig(allow_weak_sandbox=True)

    def bare(code: str) -> None:
        subprocess.run([sys.executable, "-I", "-B", "-c", code], check=True, capture_output=True)

    def bwrap(code: str) -> None:
        assert sb.run_python(code).ok

    def weak(code: str) -> None:
        from pipelines.sandbox_weak import weak_argv

        with tempfile.TemporaryDirectory(prefix="tokenmill-bench-") as d:
            Path(d, "main.py").write_text(code)  # the weak path itself, forced: bwrap works here
            r = subprocess.run(
                weak_argv(d, True), cwd=d, capture_output=True, preexec_fn=sb._limits(weak_cfg)
            )
        assert r.returncode == 0, r.stderr[-300:]

    sides = {"bare": bare, "bwrap": bwrap, "weak": weak}
    load0 = os.getloadavg()[0]
    lines = []
    for label, code in SNIPPETS.items():
        # numpy imports ctypes, which the weak mode's audit hook refuses
        run = {k: f for k, f in sides.items() if not (k == "weak" and "numpy" in code)}
        times: dict[str, list[float]] = {k: [] for k in run}
        for _ in range(args.repeat):
            for name, fn in run.items():
                t0 = time.perf_counter()
                fn(code)
                times[name].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) * 1000 for k, v in times.items()}
        lines.append(
            f"`{label}`: bare {med['bare']:.0f} ms, bwrap {med['bwrap']:.0f} ms "
            f"(+{med['bwrap'] - med['bare']:.0f} ms, {med['bwrap'] / med['bare']:.2f}x)"
            + (
                f", weak {med['weak']:.0f} ms"
                if "weak" in med
                else ", weak n/a (its audit hook refuses ctypes, which numpy imports)"
            )
        )
    load1 = os.getloadavg()[0]
    lines.insert(
        0,
        f"sandbox overhead per run, median of {args.repeat}, interleaved; "
        f"load average {load0:.1f} -> {load1:.1f}",
    )
    print("\n".join(lines))
    if args.record:
        append_bullets("sandbox_overhead.py: bubblewrap sandbox vs bare interpreter", lines)


if __name__ == "__main__":
    main()
