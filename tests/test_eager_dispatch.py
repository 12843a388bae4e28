"""Eager dispatch (flows/workers.py, flows/fineweb.py): shards start before Prefect's flow run
exists, but a shard that fails there still fails the Prefect task and flow run, loudly."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _flow_run_states(home: Path) -> list[tuple[str, str]]:
    """(flow name, state type) of every flow run in the run's Prefect database."""
    db = sqlite3.connect(home / "prefect" / "prefect.db")
    try:
        return db.execute("SELECT flow.name, flow_run.state_type FROM flow_run "
                          "JOIN flow ON flow.id = flow_run.flow_id").fetchall()
    finally:
        db.close()


@pytest.mark.parametrize("eager", ["1", "0"])
def test_unreadable_shard_fails_the_flow_run(web_warcs, tmp_path, eager):
    """A listed input that cannot be opened when its worker gets to it (here a dangling link:
    the file vanished after the CLI listed it) ends the run FAILED with the path in the error;
    the other shards are finished and recorded (a re-run resumes from them)."""
    inp = tmp_path / "in"
    inp.mkdir()
    good = inp / web_warcs[0].name
    good.symlink_to(web_warcs[0])
    vanished = inp / "vanished.warc.gz"
    vanished.symlink_to(tmp_path / "does-not-exist.warc.gz")  # listed (lexists), cannot be opened
    home = tmp_path / "home"
    env = dict(os.environ, TOKENMILL_HOME=str(home), TOKENMILL_EAGER=eager)
    env.pop("PREFECT_HOME", None)
    env.pop("PREFECT_API_URL", None)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "flows.cli", "fineweb", "--input", str(good),
                        "--input", str(vanished), "--output", str(out), "--workers", "2"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode != 0
    assert "FileNotFoundError" in r.stderr and "vanished.warc.gz" in r.stderr, r.stderr[-3000:]
    done = sorted(p.name for p in (out / "stats").glob("*.json"))
    assert len(done) == 1 and done[0].startswith(good.name.removesuffix(".warc.gz")), done
    assert not (out / "stats.json").exists()  # the run did not pretend to finish
    assert ("fineweb", "FAILED") in _flow_run_states(home), _flow_run_states(home)
