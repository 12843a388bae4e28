"""The ranking page in a real headless Chromium (Debian chromium + chromium-driver, selenium):
load a set, rank it with keys and by drag, submit, restart the server, the ranking is still
there, the export has the implied pairs; bad input through the live API changes nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import httpx
import pytest

from pipelines.rank.db import RankStore, default_url
from pipelines.rank.export import export_pairs
from tests.test_rank import policy, write_prompts
from tests.test_synth_support import OpenAIServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
# CI (`.ci/run` installs them) must run this test; elsewhere it skips with the install hint
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER) and not os.environ.get("CI"),
    reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)",
)


class RankServer:
    """`tokenmill rank serve` as a subprocess on a free port (the URL is its first stdout line)."""

    def __init__(self, samples):
        self.samples = samples

    def __enter__(self):
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flows.cli",
                "rank",
                "serve",
                "--samples",
                str(self.samples),
                "--port",
                "0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ},
        )
        line = self.proc.stdout.readline()
        assert line.startswith("ranking page: "), line + self.proc.stderr.read()
        self.url = line.split()[2]
        for _ in range(100):
            try:
                httpx.get(self.url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        return self

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def samples(tmp_path):
    from pipelines.llm import LLMConfig
    from pipelines.synth.samples import SamplesConfig, run_samples

    with OpenAIServer(policy) as server:
        run_samples(
            SamplesConfig(
                output=str(tmp_path / "s"),
                prompts=str(write_prompts(tmp_path / "p")),
                k=4,
                n_prompts=3,
                llm=LLMConfig(base_url=server.base_url),
            )
        )
    return tmp_path / "s"


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--user-data-dir={tmp_path / 'chrome-profile'}",
    ):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def _text(driver, id_):
    return driver.find_element("id", id_).text


def _wait(cond, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached")


def test_rank_in_browser_restart_and_export(samples, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    with RankServer(samples) as srv:
        browser.get(srv.url)
        browser.find_element("id", "annotator").send_keys("ana")
        browser.find_element("id", "start").click()
        _wait(lambda: len(browser.find_elements("css selector", "#ranking li")) == 4)
        assert "What is 2 + 3?" in _text(browser, "prompt")
        _wait(lambda: "You ranked 0 of 3" in _text(browser, "progress"))
        first_set = browser.find_element("id", "task").get_attribute("data-set-id")
        items = browser.find_elements("css selector", "#ranking li")
        ids = [li.get_attribute("data-id") for li in items]
        # keys: pick response 3 and move it to the top
        body = browser.find_element("tag name", "body")
        body.send_keys("3")
        body.send_keys(Keys.ARROW_UP)
        body.send_keys(Keys.ARROW_UP)
        order = [
            li.get_attribute("data-id")
            for li in browser.find_elements("css selector", "#ranking li")
        ]
        assert order == [ids[2], ids[0], ids[1], ids[3]]
        browser.find_element("id", "submit").click()
        _wait(lambda: "Saved ranking" in _text(browser, "status"))
        _wait(lambda: browser.find_element("id", "task").get_attribute("data-set-id") != first_set)
        _wait(lambda: "You ranked 1 of 3" in _text(browser, "progress"))
        # second set: skip it; third set: drag the last response onto the first
        second = browser.find_element("id", "task").get_attribute("data-set-id")
        browser.find_element("id", "skip").click()
        _wait(
            lambda: (
                browser.find_element("id", "task").get_attribute("data-set-id")
                not in (first_set, second)
            )
        )
        items = browser.find_elements("css selector", "#ranking li")
        third_ids = [li.get_attribute("data-id") for li in items]
        ActionChains(browser).drag_and_drop(items[3], items[0]).perform()
        dragged = [
            li.get_attribute("data-id")
            for li in browser.find_elements("css selector", "#ranking li")
        ]
        assert dragged == [third_ids[3], *third_ids[:3]]
        body.send_keys(Keys.ENTER)
        _wait(lambda: "You ranked 2 of 3" in _text(browser, "progress"))
        _wait(lambda: browser.find_element("id", "done").is_displayed())

        # bad input through the live API: clear errors, nothing changes
        before = RankStore(default_url(samples)).rankings()
        r = httpx.post(
            srv.url + "api/rank", json={"set_id": first_set, "annotator": "ana", "order": ids[::-1]}
        )
        assert r.status_code == 409 and "already ranked" in r.json()["detail"]
        r = httpx.post(
            srv.url + "api/rank", json={"set_id": second, "annotator": "ben", "order": ids[:2]}
        )
        assert r.status_code == 400
        r = httpx.post(
            srv.url + "api/rank", json={"set_id": "nope", "annotator": "ben", "order": ids}
        )
        assert r.status_code == 404 and "unknown sample set" in r.json()["detail"]
        r = httpx.post(srv.url + "api/rank", json={"set_id": second, "annotator": "ben"})
        assert r.status_code == 400 and "order" in r.json()["detail"]
        r = httpx.post(
            srv.url + "api/rank", json={"set_id": second, "annotator": " ", "order": ids}
        )
        assert r.status_code == 400 and "annotator" in r.json()["detail"]
        assert RankStore(default_url(samples)).rankings() == before

    # the server is gone; a new one serves the same database
    with RankServer(samples) as srv:
        p = httpx.get(srv.url + "api/progress", params={"annotator": "ana"}).json()
        assert p["ranked"] == 2 and p["skipped"] == 1 and p["remaining"] == 0
        browser.get(srv.url)
        name = browser.find_element("id", "annotator")
        name.clear()
        name.send_keys("ana")  # a new port is a new origin: the page cannot remember the name
        browser.find_element("id", "start").click()
        _wait(lambda: "You ranked 2 of 3" in _text(browser, "progress"))
        _wait(lambda: browser.find_element("id", "done").is_displayed())
    rankings = RankStore(default_url(samples)).rankings()
    assert [r["ranking"] for r in rankings] == [
        [[i] for i in (ids[2], ids[0], ids[1], ids[3])],
        [[i] for i in dragged],
    ]
    stats = export_pairs(RankStore(default_url(samples)), tmp_path / "pairs")
    assert stats["pairs"] == 12 and stats["by_annotator"] == {"ana": 12}
    import pyarrow.parquet as pq

    rows = pq.read_table(tmp_path / "pairs" / "train").to_pylist()
    text = {
        x["id"]: x["text"] for s in RankStore(default_url(samples)).sets() for x in s["responses"]
    }
    top = [r for r in rows if r["chosen"] == text[ids[2]]]
    assert len(top) == 3 and all(r["chosen_rank"] == 1 for r in top)
    assert json.loads((tmp_path / "pairs" / "stats.json").read_text())["rankings"] == 2
