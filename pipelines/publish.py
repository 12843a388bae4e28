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
* only regular files inside the folder: a symlink whose target lies outside it (a README.md
  pointing at ~/.ssh/id_rsa) is refused before anything is sent; one inside is uploaded as the
  file it points to.
* every Hub call has a timeout (huggingface_hub's own client has none: a black-hole endpoint
  hung a push forever); timeouts, connection errors and transient HTTP statuses
  (``pipelines.http_status``) are retried with backoff a bounded number of times, every other
  error fails at once.
* removed documents are not published unless asked (``include_removed``), and then only as
  extracted, PII-scrubbed text (``pipelines.card.public_removed``), never raw HTML.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pipelines.http_status import http_status, is_transient_status

DEFAULT_MAX_COMMIT_FILES = 200
DEFAULT_MAX_COMMIT_BYTES = 2 * 1024**3
METADATA_SUFFIXES = {".md", ".json", ".png"}
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_RETRIES = 3
T = TypeVar("T")


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


def plan_commits(
    root: Path,
    files: list[Path],
    max_files: int = DEFAULT_MAX_COMMIT_FILES,
    max_bytes: int = DEFAULT_MAX_COMMIT_BYTES,
) -> list[list[Path]]:
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


def is_transient(exc: BaseException) -> bool:
    """Worth another try: a timeout, a dropped connection, or a transient HTTP status
    (``pipelines.http_status``: 408, 409, 425, 429, 5xx but 501/505)."""
    import httpx2

    if isinstance(exc, httpx2.TimeoutException | httpx2.NetworkError | httpx2.RemoteProtocolError):
        return True
    return is_transient_status(_status(exc))


def with_retries(
    call: Callable[[], T], retries: int, what: str, say: Callable[[str], None], wait_s: float = 1.0
) -> T:
    """``call()``, retried up to ``retries`` times (backoff 1, 2, 4... s) on transient errors only."""
    for attempt in range(retries + 1):
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - sorted below: transient or not
            if attempt >= retries or not is_transient(exc):
                raise
            say(f"{what}: {type(exc).__name__}, retrying ({attempt + 1}/{retries})")
            time.sleep(wait_s * 2**attempt)
    raise AssertionError("unreachable")


def _set_timeout(timeout_s: float) -> None:
    """Give huggingface_hub's shared HTTP client a timeout (its default client has none)."""
    import httpx2
    from huggingface_hub import set_client_factory

    def factory() -> httpx2.Client:
        from huggingface_hub.utils._http import default_client_factory

        client = default_client_factory()
        client.timeout = httpx2.Timeout(timeout_s)
        return client

    set_client_factory(factory)


def checked_files(root: Path, files: list[Path]) -> list[tuple[Path, Path]]:
    """``(path in the folder, file to read)`` for each file, refusing anything that is not a
    regular file inside ``root`` (a symlink is followed only when its target is inside)."""
    base = root.resolve()
    out = []
    for f in files:
        target = f.resolve()
        if not target.is_relative_to(base):
            raise PublishError(
                f"refusing to publish {f.relative_to(root).as_posix()}: it is a link "
                "to a file outside the folder"
            )
        if not target.is_file():
            raise PublishError(
                f"refusing to publish {f.relative_to(root).as_posix()}: not a regular file"
            )
        out.append((f, target))
    return out


def _card_declares_removed(readme: Path) -> bool:
    import re

    import yaml

    m = re.match(r"^---\n(.*?)\n---\n", readme.read_text(encoding="utf-8"), re.S)
    meta = (yaml.safe_load(m.group(1)) if m else None) or {}
    return any(c.get("config_name") == "removed" for c in meta.get("configs") or [])


def push_dataset(
    root: Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    max_commit_files: int = DEFAULT_MAX_COMMIT_FILES,
    max_commit_bytes: int = DEFAULT_MAX_COMMIT_BYTES,
    progress: Callable[[str], None] | None = None,
    include_removed: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    retries: int = DEFAULT_RETRIES,
) -> PushResult:
    """Create ``repo_id`` (a dataset repo) if needed and upload data, card and plots to it."""
    import pyarrow.parquet as pq
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from pipelines.card import public_removed, write_card
    from pipelines.card_summary import publishable_files, scan_groups

    root = Path(root)
    if not root.is_dir():
        raise PublishError(f"no such directory: {root}")
    if "/" not in repo_id:
        raise PublishError(f"--repo must be OWNER/NAME, got {repo_id!r}")
    tok = resolve_token(token)
    say = progress or (lambda _msg: None)
    _set_timeout(timeout_s)
    api = HfApi(endpoint=endpoint, token=tok)

    def hub(what: str, call: Callable[[], T]) -> T:
        return with_retries(call, retries, what, say)

    readme = root / "README.md"
    if readme.is_symlink() or readme.exists():
        checked_files(root, [readme])  # before anything is sent
        if _card_declares_removed(readme) != include_removed:
            raise PublishError(
                "the card (README.md) "
                + ("declares" if not include_removed else "does not declare")
                + " the removed config: run `tokenmill card DIR"
                + (" --include-removed" if include_removed else "")
                + "` first, or push "
                + ("with" if not include_removed else "without")
                + " --include-removed"
            )
    checked_files(root, publishable_files(root, include_removed))  # before anything is sent/read
    try:
        try:
            user = hub("whoami", api.whoami)
        except HfHubHTTPError as exc:
            if _status(exc) in (401, 403):
                raise PublishError(
                    f"the Hugging Face Hub rejected the token (HTTP {_status(exc)}): "
                    "set a valid HF_TOKEN or run `hf auth login`"
                ) from None
            raise
        say(f"logged in as {user.get('name', '?')}")
        if not readme.is_file():
            write_card(root, repo_id=repo_id, include_removed=include_removed)
            say("wrote the dataset card (README.md)")
        files = checked_files(root, publishable_files(root, include_removed))
        if not files:
            raise PublishError(f"nothing to publish under {root}")
        removed = {f for g in scan_groups(root) if g.kind == "removed" for f in g.files}
        repo_url = str(
            hub(
                "create_repo",
                lambda: api.create_repo(
                    repo_id, repo_type="dataset", private=private, exist_ok=True
                ),
            )
        )
        if revision and revision != "main":
            hub(
                "create_branch",
                lambda: api.create_branch(
                    repo_id, branch=revision, repo_type="dataset", exist_ok=True
                ),
            )
        result = PushResult(repo_url, revision or "main")
        source = dict(files)
        plan = plan_commits(root, [f for f, _ in files], max_commit_files, max_commit_bytes)
        with tempfile.TemporaryDirectory(prefix="tokenmill-push-") as staging:
            for i, chunk in enumerate(plan, 1):
                ops = []
                for f in chunk:
                    data = source[f]
                    if f in removed:  # published reduced: extracted, PII-scrubbed text only
                        data = Path(staging) / f"{i}-{len(ops)}.parquet"
                        pq.write_table(
                            public_removed(pq.read_table(source[f])), data, compression="zstd"
                        )
                    ops.append(
                        CommitOperationAdd(
                            path_in_repo=f.relative_to(root).as_posix(), path_or_fileobj=str(data)
                        )
                    )
                what = (
                    "card, plots and stats"
                    if chunk[0].suffix in METADATA_SUFFIXES
                    else f"{len(chunk)} data files"
                )
                info = hub(
                    "create_commit",
                    lambda ops=ops, what=what, i=i: api.create_commit(
                        repo_id,
                        ops,
                        commit_message=f"tokenmill: upload {what} ({i}/{len(plan)})",
                        repo_type="dataset",
                        revision=revision,
                    ),
                )
                result.commits.append(info.oid)
                result.files.extend(op.path_in_repo for op in ops)
                say(f"commit {i}/{len(plan)}: {what}")
        return result
    except PublishError:
        raise
    except HfHubHTTPError as exc:
        raise PublishError(
            f"the Hub refused the push (HTTP {_status(exc)}): {_scrub(str(exc), tok)}"
        ) from None
    except ValueError as exc:  # e.g. invalid card metadata reported by /api/validate-yaml
        raise PublishError(_scrub(" ".join(str(exc).split()), tok)) from None
    except Exception as exc:  # connection errors of httpx2, I/O errors...: one line, no traceback
        hint = (
            f" (no answer within the {timeout_s:g} s timeout)"
            if "Timeout" in type(exc).__name__
            else ""
        )
        raise PublishError(
            f"push failed ({type(exc).__name__}){hint}: {_scrub(str(exc), tok)}"
        ) from None
