"""The SQLite engine of the feedback database: created with the file-mode rule, WAL, and transactions
that take the write lock at BEGIN (so two writers queue instead of failing on an upgrade)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from clicktune.adapters.permissions import FileModes


def sqlite_engine(url: str, modes: FileModes) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
        # SQLite would create the file with 0644 & ~umask; created here first, with the rule's mode
        # (adapters/permissions.py), it is what SQLite opens, and its -wal and -shm files copy its mode.
        path = Path(parsed.database).expanduser()
        modes.make_folder(path.parent)
        modes.create_file(path)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # noqa: ANN001
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
