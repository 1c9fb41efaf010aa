"""Structured logs: one JSON object per line on stderr (or plain text with
`log_json: false`). Extra fields given as `log.info(msg, extra={"fields": {...}})`
are merged into the object."""

from __future__ import annotations

import json
import logging
import sys
import time

__all__ = ["JsonFormatter", "configure_logging"]

_HANDLER_MARK = "_promptguard_handler"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(level: str = "info", json_logs: bool = True) -> None:
    """Install one handler on the `promptguard` logger (idempotent)."""
    logger = logging.getLogger("promptguard")
    logger.setLevel(level.upper())
    for h in list(logger.handlers):
        if getattr(h, _HANDLER_MARK, False):
            logger.removeHandler(h)
    h = logging.StreamHandler(sys.stderr)
    setattr(h, _HANDLER_MARK, True)
    h.setFormatter(JsonFormatter() if json_logs else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(h)
    logger.propagate = False
