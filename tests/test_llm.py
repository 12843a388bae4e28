"""The LLM interface against a real OpenAI-compatible HTTP server on loopback."""

from __future__ import annotations

import pytest

from pipelines.llm import LLMConfig, LLMError, make_llm
from tests.test_synth_support import OpenAIServer, last_user


def _echo(body: dict) -> str:
    return f"{last_user(body)}|t={body['temperature']}|s={body['seed']}"


def _llm(server: OpenAIServer, tmp_path, **kw):
    cfg = LLMConfig(
        base_url=server.base_url,
        model="stub",
        cache_dir=str(tmp_path / "cache"),
        backoff_s=0.01,
        **kw,
    )
    return make_llm(cfg)


def test_chat_answers_in_order_and_second_run_is_free(tmp_path):
    convs = [[{"role": "user", "content": f"q{i}"}] for i in range(6)]
    with OpenAIServer(_echo) as server:
        llm = _llm(server, tmp_path, max_concurrency=3)
        first = llm.chat(convs, temperature=0.7, n=2, seed=10)
        assert first == [f"q{i}|t=0.7|s={10 + j}" for i in range(6) for j in range(2)]
        assert len(server.requests) == 12 and llm.requests == 12
        # a fresh client (a re-run of the generator) answers from the disk cache: zero requests
        again = _llm(server, tmp_path, max_concurrency=3)
        assert again.chat(convs, temperature=0.7, n=2, seed=10) == first
        assert len(server.requests) == 12 and again.requests == 0 and again.cache_hits == 12
        # anything that changes the answer changes the key
        again.chat(convs[:1], temperature=0.7, n=1, seed=20)
        assert len(server.requests) == 13


def test_sample_groups_per_prompt_and_complete_uses_completions(tmp_path):
    with OpenAIServer(lambda b: b.get("prompt", "chat")[::-1]) as server:
        llm = _llm(server, tmp_path)
        assert llm.complete(["abc", "xy"]) == ["cba", "yx"]
        assert server.requests[0]["path"] == "/v1/completions"
        grouped = llm.sample(
            [[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]], n=3
        )
        assert [len(g) for g in grouped] == [3, 3]


def test_transient_errors_are_retried(tmp_path):
    with OpenAIServer(_echo) as server:
        server.fail_next = [503, 429, 500]
        llm = _llm(server, tmp_path, max_retries=4)
        assert llm.chat([[{"role": "user", "content": "hi"}]]) == ["hi|t=0.0|s=0"]
        assert len(server.requests) == 4


def test_client_errors_are_not_retried(tmp_path):
    with OpenAIServer(_echo) as server:
        server.fail_next = [400, 400, 400]
        llm = _llm(server, tmp_path, max_retries=4)
        with pytest.raises(LLMError, match="HTTP 400"):
            llm.chat([[{"role": "user", "content": "hi"}]])
        assert len(server.requests) == 1


def test_retries_give_up_and_nothing_is_cached(tmp_path):
    with OpenAIServer(_echo) as server:
        server.fail_next = [502] * 3
        llm = _llm(server, tmp_path, max_retries=2)
        with pytest.raises(LLMError, match="giving up after 3 attempts"):
            llm.chat([[{"role": "user", "content": "hi"}]])
        assert llm.chat([[{"role": "user", "content": "hi"}]]) == ["hi|t=0.0|s=0"]


def test_unreachable_server_raises_after_retries(tmp_path):
    cfg = LLMConfig(base_url="http://127.0.0.1:9/v1", max_retries=1, backoff_s=0.01, timeout_s=2)
    with pytest.raises(LLMError, match="ConnectError"):
        make_llm(cfg).chat([[{"role": "user", "content": "x"}]])


def test_api_key_comes_from_the_named_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENMILL_TEST_KEY", "sekret")
    with OpenAIServer(lambda b: "ok") as server:
        _llm(server, tmp_path, api_key_env="TOKENMILL_TEST_KEY").chat(
            [[{"role": "user", "content": "x"}]]
        )
        _llm(server, tmp_path / "b", api_key_env="UNSET_VAR_XYZ").chat(
            [[{"role": "user", "content": "x"}]]
        )
    assert [r["authorization"] for r in server.requests] == ["Bearer sekret", None]


def test_local_backend_requires_a_checkpoint():
    with pytest.raises(ValueError, match="checkpoint"):
        make_llm(LLMConfig(backend="local"))
