"""The `promptguard` command. Each sub-command lives in its own module and
registers itself on `app`; heavy imports happen inside the commands."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="promptguard",
    help="A firewall for LLM prompts and pipelines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Sub-command modules, in help order. Add a module here to add a command.
COMMANDS = ["scan", "serve", "log", "audit", "baseline", "train", "harden", "redteam"]

for _name in COMMANDS:
    importlib.import_module(f"{__name__}.{_name}")


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
) -> None:
    if version:
        from .. import __version__

        typer.echo(f"promptguard {__version__}")
        raise typer.Exit(0)


def main() -> None:
    app()
