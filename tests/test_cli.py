"""The `tokenmill` command line: every documented command is registered, and shell-expanded globs
(``--input a.warc.gz b.warc.gz``) reach the commands as several inputs."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from flows.cli import expand_variadic
from flows.cli_app import app


def test_variadic_options_become_repeated_flags():
    argv = [
        "fineweb",
        "--input",
        "a.warc.gz",
        "b.warc.gz",
        "--output",
        "o",
        "-l",
        "en",
        "de",
        "--workers",
        "2",
    ]
    assert expand_variadic(argv) == [
        "fineweb",
        "--input",
        "a.warc.gz",
        "--input",
        "b.warc.gz",
        "--output",
        "o",
        "-l",
        "en",
        "-l",
        "de",
        "--workers",
        "2",
    ]
    # single-valued options and positionals of other commands are left alone
    assert expand_variadic(["card", "out/x", "--license", "odc-by"]) == [
        "card",
        "out/x",
        "--license",
        "odc-by",
    ]


def test_every_documented_command_is_registered():
    runner = CliRunner()
    top = runner.invoke(app, ["--help"]).output
    for cmd in (
        "fineweb",
        "stage",
        "pipeline",
        "demo",
        "tokenizer",
        "synth",
        "train",
        "sample",
        "chat",
        "serve",
        "card",
        "push",
        "serve-flows",
    ):
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
        [
            sys.executable,
            "-m",
            "flows.cli",
            "stage",
            "read",
            "--input",
            *two,
            "--output",
            str(out),
            "--limit",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
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


# ---------------------------------------------------------------- user errors, global options


def _main(argv: list[str], capsys) -> tuple[int, str, str]:
    from flows.cli import main
    from flows.cli_app import DEBUG

    DEBUG["on"] = False
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return exc.value.code or 0, out, err


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["fineweb", "-i", "/nonexistent/*.warc.gz", "-o", "OUT"], "error: no input matches"),
        (["stage", "read", "-i", "/nonexistent/x.warc.gz", "-o", "OUT"], "error: no input matches"),
        (
            ["fineweb", "-i", "W", "-o", "OUT", "-c", "/nonexistent/c.yaml"],
            "error: cannot read config file /nonexistent/c.yaml",
        ),
    ],
)
def test_user_errors_are_one_line_without_traceback(argv, expected, capsys, web_warcs, tmp_path):
    argv = [
        str(web_warcs[0]) if a == "W" else str(tmp_path / "out") if a == "OUT" else a for a in argv
    ]
    code, _, err = _main(argv, capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), err
    assert "Traceback" not in err


def test_config_typo_is_one_line_naming_key_and_suggestion(capsys, web_warcs, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("langid:\n  languagse: [de]\n")
    code, _, err = _main(
        ["stage", "langid", "-i", str(web_warcs[0]), "-o", str(tmp_path / "o"), "-c", str(cfg)],
        capsys,
    )
    assert code == 1
    assert err.strip() == (
        f"error: {cfg}: unknown key 'langid.languagse'; did you mean "
        "'langid.languages'? (--debug shows the traceback)"
    )
    assert not (tmp_path / "o").exists()  # nothing ran


def test_debug_shows_the_traceback(web_warcs, tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "--debug",
            "fineweb",
            "-i",
            "/nonexistent/*.warc.gz",
            "-o",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0 and "Traceback" in r.stderr and "FileNotFoundError" in r.stderr


def test_bad_option_value_is_rejected(capsys, web_warcs, tmp_path):
    code, _, err = _main(
        ["fineweb", "-i", str(web_warcs[0]), "-o", str(tmp_path / "o"), "--workers", "0"], capsys
    )
    assert code == 2 and "--workers" in err and "Traceback" not in err


def test_version(capsys):
    code, out, _ = _main(["--version"], capsys)
    assert code == 0 and out.startswith("tokenmill ")


def test_stage_help_lists_only_the_options_the_stage_uses():
    from pipelines import registry

    runner = CliRunner()
    read = runner.invoke(app, ["stage", "read", "--help"], terminal_width=200).output
    assert "--max-bytes" in read and "--payload-type" in read
    assert "--languages" not in read and "--extract-timeout" not in read
    langid = runner.invoke(app, ["stage", "langid", "--help"], terminal_width=200).output
    assert "--languages" in langid and "--max-bytes" not in langid
    for stage in registry.STAGES:
        if stage.kind == "document":
            out = runner.invoke(app, ["stage", stage.name, "--help"], terminal_width=200).output
            assert stage.description.split()[0] in out
            for opt in stage.options:
                assert f"--{opt.replace('_', '-')}" in out
    full = runner.invoke(app, ["fineweb", "--help"], terminal_width=200).output
    assert "--languages" in full and "--max-bytes" in full and "--extract-timeout" in full


def test_temporary_server_start_failure_is_one_line(monkeypatch, capsys):
    import flows.cli as cli

    def boom(**_kw):
        raise RuntimeError("Timed out while attempting to connect to ephemeral Prefect API server.")

    monkeypatch.setattr(cli, "app", boom)
    code, _, err = _main(["fineweb"], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in err and "PREFECT_API_URL" in err

    def bug(**_kw):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "app", bug)
    with pytest.raises(RuntimeError, match="a bug"):  # other errors keep their traceback
        cli.main(["fineweb"])
