"""What made an output directory: ``OUT/run.json``, and the check that a re-run matches it.

Every stage's output records the effective configuration, the stage list, the inputs (path,
size, modification time) and the tokenmill version in ``run.json``, written before any work so
a killed run's re-run is checked too. A re-run into the same output:

- with the same settings and inputs resumes (finished shards/steps are skipped);
- with anything else refuses with ONE line naming what differs and suggesting ``--overwrite``,
  which deletes the old output and starts over. It never returns the old result.

Per-shard "done" markers (a shard's stats JSON) carry ``fingerprint(...)`` of the settings
that made them; a marker with another fingerprint is not trusted (``shard_is_current``), so a
shard made under other settings is recomputed, never skipped as finished.

Settings that do not change what is written (``workers``, batch sizes) are left out of the
comparison, so a re-run with more workers resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

RUN_FILE = "run.json"
#: Config keys that change how fast, not what: never a reason to refuse a re-run.
EXECUTION_ONLY = frozenset({"workers", "batch_docs"})
#: Entries that mark a directory as a tokenmill output (safe for ``--overwrite`` to delete).
OUTPUT_MARKERS = (
    "run.json",
    "stats.json",
    "stats",
    "documents",
    "removed",
    "_work",
    "manifest.json",
)


class OutputMismatchError(ValueError):
    """A re-run into an output made with other settings or inputs; ``str()`` is one line."""


def tokenmill_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tokenmill")
    except PackageNotFoundError:
        return "unknown"


def settings(config: BaseModel | dict | None, stages: list[str] | None = None) -> dict[str, Any]:
    """The output-relevant settings: the config without execution-only keys, plus the stages."""
    data = config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config or {})
    data = {k: v for k, v in data.items() if k not in EXECUTION_ONLY}
    out = {"config": data, "stages": list(stages) if stages is not None else None}
    quality = data.get("quality")
    if isinstance(quality, dict) and quality.get("per_language"):
        from pipelines.lang import settings_files_digest

        # files the settings point at are settings too: an edited threshold is a new run
        out["language_settings_files"] = settings_files_digest(quality.get("language_settings_dir"))
    contents = path_contents(data)
    if contents:
        out["path_contents"] = contents
    return out


#: Files up to this size are hashed; a larger one (a 126 MB lid.176.bin) is known by size and
#: modification time, so a run start does not read it through.
HASH_LIMIT = 16 * 1024 * 1024


def path_contents(data: dict) -> dict[str, str]:
    """``{key: digest}`` of the files behind the configured ``schemas.config.CONFIG_PATHS``
    (one digest per key; a directory's covers every file under it by relative name): an edited
    blocklist or a replaced model makes a new run, as an edited config value does. A missing
    path is left out (``pipelines.fineweb.check_config_paths`` refuses it before any run).
    ``quality.language_settings_dir`` is covered by ``language_settings_files``."""
    from schemas.config import CONFIG_PATHS

    out = {}
    for key, is_dir in CONFIG_PATHS.items():
        section, field = key.split(".")
        part = data.get(section)
        value = part.get(field) if isinstance(part, dict) else None
        if not value or key == "quality.language_settings_dir":
            continue
        path = Path(value)
        if is_dir and path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            h = hashlib.sha256()
            for f in files:
                h.update(f"{f.relative_to(path).as_posix()}\0{file_digest(f)}\0".encode())
            out[key] = f"{len(files)} files {h.hexdigest()[:16]}"
        elif not is_dir and path.is_file():
            out[key] = file_digest(path)
    return out


_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """sha256[:16] of a file (``size:mtime`` beyond ``HASH_LIMIT``), cached per process by
    (path, size, mtime): every shard computes the run's fingerprint, so the files its settings
    name are read once per process, not once per shard."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    digest = _DIGESTS.get(key)
    if digest is None:
        if st.st_size > HASH_LIMIT:
            digest = f"size {st.st_size} mtime_ns {st.st_mtime_ns}"
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        _DIGESTS[key] = digest
    return digest


def fingerprint(config: BaseModel | dict | None, stages: list[str] | None = None) -> str:
    """A short hash of ``settings(config, stages)``: equal iff the outputs would be."""
    blob = json.dumps(settings(config, stages), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def describe_inputs(files: list[str | Path]) -> list[dict[str, Any]]:
    """Each input as path (absolute when local), size and mtime; remote URLs by name only."""
    out = []
    for f in files:
        s = str(f)
        if "://" in s and not s.startswith("file://"):
            out.append({"path": s})
            continue
        st = os.stat(s)
        out.append({"path": os.path.abspath(s), "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return out


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out or {prefix: {}}
    return {prefix: d}


def _config_diff(old: dict, new: dict, limit: int = 3) -> str:
    a, b = _flatten(old), _flatten(new)
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k, "<unset>") != b.get(k, "<unset>"))
    parts = [f"{k}: {a.get(k, '<unset>')!r} -> {b.get(k, '<unset>')!r}" for k in keys[:limit]]
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return "; ".join(parts) + more


def _inputs_diff(old: list[dict], new: list[dict]) -> str:
    a, b = {i["path"]: i for i in old}, {i["path"]: i for i in new}
    added, gone = sorted(b.keys() - a.keys()), sorted(a.keys() - b.keys())
    changed = sorted(p for p in a.keys() & b.keys() if a[p] != b[p])
    parts = []
    for what, paths in (("new", added), ("missing", gone), ("changed since", changed)):
        if paths:
            parts.append(
                f"{len(paths)} {what} ({Path(paths[0]).name}{', ...' if len(paths) > 1 else ''})"
            )
    return "inputs differ: " + ", ".join(parts)


def _is_output(d: Path) -> bool:
    return any((d / m).exists() for m in OUTPUT_MARKERS)


def read_run(output: str | Path) -> dict | None:
    p = Path(output) / RUN_FILE
    return json.loads(p.read_text()) if p.is_file() else None


def prepare_output(
    output: str | Path,
    *,
    kind: str,
    config: BaseModel | dict | None,
    inputs: list[str | Path],
    stages: list[str] | None = None,
    overwrite: bool = False,
) -> dict:
    """Check ``output`` against this run and record it in ``output/run.json``; returns the record.

    Raises ``OutputMismatchError`` (one line) when ``output`` holds a run of another kind,
    with other settings or other inputs, or a tokenmill output without ``run.json`` (made by
    an older version: how is unknown). ``overwrite=True`` deletes such an output first.
    """
    out = Path(output)
    run = {
        "kind": kind,
        "tokenmill_version": tokenmill_version(),
        "fingerprint": fingerprint(config, stages),
        **settings(config, stages),
        "inputs": describe_inputs(inputs),
        "effective_config": (
            config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config or {})
        ),
    }
    old = read_run(out)
    if overwrite and out.is_dir() and (old is not None or _is_output(out)):
        shutil.rmtree(out)
        old = None
    elif old is None and out.is_dir() and _is_output(out):
        raise OutputMismatchError(
            f"{out} already holds an output without {RUN_FILE} (how it was made is unknown): "
            "re-run with --overwrite to start over, or choose another --output"
        )
    if out.is_dir():  # temp files of a killed run (their writers are dead): never left behind
        from pipelines.io import remove_stale_temps

        for d, _, _ in os.walk(out):
            remove_stale_temps(d)
    if old is not None:
        why = mismatch(old, run)
        if why:
            raise _different_run(out, why)
        return old
    from pipelines.io import atomic_write_text

    run["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    atomic_write_text(out / RUN_FILE, json.dumps(run, indent=2, sort_keys=True))
    return run


def _different_run(out: Path, why: str) -> OutputMismatchError:
    return OutputMismatchError(
        f"{out} was made by a different run ({why}): re-run with --overwrite to start "
        "over, or choose another --output"
    )


def refuse_other_settings(
    output: str | Path,
    *,
    kind: str,
    config: BaseModel | dict | None,
    stages: list[str] | None = None,
) -> None:
    """Refuse (one line) an existing ``output`` made by another kind of run or with other
    settings, before any work starts: a later stage of a chained run (the pipeline's dedup and
    tokenize) is checked up front instead of failing inside the flow after the earlier stages
    ran. Its inputs are checked by ``prepare_output`` once they exist."""
    old = read_run(output)
    if old is None:
        return
    new = {"kind": kind, "fingerprint": fingerprint(config, stages), **settings(config, stages)}
    why = mismatch(old, {**new, "inputs": old.get("inputs")})
    if why:
        raise _different_run(Path(output), why)


def mismatch(old: dict, new: dict) -> str | None:
    """What differs between two run records (one phrase), or None when they match."""
    if old.get("kind") != new.get("kind"):
        return f"it is a {old.get('kind')!r} output, this is {new.get('kind')!r}"
    if old.get("stages") != new.get("stages"):
        return f"stages: {old.get('stages')} -> {new.get('stages')}"
    if old.get("language_settings_files") != new.get("language_settings_files"):
        a, b = old.get("language_settings_files") or {}, new.get("language_settings_files") or {}
        changed = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        return f"language settings files changed: {', '.join(changed[:3]) or 'none recorded'}"
    if old.get("path_contents") != new.get("path_contents"):
        a, b = old.get("path_contents") or {}, new.get("path_contents") or {}
        oc, nc = _flatten(old.get("config") or {}), _flatten(new.get("config") or {})
        # a path whose value changed is named by the settings diff below
        same_path = [k for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]
        same_path = [k for k in same_path if oc.get(k) == nc.get(k)]
        if same_path:
            if "path_contents" not in old:
                return f"the earlier run did not record the contents of {', '.join(same_path)}"
            return "contents changed: " + ", ".join(f"{k} ({nc.get(k)})" for k in same_path)
    if old.get("fingerprint") != new.get("fingerprint"):
        return "settings differ: " + (
            _config_diff(old.get("config") or {}, new.get("config") or {}) or "config"
        )
    if old.get("inputs") != new.get("inputs"):
        return _inputs_diff(old.get("inputs") or [], new.get("inputs") or [])
    return None


def is_finished(output: str | Path) -> bool:
    """A recorded run whose final ``stats.json`` exists (call after ``prepare_output``)."""
    out = Path(output)
    return (out / RUN_FILE).is_file() and (out / "stats.json").is_file()


def current_marker(marker: str | Path, fp: str) -> dict | None:
    """A shard's stats JSON when it exists and was made with settings fingerprint ``fp``, else
    None (read once: the caller that needs the stats gets them with the check)."""
    p = Path(marker)
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) and data.get("fingerprint") == fp else None


def shard_is_current(marker: str | Path, fp: str) -> bool:
    """Whether a shard's stats JSON exists and was made with settings fingerprint ``fp``."""
    return current_marker(marker, fp) is not None
