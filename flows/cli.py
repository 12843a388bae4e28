"""Entry point of the `tokenmill` command: imports every command module, then runs the app."""

from __future__ import annotations

import sys

from flows import cli_corpus, cli_fineweb, cli_publish, cli_quality, cli_synth, cli_train  # noqa: F401
from flows.cli_app import app

#: Options that take several values after one flag (``--input a.warc.gz b.warc.gz``, also what a
#: shell glob expands to, and ``--languages en de``). Click options take one value each, so the
#: values are rewritten as repeated flags before Typer parses them.
VARIADIC_OPTIONS = frozenset({"--input", "-i", "--languages", "-l"})


def expand_variadic(argv: list[str]) -> list[str]:
    out: list[str] = []
    current: str | None = None
    for arg in argv:
        if arg == "--":
            current = None
            out.append(arg)
        elif arg.startswith("-"):
            current = arg if arg in VARIADIC_OPTIONS else None
            out.append(arg)
        elif current is not None and out and out[-1] != current:
            out.extend([current, arg])  # a further value of the same variadic option
        else:
            out.append(arg)
    return out


def main() -> None:
    app(args=expand_variadic(sys.argv[1:]), prog_name="tokenmill")


if __name__ == "__main__":
    main()
