"""The root command: `--version` and a readable help."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from promptguard import __version__
from promptguard.cli import app


def test_version_prints_and_exits_zero():
    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == f"promptguard {__version__}"


def test_python_dash_m_runs_the_cli():
    r = subprocess.run([sys.executable, "-m", "promptguard", "--version"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"promptguard {__version__}", r.stderr


def test_help_lists_commands_and_shows_flags_as_flags():
    r = CliRunner().invoke(app, ["--help"])
    assert r.exit_code == 0
    assert "scan" in r.output and "serve" in r.output
    assert "<bool>" not in r.output
    r = CliRunner().invoke(app, ["scan", "--help"])
    assert r.exit_code == 0 and "<bool>" not in r.output
