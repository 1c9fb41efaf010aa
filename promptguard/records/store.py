"""The record store: one record per decision (see `promptguard.records.model`).

SQLite (the default: one file, WAL mode, so several worker processes can share it)
or PostgreSQL (a `postgresql://` URL, for several proxy replicas). Requests never
wait on the database: `put()` queues the record and a background writer thread
inserts batches. `close()` drains the queue before returning, so a clean shutdown
loses nothing; a batch the database keeps refusing is written to a JSON-lines
fallback file next to the store (or to the log), never dropped silently.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sqlite3
import threading
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Iterable, Sequence

from .model import Record

__all__ = ["Store", "SQLiteStore", "PostgresStore", "NullStore", "open_store", "StoreError"]

log = logging.getLogger("promptguard.records")


class StoreError(RuntimeError):
    """The store cannot be opened or queried."""


_COLUMNS = [f.name for f in fields(Record)]
_JSON_COLUMNS = {"findings", "errors", "changes", "checks"}

_SQLITE_DDL = """
CREATE TABLE IF NOT EXISTS promptguard_audit (
  request_id TEXT PRIMARY KEY,
  ts REAL NOT NULL,
  endpoint TEXT NOT NULL,
  decision TEXT NOT NULL,
  stage TEXT NOT NULL,
  status INTEGER NOT NULL,
  client TEXT, api_key TEXT, model TEXT, stream INTEGER NOT NULL,
  summary TEXT, findings TEXT, errors TEXT, changes TEXT, checks TEXT,
  prompt_sha256 TEXT, answer_sha256 TEXT, prompt_text TEXT, answer_text TEXT,
  latency_ms REAL, upstream_ms REAL, worker INTEGER
);
CREATE INDEX IF NOT EXISTS promptguard_audit_ts ON promptguard_audit (ts);
CREATE INDEX IF NOT EXISTS promptguard_audit_decision ON promptguard_audit (decision, ts);
"""

_PG_DDL = """
CREATE TABLE IF NOT EXISTS promptguard_audit (
  request_id TEXT PRIMARY KEY,
  ts DOUBLE PRECISION NOT NULL,
  endpoint TEXT NOT NULL,
  decision TEXT NOT NULL,
  stage TEXT NOT NULL,
  status INTEGER NOT NULL,
  client TEXT, api_key TEXT, model TEXT, stream BOOLEAN NOT NULL,
  summary TEXT, findings TEXT, errors TEXT, changes TEXT, checks TEXT,
  prompt_sha256 TEXT, answer_sha256 TEXT, prompt_text TEXT, answer_text TEXT,
  latency_ms DOUBLE PRECISION, upstream_ms DOUBLE PRECISION, worker INTEGER
);
CREATE INDEX IF NOT EXISTS promptguard_audit_ts ON promptguard_audit (ts);
CREATE INDEX IF NOT EXISTS promptguard_audit_decision ON promptguard_audit (decision, ts);
"""


def _row(rec: Record) -> tuple[Any, ...]:
    d = rec.to_dict()
    return tuple(json.dumps(d[c], ensure_ascii=False) if c in _JSON_COLUMNS else d[c] for c in _COLUMNS)


def _from_row(names: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    d = dict(zip(names, row))
    for c in _JSON_COLUMNS:
        if isinstance(d.get(c), str):
            try:
                d[c] = json.loads(d[c])
            except ValueError:
                pass
    if "stream" in d:
        d["stream"] = bool(d["stream"])
    return d


class Store:
    """Queue records for a background writer; query them back."""

    url: str = ""
    _STOP = object()

    def __init__(self, batch_size: int = 256, retries: int = 5, fallback: Path | None = None,
                 linger: float = 0.2):
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._batch_size = batch_size
        # after a first record, wait this long for more, so that one transaction writes many
        # (fewer wake-ups of the writer thread competing with the requests for the GIL)
        self._linger = linger
        self._retries = retries
        self._fallback = fallback
        self._closed = False
        self._pending = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self.written = 0
        self.failed = 0
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> "Store":
        self._init_schema()
        self._thread = threading.Thread(target=self._run, name="promptguard-store", daemon=True)
        self._thread.start()
        return self

    def put(self, rec: Record) -> None:
        """Queue a record (never blocks on the database)."""
        with self._lock:
            if self._closed:
                # after shutdown: write synchronously rather than lose it
                self._write_or_fallback([rec])
                return
            self._pending += 1
        self._queue.put(rec)

    @property
    def queued(self) -> int:
        return self._pending

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued record is written (or failed over)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float = 30.0) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(self._STOP)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("record store writer did not finish in %.0fs; %d records pending", timeout, self._pending)
        self._close_reader()

    # -- the writer thread ----------------------------------------------------------
    def _run(self) -> None:
        conn = None
        stop = False
        while not stop:
            item = self._queue.get()
            batch: list[Record] = []
            if item is self._STOP:
                stop = True
            else:
                batch.append(item)
            if not stop and self._linger:
                time.sleep(self._linger)  # let more records arrive without waking this thread
            while len(batch) < self._batch_size and not stop:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is self._STOP:
                    stop = True
                else:
                    batch.append(item)
            if batch:
                conn = self._write_batch(conn, batch)
                with self._idle:
                    self._pending -= len(batch)
                    self._idle.notify_all()
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass

    def _write_batch(self, conn: Any, batch: list[Record]) -> Any:
        delay = 0.05
        for attempt in range(self._retries + 1):
            try:
                if conn is None:
                    conn = self._connect()
                self._insert(conn, batch)
                self.written += len(batch)
                return conn
            except Exception as e:  # noqa: BLE001 - retried, then failed over
                log.warning("record store write failed (attempt %d): %s", attempt + 1, e)
                try:
                    if conn is not None:
                        conn.close()
                except Exception:  # noqa: BLE001
                    pass
                conn = None
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        self._fail_over(batch)
        return None

    def _write_or_fallback(self, batch: list[Record]) -> None:
        conn = self._write_batch(None, batch)
        if conn is not None:
            conn.close()

    def _fail_over(self, batch: list[Record]) -> None:
        self.failed += len(batch)
        lines = "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in batch)
        if self._fallback is not None:
            try:
                with open(self._fallback, "a", encoding="utf-8") as fh:
                    fh.write(lines)
                log.error("record store unavailable: %d records written to %s", len(batch), self._fallback)
                return
            except OSError:
                pass
        for line in lines.splitlines():
            log.error("record store unavailable; record: %s", line)

    # -- backend hooks ---------------------------------------------------------------
    def _init_schema(self) -> None:
        raise NotImplementedError

    def _connect(self) -> Any:
        raise NotImplementedError

    def _insert(self, conn: Any, batch: list[Record]) -> None:
        raise NotImplementedError

    def _close_reader(self) -> None:
        pass

    def query(
        self,
        *,
        limit: int | None = 100,
        decision: Iterable[str] | None = None,
        since: float | None = None,
        until: float | None = None,
        request_id: str | None = None,
        api_key: str | None = None,
        newest_first: bool = True,
    ) -> list[dict[str, Any]]:
        raise NotImplementedError

    def count(self) -> int:
        return len(self.query(limit=None))


def _where(ph: str, decision: Iterable[str] | None, since: float | None, until: float | None,
           request_id: str | None, api_key: str | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if decision:
        ds = list(decision)
        clauses.append(f"decision IN ({', '.join([ph] * len(ds))})")
        args.extend(ds)
    if since is not None:
        clauses.append(f"ts >= {ph}")
        args.append(since)
    if until is not None:
        clauses.append(f"ts < {ph}")
        args.append(until)
    if request_id:
        clauses.append(f"request_id = {ph}")
        args.append(request_id)
    if api_key:
        clauses.append(f"api_key = {ph}")
        args.append(api_key)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


class SQLiteStore(Store):
    def __init__(self, path: str | Path, **kw: Any):
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        kw.setdefault("fallback", self.path.with_name(self.path.name + ".failed.jsonl"))
        super().__init__(**kw)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _init_schema(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._connect()
            try:
                conn.executescript(_SQLITE_DDL)
                have = {r[1] for r in conn.execute("PRAGMA table_info(promptguard_audit)")}
                for c in _COLUMNS:  # a store written by an older version gains the new columns
                    if c not in have:
                        conn.execute(f"ALTER TABLE promptguard_audit ADD COLUMN {c} TEXT")
            finally:
                conn.close()
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot open record store {self.path}: {e}") from None

    def _insert(self, conn: sqlite3.Connection, batch: list[Record]) -> None:
        sql = (f"INSERT OR REPLACE INTO promptguard_audit ({', '.join(_COLUMNS)}) "
               f"VALUES ({', '.join('?' * len(_COLUMNS))})")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(sql, [_row(r) for r in batch])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def query(self, *, limit: int | None = 100, decision: Iterable[str] | None = None,
              since: float | None = None, until: float | None = None, request_id: str | None = None,
              api_key: str | None = None, newest_first: bool = True) -> list[dict[str, Any]]:
        if not self.path.exists():
            raise StoreError(f"no record store at {self.path}")
        where, args = _where("?", decision, since, until, request_id, api_key)
        sql = f"SELECT {', '.join(_COLUMNS)} FROM promptguard_audit{where} ORDER BY ts {'DESC' if newest_first else 'ASC'}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        try:
            conn = sqlite3.connect(self.path, timeout=30.0)
            try:
                rows = conn.execute(sql, args).fetchall()
            finally:
                conn.close()
        except sqlite3.Error as e:
            raise StoreError(f"cannot read record store {self.path}: {e}") from None
        return [_from_row(_COLUMNS, r) for r in rows]


class PostgresStore(Store):
    def __init__(self, url: str, **kw: Any):
        self.url = url
        super().__init__(**kw)

    def _connect(self) -> Any:
        try:
            import psycopg
        except ImportError:  # pragma: no cover - depends on the install
            raise StoreError("PostgreSQL store needs psycopg: pip install 'promptguard[postgres]'") from None
        return psycopg.connect(self.url, connect_timeout=10)

    def _init_schema(self) -> None:
        try:
            conn = self._connect()
            try:
                with conn.transaction():
                    for stmt in filter(None, (s.strip() for s in _PG_DDL.split(";"))):
                        conn.execute(stmt)
                    for c in _COLUMNS:
                        conn.execute(f"ALTER TABLE promptguard_audit ADD COLUMN IF NOT EXISTS {c} TEXT")
            finally:
                conn.close()
        except StoreError:
            raise
        except Exception as e:  # noqa: BLE001
            raise StoreError(f"cannot open record store {_redact(self.url)}: {e}") from None

    def _insert(self, conn: Any, batch: list[Record]) -> None:
        sql = (f"INSERT INTO promptguard_audit ({', '.join(_COLUMNS)}) "
               f"VALUES ({', '.join(['%s'] * len(_COLUMNS))}) ON CONFLICT (request_id) DO UPDATE SET "
               + ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS if c != "request_id"))
        with conn.transaction():
            with conn.cursor() as cur:
                cur.executemany(sql, [_row(r) for r in batch])

    def query(self, *, limit: int | None = 100, decision: Iterable[str] | None = None,
              since: float | None = None, until: float | None = None, request_id: str | None = None,
              api_key: str | None = None, newest_first: bool = True) -> list[dict[str, Any]]:
        where, args = _where("%s", decision, since, until, request_id, api_key)
        sql = f"SELECT {', '.join(_COLUMNS)} FROM promptguard_audit{where} ORDER BY ts {'DESC' if newest_first else 'ASC'}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        try:
            conn = self._connect()
            try:
                rows = conn.execute(sql, args).fetchall()
            finally:
                conn.close()
        except StoreError:
            raise
        except Exception as e:  # noqa: BLE001
            raise StoreError(f"cannot read record store {_redact(self.url)}: {e}") from None
        return [_from_row(_COLUMNS, r) for r in rows]


class NullStore(Store):
    """`store: none`: records are only logged."""

    url = "none"

    def start(self) -> "Store":
        return self

    def put(self, rec: Record) -> None:
        pass

    def close(self, timeout: float = 30.0) -> None:
        pass

    def query(self, **kw: Any) -> list[dict[str, Any]]:
        return []


def _redact(url: str) -> str:
    """A URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        user = cred.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def open_store(url: str, *, start: bool = True) -> Store:
    """`path`, `sqlite:///path`, `postgresql://…` (or `postgres://…`), or `none`."""
    u = url.strip()
    if u.lower() in ("none", "off", ""):
        return NullStore()
    if u.startswith(("postgresql://", "postgres://")):
        st: Store = PostgresStore(u)
    elif u.startswith("sqlite:///"):
        st = SQLiteStore(u[len("sqlite:///"):] or "audit.sqlite")
    elif "://" in u:
        raise StoreError(f"unsupported store URL {_redact(u)!r}: use a path, sqlite:///path or postgresql://…")
    else:
        st = SQLiteStore(u)
    return st.start() if start else st


def reader(url: str) -> Store:
    """A store for querying only (no writer thread, schema untouched)."""
    return open_store(url, start=False)


__all__ += ["reader"]
