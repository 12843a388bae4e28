"""The extract stage: HTML -> main text with trafilatura, under a per-document time limit.

The call is the one datatrove's ``Trafilatura`` extractor makes (``favor_precision=True``,
``include_comments=False``, ``deduplicate=True``), so the text is the same. Removals:
``extract:timeout`` (over ``timeout_s``), ``extract:empty`` (nothing extracted),
``extract:error`` (trafilatura raised).

Speed: about half of trafilatura's time is in its XPath expressions, most of them calling EXSLT
``re:test`` back into Python per element. ``compiled_xpath`` (default on) swaps them for
compiled Python matchers that select the same elements (``pipelines/compiled_xpath.py``; checked
against lxml when installed and on every real page in the tests), so the text is byte-identical
and extraction ~1.7x faster.

Time limit: datatrove ships every document to a child process through a pipe (two pickles per
document). In the main thread we use ``setitimer(ITIMER_PROF)`` + SIGPROF instead, which costs
~2 us per document; the handler raises a BaseException subclass so trafilatura's own
``except Exception`` blocks cannot swallow it. The limit is CPU time of the worker (not wall
time, datatrove's choice): a page is removed for what it costs, so the decision is the same on
an idle machine and on one where the worker shares its core, and reruns are reproducible.
Signals only work in the main thread, so off it (Beam SDK worker threads, thread pools) we fall
back to a child-process sandbox like datatrove's, which can be killed when a page hangs.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import threading
import time

from pipelines.base import Step
from schemas.config import ExtractConfig


class ExtractTimeout(BaseException):  # noqa: N818 - BaseException on purpose (see module doc)
    """Raised inside trafilatura by the SIGPROF handler when a document runs out of time."""


def extract_text(html: str, config: ExtractConfig) -> str | None:
    """The trafilatura call itself (datatrove's ``Trafilatura.extract``)."""
    from trafilatura import extract

    return extract(
        html,
        favor_precision=config.favour_precision,
        include_comments=config.include_comments,
        include_tables=config.include_tables,
        deduplicate=config.deduplicate,
    )


def _raise_timeout(signum, frame) -> None:  # noqa: ARG001
    raise ExtractTimeout()


def use_compiled_xpath(on: bool) -> None:
    """Switch trafilatura's expressions to the compiled matchers (or back) in this process."""
    from pipelines import compiled_xpath

    if on:
        compiled_xpath.install()
    else:
        compiled_xpath.uninstall()


def _sandbox_worker(conn, config_json: str) -> None:
    config = ExtractConfig.model_validate_json(config_json)
    use_compiled_xpath(config.compiled_xpath)
    extract_text("<html><body><p>warm up</p></body></html>", config)
    conn.send(("ready", None))
    while True:
        try:
            html = conn.recv()
        except EOFError:
            return
        try:
            conn.send(("ok", extract_text(html, config)))
        except Exception as e:  # noqa: BLE001 - reported to the parent as extract:error
            conn.send(("error", repr(e)))


class _Sandbox:
    """A killable child process running trafilatura (used off the main thread only)."""

    def __init__(self, config: ExtractConfig) -> None:
        self.config = config
        self.proc = None
        self.conn = None

    def _start(self) -> None:
        ctx = mp.get_context("spawn")  # fork is unsafe in a threaded process
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=_sandbox_worker, args=(child, self.config.model_dump_json()), daemon=True
        )
        self.proc.start()
        child.close()
        if not self.conn.poll(60):
            self.close()
            raise RuntimeError("extract sandbox did not start")
        self.conn.recv()

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.join(1)
        self.proc = self.conn = None

    def run(self, html: str, timeout: float) -> tuple[str, str | None]:
        if self.proc is None or not self.proc.is_alive():
            self.close()
            self._start()
        self.conn.send(html)
        if self.conn.poll(timeout):
            try:
                return self.conn.recv()
            except EOFError:
                self.close()
                return "error", "sandbox died"
        self.close()  # hung or too slow: kill it, a fresh one serves the next document
        return "timeout", None


class ExtractStep(Step):
    name = "extract"

    def __init__(self, config: ExtractConfig | None = None) -> None:
        self.config = config or ExtractConfig()
        self._sandbox: _Sandbox | None = None
        self._sandbox_lock = threading.Lock()

    def setup(self) -> None:
        import logging

        import trafilatura  # noqa: F401 - import cost paid once, not on the first document

        # trafilatura logs a WARNING per page it finds nothing in: those are extract:empty
        logging.getLogger("trafilatura").setLevel(logging.ERROR)
        use_compiled_xpath(self.config.compiled_xpath)

    def start_shard(self) -> None:
        # deduplicate=True drops paragraphs seen before in this PROCESS (a global LRU cache):
        # start every shard from an empty cache so its output depends on the shard alone, not on
        # which shards the worker did before (as in datatrove, where each task extracts in a
        # fresh sandbox process). Resumed runs then give byte-identical documents. A sandbox
        # process (off the main thread) has its own cache: a fresh one serves the new shard.
        from trafilatura.deduplication import LRU_TEST

        LRU_TEST.clear()
        self.close()

    def _extract_main_thread(self, html: str) -> tuple[str, str | None]:
        timeout = self.config.timeout_s
        old = signal.signal(signal.SIGPROF, _raise_timeout)
        signal.setitimer(signal.ITIMER_PROF, timeout)
        try:
            return "ok", extract_text(html, self.config)
        except ExtractTimeout:
            return "timeout", None
        except Exception as e:  # noqa: BLE001 - recorded as extract:error
            return "error", repr(e)
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, old)

    def extract(self, html: str) -> tuple[str, str | None]:
        """Return ("ok", text|None) | ("timeout", None) | ("error", message)."""
        if self.config.timeout_s <= 0:
            try:
                return "ok", extract_text(html, self.config)
            except Exception as e:  # noqa: BLE001
                return "error", repr(e)
        if threading.current_thread() is threading.main_thread():
            try:
                return self._extract_main_thread(html)
            except ExtractTimeout:  # fired between the call's return and the timer reset
                return "timeout", None
        with self._sandbox_lock:
            if self._sandbox is None:
                self._sandbox = _Sandbox(self.config)
            return self._sandbox.run(html, self.config.timeout_s)

    def process(self, doc: dict) -> str | None:
        html = doc.get("text")
        if not html:
            return self.reason("empty")
        status, out = self.extract(html)
        if status == "timeout":
            return self.reason("timeout")
        if status == "error":
            return self.reason("error")
        if not out:
            return self.reason("empty")
        doc["text"] = out
        return None

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None


def measure(html: str, config: ExtractConfig | None = None) -> float:
    """Seconds one extraction takes (used by tests to pick a timeout that must fire)."""
    t = time.perf_counter()
    extract_text(html, config or ExtractConfig())
    return time.perf_counter() - t
