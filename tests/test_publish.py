"""`tokenmill push` against a local HTTP fake of the Hugging Face Hub API on 127.0.0.1.

The real Hub is out of reach from tests, so tests/hub_fake.py serves the endpoints
huggingface_hub calls (whoami, repo create, branch, validate-yaml, preupload, git-LFS batch +
upload, NDJSON commit, repo info) with the Hub's shapes. The push runs as a real `tokenmill`
subprocess (HF_ENDPOINT is read at import time), with the real huggingface_hub client; Xet
storage is not faked, so HF_HUB_DISABLE_XET=1 sends LFS files through classic git-LFS.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.hub_fake import HubFake, validate_card_yaml
from tests.test_card import make_corpus, make_synth

REPO = Path(__file__).resolve().parents[1]
TOKEN = "hf_tokenmillTESTsecret0123456789abcdef"


@pytest.fixture
def hub():
    with HubFake(tokens={TOKEN: "alice"}) as fake:
        yield fake


def run_cli(
    args: list[str],
    hub: HubFake,
    tmp_path: Path,
    token: str | None = TOKEN,
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(
        HF_ENDPOINT=hub.endpoint,
        HF_HOME=str(tmp_path / "hf_home"),
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        NO_PROXY="127.0.0.1",
    )
    if token is not None:
        env["HF_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_push_uploads_every_file_in_several_commits(hub: HubFake, tmp_path: Path) -> None:
    root = make_corpus(tmp_path / "corpus", shards=3)
    out = run_cli(
        [
            "push",
            str(root),
            "--repo",
            "alice/corpus",
            "--endpoint",
            hub.endpoint,
            "--max-commit-files",
            "2",
        ],
        hub,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    repo = hub.repos["alice/corpus"]
    assert repo.repo_type == "dataset" and not repo.private
    main = repo.branches["main"]
    local = {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file()
        and not p.relative_to(root)
        .as_posix()
        .startswith(("fineweb/documents/", "fineweb/removed/", "dedup/removed/"))
    }
    assert set(main.files) == set(local)  # card (written by push), plots, stats, manifest, data
    for path, data in local.items():
        assert main.files[path] == data, path  # bytes equal
    assert all(p in main.lfs for p in main.files if p.endswith((".parquet", ".png")))
    # removed documents are not published by default: 3 dedup docs + 2 token shards = 5 data
    # files -> 3 commits of <= 2 files, then the card, plots and stats in a last commit
    assert len(main.commits) == 4
    assert all(len(c.paths) <= 2 for c in main.commits[:3])
    assert "README.md" in main.commits[-1].paths
    assert not any(p.endswith(".parquet") for p in main.commits[-1].paths)
    assert "4 commits" in out.stdout
    # README went through /api/validate-yaml and its YAML is the card's
    assert hub.validated_yaml and hub.validated_yaml[-1] == local["README.md"].decode()
    meta = yaml.safe_load(
        re.match(r"^---\n(.*?)\n---\n", main.files["README.md"].decode(), re.S).group(1)
    )
    assert {c["config_name"] for c in meta["configs"]} == {"documents", "tokens"}
    assert 'load_dataset("alice/corpus"' in main.files["README.md"].decode()
    # the token is sent to the Hub, and nowhere else
    assert TOKEN not in out.stdout + out.stderr
    assert all(TOKEN.encode() not in data for data in main.files.values())
    assert any(
        {k.lower(): v for k, v in r["headers"].items()}.get("authorization") == f"Bearer {TOKEN}"
        for r in hub.requests
    )


def test_include_removed_publishes_scrubbed_extracted_text_only(
    hub: HubFake, tmp_path: Path
) -> None:
    import io

    import pyarrow.parquet as pq

    from pipelines.io import atomic_write_parquet
    from schemas.documents import removed_table

    root = make_corpus(tmp_path / "corpus", shards=1)
    atomic_write_parquet(
        root / "fineweb/removed/part-00001.parquet",
        removed_table(
            [
                {
                    "id": "h",
                    "url": "https://spam.example/",
                    "text": "<html>spam</html>",
                    "stage": "urlfilter",
                    "reason": "url:domain",
                },
                {
                    "id": "e",
                    "url": "https://x.example/",
                    "text": "mail bob@corp.example.com now",
                    "stage": "quality",
                    "reason": "quality:gopher",
                },
            ]
        ),
    )
    # the card must agree with the flag, both ways: one line, nothing sent
    assert run_cli(["card", str(root), "--no-plots"], hub, tmp_path).returncode == 0
    mismatch = run_cli(["push", str(root), "--repo", "alice/c", "--include-removed"], hub, tmp_path)
    assert mismatch.returncode == 1 and "--include-removed" in mismatch.stderr and not hub.requests
    assert (
        run_cli(["card", str(root), "--no-plots", "--include-removed"], hub, tmp_path).returncode
        == 0
    )
    assert run_cli(["push", str(root), "--repo", "alice/c"], hub, tmp_path).returncode == 1
    out = run_cli(["push", str(root), "--repo", "alice/c", "--include-removed"], hub, tmp_path)
    assert out.returncode == 0, out.stderr
    files = hub.repos["alice/c"].branches["main"].files
    rows = pq.read_table(io.BytesIO(files["fineweb/removed/part-00001.parquet"])).to_pylist()
    assert [(r["id"], r["text"]) for r in rows] == [
        ("h", None),
        ("e", "mail email@example.com now"),
    ]
    assert all(b"<html>" not in data and b"bob@corp" not in data for data in files.values())


def test_push_refuses_a_symlink_out_of_the_folder(hub: HubFake, tmp_path: Path) -> None:
    secret = tmp_path / "secret.md"
    secret.write_text("---\nlicense: mit\n---\nPRIVATE KEY material\n")
    root = make_synth(tmp_path / "synth")
    (root / "README.md").symlink_to(secret)
    out = run_cli(["push", str(root), "--repo", "alice/synth"], hub, tmp_path)
    assert (
        out.returncode == 1 and "outside the folder" in out.stderr and "Traceback" not in out.stderr
    )
    assert not hub.requests  # refused before anything was sent
    # a symlinked stats file pointing outside is refused too (the card is fine now)
    (root / "README.md").unlink()
    (root / "stats.json").unlink()
    (root / "stats.json").symlink_to(secret)
    out = run_cli(["push", str(root), "--repo", "alice/synth"], hub, tmp_path)
    assert out.returncode == 1 and "stats.json" in out.stderr and "outside the folder" in out.stderr
    assert not hub.requests
    assert all(
        b"PRIVATE KEY" not in d
        for r in hub.repos.values()
        for b in r.branches.values()
        for d in b.files.values()
    )


def test_a_black_hole_hub_fails_within_the_timeout(tmp_path: Path) -> None:
    """An endpoint that accepts the connection and never answers: push gives up after
    timeout x (retries + 1) plus backoff, with one error line (it hung forever before)."""
    import socket
    import time

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)  # the kernel accepts connections; nobody ever answers
    try:

        class Hole:
            endpoint = f"http://127.0.0.1:{hole.getsockname()[1]}"

        root = make_synth(tmp_path / "synth")
        t0 = time.monotonic()
        out = run_cli(
            [
                "push",
                str(root),
                "--repo",
                "alice/synth",
                "--endpoint",
                Hole.endpoint,
                "--timeout",
                "2",
                "--retries",
                "1",
            ],
            Hole,
            tmp_path,
        )  # type: ignore[arg-type]
        took = time.monotonic() - t0
    finally:
        hole.close()
    assert out.returncode == 1, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: push failed") and "timeout" in last.lower()
    assert "retrying (1/1)" in out.stderr and "Traceback" not in out.stderr
    assert took < 60, took


def test_only_transient_errors_are_retried() -> None:
    import httpx2

    from pipelines.publish import with_retries

    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise httpx2.ReadTimeout("slow")
        return "ok"

    assert with_retries(flaky, 3, "x", lambda _m: None, wait_s=0) == "ok" and len(calls) == 3

    def broken() -> str:
        calls.append(1)
        raise ValueError("bad card")

    calls.clear()
    with pytest.raises(ValueError):
        with_retries(broken, 3, "x", lambda _m: None, wait_s=0)
    assert len(calls) == 1

    def always() -> str:
        calls.append(1)
        raise httpx2.ReadTimeout("always")

    calls.clear()
    with pytest.raises(httpx2.ReadTimeout):
        with_retries(always, 2, "x", lambda _m: None, wait_s=0)
    assert len(calls) == 3  # 1 + 2 retries, then the error


def test_push_again_skips_unchanged_files(hub: HubFake, tmp_path: Path) -> None:
    root = make_synth(tmp_path / "synth")
    assert run_cli(["push", str(root), "--repo", "alice/synth"], hub, tmp_path).returncode == 0
    first = len(hub.repos["alice/synth"].branches["main"].commits)
    lfs_puts = sum(1 for r in hub.requests if r["method"] == "PUT")
    again = run_cli(["push", str(root), "--repo", "alice/synth"], hub, tmp_path)
    assert again.returncode == 0, again.stderr
    assert (
        len(hub.repos["alice/synth"].branches["main"].commits) == first
    )  # nothing changed, no commit
    assert sum(1 for r in hub.requests if r["method"] == "PUT") == lfs_puts  # nothing re-uploaded


def test_push_private_to_a_branch(hub: HubFake, tmp_path: Path) -> None:
    root = make_synth(tmp_path / "synth")
    out = run_cli(
        ["push", str(root), "--repo", "alice/synth", "--private", "--revision", "v1"], hub, tmp_path
    )
    assert out.returncode == 0, out.stderr
    repo = hub.repos["alice/synth"]
    assert repo.private
    assert "sft/data/part-00000.parquet" in repo.branches["v1"].files
    assert "sft/data/part-00000.parquet" not in repo.branches["main"].files


def test_rejected_token_is_one_clear_line(hub: HubFake, tmp_path: Path) -> None:
    bad = "hf_notAValidToken999"
    root = make_synth(tmp_path / "synth")
    out = run_cli(["push", str(root), "--repo", "alice/synth"], hub, tmp_path, token=bad)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "rejected the token" in lines[0] and "401" in lines[0]
    assert "Traceback" not in out.stderr and bad not in out.stdout + out.stderr
    assert "alice/synth" not in hub.repos


def test_missing_token_is_one_clear_line(hub: HubFake, tmp_path: Path) -> None:
    root = make_synth(tmp_path / "synth")
    out = run_cli(["push", str(root), "--repo", "alice/synth"], hub, tmp_path, token=None)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "error: no Hugging Face token: set HF_TOKEN or run `hf auth login`"
    ]
    assert not hub.requests


def test_invalid_card_metadata_is_reported_not_pushed(hub: HubFake, tmp_path: Path) -> None:
    root = make_synth(tmp_path / "synth")
    assert (
        run_cli(
            ["card", str(root), "--license", "not-a-license", "--no-plots"], hub, tmp_path
        ).returncode
        == 0
    )
    out = run_cli(["push", str(root), "--repo", "alice/synth"], hub, tmp_path)
    assert out.returncode == 1
    assert "license" in out.stderr and "Traceback" not in out.stderr
    assert "README.md" not in hub.repos["alice/synth"].branches["main"].files


def test_fake_validator_accepts_our_cards_and_rejects_broken_ones(tmp_path: Path) -> None:
    from pipelines.card import write_card

    card = write_card(make_corpus(tmp_path / "c"), plots=False).path.read_text()
    assert validate_card_yaml(card, "dataset") == []
    broken = card.replace("- split: validation", "- split: val idation")
    assert validate_card_yaml(broken, "dataset")
