"""Entry point of the `tokenmill` command: imports every command module, then runs the app."""

from __future__ import annotations

import sys

from flows import cli_corpus, cli_fineweb, cli_publish, cli_quality, cli_synth, cli_train  # noqa: F401
from flows.cli_app import DEBUG, EARLY_SERVER, app

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


#: Commands that run a Prefect flow (their first word): in Prefect's local mode they need a
#: Prefect server, launched before Prefect is imported (``flows.local_server.launch_early``).
FLOW_COMMANDS = frozenset({"fineweb", "demo", "pipeline", "stage"})


def runs_a_flow(args: list[str]) -> bool:
    """Whether ``args`` ask for a command that runs a flow (not its ``--help``). Global options
    are flags, so the first word that is not an option names the command."""
    if any(a in ("--help", "-h", "--version") for a in args):
        return False
    words = [a for a in args if not a.startswith("-")]
    if not words or words[0] not in FLOW_COMMANDS:
        return False
    return words[0] != "stage" or len(words) > 1  # `stage` alone prints its help


#: Exceptions that mean "the user asked for something that cannot be done" (a glob that matches
#: nothing, a missing file, a bad option value or config): one line, exit 1, no traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
    ValueError,
)


def user_error_line(exc: BaseException) -> str:
    """The one line shown for a user error (pydantic's multi-line report made one line)."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc") or ()) or "(top level)"
        more = len(exc.errors()) - 1
        return f"{exc.title}: '{where}': {err.get('msg')}" + (
            f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        )
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors print ``error: <one line>`` and exit 1 (``--debug``: traceback)."""
    args = expand_variadic(sys.argv[1:] if argv is None else argv)
    EARLY_SERVER["wanted"] = runs_a_flow(args)
    try:
        app(args=args, prog_name="tokenmill", standalone_mode=True)
    except SystemExit:
        raise
    except USER_ERRORS as exc:
        if DEBUG["on"]:
            raise
        print(f"error: {user_error_line(exc)} (--debug shows the traceback)", file=sys.stderr)
        sys.exit(1)
    except RuntimeError as exc:
        from flows.local_server import LocalServerError

        if isinstance(exc, LocalServerError) and not DEBUG["on"]:
            print(f"error: {exc} (--debug shows the traceback)", file=sys.stderr)
            sys.exit(1)
        if DEBUG["on"] or "ephemeral Prefect API server" not in str(exc):
            raise
        print(
            "error: Prefect's temporary local server did not start in time (a busy machine?): "
            "raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or run `prefect server "
            "start` once and set PREFECT_API_URL (--debug shows the traceback)",
            file=sys.stderr,
        )
        sys.exit(1)
    finally:
        EARLY_SERVER["wanted"] = False  # this call's request only (in-process callers)


if __name__ == "__main__":
    main()
