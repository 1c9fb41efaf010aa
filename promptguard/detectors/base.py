"""The detector contract and a small registry.

A detector is anything with a `name` and `detect(segments) -> list[Finding]`.
Heavy detectors (embedding models) register by import path so that nothing is
imported until a policy actually enables them.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

from ..findings import Finding
from ..segments import Segment

__all__ = ["Detector", "AsyncDetector", "DetectorError", "register", "create", "available"]


@runtime_checkable
class Detector(Protocol):
    name: str

    def detect(self, segments: Sequence[Segment]) -> list[Finding]:
        """Findings for one prompt's segments (all from the same `prompt`)."""
        ...


@runtime_checkable
class AsyncDetector(Detector, Protocol):
    async def adetect(self, segments: Sequence[Segment]) -> list[Finding]: ...


class DetectorError(RuntimeError):
    """A detector could not run (missing model, bad baseline, ...)."""


# name -> "module:factory" or a callable(options, base_dir) -> Detector
_REGISTRY: dict[str, str | Callable[..., Detector]] = {
    "rules": "promptguard.detectors.rules:RulesDetector.from_config",
    "demonstrations": "promptguard.detectors.demonstrations.detector:DemonstrationsDetector.from_config",
    "embeddings": "promptguard.detectors.embeddings:EmbeddingsDetector.from_config",
    "classifier": "promptguard.detectors.classifier:ClassifierDetector.from_config",
    "baseline": "promptguard.detectors.baseline:BaselineDetector.from_config",
    "exfiltration": "promptguard.detectors.exfiltration:ExfiltrationDetector.from_config",
}


def register(name: str, factory: str | Callable[..., Detector]) -> None:
    """Make a detector available to policies under `name`.

    `factory(options: Mapping, base_dir: Path) -> Detector`, or its import path.
    """
    _REGISTRY[name] = factory


def available() -> list[str]:
    return sorted(_REGISTRY)


def _resolve(ref: str | Callable[..., Detector]) -> Callable[..., Detector]:
    if callable(ref):
        return ref
    module, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def create(name: str, options: Mapping[str, Any] | None = None, base_dir: Path | None = None) -> Detector:
    try:
        ref = _REGISTRY[name]
    except KeyError:
        raise DetectorError(
            f"unknown detector {name!r}; available: {', '.join(available())}"
        ) from None
    return _resolve(ref)(dict(options or {}), base_dir or Path.cwd())
