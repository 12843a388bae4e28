"""An OpenAI-compatible HTTP server over ``LocalModel`` (``/v1/chat/completions``,
``/v1/completions``, ``/v1/models``), so any OpenAI client, and the synthesis stages, can use the
project's own model. Requests are served one at a time (the model is shared)."""

from __future__ import annotations

import time
import uuid

from pydantic import BaseModel, Field

from trainer.inference import Completion, LocalModel


class Message(BaseModel):
    role: str
    content: str | None = ""


class ChatRequest(BaseModel):
    model: str | None = None
    messages: list[Message]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float = Field(1.0, description="OpenAI's default; 0 = greedy")
    top_k: int | None = None
    seed: int | None = None
    stop: str | list[str] | None = None


class CompletionRequest(BaseModel):
    model: str | None = None
    prompt: str | list[str]
    max_tokens: int = 16
    temperature: float = 1.0
    top_k: int | None = None
    seed: int | None = None
    stop: str | list[str] | None = None


def _apply_stop(c: Completion, stop: str | list[str] | None) -> tuple[str, str]:
    text, reason = c.text, c.finish_reason
    for s in [stop] if isinstance(stop, str) else (stop or []):
        if s and s in text:
            text, reason = text[:text.index(s)], "stop"
    return text, reason


def _usage(cs: list[Completion]) -> dict:
    p, c = sum(x.prompt_tokens for x in cs), sum(x.completion_tokens for x in cs)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def build_app(lm: LocalModel):
    from fastapi import FastAPI, HTTPException

    app = FastAPI(title="tokenmill", version="0.1.0")

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": lm.name, "object": "model", "created": 0, "owned_by": "tokenmill"}]}

    @app.post("/v1/chat/completions")
    def chat_completions(req: ChatRequest) -> dict:
        max_tokens = req.max_completion_tokens or req.max_tokens or 256
        try:
            c = lm.chat_full([m.model_dump() for m in req.messages], max_tokens=max_tokens,
                             temperature=req.temperature, top_k=req.top_k, seed=req.seed)
        except (ValueError, KeyError) as e:
            raise HTTPException(status_code=400, detail=str(e)) from e
        text, reason = _apply_stop(c, req.stop)
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": lm.name, "usage": _usage([c]),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason}]}

    @app.post("/v1/completions")
    def completions(req: CompletionRequest) -> dict:
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        cs = [lm.complete_full(p, max_tokens=req.max_tokens, temperature=req.temperature, top_k=req.top_k,
                               seed=req.seed) for p in prompts]
        choices = []
        for i, c in enumerate(cs):
            text, reason = _apply_stop(c, req.stop)
            choices.append({"index": i, "text": text, "finish_reason": reason, "logprobs": None})
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": lm.name, "choices": choices, "usage": _usage(cs)}

    return app


def serve(ckpt: str, host: str = "127.0.0.1", port: int = 8000, device: str = "cpu") -> None:
    import uvicorn

    uvicorn.run(build_app(LocalModel.from_checkpoint(ckpt, device=device)), host=host, port=port)
