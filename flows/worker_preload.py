"""Imported once by the forkserver of the FineWeb worker pool (``flows/workers.py``), so that
every worker forks with the heavy modules already loaded instead of importing them itself.

What a worker would otherwise import on its own (~0.6 s of CPU each on the machine of record):
the stage code and what it pulls in (pyarrow, numpy, trafilatura + lxml, fastText, tldextract,
xxhash, datatrove's text constants) and pandas, which pyarrow imports the first time it converts
a Python list (its pandas shim checks whether a list is a pandas object), i.e. at the first
Parquet flush of every shard. Config-dependent state (the fastText model, blocklists) is not
loaded here: each worker sets its steps up in the pool initializer, as before.

Import errors are ignored by the forkserver (a missing optional module is then imported, or
not, by the worker as usual); nothing here changes what a worker computes.
"""

from __future__ import annotations

import contextlib

import pyarrow as pa
import pyarrow.parquet  # noqa: F401

import flows.workers  # noqa: F401 - pipelines.fineweb, schemas, pyarrow, numpy
import pipelines.extract  # noqa: F401
import pipelines.langid  # noqa: F401
import pipelines.pii  # noqa: F401
import pipelines.quality  # noqa: F401
import pipelines.urlfilter  # noqa: F401

with contextlib.suppress(ImportError):
    import trafilatura  # noqa: F401
    import trafilatura.deduplication  # noqa: F401
with contextlib.suppress(ImportError):
    import fasttext  # noqa: F401
with contextlib.suppress(ImportError):
    import tldextract  # noqa: F401
with contextlib.suppress(ImportError):
    import xxhash  # noqa: F401

pa.array(["warm"], type=pa.string())  # pyarrow's one-time pandas check (imports pandas if installed)


def _in_forkserver() -> bool:
    """Whether this import runs in the forkserver's ``main`` (its preload step)."""
    import sys

    frame = sys._getframe()
    while frame is not None:
        code = frame.f_code
        if code.co_name == "main" and code.co_filename.endswith("multiprocessing/forkserver.py"):
            return True
        frame = frame.f_back
    return False


def _exit_now(pid: int) -> None:
    """The forkserver's exit (our end of its pipe closed; its listener is closed by then):
    skip the interpreter teardown of everything preloaded here (~0.2 s of CPU the CLI would
    wait for when it reaps the forkserver). Workers forked from it end with ``os._exit`` and
    never run atexit handlers; the pid check covers any other fork."""
    import os
    import sys

    if os.getpid() == pid:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(0)  # the forkserver's own exit status (SystemExit without a code)


if _in_forkserver():
    import atexit
    import os

    atexit.register(_exit_now, os.getpid())
