"""Options and helpers the sub-commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..guard import Guard, load_guard
from ..policy import Policy, load_policy
from ..yamlutil import YamlError

PolicyOption = typer.Option(None, "--policy", "-p", help="Policy YAML (default: the packaged policies/default.yaml).")


def die(msg: str, code: int = 2) -> "typer.Exit":
    typer.echo(f"promptguard: error: {msg}", err=True)
    return typer.Exit(code)


def load_policy_or_die(policy: Optional[Path]) -> Policy:
    """The policy file (or the packaged default), a bad one being exit code 2."""
    try:
        return load_policy(policy)
    except YamlError as e:
        raise die(str(e)) from None
    except (OSError, ValueError) as e:
        raise die(f"cannot load policy: {e}") from None


def build_guard(policy: Optional[Path], detectors: Optional[dict[str, dict]] = None) -> Guard:
    """Load the policy (enabling or configuring `detectors` on top of it) and build
    its detectors (`promptguard.guard.load_guard`), turning config errors into exit code 2."""
    from ..detectors.base import DetectorError

    pol = load_policy_or_die(policy)
    try:
        return load_guard(pol, detectors=detectors)
    except YamlError as e:  # a rule set or other file the policy names
        raise die(str(e)) from None
    except (DetectorError, OSError, ValueError, ImportError) as e:
        raise die(f"cannot build the policy's detectors: {e}") from None
