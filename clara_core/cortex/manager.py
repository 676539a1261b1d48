"""``MemoryManager``: Cortex's public API (the spec's section 4, kept stable).

Write-through: a memory goes to the hot tier (working memory, TTL from its
emotional score) and to the warm tier (with its embedding) — or, when
PostgreSQL is down, to the durable outbox that is flushed in order when it
returns.  Reads degrade instead of failing: Redis down → identity and recent
memories come from PostgreSQL; PostgreSQL down → identity, session and working
memory come from Redis and the context says retrieval is unavailable.

Every call names a user, and every query filters by that user at the data
layer: an id or a query alone never reaches another user's memories.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import text_search
from .consolidation.ledger import ConsolidationLedger
from .health import REDIS_DOWN, TierHealth, postgres_down
from .hot import HotStore
from .outbox import Outbox
from .ports import Embedder
from .projects import ProjectStore
from .rejection import quick_reject
from .retrieval import (
    Leg,
    RetrievalConfig,
    adjust,
    diversify,
    embed_for_storage,
    fuse,
    one_per_episode,
    tied_ranks,
)
from .retrieval_time import time_window
from .scoring import RetrievalWeights, retrieval_score, working_ttl
from .types import (
    AccessDenied,
    CortexError,
    EmbedderMismatch,
    InvalidInput,
    Memory,
    MemoryContext,
    MemoryStatus,
    MemoryType,
    ProjectContext,
    SearchResult,
    StoreResult,
    as_utc,
    check_user_id,
)
from .warm import WarmStore
from .writes import WarmWriter

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from sqlalchemy.ext.asyncio import AsyncEngine

    from .emotion import EmotionScorer

log = logging.getLogger(__name__)

T = TypeVar("T")

EMBEDDER_META_KEY = "embedder"
#: What a user is shown as their memories (working memory is short-lived scratch,
#: session state is not a memory).
LISTED_TYPES = (MemoryType.SEMANTIC, MemoryType.EPISODIC, MemoryType.IDENTITY, MemoryType.PROJECT)
#: What the hot tier's working memory holds (identity has its own hash).
WORKING_TYPES = tuple(t for t in MemoryType if t is not MemoryType.IDENTITY)
CANDIDATE_FACTOR = 3  # vector candidates fetched per retrieved memory, then re-ranked
PROBE_INTERVAL_S = 1.0


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class NewMemory:
    """One item for ``store_many`` (imports, extraction)."""

    content: str
    memory_type: MemoryType = MemoryType.EPISODIC
    emotional_score: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    project_id: str | None = None
    source: str = "conversation"
    importance: float = 0.5
    confidence: float = 1.0
    supersedes: str | None = None
    tags: list[str] = field(default_factory=list)


# -- input validation -----------------------------------------------------------
# Everything a write needs is checked before the first byte is written anywhere: an
# error raised after the warm tier committed would make the caller retry a write that
# already happened (and store it twice).


def _count(parameter: str, value: object) -> int:
    """A row count (limit, offset): a non-negative int.  0 is allowed and means "none"."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(parameter, f"expected a whole number, got {value!r}")
    if value < 0:
        raise InvalidInput(parameter, f"must be 0 or more, got {value}")
    return value


def _number(parameter: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput(parameter, f"expected a finite number, got {value!r}")
    return float(value)


def _memory_id(parameter: str, value: object) -> str | None:
    """Memory and project ids are UUIDs; anything else would fail only inside SQL."""
    if value is None:
        return None
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise InvalidInput(parameter, f"expected a UUID, got {value!r}") from None


def _memory_type(parameter: str, value: object) -> MemoryType:
    try:
        return MemoryType(value)
    except ValueError:
        choices = ", ".join(t.value for t in MemoryType)
        raise InvalidInput(parameter, f"expected one of {choices}, got {value!r}") from None


def _memory_types(value: Iterable[object] | None) -> list[MemoryType] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        raise InvalidInput("memory_types", "expected a list of memory types, not one string")
    return [_memory_type("memory_types", v) for v in value]


def _vector(parameter: str, value: object, dims: int) -> list[float]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidInput(parameter, f"expected a list of {dims} numbers")
    if len(value) != dims:
        raise InvalidInput(parameter, f"has {len(value)} dimensions; the embedder makes {dims}")
    return [_number(parameter, x) for x in value]


def _checked_item(item: object, prefix: str) -> NewMemory:
    """A validated copy of ``item``; naive ``created_at`` is taken to be UTC."""
    if not isinstance(item, NewMemory):
        raise InvalidInput(prefix.rstrip(".") or "item", f"expected a NewMemory, got {item!r}")

    def name(field_name: str) -> str:
        return f"{prefix}{field_name}"

    if not isinstance(item.content, str) or not item.content.strip():
        raise InvalidInput(name("content"), "a memory needs some content")
    created_at = item.created_at
    if created_at is not None:
        if not isinstance(created_at, datetime):
            raise InvalidInput(
                name("created_at"), f"expected a datetime, got {type(created_at).__name__}"
            )
        created_at = as_utc(created_at)
    if item.emotional_score is not None:
        _number(name("emotional_score"), item.emotional_score)
    if not isinstance(item.metadata, dict):
        raise InvalidInput(name("metadata"), "expected a dict")
    try:
        # Both tiers and the outbox store it as JSON; find out now, not mid-write.
        json.dumps(item.metadata)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(name("metadata"), f"must be JSON-serialisable ({exc})") from None
    tags = [] if isinstance(item.tags, str) else list(item.tags)
    if isinstance(item.tags, str) or not all(isinstance(t, str) for t in tags):
        raise InvalidInput(name("tags"), "expected a list of strings")
    if not isinstance(item.source, str):
        raise InvalidInput(name("source"), "expected a string")
    return dataclasses.replace(
        item,
        memory_type=_memory_type(name("memory_type"), item.memory_type),
        created_at=created_at,
        metadata=dict(item.metadata),
        importance=_number(name("importance"), item.importance),
        confidence=_number(name("confidence"), item.confidence),
        project_id=_memory_id(name("project_id"), item.project_id),
        supersedes=_memory_id(name("supersedes"), item.supersedes),
        tags=tags,
    )


@dataclass
class ForgetResult:
    warm: int = 0
    hot: int = 0
    queued: bool = False


class MemoryManager:
    def __init__(
        self,
        *,
        redis: Redis,
        engine: AsyncEngine,
        embedder: Embedder,
        scorer: EmotionScorer,
        outbox_dir: Path,
        weights: RetrievalWeights | None = None,
        max_retrieved: int = 15,
        retrieval: RetrievalConfig | None = None,
        clock: Callable[[], datetime] = _now,
        probe_interval: float = PROBE_INTERVAL_S,
    ) -> None:
        self.clock = clock
        self.hot = HotStore(redis, clock=clock)
        self.retrieval = retrieval or RetrievalConfig()
        self.warm = WarmStore(engine, text_search_config=self.retrieval.text_search_config)
        self.projects = ProjectStore(engine)
        self.ledger = ConsolidationLedger(engine, clock=clock)
        self.embedder = embedder
        self.scorer = scorer
        self.weights = weights or RetrievalWeights()
        self.max_retrieved = max_retrieved
        self.redis_health = TierHealth("Redis")
        self.pg_health = TierHealth("PostgreSQL")
        self.outbox = Outbox(outbox_dir)
        self.writer = WarmWriter(
            self.warm, self.outbox, self.pg_health, forget_user_extra=self._forget_user_extra
        )
        self.probe_interval = probe_interval
        self._watcher: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._rehydrate_users: set[str] = set()
        self._forget_epochs: dict[str, int] = {}

    # -- lifecycle ------------------------------------------------------------

    async def initialize(self, *, watch: bool = True) -> None:
        """Check the embedder matches the stored vectors, open the outbox, flush it."""
        await self.outbox.open()
        await self.check_embedder()
        # The lexical leg's language: known to PostgreSQL and the one the stored
        # column was built with (ConfigError otherwise: exit 2, naming the fix).
        await text_search.check(self.warm.engine, self.retrieval.text_search_config)
        await self.writer.flush()
        if watch:
            self._watcher = asyncio.create_task(self._watch(), name="cortex-health")

    async def check_embedder(self) -> None:
        dims = await self.warm.embedding_column_dims()
        if dims != self.embedder.dims:
            raise EmbedderMismatch(
                f"the memories table stores {dims}-dimensional vectors but the embedder "
                f"{self.embedder.model_id!r} makes {self.embedder.dims}; run "
                "'python discord_bot.py cortex reembed' to convert the stored memories"
            )
        recorded = await self.warm.get_meta(EMBEDDER_META_KEY)
        current = {"model": self.embedder.model_id, "dims": self.embedder.dims}
        if recorded is None:
            await self.warm.set_meta(EMBEDDER_META_KEY, current)
        elif recorded != current:
            raise EmbedderMismatch(
                f"stored memories were embedded with {recorded['model']!r} "
                f"({recorded['dims']} dims) but CORTEX_EMBEDDING_MODEL is "
                f"{self.embedder.model_id!r}; run 'python discord_bot.py cortex reembed' "
                "(or set the embedding settings back)"
            )

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain_background(self) -> None:
        """Wait for fire-and-forget work (access counts); for tests and shutdown."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # -- degraded-mode plumbing -----------------------------------------------

    async def _hot(self, call: Callable[[], Awaitable[T]], default: T) -> T:
        if not self.redis_health.up:
            return default
        try:
            return await call()
        except REDIS_DOWN as exc:
            self.redis_health.mark_down(exc)
            return default

    async def _warm_read(self, call: Callable[[], Awaitable[T]], default: T) -> T:
        if not self.pg_health.up:
            return default
        try:
            return await call()
        except Exception as exc:
            if not postgres_down(exc):
                raise
            self.pg_health.mark_down(exc)
            return default

    async def _watch(self) -> None:
        """Probe tiers that are down; catch up when they return."""
        while True:
            await asyncio.sleep(self.probe_interval)
            try:
                if not self.redis_health.up:
                    await self._probe_redis()
                if not self.pg_health.up or self.outbox.pending:
                    await self._probe_postgres()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Cortex health probe failed")

    async def _probe_redis(self) -> None:
        try:
            await self.hot.ping()
        except REDIS_DOWN:
            return
        self.redis_health.mark_up()
        await self.rehydrate_hot()

    async def _probe_postgres(self) -> None:
        try:
            await self.warm.ping()
        except Exception as exc:
            if postgres_down(exc):
                return
            raise
        self.pg_health.mark_up()
        await self.writer.flush()

    async def rehydrate_hot(self, users: Sequence[str] | None = None) -> int:
        """Refill Redis from PostgreSQL: identity facts and still-live working memories.

        Runs when Redis comes back (its data may be gone or stale) for every user
        written during the outage, and is safe to run any time."""
        targets = list(users) if users is not None else sorted(self._rehydrate_users)
        now = self.clock()
        done = 0
        for user_id in targets:
            identity = await self.warm.identity_facts(user_id)
            if identity:
                await self.hot.update_identity(user_id, identity)
            recent = await self.warm.get_memories(
                user_id,
                since=now - timedelta(seconds=working_ttl(1.0)),
                memory_types=WORKING_TYPES,
                limit=200,
            )
            for memory in recent:
                remaining = (
                    working_ttl(memory.emotional_score) - (now - memory.created_at).total_seconds()
                )
                if remaining > 0:
                    await self.hot.add_working(memory, ttl_s=int(remaining))
            self._rehydrate_users.discard(user_id)
            done += 1
        return done

    # -- reads ----------------------------------------------------------------

    async def get_context(
        self,
        user_id: str,
        query: str | None = None,
        project_id: str | None = None,
        include_working: bool = True,
        max_retrieved: int | None = None,
        *,
        query_embedding: Sequence[float] | None = None,
        skip_retrieval: bool = False,
    ) -> MemoryContext:
        check_user_id(user_id)
        # 0 means "retrieve nothing", so only None falls back to the default.
        limit = _count(
            "max_retrieved", self.max_retrieved if max_retrieved is None else max_retrieved
        )
        if query_embedding is not None:
            query_embedding = _vector("query_embedding", query_embedding, self.embedder.dims)
        ctx = MemoryContext(user_id=user_id)
        retrieve = (
            bool(query) and limit > 0 and not skip_retrieval and not quick_reject(query or "")
        )
        if query and not retrieve and not skip_retrieval:
            ctx.notes.append("retrieval skipped: nothing to look up in this message")

        async def identity() -> None:
            if self.redis_health.up:
                ctx.identity = await self._hot(lambda: self.hot.get_identity(user_id), {})
            if not self.redis_health.up:
                ctx.identity = await self._warm_read(lambda: self.warm.identity_facts(user_id), {})

        async def working() -> None:
            if not include_working:
                return
            ctx.session = await self._hot(lambda: self.hot.get_session(user_id), {})
            if self.redis_health.up:
                ctx.working = await self._hot(lambda: self.hot.get_working(user_id, limit=10), [])
            if not self.redis_health.up:
                since = self.clock() - timedelta(seconds=working_ttl(0.0))
                ctx.working = await self._warm_read(
                    lambda: self.warm.get_memories(
                        user_id, since=since, memory_types=WORKING_TYPES, limit=10
                    ),
                    [],
                )

        async def retrieved() -> None:
            if not retrieve:
                return
            vec = (
                query_embedding
                if query_embedding is not None
                else await self.embedder.embed(query or "")
            )
            ctx.retrieved = await self._ranked_search(user_id, query or "", vec, limit, None, None)
            if not self.pg_health.up:
                ctx.notes.append("long-term memory is unavailable right now")

        async def project() -> None:
            if project_id is None:
                return
            ctx.project = await self.get_project_context(
                project_id,
                user_id=user_id,
                query=query if retrieve else None,
                query_embedding=query_embedding,
            )

        await asyncio.gather(identity(), working(), retrieved(), project())
        if ctx.retrieved and self.pg_health.up and self.weights.reinforcement > 0:
            # Access counts only matter when they rank (CORTEX_RETRIEVAL_WEIGHTS); the
            # measured default gives them no weight, so no write per turn.
            ids = [m.id for m in ctx.retrieved]
            self._spawn(self._warm_read(lambda: self.warm.touch(user_id, ids, self.clock()), None))
        return ctx

    async def _ranked_search(
        self,
        user_id: str,
        query: str,
        vec: Sequence[float],
        limit: int,
        memory_types: Sequence[MemoryType] | None,
        project_id: str | None,
        *,
        shared: bool = False,
    ) -> list[Memory]:
        """Vector leg (re-ranked by similarity/recency/emotion), lexical leg and, when
        the query names a time, a vector leg inside that window: fused, adjusted for
        generic turns and the window, diversified (clara_core/cortex/retrieval.py).

        ``shared``: the project's memories by any author (``user_id`` must be a
        member; the check is part of the statement), ranked the same way."""
        cfg = self.retrieval
        depth = limit * cfg.candidate_factor
        window = time_window(query, self.clock()) if cfg.time_boost != 1.0 else None

        # One statement for all legs (WarmStore.hybrid_search): one pooled
        # connection and one round trip instead of three concurrent queries, which
        # bench/cortex.py showed cost more in checkouts and driver work than the
        # server spent on them.
        candidates, lexical_hits, dated_hits = await self._warm_read(
            lambda: self.warm.hybrid_search(
                user_id,
                vec,
                query,
                limit=depth,
                lexical=cfg.lexical,
                window=window,
                memory_types=memory_types,
                project_id=project_id,
                max_matches=cfg.lexical_max_matches,
                common_share=cfg.lexical_common_share,
                min_coverage=cfg.lexical_min_coverage,
                shared=shared,
            ),
            ([], [], []),
        )
        ranked = self._rerank(candidates)
        if not lexical_hits and not dated_hits:
            legs: list[Leg] = [(ranked, 1.0)]
        else:
            lexical_leg: Leg = (
                (lexical_hits, cfg.lexical_weight, tied_ranks(lexical_hits))
                if cfg.lexical_ties
                else (lexical_hits, cfg.lexical_weight)
            )
            legs = [(ranked, 1.0), lexical_leg]
            if dated_hits:
                legs.append((self._rerank(dated_hits), 1.0))
        scored = one_per_episode(adjust(fuse(legs, k=cfg.rrf_k), cfg, window))
        picked = diversify(scored, limit, cfg.mmr_lambda)
        for m, value in picked:
            # score is the final ranking's value; similarity stays the cosine
            # (None for a memory only the lexical leg found).
            m.score = value
        return [m for m, _ in picked]

    def _rerank(self, memories: list[Memory]) -> list[Memory]:
        now = self.clock()
        for m in memories:
            m.score = retrieval_score(
                similarity=m.similarity or 0.0,
                created_at=m.created_at,
                emotional_score=m.emotional_score,
                access_count=m.access_count,
                now=now,
                weights=self.weights,
            )
        return sorted(memories, key=lambda m: m.score or 0.0, reverse=True)

    async def search(
        self,
        user_id: str,
        query: str,
        project_id: str | None = None,
        memory_types: Sequence[MemoryType] | None = None,
        limit: int = 20,
        *,
        query_embedding: Sequence[float] | None = None,
    ) -> SearchResult:
        check_user_id(user_id)
        started = time.perf_counter()
        limit = _count("limit", limit)
        project_id = _memory_id("project_id", project_id)
        types = _memory_types(memory_types)
        if query_embedding is not None:
            query_embedding = _vector("query_embedding", query_embedding, self.embedder.dims)
        if project_id is not None:
            await self.projects.require_member(project_id, user_id)
        if limit == 0:
            return SearchResult(memories=[], total_count=0, search_time_ms=0)
        vec = query_embedding if query_embedding is not None else await self.embedder.embed(query)
        memories = await self._ranked_search(user_id, query, vec, limit, types, project_id)
        return SearchResult(
            memories=memories,
            total_count=len(memories),
            search_time_ms=int((time.perf_counter() - started) * 1000),
        )

    async def get_project_context(
        self,
        project_id: str,
        *,
        user_id: str,
        query: str | None = None,
        query_embedding: Sequence[float] | None = None,
        limit: int = 10,
    ) -> ProjectContext:
        """A project's shared memories, for members only (AccessDenied otherwise)."""
        limit = _count("limit", limit)
        project_id = str(_memory_id("project_id", project_id))
        info = await self.projects.info(project_id, as_user=user_id)
        recent = await self.warm.project_recent(project_id, member_id=user_id, limit=limit)
        retrieved: list[Memory] = []
        if query or query_embedding is not None:
            vec = (
                query_embedding
                if query_embedding is not None
                else await self.embedder.embed(query or "")
            )
            # The same hybrid ranking as personal memories (issue 14): a project's
            # names and dates pull as much as its meaning does.
            retrieved = await self._ranked_search(
                user_id, query or "", vec, limit, None, project_id, shared=True
            )
        return ProjectContext(
            project_id=project_id, name=info.name, recent=recent, retrieved=retrieved
        )

    async def get_group_context(
        self, message: str, author_id: str, channel_id: str, *, mentioned: bool = True
    ) -> MemoryContext | None:
        """Personal context of the author plus the channel's project (when the author is a member)."""
        if not mentioned and quick_reject(message):
            return None
        project_id = await self._warm_read(
            lambda: self.projects.project_for_channel(channel_id), None
        )
        if project_id is not None and not await self.projects.check_access(project_id, author_id):
            project_id = None  # a non-member in a linked channel gets personal context only
        return await self.get_context(author_id, query=message, project_id=project_id)

    async def recent_memories(
        self, user_id: str, *, limit: int = 10, offset: int = 0
    ) -> list[Memory]:
        """The user's active memories, newest first (``/clara memory`` pages through these)."""
        check_user_id(user_id)
        if _count("limit", limit) == 0:
            return []
        _count("offset", offset)
        return await self.warm.get_memories(
            user_id, memory_types=LISTED_TYPES, limit=limit, offset=offset
        )

    async def count_memories(self, user_id: str) -> int:
        """How many memories ``recent_memories`` can page through."""
        return await self.warm.count(user_id, status=MemoryStatus.ACTIVE, memory_types=LISTED_TYPES)

    # -- writes ---------------------------------------------------------------

    async def store(
        self,
        user_id: str,
        content: str,
        memory_type: MemoryType = MemoryType.EPISODIC,
        project_id: str | None = None,
        emotional_score: float | None = None,
        metadata: dict[str, Any] | None = None,
        created_at: datetime | None = None,
        *,
        embedding: Sequence[float] | None = None,
        supersedes: str | None = None,
        source: str = "conversation",
        importance: float = 0.5,
        confidence: float = 1.0,
        tags: Sequence[str] = (),
    ) -> StoreResult:
        """Store one memory.  A naive ``created_at`` is taken to be UTC.

        Failures come back as ``StoreResult(success=False, error=...)`` (invalid input
        included: nothing was written then); only ``AccessDenied`` is raised."""
        item = NewMemory(
            content=content,
            memory_type=memory_type,
            emotional_score=emotional_score,
            metadata=metadata if metadata is not None else {},
            created_at=created_at,
            project_id=project_id,
            source=source,
            importance=importance,
            confidence=confidence,
            supersedes=supersedes,
            tags=list(tags),
        )
        try:
            results = await self._store(
                user_id, [item], [embedding] if embedding is not None else None, True, ""
            )
        except AccessDenied:
            raise
        except CortexError as exc:
            return StoreResult(success=False, error=str(exc))
        return results[0]

    async def store_many(
        self,
        user_id: str,
        items: Sequence[NewMemory],
        *,
        embeddings: Sequence[Sequence[float] | None] | None = None,
        to_hot: bool = True,
    ) -> list[StoreResult]:
        """Store several memories of one user: scored and embedded in batches, one transaction.

        Every item is validated before anything is written (``InvalidInput`` names the
        item and field); a naive ``created_at`` is taken to be UTC.  Once the warm tier
        has the memories (or the outbox does), this returns normally: a hot-tier
        problem after that point is logged, never raised, so a caller never retries a
        write that already happened."""
        return await self._store(user_id, items, embeddings, to_hot, "items[{n}].")

    async def _store(
        self,
        user_id: str,
        items: Sequence[NewMemory],
        embeddings: Sequence[Sequence[float] | None] | None,
        to_hot: bool,
        prefix: str,
    ) -> list[StoreResult]:
        check_user_id(user_id)
        checked = [_checked_item(it, prefix.format(n=n)) for n, it in enumerate(items)]
        if not checked:
            return []
        given: list[list[float] | None] | None = None
        if embeddings is not None:
            if len(embeddings) != len(checked):
                raise InvalidInput(
                    "embeddings", f"has {len(embeddings)} entries for {len(checked)} memories"
                )
            given = [
                None
                if v is None
                else _vector(
                    "embedding" if not prefix else f"embeddings[{n}]", v, self.embedder.dims
                )
                for n, v in enumerate(embeddings)
            ]
        for pid in {i.project_id for i in checked if i.project_id}:
            await self.projects.require_member(pid, user_id)  # type: ignore[arg-type]

        unscored = [i for i, it in enumerate(checked) if it.emotional_score is None]
        scores: dict[int, float] = {}
        if unscored:
            got = await self.scorer.score_batch([checked[i].content for i in unscored])
            scores = dict(zip(unscored, got, strict=True))
        now = self.clock()
        memories = [
            Memory(
                content=it.content.strip(),
                user_id=user_id,
                memory_type=it.memory_type,
                emotional_score=min(1.0, max(0.0, scores.get(i, it.emotional_score or 0.0))),
                created_at=it.created_at or now,
                metadata=it.metadata,
                project_id=it.project_id,
                importance=it.importance,
                confidence=it.confidence,
                supersedes=it.supersedes,
                source=it.source,
                tags=it.tags,
            )
            for i, it in enumerate(checked)
        ]

        vectors = given if given is not None else await self._embed_memories(memories)

        supersede = [m.supersedes for m in memories if m.supersedes]
        warm_write = self.writer.add(
            memories, vectors, model=self.embedder.model_id, supersede=supersede
        )
        if to_hot:
            # Both tiers at once: neither write depends on the other, and a store is
            # on the path of every remembered fact (bench/cortex.py: store p95).
            # _to_hot never raises; if the warm write raises (nothing committed), the
            # working memories just written are taken back, so a retry adds no twin.
            hot_done, warm_done = await asyncio.gather(
                self._to_hot(user_id, memories), warm_write, return_exceptions=True
            )
            if isinstance(hot_done, BaseException):  # cancellation only
                raise hot_done
            if isinstance(warm_done, BaseException):
                await self._undo_hot(user_id, memories)
                raise warm_done
            queued = warm_done
        else:
            queued = await warm_write
        return [
            StoreResult(
                success=True,
                memory_id=m.id,
                emotional_score=m.emotional_score,
                ttl=working_ttl(m.emotional_score),
                queued=queued,
                superseded=m.supersedes,
            )
            for m in memories
        ]

    async def _embed_memories(self, memories: Sequence[Memory]) -> list[list[float] | None]:
        """One batch: each memory's text and, for contextual memories, its context,
        blended (clara_core/cortex/retrieval.py: embed_for_storage)."""
        try:
            return list(
                await embed_for_storage(
                    self.embedder, [(m.content, m.metadata) for m in memories], self.retrieval
                )
            )
        except CortexError as exc:
            # The memory is kept without a vector; `cortex reembed --missing` (and the
            # hourly cleanup) fill it in later.  Losing the memory would be worse.
            log.warning("embedding failed (%s); storing without a vector for now", exc)
            return [None] * len(memories)

    async def _to_hot(self, user_id: str, memories: list[Memory]) -> None:
        """Write-through to Redis.  Never raises: by the time it could, the warm write
        may have committed, and the warm tier is the record (Redis is refilled from it)."""
        if not self.redis_health.up:
            self._rehydrate_users.add(user_id)
            return

        async def write() -> None:
            now = self.clock()
            for m in memories:
                if m.supersedes:  # a corrected fact leaves the recent context too
                    await self.hot.forget_working(user_id, m.supersedes)
                if m.memory_type is MemoryType.IDENTITY:
                    # Identity lives in the identity hash, not as a fading memory.
                    if "identity_key" in m.metadata:
                        await self.hot.update_identity(
                            user_id, {m.metadata["identity_key"]: m.metadata.get("value")}
                        )
                    continue
                left = working_ttl(m.emotional_score) - (now - m.created_at).total_seconds()
                if left > 0:  # an old memory (an import, a backfill) skips working memory
                    await self.hot.add_working(m, ttl_s=int(left))
            await self.hot.note_stored(user_id, [m.id for m in memories])

        try:
            await self._hot(write, None)
        except Exception:
            log.exception(
                "could not write %d memory(ies) to Redis; kept in PostgreSQL", len(memories)
            )
        if not self.redis_health.up:
            self._rehydrate_users.add(user_id)

    async def _undo_hot(self, user_id: str, memories: list[Memory]) -> None:
        """Take back working memories whose warm write failed (best effort, never raises)."""
        for m in memories:
            try:
                await self._hot(lambda m=m: self.hot.forget_working(user_id, m.id), False)
            except Exception:
                log.exception("could not take back working memory %s", m.id)

    async def flush_outbox(self) -> int:
        return await self.writer.flush()

    # -- sessions -------------------------------------------------------------

    async def start_session(
        self, user_id: str, initial_context: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        now = self.clock().isoformat()
        session = {"started_at": now, **(initial_context or {})}
        await self._hot(lambda: self.hot.update_session(user_id, session), None)
        return {**session, "last_active": now}

    async def update_session(self, user_id: str, updates: dict[str, Any]) -> bool:
        if not self.redis_health.up:
            return False
        await self._hot(lambda: self.hot.update_session(user_id, updates), None)
        return self.redis_health.up

    async def end_session(self, user_id: str, *, promote_above: float = 0.6) -> dict[str, Any]:
        """Close the session; emotional working memories become episodic (they outlive it)."""
        working = await self._hot(lambda: self.hot.get_working(user_id), [])
        promote = [
            m.id
            for m in working
            if m.memory_type is MemoryType.WORKING and m.emotional_score > promote_above
        ]
        if promote:
            await self.writer.submit(
                {
                    "op": "retype",
                    "user_id": user_id,
                    "ids": promote,
                    "type": MemoryType.EPISODIC.value,
                }
            )
        return await self._hot(lambda: self.hot.end_session(user_id), {})

    # -- identity -------------------------------------------------------------

    async def update_identity(self, user_id: str, key: str, value: Any) -> StoreResult:
        """Set one identity fact; the previous value of that key is superseded, not deleted."""
        old = await self._warm_read(lambda: self.warm.identity_memory_ids(user_id, key), [])
        result = await self.store(
            user_id,
            f"{key}: {value}",
            MemoryType.IDENTITY,
            emotional_score=0.7,
            metadata={"identity_key": key, "value": value},
            source="identity_update",
            supersedes=old[-1] if old else None,
        )
        if len(old) > 1:
            await self.writer.submit(
                {"op": "status", "user_id": user_id, "ids": old[:-1], "status": "superseded"}
            )
        return result

    async def get_identity(self, user_id: str) -> dict[str, Any]:
        identity = await self._hot(lambda: self.hot.get_identity(user_id), None)
        if identity is None:
            identity = await self._warm_read(lambda: self.warm.identity_facts(user_id), {})
        return {k: v for k, v in identity.items() if k != "updated_at"}

    # -- privacy --------------------------------------------------------------

    def forget_epoch(self, user_id: str) -> int:
        """Changes whenever the user is forgotten: work begun before (a turn still
        being answered) must not write memories afterwards."""
        return self._forget_epochs.get(user_id, 0)

    async def forget(self, user_id: str, memory_id: str | None = None) -> ForgetResult:
        """Delete one memory of the user, or everything Cortex holds about them, in both tiers."""
        check_user_id(user_id)
        result = ForgetResult()
        if memory_id is None:
            self._forget_epochs[user_id] = self.forget_epoch(user_id) + 1
            await self.writer.purge_user(user_id)
            result.hot = await self._hot(lambda: self.hot.delete_user_data(user_id), 0)
            self._rehydrate_users.discard(user_id)
            if self.pg_health.up and self.outbox.pending == 0:
                try:
                    result.warm = await self.warm.delete_user_data(user_id)
                    await self._forget_user_extra(user_id)
                    return result
                except Exception as exc:
                    if not postgres_down(exc):
                        raise
                    self.pg_health.mark_down(exc)
            await self.writer.submit({"op": "forget_user", "user_id": user_id})
            result.queued = True
            return result
        memory = await self._warm_read(lambda: self.warm.get(user_id, memory_id), None)
        if memory is None and self.pg_health.up:
            return result  # not this user's (or no such) memory: nothing to say
        removed = await self._hot(lambda: self.hot.forget_working(user_id, memory_id), False)
        result.hot = int(removed)
        result.queued = await self.writer.submit(
            {"op": "forget", "user_id": user_id, "memory_id": memory_id}
        )
        result.warm = 0 if result.queued else 1
        return result

    async def _forget_user_extra(self, user_id: str) -> None:
        await self.projects.delete_user_data(user_id)
        await self.ledger.delete_user_data(user_id)

    async def delete_user_data(self, user_id: str) -> ForgetResult:
        return await self.forget(user_id)
