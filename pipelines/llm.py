"""One LLM interface for every generator: an OpenAI-compatible HTTP endpoint or a local checkpoint.

``LLM.chat(conversations, temperature, max_tokens, n, seed)`` and ``LLM.complete(prompts, ...)``
return one string per (prompt, sample), prompt-major: ``[p0s0, p0s1, ..., p1s0, ...]``
(``LLM.sample`` groups them per prompt). ``seed`` is one int for the whole call or one int per
prompt (``request_seeds``): generators that send many similar requests give each its own seed,
or an endpoint that honours seeds answers them all alike. Sample ``j`` of a prompt uses that
prompt's seed ``+ j``, and every
single request is cached on disk under the hash of everything that determines its answer
(backend identity, messages/prompt, temperature, max_tokens, seed): a re-run of a generator costs
no request at all, and an interrupted run resumes where it stopped.

The HTTP backend runs requests concurrently (bounded) and retries transient failures (timeouts,
connection errors, 429 and 5xx) with exponential backoff, honouring ``Retry-After``; other 4xx
answers are the caller's mistake and raise ``LLMError`` at once. The local backend wraps
``trainer.inference.LocalModel`` (the project's own model; ``tokenmill serve`` exposes the same
model over HTTP for the HTTP backend).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from pipelines.http_status import TRANSIENT_HTTP_STATUS
from pipelines.io import atomic_write_text
from schemas.strict import StrictModel

Messages = list[dict[str, str]]
Seeds = int | Sequence[int]


def request_seeds(seed: int, n: int, namespace: str = "") -> list[int]:
    """``n`` distinct, reproducible per-request seeds derived from ``seed`` (31-bit, as OpenAI
    servers accept); ``namespace`` keeps the streams of different request kinds apart."""
    out: list[int] = []
    seen: set[int] = set()
    i = 0
    while len(out) < n:
        h = hashlib.sha256(f"{namespace}:{seed}:{i}".encode()).digest()
        s = int.from_bytes(h[:4], "big") & 0x7FFFFFFF
        i += 1
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def _seed_list(seed: Seeds, n_prompts: int) -> list[int]:
    if isinstance(seed, int):
        return [seed] * n_prompts
    seeds = [int(s) for s in seed]
    if len(seeds) != n_prompts:
        raise ValueError(f"{len(seeds)} seeds for {n_prompts} prompts: give one seed per prompt")
    return seeds


class LLMConfig(StrictModel):
    """Where answers come from. Defaults: an OpenAI-compatible server on localhost (e.g.
    ``tokenmill serve``), greedy-friendly limits, 4 requests in flight, 4 retries."""

    backend: Literal["openai", "local"] = Field(
        "openai", description="HTTP endpoint or local checkpoint"
    )
    base_url: str = Field(
        "http://127.0.0.1:8000/v1", description="OpenAI-compatible base URL (with /v1)"
    )
    model: str = Field("tokenmill", description="model name sent to the endpoint")
    api_key_env: str | None = Field(
        "OPENAI_API_KEY", description="env var holding the API key (unset: no auth)"
    )
    checkpoint: str | None = Field(None, description="local backend: checkpoint path")
    device: str = Field("cpu", description="local backend: torch device")
    top_k: int | None = Field(None, description="local backend: top-k sampling")
    timeout_s: float = Field(60.0, description="per-request timeout")
    max_concurrency: int = Field(4, ge=1, description="requests in flight at once")
    max_retries: int = Field(4, ge=0, description="retries of a transient failure")
    backoff_s: float = Field(0.5, ge=0, description="first retry delay; doubles each retry")
    cache_dir: str | None = Field(None, description="on-disk answer cache (None: no cache)")


class LLMError(RuntimeError):
    """A request failed for good (a 4xx answer, or retries exhausted)."""


class LLM:
    """Base class: caching, sample expansion and bounded concurrency; backends do one request."""

    def __init__(self, cache_dir: str | Path | None = None, max_concurrency: int = 1):
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.max_concurrency = max_concurrency
        self.requests = 0  # requests that reached the backend (cache misses)
        self.cache_hits = 0
        self._lock = threading.Lock()

    # -- backend surface -------------------------------------------------------------------
    def identity(self) -> dict:
        """What makes this backend's answers differ from another's (part of the cache key)."""
        raise NotImplementedError

    def _request(self, payload: dict) -> str:
        """One completion for ``payload`` (kind, messages|prompt, temperature, max_tokens, seed)."""
        raise NotImplementedError

    # -- public API --------------------------------------------------------------------------
    def chat(
        self,
        conversations: list[Messages],
        temperature: float = 0.0,
        max_tokens: int = 256,
        n: int = 1,
        seed: Seeds = 0,
    ) -> list[str]:
        """Answer each conversation ``n`` times; prompt-major flat list of strings."""
        seeds = _seed_list(seed, len(conversations))
        payloads = [
            {
                "kind": "chat",
                "messages": [{"role": m["role"], "content": m["content"]} for m in conv],
                "temperature": temperature,
                "max_tokens": max_tokens,
                "seed": s + j,
            }
            for conv, s in zip(conversations, seeds, strict=True)
            for j in range(n)
        ]
        return self._run(payloads)

    def complete(
        self,
        prompts: list[str],
        temperature: float = 0.0,
        max_tokens: int = 256,
        n: int = 1,
        seed: Seeds = 0,
    ) -> list[str]:
        """Continue each text prompt ``n`` times; prompt-major flat list of strings."""
        seeds = _seed_list(seed, len(prompts))
        payloads = [
            {
                "kind": "complete",
                "prompt": p,
                "temperature": temperature,
                "max_tokens": max_tokens,
                "seed": s + j,
            }
            for p, s in zip(prompts, seeds, strict=True)
            for j in range(n)
        ]
        return self._run(payloads)

    def sample(self, conversations: list[Messages], n: int, **kw: Any) -> list[list[str]]:
        """``chat`` grouped per conversation: ``out[i][j]`` is sample j of conversation i."""
        flat = self.chat(conversations, n=n, **kw)
        return [flat[i * n : (i + 1) * n] for i in range(len(conversations))]

    # -- machinery ---------------------------------------------------------------------------
    def cache_key(self, payload: dict) -> str:
        blob = json.dumps(
            {"backend": self.identity(), **payload}, sort_keys=True, ensure_ascii=False
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _cache_path(self, key: str) -> Path | None:
        return self.cache_dir / key[:2] / f"{key}.json" if self.cache_dir else None

    def _one(self, payload: dict) -> str:
        key = self.cache_key(payload)
        path = self._cache_path(key)
        if path is not None and path.exists():
            with self._lock:
                self.cache_hits += 1
            return json.loads(path.read_text(encoding="utf-8"))["text"]
        with self._lock:
            self.requests += 1
        text = self._request(payload)
        if path is not None:
            atomic_write_text(
                path, json.dumps({"text": text, "request": payload}, ensure_ascii=False)
            )
        return text

    def _run(self, payloads: list[dict]) -> list[str]:
        if self.max_concurrency <= 1 or len(payloads) <= 1:
            return [self._one(p) for p in payloads]
        with ThreadPoolExecutor(self.max_concurrency) as pool:
            return list(pool.map(self._one, payloads))

    def close(self) -> None:
        pass


class OpenAICompatibleLLM(LLM):
    """Any server speaking OpenAI's ``/chat/completions`` and ``/completions``."""

    TRANSIENT_STATUS = TRANSIENT_HTTP_STATUS  # pipelines/http_status.py: the one policy

    def __init__(self, config: LLMConfig):
        import httpx

        super().__init__(config.cache_dir, config.max_concurrency)
        self.config = config
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(config.api_key_env) if config.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(
            base_url=config.base_url.rstrip("/"),
            headers=headers,
            timeout=config.timeout_s,
            limits=httpx.Limits(max_connections=config.max_concurrency),
        )

    def identity(self) -> dict:
        return {
            "type": "openai",
            "base_url": self.config.base_url.rstrip("/"),
            "model": self.config.model,
        }

    def _request(self, payload: dict) -> str:
        import httpx

        body: dict[str, Any] = {
            "model": self.config.model,
            "temperature": payload["temperature"],
            "max_tokens": payload["max_tokens"],
            "seed": payload["seed"],
            "n": 1,
        }
        if payload["kind"] == "chat":
            route, body["messages"] = "/chat/completions", payload["messages"]
        else:
            route, body["prompt"] = "/completions", payload["prompt"]
        last = "no attempt"
        for attempt in range(self.config.max_retries + 1):
            delay = self.config.backoff_s * (2**attempt)
            try:
                resp = self._client.post(route, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as e:
                last = f"{type(e).__name__}: {e}"
            else:
                if resp.status_code == 200:
                    choice = resp.json()["choices"][0]
                    return (
                        choice["message"]["content"]
                        if payload["kind"] == "chat"
                        else choice["text"]
                    )
                last = f"HTTP {resp.status_code}: {resp.text[:200]}"
                if resp.status_code not in self.TRANSIENT_STATUS:
                    raise LLMError(f"{route}: {last}")
                retry_after = resp.headers.get("retry-after")
                if retry_after and retry_after.replace(".", "", 1).isdigit():
                    delay = min(float(retry_after), 60.0)
            if attempt < self.config.max_retries:
                time.sleep(delay)
        raise LLMError(f"{route}: giving up after {self.config.max_retries + 1} attempts ({last})")

    def close(self) -> None:
        self._client.close()


class LocalCheckpointLLM(LLM):
    """The project's own model, in process (``trainer.inference.LocalModel``); one at a time."""

    def __init__(self, config: LLMConfig):
        if not config.checkpoint:
            raise ValueError("the local backend needs `checkpoint`")
        super().__init__(config.cache_dir, max_concurrency=1)
        self.config = config
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from trainer.inference import LocalModel  # torch: imported only when used

            self._model = LocalModel.from_checkpoint(
                self.config.checkpoint, device=self.config.device
            )
        return self._model

    def identity(self) -> dict:
        p = Path(self.config.checkpoint)
        st = p.stat() if p.exists() else None
        return {
            "type": "local",
            "checkpoint": str(p.resolve()),
            "top_k": self.config.top_k,
            "mtime": st.st_mtime_ns if st else None,
        }

    def _request(self, payload: dict) -> str:
        kw = {
            "max_tokens": payload["max_tokens"],
            "temperature": payload["temperature"],
            "top_k": self.config.top_k,
            "seed": payload["seed"],
        }
        if payload["kind"] == "chat":
            return self.model.chat(payload["messages"], **kw)
        return self.model.complete(payload["prompt"], **kw)


def make_llm(config: LLMConfig) -> LLM:
    """The backend ``config`` names."""
    return LocalCheckpointLLM(config) if config.backend == "local" else OpenAICompatibleLLM(config)
