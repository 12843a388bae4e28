"""Chat with tools: when the model ends a span with ``<|python_end|>`` or ``<|search_end|>``, the
tool runs, its result is injected as ``<|output_start|>result<|output_end|>`` and the same assistant
turn continues, exactly as ``pipelines.chat.render_conversation`` renders tool use for training.

Tools: the python sandbox (``pipelines.sandbox.run_python``) and, given an index directory, the
search index (``pipelines.search.SearchIndex``); both are imported only when used.
"""

from __future__ import annotations

from collections.abc import Callable

from pipelines.chat import (
    IM_END,
    OUTPUT_END,
    OUTPUT_START,
    TOOL_CALLS,
    parse_tool_call,
    render_prompt,
)
from pipelines.tool_output import clean_tool_output
from trainer.inference import LocalModel

Tool = Callable[[str], str]


def python_tool() -> Tool:
    """The python sandbox, with the limits and output format the tool-use synthesis trains on."""
    from pipelines.sandbox import SandboxConfig, isolation, run_python

    sandbox = SandboxConfig()
    isolation(sandbox)  # no working sandbox and no opt-in: refuse now, not at the first tool call

    def run(code: str) -> str:
        return run_python(code, config=sandbox).tool_output()

    return run


def search_tool(index_dir: str) -> Tool:
    """The search index; results formatted exactly as in the tool-use training data."""
    from pipelines.search import SearchIndex, format_results
    from pipelines.synth.tooluse import ToolUseConfig

    index, fields = SearchIndex.load(index_dir), ToolUseConfig.model_fields
    k, chars = fields["top_k"].default, fields["result_chars"].default

    def run(query: str) -> str:
        return format_results(index.search(query, k=k), chars)

    return run


def default_tools(search_index: str | None = None) -> dict[str, Tool]:
    tools = {"python": python_tool()}
    if search_index:
        tools["search"] = search_tool(search_index)
    return tools


def assistant_turn(
    lm: LocalModel,
    messages: list[dict],
    tools: dict[str, Tool],
    max_tokens: int = 256,
    temperature: float = 0.0,
    top_k: int | None = None,
    seed: int | None = None,
    max_calls: int = 4,
) -> list[dict]:
    """Generate the next assistant turn, running tool calls; returns the new messages
    (assistant / tool / assistant ...) in the shape ``render_conversation`` trains on."""
    tok = lm.tok
    ids = render_prompt(messages, tok)
    call_ends = {tok.special(end): kind for kind, (_, end) in TOOL_CALLS.items()}
    stops = (tok.special(IM_END), tok.eot_id, *call_ends)
    new: list[dict] = []
    for call in range(max_calls + 1):
        out = lm.generate(
            ids, max_tokens, temperature, top_k, None if seed is None else seed + call, stops
        )
        ids = ids + out
        last = out[-1] if out else None
        if last in call_ends and call < max_calls:
            content = tok.decode(out)
            parsed = parse_tool_call(content)
            kind, body = parsed if parsed else (call_ends[last], "")
            tool = tools.get(kind)
            result = tool(body) if tool else f"error: the {kind} tool is not available"
            result = clean_tool_output(result)  # no special-token markers, valid UTF-8
            new += [{"role": "assistant", "content": content}, {"role": "tool", "content": result}]
            ids = ids + [tok.special(OUTPUT_START)] + tok.encode(result) + [tok.special(OUTPUT_END)]
            continue
        content = tok.decode(out[:-1] if last in stops else out)
        new.append({"role": "assistant", "content": content})
        return new
    return new  # unreachable: the last iteration always returns


def repl(
    lm: LocalModel,
    tools: dict[str, Tool],
    read: Callable[[str], str] = input,
    write: Callable[[str], None] = print,
    **gen,
) -> list[dict]:
    """Read user lines until EOF or /quit (/reset clears the history); print each reply."""
    history: list[dict] = []
    while True:
        try:
            line = read("you> ")
        except EOFError:
            return history
        if line.strip() == "/quit":
            return history
        if line.strip() == "/reset":
            history = []
            continue
        history.append({"role": "user", "content": line})
        turn = assistant_turn(lm, history, tools, **gen)
        for m in turn:
            if m["role"] == "tool":
                write(f"[tool output] {m['content']}")
            elif parse_tool_call(m["content"]):
                write(f"[tool call] {m['content']}")
        write(f"assistant> {turn[-1]['content']}")
        history += turn
