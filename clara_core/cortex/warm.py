"""The warm tier in PostgreSQL + pgvector: long-term memories and vector search.

Searches are always filtered (by user, status, type, project) and must still
return ``limit`` rows when that many match.  A plain HNSW scan returns the
nearest neighbours *then* filters, which measured 4 of 10 rows on average
for a filtered query; pgvector 0.8's ``hnsw.iterative_scan`` keeps scanning
until the filter is satisfied.  ``relaxed_order`` may return a few rows out
of order, so results are re-sorted by similarity here.

Writes are idempotent (``ON CONFLICT (id) DO NOTHING``): the durable outbox
replays a write whose commit it could not confirm, and the replay must not
duplicate it.  Every read and write names the user; a memory id alone never
reaches another user's row.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Select,
    String,
    bindparam,
    cast,
    delete,
    exists,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import session_factory
from storage.models import CortexMeta, MemoryRecord, ProjectMember

from .types import Memory, MemoryStatus, MemoryType, check_user_id

_COLUMNS = (
    MemoryRecord.id,
    MemoryRecord.user_id,
    MemoryRecord.project_id,
    MemoryRecord.memory_type,
    MemoryRecord.content,
    MemoryRecord.emotional_score,
    MemoryRecord.importance,
    MemoryRecord.confidence,
    MemoryRecord.access_count,
    MemoryRecord.last_accessed,
    MemoryRecord.status,
    MemoryRecord.supersedes,
    MemoryRecord.source,
    MemoryRecord.tags,
    MemoryRecord.meta,
    MemoryRecord.created_at,
)


def _uuid(value: str | uuid.UUID | None) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(value)


def _memory(row: Any, similarity: float | None = None) -> Memory:
    return Memory(
        id=str(row.id),
        content=row.content,
        user_id=row.user_id,
        memory_type=MemoryType(row.memory_type),
        emotional_score=row.emotional_score,
        created_at=row.created_at,
        metadata=dict(row.metadata or {}),
        project_id=str(row.project_id) if row.project_id else None,
        status=MemoryStatus(row.status),
        importance=row.importance,
        confidence=row.confidence,
        access_count=row.access_count,
        last_accessed=row.last_accessed,
        supersedes=str(row.supersedes) if row.supersedes else None,
        source=row.source,
        tags=list(row.tags or []),
        similarity=similarity,
    )


def _lexical_memory(row: Any) -> Memory:
    """A lexical hit: ``score`` is its IDF sum (the fusion gives equal sums one rank),
    ``similarity`` None (this leg knows words, not meaning)."""
    memory = _memory(row)
    memory.score = float(row.lexical)
    return memory


def _sql_filters(
    params: dict[str, Any], memory_types: Sequence[MemoryType] | None, project_id: str | None
) -> str:
    """The type and project filters of a text() search over ``memories m``."""
    extra = ""
    if memory_types:
        extra += " AND m.memory_type = ANY(:types)"
        params["types"] = [t.value for t in memory_types]
    if project_id is not None:
        extra += " AND m.project_id = :pid"
        params["pid"] = _uuid(project_id)
    return extra


def _row(memory: Memory, embedding: Sequence[float] | None, model: str | None) -> dict[str, Any]:
    return {
        "id": uuid.UUID(memory.id),
        "user_id": check_user_id(memory.user_id),
        "project_id": _uuid(memory.project_id),
        "memory_type": memory.memory_type.value,
        "content": memory.content,
        "embedding": list(embedding) if embedding is not None else None,
        "embedding_model": model if embedding is not None else None,
        "emotional_score": min(1.0, max(0.0, memory.emotional_score)),
        "importance": min(1.0, max(0.0, memory.importance)),
        "confidence": min(1.0, max(0.0, memory.confidence)),
        "status": memory.status.value,
        "supersedes": _uuid(memory.supersedes),
        "source": memory.source,
        "tags": list(memory.tags),
        "metadata": memory.metadata,
        "created_at": memory.created_at,
    }


#: How long the list of very common words (WarmStore.common_terms) is reused.
COMMON_TERMS_TTL_S = 600.0

#: hnsw.ef_search every connection starts with (storage.db.SESSION_OPTIONS).
DEFAULT_EF_SEARCH = 100


class WarmStore:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        ef_search: int = DEFAULT_EF_SEARCH,
        text_search_config: str = "english",
    ) -> None:
        self.engine = engine
        #: The regconfig questions are parsed with: the one content_tsv is built with.
        self.text_search_config = text_search_config
        self._db = session_factory(engine)
        self.ef_search = ef_search
        #: Searches that came back short from HNSW and were answered by an exact scan.
        self.exact_fallbacks = 0
        self._common: dict[float, tuple[float, list[str]]] = {}

    # -- writes ---------------------------------------------------------------

    async def add(
        self, memory: Memory, embedding: Sequence[float] | None, *, model: str | None
    ) -> bool:
        """Insert one memory; ``False`` when a memory with its id already exists."""
        return await self.add_many([(memory, embedding)], model=model) == 1

    async def add_many(
        self,
        items: Sequence[tuple[Memory, Sequence[float] | None]],
        *,
        model: str | None,
        supersede: Iterable[tuple[str, str]] = (),
    ) -> int:
        """Insert memories in one transaction; returns how many were new.

        ``supersede`` pairs (user_id, old_id) are marked superseded in the same
        transaction, so a correction never leaves both facts active."""
        if not items:
            return 0
        rows = [_row(m, e, model) for m, e in items]
        table = MemoryRecord.__table__
        # RETURNING counts what was new; SQLAlchemy batches it ("insertmanyvalues").
        stmt = insert(table).on_conflict_do_nothing(index_elements=["id"]).returning(table.c.id)
        async with self.engine.begin() as conn:
            inserted = len((await conn.execute(stmt, rows)).all())
            for user_id, old_id in supersede:
                await conn.execute(
                    update(table)
                    .where(table.c.id == _uuid(old_id), table.c.user_id == check_user_id(user_id))
                    .values(status=MemoryStatus.SUPERSEDED.value, updated_at=func.now())
                )
        return inserted

    async def _update_own(self, user_id: str, memory_ids: Sequence[str], **values: Any) -> int:
        """Update some of one user's memories; ids of other users' memories match nothing."""
        if not memory_ids:
            return 0
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(MemoryRecord)
                .where(
                    MemoryRecord.user_id == check_user_id(user_id),
                    MemoryRecord.id.in_([_uuid(i) for i in memory_ids]),
                )
                .values(**values)
            )
        return result.rowcount

    async def update_status(
        self, user_id: str, memory_ids: Sequence[str], status: MemoryStatus
    ) -> int:
        return await self._update_own(
            user_id, memory_ids, status=status.value, updated_at=func.now()
        )

    async def retype(self, user_id: str, memory_ids: Sequence[str], memory_type: MemoryType) -> int:
        """Promote memories (e.g. working -> episodic when a session ends)."""
        return await self._update_own(
            user_id, memory_ids, memory_type=memory_type.value, updated_at=func.now()
        )

    async def touch(self, user_id: str, memory_ids: Sequence[str], when: datetime) -> None:
        """Reinforcement: a memory that keeps being useful ranks higher later."""
        await self._update_own(
            user_id, memory_ids, access_count=MemoryRecord.access_count + 1, last_accessed=when
        )

    async def set_embeddings(
        self, items: Sequence[tuple[str, Sequence[float]]], *, model: str
    ) -> None:
        async with self.engine.begin() as conn:
            for memory_id, vec in items:
                await conn.execute(
                    update(MemoryRecord)
                    .where(MemoryRecord.id == _uuid(memory_id))
                    .values(embedding=list(vec), embedding_model=model)
                )

    # -- reads ----------------------------------------------------------------

    async def get(self, user_id: str, memory_id: str) -> Memory | None:
        try:
            mid = _uuid(memory_id)
        except ValueError:
            return None
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(*_COLUMNS).where(
                        MemoryRecord.id == mid, MemoryRecord.user_id == check_user_id(user_id)
                    )
                )
            ).first()
        return _memory(row) if row else None

    async def ids_with_prefix(self, user_id: str, prefix: str, *, limit: int = 2) -> list[str]:
        """The user's memory ids starting with ``prefix`` (short ids shown to users)."""
        stmt = (
            select(MemoryRecord.id)
            .where(
                MemoryRecord.user_id == check_user_id(user_id),
                cast(MemoryRecord.id, String).startswith(prefix, autoescape=True),
            )
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [str(i) for i in (await conn.execute(stmt)).scalars()]

    async def get_memories(
        self,
        user_id: str,
        *,
        memory_types: Sequence[MemoryType] | None = None,
        since: datetime | None = None,
        before: datetime | None = None,
        status: MemoryStatus | None = MemoryStatus.ACTIVE,
        project_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
        newest_first: bool = True,
    ) -> list[Memory]:
        stmt = select(*_COLUMNS).where(MemoryRecord.user_id == check_user_id(user_id))
        stmt = self._filters(stmt, memory_types, status, project_id)
        if since is not None:
            stmt = stmt.where(MemoryRecord.created_at >= since)
        if before is not None:
            stmt = stmt.where(MemoryRecord.created_at < before)
        order = MemoryRecord.created_at.desc() if newest_first else MemoryRecord.created_at
        stmt = stmt.order_by(order, MemoryRecord.id).limit(limit).offset(offset)
        async with self.engine.connect() as conn:
            return [_memory(r) for r in (await conn.execute(stmt)).all()]

    async def identity_facts(self, user_id: str) -> dict[str, Any]:
        """The user's active identity facts, newest per key: the hot tier's identity hash
        rebuilt from PostgreSQL (Redis down, or refilling it after an outage)."""
        stmt = (
            select(MemoryRecord.meta, MemoryRecord.created_at)
            .where(
                MemoryRecord.user_id == check_user_id(user_id),
                MemoryRecord.memory_type == MemoryType.IDENTITY.value,
                MemoryRecord.status == MemoryStatus.ACTIVE.value,
                MemoryRecord.meta.has_key("identity_key"),
            )
            .order_by(MemoryRecord.created_at)
        )
        facts: dict[str, Any] = {}
        async with self.engine.connect() as conn:
            for meta, _ in (await conn.execute(stmt)).all():
                facts[meta["identity_key"]] = meta.get("value")
        return facts

    async def identity_memory_ids(self, user_id: str, key: str) -> list[str]:
        stmt = select(MemoryRecord.id).where(
            MemoryRecord.user_id == check_user_id(user_id),
            MemoryRecord.memory_type == MemoryType.IDENTITY.value,
            MemoryRecord.status == MemoryStatus.ACTIVE.value,
            MemoryRecord.meta["identity_key"].astext == key,
        )
        async with self.engine.connect() as conn:
            return [str(i) for i in (await conn.execute(stmt)).scalars()]

    async def get_embeddings(
        self, user_id: str, memory_ids: Sequence[str]
    ) -> dict[str, list[float]]:
        if not memory_ids:
            return {}
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(MemoryRecord.id, MemoryRecord.embedding).where(
                        MemoryRecord.user_id == check_user_id(user_id),
                        MemoryRecord.id.in_([_uuid(i) for i in memory_ids]),
                        MemoryRecord.embedding.is_not(None),
                    )
                )
            ).all()
        return {str(r.id): [float(x) for x in r.embedding] for r in rows}

    @staticmethod
    def _filters(
        stmt: Select[Any],
        memory_types: Sequence[MemoryType] | None,
        status: MemoryStatus | None,
        project_id: str | None,
    ) -> Select[Any]:
        if memory_types:
            stmt = stmt.where(MemoryRecord.memory_type.in_([t.value for t in memory_types]))
        if status is not None:
            stmt = stmt.where(MemoryRecord.status == status.value)
        if project_id is not None:
            stmt = stmt.where(MemoryRecord.project_id == _uuid(project_id))
        return stmt

    async def search(
        self,
        user_id: str,
        query: Sequence[float],
        *,
        limit: int = 20,
        memory_types: Sequence[MemoryType] | None = None,
        project_id: str | None = None,
    ) -> list[Memory]:
        """The user's own active memories nearest to ``query``."""
        stmt, distance = self._search_stmt(query, limit, memory_types, project_id)
        stmt = stmt.where(MemoryRecord.user_id == check_user_id(user_id))
        found = await self._run_search(stmt, distance, limit)
        if len(found) < limit:
            # Fewer rows than asked: either that is all the user has (then the exact
            # scan is as cheap as a count), or the graph walk ran dry, which
            # bench/cortex.py saw in 6 of 1000 searches over near-duplicate vectors.
            found = await self._run_search(stmt, distance, limit, exact=True)
        return found

    async def search_window(
        self,
        user_id: str,
        query: Sequence[float],
        *,
        since: datetime | None,
        before: datetime | None,
        limit: int = 20,
        memory_types: Sequence[MemoryType] | None = None,
        project_id: str | None = None,
        max_rows: int = 1000,
    ) -> list[Memory]:
        """The user's memories created in [``since``, ``before``), nearest to ``query``:
        the time leg of a dated question.  An exact ranking of the window's newest
        ``max_rows`` (the (user_id, created_at) index reads them), so its cost is
        bounded however many memories the user has."""
        inner = select(*_COLUMNS, MemoryRecord.embedding).where(
            MemoryRecord.user_id == check_user_id(user_id),
            MemoryRecord.status == MemoryStatus.ACTIVE.value,
            MemoryRecord.embedding.is_not(None),
        )
        if memory_types:
            inner = inner.where(MemoryRecord.memory_type.in_([t.value for t in memory_types]))
        if project_id is not None:
            inner = inner.where(MemoryRecord.project_id == _uuid(project_id))
        if since is not None:
            inner = inner.where(MemoryRecord.created_at >= since)
        if before is not None:
            inner = inner.where(MemoryRecord.created_at < before)
        # The subquery's LIMIT keeps HNSW out of it: the index can only order the
        # whole table, and would walk the graph for a few rows of the window.
        newest = inner.order_by(MemoryRecord.created_at.desc()).limit(max_rows).subquery()
        distance = newest.c.embedding.cosine_distance(list(query)).label("distance")
        cols = [c for c in newest.c if c.name != "embedding"]
        stmt = select(*cols, distance).order_by(distance).limit(limit)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_memory(r, 1.0 - float(r.distance)) for r in rows]

    async def common_terms(self, share: float) -> list[str]:
        """Lexemes in more than ``share`` of all memories, from PostgreSQL's own
        statistics on content_tsv (ANALYZE keeps them; none before the first).
        Such a word says almost nothing about which memory answers (its IDF is near
        0), yet its posting list is what a keyword lookup spends its time on: the
        lexical leg leaves them out.  Cached for ``COMMON_TERMS_TTL_S``."""
        now = time.monotonic()
        cached = self._common.get(share)
        if cached is not None and now - cached[0] < COMMON_TERMS_TTL_S:
            return cached[1]
        sql = text(
            "SELECT e.elem FROM pg_stats s, unnest("
            "  CAST(CAST(s.most_common_elems AS text) AS text[]), s.most_common_elem_freqs"
            ") AS e(elem, freq) "
            "WHERE s.schemaname = current_schema() AND s.tablename = 'memories' "
            "AND s.attname = 'content_tsv' AND e.freq > :share"
        )
        async with self.engine.connect() as conn:
            terms = [str(t) for t in (await conn.execute(sql, {"share": share})).scalars()]
        self._common[share] = (now, terms)
        return terms

    async def lexical_search(
        self,
        user_id: str,
        query: str,
        *,
        limit: int = 20,
        memory_types: Sequence[MemoryType] | None = None,
        project_id: str | None = None,
        max_matches: int = 200,
        common_share: float = 0.05,
        min_coverage: float = 0.0,
    ) -> list[Memory]:
        """The user's own active memories sharing words with ``query``, best first.

        Any content word of the query may match (OR): a question rarely repeats every
        word of the turn that answers it.  Each matched word counts by its rarity
        among the memories that share a word with the query (BM25's IDF), the idea
        that PostgreSQL's ts_rank lacks: a name said once outranks "made" said a hundred
        times.  One index scan: at most ``max_matches`` matching rows are read, and
        both the df counts and the ranking work on those, so a user with 100k
        memories costs what one with 500 does (df is then approximate).
        ``similarity`` is left None: this leg knows words, not meaning."""
        if not query.strip():
            return []
        params: dict[str, Any] = {"u": check_user_id(user_id)}
        extra = _sql_filters(params, memory_types, project_id)
        ctes = await self._lexical_ctes(
            params, query, extra, limit, max_matches, common_share, min_coverage
        )
        cols = ", ".join(f"m.{c.expression.name}" for c in _COLUMNS)
        sql = text(
            f"""
            WITH {ctes}
            SELECT {cols}, r.lexical
            FROM lex_ranked r JOIN memories m ON m.id = r.id
            ORDER BY r.lexical DESC, m.created_at DESC
            """
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sql, params)).all()
        return [_lexical_memory(r) for r in rows]

    async def _lexical_ctes(
        self,
        params: dict[str, Any],
        query: str,
        extra: str,
        limit: int,
        max_matches: int,
        common_share: float,
        min_coverage: float = 0.0,
        owner: str = "m.user_id = :u",
    ) -> str:
        """The lexical leg as CTEs ending in ``lex_ranked(id, lexical)``, its
        parameters added to ``params`` (shared by lexical_search and hybrid_search,
        so both rank exactly alike)."""
        # Coverage: the share of the question's IDF mass a memory matches.  A single
        # minor word ("work") matching a few memories says little about which one
        # answers (CORTEX_LEXICAL_MIN_COVERAGE, off by default: the filter is left out
        # of the statement then, so the default costs nothing).
        coverage = ""
        if min_coverage > 0:
            coverage = (
                "WHERE (SELECT sum(w.idf) FROM weighted w WHERE x.content_tsv @@ w.tq)"
                " >= :min_cov * (SELECT sum(w.idf) FROM weighted w)"
            )
            params["min_cov"] = min_coverage
        params.update(
            q=query,
            tscfg=self.text_search_config,
            cap=max_matches,
            k_lex=limit,
            skip=await self.common_terms(common_share) if common_share < 1 else [],
        )
        # The query's lexemes come from the same parser that made content_tsv
        # (CORTEX_TEXT_SEARCH_CONFIG, checked against the column at start) (stop words dropped, stems matched), then each is re-quoted
        # under 'simple' so it matches as is; 32 at most, so a pasted essay does
        # not become a 500-way OR.
        return f"""
            terms AS MATERIALIZED (
                SELECT t, to_tsquery('simple', quote_literal(t)) AS tq
                FROM unnest(tsvector_to_array(to_tsvector(CAST(:tscfg AS regconfig), :q))) AS t
                WHERE t <> ALL(CAST(:skip AS text[]))
                LIMIT 32
            ), matched AS MATERIALIZED (
                SELECT m.id, m.content_tsv FROM memories m
                WHERE {owner} AND m.status = 'active' {extra}
                  AND m.content_tsv @@ (
                    SELECT to_tsquery('simple', string_agg(quote_literal(t), ' | ')) FROM terms
                  )
                LIMIT :cap
            ), weighted AS MATERIALIZED (
                -- Every memory holding a query word matches the OR query, so (up to
                -- the cap) counting within the matches gives the word's df.  BM25's
                -- idf, with N = the memories sharing any word with the query (the
                -- user's total would cost a count over all their rows).  MATERIALIZED:
                -- inlined, the counts were redone for every matched row (6 s at 100k).
                SELECT w.tq, ln(1.0 + ((SELECT count(*) FROM matched) - w.n + 0.5) / (w.n + 0.5))
                    AS idf
                FROM (
                    SELECT tq, (SELECT count(*) FROM matched x WHERE x.content_tsv @@ terms.tq)
                        AS n
                    FROM terms
                ) AS w
            ), lex_ranked AS MATERIALIZED (
                SELECT x.id, (SELECT sum(w.idf) FROM weighted w WHERE x.content_tsv @@ w.tq)
                    AS lexical
                FROM matched x
                {coverage}
                ORDER BY lexical DESC
                LIMIT :k_lex
            )"""

    async def hybrid_search(
        self,
        user_id: str,
        query_vec: Sequence[float],
        query_text: str,
        *,
        limit: int = 20,
        lexical: bool = True,
        window: tuple[datetime | None, datetime | None] | None = None,
        memory_types: Sequence[MemoryType] | None = None,
        project_id: str | None = None,
        max_matches: int = 200,
        common_share: float = 0.05,
        window_max_rows: int = 1000,
        min_coverage: float = 0.0,
        shared: bool = False,
    ) -> tuple[list[Memory], list[Memory], list[Memory]]:
        """The three legs of a ranked search in ONE statement (one round trip, one
        pooled connection): what ``search``, ``lexical_search`` and
        ``search_window`` return, in that order (an empty list for a leg not asked).

        Run as three concurrent queries they cost three connection check-outs and
        three driver round trips, which at 100k memories was most of get_context's
        time (bench/cortex.py: server time ~2 ms, the Python call ~8 ms).  Each leg
        is the same SQL as its own method, so the rankings are identical."""
        params: dict[str, Any] = {"u": check_user_id(user_id), "k": limit}
        extra = _sql_filters(params, memory_types, project_id)
        owner = "m.user_id = :u"
        if shared:
            if project_id is None:
                raise ValueError("a shared (project) search names its project")
            # Any author's memories of the project, for a member only: the check is in
            # the statement itself (the same rule as _is_member), so no caller can skip it.
            owner = (
                "EXISTS (SELECT 1 FROM project_members pm "
                "WHERE pm.project_id = :pid AND pm.user_id = :u)"
            )
        cols = ", ".join(f"m.{c.expression.name}" for c in _COLUMNS)
        # The vector leg: ORDER BY distance LIMIT over the filtered table, which the
        # planner answers from the HNSW index (iterative scan) for a big user and by
        # sorting the user's rows for a small one — as the ORM statement of search().
        legs = [
            """SELECT 0 AS leg, row_number() OVER (ORDER BY v.distance) AS ord, v.*,
                   CAST(NULL AS float8) AS lexical
                FROM vec v"""
        ]
        ctes = [
            f"""vec AS MATERIALIZED (
                SELECT {cols}, m.embedding <=> :qv AS distance FROM memories m
                WHERE {owner} AND m.status = 'active' AND m.embedding IS NOT NULL {extra}
                ORDER BY distance LIMIT :k
            )"""
        ]
        if lexical and query_text.strip():
            lex = await self._lexical_ctes(
                params, query_text, extra, limit, max_matches, common_share, min_coverage, owner
            )
            ctes.append(lex)
            legs.append(
                f"""SELECT 1, row_number() OVER (ORDER BY r.lexical DESC, m.created_at DESC),
                       {cols}, CAST(NULL AS float8), r.lexical
                    FROM lex_ranked r JOIN memories m ON m.id = r.id"""
            )
        if window is not None:
            since, before = window
            where = ""
            if since is not None:
                where += " AND m.created_at >= :since"
                params["since"] = since
            if before is not None:
                where += " AND m.created_at < :before"
                params["before"] = before
            params["wmax"] = window_max_rows
            # The inner LIMIT keeps HNSW out of it (see search_window).
            ctes.append(
                f"""win AS MATERIALIZED (
                    SELECT n.*, n.embedding <=> :qv AS distance FROM (
                        SELECT {cols}, m.embedding FROM memories m
                        WHERE {owner} AND m.status = 'active'
                          AND m.embedding IS NOT NULL {extra}{where}
                        ORDER BY m.created_at DESC LIMIT :wmax
                    ) AS n
                    ORDER BY distance LIMIT :k
                )"""
            )
            wcols = ", ".join(f"w.{c.expression.name}" for c in _COLUMNS)
            legs.append(
                f"""SELECT 2, row_number() OVER (ORDER BY w.distance), {wcols},
                       w.distance, CAST(NULL AS float8)
                    FROM win w"""
            )
        sql = text(
            "WITH " + ", ".join(ctes) + " " + " UNION ALL ".join(legs) + " ORDER BY 1, 2"
        ).bindparams(bindparam("qv", type_=MemoryRecord.embedding.type))
        params["qv"] = list(query_vec)
        ef = int(max(self.ef_search, limit * 2))
        async with self.engine.connect() as conn:
            if ef > DEFAULT_EF_SEARCH:
                # As _run_search: a deeper graph walk for a larger limit, set for
                # this transaction only (the pooled connection keeps its default).
                await conn.execute(
                    text("SELECT set_config('hnsw.ef_search', :ef, true)"), {"ef": str(ef)}
                )
            rows = (await conn.execute(sql, params)).all()
        out: tuple[list[Memory], list[Memory], list[Memory]] = ([], [], [])
        for r in rows:
            if r.leg == 1:
                out[1].append(_lexical_memory(r))
            else:
                out[r.leg].append(_memory(r, 1.0 - float(r.distance)))
        vec_hits = out[0]
        if len(vec_hits) < limit:
            # As search(): all the user has, or an HNSW walk that ran dry.
            stmt, distance = self._search_stmt(query_vec, limit, memory_types, project_id)
            if shared:
                stmt = stmt.where(self._is_member(str(project_id), user_id))
            else:
                stmt = stmt.where(MemoryRecord.user_id == params["u"])
            vec_hits = await self._run_search(stmt, distance, limit, exact=True)
        else:
            # relaxed_order may return a few rows out of order (as _run_search).
            vec_hits.sort(key=lambda m: m.similarity or 0.0, reverse=True)
        return vec_hits, out[1], out[2]

    async def project_recent(
        self, project_id: str, *, member_id: str, limit: int = 10
    ) -> list[Memory]:
        stmt = (
            select(*_COLUMNS)
            .where(
                MemoryRecord.project_id == _uuid(project_id),
                MemoryRecord.status == MemoryStatus.ACTIVE.value,
                self._is_member(project_id, member_id),
            )
            .order_by(MemoryRecord.created_at.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [_memory(r) for r in (await conn.execute(stmt)).all()]

    @staticmethod
    def _is_member(project_id: str, member_id: str) -> Any:
        return exists().where(
            ProjectMember.project_id == _uuid(project_id),
            ProjectMember.user_id == check_user_id(member_id),
        )

    def _search_stmt(
        self,
        query: Sequence[float],
        limit: int,
        memory_types: Sequence[MemoryType] | None,
        project_id: str | None,
    ) -> tuple[Select[Any], Any]:
        distance = MemoryRecord.embedding.cosine_distance(list(query)).label("distance")
        stmt = (
            select(*_COLUMNS, distance)
            .where(MemoryRecord.embedding.is_not(None))
            .order_by(distance)
            .limit(limit)
        )
        return self._filters(stmt, memory_types, MemoryStatus.ACTIVE, project_id), distance

    async def _run_search(
        self, stmt: Select[Any], distance: Any, limit: int, *, exact: bool = False
    ) -> list[Memory]:
        # The connection already carries hnsw.iterative_scan, ef_search=100 and
        # plan_cache_mode=force_custom_plan (storage.db.SESSION_OPTIONS): no extra
        # round trips on the hot path.  Larger limits and the exact fallback need
        # transaction-local settings, which can't leak to other pooled queries.
        ef = int(max(self.ef_search, limit * 2))
        if not exact and ef <= DEFAULT_EF_SEARCH:
            async with self.engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        else:
            async with self.engine.begin() as conn:
                await conn.execute(
                    text(
                        "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
                        "set_config('hnsw.ef_search', :ef, true), "
                        "set_config('plan_cache_mode', 'force_custom_plan', true), "
                        "set_config('enable_indexscan', :indexscan, true)"
                    ),
                    {"ef": str(ef), "indexscan": "off" if exact else "on"},
                )
                if exact:  # no HNSW: the filtered rows, sorted by true distance
                    self.exact_fallbacks += 1
                rows = (await conn.execute(stmt)).all()
        found = [_memory(r, 1.0 - float(r.distance)) for r in rows]
        return sorted(found, key=lambda m: m.similarity or 0.0, reverse=True)

    # -- bookkeeping ----------------------------------------------------------

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def count(
        self,
        user_id: str | None = None,
        *,
        status: MemoryStatus | None = None,
        memory_types: Sequence[MemoryType] | None = None,
    ) -> int:
        stmt = select(func.count()).select_from(MemoryRecord)
        if user_id is not None:
            stmt = stmt.where(MemoryRecord.user_id == check_user_id(user_id))
        if status is not None:
            stmt = stmt.where(MemoryRecord.status == status.value)
        if memory_types:
            stmt = stmt.where(MemoryRecord.memory_type.in_([t.value for t in memory_types]))
        async with self.engine.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    async def stats(self) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            by = (
                await conn.execute(
                    select(MemoryRecord.memory_type, MemoryRecord.status, func.count()).group_by(
                        MemoryRecord.memory_type, MemoryRecord.status
                    )
                )
            ).all()
            users = (
                await conn.execute(select(func.count(func.distinct(MemoryRecord.user_id))))
            ).scalar_one()
            models = (
                await conn.execute(
                    select(MemoryRecord.embedding_model, func.count()).group_by(
                        MemoryRecord.embedding_model
                    )
                )
            ).all()
        return {
            "users": int(users),
            "by_type_status": {f"{t}/{s}": int(n) for t, s, n in by},
            "by_embedding_model": {str(m): int(n) for m, n in models},
        }

    async def user_ids(self, *, active_since: datetime | None = None) -> list[str]:
        stmt = select(MemoryRecord.user_id).distinct()
        if active_since is not None:
            stmt = stmt.where(MemoryRecord.created_at >= active_since)
        async with self.engine.connect() as conn:
            return sorted(str(u) for u in (await conn.execute(stmt)).scalars())

    async def get_meta(self, key: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            return (
                await conn.execute(select(CortexMeta.value).where(CortexMeta.key == key))
            ).scalar_one_or_none()

    async def set_meta(self, key: str, value: dict[str, Any]) -> None:
        stmt = insert(CortexMeta).values(key=key, value=value)
        stmt = stmt.on_conflict_do_update(
            index_elements=["key"], set_={"value": value, "updated_at": func.now()}
        )
        async with self.engine.begin() as conn:
            await conn.execute(stmt)

    async def embedding_column_dims(self) -> int:
        async with self.engine.connect() as conn:
            return int(
                (
                    await conn.execute(
                        text(
                            "SELECT atttypmod FROM pg_attribute "
                            "WHERE attrelid = 'memories'::regclass AND attname = 'embedding'"
                        )
                    )
                ).scalar_one()
            )

    # -- privacy --------------------------------------------------------------

    async def delete(self, user_id: str, memory_id: str) -> bool:
        try:
            mid = _uuid(memory_id)
        except ValueError:
            return False
        async with self.engine.begin() as conn:
            # memories.supersedes is ON DELETE SET NULL: no dangling reference.
            result = await conn.execute(
                delete(MemoryRecord).where(
                    MemoryRecord.id == mid, MemoryRecord.user_id == check_user_id(user_id)
                )
            )
        return result.rowcount > 0

    async def delete_user_data(self, user_id: str) -> int:
        async with self._db() as db:
            result = await db.execute(
                delete(MemoryRecord).where(MemoryRecord.user_id == check_user_id(user_id))
            )
            await db.commit()
            return result.rowcount
