"""Records: what every face decided, one record per decision, in one store.

(The word "audit" belongs to the backdoor audit, `promptguard.audit`.)

    from promptguard.records import Record, open_store, reader
"""

from __future__ import annotations

from .model import BLOCKED_STATUS, ERROR_DECISION, Record, sha256_text, worst
from .store import NullStore, Store, StoreError, open_store, reader

__all__ = ["BLOCKED_STATUS", "ERROR_DECISION", "NullStore", "Record", "Store", "StoreError", "open_store",
           "reader", "sha256_text", "worst"]
