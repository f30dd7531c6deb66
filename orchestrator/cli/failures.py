"""The database's own failures as one line each, instead of a traceback.

A command that meets a database it cannot write (a read-only file or folder), one held by another
writer past the wait (the daemon's tick at province scale), or one it cannot reach, did nothing:
its transaction rolled back. ``database_problem`` says so in one line naming the database; the
CLI prints it and exits 1 (the action failed; the command was used right). ``--debug`` still
shows the traceback. SQLAlchemy is not imported here: ``duban --help`` stays fast.
"""

from __future__ import annotations

CLI_BUSY_SECONDS = 60  # how long a command waits for another writer (the daemon's 5 s is too short)

_KNOWN = (
    (
        "database is locked",
        "the database is busy: another process (the daemon's tick?) has been writing to it for more "
        "than {busy:g} s; nothing was changed — run the command again in a moment",
    ),
    (
        "readonly database",
        "the database is read-only for this user: nothing was changed — duban needs to write the "
        "database file and its folder (check their owner and permissions)",
    ),
    (
        "unable to open database file",
        "cannot open the database file for writing: nothing was changed — check the database "
        "file's folder (it must exist and be writable: SQLite keeps its -wal and -shm files there)",
    ),
    (
        "disk i/o error",
        "the disk failed under the database (full, or an I/O error): nothing was changed",
    ),
    (
        "database or disk is full",
        "the disk holding the database is full: nothing was changed",
    ),
)


def database_problem(exc: BaseException, where: str | None) -> str | None:
    """One line for a database failure (``where``: the database, as the config names it), or None
    when ``exc`` is not one (the caller re-raises it)."""
    if not type(exc).__module__.startswith("sqlalchemy") or type(exc).__name__ != "OperationalError":
        return None
    cause = str(getattr(exc, "orig", None) or exc).strip()
    first = cause.splitlines()[0] if cause else type(exc).__name__
    lowered = first.lower()
    for needle, line in _KNOWN:
        if needle in lowered:
            line = line.format(busy=CLI_BUSY_SECONDS)
            return f"{where}: {line}" if where else line
    return f"{where}: the database failed ({first[:200]}): nothing was changed" if where else None
