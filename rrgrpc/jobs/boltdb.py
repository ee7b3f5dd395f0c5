"""The ``boltdb`` driver: RoadRunner's durable file-backed queue, kept on SQLite (standard library).

Keys (``jobs.pipelines.<name>.config``, RoadRunner's): ``file`` (``rr.db``, relative to the working
directory), ``priority`` (10), ``prefetch`` (1000), ``permissions`` (0o777, the mode of a new file;
YAML reads ``0755`` as octal, and a string is read as octal too). Several pipelines may share
one file. The file is SQLite, not bbolt: an existing RoadRunner ``rr.db`` is not read.

A job is one row, committed before ``push`` returns. Taking a job marks its row reserved; ack deletes
the row; nack/requeue clear the mark (with a not-before time for a delay). Rows still reserved when
the driver stops, or when the process died, are made ready again when the pipeline opens: a job is
done at least once and never lost. SQLite calls run on one thread of the driver's own, so the event
loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar

import msgspec

from rrgrpc.jobs.driver import Delivery, DeliveryQueue, DriverError, Headers, Job, Pipeline, Stat
from rrgrpc.jobs.feeder import FeedingDriver

T = TypeVar("T")
log = logging.getLogger("rr.jobs")

DEFAULT_PREFETCH: Final = 1000
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS rr_jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline TEXT NOT NULL,
    id TEXT NOT NULL,
    job TEXT NOT NULL,
    payload BLOB NOT NULL,
    headers BLOB NOT NULL,
    priority INTEGER NOT NULL,
    auto_ack INTEGER NOT NULL,
    not_before REAL NOT NULL,
    reserved INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS rr_jobs_take ON rr_jobs (pipeline, reserved, priority, seq);
"""


class BoltDelivery(Delivery):
    __slots__ = ("_owner", "_seq", "_settled")

    def __init__(self, job: Job, seq: int, owner: BoltDriver) -> None:
        super().__init__(job, driver="boltdb", queue=owner.pipeline.name)
        self._owner = owner
        self._seq = seq
        self._settled = False

    async def _settle(self, fn: Callable[[sqlite3.Connection], None]) -> None:
        if self._settled or self._owner._stopped:
            return
        self._settled = True
        try:
            await self._owner._db(fn)
        finally:
            self._owner._settled()

    async def ack(self) -> None:
        seq = self._seq
        await self._settle(lambda c: _commit(c, "DELETE FROM rr_jobs WHERE seq = ?", (seq,)))

    async def nack(self, *, requeue: bool, delay: int = 0) -> None:
        if requeue:
            await self.requeue(delay=delay)
        else:
            await self.ack()

    async def requeue(self, *, delay: int = 0, headers: Headers | None = None) -> None:
        seq, merged = self._seq, msgspec.json.encode({**self.job.headers, **(headers or {})})
        sql = "UPDATE rr_jobs SET reserved = 0, not_before = ?, headers = ? WHERE seq = ?"
        await self._settle(lambda c: _commit(c, sql, (time.time() + delay, merged, seq)))


class BoltDriver(FeedingDriver):
    def __init__(self, pipeline: Pipeline, broker: Mapping[str, Any], queue: DeliveryQueue) -> None:
        super().__init__(pipeline, broker, queue)
        self.file = Path(pipeline.get_str("file", "rr.db"))
        self.prefetch = max(1, pipeline.get_int("prefetch", DEFAULT_PREFETCH))
        self.permissions = _octal(pipeline.config.get("permissions", 0o777))
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"boltdb-{pipeline.name}")
        self._conn: sqlite3.Connection | None = None
        self._stopped = False

    async def _db(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise DriverError(f"boltdb pipeline {self.pipeline.name}: {self.file} is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, fn, conn)
        except sqlite3.Error as exc:
            raise DriverError(f"boltdb pipeline {self.pipeline.name}: {self.file}: {exc}") from None

    async def open(self) -> None:
        name = self.pipeline.name

        def connect() -> tuple[sqlite3.Connection, int]:
            if not self.file.exists():
                self.file.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.file, os.O_CREAT | os.O_WRONLY, self.permissions)
                os.close(fd)
            conn = sqlite3.connect(self.file, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.executescript(_SCHEMA)
            back = conn.execute("UPDATE rr_jobs SET reserved = 0 WHERE pipeline = ? AND reserved = 1", (name,))
            return conn, back.rowcount

        try:
            self._conn, recovered = await asyncio.get_running_loop().run_in_executor(self._thread, connect)
        except (OSError, sqlite3.Error) as exc:
            raise DriverError(f"boltdb pipeline {name}: cannot open {self.file}: {exc}") from None
        if recovered:
            log.info(
                "boltdb: unfinished jobs are ready again", extra={"pipeline": name, "count": recovered}
            )

    async def push(self, job: Job) -> None:
        row = (
            self.pipeline.name, job.id, job.name, job.payload, msgspec.json.encode(job.headers),
            job.priority, int(job.auto_ack), time.time() + job.delay,
        )  # fmt: skip
        sql = (
            "INSERT INTO rr_jobs (pipeline, id, job, payload, headers, priority, auto_ack, not_before)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        await self._db(lambda c: _commit(c, sql, row))
        self._changed.set()

    def _take(self, conn: sqlite3.Connection, limit: int) -> tuple[list[tuple[int, Job]], float | None]:
        """Reserve up to ``limit`` due rows in priority order; also the next not-before time, if any."""
        now = time.time()
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            rows = conn.execute(
                "SELECT seq, id, job, payload, headers, priority, auto_ack FROM rr_jobs"
                " WHERE pipeline = ? AND reserved = 0 AND not_before <= ? ORDER BY priority, seq LIMIT ?",
                (self.pipeline.name, now, limit),
            ).fetchall()
            conn.executemany("UPDATE rr_jobs SET reserved = 1 WHERE seq = ?", [(r[0],) for r in rows])
            due = conn.execute(
                "SELECT MIN(not_before) FROM rr_jobs WHERE pipeline = ? AND reserved = 0 AND not_before > ?",
                (self.pipeline.name, now),
            ).fetchone()[0]
        jobs = [
            (seq, Job(id=id_, name=name, payload=bytes(payload), pipeline=self.pipeline.name,
                      headers=msgspec.json.decode(headers), priority=prio, auto_ack=bool(ack)))
            for seq, id_, name, payload, headers, prio, ack in rows
        ]  # fmt: skip
        return jobs, due

    async def _feed(self) -> None:
        # refill in batches: once a quarter of prefetch is free, not after every settle (one
        # transaction per job otherwise); with prefetch 1 that is still "when the job is settled"
        low = self.prefetch - max(1, self.prefetch // 4)
        while True:
            if not self._running or self._unsettled > low:
                self._changed.clear()
                await self._changed.wait()
                continue
            self._changed.clear()
            taken, due = await self._db(functools.partial(self._take, limit=self.prefetch - self._unsettled))
            for seq, job in taken:
                self._unsettled += 1
                await self.queue.put(BoltDelivery(job, seq, self))
            if not taken:
                wait = None if due is None else max(0.0, due - time.time())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._changed.wait()

    async def stop(self) -> None:
        await self._stop_feeding()
        self._stopped = True
        if self._conn is not None:
            name = self.pipeline.name
            with contextlib.suppress(DriverError):
                await self._db(lambda c: _commit(c, "UPDATE rr_jobs SET reserved = 0 WHERE pipeline = ?", (name,)))
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._thread, conn.close)
        self._thread.shutdown(wait=False)

    async def stat(self) -> Stat:
        name = self.pipeline.name

        def counts(c: sqlite3.Connection) -> tuple[int, int]:
            row = c.execute(
                "SELECT COALESCE(SUM(not_before <= ?), 0), COALESCE(SUM(not_before > ?), 0)"
                " FROM rr_jobs WHERE pipeline = ? AND reserved = 0",
                (time.time(), time.time(), name),
            ).fetchone()
            return int(row[0]), int(row[1])

        active, delayed = await self._db(counts)
        return Stat(
            pipeline=name,
            driver="boltdb",
            queue=name,
            active=active,
            delayed=delayed,
            reserved=self._unsettled,
            ready=self._running,
            priority=self.pipeline.priority,
        )


def _commit(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> None:
    conn.execute(sql, args)  # autocommit mode: one statement, one transaction


def _octal(value: Any) -> int:
    """``permissions``: a YAML number as parsed (``0755`` is octal there); a string is read as octal."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value).strip(), 8)
    except ValueError:
        return 0o777
