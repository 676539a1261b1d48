"""Consolidation bookkeeping in PostgreSQL: contradictions and run logs.

The only code that touches ``contradictions`` and ``consolidation_logs``.
Every contradiction read or write names the user, like the warm tier: a
contradiction id alone never reaches another user's row.

A pair is stored order-normalised (smaller id first), so flagging (a, b) and
(b, a) hits the same unique constraint and stays one row.  Resolution ``a_wins``
/ ``b_wins`` therefore refer to the *stored* order, as ``list_contradictions``
shows it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.models import ConsolidationLog, Contradiction, MemoryRecord

from ..ports import Embedder, TextModel
from ..types import AccessDenied, CortexError, Memory, MemoryStatus, check_user_id
from ..warm import WarmStore
from .records import (
    JOB_CLEANUP,
    RESOLUTIONS,
    ConsolidationMetrics,
    ContradictionRecord,
    RunReport,
)

log = logging.getLogger(__name__)

#: Merged memories get an id derived from the contradiction: a retried merge
#: (crash between storing it and recording the resolution) inserts nothing new.
_MERGE_NS = uuid.UUID("6f1d3c1e-2b7a-4a8e-9c51-0c6a8f3b9e27")

MERGE_PROMPT = """These two statements about the same user conflict. Write one statement \
that keeps what is still true of both, resolving the conflict (prefer the newer one \
where they cannot both hold).

Older ({a_date}): {a}
Newer ({b_date}): {b}

Merged statement (one sentence, no preamble):"""


def _now() -> datetime:
    return datetime.now(UTC)


def _uuid(value: str | uuid.UUID) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError) as exc:
        raise CortexError(f"not a memory/contradiction id: {value!r}") from exc


def _record(row: Any) -> ContradictionRecord:
    return ContradictionRecord(
        id=str(row.id),
        user_id=row.user_id,
        memory_a=str(row.memory_a),
        memory_b=str(row.memory_b),
        reason=row.reason,
        resolution=row.resolution,
        note=row.note,
        detected_at=row.detected_at,
        resolved_at=row.resolved_at,
    )


def _report(row: Any) -> RunReport:
    return RunReport(
        run_id=str(row.run_id),
        user_id=row.user_id,
        job=row.job,
        started_at=row.started_at,
        completed_at=row.completed_at,
        duration_ms=row.duration_ms,
        memories_processed=row.memories_processed,
        patterns_found=row.patterns_found,
        identities_updated=row.identities_updated,
        contradictions_found=row.contradictions_found,
        memories_compacted=row.memories_compacted,
        error=row.error,
        details=dict(row.details or {}),
    )


class ConsolidationLedger:
    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], datetime] = _now) -> None:
        self.engine = engine
        self.clock = clock
        self._warm = WarmStore(engine)

    # -- contradictions -------------------------------------------------------

    async def flag_contradiction(
        self, user_id: str, a_id: str, b_id: str, reason: str
    ) -> tuple[str, bool]:
        """Record that two of the user's memories conflict; ``(id, newly_flagged)``.

        Idempotent on the unordered pair.  Both memories must be the user's."""
        check_user_id(user_id)
        a, b = sorted((_uuid(a_id), _uuid(b_id)), key=str)
        if a == b:
            raise CortexError("a memory cannot contradict itself")
        table = Contradiction.__table__
        async with self.engine.begin() as conn:
            owned = (
                await conn.execute(
                    select(func.count())
                    .select_from(MemoryRecord)
                    .where(MemoryRecord.id.in_([a, b]), MemoryRecord.user_id == user_id)
                )
            ).scalar_one()
            if owned != 2:
                raise AccessDenied("both memories must belong to the user")
            new_id = (
                await conn.execute(
                    insert(table)
                    .values(
                        id=uuid.uuid4(),
                        user_id=user_id,
                        memory_a=a,
                        memory_b=b,
                        reason=(reason or "")[:2000],
                        detected_at=self.clock(),
                    )
                    .on_conflict_do_nothing(constraint="uq_contradictions_pair")
                    .returning(table.c.id)
                )
            ).scalar_one_or_none()
            if new_id is not None:
                return str(new_id), True
            existing = (
                await conn.execute(
                    select(table.c.id).where(table.c.memory_a == a, table.c.memory_b == b)
                )
            ).scalar_one()
        return str(existing), False

    async def list_contradictions(
        self, user_id: str, resolution: str | None = "pending"
    ) -> list[ContradictionRecord]:
        """The user's contradictions, oldest first; ``resolution=None`` lists all."""
        stmt = select(Contradiction.__table__).where(
            Contradiction.user_id == check_user_id(user_id)
        )
        if resolution is not None:
            stmt = stmt.where(Contradiction.resolution == resolution)
        stmt = stmt.order_by(Contradiction.detected_at, Contradiction.id)
        async with self.engine.connect() as conn:
            return [_record(r) for r in (await conn.execute(stmt)).all()]

    async def known_pairs(self, user_id: str) -> set[frozenset[str]]:
        """Every pair ever flagged for the user, whatever its resolution: a pair the
        user already judged (``both_valid``) must not be raised again."""
        table = Contradiction.__table__
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(table.c.memory_a, table.c.memory_b).where(
                        table.c.user_id == check_user_id(user_id)
                    )
                )
            ).all()
        return {frozenset((str(r.memory_a), str(r.memory_b))) for r in rows}

    async def count_pending(self, user_id: str | None = None) -> int:
        stmt = (
            select(func.count())
            .select_from(Contradiction)
            .where(Contradiction.resolution == "pending")
        )
        if user_id is not None:
            stmt = stmt.where(Contradiction.user_id == check_user_id(user_id))
        async with self.engine.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    async def _pending(
        self, conn: AsyncConnection, user_id: str, contradiction_id: str, *, lock: bool
    ) -> ContradictionRecord:
        stmt = select(Contradiction.__table__).where(Contradiction.id == _uuid(contradiction_id))
        if lock:
            stmt = stmt.with_for_update()
        row = (await conn.execute(stmt)).first()
        # Unknown and foreign ids answer alike: an id says nothing about other users.
        if row is None or row.user_id != user_id:
            raise AccessDenied("no such contradiction for this user")
        if row.resolution != "pending":
            raise CortexError(f"contradiction already resolved ({row.resolution})")
        return _record(row)

    async def resolve(
        self,
        user_id: str,
        contradiction_id: str,
        resolution: str,
        note: str | None = None,
        *,
        model: TextModel | None = None,
        embedder: Embedder | None = None,
    ) -> ContradictionRecord:
        """Settle a pending contradiction.

        ``a_wins`` supersedes b, ``b_wins`` supersedes a, ``both_valid`` changes no
        memory, ``merge`` (needs ``model`` and ``embedder``) stores a merged memory
        that supersedes both.  Nothing is ever deleted."""
        check_user_id(user_id)
        if resolution not in RESOLUTIONS:
            raise CortexError(f"resolution must be one of {', '.join(RESOLUTIONS)}")
        if resolution == "merge":
            return await self._merge(user_id, contradiction_id, note, model, embedder)
        async with self.engine.begin() as conn:
            # Row lock: two people resolving at once cannot supersede both sides.
            record = await self._pending(conn, user_id, contradiction_id, lock=True)
            loser = {"a_wins": record.memory_b, "b_wins": record.memory_a}.get(resolution)
            if loser is not None:
                await conn.execute(
                    update(MemoryRecord)
                    .where(MemoryRecord.id == _uuid(loser), MemoryRecord.user_id == user_id)
                    .values(status=MemoryStatus.SUPERSEDED.value, updated_at=func.now())
                )
            await self._mark(conn, record.id, resolution, note)
        log.info("contradiction %s of %s resolved: %s", record.id, user_id, resolution)
        return await self._get(user_id, record.id)

    async def _merge(
        self,
        user_id: str,
        contradiction_id: str,
        note: str | None,
        model: TextModel | None,
        embedder: Embedder | None,
    ) -> ContradictionRecord:
        if model is None or embedder is None:
            raise CortexError("a merge needs a text model and an embedder")
        async with self.engine.connect() as conn:
            record = await self._pending(conn, user_id, contradiction_id, lock=False)
        mem_a = await self._warm.get(user_id, record.memory_a)
        mem_b = await self._warm.get(user_id, record.memory_b)
        if mem_a is None or mem_b is None:
            raise CortexError("a memory of this contradiction no longer exists")
        older, newer = sorted((mem_a, mem_b), key=lambda m: m.created_at)
        # The model call happens outside any transaction: it may take seconds.
        merged = (
            await model.complete_text(
                MERGE_PROMPT.format(
                    a=older.content,
                    b=newer.content,
                    a_date=f"{older.created_at:%Y-%m-%d}",
                    b_date=f"{newer.created_at:%Y-%m-%d}",
                ),
                max_tokens=200,
            )
        ).strip()
        if not merged:
            raise CortexError("the model returned an empty merge")
        memory = Memory(
            content=merged,
            user_id=user_id,
            memory_type=newer.memory_type,
            id=str(uuid.uuid5(_MERGE_NS, record.id)),
            created_at=self.clock(),
            project_id=newer.project_id,
            emotional_score=max(mem_a.emotional_score, mem_b.emotional_score),
            importance=max(mem_a.importance, mem_b.importance),
            confidence=max(mem_a.confidence, mem_b.confidence),
            supersedes=newer.id,
            source="contradiction_merge",
            metadata={
                "merged_from": [record.memory_a, record.memory_b],
                "contradiction": record.id,
            },
            tags=sorted(set(mem_a.tags) | set(mem_b.tags)),
        )
        vector = await embedder.embed(merged)
        # The new memory and both supersessions commit together (one transaction).
        await self._warm.add_many(
            [(memory, vector)],
            model=embedder.model_id,
            supersede=[(user_id, record.memory_a), (user_id, record.memory_b)],
        )
        async with self.engine.begin() as conn:
            await self._pending(conn, user_id, record.id, lock=True)
            await self._mark(conn, record.id, "merge", note, merged_into=memory.id)
        log.info("contradiction %s of %s merged into %s", record.id, user_id, memory.id)
        return await self._get(user_id, record.id)

    async def _mark(
        self,
        conn: AsyncConnection,
        contradiction_id: str,
        resolution: str,
        note: str | None,
        merged_into: str | None = None,
    ) -> None:
        if merged_into is not None:
            note = f"{note}\n(merged into {merged_into})" if note else f"merged into {merged_into}"
        await conn.execute(
            update(Contradiction)
            .where(Contradiction.id == _uuid(contradiction_id))
            .values(resolution=resolution, note=note, resolved_at=self.clock())
        )

    async def _get(self, user_id: str, contradiction_id: str) -> ContradictionRecord:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(Contradiction.__table__).where(
                        Contradiction.id == _uuid(contradiction_id),
                        Contradiction.user_id == user_id,
                    )
                )
            ).first()
        if row is None:
            raise AccessDenied("no such contradiction for this user")
        return _record(row)

    # -- run logs -------------------------------------------------------------

    async def log_run(self, report: RunReport) -> int:
        """Write one ``consolidation_logs`` row; returns its id."""
        table = ConsolidationLog.__table__
        values = {
            "run_id": _uuid(report.run_id),
            "user_id": report.user_id,
            "job": report.job,
            "started_at": report.started_at,
            "completed_at": report.completed_at,
            "duration_ms": report.duration_ms,
            "memories_processed": report.memories_processed,
            "patterns_found": report.patterns_found,
            "identities_updated": report.identities_updated,
            "contradictions_found": report.contradictions_found,
            "memories_compacted": report.memories_compacted,
            "error": report.error[:4000] if report.error else None,
            "details": report.details,
        }
        async with self.engine.begin() as conn:
            return int(
                (
                    await conn.execute(insert(table).values(**values).returning(table.c.id))
                ).scalar_one()
            )

    async def recent_runs(
        self, hours: float = 24, *, user_id: str | None = None, job: str | None = None
    ) -> list[RunReport]:
        """Runs started in the last ``hours``, oldest first."""
        table = ConsolidationLog.__table__
        stmt = select(table).where(table.c.started_at >= self.clock() - timedelta(hours=hours))
        if user_id is not None:
            stmt = stmt.where(table.c.user_id == check_user_id(user_id))
        if job is not None:
            stmt = stmt.where(table.c.job == job)
        stmt = stmt.order_by(table.c.started_at, table.c.id)
        async with self.engine.connect() as conn:
            return [_report(r) for r in (await conn.execute(stmt)).all()]

    async def last_compaction(self, user_id: str) -> datetime | None:
        """When compaction last ran through for the user (either job's log rows
        mark it with ``details.compaction``; a run that crashed does not count).

        Persisted, unlike the scheduler's interval timers, which restart with the
        process: a bot restarted daily would otherwise never compact."""
        table = ConsolidationLog.__table__
        stmt = select(func.max(table.c.started_at)).where(
            table.c.user_id == check_user_id(user_id),
            table.c.details["compaction"].as_boolean(),
        )
        async with self.engine.connect() as conn:
            return (await conn.execute(stmt)).scalar_one_or_none()

    async def metrics(self, hours: float = 24) -> ConsolidationMetrics:
        runs = await self.recent_runs(hours)
        per_user = [r for r in runs if r.user_id is not None and r.job != JOB_CLEANUP]
        return ConsolidationMetrics(
            users_processed=len({r.user_id for r in per_user}),
            runs=len(runs),
            patterns_extracted=sum(r.patterns_found for r in runs),
            identities_updated=sum(r.identities_updated for r in runs),
            contradictions_found=sum(r.contradictions_found for r in runs),
            memories_compacted=sum(r.memories_compacted for r in runs),
            errors=sum(1 for r in runs if r.error),
            duration_seconds=sum((r.duration_ms or 0) for r in runs) / 1000,
            pending_contradictions=await self.count_pending(),
        )

    # -- privacy --------------------------------------------------------------

    async def delete_user_data(self, user_id: str) -> int:
        """The user's contradictions and run logs; returns how many rows went."""
        check_user_id(user_id)
        async with self.engine.begin() as conn:
            c = await conn.execute(delete(Contradiction).where(Contradiction.user_id == user_id))
            r = await conn.execute(
                delete(ConsolidationLog).where(ConsolidationLog.user_id == user_id)
            )
        return c.rowcount + r.rowcount
