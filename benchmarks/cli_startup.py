"""Start-up cost of `tokenmill fineweb`: wall time of the CLI on a tiny and on a larger input.

    python benchmarks/cli_startup.py [--code DIR --label L ...] [--copies 20] [--repeat 3]
        [--workers 2] [--no-append]

Runs ``python -m flows.cli fineweb`` as a subprocess (interpreter start, imports, Prefect, worker
processes: what a user waits for) with ``PYTHONPATH=DIR`` (default: this checkout; give
``--code``/``--label`` twice, e.g. an older checkout made with ``git archive``, to measure
before and after side by side: the runs alternate between them so both see the same machine
load), on

- the demo sample (``pipelines.sample_pages.write_sample_warc``: the project's own pages), and
- K symlinked copies of the real WARCs in ../shared/data/web (K x 144 records), where start-up
  is amortized,

each into a fresh output directory, median wall of ``--repeat`` runs (alternating inputs).
Reported: wall seconds and documents/s end to end. Appends to benchmarks/RESULTS.md unless
``--no-append``.
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
WEB = REPO.parent / "shared" / "data" / "web"
sys.path.insert(0, str(REPO))

from benchmarks.results import append_bullets  # noqa: E402


def _run(code: Path, inputs: Path, out: Path, workers: int, env: dict) -> float:
    cmd = [
        sys.executable,
        "-m",
        "flows.cli",
        "fineweb",
        "--input",
        str(inputs),
        "--output",
        str(out),
        "--workers",
        str(workers),
    ]
    t0 = time.perf_counter()
    r = subprocess.run(
        cmd,
        cwd=code,
        env={**env, "PYTHONPATH": str(code)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--code", type=Path, action="append", help="checkout whose CLI is timed (repeat)"
    )
    ap.add_argument("--label", action="append", help="its label (repeat, same order)")
    ap.add_argument("--copies", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args()

    from pipelines.sample_pages import write_sample_warc

    work = Path(tempfile.mkdtemp(prefix="cli-startup-"))
    demo = work / "demo"
    demo.mkdir()
    write_sample_warc(demo / "sample.warc.gz")
    big = work / "big"
    big.mkdir()
    warcs = sorted(WEB.glob("*.warc.gz"))
    for k in range(args.copies):
        for p in warcs:
            (big / f"copy{k}-{p.name}").symlink_to(p.resolve())
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    # one fresh-then-warm Prefect home for every run (the old CLI derived it from TOKENMILL_HOME)
    env["PREFECT_HOME"] = str(work / "home" / "prefect")
    (work / "home" / "prefect").mkdir(parents=True)
    env["TOKENMILL_HOME"] = str(work / "home")
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # the database's migrations are a one-time cost of a new PREFECT_HOME (~16 s on an idle
    # machine, minutes on a loaded one): done once, untimed, for both the old and the new CLI
    subprocess.run(
        [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    codes = args.code or [REPO]
    labels = args.label or ["this checkout"]
    if len(labels) != len(codes):
        raise SystemExit("give one --label per --code")
    walls = {(lab, name): [] for lab in labels for name in ("demo", "big")}
    for i in range(args.repeat):
        for name, inp in (("demo", demo / "sample.warc.gz"), ("big", big)):
            order = list(zip(codes, labels, strict=True))
            for code, lab in order if i % 2 == 0 else order[::-1]:
                out = work / f"out-{lab}-{name}-{i}".replace(" ", "_")
                walls[lab, name].append(_run(code, inp, out, args.workers, env))
                print(f"{lab} {name} run {i}: {walls[lab, name][-1]:.1f} s", flush=True)
    import json

    def docs(lab: str, name: str) -> int:
        out = work / f"out-{lab}-{name}-0".replace(" ", "_")
        stats = json.loads((out / "stats.json").read_text())
        return next(iter(stats["stages"].values()))["in"]

    lines = []
    for (lab, name), ws in walls.items():
        med = statistics.median(ws)
        n = docs(lab, name)
        lines.append(
            f"{lab}: {name} ({n} records, {args.workers} workers): wall median "
            f"{med:.1f} s of {args.repeat} ({', '.join(f'{w:.1f}' for w in ws)}),"
            f" {n / med:.1f} docs/s end to end"
        )
    load = os.getloadavg()[0]
    lines.append(f"load average at the end: {load:.1f} (2 cores shared with other jobs)")
    print("\n".join(lines))
    if not args.no_append:
        append_bullets("CLI start-up (`benchmarks/cli_startup.py`)", lines)


if __name__ == "__main__":
    main()
