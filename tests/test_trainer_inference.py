"""Using a trained model: deterministic sampling, the CLI, the chat tool loop, and the
OpenAI-compatible server answered over real HTTP."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import torch
from typer.testing import CliRunner

from flows.cli import app
from flows.local_server import free_port
from tests.test_trainer_data import TOOL_CONV, tiny_checkpoint, write_conversations
from trainer.chat import assistant_turn, python_tool, repl
from trainer.config import TrainConfig
from trainer.inference import LocalModel
from trainer.sft import sft

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tool_run(tmp_path_factory):
    """A tiny model fine-tuned (overfitted) on one tool-use conversation, with and without its
    system prompt: the run directory."""
    d = tmp_path_factory.mktemp("chat")
    base = tiny_checkpoint(d, steps=10, block_size=128)
    write_conversations(d / "convs", [TOOL_CONV, TOOL_CONV[1:]])
    sft(
        base,
        d / "convs",
        d / "sft",
        TrainConfig(steps=120, batch_size=2, lr=3e-3, warmup_steps=5, eval_every=0, progress=False),
    )
    return d / "sft"


@pytest.fixture(scope="module")
def tool_model(tool_run) -> LocalModel:
    return LocalModel.from_checkpoint(tool_run)


def test_temperature_zero_is_deterministic_and_seed_reproducible(tool_model):
    prompt = tool_model.tok.encode("The number 12 is")
    a = tool_model.generate(prompt, max_tokens=16)
    assert a == tool_model.generate(prompt, max_tokens=16)
    s1 = tool_model.generate(prompt, max_tokens=16, temperature=1.0, seed=7)
    assert s1 == tool_model.generate(prompt, max_tokens=16, temperature=1.0, seed=7)
    runs = {
        tuple(tool_model.generate(prompt, max_tokens=16, temperature=1.5, seed=s)) for s in range(5)
    }
    assert len(runs) > 1  # sampling really samples


def test_sample_cli_is_deterministic(tool_run, tool_model):
    runner = CliRunner()
    args = [
        "sample",
        "--ckpt",
        str(tool_run / "checkpoint.pt"),
        "--prompt",
        "The number 12 is",
        "--max-tokens",
        "12",
    ]
    r1, r2 = runner.invoke(app, args), runner.invoke(app, args)
    assert r1.exit_code == 0, r1.output
    assert (
        r1.output
        == r2.output
        == "The number 12 is" + tool_model.complete("The number 12 is", max_tokens=12) + "\n"
    )


def test_chat_runs_the_tool_and_continues_the_same_turn(tool_model):
    real_python = python_tool()  # the real sandbox (pipelines.sandbox)
    calls = []

    def python(code: str) -> str:
        calls.append(code)
        return real_python(code)

    turn = assistant_turn(tool_model, TOOL_CONV[:2], {"python": python}, max_tokens=40)
    assert calls == ["print(2+3)"]
    assert [m["role"] for m in turn] == ["assistant", "tool", "assistant"]
    assert turn[0]["content"] == TOOL_CONV[2]["content"]
    assert turn[1]["content"] == "5\n"  # computed by the sandbox, injected into the same turn
    assert turn[2]["content"] == "Answer: 5"
    # a tool the session lacks is reported to the model instead of crashing the turn
    missing = assistant_turn(tool_model, TOOL_CONV[:2], {}, max_tokens=40, max_calls=1)
    assert missing[1]["content"].startswith("error: the python tool")
    # the REPL shows the call, the output and the answer
    lines = iter(["What is 2+3?"])
    out: list[str] = []

    def read(_prompt):
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    history = repl(tool_model, {"python": python}, read=read, write=out.append, max_tokens=40)
    assert len(history) == 4 and out[-1] == "assistant> Answer: 5"
    assert out[0].startswith("[tool call]") and "print(2+3)" in out[0]


def test_server_answers_openai_style_requests(tool_model):
    import uvicorn

    from trainer.serve import build_app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(build_app(tool_model), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{port}/v1"
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        with httpx.Client(timeout=30) as client:
            models = client.get(f"{base}/models").json()
            assert models["data"][0]["id"] == tool_model.name
            msgs = [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is 2+3?"},
            ]
            r = client.post(
                f"{base}/chat/completions",
                json={
                    "model": tool_model.name,
                    "messages": msgs,
                    "temperature": 0,
                    "max_tokens": 30,
                },
            )
            assert r.status_code == 200
            body = r.json()
            expected = tool_model.chat_full(msgs, max_tokens=30)
            assert body["choices"][0]["message"] == {
                "role": "assistant",
                "content": expected.text,
                "refusal": None,
            }
            assert body["usage"] == {
                "prompt_tokens": expected.prompt_tokens,
                "completion_tokens": expected.completion_tokens,
                "total_tokens": expected.prompt_tokens + expected.completion_tokens,
            }
            assert "<|python_start|>" in expected.text  # what the model learned: call the tool
            r = client.post(
                f"{base}/completions",
                json={
                    "model": tool_model.name,
                    "prompt": "The number 4 is",
                    "max_tokens": 5,
                    "temperature": 0,
                },
            )
            c = r.json()
            assert c["object"] == "text_completion" and c["usage"]["completion_tokens"] <= 5
            assert c["usage"]["prompt_tokens"] == len(tool_model.tok.encode("The number 4 is"))
            assert (
                client.post(
                    f"{base}/chat/completions",
                    json={"model": tool_model.name, "messages": [{"role": "tool", "content": "x"}]},
                ).status_code
                == 400
            )
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_sampling_never_emits_undecodable_ids():
    from pipelines.tokenizer import load_tokenizer
    from trainer.sample import allowed_ids

    tok = load_tokenizer("cl100k_base")
    allowed = allowed_ids(tok, 100352)  # the model's padded vocab
    assert (
        allowed[tok.encode("hello")[0]]
        and allowed[tok.eot_id]
        and allowed[tok.special("<|im_start|>")]
    )
    assert not allowed[100261]  # a hole in cl100k's id space: tiktoken cannot decode it
    assert not allowed[tok.vocab_size :].any()  # embedding padding


def test_search_tool_reads_a_real_index_formatted_like_training_data(tmp_path):
    from pipelines.search import SearchIndex, format_results
    from trainer.chat import default_tools

    docs = [
        {"id": "d1", "text": "The Eiffel Tower is in Paris and was finished in 1889."},
        {"id": "d2", "text": "Mount Everest is the highest mountain above sea level."},
        {"id": "d3", "text": "The Danube flows through Vienna and Budapest."},
    ]
    index = SearchIndex.build(docs, tmp_path / "index")
    tools = default_tools(str(tmp_path / "index"))
    result = tools["search"]("When was the Eiffel Tower finished?")
    assert result.startswith("[1] (doc d1)") and "1889" in result
    assert result == format_results(index.search("When was the Eiffel Tower finished?", 3), 700)


def test_server_answers_503_when_the_model_is_down(tool_run):
    from fastapi.testclient import TestClient

    from trainer.serve import build_app

    lm = LocalModel.from_checkpoint(tool_run)  # its own engine: the module's model stays up
    client = TestClient(build_app(lm))
    body = {"model": lm.name, "prompt": "The number", "max_tokens": 3}
    assert client.post("/v1/completions", json=body).status_code == 200
    assert client.get("/health").json()["status"] == "ok"
    lm.engine.close()
    r = client.post("/v1/completions", json=body)
    assert r.status_code == 503 and r.json()["error"]["code"] == "service_unavailable"
    assert client.get("/health").status_code == 503
