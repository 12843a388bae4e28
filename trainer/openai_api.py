"""The OpenAI request contract of ``tokenmill serve``: typed requests, their validation, and errors in
OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``.

Every parameter is honoured, refused with a 400 that names it, or (the few that are pure
metadata, like ``user``) accepted; nothing is silently ignored. OpenAI parameters we do not
implement are accepted only at their no-op value (``presence_penalty: 0``, ``echo: false``...).
``top_k`` and ``ignore_eos`` are extensions (as in vLLM).
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

#: The smallest positive temperature: below it logits / temperature overflow (0 means greedy).
MIN_TEMPERATURE = 0.01
INT64 = 2**63

#: OpenAI parameters accepted only at these (no-op) values.
NEUTRAL: dict[str, tuple] = {
    "presence_penalty": (0, 0.0),
    "frequency_penalty": (0, 0.0),
    "logit_bias": ({},),
    "repetition_penalty": (1, 1.0),
    "parallel_tool_calls": (True, False),
    "echo": (False,),
    "suffix": ("",),
    "best_of": (1,),
    "store": (False,),
    "metadata": ({},),
    "modalities": (["text"],),
    "response_format": ({"type": "text"},),
    "service_tier": ("auto", "default"),
}
#: Metadata with no effect on the output.
METADATA = ("user",)


class APIError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = (
            status,
            message,
            type,
            param,
            code,
        )
        self.headers = headers

    def body(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    max_tokens: int | None = None
    temperature: float | None = Field(None, description="0 = greedy; OpenAI's default is 1")
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    ignore_eos: bool = False

    @field_validator("temperature")
    @classmethod
    def _temperature(cls, v: float | None) -> float | None:
        if v is not None and not (v == 0 or (math.isfinite(v) and MIN_TEMPERATURE <= v <= 2)):
            raise ValueError(f"must be 0 (greedy) or between {MIN_TEMPERATURE} and 2, got {v!r}")
        return v

    @field_validator("top_p")
    @classmethod
    def _top_p(cls, v: float | None) -> float | None:
        if v is not None and not (math.isfinite(v) and 0 < v <= 1):
            raise ValueError(f"must be in (0, 1], got {v!r}")
        return v

    @field_validator("top_k")
    @classmethod
    def _top_k(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError(f"must be >= 1 (or absent for no top-k), got {v}")
        return v

    @field_validator("seed")
    @classmethod
    def _seed(cls, v: int | None) -> int | None:
        if v is not None and not -INT64 <= v < INT64:
            raise ValueError("must be a 64-bit integer")
        return v

    @field_validator("max_tokens", "n")
    @classmethod
    def _positive(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError(f"must be >= 1, got {v}")
        return v

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: str | list[str] | None) -> list[str]:
        stops = [v] if isinstance(v, str) else list(v or [])
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("at most 4 non-empty stop strings")
        return stops


class ChatRequest(_Request):
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_completion_tokens: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None

    @field_validator("max_completion_tokens")
    @classmethod
    def _positive_mct(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError(f"must be >= 1, got {v}")
        return v


class CompletionRequest(_Request):
    prompt: str | list[str]
    logprobs: int | None = Field(None, ge=0, le=5)

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, v: str | list[str]) -> list[str]:
        prompts = [v] if isinstance(v, str) else v
        if not prompts:
            raise ValueError("must not be empty")
        return prompts


def parse_request(cls: type[_Request], data: Any) -> _Request:
    """Validate a decoded JSON body: 400 ``APIError`` naming the first bad parameter."""
    if not isinstance(data, dict):
        raise APIError(400, "the request body must be a JSON object")
    data = dict(data)
    for name in METADATA:
        data.pop(name, None)
    for name, allowed in NEUTRAL.items():
        if name in data:
            value = data.pop(name)
            if value is not None and value not in allowed:
                raise APIError(
                    400,
                    f"unsupported parameter value {name}={value!r}: this server "
                    f"supports only {' or '.join(map(repr, allowed))}",
                    param=name,
                    code="unsupported_parameter",
                )
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        param = ".".join(str(x) for x in err["loc"]) or None
        if err["type"] == "extra_forbidden":
            raise APIError(
                400, f"unsupported parameter: {param!r}", param=param, code="unsupported_parameter"
            ) from None
        if err["type"] == "missing":
            raise APIError(
                400,
                f"missing required parameter: {param!r}",
                param=param,
                code="missing_required_parameter",
            ) from None
        msg = err["msg"].removeprefix("Value error, ")
        raise APIError(400, f"invalid {param}: {msg}", param=param, code="invalid_value") from None
