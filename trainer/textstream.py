"""Token ids -> text, incrementally, with stop strings: what a streamed response may show so far.

A streamed delta must never be taken back, so text is held back while it could still change:
an incomplete UTF-8 character at the end (decoded as U+FFFD), the start of a stop string, or
anything after the start of a tool call (the call is sent as ``tool_calls``, not as text).
``completion_tokens`` counts only the tokens that made the kept text (plus the stop id that
ended it): tokens cut by a stop string are not billed.
"""

from __future__ import annotations

from collections.abc import Iterable


class TextStream:
    def __init__(
        self,
        tok,
        stop: Iterable[str] | None = (),
        hide_ids: Iterable[int] = (),
        hold_ids: Iterable[int] = (),
    ):
        """``hide_ids``: ids that end generation and are not text (``<|im_end|>``, EOT);
        ``hold_ids``: ids from which on nothing is streamed as text (tool-call starts)."""
        self.tok = tok
        self.stop = [s for s in stop or () if s]
        self.hide, self.hold = set(hide_ids), set(hold_ids)
        self.ids: list[int] = []  # text tokens (hidden ids excluded)
        self._text = ""
        self._dirty = False  # ids changed since _text was decoded (decoding is lazy without stops)
        self.sent = 0  # characters already streamed
        self.stopped = False  # a stop string ended the text
        self.hidden_end = False  # a hidden stop id ended generation
        self.held_at: int | None = None  # index in ids of the first hold id

    def push(self, token: int) -> bool:
        """Add one generated id; True when a stop string has now ended the text."""
        if self.stopped or self.hidden_end:
            return True
        if token in self.hide:
            self.hidden_end = True
            return False
        if token in self.hold and self.held_at is None:
            self.held_at = len(self.ids)
        self.ids.append(token)
        if not self.stop:
            self._dirty = True
            return False
        text = self.tok.decode(self.ids)
        cut = min((i for i in (text.find(s) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            self._text, self.stopped = text[:cut], True
            return True
        self._text = text
        return False

    @property
    def text(self) -> str:
        """The kept text so far (cut before a stop string)."""
        if self._dirty:
            self._text, self._dirty = self.tok.decode(self.ids), False
        return self._text

    def _safe_end(self) -> int:
        """How much of ``text`` can no longer change."""
        end = len(self.text)
        if self.held_at is not None:
            end = min(end, len(self.tok.decode(self.ids[: self.held_at]).rstrip("\ufffd")))
        if self.stopped:
            return end
        while end and self.text[end - 1] == "\ufffd":
            end -= 1
        tail = max(
            (
                k
                for s in self.stop
                for k in range(min(len(s) - 1, end), 0, -1)
                if self.text[end - k : end] == s[:k]
            ),
            default=0,
        )
        return end - tail  # the longest tail that may be the beginning of a stop string

    def delta(self, final: bool = False) -> str:
        """New text that is safe to show (``final``: everything kept, held tool calls aside)."""
        end = len(self.text) if final and self.held_at is None else self._safe_end()
        out = self.text[self.sent : end]
        self.sent = max(self.sent, end)
        return out

    def completion_tokens(self) -> int:
        """Tokens that produced the kept text, plus the hidden stop id if one ended it."""
        if not self.stopped:
            return len(self.ids) + int(self.hidden_end)
        n = 0
        while n < len(self.ids) and len(self.tok.decode(self.ids[:n]).rstrip("\ufffd")) < len(
            self.text
        ):
            n += 1
        return n

    def kept_ids(self) -> list[int]:
        """The text tokens that are billed (for logprobs)."""
        return self.ids[: self.completion_tokens()] if self.stopped else list(self.ids)
