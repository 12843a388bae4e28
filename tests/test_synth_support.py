"""Shared test support for the synthesis tests (imported by them; holds no tests itself):

* ``OpenAIServer``: a REAL OpenAI-compatible HTTP server on 127.0.0.1 (``http.server`` in a
  thread) whose answers come from a deterministic Python function; it counts requests and can
  be told to fail the next requests with given status codes (retry tests);
* ``web_documents``: corpus documents extracted from the real crawl files in ../shared/data/web
  (fastwarc + trafilatura), written as a ``documents/*.parquet`` dataset like the corpus stages do.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

Responder = Callable[[dict], str]


class OpenAIServer:
    """``/v1/chat/completions`` and ``/v1/completions`` answered by ``responder(request_body)``."""

    def __init__(self, responder: Responder):
        self.responder = responder
        self.requests: list[dict] = []
        self.fail_next: list[int] = []  # status codes returned (in order) before real answers
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer._lock:
                    outer.requests.append(
                        {
                            "path": self.path,
                            "authorization": self.headers.get("Authorization"),
                            **body,
                        }
                    )
                    status = outer.fail_next.pop(0) if outer.fail_next else 200
                if status != 200:
                    self._send(status, {"error": {"message": f"injected {status}"}})
                    return
                text = outer.responder(body)
                if self.path.endswith("/chat/completions"):
                    choice = {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                elif self.path.endswith("/completions"):
                    choice = {"index": 0, "text": text, "finish_reason": "stop"}
                else:
                    self._send(404, {"error": {"message": "not found"}})
                    return
                self._send(
                    200,
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "model": body.get("model"),
                        "choices": [choice],
                    },
                )

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> OpenAIServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def last_user(body: dict) -> str:
    msgs = body.get("messages") or []
    return next(
        (m["content"] for m in reversed(msgs) if m["role"] == "user"), body.get("prompt", "")
    )


_DOCS: dict[str, list[dict]] = {}


def extract_web_documents(warcs: list[Path]) -> list[dict]:
    """English pages of the real crawl sample as corpus documents (cached per process)."""
    key = "|".join(map(str, warcs))
    if key not in _DOCS:
        import trafilatura
        from fastwarc.warc import ArchiveIterator, WarcRecordType

        docs = []
        for path in warcs:
            with open(path, "rb") as f:
                for rec in ArchiveIterator(f, record_types=WarcRecordType.response):
                    html = rec.reader.read().decode("utf-8", "replace")
                    text = trafilatura.extract(html, favor_precision=True, include_comments=False)
                    if text and len(text) > 200:
                        docs.append(
                            {
                                "id": rec.record_id,
                                "url": rec.headers.get("WARC-Target-URI", "").strip("<>"),
                                "date": rec.headers.get("WARC-Date"),
                                "source": path.name,
                                "text": text,
                                "language": "en",
                            }
                        )
        _DOCS[key] = docs
    return _DOCS[key]


@pytest.fixture(scope="session")
def web_documents(web_dir: Path, tmp_path_factory) -> Path:
    """A corpus stage output dir (``DIR/documents/*.parquet``) from the English crawl sample."""
    from pipelines.io import atomic_write_parquet
    from schemas.documents import documents_table

    out = tmp_path_factory.mktemp("corpus")
    docs = extract_web_documents(sorted(web_dir.glob("dolma-sample-*.warc.gz")))
    atomic_write_parquet(out / "documents" / "part-00000.parquet", documents_table(docs))
    return out
