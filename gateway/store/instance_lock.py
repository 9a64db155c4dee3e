"""One `hangw serve` per SQLite file: an exclusive `flock` on a lock file beside the database,
held for the life of the process (the kernel drops it when the process dies, even by kill -9, so
a crash never leaves a stale lock). The file holds the holder's pid, to name it in the refusal.
A SQLite database has one writer and its dispatcher does not claim rows (gateway/store/deliveries.py
`read_due`): a second instance would send every delivery twice. Admin commands (`hangw admin …`,
`hangw premises import`) do not take the lock; they are short transactions beside the server."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from sqlalchemy.engine import make_url


class AlreadyServing(Exception):
    """Another `hangw serve` holds this SQLite database."""

    def __init__(self, database: Path, holder: str) -> None:
        super().__init__(
            f"storage.url: the SQLite database {database} is already served by another `hangw serve` "
            f"(pid {holder or 'unknown'}, lock file {lock_path(database)}); a SQLite database takes one "
            "instance: stop that one, or use PostgreSQL to run several (docs/operator.md, "
            "\"Running several instances\")")
        self.database = database
        self.holder = holder


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".serve.lock")


def sqlite_database(storage_url: str) -> Path | None:
    """The file a SQLite storage URL names; None for PostgreSQL and in-memory databases."""
    url = make_url(storage_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).resolve()


def hold_serve_lock(storage_url: str) -> IO[str] | None:
    """Take the serve lock of a SQLite database (None: not SQLite, nothing to lock); keep the
    returned file open for as long as the server runs. AlreadyServing when another process holds it."""
    database = sqlite_database(storage_url)
    if database is None:
        return None
    database.parent.mkdir(parents=True, exist_ok=True)
    handle = lock_path(database).open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        raise AlreadyServing(database, holder) from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
