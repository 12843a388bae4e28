"""Every output records what made it (run.json); a re-run with other settings never returns
the old result: it refuses with one line, or starts over with --overwrite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.fineweb import STAGES, process_shard
from pipelines.runinfo import (
    RUN_FILE,
    OutputMismatchError,
    fingerprint,
    prepare_output,
    shard_is_current,
)
from pipelines.sample_pages import write_sample_warc
from schemas.config import DedupConfig, FinewebConfig, LangIdConfig

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    return write_sample_warc(tmp_path_factory.mktemp("warc") / "sample.warc.gz")


def test_run_json_records_config_inputs_stages_version(tmp_path, sample):
    cfg = FinewebConfig(langid=LangIdConfig(languages=["de"]), workers=3)
    run = prepare_output(
        tmp_path / "out", kind="fineweb", config=cfg, inputs=[sample], stages=["read"]
    )
    on_disk = json.loads((tmp_path / "out" / RUN_FILE).read_text())
    assert on_disk == run
    assert on_disk["effective_config"]["langid"]["languages"] == ["de"]
    assert on_disk["effective_config"]["workers"] == 3
    assert on_disk["stages"] == ["read"] and on_disk["kind"] == "fineweb"
    assert on_disk["inputs"] == [
        {
            "path": str(sample.resolve()),
            "size": sample.stat().st_size,
            "mtime_ns": sample.stat().st_mtime_ns,
        }
    ]
    assert on_disk["tokenmill_version"] and on_disk["fingerprint"] == fingerprint(cfg, ["read"])


def test_rerun_with_other_settings_or_inputs_refuses_in_one_line(tmp_path, sample):
    out = tmp_path / "out"
    en = FinewebConfig()
    prepare_output(out, kind="fineweb", config=en, inputs=[sample], stages=["read"])
    # same settings (more workers is not a different output): resumes
    prepare_output(
        out,
        kind="fineweb",
        config=en.model_copy(update={"workers": 4}),
        inputs=[sample],
        stages=["read"],
    )
    de = FinewebConfig(langid=LangIdConfig(languages=["de"]))
    with pytest.raises(OutputMismatchError) as e:
        prepare_output(out, kind="fineweb", config=de, inputs=[sample], stages=["read"])
    msg = str(e.value)
    assert "\n" not in msg and "langid.languages: ['en'] -> ['de']" in msg and "--overwrite" in msg
    with pytest.raises(OutputMismatchError, match="stages"):
        prepare_output(out, kind="fineweb", config=en, inputs=[sample], stages=["read", "pii"])
    with pytest.raises(OutputMismatchError, match="'dedup'"):
        prepare_output(out, kind="dedup", config=DedupConfig(), inputs=[sample])
    os.utime(sample, ns=(sample.stat().st_atime_ns, sample.stat().st_mtime_ns + 10**9))
    with pytest.raises(OutputMismatchError, match="inputs differ: 1 changed since"):
        prepare_output(out, kind="fineweb", config=en, inputs=[sample], stages=["read"])
    extra = tmp_path / "more.warc.gz"
    extra.write_bytes(sample.read_bytes())
    with pytest.raises(OutputMismatchError, match="1 new"):
        prepare_output(out, kind="fineweb", config=en, inputs=[sample, extra], stages=["read"])
    # --overwrite starts over: the old output is gone, the new run recorded
    (out / "documents").mkdir()
    (out / "documents" / "old.parquet").write_bytes(b"old")
    run = prepare_output(
        out, kind="fineweb", config=de, inputs=[sample], stages=["read"], overwrite=True
    )
    assert (
        run["effective_config"]["langid"]["languages"] == ["de"]
        and not (out / "documents").exists()
    )


def test_an_old_output_without_run_json_is_not_trusted(tmp_path, sample):
    out = tmp_path / "legacy"
    (out / "stats").mkdir(parents=True)
    (out / "stats.json").write_text("{}")
    with pytest.raises(OutputMismatchError, match="without run.json"):
        prepare_output(out, kind="fineweb", config=FinewebConfig(), inputs=[sample])
    # an unrelated non-empty directory is used as before, and never deleted by --overwrite
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    prepare_output(other, kind="fineweb", config=FinewebConfig(), inputs=[sample], overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"


def test_a_shard_made_with_other_settings_is_redone_not_reused(tmp_path, sample):
    """The per-shard done marker carries the settings' fingerprint: the regression was
    `--languages en` then `--languages de` into one output returning the English documents."""
    out = tmp_path / "out"
    stages = ["read", "extract", "langid"]
    en, de = FinewebConfig(), FinewebConfig(langid=LangIdConfig(languages=["de"]))
    process_shard(str(sample), str(out), en, stages)
    marker = next((out / "stats").glob("*.json"))
    assert shard_is_current(marker, fingerprint(en, stages))
    assert not shard_is_current(marker, fingerprint(de, stages))
    langs_en = set(pq.read_table(out / "documents", columns=["language"]).column(0).to_pylist())
    process_shard(str(sample), str(out), de, stages)
    langs_de = set(pq.read_table(out / "documents", columns=["language"]).column(0).to_pylist())
    assert langs_en == {"en"} and langs_de == {"de"}
    assert shard_is_current(marker, fingerprint(de, stages))


def _cli(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, TOKENMILL_HOME=str(tmp / "home"))
    env.pop("PREFECT_HOME", None)
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_cli_rerun_with_other_languages_refuses_then_overwrite_recomputes(tmp_path, sample):
    out = tmp_path / "fw"
    base = ["stage", "langid", "--input", str(sample), "--output", str(out)]
    first = _cli([*base, "--languages", "en"], tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    assert json.loads((out / RUN_FILE).read_text())["effective_config"]["langid"]["languages"] == [
        "en"
    ]
    again = _cli([*base, "--languages", "de"], tmp_path)
    assert again.returncode == 1
    assert again.stderr.strip().splitlines() == [again.stderr.strip()]  # one line
    assert "langid.languages" in again.stderr and "--overwrite" in again.stderr
    assert "Traceback" not in again.stderr
    redo = _cli([*base, "--languages", "de", "--overwrite"], tmp_path)
    assert redo.returncode == 0, redo.stderr[-2000:]
    stats = json.loads((out / "stats.json").read_text())["stages"]
    assert (
        stats["langid"]["removed_by_reason"] != {}
        and stats["langid"]["kept"] == pq.read_table(out / "documents").num_rows
    )
    assert set(pq.read_table(out / "documents", columns=["language"]).column(0).to_pylist()) <= {
        "de"
    }


def test_cli_refuses_a_removed_dir_as_input_in_one_line(tmp_path):
    from tests.test_io import stage_output

    st = stage_output(tmp_path / "st")
    r = _cli(
        ["stage", "pii", "--input", str(st / "removed"), "--output", str(tmp_path / "o")], tmp_path
    )
    assert r.returncode == 1 and "REMOVED" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "documents").exists()


def test_dedup_and_tokenize_record_and_check_their_runs(tmp_path):
    """Both stages check OUT before any work: other settings are refused (they reused every
    finished step of the old run before), --overwrite starts over."""
    from flows import dedup as fd
    from flows import tokenize_flow as ft
    from schemas.config import TokenizeConfig
    from tests.test_io import stage_output

    docs = stage_output(tmp_path / "fw")
    for prepare, a, b in (
        (fd.prepare, DedupConfig(), DedupConfig(bands=7)),
        (ft.prepare, TokenizeConfig(), TokenizeConfig(seed=5)),
    ):
        out = tmp_path / f"out-{prepare.__module__}"
        prepare(str(docs), str(out), a)
        assert json.loads((out / RUN_FILE).read_text())["inputs"][0]["path"].endswith("a.parquet")
        prepare(
            str(docs),
            str(out),
            a.model_copy(update={"batch_docs": 7} if "tokenize" in str(out) else {}),
        )
        with pytest.raises(OutputMismatchError, match="--overwrite"):
            prepare(str(docs), str(out), b)
        prepare(str(docs), str(out), b, True)
        assert json.loads((out / RUN_FILE).read_text())["fingerprint"] == fingerprint(b)


def test_refuse_other_settings_before_any_work(tmp_path):
    from pipelines.runinfo import refuse_other_settings

    out = tmp_path / "dedup"
    refuse_other_settings(out, kind="dedup", config=DedupConfig())  # nothing there yet: fine
    prepare_output(out, kind="dedup", config=DedupConfig(), inputs=[])
    refuse_other_settings(out, kind="dedup", config=DedupConfig())  # the same settings: fine
    with pytest.raises(OutputMismatchError, match=r"bands: 14 -> 7.*--overwrite"):
        refuse_other_settings(out, kind="dedup", config=DedupConfig(bands=7))
    with pytest.raises(OutputMismatchError, match="it is a 'dedup' output"):
        refuse_other_settings(out, kind="tokenize", config=DedupConfig())


def test_cli_pipeline_rerun_with_other_tokenize_settings_refuses_before_the_pass(tmp_path, sample):
    """The chained pipeline checks OUT/dedup and OUT/tokenize up front: a re-run with another
    seed is refused in one line before the FineWeb pass runs again (it used to fail inside the
    flow, after the pass, with a traceback)."""
    out = tmp_path / "corpus"
    base = ["pipeline", "--input", str(sample), "--output", str(out), "--shard-tokens", "5000"]
    first = _cli(base, tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    stats = out / "fineweb" / "stats.json"
    before = stats.stat().st_mtime_ns
    again = _cli([*base, "--seed", "5"], tmp_path)
    assert again.returncode == 1
    assert again.stderr.strip().splitlines() == [again.stderr.strip()], again.stderr[-2000:]
    assert "tokenize" in again.stderr and "seed: 0 -> 5" in again.stderr
    assert "Traceback" not in again.stderr + again.stdout
    assert stats.stat().st_mtime_ns == before


def test_a_configured_path_that_does_not_exist_is_one_line_before_any_output(tmp_path, sample):
    from pipelines.fineweb import check_config_paths
    from schemas.config import CONFIG_PATHS

    for key in CONFIG_PATHS:
        section, field = key.split(".")
        cfg = FinewebConfig()
        setattr(getattr(cfg, section), field, str(tmp_path / "nope"))
        with pytest.raises(FileNotFoundError, match=f"{key}: no such .*nope"):
            check_config_paths(cfg)
    check_config_paths(FinewebConfig())  # the defaults need no path
    (tmp_path / "bad.yaml").write_text(f"quality:\n  language_settings_dir: {tmp_path / 'nope'}\n")
    out = tmp_path / "out"
    for cmd in ("fineweb", "pipeline"):
        r = _cli(
            [
                cmd,
                "--input",
                str(sample),
                "--output",
                str(out),
                "--config",
                str(tmp_path / "bad.yaml"),
            ],
            tmp_path,
        )
        assert r.returncode == 1 and "quality.language_settings_dir" in r.stderr, r.stderr[-2000:]
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr + r.stdout
        assert not out.exists()  # no run.json recorded: the corrected re-run is not refused


def test_a_rerun_sweeps_temp_files_of_killed_writers(tmp_path, sample):
    out = tmp_path / "out"
    prepare_output(out, kind="dedup", config=DedupConfig(), inputs=[sample])
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    stale = out / "_work" / "buckets" / "band-003" / f".shard-x.npy.{dead}.0badc0de.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half")
    live = out / "_work" / f".other.npy.{os.getpid()}.0badc0de.tmp"
    live.write_bytes(b"being written")
    prepare_output(out, kind="dedup", config=DedupConfig(), inputs=[sample])
    assert not stale.exists() and live.exists()


def test_edited_blocklist_or_replaced_model_is_a_new_run(tmp_path, sample):
    """The files a configured path names are settings too: a blocklist edited (same
    ``blocklist_dir``) redoes the shard and refuses the old output naming the key; a model
    file replaced at the same ``model_path`` likewise."""
    from pipelines.langid import default_model_path

    block = tmp_path / "block"
    block.mkdir()
    (block / "domains").write_text("nothing.invalid\n")
    model = tmp_path / "lid.ftz"
    model.write_bytes(Path(default_model_path()).read_bytes())
    cfg = FinewebConfig.model_validate(
        {"urlfilter": {"blocklist_dir": str(block)}, "langid": {"model_path": str(model)}}
    )
    out = tmp_path / "out"
    prepare_output(out, kind="fineweb", config=cfg, inputs=[sample])
    process_shard(str(sample), str(out), cfg)
    marker = next((out / "stats").glob("*.json"))
    stages = list(STAGES)
    assert shard_is_current(marker, fingerprint(cfg, stages))
    prepare_output(out, kind="fineweb", config=cfg, inputs=[sample])  # unchanged: resumes

    (block / "domains").write_text("nothing.invalid\nexample.com\n")
    assert not shard_is_current(marker, fingerprint(cfg, stages))
    with pytest.raises(OutputMismatchError, match=r"contents changed: urlfilter.blocklist_dir"):
        prepare_output(out, kind="fineweb", config=cfg, inputs=[sample])
    (block / "domains").write_text("nothing.invalid\n")  # back as it was: the old run again
    prepare_output(out, kind="fineweb", config=cfg, inputs=[sample])

    model.write_bytes(model.read_bytes() + b"\0")
    with pytest.raises(OutputMismatchError, match=r"contents changed: langid.model_path"):
        prepare_output(out, kind="fineweb", config=cfg, inputs=[sample])
    # a different path is named as a settings change, not as contents
    other = FinewebConfig.model_validate({"urlfilter": {"blocklist_dir": str(tmp_path)}})
    with pytest.raises(OutputMismatchError, match=r"settings differ: .*blocklist_dir"):
        prepare_output(out, kind="fineweb", config=other, inputs=[sample])
