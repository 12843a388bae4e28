"""`tokenmill serve` as real clients use it: the official `openai` client against a real server
subprocess on a tiny checkpoint fine-tuned to call the python tool. Streaming equals the
non-streamed answer, n and seeds are honoured, bad requests get OpenAI-shaped errors naming the
parameter, tool calls round-trip in the OpenAI format, concurrent requests are batched without
changing anyone's answer, and a request whose client disconnects stops generating."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from pipelines.chat import OPENAI_TOOLS
from tests.serve_helpers import ServeProcess
from tests.test_trainer_data import TOOL_CONV, tiny_checkpoint, write_conversations

KEY = "sk-test-tokenmill"
NAME = "tiny-tools"
CAP = 50_000  # long enough that only a cancellation ends a max_tokens=CAP request soon
ASK = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+3?"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Base URL of `tokenmill serve --api-key ...` on a free port over a tool-tuned tiny model."""
    import torch

    from trainer.config import TrainConfig
    from trainer.sft import sft

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("serve_openai")
    base = tiny_checkpoint(d, steps=10, block_size=128)
    write_conversations(d / "convs", [TOOL_CONV, TOOL_CONV[1:]])
    sft(
        base,
        d / "convs",
        d / "sft",
        TrainConfig(steps=120, batch_size=2, lr=3e-3, warmup_steps=5, eval_every=0, progress=False),
    )
    with ServeProcess(
        d / "sft",
        d / "server.log",
        "--model-name",
        NAME,
        "--api-key",
        KEY,
        "--max-batch",
        "8",
        "--max-waiting",
        "16",
        "--max-tokens-cap",
        str(CAP),
        "--max-request-bytes",
        "100000",
        env={"OMP_NUM_THREADS": "1"},
    ) as srv:
        yield srv.url


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0, timeout=60)


def _raw(server: str, path: str, body, key: str | None = KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if isinstance(body, (bytes, str)):
        return httpx.post(
            f"{server}{path}",
            content=body,
            headers={**headers, "Content-Type": "application/json"},
            timeout=60,
        )
    return httpx.post(f"{server}{path}", json=body, headers=headers, timeout=60)


def test_streamed_equals_non_streamed_chat_and_completions(client):
    full = client.chat.completions.create(model=NAME, messages=ASK, temperature=0, max_tokens=40)
    stream = client.chat.completions.create(
        model=NAME,
        messages=ASK,
        temperature=0,
        max_tokens=40,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert len(chunks) > 3  # really streamed, token by token
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content and text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == full.choices[
        0
    ].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage == full.usage  # include_usage: last chunk
    assert all(c.usage is None for c in chunks[:-1])

    done = client.completions.create(
        model=NAME, prompt="The number 12 is", temperature=0, max_tokens=12
    )
    parts = list(
        client.completions.create(
            model=NAME, prompt="The number 12 is", temperature=0, max_tokens=12, stream=True
        )
    )
    assert "".join(p.choices[0].text for p in parts) == done.choices[0].text
    assert parts[-1].choices[0].finish_reason == done.choices[0].finish_reason


def test_sse_wire_format_ends_with_done(server):
    with httpx.stream(
        "POST",
        f"{server}/v1/chat/completions",
        timeout=60,
        headers={"Authorization": f"Bearer {KEY}"},
        json={"model": NAME, "messages": ASK, "max_tokens": 5, "stream": True},
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [ln for ln in r.iter_lines() if ln]
    assert all(ln.startswith("data: ") for ln in lines)
    assert lines[-1] == "data: [DONE]"
    first = json.loads(lines[0][6:])
    assert (
        first["object"] == "chat.completion.chunk"
        and first["choices"][0]["delta"]["role"] == "assistant"
    )


def test_n_seed_and_sampling_parameters(client):
    r = client.chat.completions.create(
        model=NAME, messages=ASK, n=2, temperature=1.0, seed=5, max_tokens=16
    )
    assert [c.index for c in r.choices] == [0, 1]
    again = client.chat.completions.create(
        model=NAME, messages=ASK, n=2, temperature=1.0, seed=5, max_tokens=16
    )
    assert [c.message.content for c in again.choices] == [c.message.content for c in r.choices]
    texts = {
        client.completions.create(
            model=NAME, prompt="It comes after", temperature=1.5, seed=s, max_tokens=12
        )
        .choices[0]
        .text
        for s in range(4)
    }
    assert len(texts) > 1  # seeds differ: sampling really samples
    # top_p that keeps only the most likely token is greedy
    greedy = client.completions.create(
        model=NAME, prompt="It comes after", temperature=0, max_tokens=12
    )
    nucleus = client.completions.create(
        model=NAME, prompt="It comes after", temperature=1.0, top_p=1e-6, seed=3, max_tokens=12
    )
    assert nucleus.choices[0].text == greedy.choices[0].text
    two = client.completions.create(
        model=NAME, prompt=["The number 4 is", "It comes after"], n=2, temperature=0, max_tokens=6
    )
    assert [c.index for c in two.choices] == [0, 1, 2, 3]
    assert (
        two.choices[0].text == two.choices[1].text
        and two.choices[2].text == greedy.choices[0].text[: len(two.choices[2].text)]
    )


def test_stop_strings_cut_the_text_and_the_billed_tokens(client):
    full = client.completions.create(
        model=NAME, prompt="The number 12 is", temperature=0, max_tokens=20
    )
    text = full.choices[0].text
    assert len(text) > 6
    stop = text[4:7]
    cut = client.completions.create(
        model=NAME, prompt="The number 12 is", temperature=0, max_tokens=20, stop=[stop]
    )
    assert (
        cut.choices[0].text == text[: text.index(stop)] and cut.choices[0].finish_reason == "stop"
    )
    assert cut.usage.completion_tokens < full.usage.completion_tokens
    streamed = list(
        client.completions.create(
            model=NAME,
            prompt="The number 12 is",
            temperature=0,
            max_tokens=20,
            stop=stop,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(p.choices[0].text for p in streamed if p.choices) == cut.choices[0].text
    assert streamed[-1].usage.completion_tokens == cut.usage.completion_tokens


def test_logprobs(client):
    r = client.chat.completions.create(
        model=NAME, messages=ASK, temperature=0, max_tokens=10, logprobs=True, top_logprobs=2
    )
    lp = r.choices[0].logprobs.content
    assert (
        "".join(e.token for e in lp)
        == r.choices[0].message.content[: len("".join(e.token for e in lp))]
    )
    assert 0 < len(lp) <= r.usage.completion_tokens
    for e in lp:  # greedy: the chosen token is the most likely
        assert e.logprob <= 0 and len(e.top_logprobs) == 2
        assert e.top_logprobs[0].token == e.token and e.top_logprobs[0].logprob == pytest.approx(
            e.logprob
        )
    c = client.completions.create(
        model=NAME, prompt="The number", temperature=0, max_tokens=5, logprobs=1
    )
    assert len(c.choices[0].logprobs.token_logprobs) == len(c.choices[0].logprobs.tokens) > 0


def test_tool_call_round_trip(client):
    r = client.chat.completions.create(
        model=NAME, messages=ASK, tools=OPENAI_TOOLS, temperature=0, max_tokens=40
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "python"
    assert json.loads(call.function.arguments) == {"code": "print(2+3)"}
    assert choice.message.content == "Let me compute. "
    # the result goes back as an OpenAI `tool` message and the same assistant turn continues
    follow = ASK + [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "5\n"},
    ]
    answer = client.chat.completions.create(
        model=NAME, messages=follow, tools=OPENAI_TOOLS, temperature=0, max_tokens=20
    )
    assert answer.choices[0].message.content == "Answer: 5"
    assert answer.choices[0].finish_reason == "stop"
    # streamed: the text before the call, then the call as a tool_calls delta
    chunks = list(
        client.chat.completions.create(
            model=NAME, messages=ASK, tools=OPENAI_TOOLS, temperature=0, max_tokens=40, stream=True
        )
    )
    deltas = [c.choices[0].delta for c in chunks]
    assert "".join(d.content or "" for d in deltas) == "Let me compute. "
    streamed_calls = [tc for d in deltas for tc in d.tool_calls or []]
    assert [tc.function.name for tc in streamed_calls] == ["python"]
    assert json.loads(streamed_calls[0].function.arguments) == {"code": "print(2+3)"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    # without tools the model's markup is plain text (as `tokenmill chat` sees it)
    plain = client.chat.completions.create(model=NAME, messages=ASK, temperature=0, max_tokens=40)
    assert "<|python_start|>print(2+3)<|python_end|>" in plain.choices[0].message.content
    # tool_choice "none": the model may not call
    none = client.chat.completions.create(
        model=NAME,
        messages=ASK,
        tools=OPENAI_TOOLS,
        tool_choice="none",
        temperature=0,
        max_tokens=20,
    )
    assert (
        none.choices[0].message.tool_calls is None
        and "<|python_start|>" not in none.choices[0].message.content
    )
    # a tool result that answers no call is a 400, not a crash
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=NAME,
            messages=ASK + [{"role": "tool", "tool_call_id": "x", "content": "5"}],
            max_tokens=5,
        )
    assert e.value.param == "messages"


BAD = [  # (request changes, status, param)
    ({"model": "gpt-4o"}, 404, "model"),
    ({"messages": []}, 400, "messages"),
    ({"max_tokens": -1}, 400, "max_tokens"),
    ({"max_tokens": 0}, 400, "max_tokens"),
    ({"max_tokens": CAP + 1}, 400, "max_tokens"),
    ({"temperature": 1e-300}, 400, "temperature"),
    ({"temperature": 3}, 400, "temperature"),
    ({"top_k": 0}, 400, "top_k"),
    ({"top_k": -5}, 400, "top_k"),
    ({"top_p": 0}, 400, "top_p"),
    ({"seed": 2**70}, 400, "seed"),
    ({"n": 0}, 400, "n"),
    ({"n": 99}, 400, "n"),
    ({"stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ({"logit_bias": {"1": 5}}, 400, "logit_bias"),
    ({"response_format": {"type": "json_object"}}, 400, "response_format"),
    ({"frequency_penalty": 0.5}, 400, "frequency_penalty"),
    ({"functions": [{"name": "f"}]}, 400, "functions"),
    ({"tools": [{"type": "function", "function": {"name": "weather"}}]}, 400, "tools.0"),
    ({"tools": OPENAI_TOOLS, "tool_choice": "required"}, 400, "tool_choice"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages"),
    ({"messages": [{"role": "user", "content": "word " * 300}]}, 400, "messages"),
]


@pytest.mark.parametrize(("change", "status", "param"), BAD)
def test_bad_requests_get_openai_errors(server, change, status, param):
    body = {"model": NAME, "messages": ASK, "max_tokens": 4, **change}
    r = _raw(server, "/v1/chat/completions", body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    assert err["param"] == param


def test_non_finite_numbers_and_transport_errors(server, client):
    for value in (
        "NaN",
        "Infinity",
        "-Infinity",
    ):  # Python's json reads these; JSON does not have them
        raw = f'{{"model": "{NAME}", "prompt": "x", "temperature": {value}}}'
        r = _raw(server, "/v1/completions", raw)
        assert r.status_code == 400 and r.json()["error"]["param"] == "temperature"
    r = _raw(server, "/v1/completions", b'{"model": ')
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]
    r = _raw(server, "/v1/completions", {"model": NAME, "prompt": "x" * 200_000})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    r = _raw(server, "/v1/completions", {"model": NAME, "prompt": "x"}, key="wrong")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = _raw(server, "/v1/completions", {"prompt": "x"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    r = httpx.get(f"{server}/v1/nowhere", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 404 and "error" in r.json()
    with pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve("gpt-4o")
    assert e.value.code == "model_not_found"
    assert client.models.retrieve(NAME).id == NAME
    assert [m.id for m in client.models.list()] == [NAME]
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=NAME, prompt="x", max_tokens=2, extra_body={"mirostat": 1})
    assert e.value.param == "mirostat" and e.value.code == "unsupported_parameter"
    health = httpx.get(f"{server}/health").json()  # no key needed
    assert health["status"] == "ok" and health["max_batch"] == 8


def test_concurrent_requests_are_batched_and_answer_as_alone(server, client):
    prompts = [f"The number {i} is" for i in range(12)]
    alone = [
        client.completions.create(model=NAME, prompt=p, temperature=0, max_tokens=24)
        .choices[0]
        .text
        for p in prompts
    ]
    with ThreadPoolExecutor(12) as pool:
        together = list(
            pool.map(
                lambda p: (
                    client.completions.create(model=NAME, prompt=p, temperature=0, max_tokens=24)
                    .choices[0]
                    .text
                ),
                prompts,
            )
        )
    assert together == alone


def test_full_queue_is_429_and_a_gone_client_stops_generation(server):
    headers = {"Authorization": f"Bearer {KEY}"}
    long = {"model": NAME, "prompt": "The number", "max_tokens": CAP, "ignore_eos": True, "n": 8}

    def health() -> dict:
        return httpx.get(f"{server}/health").json()

    # a streaming client reads a little and hangs up: its sequences leave the batch
    with httpx.stream(
        "POST",
        f"{server}/v1/completions",
        json={**long, "stream": True},
        headers=headers,
        timeout=30,
    ) as r:
        it = r.iter_lines()
        for _ in range(3):
            next(it)
        assert health()["active"] == 8
        # 8 generating + 16 waiting fill the server: one more request is a 429 with Retry-After
        blockers = [
            threading.Thread(
                target=lambda: _raw(server, "/v1/completions", {**long, "max_tokens": 50})
            )
            for _ in range(2)
        ]
        for t in blockers:
            t.start()
        deadline = time.monotonic() + 10
        while health()["waiting"] < 16 and time.monotonic() < deadline:
            time.sleep(0.05)
        busy = _raw(server, "/v1/completions", {"model": NAME, "prompt": "x", "max_tokens": 2})
        assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
        assert busy.json()["error"]["type"] == "rate_limit_error"
    for t in blockers:
        t.join(60)
    deadline = time.monotonic() + 10
    while health()["active"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert health()["active"] == 0  # nothing left generating for the gone client

    # a non-streaming client that gives up (times out): its generation is cancelled too
    gone = threading.Thread(
        target=lambda: pytest.raises(
            httpx.ReadTimeout,
            httpx.post,
            f"{server}/v1/completions",
            json={**long, "n": 1},
            headers=headers,
            timeout=2.0,
        )
    )
    gone.start()
    deadline = time.monotonic() + 10
    while health()["active"] != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert health()["active"] == 1  # generating ...
    gone.join(30)
    t0 = time.monotonic()
    while health()["active"] and time.monotonic() - t0 < 10:
        time.sleep(0.1)
    assert health()["active"] == 0  # ... and stopped soon after the client left
    assert time.monotonic() - t0 < 3
