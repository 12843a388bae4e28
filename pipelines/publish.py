"""Publish a tokenmill output directory as a Hugging Face dataset repository.

Uploads go through ``huggingface_hub.HfApi`` (create_repo, create_branch, create_commit), so
LFS/Xet storage, retries on transient HTTP errors and README metadata validation are the
library's. What this module adds:

* several commits for a large output: data files are grouped into commits bounded by file
  count and bytes (the Hub rejects huge commits and a failed giant commit loses everything);
  the card, plots and stats go in the last commit, so the card never points at missing data.
  Re-running a push skips files the Hub already has (``create_commit`` compares oids).
* the token: taken from ``HF_TOKEN`` or the saved login, never printed, logged or written;
  a missing or rejected token is a ``PublishError`` with one clear line (the CLI prints it and
  exits non-zero, without a traceback). Every error message is scrubbed of the token anyway.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.http_status import http_status

DEFAULT_MAX_COMMIT_FILES = 200
DEFAULT_MAX_COMMIT_BYTES = 2 * 1024**3
METADATA_SUFFIXES = {".md", ".json", ".png"}


class PublishError(Exception):
    """A push failed for a reason the user can act on; ``str()`` is one line, token-free."""


@dataclass
class PushResult:
    repo_url: str
    revision: str
    commits: list[str] = field(default_factory=list)  # commit oids, in order
    files: list[str] = field(default_factory=list)  # paths in the repo


def resolve_token(token: str | None = None) -> str:
    """The Hub token: explicit, else ``HF_TOKEN``, else the saved ``hf auth login`` token."""
    if token:
        return token
    from huggingface_hub import get_token

    found = os.environ.get("HF_TOKEN") or get_token()
    if not found:
        raise PublishError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    return found


def plan_commits(root: Path, files: list[Path], max_files: int = DEFAULT_MAX_COMMIT_FILES,
                 max_bytes: int = DEFAULT_MAX_COMMIT_BYTES) -> list[list[Path]]:
    """Data files in commits of at most ``max_files`` files / ``max_bytes`` bytes (a single file
    larger than ``max_bytes`` gets a commit of its own); metadata (card, plots, stats) last."""
    data = [f for f in files if f.suffix not in METADATA_SUFFIXES]
    meta = [f for f in files if f.suffix in METADATA_SUFFIXES]
    commits: list[list[Path]] = []
    current: list[Path] = []
    size = 0
    for f in data:
        fsize = f.stat().st_size
        if current and (len(current) >= max_files or size + fsize > max_bytes):
            commits.append(current)
            current, size = [], 0
        current.append(f)
        size += fsize
    if current:
        commits.append(current)
    # README.md last within the last commit, so a card validation error comes after the data is safe
    meta.sort(key=lambda p: (p.name == "README.md", p.as_posix()))
    if meta:
        commits.append(meta)
    return commits


def _scrub(message: str, token: str | None) -> str:
    line = (message.strip().splitlines() or ["unknown error"])[0]
    return line.replace(token, "***") if token else line


_status = http_status  # pipelines/http_status.py: the one HTTP status policy


def push_dataset(root: Path, repo_id: str, *, private: bool = False, revision: str | None = None,
                 endpoint: str | None = None, token: str | None = None,
                 max_commit_files: int = DEFAULT_MAX_COMMIT_FILES,
                 max_commit_bytes: int = DEFAULT_MAX_COMMIT_BYTES,
                 progress: Callable[[str], None] | None = None) -> PushResult:
    """Create ``repo_id`` (a dataset repo) if needed and upload data, card and plots to it."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from pipelines.card import publishable_files, write_card

    root = Path(root)
    if not root.is_dir():
        raise PublishError(f"no such directory: {root}")
    if "/" not in repo_id:
        raise PublishError(f"--repo must be OWNER/NAME, got {repo_id!r}")
    tok = resolve_token(token)
    say = progress or (lambda _msg: None)
    api = HfApi(endpoint=endpoint, token=tok)
    try:
        try:
            user = api.whoami()
        except HfHubHTTPError as exc:
            if _status(exc) in (401, 403):
                raise PublishError(f"the Hugging Face Hub rejected the token (HTTP {_status(exc)}): "
                                   "set a valid HF_TOKEN or run `hf auth login`") from None
            raise
        say(f"logged in as {user.get('name', '?')}")
        if not (root / "README.md").is_file():
            write_card(root, repo_id=repo_id)
            say("wrote the dataset card (README.md)")
        files = publishable_files(root)
        if not files:
            raise PublishError(f"nothing to publish under {root}")
        repo_url = str(api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True))
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True)
        result = PushResult(repo_url, revision or "main")
        plan = plan_commits(root, files, max_commit_files, max_commit_bytes)
        for i, chunk in enumerate(plan, 1):
            ops = [CommitOperationAdd(path_in_repo=f.relative_to(root).as_posix(), path_or_fileobj=str(f))
                   for f in chunk]
            what = "card, plots and stats" if chunk[0].suffix in METADATA_SUFFIXES else f"{len(chunk)} data files"
            info = api.create_commit(repo_id, ops, commit_message=f"tokenmill: upload {what} ({i}/{len(plan)})",
                                     repo_type="dataset", revision=revision)
            result.commits.append(info.oid)
            result.files.extend(op.path_in_repo for op in ops)
            say(f"commit {i}/{len(plan)}: {what}")
        return result
    except PublishError:
        raise
    except HfHubHTTPError as exc:
        raise PublishError(f"the Hub refused the push (HTTP {_status(exc)}): {_scrub(str(exc), tok)}") from None
    except ValueError as exc:  # e.g. invalid card metadata reported by /api/validate-yaml
        raise PublishError(_scrub(" ".join(str(exc).split()), tok)) from None
    except Exception as exc:  # connection errors of httpx2, I/O errors...: one line, no traceback
        raise PublishError(f"push failed ({type(exc).__name__}): {_scrub(str(exc), tok)}") from None
