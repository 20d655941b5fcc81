"""Key rotation: move every record to the current master-key version, in batches, while serving.

A job runs as a background task of the replica that accepted it. It holds a
session-level advisory lock on a dedicated connection for its whole run, so
only one job runs across replicas, and a crashed replica's lock disappears
with its connection (its job row is then marked ``abandoned`` by the next
start). Each batch is one short transaction that locks just its rows
(``FOR UPDATE``), so reads — metadata and reveal — continue throughout: a
record is readable under its old version until its batch commits and under
the new one afterwards, since the key ring holds both.

Records that fail authentication are skipped and reported (``failed_key_ids``),
never re-sealed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg

from sandbox.services.kit.errors import ServiceError
from sandbox.services.secrets import crypto
from sandbox.services.secrets.store import ALL_ACCOUNTS, CHANNEL, Actor, audit

log = logging.getLogger("sandbox.services.secrets.rotation")

ROTATION_LOCK_KEY = 0x61657468_726F7461  # "aethrota"
MAX_REPORTED_FAILURES = 100

_JOB_COLUMNS = (
    "job_id, status, target_version, rotate_data_keys, batch_size, pause_ms, started_by, started_at, finished_at,"
    " records_rotated, records_failed, batches, failed_key_ids, error"
)


def job_public(row: asyncpg.Record) -> dict[str, Any]:
    """A job row as the API shows it."""
    return dict(row)


async def get_job(pool: asyncpg.Pool, job_id: uuid.UUID) -> dict[str, Any]:
    """One job; 404 when unknown."""
    row = await pool.fetchrow(f"SELECT {_JOB_COLUMNS} FROM rotation_jobs WHERE job_id = $1", job_id)
    if row is None:
        raise ServiceError(404, "rotation_not_found", f"no rotation job {job_id}")
    return job_public(row)


async def list_jobs(pool: asyncpg.Pool, limit: int) -> list[dict[str, Any]]:
    """The most recent jobs, newest first."""
    rows = await pool.fetch(f"SELECT {_JOB_COLUMNS} FROM rotation_jobs ORDER BY started_at DESC LIMIT $1", limit)
    return [job_public(r) for r in rows]


class Rotator:
    """Starts and runs rotation jobs for one replica."""

    def __init__(self, pool: asyncpg.Pool, ring: crypto.KeyRing, *, on_rotated: Callable[[int], None] | None = None,
                 on_failed: Callable[[int], None] | None = None) -> None:
        """``on_rotated``/``on_failed`` receive per-batch counts (metrics)."""
        self.pool = pool
        self.ring = ring
        self.on_rotated = on_rotated or (lambda n: None)
        self.on_failed = on_failed or (lambda n: None)
        self.task: asyncio.Task[None] | None = None

    async def start(self, actor: Actor, batch_size: int, rotate_data_keys: bool, pause_ms: int = 0) -> dict[str, Any]:
        """Take the cluster-wide rotation lock and start a job; 409 when one is already running."""
        conn: asyncpg.Connection = await self.pool.acquire()
        try:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", ROTATION_LOCK_KEY):
                raise ServiceError(409, "rotation_in_progress", "a key rotation is already running; try again when it ends")
            try:
                job_id = uuid.uuid4()
                async with conn.transaction():
                    # Any job still 'running' lost its runner (its lock would have stopped us).
                    await conn.execute(
                        "UPDATE rotation_jobs SET status = 'abandoned', finished_at = now(),"
                        " error = 'the replica running it stopped' WHERE status = 'running'"
                    )
                    row = await conn.fetchrow(
                        "INSERT INTO rotation_jobs (job_id, status, target_version, rotate_data_keys, batch_size, pause_ms,"
                        f" started_by) VALUES ($1, 'running', $2, $3, $4, $5, $6) RETURNING {_JOB_COLUMNS}",
                        job_id, self.ring.current_version, rotate_data_keys, batch_size, pause_ms, actor.subject,
                    )
                    await audit(conn, actor, "rotation.start", "success", reason=f"job {job_id} to version"
                                f" {self.ring.current_version}" + (" with new data keys" if rotate_data_keys else ""))
            except BaseException:
                await conn.execute("SELECT pg_advisory_unlock($1)", ROTATION_LOCK_KEY)
                raise
        except BaseException:
            await self.pool.release(conn)
            raise
        self.task = asyncio.create_task(self._run(conn, job_id, actor, batch_size, rotate_data_keys, pause_ms),
                                        name=f"rotation-{job_id}")
        return job_public(row)

    async def _run(self, lock_conn: asyncpg.Connection, job_id: uuid.UUID, actor: Actor, batch_size: int,
                   rotate_data_keys: bool, pause_ms: int) -> None:
        status, error = "failed", None
        rotated = failed = 0
        failed_ids: list[uuid.UUID] = []
        try:
            cursor = uuid.UUID(int=0)
            while True:
                done, bad, last = await self._batch(job_id, cursor, batch_size, rotate_data_keys)
                if last is None:
                    break
                cursor = last
                rotated += done
                failed += len(bad)
                failed_ids.extend(bad[: max(0, MAX_REPORTED_FAILURES - len(failed_ids))])
                self.on_rotated(done)
                self.on_failed(len(bad))
                await self.pool.execute(
                    "UPDATE rotation_jobs SET records_rotated = $2, records_failed = $3, batches = batches + 1,"
                    " failed_key_ids = $4 WHERE job_id = $1",
                    job_id, rotated, failed, failed_ids,
                )
                await asyncio.sleep(pause_ms / 1000)  # lets requests in between batches even at 0
            status = "completed_with_errors" if failed else "completed"
        except asyncio.CancelledError:
            status, error = "abandoned", "the replica shut down during the rotation"
            raise
        except Exception as exc:  # reported on the job row; the job never takes the service down
            error = f"{type(exc).__name__}: {exc}"[:300]
            log.error("key rotation failed", extra={"job_id": str(job_id), "error": error})
        finally:
            try:
                await asyncio.shield(self._finish(lock_conn, job_id, actor, status, error, rotated, failed))
            except Exception as exc:  # database gone: the next job start marks this one abandoned
                log.error("could not record the end of a rotation", extra={"job_id": str(job_id), "error": type(exc).__name__})

    async def _finish(self, lock_conn: asyncpg.Connection, job_id: uuid.UUID, actor: Actor, status: str,
                      error: str | None, rotated: int, failed: int) -> None:
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "UPDATE rotation_jobs SET status = $2, finished_at = now(), error = $3 WHERE job_id = $1",
                    job_id, status, error,
                )
                outcome = "success" if status == "completed" else "failed"
                await audit(conn, actor, "rotation.finish", outcome,
                            reason=f"job {job_id}: {status}, {rotated} rotated, {failed} failed")
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, ALL_ACCOUNTS)
            log.info("key rotation finished", extra={"job_id": str(job_id), "status": status,
                                                      "records_rotated": rotated, "records_failed": failed})
        finally:
            try:
                await lock_conn.execute("SELECT pg_advisory_unlock($1)", ROTATION_LOCK_KEY)
            finally:
                await self.pool.release(lock_conn)

    async def _batch(self, job_id: uuid.UUID, cursor: uuid.UUID, batch_size: int,
                     rotate_data_keys: bool) -> tuple[int, list[uuid.UUID], uuid.UUID | None]:
        """Re-seal up to ``batch_size`` records after ``cursor``; returns (rotated, failed ids, last id seen)."""
        target = self.ring.current_version
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT key_id, account, key_version, wrapped_key, ciphertext FROM kraken_keys"
                " WHERE key_id > $1 AND ($2 OR key_version <> $3) ORDER BY key_id LIMIT $4 FOR UPDATE",
                cursor, rotate_data_keys, target, batch_size,
            )
            if not rows:
                return 0, [], None
            updates, bad = [], []
            for r in rows:
                sealed = crypto.Sealed(r["key_version"], r["wrapped_key"], r["ciphertext"])
                try:
                    new = crypto.rewrap(self.ring, sealed, r["key_id"], r["account"], new_data_key=rotate_data_keys)
                except (crypto.IntegrityError, crypto.UnknownKeyVersion) as exc:
                    log.error("rotation skipped a record that cannot be opened",
                              extra={"job_id": str(job_id), "key_id": str(r["key_id"]), "error": type(exc).__name__})
                    bad.append(r["key_id"])
                    continue
                updates.append((r["key_id"], new.key_version, new.wrapped_key, new.ciphertext))
            if updates:
                await conn.executemany(
                    "UPDATE kraken_keys SET key_version = $2, wrapped_key = $3, ciphertext = $4 WHERE key_id = $1",
                    updates,
                )
            return len(updates), bad, rows[-1]["key_id"]

    async def stop(self) -> None:
        """Cancel a running job (it is recorded as abandoned; a later job picks up where it left)."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
