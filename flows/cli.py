"""Entry point of the `tokenmill` command: imports every command module, then runs the app."""

from __future__ import annotations

from flows import cli_corpus, cli_fineweb, cli_publish, cli_synth, cli_train  # noqa: F401 (registers commands)
from flows.cli_app import app


def main() -> None:
    app()


if __name__ == "__main__":
    main()
