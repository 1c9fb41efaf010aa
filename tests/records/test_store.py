"""The record store (SQLite in WAL mode, PostgreSQL when a server can be started here):
one schema in SQLAlchemy Core, brought up to date by Alembic migrations."""

from __future__ import annotations

import glob
import os
import shutil
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from promptguard.records import Record
from promptguard.records.store import SQLiteStore, StoreError, open_store, reader


def _rec(i: int, decision: str = "allow", **kw) -> Record:
    return Record(request_id=f"r-{i}", ts=time.time() + i * 1e-6, endpoint="/v1/chat/completions",
                       decision=decision, findings=[{"rule": "X", "i": i}], checks=["rules"], **kw)


# -- SQLite ------------------------------------------------------------------------------------------
def test_two_writers_share_one_sqlite_file(tmp_path):
    """Two stores on one file (as two worker processes would have) lose nothing."""
    db = tmp_path / "audit.sqlite"
    a, b = open_store(str(db)), open_store(f"sqlite:///{db}")

    def fill(st, base):
        for i in range(500):
            st.put(_rec(base + i, "block" if i % 5 == 0 else "allow"))

    ts = [threading.Thread(target=fill, args=(a, 0)), threading.Thread(target=fill, args=(b, 10_000))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    a.close()
    b.close()
    rows = reader(str(db)).query(limit=None)
    assert len(rows) == 1000 and len({r["request_id"] for r in rows}) == 1000
    assert rows[0]["findings"][0]["rule"] == "X" and rows[0]["checks"] == ["rules"]
    assert len(reader(str(db)).query(limit=None, decision=["block"])) == 200
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_put_never_blocks_and_close_drains(tmp_path):
    st = open_store(str(tmp_path / "a.sqlite"))
    t0 = time.perf_counter()
    for i in range(2000):
        st.put(_rec(i))
    assert time.perf_counter() - t0 < 1.0  # queued, not written on the caller's thread
    st.close()
    assert st.written == 2000 and st.failed == 0
    st.put(_rec(99999))  # after close: written synchronously, not lost
    assert len(reader(str(tmp_path / "a.sqlite")).query(limit=None)) == 2001


def test_unwritable_store_fails_over_to_a_file(tmp_path):
    db = tmp_path / "audit.sqlite"
    st = SQLiteStore(db, retries=1).start()
    os.chmod(tmp_path, 0o500) if os.getuid() != 0 else None
    # make every write fail: replace the file by a directory
    db.unlink()
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.mkdir()
    try:
        st.put(_rec(1, "block"))
        st.close()
    finally:
        os.chmod(tmp_path, 0o700)
    assert st.failed == 1
    fallback = tmp_path / "audit.sqlite.failed.jsonl"
    assert '"request_id": "r-1"' in fallback.read_text()


def test_old_store_gains_new_columns(tmp_path):
    db = tmp_path / "old.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE promptguard_audit (request_id TEXT PRIMARY KEY, ts REAL NOT NULL, "
                 "endpoint TEXT NOT NULL, decision TEXT NOT NULL)")
    conn.commit()
    conn.close()
    st = open_store(str(db))
    st.put(_rec(1))
    st.close()
    assert reader(str(db)).query()[0]["checks"] == ["rules"]
    # the legacy table was renamed and the store is at the newest migration
    conn = sqlite3.connect(db)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "promptguard_records" in tables and "promptguard_audit" not in tables
    assert conn.execute("SELECT version_num FROM promptguard_records_version").fetchone()[0] == "0001"


def test_bad_store_urls():
    with pytest.raises(StoreError, match="unsupported store URL"):
        open_store("mysql://u:secret@h/db")
    with pytest.raises(StoreError, match="no record store"):
        reader("/nonexistent/dir/x.sqlite").query()
    assert open_store("none").query() == []


# -- PostgreSQL ------------------------------------------------------------------------------------------
def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    w = shutil.which("initdb")
    return Path(w).resolve().parent if w else None


@pytest.fixture(scope="module")
def postgres_url():
    import tempfile

    from tests.proxy.conftest import free_port

    pytest.importorskip("psycopg", reason="psycopg not installed (extra 'postgres')")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries here (apt-get install postgresql to run this test)")
    # not under pytest's tmp dirs: those are private to root, and postgres runs as its own user
    d = Path(tempfile.mkdtemp(prefix="pg-proxy-test-"))
    data = d / "data"
    as_user: list[str] = []
    if os.getuid() == 0:  # postgres refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL")
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to start PostgreSQL as")
        shutil.chown(d, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "pg", "--no-sync"],
                   check=True, capture_output=True)
    r = subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(d / "log"),
                        "-o", f"-p {port} -k {d} -h 127.0.0.1", "start"], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"PostgreSQL did not start: {r.stderr.decode()[-300:]}")
    yield f"postgresql://pg@127.0.0.1:{port}/postgres"
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


def test_postgres_store(postgres_url):
    a, b = open_store(postgres_url), open_store(postgres_url)
    for i in range(300):
        (a if i % 2 else b).put(_rec(i, "flag" if i % 3 == 0 else "allow", stream=bool(i % 2)))
    a.close()
    b.close()
    rows = reader(postgres_url).query(limit=None, newest_first=False)
    assert len(rows) == 300 and rows[0]["request_id"] == "r-0"
    assert rows[1]["stream"] is True and rows[0]["findings"] == [{"rule": "X", "i": 0}]
    assert len(reader(postgres_url).query(limit=None, decision=["flag"])) == 100
    assert reader(postgres_url).query(request_id="r-7")[0]["request_id"] == "r-7"


