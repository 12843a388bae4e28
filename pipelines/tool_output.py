"""Make a tool's result safe to inject into a conversation as ``<|output_start|>…<|output_end|>``.

Tool results are written by whatever the tool ran (model-written code, web pages in the search
index), so they may contain our special-token markers (``<|output_end|>`` then a forged
``<|im_start|>assistant`` turn), lone surrogates or undecodable bytes. Tokenizers here encode text
"ordinarily", so a marker never becomes a special id inside our own trainer, but the stored
conversations are also rendered as text (``pipelines.chat.render_text``), exported and read by
other tools' chat templates, where a literal marker *is* a turn boundary. So every marker-shaped
``<|name|>`` is escaped to ``<\\|name\\|>`` (visible, reversible by a human, never a special token),
and the text is made valid UTF-8 (invalid bytes and lone surrogates become U+FFFD).
"""

from __future__ import annotations

import re

#: ``<|name|>``: our specials (schemas.tokens.SPECIAL_TOKENS) and any other tokenizer's of that shape.
_SURROGATE = re.compile("[\ud800-\udfff]")
_MARKER = re.compile(r"<\|([A-Za-z0-9_.:-]{1,64})\|>")


def valid_utf8(text: str | bytes) -> str:
    """``text`` as a str that encodes to UTF-8: bad bytes and lone surrogates become U+FFFD."""
    if isinstance(text, bytes):
        return text.decode("utf-8", "replace")
    return _SURROGATE.sub("\ufffd", text)


def escape_specials(text: str) -> str:
    """Escape every ``<|name|>`` marker so no special token can be read out of ``text``."""
    while True:
        escaped = _MARKER.sub(r"<\\|\1\\|>", text)
        if escaped == text:
            return text
        text = escaped


def clean_tool_output(text: str | bytes) -> str:
    """Valid UTF-8 with every special-token marker escaped: what a tool result may inject."""
    return escape_specials(valid_utf8(text))
