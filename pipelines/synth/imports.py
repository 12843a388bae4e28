"""Imports of common chat formats into the conversation schema.

* OpenAI ``messages`` JSONL: one ``{"messages": [{"role", "content"}, ...]}`` per line;
* ShareGPT: ``{"conversations": [{"from": "human"|"gpt"|"system", "value": ...}]}`` (JSON list or JSONL);
* oasst-style message trees: either nested trees (``{"prompt": {"role": "prompter", "text",
  "replies": [...]}}``) or flat messages with ``message_id``/``parent_id`` (oasst1's export). From
  each tree we keep ONE path, the best reply at every level: lowest ``rank`` (0 = best), else the
  highest ``score``/``quality`` label, ties broken by order, down to a leaf.

Malformed records are skipped and counted, never fatal: ``ImportReport`` says how many and why,
and names each unreadable line as ``file:line`` (``ImportReport.errors``). OpenAI conversations with
``tool_calls`` import through ``pipelines.chat.from_openai_messages`` (the one shared mapping).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.synth.common import conversation

ROLE_MAP = {
    "human": "user",
    "user": "user",
    "prompter": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "model": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "tool",
}


#: How many ``file:line`` error locations a report keeps (the count is always complete).
MAX_ERRORS_LISTED = 50


@dataclass
class ImportReport:
    read: int = 0
    imported: int = 0
    skipped: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)  # "file:line: why", first MAX_ERRORS_LISTED

    def error(self, where: str, reason: str, detail: str) -> None:
        """Count a skipped record under ``reason`` and remember where it was."""
        self.skipped[reason] += 1
        if len(self.errors) < MAX_ERRORS_LISTED:
            self.errors.append(f"{where}: {detail}")


def _records(path: Path, report: ImportReport | None = None) -> list[tuple[int, dict]]:
    """(line number, record) pairs. A JSON-array file is parsed whole (an unreadable array is a
    clear error naming the file); a JSONL line that is not JSON is counted as ``bad_json`` with
    its ``file:line`` in ``report`` and skipped, never fatal."""
    raw = Path(path).read_bytes()
    text = raw.decode("utf-8", errors="replace").lstrip("\ufeff")
    if text.strip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{e.lineno}: not a valid JSON array ({e.msg})") from None
        return [(i + 1, r) for i, r in enumerate(data)]
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((n, json.loads(line)))
        except json.JSONDecodeError as e:
            if report is None:
                raise ValueError(f"{path}:{n}: not JSON ({e.msg})") from None
            report.read += 1
            report.error(f"{path}:{n}", "bad_json", f"not JSON ({e.msg})")
    return out


def _valid(messages: list[dict]) -> str | None:
    """Why a conversation is unusable for SFT, or None."""
    if not messages:
        return "empty"
    if any(m["role"] not in ("system", "user", "assistant", "tool") for m in messages):
        return "unknown_role"
    if any(not isinstance(m["content"], str) or not m["content"].strip() for m in messages):
        return "empty_message"
    if not any(m["role"] == "user" for m in messages):
        return "no_user_turn"
    if messages[-1]["role"] != "assistant":
        return "no_final_assistant_turn"
    return None


def _emit(
    messages: list[dict], source: str, report: ImportReport, out: list[dict], meta: dict
) -> None:
    why = _valid(messages)
    if why:
        report.skipped[why] += 1
        return
    out.append(conversation(messages, "import", source, meta=meta))
    report.imported += 1


def import_openai_jsonl(
    path: str | Path, source: str | None = None
) -> tuple[list[dict], ImportReport]:
    """OpenAI ``messages`` JSONL, tool calls included (``tool_calls`` + ``tool`` messages)."""
    from pipelines.chat import OpenAIFormatError, from_openai_messages

    report, out = ImportReport(), []
    for line, rec in _records(Path(path), report):
        report.read += 1
        raw = rec.get("messages") if isinstance(rec, dict) else None
        if not isinstance(raw, list):
            report.error(f"{path}:{line}", "no_messages", "no `messages` list")
            continue
        raw = [
            {**m, "role": ROLE_MAP.get(str(m.get("role")), m.get("role"))}
            if isinstance(m, dict)
            else m
            for m in raw
        ]
        try:
            msgs = from_openai_messages(raw)
        except OpenAIFormatError as e:
            report.error(f"{path}:{line}", "unsupported_format", str(e))
            continue
        _emit(msgs, source or f"openai:{Path(path).name}", report, out, {"line": line})
    return out, report


def import_sharegpt(path: str | Path, source: str | None = None) -> tuple[list[dict], ImportReport]:
    report, out = ImportReport(), []
    for i, rec in _records(Path(path), report):
        report.read += 1
        raw = rec.get("conversations") if isinstance(rec, dict) else None
        if not isinstance(raw, list):
            report.error(f"{path}:{i}", "no_conversations", "no `conversations` list")
            continue
        msgs = [
            {
                "role": ROLE_MAP.get(str(m.get("from", "")).lower(), str(m.get("from"))),
                "content": m.get("value"),
            }
            for m in raw
            if isinstance(m, dict)
        ]
        _emit(
            msgs,
            source or f"sharegpt:{Path(path).name}",
            report,
            out,
            {"line": i, "id": rec.get("id")},
        )
    return out, report


def _quality(node: dict) -> tuple:
    """Sort key of a reply: rank ascending (missing = worst), then score descending."""
    rank = node.get("rank")
    labels = node.get("labels") or {}
    score = node.get(
        "score",
        labels.get("quality", {}).get("value")
        if isinstance(labels.get("quality"), dict)
        else labels.get("quality"),
    )
    return (
        rank if isinstance(rank, (int, float)) else float("inf"),
        -(score if isinstance(score, (int, float)) else float("-inf")),
    )


def best_path(root: dict, children_key: str = "replies") -> list[dict]:
    """Nodes from ``root`` to a leaf, taking the best-ranked reply at every level."""
    path, node = [root], root
    while True:
        kids = [
            k for k in node.get(children_key) or [] if isinstance(k, dict) and not k.get("deleted")
        ]
        if not kids:
            return path
        node = min(enumerate(kids), key=lambda ik: (_quality(ik[1]), ik[0]))[1]
        path.append(node)


def _flat_to_trees(messages: list[dict]) -> list[dict]:
    nodes = {m["message_id"]: {**m, "replies": []} for m in messages if "message_id" in m}
    roots = []
    for m in nodes.values():
        parent = nodes.get(m.get("parent_id"))
        (parent["replies"] if parent else roots).append(m)
    return roots


def import_oasst(path: str | Path, source: str | None = None) -> tuple[list[dict], ImportReport]:
    report, out = ImportReport(), []
    records = [r for _, r in _records(Path(path), report)]
    if records and "message_id" in records[0] and "prompt" not in records[0]:
        trees = _flat_to_trees(records)
    else:
        trees = [r.get("prompt", r) for r in records if isinstance(r, dict)]
    for tree in trees:
        report.read += 1
        nodes = best_path(tree, "replies" if "replies" in tree else "children")
        msgs = [
            {"role": ROLE_MAP.get(str(n.get("role")), str(n.get("role"))), "content": n.get("text")}
            for n in nodes
        ]
        while msgs and msgs[-1]["role"] != "assistant":  # a tree may end on an unanswered prompt
            msgs.pop()
            nodes = nodes[:-1]
        meta = {
            "tree": tree.get("message_tree_id") or tree.get("message_id"),
            "path": [n.get("message_id") for n in nodes],
            "lang": tree.get("lang"),
        }
        _emit(msgs, source or f"oasst:{Path(path).name}", report, out, meta)
    return out, report


IMPORTERS = {"openai": import_openai_jsonl, "sharegpt": import_sharegpt, "oasst": import_oasst}
