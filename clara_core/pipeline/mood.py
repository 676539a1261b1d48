"""Glue between the conversation pipeline and the hormone model.

``MoodService`` keeps each channel's ``HormoneState``: PostgreSQL
(``CompanionStore``) is the record, written through in the background so a
restart keeps the mood; Redis (``MoodCache``) is the cache every Clara process
reads and writes, so a second process sees the first's change at once.
``mood_section`` is its prompt contributor (the user's message moves the
levels, the section says how Clara feels) and ``mood_after_turn`` the
after-turn hook (Clara answered).  ``install_mood`` wires both into a pipeline.

Outages cost little: with Redis down the levels are kept in an in-process LRU
(read through from PostgreSQL), which is dropped when Redis is back (the
cache then drops its own copies of what changed meanwhile); with PostgreSQL
down the levels go on in the cache or memory and are written again by the
next change once it is back.  Without a cache configured the LRU is the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from clara_core.companion.describe import MoodHint, describe
from clara_core.companion.hormones import HormoneModel, HormoneState, levels_from
from clara_core.companion.sentiment import LocalSentiment, ModelSentiment, SentimentReader
from storage.companion import StoredMood
from storage.companion_cache import MoodCacheDown

from .events import Done
from .prompt import PromptBuilder, PromptContributor, PromptSection, TurnContext
from .turn import TEMPERATURE_WISH_KEY, AfterTurn, TurnRunner

if TYPE_CHECKING:
    from clara_core.config import Settings
    from clara_core.cortex.ports import TextModel
    from storage.companion import CompanionStore
    from storage.companion_cache import MoodCache

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

#: Scopes kept in memory (while Redis is down, or without it); older ones are re-read
#: from the store when they speak again.
CACHE_SIZE = 5000
#: A user's own (DM) mood kept in memory is re-read from PostgreSQL after this long:
#: a ``/clara forget`` in another process that this one did not hear (Redis down,
#: storage/forget_signal.py) reaches its copy within this bound.
LOCAL_TTL_S = 300.0


def scope_for(ctx: TurnContext) -> str:
    """Channel (a DM is a channel too); the console has none: the user's own scope."""
    channel = ctx.tool_context.channel_id
    return f"channel:{channel}" if channel is not None else f"user:{ctx.tool_context.user_id}"


def owner_for(ctx: TurnContext) -> str | None:
    """A one-to-one conversation (no speaker name: a DM or the console) is the user's data."""
    return ctx.tool_context.user_id if ctx.speaker is None else None


class MoodService:
    def __init__(
        self,
        model: HormoneModel,
        store: CompanionStore | None = None,
        clock: Clock | None = None,
        *,
        sentiment: SentimentReader | None = None,
        name: str = "clara",
        cache: MoodCache | None = None,
    ) -> None:
        self.model = model
        self.store = store
        self.cache = cache
        if cache is not None:
            # What this process kept while Redis was down is not kept up to date by
            # other processes: once Redis is back it is dropped, not trusted.
            cache.on_recover.append(self._forget_local)
        self.sentiment = sentiment or LocalSentiment()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.name = name.lower()
        self._cache: OrderedDict[str, tuple[HormoneState, str | None]] = OrderedDict()
        self._cached_at: dict[str, datetime] = {}  # when each scope entered ``_cache``
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._writes: dict[str, asyncio.Task[None]] = {}  # the last pending write per scope

    def _lock(self, scope: str) -> asyncio.Lock:
        lock = self._locks.get(scope)
        if lock is None:
            lock = self._locks[scope] = asyncio.Lock()
        return lock

    def _forget_local(self) -> None:
        self._cache.clear()
        self._cached_at.clear()

    def _drop(self, scope: str) -> None:
        self._cache.pop(scope, None)
        self._cached_at.pop(scope, None)

    def _state(self, stored: StoredMood) -> tuple[HormoneState, str | None]:
        state = HormoneState(
            levels_from(stored.levels, self.model.baseline(stored.at)),
            stored.at,
            stored.last_user_at,
            stored.last_clara_at,
        )
        return state, stored.owner_user_id

    @staticmethod
    def _stored(state: HormoneState, owner: str | None) -> StoredMood:
        return StoredMood(state.as_dict(), state.at, state.last_user_at, state.last_clara_at, owner)

    async def _load(self, scope: str) -> tuple[HormoneState, str | None]:
        if self.cache is not None and self.cache.up:
            try:
                hit = await self.cache.get(scope)
            except MoodCacheDown:
                pass  # logged once by the cache; the LRU and PostgreSQL answer
            else:
                if hit is not None:
                    return self._state(hit)
                state, owner, found = await self._from_store(scope)
                if found:
                    # The next reader, here or in another process, finds it in Redis.
                    with contextlib.suppress(MoodCacheDown):
                        await self.cache.fill(scope, self._stored(state, owner))
                return state, owner
        cached = self._cache.get(scope)
        if cached is not None and cached[1] is not None:
            at = self._cached_at.get(scope)
            if at is None or (self.clock() - at).total_seconds() > LOCAL_TTL_S:
                self._drop(scope)  # a user's data: re-read (it may be forgotten elsewhere)
                cached = None
        if cached is not None:
            self._cache.move_to_end(scope)
            return cached
        state, owner, _ = await self._from_store(scope)
        return state, owner

    async def _from_store(self, scope: str) -> tuple[HormoneState, str | None, bool]:
        """PostgreSQL's state of ``scope`` (at rest when it has none or is down)."""
        now = self.clock()
        state, owner = self.model.initial(now), None
        found = False
        if self.store is not None:
            pending = self._writes.get(scope)
            if pending is not None:  # evicted from the cache with a write on its way
                await asyncio.wait({pending})
            try:
                stored = await self.store.load(scope)
            except Exception as exc:  # the database is optional for a mood
                log.warning("mood: could not read %s's state (%s); starting at rest", scope, exc)
                stored = None
            if stored is not None:
                (state, owner), found = self._state(stored), True
        return state, owner, found

    def _remember(self, scope: str, state: HormoneState, owner: str | None) -> None:
        self._cache[scope] = (state, owner)
        self._cache.move_to_end(scope)
        self._cached_at.setdefault(scope, self.clock())  # since it was read, not last written
        while len(self._cache) > CACHE_SIZE:
            old, _ = self._cache.popitem(last=False)
            self._cached_at.pop(old, None)

    async def _save(
        self, scope: str, state: HormoneState, owner: str | None, cause: str, user_id: str | None
    ) -> None:
        """Keep ``state`` (Redis, or this process while it is down) and write it through
        to PostgreSQL in the background: the answer must not wait for the database.
        Writes of one scope are chained, so they land in order."""
        mood = self._stored(state, owner)
        if self.cache is None:
            self._remember(scope, state, owner)
        else:
            try:
                await self.cache.put(scope, mood)
            except MoodCacheDown:
                self._remember(scope, state, owner)
        if self.store is None:
            return
        previous = self._writes.get(scope)
        task = asyncio.create_task(
            self._write(previous, scope, mood, cause, user_id), name="mood-write"
        )
        self._writes[scope] = task
        task.add_done_callback(
            lambda t: self._writes.pop(scope, None) if self._writes.get(scope) is t else None
        )

    async def _write(
        self,
        previous: asyncio.Task[None] | None,
        scope: str,
        mood: StoredMood,
        cause: str,
        user_id: str | None,
    ) -> None:
        if previous is not None:
            await asyncio.wait({previous})
        assert self.store is not None
        try:
            await self.store.save(scope, mood, cause=cause, user_id=user_id)
        except Exception as exc:  # kept in memory; the next change writes again
            log.warning("mood: could not save %s's state (%s); kept in memory", scope, exc)

    async def flush(self) -> None:
        """Wait until every change so far is in the database (tests; shutdown)."""
        while self._writes:
            await asyncio.gather(*list(self._writes.values()), return_exceptions=True)

    async def close(self) -> None:
        """Shutdown: the last changes reach PostgreSQL; the cache's probe stops."""
        await self.flush()
        if self.cache is not None:
            await self.cache.close()

    async def current(self, scope: str) -> HormoneState:
        """The scope's levels now (decayed; nothing is written)."""
        state, _ = await self._load(scope)
        return self.model.advance(state, self.clock())

    async def on_message(
        self, scope: str, text: str, *, user_id: str, owner: str | None
    ) -> HormoneState:
        # Read before taking the lock: a model reading must not hold up the channel.
        stimulus = await self.sentiment.stimulus(text, mention=self.name in text.lower())
        async with self._lock(scope):
            state, known_owner = await self._load(scope)
            state = self.model.react(state, stimulus, self.clock())
            await self._save(scope, state, owner or known_owner, "message", user_id)
            return state

    async def on_reply(self, scope: str) -> HormoneState:
        async with self._lock(scope):
            state, owner = await self._load(scope)
            state = self.model.spoke(state, self.clock())
            await self._save(scope, state, owner, "reply", None)
            return state

    def hint(self, state: HormoneState) -> MoodHint:
        return describe(state.levels, self.model.baseline(state.at))

    async def delete_user_data(self, user_id: str) -> int:
        """``/clara forget``: the user's DMs' mood and the history their messages caused."""
        await self.flush()  # a write still on its way would bring the rows back
        for scope in [s for s, (_, owner) in self._cache.items() if owner == user_id]:
            self._drop(scope)
        owned = await self.store.owned_scopes(user_id) if self.store is not None else []
        deleted = await self.store.delete_user_data(user_id) if self.store is not None else 0
        if self.cache is not None:
            try:
                deleted += await self.cache.delete_user_data(user_id, owned)
            except MoodCacheDown as exc:
                if owned:  # the cache may hold a copy: say it is not gone yet
                    raise MoodCacheDown(
                        "Redis is unreachable: the mood of the user's DMs is deleted from "
                        "PostgreSQL; its cached copy is deleted as soon as Redis is back"
                    ) from exc
        return deleted


def mood_section(service: MoodService) -> PromptContributor:
    """The user's message moves the levels; the section says how Clara feels now."""

    async def contribute(ctx: TurnContext) -> PromptSection:
        state = await service.on_message(
            scope_for(ctx), ctx.user_text, user_id=ctx.tool_context.user_id, owner=owner_for(ctx)
        )
        hint = service.hint(state)
        ctx.tool_context.extras[TEMPERATURE_WISH_KEY] = hint.temperature
        return PromptSection("Mood", hint.text, order=20)

    return contribute


def mood_after_turn(service: MoodService) -> AfterTurn:
    """Clara answered: a small satisfaction, and the 'left hanging' timer starts."""

    async def after(ctx: TurnContext, done: Done) -> None:
        await service.on_reply(scope_for(ctx))

    return after


def install_mood(
    runner: TurnRunner,
    prompt: PromptBuilder,
    store: CompanionStore | None,
    settings: Settings,
    clock: Clock | None = None,
    *,
    tone_model: TextModel | None = None,
    cache: MoodCache | None = None,
) -> MoodService | None:
    """Give the pipeline Clara's mood: a prompt section before, an update after each
    turn.  ``None`` (and nothing installed) when MOOD_ENABLED is off.

    ``tone_model`` (e.g. ``ServiceTextModel(llm)``, the low tier) reads each
    message's tone when MOOD_TONE_MODEL is on, the heuristic standing in when it
    is slow or fails; otherwise the heuristic alone decides.  ``cache``
    (``MoodCache(storage.redis)``) shares the levels between processes.
    """
    if not settings.mood_enabled:
        log.info("mood is off (MOOD_ENABLED=false)")
        return None
    sentiment = (
        ModelSentiment(tone_model, timeout=settings.mood_tone_timeout_seconds)
        if tone_model is not None and settings.mood_tone_model
        else None
    )
    service = MoodService(
        HormoneModel(settings.clara_timezone), store, clock, sentiment=sentiment, cache=cache
    )
    prompt.add_contributor(mood_section(service))
    runner.add_after_turn(mood_after_turn(service))
    return service
