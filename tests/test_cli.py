"""The `tokenmill` command line: every documented command is registered, and shell-expanded globs
(``--input a.warc.gz b.warc.gz``) reach the commands as several inputs."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from flows.cli import expand_variadic
from flows.cli_app import app


def test_variadic_options_become_repeated_flags():
    argv = ["fineweb", "--input", "a.warc.gz", "b.warc.gz", "--output", "o", "-l", "en", "de", "--workers", "2"]
    assert expand_variadic(argv) == [
        "fineweb", "--input", "a.warc.gz", "--input", "b.warc.gz", "--output", "o",
        "-l", "en", "-l", "de", "--workers", "2",
    ]
    # single-valued options and positionals of other commands are left alone
    assert expand_variadic(["card", "out/x", "--license", "odc-by"]) == ["card", "out/x", "--license", "odc-by"]


def test_every_documented_command_is_registered():
    runner = CliRunner()
    top = runner.invoke(app, ["--help"]).output
    for cmd in ("fineweb", "stage", "pipeline", "demo", "tokenizer", "synth", "train", "sample",
                "chat", "serve", "card", "push", "serve-flows"):
        assert cmd in top, f"`tokenmill {cmd}` missing from --help"
    stages = runner.invoke(app, ["stage", "--help"]).output
    for name in ("read", "urlfilter", "extract", "langid", "quality", "pii", "dedup", "tokenize"):
        assert name in stages
    synth = runner.invoke(app, ["synth", "--help"]).output
    for name in ("sft", "refusal", "tooluse", "rl", "prefs", "mix"):
        assert name in synth
    train = runner.invoke(app, ["train", "--help"]).output
    for name in ("pretrain", "sft", "rl", "reward"):
        assert name in train


def test_shell_glob_inputs_reach_the_flow(tmp_path, web_warcs):
    """Two WARC files after one --input (as a shell glob expands) are both processed."""
    two = [str(p) for p in web_warcs[:2]]
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", "stage", "read", "--input", *two, "--output", str(out), "--limit", "3"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json

    stats = json.loads((out / "stats.json").read_text())
    assert len(stats["inputs"]) == 2
    assert stats["stages"]["read"]["in"] >= 2


def test_no_flow_module_shadows_the_standard_library():
    """Prefect inserts an entrypoint's folder (flows/) into sys.path when it loads a deployment; a
    ``flows/tokenize.py`` then replaced the stdlib ``tokenize`` in spawned workers and broke them."""
    from pathlib import Path

    flows_dir = Path(__file__).resolve().parents[1] / "flows"
    clashes = sorted(p.stem for p in flows_dir.glob("*.py") if p.stem in sys.stdlib_module_names)
    assert clashes == []
