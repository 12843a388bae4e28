"""`tooluse` generator: search traces grounded in real retrieved passages, python traces run for real."""

from __future__ import annotations

import json

from pipelines.chat import parse_tool_call, render_conversation
from pipelines.search import SearchIndex
from pipelines.synth.common import read_conversations
from pipelines.synth.qa import span_match
from pipelines.synth.tooluse import ToolUseConfig, run_tooluse
from pipelines.tokenizer import load_tokenizer
from pipelines.verify import is_correct
from tests.test_synth_support import web_documents  # noqa: F401 (fixture)


def test_tool_traces_are_grounded_in_real_tool_output(web_documents, tmp_path):  # noqa: F811
    stats = run_tooluse(ToolUseConfig(output=str(tmp_path / "t"), documents=str(web_documents), search=25, python=12))
    rows = read_conversations(tmp_path / "t")
    search = [r for r in rows if r["source"] == "tool:search"]
    python = [r for r in rows if r["source"] == "tool:python"]
    assert len(search) >= 15 and len(python) == 12
    assert stats["search"]["traces"] == len(search)
    index = SearchIndex.load(tmp_path / "t" / "index")
    tok = load_tokenizer("cl100k_base")
    for r in search:
        user, call, result, answer = r["messages"]
        meta = json.loads(r["meta"])
        kind, query = parse_tool_call(call["content"])
        assert kind == "search" and not span_match(query, meta["reference"])
        assert result["role"] == "tool" and span_match(result["content"], meta["reference"])
        # the recorded doc really holds the answer, and re-running the search gives the same result
        assert f"(doc {r['doc_id']})" in result["content"]
        assert any(h.doc_id == r["doc_id"] and span_match(h.text, meta["reference"]) for h in index.search(query, 3))
        assert meta["reference"] in answer["content"]
        render_conversation(r["messages"], tok)  # a valid trace for the shared renderer
    for r in python:
        user, call, result, answer = r["messages"]
        kind, code = parse_tool_call(call["content"])
        assert kind == "python"
        assert is_correct(answer["content"], result["content"].strip())
        assert is_correct(answer["content"], json.loads(r["meta"])["reference"])


def test_python_only_without_corpus(tmp_path):
    stats = run_tooluse(ToolUseConfig(output=str(tmp_path / "p"), search=0, python=5, seed=4))
    assert stats["by_kind"] == {"tool_use": 5} and stats["outcomes"] == {"python:ok": 5}
