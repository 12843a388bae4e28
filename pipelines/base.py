"""The one base class for per-document steps (datatrove's one-class-per-step-kind idea).

A step looks at one document (a plain dict with the DOCUMENT_SCHEMA columns), may annotate or
rewrite it in place, and either keeps it (returns ``None``) or removes it by returning a short
reason. The runner records the removal as ``"<reason_prefix>:<reason>"`` so every dropped
document says which stage dropped it and why.

Steps are engine-free and have ONE lifecycle that every engine drives the same way (the local
``process_shard``, the worker pool and the Beam DoFn all use the helpers below:
``setup()`` once per worker, ``start_shard()`` / ``end_shard()`` around every shard,
``close()`` when the worker is done). State that must not leak from one shard into the next (for
example trafilatura's paragraph cache) is reset in ``start_shard()``, so a shard's output depends
on the shard alone, not on which shards the worker ran before: resumed and re-scheduled runs
give identical output on every engine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import ClassVar


class Step(ABC):
    #: stage name as used by the CLI and in stats (``urlfilter``, ``extract``, ...)
    name: ClassVar[str]
    #: prefix of removal reasons (``url`` gives ``url:domain``); defaults to ``name``
    reason_prefix: ClassVar[str | None] = None

    def setup(self) -> None:  # noqa: B027 - optional hook
        """Load models or lists. Called once per worker process before the first shard
        (implementations may be called again and must then do nothing)."""

    def start_shard(self) -> None:  # noqa: B027 - optional hook
        """Reset per-shard state. Called before the first document of every shard."""

    def end_shard(self) -> None:  # noqa: B027 - optional hook
        """Called after the last document of every shard (also when the shard failed)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release processes/files. Called once when the worker is done with the step."""

    @abstractmethod
    def process(self, doc: dict) -> str | None:
        """Annotate/modify ``doc`` in place; return ``None`` to keep it or a removal reason."""

    def reason(self, why: str) -> str:
        return f"{self.reason_prefix or self.name}:{why}"


def all_steps(groups: Iterable[tuple[str, list[Step]]]) -> list[Step]:
    """The steps of ``[(stage, steps)]`` groups, in pipeline order."""
    return [step for _, steps in groups for step in steps]


def setup_steps(steps: Iterable[Step]) -> None:
    for step in steps:
        step.setup()


def start_shard(steps: Iterable[Step]) -> None:
    for step in steps:
        step.start_shard()


def end_shard(steps: Iterable[Step]) -> None:
    for step in steps:
        step.end_shard()


def close_steps(steps: Iterable[Step]) -> None:
    """``close()`` every step, even when one of them raises (the first error is re-raised)."""
    error: BaseException | None = None
    for step in steps:
        try:
            step.close()
        except BaseException as e:  # noqa: BLE001 - close the others first
            error = error or e
    if error is not None:
        raise error
