"""The record store: one schema (`schema.py`, SQLAlchemy Core) written to SQLite or
PostgreSQL through SQLAlchemy's async engine, evolved by Alembic migrations.

SQLite (the default: one file, WAL mode, so several worker processes can share it) or
PostgreSQL (a `postgresql://` URL, for several proxy replicas; `promptguard[postgres]`).
Requests never wait on the database: `put()` queues the record and a writer thread
inserts batches. The database I/O itself runs on the background loop of
`promptguard.portal` (aiosqlite, psycopg's async mode). `close()` drains the queue
before returning, so a clean shutdown loses nothing; a batch the database keeps
refusing is written to a JSON-lines fallback file next to the store (or to the log),
never dropped silently.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ..portal import run_sync
from .model import Record
from .schema import records

__all__ = ["Store", "NullStore", "open_store", "reader", "StoreError"]

log = logging.getLogger("promptguard.records")

_COLUMNS = [f.name for f in fields(Record)]


class StoreError(RuntimeError):
    """The store cannot be opened or queried."""


def _redact(url: str) -> str:
    """A URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        user = cred.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def _migrate(sync_conn: Any) -> None:
    """Bring the store's schema to the newest revision (Alembic, on this connection)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, "head")


class Store:
    """Queue records for a background writer; query them back."""

    _STOP = object()

    def __init__(self, url: str, *, path: Path | None = None, batch_size: int = 256, retries: int = 5,
                 fallback: Path | None = None, linger: float = 0.2):
        self.url = url  # as the user gave it (`promptguard log` shows it)
        self.path = path  # the SQLite file, when it is one
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
        self._engine: AsyncEngine | None = None
        self._migrated = False

    # -- the database -------------------------------------------------------------
    @property
    def _async_url(self) -> str:
        if self.path is not None:
            return f"sqlite+aiosqlite:///{self.path}"
        scheme, rest = self.url.split("://", 1)
        return f"postgresql+psycopg://{rest}"

    def _engine_here(self) -> AsyncEngine:
        """The async engine (on the portal loop, where all of this store's I/O runs)."""
        if self._engine is None:
            if self.path is None:
                try:
                    import psycopg  # noqa: F401
                except ImportError:  # pragma: no cover - depends on the install
                    raise StoreError("PostgreSQL store needs psycopg: pip install 'promptguard[postgres]'") from None
            engine = create_async_engine(self._async_url, pool_pre_ping=True)
            if self.path is not None:
                sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
            self._engine = engine
        return self._engine

    async def _amigrate(self) -> None:
        if self._migrated:
            return
        for attempt in range(3):  # two workers may create the table at once: the loser tries again
            try:
                async with self._engine_here().begin() as conn:
                    await conn.run_sync(_migrate)
                break
            except Exception:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
        self._migrated = True

    async def _ainsert(self, batch: list[Record]) -> None:
        await self._amigrate()
        engine = self._engine_here()
        rows = [{c: getattr(r, c) for c in _COLUMNS} for r in batch]
        if engine.dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
        stmt = insert(records)
        stmt = stmt.on_conflict_do_update(index_elements=["request_id"],
                                          set_={c: stmt.excluded[c] for c in _COLUMNS if c != "request_id"})
        async with engine.begin() as conn:
            await conn.execute(stmt, rows)

    async def aquery(self, *, limit: int | None = 100, decision: Iterable[str] | None = None,
                     since: float | None = None, until: float | None = None, request_id: str | None = None,
                     api_key: str | None = None, newest_first: bool = True) -> list[dict[str, Any]]:
        q = sa.select(records)
        if decision:
            q = q.where(records.c.decision.in_(list(decision)))
        if since is not None:
            q = q.where(records.c.ts >= since)
        if until is not None:
            q = q.where(records.c.ts < until)
        if request_id:
            q = q.where(records.c.request_id == request_id)
        if api_key:
            q = q.where(records.c.api_key == api_key)
        q = q.order_by(records.c.ts.desc() if newest_first else records.c.ts.asc())
        if limit is not None:
            q = q.limit(int(limit))
        await self._amigrate()
        async with self._engine_here().connect() as conn:
            rows = (await conn.execute(q)).mappings().all()
        return [{**row, "stream": bool(row["stream"])} for row in rows]

    async def _adispose(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> "Store":
        try:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            run_sync(self._amigrate())
            run_sync(self._adispose())  # the writer opens its own connections
        except StoreError:
            raise
        except Exception as e:  # noqa: BLE001
            raise StoreError(f"cannot open record store {_redact(self.url)}: {e}") from None
        self._thread = threading.Thread(target=self._run, name="promptguard-store", daemon=True)
        self._thread.start()
        return self

    def put(self, rec: Record) -> None:
        """Queue a record (never blocks on the database)."""
        with self._lock:
            if self._closed:
                # after shutdown: write synchronously rather than lose it
                self._write_batch([rec])
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
        try:
            run_sync(self._adispose())
        except Exception:  # noqa: BLE001 - closing; nothing left to lose
            log.debug("closing the record store's engine failed", exc_info=True)

    def query(self, *, limit: int | None = 100, decision: Iterable[str] | None = None,
              since: float | None = None, until: float | None = None, request_id: str | None = None,
              api_key: str | None = None, newest_first: bool = True) -> list[dict[str, Any]]:
        """Records, newest first (sync callers; `aquery` for async ones)."""
        if self.path is not None and not self.path.exists():
            raise StoreError(f"no record store at {self.path}")
        try:
            return run_sync(self.aquery(limit=limit, decision=decision, since=since, until=until,
                                        request_id=request_id, api_key=api_key, newest_first=newest_first))
        except StoreError:
            raise
        except Exception as e:  # noqa: BLE001
            raise StoreError(f"cannot read record store {_redact(self.url)}: {e}") from None

    def count(self) -> int:
        return len(self.query(limit=None))

    # -- the writer thread ----------------------------------------------------------
    def _run(self) -> None:
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
                self._write_batch(batch)
                with self._idle:
                    self._pending -= len(batch)
                    self._idle.notify_all()

    def _write_batch(self, batch: list[Record]) -> None:
        delay = 0.05
        for attempt in range(self._retries + 1):
            try:
                run_sync(self._ainsert(batch))
                self.written += len(batch)
                return
            except Exception as e:  # noqa: BLE001 - retried, then failed over
                log.warning("record store write failed (attempt %d): %s", attempt + 1, e)
                run_sync(self._adispose())  # a fresh connection next time
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        self._fail_over(batch)

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


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


class NullStore(Store):
    """`store: none`: records are only logged."""

    def __init__(self) -> None:
        super().__init__("none")

    def start(self) -> "Store":
        return self

    def put(self, rec: Record) -> None:
        pass

    def close(self, timeout: float = 30.0) -> None:
        pass

    def query(self, **kw: Any) -> list[dict[str, Any]]:
        return []


def open_store(url: str, *, start: bool = True) -> Store:
    """`path`, `sqlite:///path`, `postgresql://…` (or `postgres://…`), or `none`."""
    u = url.strip()
    if u.lower() in ("none", "off", ""):
        return NullStore()
    if u.startswith(("postgresql://", "postgres://")):
        st = Store(u)
    elif u.startswith("sqlite:///"):
        path = Path(u[len("sqlite:///"):] or "records.sqlite")
        st = Store(u, path=path, fallback=path.with_name(path.name + ".failed.jsonl"))
    elif "://" in u:
        raise StoreError(f"unsupported store URL {_redact(u)!r}: use a path, sqlite:///path or postgresql://…")
    else:
        path = Path(u)
        st = Store(f"sqlite:///{path}", path=path, fallback=path.with_name(path.name + ".failed.jsonl"))
    return st.start() if start else st


def reader(url: str) -> Store:
    """A store for querying only (no writer thread; an old store's schema is upgraded
    on first read)."""
    return open_store(url, start=False)


class SQLiteStore(Store):
    """A SQLite record store at `path` (what `open_store` gives for a path)."""

    def __init__(self, path: str | Path, **kw: Any):
        p = Path(path)
        kw.setdefault("fallback", p.with_name(p.name + ".failed.jsonl"))
        super().__init__(f"sqlite:///{p}", path=p, **kw)


__all__ += ["SQLiteStore"]
