"""The `promptguard` command. Each sub-command lives in its own module and
registers itself on `app`; heavy imports happen inside the commands."""

from __future__ import annotations

import importlib
from typing import Optional

import typer

app = typer.Typer(
    name="promptguard",
    help="A firewall for LLM prompts and pipelines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's plain help: typer's rich panels print every flag as `--flag <bool>`
    rich_markup_mode=None,
)

# Sub-command modules, in help order. Add a module here to add a command.
COMMANDS = ["scan", "serve", "log", "audit", "baseline", "train", "harden", "redteam"]

for _name in COMMANDS:
    importlib.import_module(f"{__name__}.{_name}")


def _print_version(value: Optional[bool]) -> None:
    """An eager option callback: runs while the command line is parsed, before click
    asks for a sub-command (a group callback would only run after one was given)."""
    if value:
        from .. import __version__

        typer.echo(f"promptguard {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(None, "--version", help="Print the version and exit.",
                                           callback=_print_version, is_eager=True),
) -> None:
    """A firewall for LLM prompts and pipelines."""


def main() -> None:
    app()
