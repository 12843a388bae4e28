"""Chat rendering: conversations -> token ids + loss mask. The ONE place synthesis and the trainer
share, so what we generate is exactly what we train on and what ``tokenmill chat`` samples.

Format (DESIGN.md)::

    <|im_start|>user<|im_sep|>What is 12*13?<|im_end|>
    <|im_start|>assistant<|im_sep|><|python_start|>print(12*13)<|python_end|>
        <|output_start|>156<|output_end|>12*13 = 156.<|im_end|>

A ``tool`` message is the result of the tool call that ends the preceding assistant message; it is
rendered *inside* that assistant turn as ``<|output_start|>...<|output_end|>`` and the following
assistant message continues the same turn, exactly as the chat loop injects results at inference.
Loss is taken on assistant content (tool calls included) and the assistant's ``<|im_end|>`` only:
never on system/user text, turn headers, or injected tool output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipelines.tokenizer import Tokenizer

IM_START, IM_SEP, IM_END = "<|im_start|>", "<|im_sep|>", "<|im_end|>"
TOOL_CALLS = {
    "search": ("<|search_start|>", "<|search_end|>"),
    "python": ("<|python_start|>", "<|python_end|>"),
}
OUTPUT_START, OUTPUT_END = "<|output_start|>", "<|output_end|>"
_CALL_RE = re.compile(r"(<\|search_start\|>|<\|search_end\|>|<\|python_start\|>|<\|python_end\|>)")
_CALL_ENDS = tuple(end for _, end in TOOL_CALLS.values())


@dataclass
class Rendered:
    input_ids: list[int]
    loss_mask: list[int]  # 1 where the token is a training target


def tool_call(kind: str, body: str) -> str:
    """The assistant-content markup of a tool call, e.g. ``tool_call("python", "print(1)")``."""
    start, end = TOOL_CALLS[kind]
    return f"{start}{body}{end}"


def parse_tool_call(content: str) -> tuple[str, str] | None:
    """If ``content`` ends with a tool call, return (kind, body)."""
    for kind, (start, end) in TOOL_CALLS.items():
        if content.endswith(end) and start in content:
            return kind, content[content.rindex(start) + len(start) : -len(end)]
    return None


def _encode_assistant(tok: Tokenizer, content: str) -> list[int]:
    """Assistant content may contain tool-call markers: those become special ids, the rest text."""
    ids: list[int] = []
    for part in _CALL_RE.split(content):
        if not part:
            continue
        ids.extend([tok.special(part)] if part in tok.special_ids else tok.encode(part))
    return ids


def render_conversation(
    messages: list[dict], tok: Tokenizer, max_tokens: int | None = None, open_end: bool = False
) -> Rendered:
    """Render a conversation for training (see module docstring for the format and mask).
    ``open_end``: the conversation may end right after a tool result, inside the assistant turn
    (a prompt whose answer continues that turn)."""
    ids: list[int] = []
    mask: list[int] = []

    def add(tokens: list[int], supervised: bool) -> None:
        ids.extend(tokens)
        mask.extend([int(supervised)] * len(tokens))

    open_assistant = False  # inside an assistant turn awaiting a tool result / continuation
    for i, msg in enumerate(messages):
        role, content = msg["role"], msg["content"] or ""
        if role == "tool":
            if not open_assistant:
                raise ValueError(f"message {i}: a tool result must follow an assistant tool call")
            add([tok.special(OUTPUT_START)], False)
            add(tok.encode(content), False)
            add([tok.special(OUTPUT_END)], False)
            continue
        if role == "assistant":
            if not open_assistant:
                add(
                    [tok.special(IM_START)] + tok.encode("assistant") + [tok.special(IM_SEP)], False
                )
            add(_encode_assistant(tok, content), True)
            nxt = messages[i + 1]["role"] if i + 1 < len(messages) else None
            open_assistant = content.endswith(_CALL_ENDS) and nxt == "tool"
            if not open_assistant:
                add([tok.special(IM_END)], True)
            continue
        if open_assistant:
            raise ValueError(
                f"message {i}: {role} message inside an unfinished assistant tool call"
            )
        if role not in ("system", "user"):
            raise ValueError(f"message {i}: unknown role {role!r}")
        add([tok.special(IM_START)] + tok.encode(role) + [tok.special(IM_SEP)], False)
        add(tok.encode(content), False)
        add([tok.special(IM_END)], False)
    if open_assistant and not (open_end and messages[-1]["role"] == "tool"):
        raise ValueError("conversation ends inside an assistant tool call without its result")
    if max_tokens is not None:
        ids, mask = ids[:max_tokens], mask[:max_tokens]
    return Rendered(ids, mask)


def render_prompt(messages: list[dict], tok: Tokenizer) -> list[int]:
    """Token ids that prime the model to write the next assistant turn. After a tool result the
    same assistant turn continues (no new header), as ``trainer.chat`` injects results."""
    if messages and messages[-1]["role"] == "tool":
        return render_conversation(messages, tok, open_end=True).input_ids
    ids = render_conversation(messages, tok).input_ids if messages else []
    return ids + [tok.special(IM_START)] + tok.encode("assistant") + [tok.special(IM_SEP)]


# --- OpenAI chat format <-> our conversations --------------------------------------------------
# One definition shared by serving (requests with ``tools`` / ``tool`` messages, responses with
# ``tool_calls``), imports of OpenAI-format data and exports for TRL / OpenAI fine-tuning JSONL.
# Our tools map to OpenAI "function" tools: ``search`` takes {"query": str}, ``python`` takes
# {"code": str}. An assistant message whose content ends with one of our tool-call markups becomes
# an OpenAI assistant message with the text before the call as ``content`` and one ``tool_calls``
# entry; the ``tool`` message after it carries the matching ``tool_call_id``.

TOOL_ARGUMENT = {"search": "query", "python": "code"}

OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search the corpus; returns the best matching passages.",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "python",
            "description": "Run Python code in a sandbox; returns its output.",
            "parameters": {
                "type": "object",
                "properties": {"code": {"type": "string"}},
                "required": ["code"],
            },
        },
    },
]


class OpenAIFormatError(ValueError):
    """An OpenAI-format conversation that has no equivalent in ours (unknown tool, bad arguments,
    several calls in one message, a tool result with no call)."""


def to_openai_messages(messages: list[dict], id_prefix: str = "call_") -> list[dict]:
    """Our messages -> OpenAI chat messages (assistant ``tool_calls`` + ``tool`` with
    ``tool_call_id``). Call ids are deterministic (``call_0``, ``call_1``, ...) per conversation."""
    import json

    out: list[dict] = []
    n_calls = 0
    pending: str | None = None
    for i, msg in enumerate(messages):
        role, content = msg["role"], msg.get("content") or ""
        if role == "tool":
            if pending is None:
                raise OpenAIFormatError(f"message {i}: a tool result must follow a tool call")
            out.append({"role": "tool", "tool_call_id": pending, "content": content})
            pending = None
            continue
        call = parse_tool_call(content) if role == "assistant" else None
        if call is None:
            out.append({"role": role, "content": content})
            continue
        kind, body = call
        call_id = f"{id_prefix}{n_calls}"
        n_calls += 1
        text = content[: content.rindex(TOOL_CALLS[kind][0])]
        out.append(
            {
                "role": "assistant",
                "content": text or None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {
                            "name": kind,
                            "arguments": json.dumps({TOOL_ARGUMENT[kind]: body}),
                        },
                    }
                ],
            }
        )
        pending = call_id
    return out


def from_openai_messages(messages: list[dict]) -> list[dict]:
    """OpenAI chat messages -> ours. Content given as a list of text parts is joined; an
    assistant ``tool_calls`` entry becomes our markup at the end of its content; a ``tool``
    message must answer the call just made (by ``tool_call_id`` when it has one). Raises
    ``OpenAIFormatError`` naming the message for anything that has no equivalent."""
    import json

    out: list[dict] = []
    pending: str | None = None
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise OpenAIFormatError(f"message {i}: not an object")
        role = msg.get("role")
        content = msg.get("content")
        if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
            parts = []
            for p in content:
                if not isinstance(p, dict) or p.get("type") != "text":
                    raise OpenAIFormatError(f"message {i}: only text content parts are supported")
                parts.append(str(p.get("text", "")))
            content = "".join(parts)
        if content is not None and not isinstance(content, str):
            raise OpenAIFormatError(f"message {i}: content must be a string")
        content = content or ""
        if role == "developer":
            role = "system"
        if role == "tool":
            if pending is None:
                raise OpenAIFormatError(f"message {i}: a tool message must answer a tool call")
            tcid = msg.get("tool_call_id")
            if tcid is not None and tcid != pending:
                raise OpenAIFormatError(
                    f"message {i}: tool_call_id {tcid!r} does not match the call {pending!r}"
                )
            out.append({"role": "tool", "content": content})
            pending = None
            continue
        if pending is not None:
            raise OpenAIFormatError(f"message {i}: the tool call {pending!r} has no tool result")
        if role not in ("system", "user", "assistant"):
            raise OpenAIFormatError(f"message {i}: unknown role {role!r}")
        calls = msg.get("tool_calls") or []
        if calls and role != "assistant":
            raise OpenAIFormatError(f"message {i}: only assistant messages make tool calls")
        if len(calls) > 1:
            raise OpenAIFormatError(
                f"message {i}: {len(calls)} parallel tool calls (one per message is supported)"
            )
        if calls:
            fn = (calls[0] or {}).get("function") or {}
            name = fn.get("name")
            if name not in TOOL_CALLS:
                raise OpenAIFormatError(
                    f"message {i}: unknown tool {name!r} (known: {sorted(TOOL_CALLS)})"
                )
            try:
                args = json.loads(fn.get("arguments") or "{}")
            except json.JSONDecodeError as e:
                raise OpenAIFormatError(f"message {i}: tool arguments are not JSON ({e})") from None
            key = TOOL_ARGUMENT[name]
            if not isinstance(args, dict) or not isinstance(args.get(key), str):
                raise OpenAIFormatError(
                    f"message {i}: tool {name!r} needs a string argument {key!r}"
                )
            content = content + tool_call(name, args[key])
            pending = calls[0].get("id") or f"call_{i}"
        out.append({"role": role, "content": content})
    return out
