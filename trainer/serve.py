"""An OpenAI-compatible HTTP server over ``LocalModel``: ``/v1/chat/completions``,
``/v1/completions`` (both streamed as server-sent events when ``stream`` is set),
``/v1/models``, ``/v1/models/{id}`` and ``/health``.

Requests are not served one at a time: every choice of every request is a sequence in the
model's continuous-batching engine (``trainer.batching``), which decodes all of them in one
forward pass per token. When its queue is full the answer is 429 (with ``Retry-After``); when
the engine is down, 503. A request whose client disconnects is cancelled at the next token.

Tool calls use the OpenAI format: with ``tools`` in the request, our ``<|python_start|>`` /
``<|search_start|>`` spans come back as ``tool_calls`` (``finish_reason: "tool_calls"``) and
``tool`` messages are rendered back into our tokens, through the one mapping in
``pipelines/chat.py``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import Request
from pydantic import Field

from pipelines.chat import (
    IM_END,
    OPENAI_TOOLS,
    TOOL_CALLS,
    OpenAIFormatError,
    from_openai_messages,
    parse_tool_call,
    render_prompt,
    to_openai_messages,
)
from schemas.strict import StrictModel
from trainer.batching import EngineClosed, Finished, QueueFull, SamplingParams, Sequence, TokenEvent
from trainer.inference import LocalModel
from trainer.openai_api import APIError, ChatRequest, CompletionRequest, parse_request
from trainer.textstream import TextStream


class ServeConfig(StrictModel):
    """Limits and identity of one server."""

    model_name: str | None = Field(
        None, description="model id clients must send (default: the run name)"
    )
    api_key: str | None = Field(None, description="require `Authorization: Bearer KEY` on /v1")
    max_batch: int = Field(32, ge=1, description="sequences decoded together in one forward pass")
    max_waiting: int = Field(256, ge=0, description="sequences queued beyond that (then 429)")
    max_tokens_cap: int = Field(2048, ge=1, description="largest max_tokens a request may ask for")
    default_max_tokens: int = Field(
        256, ge=1, description="chat max_tokens when the request has none"
    )
    max_request_bytes: int = Field(1_000_000, ge=1024, description="largest request body")
    max_choices: int = Field(16, ge=1, description="largest n x prompts of one request")


_TOOL_NAMES = {t["function"]["name"] for t in OPENAI_TOOLS}


@dataclass
class _Choice:
    index: int
    prompt_tokens: int
    seq: Sequence
    text: TextStream
    logprobs: list[TokenEvent] = field(default_factory=list)
    finish_reason: str | None = None
    tool_calls: list[dict] | None = None
    content: str | None = None


def _choice_seed(seed: int | None, j: int) -> int | None:
    """Choice 0 uses the request's seed as is (so n=1 equals the in-process model); the others
    get distinct seeds derived from it."""
    if seed is None or j == 0:
        return seed
    return (seed + j * 0x9E3779B97F4A7C15) % 2**64


class Server:
    """The request handling, independent of the web framework's plumbing in ``build_app``."""

    def __init__(self, lm: LocalModel, config: ServeConfig):
        self.lm, self.cfg = lm, config
        self.name = config.model_name or lm.name
        tok = lm.tok
        self.eot, self.im_end = tok.eot_id, tok.special(IM_END)
        self.call_starts = {tok.special(s) for s, _ in TOOL_CALLS.values()}
        self.call_ends = {tok.special(e) for _, e in TOOL_CALLS.values()}

    # --- shared validation ---------------------------------------------------------------------
    def check_model(self, model: str) -> None:
        if model != self.name:
            raise APIError(
                404,
                f"The model {model!r} does not exist (this server serves {self.name!r})",
                param="model",
                code="model_not_found",
            )

    def max_tokens(self, req, default: int) -> int:
        asked = getattr(req, "max_completion_tokens", None) or req.max_tokens
        if asked is not None and asked > self.cfg.max_tokens_cap:
            raise APIError(
                400,
                f"max_tokens {asked} exceeds this server's cap of {self.cfg.max_tokens_cap} "
                "(tokenmill serve --max-tokens-cap)",
                param="max_tokens",
                code="invalid_value",
            )
        return asked or min(default, self.cfg.max_tokens_cap)

    def check_prompt(self, ids: list[int], param: str) -> None:
        limit = self.lm.block_size - 1
        if len(ids) > limit:
            raise APIError(
                400,
                f"the prompt is {len(ids)} tokens; this model's context holds {limit} "
                "prompt tokens",
                param=param,
                code="context_length_exceeded",
            )

    def params(
        self,
        req,
        max_tokens: int,
        stop_ids: tuple[int, ...],
        j: int,
        logprobs: int | None,
        banned: tuple[int, ...] = (),
    ) -> SamplingParams:
        temperature = 1.0 if req.temperature is None else req.temperature
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=temperature,
            top_k=req.top_k,
            top_p=1.0 if req.top_p is None else req.top_p,
            seed=_choice_seed(req.seed, j),
            stop_ids=() if req.ignore_eos else stop_ids,
            banned_ids=banned,
            logprobs=logprobs,
        )

    # --- running the choices -------------------------------------------------------------------
    def start(self, choices: list[_Choice]) -> asyncio.Queue:
        """Submit every choice to the engine (all or none: 429 when the queue is full, 503 when the
        engine is down); their events arrive on the returned queue as (choice number, event)."""
        loop = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue()

        def listener(i: int):
            def put(ev) -> None:
                try:
                    loop.call_soon_threadsafe(q.put_nowait, (i, ev))
                except RuntimeError:  # the event loop is gone (server shutting down)
                    pass

            return put

        for i, c in enumerate(choices):
            c.seq.listener = listener(i)
        try:
            self.lm.engine.submit(*(c.seq for c in choices))
        except QueueFull as e:
            raise APIError(
                429,
                f"the server is busy: {e}",
                type="rate_limit_error",
                code="rate_limit_exceeded",
                headers={"Retry-After": "1"},
            ) from None
        except EngineClosed as e:
            raise APIError(
                503,
                f"the model is not available: {e}",
                type="server_error",
                code="service_unavailable",
            ) from None
        return q

    async def follow(
        self, choices: list[_Choice], q: asyncio.Queue, is_disconnected=None, deltas: bool = True
    ) -> AsyncIterator[tuple[_Choice, str]]:
        """Yield (choice, new text) as tokens arrive (``deltas``; a non-streamed answer skips
        them) and (choice, rest) once more when it finishes (``choice.finish_reason`` set).
        Cancels whatever is left when the consumer stops early or the client goes away
        (``is_disconnected`` is polled twice a second)."""
        left, checked = len(choices), time.monotonic()
        try:
            while left:
                if is_disconnected is not None and time.monotonic() - checked > 0.5:
                    checked = time.monotonic()
                    if await is_disconnected():
                        return
                if q.empty():  # (wait_for costs a task: only when there is nothing queued)
                    try:
                        i, ev = await asyncio.wait_for(q.get(), timeout=0.5)
                    except TimeoutError:
                        continue
                else:
                    i, ev = q.get_nowait()
                c = choices[i]
                if c.finish_reason is not None:
                    continue  # events after a stop string ended the choice
                if isinstance(ev, TokenEvent):
                    stopped = c.text.push(ev.token)
                    if ev.logprob is not None:
                        c.logprobs.append(ev)
                    if not stopped:
                        delta = c.text.delta() if deltas else ""
                        if delta:
                            yield c, delta
                        continue
                    self.lm.engine.cancel(c.seq)
                    self._finish(c, "stop")
                elif isinstance(ev, Finished):
                    if ev.reason == "error":
                        raise APIError(
                            500,
                            f"generation failed: {ev.error}",
                            type="server_error",
                            code="internal_error",
                        )
                    self._finish(c, ev.reason)
                left -= 1
                yield c, c.text.delta(final=True) if c.tool_calls is None else ""
        finally:
            for c in choices:
                if c.finish_reason is None:
                    self.lm.engine.cancel(c.seq)

    def _finish(self, c: _Choice, reason: str) -> None:
        out = c.seq.out
        if reason == "stop" and out and out[-1] in self.call_ends and c.text.held_at is not None:
            full = self.lm.tok.decode(c.text.ids)
            if parse_tool_call(full):
                msg = to_openai_messages(
                    [{"role": "assistant", "content": full}],
                    id_prefix=f"call_{uuid.uuid4().hex[:12]}_",
                )[0]
                c.tool_calls, c.content = msg["tool_calls"], msg["content"]
                c.finish_reason = "tool_calls"
                return
        c.text.held_at = None  # not a complete call: the text is plain content
        c.finish_reason = "length" if reason == "length" else "stop"

    # --- request -> choices --------------------------------------------------------------------
    def chat_choices(self, req: ChatRequest) -> tuple[list[_Choice], bool]:
        self.check_model(req.model)
        try:
            messages = from_openai_messages(req.messages)
            ids = render_prompt(messages, self.lm.tok)
        except (OpenAIFormatError, ValueError, KeyError) as e:
            raise APIError(
                400, f"invalid messages: {e}", param="messages", code="invalid_value"
            ) from None
        self.check_prompt(ids, "messages")
        tools = self.tools(req)
        self.check_n(req.n)
        max_tokens = self.max_tokens(req, self.cfg.default_max_tokens)
        stops = (self.im_end, self.eot, *(sorted(self.call_ends) if tools else ()))
        banned = tuple(sorted(self.call_starts)) if req.tools and not tools else ()
        k = (req.top_logprobs or 0) if req.logprobs else None
        if req.top_logprobs and not req.logprobs:
            raise APIError(
                400, "top_logprobs needs logprobs: true", param="top_logprobs", code="invalid_value"
            )
        hide = () if req.ignore_eos else (self.im_end, self.eot)
        return [
            _Choice(
                j,
                len(ids),
                Sequence(ids, self.params(req, max_tokens, stops, j, k, banned)),
                TextStream(self.lm.tok, req.stop, hide, self.call_starts if tools else ()),
            )
            for j in range(req.n)
        ], tools

    def tools(self, req: ChatRequest) -> bool:
        """Whether the model may call tools in this request (``tools`` given, choice not none)."""
        if not req.tools:
            if req.tool_choice not in (None, "none", "auto"):
                raise APIError(
                    400,
                    "tool_choice given without tools",
                    param="tool_choice",
                    code="invalid_value",
                )
            return False
        for i, t in enumerate(req.tools):
            name = (t.get("function") or {}).get("name") if isinstance(t, dict) else None
            if not isinstance(t, dict) or t.get("type") != "function" or name not in _TOOL_NAMES:
                raise APIError(
                    400,
                    f"tools[{i}]: this model can call only the functions "
                    f"{sorted(_TOOL_NAMES)} (see pipelines.chat.OPENAI_TOOLS), got {name!r}",
                    param=f"tools.{i}",
                    code="invalid_value",
                )
        if req.tool_choice in (None, "auto"):
            return True
        if req.tool_choice == "none":
            return False
        raise APIError(
            400,
            f"unsupported tool_choice {req.tool_choice!r}: use 'auto' or 'none'",
            param="tool_choice",
            code="unsupported_parameter",
        )

    def check_n(self, total: int) -> None:
        if total > self.cfg.max_choices:
            raise APIError(
                400,
                f"{total} choices requested; this server allows {self.cfg.max_choices} "
                "per request (n x prompts)",
                param="n",
                code="invalid_value",
            )

    def completion_choices(self, req: CompletionRequest) -> list[_Choice]:
        self.check_model(req.model)
        self.check_n(req.n * len(req.prompt))
        max_tokens = self.max_tokens(req, 16)
        hide = () if req.ignore_eos else (self.eot,)
        choices = []
        for p, text in enumerate(req.prompt):
            ids = self.lm.tok.encode(text)
            self.check_prompt(ids, "prompt")
            for j in range(req.n):
                seq = Sequence(ids, self.params(req, max_tokens, (self.eot,), j, req.logprobs))
                choices.append(
                    _Choice(p * req.n + j, len(ids), seq, TextStream(self.lm.tok, req.stop, hide))
                )
        return choices

    # --- responses -----------------------------------------------------------------------------
    def usage(self, choices: list[_Choice], prompt_tokens: int) -> dict:
        done = sum(c.text.completion_tokens() for c in choices)
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": done,
            "total_tokens": prompt_tokens + done,
        }

    def _token(self, tid: int) -> str:
        return self.lm.tok.decode([tid])

    def chat_logprobs(self, c: _Choice) -> dict | None:
        if c.seq.params.logprobs is None:
            return None
        entries = []
        for ev in c.logprobs[: len(c.text.kept_ids())]:
            s = self._token(ev.token)
            entries.append(
                {
                    "token": s,
                    "logprob": ev.logprob,
                    "bytes": list(s.encode()),
                    "top_logprobs": [
                        {
                            "token": self._token(t),
                            "logprob": lp,
                            "bytes": list(self._token(t).encode()),
                        }
                        for t, lp in ev.top or []
                    ],
                }
            )
        return {"content": entries, "refusal": None}

    def completion_logprobs(self, c: _Choice) -> dict | None:
        if c.seq.params.logprobs is None:
            return None
        evs = c.logprobs[: len(c.text.kept_ids())]
        tokens = [self._token(ev.token) for ev in evs]
        offsets, at = [], 0
        for t in tokens:
            offsets.append(at)
            at += len(t)
        return {
            "tokens": tokens,
            "token_logprobs": [ev.logprob for ev in evs],
            "text_offset": offsets,
            "top_logprobs": [{self._token(t): lp for t, lp in ev.top or []} for ev in evs],
        }


class _BearerAuth:
    """Require ``Authorization: Bearer KEY`` on ``/v1`` (``/health`` stays open)."""

    def __init__(self, app, key: str):
        self.app, self.expected = app, f"Bearer {key}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/v1"):
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                from fastapi.responses import JSONResponse

                err = APIError(
                    401,
                    "invalid or missing API key (Authorization: Bearer ...)",
                    code="invalid_api_key",
                )
                await JSONResponse(err.body(), status_code=401)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _sse(obj: dict | str) -> bytes:
    return f"data: {obj if isinstance(obj, str) else json.dumps(obj)}\n\n".encode()


def build_app(lm: LocalModel, config: ServeConfig | None = None):
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    cfg = config or ServeConfig()
    srv = Server(lm, cfg)
    app = FastAPI(title="tokenmill", version="0.1.0")

    def error(e: APIError) -> JSONResponse:
        return JSONResponse(e.body(), status_code=e.status, headers=e.headers)

    @app.exception_handler(APIError)
    async def _api_error(_request, e: APIError):
        return error(e)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request, e: StarletteHTTPException):
        kind = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code)
        return error(APIError(e.status_code, str(e.detail), code=kind))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        return error(
            APIError(400, str(first.get("msg", e)), param=".".join(map(str, first.get("loc", ()))))
        )

    @app.exception_handler(Exception)
    async def _internal(_request, e: Exception):
        return error(
            APIError(
                500,
                f"internal error: {type(e).__name__}: {e}",
                type="server_error",
                code="internal_error",
            )
        )

    if cfg.api_key:  # a plain ASGI middleware: BaseHTTPMiddleware would hide client disconnects
        app.add_middleware(_BearerAuth, key=cfg.api_key)

    async def body(request: Request) -> dict:
        size = request.headers.get("content-length")
        if size and size.isdigit() and int(size) > cfg.max_request_bytes:
            raise APIError(
                413,
                f"request body of {size} bytes exceeds {cfg.max_request_bytes} "
                "(tokenmill serve --max-request-bytes)",
                code="request_too_large",
            )
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > cfg.max_request_bytes:
                raise APIError(
                    413,
                    f"request body exceeds {cfg.max_request_bytes} bytes",
                    code="request_too_large",
                )
        try:
            return json.loads(raw)
        except ValueError as e:
            raise APIError(400, f"the request body is not valid JSON: {e}") from None

    def model_card() -> dict:
        return {"id": srv.name, "object": "model", "created": 0, "owned_by": "tokenmill"}

    @app.get("/health")
    def health():
        if not lm.engine.alive:
            return error(
                APIError(
                    503,
                    f"the model is not available: {lm.engine.error or 'shut down'}",
                    type="server_error",
                    code="service_unavailable",
                )
            )
        return {"status": "ok", "model": srv.name, **lm.engine.load()}

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id:path}")
    def model(model_id: str) -> dict:
        srv.check_model(model_id)
        return model_card()

    def stream_response(chunks: AsyncIterator[bytes]) -> StreamingResponse:
        async def guarded() -> AsyncIterator[bytes]:  # an error after the 200: an error event
            try:
                async for chunk in chunks:
                    yield chunk
            except APIError as e:
                yield _sse(e.body())
                yield _sse("[DONE]")

        return StreamingResponse(
            guarded(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        req = parse_request(ChatRequest, await body(request))
        choices, _tools = srv.chat_choices(req)
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        prompt_tokens = choices[0].prompt_tokens
        head = {"id": rid, "created": created, "model": srv.name, "system_fingerprint": None}
        q = srv.start(choices)
        if not req.stream:
            async for _ in srv.follow(choices, q, request.is_disconnected, deltas=False):
                pass
            if any(c.finish_reason is None for c in choices):  # the client went away
                return JSONResponse({}, status_code=499)
            out = []
            for c in choices:
                content = c.content if c.tool_calls is not None else c.text.text
                msg = {"role": "assistant", "content": content, "refusal": None}
                if c.tool_calls is not None:
                    msg["tool_calls"] = c.tool_calls
                out.append(
                    {
                        "index": c.index,
                        "message": msg,
                        "logprobs": srv.chat_logprobs(c),
                        "finish_reason": c.finish_reason,
                    }
                )
            return {
                **head,
                "object": "chat.completion",
                "choices": out,
                "usage": srv.usage(choices, prompt_tokens),
            }

        usage = req.stream_options is not None and req.stream_options.include_usage

        def chunk(choices_: list[dict]) -> bytes:
            obj = {**head, "object": "chat.completion.chunk", "choices": choices_}
            if usage:
                obj["usage"] = None
            return _sse(obj)

        async def events() -> AsyncIterator[bytes]:
            for c in choices:  # the role comes first, as OpenAI sends it
                yield chunk(
                    [
                        {
                            "index": c.index,
                            "delta": {"role": "assistant", "content": ""},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    ]
                )
            sent_lp = {c.index: 0 for c in choices}
            async for c, delta in srv.follow(choices, q):
                lp = None
                if c.seq.params.logprobs is not None:
                    entries = srv.chat_logprobs(c)["content"]
                    upto = len(entries) if c.finish_reason else min(len(entries), len(c.text.ids))
                    lp, sent_lp[c.index] = (
                        {"content": entries[sent_lp[c.index] : upto], "refusal": None},
                        upto,
                    )
                if delta or (lp and lp["content"]):
                    yield chunk(
                        [
                            {
                                "index": c.index,
                                "delta": {"content": delta},
                                "logprobs": lp,
                                "finish_reason": None,
                            }
                        ]
                    )
                if c.finish_reason is not None:
                    if c.tool_calls is not None:
                        if c.content:
                            yield chunk(
                                [
                                    {
                                        "index": c.index,
                                        "delta": {"content": c.content[c.text.sent :]}
                                        if c.content[c.text.sent :]
                                        else {},
                                        "logprobs": None,
                                        "finish_reason": None,
                                    }
                                ]
                            )
                        calls = [{"index": k, **tc} for k, tc in enumerate(c.tool_calls)]
                        yield chunk(
                            [
                                {
                                    "index": c.index,
                                    "delta": {"tool_calls": calls},
                                    "logprobs": None,
                                    "finish_reason": None,
                                }
                            ]
                        )
                    yield chunk(
                        [
                            {
                                "index": c.index,
                                "delta": {},
                                "logprobs": None,
                                "finish_reason": c.finish_reason,
                            }
                        ]
                    )
            if usage:
                yield _sse(
                    {
                        **head,
                        "object": "chat.completion.chunk",
                        "choices": [],
                        "usage": srv.usage(choices, prompt_tokens),
                    }
                )
            yield _sse("[DONE]")

        return stream_response(events())

    @app.post("/v1/completions")
    async def completions(request: Request):
        req = parse_request(CompletionRequest, await body(request))
        choices = srv.completion_choices(req)
        rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        prompt_tokens = sum({c.index // req.n: c.prompt_tokens for c in choices}.values())
        head = {
            "id": rid,
            "object": "text_completion",
            "created": created,
            "model": srv.name,
            "system_fingerprint": None,
        }
        q = srv.start(choices)
        if not req.stream:
            async for _ in srv.follow(choices, q, request.is_disconnected, deltas=False):
                pass
            if any(c.finish_reason is None for c in choices):
                return JSONResponse({}, status_code=499)
            return {
                **head,
                "choices": [
                    {
                        "index": c.index,
                        "text": c.text.text,
                        "logprobs": srv.completion_logprobs(c),
                        "finish_reason": c.finish_reason,
                    }
                    for c in choices
                ],
                "usage": srv.usage(choices, prompt_tokens),
            }

        usage = req.stream_options is not None and req.stream_options.include_usage

        async def events() -> AsyncIterator[bytes]:
            sent_lp = {c.index: 0 for c in choices}
            async for c, delta in srv.follow(choices, q):
                lp = None
                if c.seq.params.logprobs is not None:
                    full = srv.completion_logprobs(c)
                    upto = (
                        len(full["tokens"])
                        if c.finish_reason
                        else min(len(full["tokens"]), len(c.text.ids))
                    )
                    lp = {k: v[sent_lp[c.index] : upto] for k, v in full.items()}
                    sent_lp[c.index] = upto
                if delta or c.finish_reason or (lp and lp["tokens"]):
                    obj = {
                        **head,
                        "choices": [
                            {
                                "index": c.index,
                                "text": delta,
                                "logprobs": lp,
                                "finish_reason": c.finish_reason,
                            }
                        ],
                    }
                    if usage:
                        obj["usage"] = None
                    yield _sse(obj)
            if usage:
                yield _sse({**head, "choices": [], "usage": srv.usage(choices, prompt_tokens)})
            yield _sse("[DONE]")

        return stream_response(events())

    return app


def serve(
    ckpt: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    device: str = "cpu",
    config: ServeConfig | None = None,
) -> None:
    import uvicorn

    cfg = config or ServeConfig()
    lm = LocalModel.from_checkpoint(
        ckpt, device=device, max_batch=cfg.max_batch, max_waiting=cfg.max_waiting
    )
    uvicorn.run(build_app(lm, cfg), host=host, port=port, timeout_graceful_shutdown=5)
