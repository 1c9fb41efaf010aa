"""Options and helpers the sub-commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..guard import Guard
from ..policy import DetectorConfig, load_policy
from ..yamlutil import YamlError

PolicyOption = typer.Option(None, "--policy", "-p", help="Policy YAML (default: the packaged policies/default.yaml).")


def die(msg: str, code: int = 2) -> "typer.Exit":
    typer.echo(f"promptguard: error: {msg}", err=True)
    return typer.Exit(code)


def build_guard(policy: Optional[Path], detectors: Optional[dict[str, dict]] = None) -> Guard:
    """Load the policy (enabling or configuring `detectors` on top of it) and build
    its detectors, turning config errors into exit code 2."""
    from ..detectors.base import DetectorError, available

    try:
        pol = load_policy(policy)
    except YamlError as e:
        raise die(str(e)) from None
    except (OSError, ValueError) as e:
        raise die(f"cannot load policy: {e}") from None
    for name, opts in (detectors or {}).items():
        if name not in available():
            raise die(f"detector {name!r} is not available; available: {', '.join(available())}")
        current = pol.detectors[name].options if name in pol.detectors else {}
        pol.detectors[name] = DetectorConfig(**{**current, **opts, "enabled": True})
    try:
        return Guard(pol)
    except YamlError as e:  # a rule set or other file the policy names
        raise die(str(e)) from None
    except (DetectorError, OSError, ValueError, ImportError) as e:
        raise die(f"cannot build the policy's detectors: {e}") from None
