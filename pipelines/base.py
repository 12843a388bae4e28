"""The one base class for per-document steps (datatrove's one-class-per-step-kind idea).

A step looks at one document (a plain dict with the DOCUMENT_SCHEMA columns), may annotate or
rewrite it in place, and either keeps it (returns ``None``) or removes it by returning a short
reason. The runner records the removal as ``"<reason_prefix>:<reason>"`` so every dropped
document says which stage dropped it and why. Steps are engine-free: the local process pool,
the Prefect flows and the Beam DoFns all call ``setup()`` once per worker and then ``process()``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar


class Step(ABC):
    #: stage name as used by the CLI and in stats (``urlfilter``, ``extract``, ...)
    name: ClassVar[str]
    #: prefix of removal reasons (``url`` gives ``url:domain``); defaults to ``name``
    reason_prefix: ClassVar[str | None] = None

    def setup(self) -> None:  # noqa: B027 - optional hook
        """Load models or lists. Called once per worker process before the first document."""

    @abstractmethod
    def process(self, doc: dict) -> str | None:
        """Annotate/modify ``doc`` in place; return ``None`` to keep it or a removal reason."""

    def reason(self, why: str) -> str:
        return f"{self.reason_prefix or self.name}:{why}"
