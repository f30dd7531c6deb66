"""Races in tests, with real clients: requests lined up at the worst moment, on SQLite and PostgreSQL.

``FirstWrites(engine, n)`` holds each request of the portal (uvicorn serves it in a thread of this
process) at its first write to the database until ``n`` of them are there, then lets them all go:
each has done every read it does before writing, which is the moment a check-then-write breaks.
``PausedWrite(engine)`` holds one request there until the test lets it go (the CLI runs meanwhile).
Nothing is mocked: the statements, the locks and the transactions are the database's own.

``pg_web_env`` serves the portal on a fresh PostgreSQL schema (the program started by a real
``duban run --once``); ``office_client`` logs the office in through its one-time link.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator

import httpx
from sqlalchemy import event
from sqlalchemy.engine import Engine
from support import DubanEnv, pg_schema_url

from tests.web_support import TIMEOUT, WebEnv, start_web_env

WAIT = 30  # seconds: a request that never reaches its write fails the test instead of hanging it


def _is_write(statement: str) -> bool:
    head = statement.lstrip()[:10].upper()
    return head.startswith(("UPDATE", "INSERT", "DELETE")) or "FOR UPDATE" in statement.upper()


class FirstWrites:
    """Each request thread waits at its first write until ``n`` threads are waiting there."""

    def __init__(self, engine: Engine, n: int) -> None:
        self.engine = engine
        self.barrier = threading.Barrier(n, timeout=WAIT)
        self._seen: set[int] = set()
        self._lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", self._hold)

    def _hold(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if not _is_write(statement):
            return
        with self._lock:
            if threading.get_ident() in self._seen:
                return
            self._seen.add(threading.get_ident())
        self.barrier.wait()

    def remove(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._hold)


class PausedWrite:
    """The first request to write waits there until ``go()``; ``arrived`` is set when it waits."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.arrived = threading.Event()
        self._go = threading.Event()
        self._taken = False
        self._lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", self._hold)

    def _hold(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if not _is_write(statement):
            return
        with self._lock:
            if self._taken:
                return
            self._taken = True
        self.arrived.set()
        self._go.wait(WAIT)

    def go(self) -> None:
        self._go.set()

    def remove(self) -> None:
        self._go.set()
        event.remove(self.engine, "before_cursor_execute", self._hold)


def at_once(*calls) -> list:
    """Run each call in its own thread, all started together; their results in order."""
    results: list = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index, call):
        try:
            results[index] = call()
        except BaseException as exc:  # (re-raised below, in the test's thread)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT + TIMEOUT)
    if errors:
        raise errors[0]
    return results


class Background:
    """A call run in a thread from now on; ``result()`` waits for it (and raises what it raised)."""

    def __init__(self, call) -> None:
        self._value = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call,))
        self._thread.start()

    def _run(self, call) -> None:
        try:
            self._value = call()
        except BaseException as exc:  # (re-raised in the test's thread)
            self._error = exc

    def result(self):
        self._thread.join(WAIT + TIMEOUT)
        if self._error is not None:
            raise self._error
        return self._value


def office_client(web: WebEnv) -> httpx.Client:
    """An httpx client with the office's session (its one-time login link used)."""
    client = httpx.Client(timeout=TIMEOUT)
    link = web.login_link()
    answer = client.get(link)
    if answer.status_code == 200 and "<form" in answer.text:  # a page that confirms the login (POST)
        token = re.search(r'name="csrf" value="([^"]+)"', answer.text)
        answer = client.post(link, data={"csrf": token.group(1)} if token else {})
    assert answer.status_code == 303, answer.text
    return client


@contextlib.contextmanager
def pg_web_env(root) -> Iterator[WebEnv]:
    """The portal on a fresh PostgreSQL schema: a deployment under ``root``, started by ``run --once``."""
    with pg_schema_url("race") as url:
        env = DubanEnv(root, database_url=url)
        env.upgrade()
        web = start_web_env(env)
        try:
            yield web
        finally:
            web.server.stop()
            web.portal.engine.dispose()
            env.cleanup()
