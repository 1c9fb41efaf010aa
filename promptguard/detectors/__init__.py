"""Detectors: segments in, findings out. One file per detector, registered by name."""

from .base import AsyncDetector, Detector, DetectorError, available, create, register

__all__ = ["Detector", "AsyncDetector", "DetectorError", "register", "create", "available"]
