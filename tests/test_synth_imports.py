"""SFT imports: a bad JSONL line is counted with file:line and never aborts the import; OpenAI
``tool_calls`` conversations import through the shared OpenAI mapping."""

from __future__ import annotations

import json
import subprocess
import sys

from pipelines.chat import to_openai_messages, tool_call
from pipelines.synth.common import read_conversations
from pipelines.synth.imports import import_openai_jsonl, import_sharegpt

GOOD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
TOOL = {
    "messages": [
        {"role": "user", "content": "What is 123*456?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {
                        "name": "python",
                        "arguments": json.dumps({"code": "print(123*456)"}),
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "56088\n"},
        {"role": "assistant", "content": "123 * 456 = 56088."},
    ]
}


def test_bad_jsonl_line_is_counted_with_file_and_line(tmp_path):
    f = tmp_path / "chats.jsonl"
    f.write_text(
        "\n".join(
            [
                json.dumps(GOOD),
                '{"messages": [ truncated',
                json.dumps(GOOD | {"x": 1}),
                "",
                "not json at all",
            ]
        )
        + "\n"
    )
    rows, rep = import_openai_jsonl(f)
    assert rep.imported == 2 and len(rows) == 2
    assert rep.read == 4 and rep.skipped == {"bad_json": 2}
    assert [e.split(": ")[0] for e in rep.errors] == [f"{f}:2", f"{f}:5"]
    sg = tmp_path / "sg.jsonl"
    sg.write_text(
        json.dumps(
            {"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]}
        )
        + "\n{oops\n"
    )
    rows, rep = import_sharegpt(sg)
    assert (
        len(rows) == 1 and rep.skipped == {"bad_json": 1} and rep.errors[0].startswith(f"{sg}:2:")
    )


def test_openai_tool_calls_conversations_import(tmp_path):
    f = tmp_path / "tools.jsonl"
    bad_tool = {
        "messages": [
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c",
                        "type": "function",
                        "function": {"name": "rm_rf", "arguments": "{}"},
                    }
                ],
            },
        ]
    }
    f.write_text("\n".join(json.dumps(r) for r in [TOOL, bad_tool]))
    rows, rep = import_openai_jsonl(f)
    assert rep.imported == 1 and rep.skipped == {"unsupported_format": 1}
    assert "unknown tool 'rm_rf'" in rep.errors[0] and rep.errors[0].startswith(f"{f}:2:")
    msgs = rows[0]["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "tool", "assistant"]
    assert msgs[1]["content"] == tool_call("python", "print(123*456)")
    # and back: the same conversation in OpenAI format again
    back = to_openai_messages(msgs)
    assert back[1]["tool_calls"][0]["function"] == TOOL["messages"][1]["tool_calls"][0]["function"]


def test_cli_import_reports_bad_lines_and_finishes(tmp_path):
    f = tmp_path / "chats.jsonl"
    f.write_text(json.dumps(GOOD) + "\n{broken\n" + json.dumps(TOOL) + "\n")
    out = tmp_path / "out"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "synth",
            "sft",
            "--output",
            str(out),
            "--identity",
            "0",
            "--arithmetic",
            "0",
            "--counting",
            "0",
            "--spelling",
            "0",
            "--import-openai",
            str(f),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert f"{f}:2" in r.stderr
    assert len(read_conversations(out)) == 2
    stats = json.loads((out / "stats.json").read_text())
    assert stats["imports"][str(f)]["skipped"] == {"bad_json": 1}
