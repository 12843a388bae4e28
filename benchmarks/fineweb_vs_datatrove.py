"""tokenmill's FineWeb pass vs datatrove's FineWeb filtering, side by side on the same WARC files.

    python benchmarks/fineweb_vs_datatrove.py [--input DIR] [--workers 2] [--repeat 3]
        [--extract-timeout 5] [--copies K] [--payload-types http,libmagic] [--no-append]
        [--multilingual | --english-only [--min-records 2000]] [--languages en] [--prefect-server]

``--multilingual`` (issue 13): the input is ``multilingual-news.warc.gz`` alone (real news and blog
pages, mostly German, also English and French), copied until there are at least ``--min-records``
records; decisions are compared on the first copy. ``--languages`` (both sides; default ``en``,
FineWeb's setting) picks what is kept: with ``en`` most pages are removed for their language,
which tokenmill's pre-screen decides before trafilatura; other languages get FineWeb-2's
per-language filters on both sides (see ``_datatrove_fineweb.py``).
``--prefect-server``: tokenmill runs against a running ``prefect server start`` (started once,
before the runs; its CPU during each run is added to tokenmill's) instead of Prefect's local mode,
which starts and stops a temporary server in every run (~7 s of the fixed cost on 2 cores). That
is how tokenmill runs for users who watch runs in the Prefect UI or run deployments.
``--english-only``: the input is every WARC of ``--input`` but ``multilingual-news.warc.gz`` (the
English-only sample: the Common Crawl and dolma pages), copied the same way.

Each repeat runs, in alternating order so neither side always gets the warmer cache:

- anchor: ``benchmarks/_datatrove_fineweb.py`` (WarcReader -> URLFilter -> Trafilatura ->
  LanguageFilter(en) -> Gopher repetition -> Gopher quality -> C4 (no terminal-punct rule) ->
  FineWeb quality, LocalPipelineExecutor with tasks = workers = N)
- both sides: trafilatura's paragraph dedup cache is off (``--trafilatura-dedup on`` for the
  FineWeb recipe's ``deduplicate=True``). datatrove's cache lives per task, so it spans the files
  of a task, and on copied input datatrove extracted nothing from a page it had seen in an
  earlier copy and ran no language ID or quality filter on it (at 2,014 English-only records
  it ran them on 374 documents, tokenmill on 1,908, which resets the cache per shard): a saving
  the copies create and distinct pages would not. Entries before 2026-12-03 17:30 UTC were
  measured with the cache on.
- ours, once per read mode: ``python -m flows.cli fineweb --input DIR --output OUT --workers N
  --languages en --payload-type MODE``. ``http`` is tokenmill's default (records without
  ``WARC-Identified-Payload-Type`` are typed by their HTTP Content-Type); ``libmagic`` is
  datatrove's WarcReader rule (libmagic sniffs the payload): the "same settings" comparison.

each as a subprocess, timed end to end (interpreter start, imports, Prefect's temporary server,
datatrove's blocklist load: what a user waits for). A psutil sampler (every 50 ms) follows each
process tree and records each process's peak RSS and the tree's peak total RSS.

Reported: documents/second (WARC response records / wall seconds, median over repeats) for each
side, end to end and steady-state (start-up subtracted: each repeat also runs both commands on 2
one-document WARC files, the sides' fixed cost; steady-state = (documents - 2) / (wall - that
wall)), CPU seconds of each process tree and steady-state CPU ms per document, the ratios
ours/anchor, peak RSS, seconds and docs/s per stage, and for each read mode the
keep/drop agreement over every input document (by WARC-Record-ID) with every disagreeing URL and
both sides' reasons. Appends a dated entry to ``benchmarks/RESULTS.md`` unless ``--no-append``.

In-pipeline seconds: datatrove's ``executor.run()`` (worker start, blocklist load, processing);
ours ``stats.json`` seconds: from the start of the flow body (inputs listed, shard task runs
submitted) to its end (``flows/fineweb.py``).

Extraction time limit: FineWeb uses 1 s. datatrove enforces it in a sandbox process whose start-up
and warm-up must also fit in that 1 s; on a loaded 2-core machine that fails, and every document
then times out in a cascade. Both sides therefore get ``--extract-timeout`` (default 5 s) so the
decisions compared are about content, not machine load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
DEFAULT_INPUT = REPO.parent / "shared" / "data" / "web"
sys.path.insert(0, str(REPO))

from benchmarks.results import MACHINE  # noqa: E402
from benchmarks.results import append_results as write_results  # noqa: E402

# --- running one side -------------------------------------------------------------------------


class TreeSampler:
    """Samples the RSS of a process and all its descendants until stopped."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak_by_pid: dict[int, int] = {}
        self.names: dict[int, str] = {}
        self.peak_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                break
            total = 0
            for p in procs:
                try:
                    rss = p.memory_info().rss
                except psutil.Error:
                    continue
                total += rss
                if rss > self.peak_by_pid.get(p.pid, 0):
                    self.peak_by_pid[p.pid] = rss
            self.peak_total = max(self.peak_total, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _children_cpu() -> float:
    """CPU seconds (user + system) of every reaped descendant of this process so far."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


#: ``--prefect-server``: {"proc": psutil.Process, "url": ..., "home": ...} of the running server
PREFECT_SERVER: dict = {}


def _tree_cpu(proc: psutil.Process) -> float:
    """User + system CPU seconds of a running process and its live children."""
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def start_prefect_server(work: Path) -> subprocess.Popen:
    """``prefect server start`` on a free port with its own PREFECT_HOME under ``work``
    (``tests.prefect_server.start_server``): the way users who watch runs in the UI (or run
    deployments) run tokenmill. Waits until healthy."""
    from tests.prefect_server import start_server

    home = work / "prefect-home"
    home.mkdir(parents=True, exist_ok=True)
    proc, env = start_server(home)
    PREFECT_SERVER.update(
        proc=psutil.Process(proc.pid), url=env["PREFECT_API_URL"], home=env["PREFECT_HOME"]
    )
    return proc


def run_side(cmd: list[str], log: Path, timeout: float) -> dict:
    """Run ``cmd``; wall seconds, CPU seconds of the whole process tree (every descendant is
    reaped by its parent, so ``RUSAGE_CHILDREN`` counts them all), peak RSS of the largest
    process and of the whole tree (MiB)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    server = PREFECT_SERVER.get("proc") if "flows.cli" in cmd else None
    if server is not None:  # tokenmill against a running server: its CPU for this run counts
        env["PREFECT_API_URL"] = PREFECT_SERVER["url"]
        env["PREFECT_HOME"] = PREFECT_SERVER["home"]
    server_cpu0 = _tree_cpu(server) if server is not None else 0.0
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
        with TreeSampler(proc.pid) as sampler:
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise RuntimeError(f"{cmd[:3]} ran over {timeout}s; see {log}") from None
    wall = time.perf_counter() - t0
    cpu = _children_cpu() - cpu0
    if server is not None:
        cpu += _tree_cpu(server) - server_cpu0
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed (rc={rc}); see {log}")
    peaks = sorted(sampler.peak_by_pid.values(), reverse=True)
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_proc_mib": peaks[0] / 2**20 if peaks else 0.0,
        "peak_tree_mib": sampler.peak_total / 2**20,
        "processes": len(peaks),
    }


def pipeline_seconds(side: str, out: Path) -> float:
    """Seconds inside the pipeline, start-up excluded: datatrove's ``executor.run()``; ours the
    flow body (``stats.json`` seconds: worker start, setup and processing, after Prefect is up)."""
    if side == "datatrove":
        return json.loads((out / "timing.json").read_text())["run_seconds"]
    return json.loads((out / "stats.json").read_text())["seconds"]


LANGUAGES = ["en"]  # set by main (--languages), used by both sides' commands


DATATROVE_TASKS = ["workers"]  # set by main (--datatrove-tasks)
TRAFILATURA_DEDUP = [False]  # set by main (--trafilatura-dedup)


def anchor_cmd(inp: Path, out: Path, workers: int, timeout: float) -> list[str]:
    tasks = len(list(inp.glob("*.warc.gz"))) if DATATROVE_TASKS[0] == "files" else workers
    return [
        sys.executable,
        str(REPO / "benchmarks" / "_datatrove_fineweb.py"),
        "--input",
        str(inp),
        "--output",
        str(out),
        "--workers",
        str(workers),
        "--tasks",
        str(max(tasks, 1)),
        *([] if TRAFILATURA_DEDUP[0] else ["--no-dedup"]),
        "--extract-timeout",
        str(timeout),
        "--languages",
        ",".join(LANGUAGES),
    ]


def ours_cmd(
    inp: Path, out: Path, workers: int, timeout: float, payload_type: str = "http"
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "flows.cli",
        "fineweb",
        "--input",
        str(inp),
        "--output",
        str(out),
        "--workers",
        str(workers),
        "--languages",
        ",".join(LANGUAGES),
        "--extract-timeout",
        str(timeout),
        "--payload-type",
        payload_type,
        *([] if TRAFILATURA_DEDUP[0] else ["--config", str(_no_dedup_config(out.parent))]),
    ]


def _no_dedup_config(folder: Path) -> Path:
    """A FinewebConfig file with ``extract.deduplicate: false`` (``--trafilatura-dedup off``)."""
    path = folder / "no-dedup-config.json"
    if not path.exists():
        path.write_text(json.dumps({"extract": {"deduplicate": False}}))
    return path


# --- where the time goes: per-stage seconds (summed over workers) and docs/s -------------------

_DT_STAGES = {
    "READER": "read",
    "Url-filter": "urlfilter",
    "Trafilatura": "extract",
    "Language ID": "langid",
    "Gopher Repetition": "quality",
    "Gopher Quality": "quality",
    "C4 Quality": "quality",
    "FineWeb Quality": "quality",
    "Quality by language": "quality",
}
STAGE_ORDER = ["read", "urlfilter", "extract", "langid", "quality", "pii"]


def stage_breakdown(side: str, out: Path) -> dict[str, dict]:
    """stage -> {docs, seconds, docs_per_s}: datatrove's per-step ``time_stats`` (its URL filter
    time includes loading the blocklist on the first document), ours from ``stats.json`` (stage
    seconds summed over shards; step set-up is done before, in the worker initializer)."""
    res: dict[str, dict] = {}
    if side == "datatrove":
        for step in json.loads((out / "logs" / "stats.json").read_text()):
            name = next((v for k, v in _DT_STAGES.items() if k in step["name"]), None)
            if name is None:
                continue
            ts = step.get("time_stats") or {}
            r = res.setdefault(name, {"docs": 0, "seconds": 0.0})
            if not r["docs"]:
                r["docs"] = ts.get("n", 0)  # the first quality filter sees every quality input
            r["seconds"] += ts.get("total", 0.0)
    else:
        st = json.loads((out / "stats.json").read_text())["stages"]
        for name, v in st.items():
            res[name] = {"docs": v["in"], "seconds": v["seconds"]}
    for r in res.values():
        r["docs_per_s"] = r["docs"] / r["seconds"] if r["seconds"] else None
    return res


# --- decisions ----------------------------------------------------------------------------------


def response_ids(inp: Path) -> dict[str, str]:
    """WARC-Record-ID -> URL of every response record: the input documents."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    out: dict[str, str] = {}
    for path in sorted(glob.glob(str(inp / "*.warc.gz"))):
        with open(path, "rb") as f:
            for rec in ArchiveIterator(f, record_types=WarcRecordType.response, parse_http=False):
                out[rec.headers.get("WARC-Record-ID")] = rec.headers.get("WARC-Target-URI")
    return out


def startup_input(inp: Path, work: Path, reader_skips: dict[str, str], n: int = 2) -> Path:
    """``n`` one-document WARC files (the first response record of the first ``n`` inputs that
    datatrove's reader accepts): a run on them pays each side's whole fixed cost (interpreter,
    imports, Prefect's temporary server / datatrove's executor, ``n`` = workers worker processes,
    blocklists, fastText, trafilatura warm-up) for a negligible amount of work."""
    from warcio.archiveiterator import ArchiveIterator
    from warcio.warcwriter import WARCWriter

    out = work / "startup-input"
    out.mkdir(parents=True, exist_ok=True)
    k = 0
    for path in sorted(glob.glob(str(inp / "*.warc.gz"))):
        if k >= n:
            break
        with open(path, "rb") as f:
            for rec in ArchiveIterator(f):
                if (
                    rec.rec_type == "response"
                    and rec.rec_headers["WARC-Record-ID"] not in reader_skips
                ):
                    with open(out / f"startup{k}.warc.gz", "wb") as g:
                        WARCWriter(g, gzip=True).write_record(rec)
                    k += 1
                    break
    if k < n:
        raise SystemExit(
            f"need {n} input files with a readable response record for the start-up run"
        )
    return out


def steady_state(run: dict, startup: dict, n_docs: int, n_startup: int) -> dict:
    """Per-document cost with each side's fixed start-up taken out: marginal documents / marginal
    wall seconds over the start-up run (same side, same repeat), and marginal CPU per document."""
    dw = run["wall_s"] - startup["wall_s"]
    dc = run["cpu_s"] - startup["cpu_s"]
    dn = n_docs - n_startup
    return {
        "startup_wall_s": startup["wall_s"],
        "startup_cpu_s": startup["cpu_s"],
        "steady_docs_per_s": dn / dw if dw > 0 else float("nan"),
        "steady_cpu_ms_per_doc": 1000 * dc / dn if dn > 0 else float("nan"),
    }


def _jsonl(folder: Path):
    for path in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(path, "rt") as f:
            for line in f:
                yield json.loads(line)


ANCHOR_FOLDERS = {
    "1_url": "url",
    "2_lang": "langid",
    "3_gopher_rep": "gopher_repetition",
    "4_gopher_qual": "gopher_quality",
    "5_c4": "c4",
    "6_fineweb_qual": "fineweb_quality",
    "3_quality": "quality",
}


def datatrove_reader_skips(inp: Path) -> dict[str, str]:
    """id -> why datatrove's WarcReader skips a response record (it keeps no record of these).

    Calls datatrove's own ``process_record``; the reason is reconstructed from its rules: the
    WARC-Identified-Payload-Type header, else libmagic's guess from the payload, else decoding.
    """
    import magic
    from datatrove.pipeline.readers.warc import process_record
    from warcio.archiveiterator import ArchiveIterator

    skips: dict[str, str] = {}
    for path in sorted(glob.glob(str(inp / "*.warc.gz"))):
        with open(path, "rb") as f:
            for rec in ArchiveIterator(f):
                if rec.rec_type != "response":
                    continue
                rid = rec.rec_headers["WARC-Record-ID"]
                if process_record(rec) is not None:
                    continue
                declared = rec.rec_headers.get("WARC-Identified-Payload-Type")
                if declared:
                    skips[rid] = f"reader:payload_type={declared}"
                else:
                    with open(path, "rb") as g:  # re-read the payload for libmagic's verdict
                        for r2 in ArchiveIterator(g):
                            if (
                                r2.rec_type == "response"
                                and r2.rec_headers["WARC-Record-ID"] == rid
                            ):
                                mime = magic.from_buffer(r2.content_stream().read(), mime=True)
                                break
                    skips[rid] = f"reader:libmagic={mime}"
    return skips


def _first_copy(name: str | None) -> bool:
    """With ``--copies`` only the first copy's decisions are compared: trafilatura's deduplication
    remembers paragraphs per process, so a later copy of a page is extracted shorter by datatrove
    (whose workers keep that memory across files; tokenmill resets it per WARC file)."""
    base = os.path.basename(name or "")
    return not base.startswith("copy") or base.startswith("copy0-")


def anchor_decisions(
    out: Path, ids: dict[str, str], reader_skips: dict[str, str]
) -> dict[str, str | None]:
    """id -> None (kept) or the removing step and reason. Absent from every output = skipped by
    the reader (``reader_skips``) or dropped by the extractor (empty text or timeout)."""
    dec: dict[str, str | None] = {}
    for d in _jsonl(out / "output"):
        if _first_copy((d.get("metadata") or {}).get("file_path")):
            dec[d["id"]] = None
    for folder, step in ANCHOR_FOLDERS.items():
        for d in _jsonl(out / "removed" / folder):
            if not _first_copy((d.get("metadata") or {}).get("file_path")):
                continue
            why = (d.get("metadata") or {}).get("filter_reason")
            dec[d["id"]] = f"{step}:{why}" if why else step
    for rid in ids:
        dec.setdefault(rid, reader_skips.get(rid, "extractor:empty_or_timeout"))
    return dec


def our_decisions(out: Path, ids: dict[str, str]) -> dict[str, str | None]:
    import pyarrow.parquet as pq

    dec: dict[str, str | None] = {}
    for path in sorted((out / "documents").glob("*.parquet")):
        t = pq.read_table(path, columns=["id", "source"])
        for rid, src in zip(
            t.column("id").to_pylist(), t.column("source").to_pylist(), strict=True
        ):
            if _first_copy(src):
                dec[rid] = None
    for path in sorted((out / "removed").glob("*.parquet")):
        t = pq.read_table(path, columns=["id", "reason", "source"])
        for rid, why, src in zip(
            t.column("id").to_pylist(),
            t.column("reason").to_pylist(),
            t.column("source").to_pylist(),
            strict=True,
        ):
            if _first_copy(src):
                dec[rid] = why
    for rid in ids:
        dec.setdefault(rid, "missing")
    return dec


def compare(ids: dict[str, str], anchor: dict, ours: dict) -> dict:
    same = sum((anchor[i] is None) == (ours[i] is None) for i in ids)
    disagree = [
        {"url": ids[i], "id": i, "datatrove": anchor[i] or "kept", "tokenmill": ours[i] or "kept"}
        for i in ids
        if (anchor[i] is None) != (ours[i] is None)
    ]
    both_read = [i for i in ids if not (anchor[i] or "").startswith("reader:")]
    same_read = sum((anchor[i] is None) == (ours[i] is None) for i in both_read)
    return {
        "documents": len(ids),
        "agree": same,
        "agreement": same / len(ids) if ids else 1.0,
        "read_by_datatrove": len(both_read),
        "agree_read_by_datatrove": same_read,
        "kept_datatrove": sum(anchor[i] is None for i in ids),
        "kept_tokenmill": sum(ours[i] is None for i in ids),
        "disagreements": disagree,
    }


def by_stage(disagreements: list[dict]) -> Counter:
    """Which stage made the difference: the side that dropped the document names it."""
    c: Counter = Counter()
    for d in disagreements:
        dropped = d["datatrove"] if d["tokenmill"] == "kept" else d["tokenmill"]
        side = "datatrove" if d["tokenmill"] == "kept" else "tokenmill"
        c[f"{side} dropped at {dropped.split(':')[0]}"] += 1
    return c


# --- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", type=Path, default=DEFAULT_INPUT, help="directory with *.warc.gz")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--extract-timeout", type=float, default=5.0)
    ap.add_argument(
        "--copies",
        type=int,
        default=1,
        help="process K copies of each input file (amortises start-up; agreement is "
        "computed over the first copy)",
    )
    ap.add_argument("--timeout", type=float, default=1800, help="limit per side per run (s)")
    ap.add_argument("--workdir", type=Path, default=None, help="keep outputs here (default: temp)")
    ap.add_argument(
        "--no-append", action="store_true", help="do not append to benchmarks/RESULTS.md"
    )
    ap.add_argument("--note", default="", help="free text for the RESULTS.md entry")
    ap.add_argument(
        "--payload-types",
        default="http,libmagic",
        help="tokenmill read modes to run (comma-separated; the first is the one "
        "whose speed is the headline): 'http' = tokenmill's default, 'libmagic' = "
        "datatrove's WarcReader rule (the same settings as the anchor)",
    )
    ap.add_argument(
        "--multilingual",
        action="store_true",
        help="input = multilingual-news.warc.gz of --input, copied to >= --min-records",
    )
    ap.add_argument(
        "--english-only",
        action="store_true",
        help="input = every WARC of --input but multilingual-news.warc.gz, copied to >= --min-records",
    )
    ap.add_argument(
        "--prefect-server",
        action="store_true",
        help="run tokenmill against a running `prefect server start` (PREFECT_API_URL), started "
        "before the runs, instead of Prefect's local mode (a temporary server per run); the "
        "server's CPU during each run is added to tokenmill's",
    )
    ap.add_argument("--min-records", type=int, default=2000)
    ap.add_argument(
        "--datatrove-tasks",
        choices=["workers", "files"],
        default="workers",
        help="datatrove's task split: 'workers' = tasks = workers (default); 'files' = one task "
        "per input file (each task loads its blocklists, model and extraction sandbox again: "
        "~4 s a task here, so not a fair speed comparison)",
    )
    ap.add_argument(
        "--trafilatura-dedup",
        choices=["off", "on"],
        default="off",
        help="trafilatura's paragraph dedup cache (deduplicate=), both sides. 'off' (default): "
        "datatrove's cache lives per task, so with tasks = workers it spans files, and on copied "
        "input it extracts nothing from a page seen in an earlier copy (then skips language ID "
        "and the quality filters for it: a saving the copies create, distinct pages would not), "
        "while tokenmill starts each shard with an empty cache; 'on' = the FineWeb recipe",
    )
    ap.add_argument("--languages", default="en", help="languages both sides keep (comma-separated)")
    args = ap.parse_args(argv)
    modes = [m.strip() for m in args.payload_types.split(",") if m.strip()]
    LANGUAGES[:] = [x for x in args.languages.split(",") if x]
    DATATROVE_TASKS[:] = [args.datatrove_tasks]
    TRAFILATURA_DEDUP[:] = [args.trafilatura_dedup == "on"]
    startup_source = args.input  # the start-up run takes one record from each of `workers` files
    if args.multilingual and args.english_only:
        raise SystemExit("--multilingual and --english-only exclude each other")
    if args.multilingual or args.english_only:
        ml = args.input / "multilingual-news.warc.gz"
        if args.multilingual:
            chosen = [ml] if ml.exists() else []
        else:
            chosen = [p for p in sorted(args.input.glob("*.warc.gz")) if p.name != ml.name]
        if not chosen:
            raise SystemExit(f"no WARC for this sample under {args.input}")
        name = "ml-source" if args.multilingual else "en-source"
        sel = (args.workdir or Path(tempfile.mkdtemp(prefix="fineweb-sample-"))) / name
        sel.mkdir(parents=True, exist_ok=True)
        for src in chosen:
            if not (sel / src.name).exists():
                (sel / src.name).symlink_to(src.resolve())
        args.input = sel
        n = len(response_ids(sel))
        args.copies = max(args.copies, -(-args.min_records // n))

    ids = response_ids(args.input)
    if not ids:
        raise SystemExit(f"no WARC response records under {args.input}")
    skips = datatrove_reader_skips(args.input)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="fineweb-vs-datatrove-"))
    work.mkdir(parents=True, exist_ok=True)
    inp = args.input
    if args.copies > 1:  # K links to every WARC: more documents, the same decisions
        inp = work / "input"
        inp.mkdir(exist_ok=True)
        for path in sorted(args.input.glob("*.warc.gz")):
            for k in range(args.copies):
                link = inp / f"copy{k}-{path.name}"
                if not link.exists():
                    link.symlink_to(path.resolve())
    n_docs = len(ids) * args.copies
    sides = ["datatrove", *(f"tokenmill:{m}" for m in modes)]
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    cmp_by_mode: dict[str, dict] = {}
    breakdown: dict[str, dict] = {}
    start_skips = skips if startup_source == args.input else datatrove_reader_skips(startup_source)
    start_inp = startup_input(startup_source, work, start_skips, n=max(1, args.workers))
    n_startup = len(response_ids(start_inp))
    startups: dict[str, list[dict]] = {"datatrove": [], "tokenmill": []}
    if args.prefect_server:
        import atexit

        from tests.prefect_server import kill_group

        server = start_prefect_server(work)
        atexit.register(kill_group, server)
        print(f"tokenmill runs against a running Prefect server: {PREFECT_SERVER['url']}")
    for r in range(args.repeat):
        order = sides if r % 2 == 0 else sides[::-1]
        outs = {}
        # each side's fixed cost, measured in this repeat: the same command on n_startup documents
        start = {}
        for kind in ["datatrove", "tokenmill"] if r % 2 == 0 else ["tokenmill", "datatrove"]:
            out = work / f"startup-{kind}-{r}"
            if out.exists():
                import shutil

                shutil.rmtree(out)
            cmd = (
                anchor_cmd(start_inp, out, args.workers, args.extract_timeout)
                if kind == "datatrove"
                else ours_cmd(start_inp, out, args.workers, args.extract_timeout, modes[0])
            )
            start[kind] = run_side(cmd, work / f"startup-{kind}-{r}.log", args.timeout)
            startups[kind].append(start[kind])
            print(
                f"run {r + 1}/{args.repeat} {kind + ' start-up':18s}: {start[kind]['wall_s']:6.1f} s  "
                f"CPU {start[kind]['cpu_s']:5.1f} s  ({n_startup} documents: fixed cost)",
                flush=True,
            )
        for side in order:
            out = work / f"{side.replace(':', '-')}-{r}"
            if out.exists():
                import shutil

                shutil.rmtree(out)
            if side == "datatrove":
                cmd = anchor_cmd(inp, out, args.workers, args.extract_timeout)
            else:
                cmd = ours_cmd(inp, out, args.workers, args.extract_timeout, side.split(":", 1)[1])
            res = run_side(cmd, work / f"{side.replace(':', '-')}-{r}.log", args.timeout)
            kind = "datatrove" if side == "datatrove" else "tokenmill"
            res["docs_per_s"] = n_docs / res["wall_s"]
            res["pipeline_s"] = pipeline_seconds(kind, out)
            res["pipeline_docs_per_s"] = n_docs / res["pipeline_s"]
            res.update(steady_state(res, start[kind], n_docs, n_startup))
            runs[side].append(res)
            outs[side] = out
            breakdown[side] = stage_breakdown(kind, out)
            print(
                f"run {r + 1}/{args.repeat} {side:18s}: {res['wall_s']:6.1f} s  "
                f"{res['docs_per_s']:6.2f} docs/s  (in-pipeline {res['pipeline_s']:.1f} s)  "
                f"CPU {res['cpu_s']:.1f} s  steady-state {res['steady_docs_per_s']:.2f} docs/s  "
                f"peak RSS: largest process "
                f"{res['peak_proc_mib']:.0f} MiB, tree {res['peak_tree_mib']:.0f} MiB",
                flush=True,
            )
        anchor = anchor_decisions(outs["datatrove"], ids, skips)
        for m in modes:
            cmp_r = compare(ids, anchor, our_decisions(outs[f"tokenmill:{m}"], ids))
            if m not in cmp_by_mode:
                cmp_by_mode[m] = cmp_r
            elif cmp_r["agree"] != cmp_by_mode[m]["agree"]:
                print(
                    f"note: agreement ({m}) differs between runs ({cmp_r['agree']} vs "
                    f"{cmp_by_mode[m]['agree']}): load-dependent extraction timeouts?",
                    flush=True,
                )

    med = {
        side: {k: statistics.median(x[k] for x in rs) for k in rs[0] if k != "processes"}
        for side, rs in runs.items()
    }
    head = f"tokenmill:{modes[0]}"
    ratios = {
        m: med[f"tokenmill:{m}"]["docs_per_s"] / med["datatrove"]["docs_per_s"] for m in modes
    }
    ratios_steady = {
        m: med[f"tokenmill:{m}"]["steady_docs_per_s"] / med["datatrove"]["steady_docs_per_s"]
        for m in modes
    }
    ratios_cpu = {
        m: med["datatrove"]["steady_cpu_ms_per_doc"]
        / med[f"tokenmill:{m}"]["steady_cpu_ms_per_doc"]
        for m in modes
    }
    ratios_pipeline = {
        m: med[f"tokenmill:{m}"]["pipeline_docs_per_s"] / med["datatrove"]["pipeline_docs_per_s"]
        for m in modes
    }
    summary = {
        "date": dt.date.today().isoformat(),
        "input": str(args.input),
        "documents": n_docs,
        "multilingual": args.multilingual,
        "english_only": args.english_only,
        "prefect_server": args.prefect_server,
        "datatrove_tasks": args.datatrove_tasks,
        "trafilatura_dedup": args.trafilatura_dedup,
        "languages": LANGUAGES,
        "distinct_documents": len(ids),
        "copies": args.copies,
        "modes": modes,
        "speed_ratio_in_pipeline": ratios_pipeline[modes[0]],
        "workers": args.workers,
        "repeat": args.repeat,
        "extract_timeout_s": args.extract_timeout,
        "median": med,
        "speed_ratio_ours_over_anchor": ratios[modes[0]],
        "speed_ratio_by_mode": ratios,
        "steady_ratio_by_mode": ratios_steady,
        "cpu_per_doc_ratio_by_mode": ratios_cpu,
        "startup_documents": n_startup,
        "startup_runs": startups,
        "speed_ratio_in_pipeline_by_mode": ratios_pipeline,
        "runs": runs,
        "stage_breakdown_last_run": breakdown,
        "agreement_by_mode": {
            m: {k: v for k, v in c.items() if k != "disagreements"} for m, c in cmp_by_mode.items()
        },
        "disagreement_by_stage_by_mode": {
            m: dict(by_stage(c["disagreements"])) for m, c in cmp_by_mode.items()
        },
        "disagreements_by_mode": {m: c["disagreements"] for m, c in cmp_by_mode.items()},
    }
    (work / "summary.json").write_text(json.dumps(summary, indent=2))

    print(
        f"\n{n_docs} documents ({args.copies} x {len(ids)}), {args.workers} workers, median of {args.repeat} runs "
        f"(outputs: {work})"
    )
    for side in sides:
        m = med[side]
        print(
            f"  {side:18s}: {m['wall_s']:6.1f} s  {m['docs_per_s']:6.2f} docs/s end to end, "
            f"{m['pipeline_docs_per_s']:6.2f} docs/s in-pipeline  "
            f"peak RSS largest process {m['peak_proc_mib']:.0f} MiB, "
            f"tree {m['peak_tree_mib']:.0f} MiB"
        )
        print(
            f"  {'':18s}  CPU {m['cpu_s']:6.1f} s; fixed start-up ({n_startup}-document run) "
            f"{m['startup_wall_s']:.1f} s wall / {m['startup_cpu_s']:.1f} s CPU; STEADY-STATE "
            f"{m['steady_docs_per_s']:6.2f} docs/s = (documents - {n_startup}) / (wall - start-up wall), "
            f"{m['steady_cpu_ms_per_doc']:.1f} CPU ms/doc"
        )
    for m in modes:
        print(
            f"  speed ratio tokenmill ({m})/datatrove: {ratios[m]:.2f}x end to end, "
            f"{ratios_steady[m]:.2f}x steady-state (start-up subtracted), "
            f"{ratios_cpu[m]:.2f}x less CPU per document (steady-state), "
            f"{ratios_pipeline[m]:.2f}x in-pipeline"
        )
    print("  per stage, last run (seconds summed over workers, docs/s):")
    print(f"    {'stage':10s} {'datatrove':>22s} {head:>26s}")
    for st in STAGE_ORDER:
        a, b = breakdown["datatrove"].get(st), breakdown[head].get(st)
        fa = f"{a['seconds']:6.2f} s {a['docs_per_s'] or 0:8.1f}/s" if a else "-"
        fb = f"{b['seconds']:6.2f} s {b['docs_per_s'] or 0:8.1f}/s" if b else "-"
        print(f"    {st:10s} {fa:>22s} {fb:>26s}")
    for m in modes:
        a = cmp_by_mode[m]
        print(
            f"  keep/drop agreement, tokenmill --payload-type {m}: {a['agree']}/{a['documents']} = "
            f"{a['agreement']:.1%} (kept: datatrove {a['kept_datatrove']}, tokenmill {a['kept_tokenmill']}); "
            f"on the {a['read_by_datatrove']} documents datatrove's reader accepts: {a['agree_read_by_datatrove']}"
        )
        for k, v in by_stage(a["disagreements"]).most_common():
            print(f"    {v:3d}  {k}")
        for d in a["disagreements"]:
            print(
                f"    {d['url']}\n        datatrove: {d['datatrove']}   tokenmill: {d['tokenmill']}"
            )
        if m == "http" and any(
            d["datatrove"].startswith("reader:libmagic") for d in a["disagreements"]
        ):
            print(
                "    why: these WARCs (wget-made) lack WARC-Identified-Payload-Type, so datatrove's "
                "WarcReader asks libmagic, which calls HTML pages with big inline scripts "
                "'application/javascript' and skips them; tokenmill's default trusts the server's "
                "HTTP Content-Type (text/html) and keeps them. --payload-type libmagic makes "
                "datatrove's decision (Common Crawl WARCs carry the header: no difference there)."
            )
    if not args.no_append:
        append_results(summary, args.note)
    return summary


_SERVER_NOTE = "tokenmill against a running Prefect server (PREFECT_API_URL; its CPU is counted), "


_TASKS_NOTE = {
    "files": "one per input file",
    "workers": "= workers",
}


def append_results(s: dict, note: str) -> None:
    m = s["median"]
    modes = s["modes"]
    lines = [
        f"\n## {s['date']} FineWeb pass: tokenmill vs datatrove 0.10.1 (`benchmarks/fineweb_vs_datatrove.py`)\n",
        f"- machine: {MACHINE}; other engineers' jobs running at the same time",
        f"- input: {s['input']} x {s['copies']} copies ({s['documents']} WARC response records), "
        f"{'multilingual mode, ' if s.get('multilingual') else ''}"
        f"{'English-only sample, ' if s.get('english_only') else ''}"
        f"{_SERVER_NOTE if s.get('prefect_server') else ''}"
        f"datatrove tasks: {_TASKS_NOTE[s.get('datatrove_tasks', 'workers')]}, "
        f"trafilatura dedup cache: {s.get('trafilatura_dedup', 'on')} both sides, "
        f"languages kept: "
        f"{','.join(s.get('languages') or ['en'])}, {s['workers']} workers, "
        f"extract timeout {s['extract_timeout_s']} s both sides, median of {s['repeat']} runs, "
        f"load average at the end {os.getloadavg()[0]:.1f}, "
        "end-to-end subprocess wall time (imports, Prefect temp server / datatrove blocklist load included)",
        "",
        f"- steady-state = (documents - {s['startup_documents']}) / (wall - start-up wall), start-up = the same "
        f"command on {s['startup_documents']} one-document WARC files (each side's whole fixed cost: interpreter, "
        "imports, Prefect's temporary server / datatrove's executor, worker processes, models and blocklists), "
        "measured in every repeat; CPU = user + system seconds of the whole process tree",
        "",
        "| side | wall s | docs/s end to end | start-up wall s | docs/s steady-state | CPU s "
        "| start-up CPU s | CPU ms/doc steady-state "
        "| in-pipeline s | docs/s in-pipeline | peak RSS largest process MiB | peak RSS process tree MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for side, x in m.items():
        label = (
            side if side == "datatrove" else f"tokenmill (--payload-type {side.split(':', 1)[1]})"
        )
        lines.append(
            f"| {label} | {x['wall_s']:.1f} | {x['docs_per_s']:.2f} | {x['startup_wall_s']:.1f} | "
            f"{x['steady_docs_per_s']:.2f} | {x['cpu_s']:.1f} | {x['startup_cpu_s']:.1f} | "
            f"{x['steady_cpu_ms_per_doc']:.1f} | {x['pipeline_s']:.1f} | "
            f"{x['pipeline_docs_per_s']:.2f} | {x['peak_proc_mib']:.0f} | "
            f"{x['peak_tree_mib']:.0f} |"
        )
    lines.append("")
    for mode in modes:
        lines.append(
            f"- speed ratio tokenmill ({mode})/datatrove: **{s['speed_ratio_by_mode'][mode]:.2f}x** end to "
            f"end, **{s['steady_ratio_by_mode'][mode]:.2f}x** steady-state, "
            f"{s['cpu_per_doc_ratio_by_mode'][mode]:.2f}x less CPU per document (steady-state), "
            f"{s['speed_ratio_in_pipeline_by_mode'][mode]:.2f}x in-pipeline"
        )
    for mode in modes:
        a = s["agreement_by_mode"][mode]
        line = (
            f"- keep/drop agreement, `--payload-type {mode}`: **{a['agree']}/{a['documents']} = "
            f"{a['agreement']:.1%}** (kept: datatrove {a['kept_datatrove']}, tokenmill {a['kept_tokenmill']}); "
            f"on the {a['read_by_datatrove']} documents datatrove's WarcReader accepts: "
            f"{a['agree_read_by_datatrove']}/{a['read_by_datatrove']}"
        )
        by = s["disagreement_by_stage_by_mode"][mode]
        if by:
            line += "; disagreements: " + ", ".join(
                f"{k} {v}" for k, v in sorted(by.items(), key=lambda kv: -kv[1])
            )
        lines.append(line)
    bd = s["stage_breakdown_last_run"]
    head = f"tokenmill:{modes[0]}"
    lines += [
        "",
        f"Per stage, last run (seconds summed over workers; docs/s = documents in / seconds; "
        f"tokenmill = `--payload-type {modes[0]}`):",
        "",
        "| stage | datatrove s | datatrove docs/s | tokenmill s | tokenmill docs/s |",
        "|---|---|---|---|---|",
    ]
    for st in STAGE_ORDER:
        a, b = bd["datatrove"].get(st), bd[head].get(st)
        fa = f"{a['seconds']:.2f} | {a['docs_per_s'] or 0:.1f}" if a else "- | -"
        fb = f"{b['seconds']:.2f} | {b['docs_per_s'] or 0:.1f}" if b else "- | -"
        lines.append(f"| {st} | {fa} | {fb} |")
    if note:
        lines.append(f"\n- note: {note}")
    write_results("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
