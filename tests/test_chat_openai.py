"""The OpenAI chat format <-> our conversations mapping (pipelines/chat.py)."""

import json

import pytest

from pipelines.chat import OpenAIFormatError, from_openai_messages, to_openai_messages, tool_call

CONV = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "What is 12*13?"},
    {"role": "assistant", "content": "Let me compute.\n" + tool_call("python", "print(12*13)")},
    {"role": "tool", "content": "156"},
    {"role": "assistant", "content": "Searching.\n" + tool_call("search", "twelve thirteen")},
    {"role": "tool", "content": "nothing"},
    {"role": "assistant", "content": "12*13 = 156."},
]


def test_round_trip_and_shape():
    oa = to_openai_messages(CONV)
    assert from_openai_messages(oa) == CONV
    call = oa[2]["tool_calls"][0]
    assert call["function"]["name"] == "python"
    assert json.loads(call["function"]["arguments"]) == {"code": "print(12*13)"}
    assert oa[3] == {"role": "tool", "tool_call_id": call["id"], "content": "156"}
    assert oa[4]["tool_calls"][0]["id"] != call["id"]


def test_text_parts_and_developer_role():
    msgs = [
        {"role": "developer", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
    ]
    assert from_openai_messages(msgs) == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "ab"},
    ]


@pytest.mark.parametrize(
    "msgs,why",
    [
        ([{"role": "tool", "content": "x", "tool_call_id": "a"}], "must answer a tool call"),
        (
            [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "a", "function": {"name": "shell", "arguments": "{}"}}],
                }
            ],
            "unknown tool",
        ),
        (
            [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "a", "function": {"name": "search", "arguments": "{bad"}}
                    ],
                }
            ],
            "not JSON",
        ),
        (
            [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "a", "function": {"name": "search", "arguments": "{}"}}],
                }
            ],
            "string argument",
        ),
        (
            [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "a", "function": {"name": "search", "arguments": '{"query": "q"}'}}
                    ],
                },
                {"role": "tool", "tool_call_id": "b", "content": "r"},
            ],
            "does not match",
        ),
        (
            [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "a", "function": {"name": "search", "arguments": '{"query": "q"}'}}
                    ],
                },
                {"role": "user", "content": "hi"},
            ],
            "has no tool result",
        ),
        ([{"role": "wizard", "content": "x"}], "unknown role"),
    ],
)
def test_errors_name_the_problem(msgs, why):
    with pytest.raises(OpenAIFormatError, match=why):
        from_openai_messages(msgs)
