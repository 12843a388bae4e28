"""Streaming text never takes anything back: partial UTF-8 characters and possible starts of a stop
string are held back, text after a stop string is never sent, and only the tokens that made the
kept text are billed."""

from __future__ import annotations

from pipelines.tokenizer import load_tokenizer
from trainer.textstream import TextStream

TOK = load_tokenizer("cl100k_base")


def _stream(text: str, **kw) -> tuple[TextStream, list[str]]:
    ts, deltas = TextStream(TOK, **kw), []
    for t in TOK.encode(text):
        if ts.push(t):
            break
        deltas.append(ts.delta())
    deltas.append(ts.delta(final=True))
    return ts, deltas


def test_partial_characters_are_held_back():
    text = "tea 🍵 and 🐉 dragons"
    assert len(TOK.encode("🐉")) > 1  # one character, several tokens
    ts, deltas = _stream(text)
    assert "".join(deltas) == text
    assert not any("\ufffd" in d for d in deltas)
    assert ts.completion_tokens() == len(TOK.encode(text))


def test_stop_strings_cut_text_and_tokens():
    ts, deltas = _stream("The answer is 42. Done, more text after.", stop=[". Done"])
    assert "".join(deltas) == ts.text == "The answer is 42"
    assert all(". Do" not in d for d in deltas)
    # billed: the tokens up to the cut, not the ones after
    assert ts.completion_tokens() == len(TOK.encode("The answer is 42"))
    # a stop string that only starts to appear is held back, then released when it does not match
    ts, deltas = _stream("x. Dx", stop=[". Done"])
    assert "".join(deltas) == "x. Dx" and not ts.stopped


def test_hidden_stop_ids_are_billed_but_not_shown_and_held_calls_are_not_streamed():
    im_end = TOK.special("<|im_end|>")
    ts = TextStream(TOK, hide_ids=[im_end])
    for t in TOK.encode("hi there"):
        ts.push(t)
    ts.push(im_end)
    assert (
        ts.delta(final=True) == "hi there"
        and ts.completion_tokens() == len(TOK.encode("hi there")) + 1
    )
    start = TOK.special("<|python_start|>")
    ts = TextStream(TOK, hold_ids=[start])
    sent = ""
    for t in [*TOK.encode("Let me compute. "), start, *TOK.encode("print(1)")]:
        ts.push(t)
        sent += ts.delta()
    assert sent == "Let me compute. "  # the call itself is sent as tool_calls, not text
