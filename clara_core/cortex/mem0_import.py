"""Import a mem0 export into Cortex (spec section 6: classify, seed, import, validate).

The input is what mem0's ``get_all`` returns, saved as JSON: ``{"results": [...]}``,
a bare list, or ``{user_id: [...]}`` (the spec's per-user export).  Each item has
``id``, ``memory`` (the text), ``user_id``, ``created_at`` (ISO 8601; naive means
UTC), ``updated_at``, ``metadata`` and optionally ``categories``/``hash``.

Choices that make the import safe to run twice, and to interrupt:

* Every memory gets a **deterministic id**, ``uuid5(NAMESPACE, "mem0:{id}:{user}")``.
  Inserts are ``ON CONFLICT DO NOTHING`` and ids already in the table are skipped
  before embedding, so a re-run imports nothing twice and costs nothing.  This is
  why the import writes through ``WarmStore.add_many`` rather than
  ``MemoryManager.store_many`` (which mints random ids) or ``update_identity``
  (a random id and "now" as the date on every call).
* Identity facts are seeded the way ``update_identity`` records them (type
  identity, ``identity_key``/``value`` in the metadata, the previous fact
  superseded, not deleted) but keep the mem0 date and id.  Per key the newest
  fact wins — also against facts Clara already learnt since — and the older
  ones are stored superseded: history, not lost.  Family keys that can name
  several people (``daughter``, ``pet``…) merge the names instead.
* Nothing goes to working memory: these memories are old.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from storage.models import MemoryRecord

from .emotion import HeuristicEmotionScorer
from .health import REDIS_DOWN
from .mem0_classify import MULTI_VALUED, Classification, classify
from .types import CortexError, Memory, MemoryStatus, MemoryType, check_user_id

if TYPE_CHECKING:
    from .manager import MemoryManager

log = logging.getLogger(__name__)

#: Fixed forever: changing it would make a re-run import everything again.
NAMESPACE = uuid.UUID("8a4f2c9e-51d7-4b0a-9f3e-2d6c71e0b5a4")
SOURCE = "mem0_import"
#: update_identity's score for a fact: identity matters more than an average memory.
IDENTITY_EMOTION = 0.7
DEFAULT_BATCH = 64
SPOT_CHECKS = 5

Progress = Callable[[int, int], None]


class ImportFileError(CortexError):
    """The export file is missing or is not a mem0 export (the operator's input)."""


def memory_id_for(mem0_id: str, user_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"mem0:{mem0_id}:{user_id}"))


@dataclass
class Rejected:
    index: int
    reason: str
    mem0_id: str | None = None
    user_id: str | None = None


@dataclass
class ImportItem:
    index: int
    mem0_id: str
    user_id: str
    content: str
    created_at: datetime
    metadata: dict[str, Any]
    tags: list[str]
    classification: Classification
    memory_id: str

    @property
    def memory_type(self) -> MemoryType:
        return self.classification.memory_type


@dataclass
class ImportPlan:
    """The classified export: what an import would write (nothing is written yet)."""

    total: int
    items: list[ImportItem] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    #: Same mem0 id for the same user more than once in the file: kept once.
    duplicates_in_file: int = 0
    #: Items without a created_at: dated at import time.
    undated: int = 0

    def counts(self) -> Counter[tuple[str, MemoryType]]:
        return Counter((i.user_id, i.memory_type) for i in self.items)

    @property
    def users(self) -> list[str]:
        return sorted({i.user_id for i in self.items})

    def sample(self, per_type: int = 4) -> list[ImportItem]:
        """A few items of each type, in file order, for the dry run."""
        seen: Counter[MemoryType] = Counter()
        out = []
        for item in self.items:
            if seen[item.memory_type] < per_type:
                seen[item.memory_type] += 1
                out.append(item)
        return out


# -- reading and classifying ----------------------------------------------------------


def parse_user_map(pairs: Iterable[str]) -> dict[str, str]:
    """``OLD=NEW`` pairs (mem0 user ids → Clara user ids)."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise ImportFileError(f"--user-map wants OLD=NEW, got {pair!r}")
        try:
            mapping[old.strip()] = check_user_id(new.strip())
        except CortexError as exc:
            raise ImportFileError(f"--user-map {pair!r}: {exc}") from None
    return mapping


def _items_of(data: Any) -> list[tuple[Any, str | None]]:
    """(item, user id implied by the file's shape) for every entry."""
    if isinstance(data, list):
        return [(item, None) for item in data]
    if isinstance(data, dict):
        if isinstance(data.get("results"), list):
            return [(item, None) for item in data["results"]]
        if data and all(isinstance(v, list) for v in data.values()):
            return [(item, str(user)) for user, items in data.items() for item in items]
    raise ImportFileError(
        'not a mem0 export: expected {"results": [...]}, a list of memories, '
        "or {user_id: [memories]}"
    )


def _parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if not isinstance(value, str):
        raise ValueError(f"not a date: {value!r}")
    parsed = datetime.fromisoformat(value.strip())
    # mem0 writes naive timestamps in some versions; they are UTC.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def parse_export(
    data: Any, *, user_map: dict[str, str] | None = None, now: datetime | None = None
) -> ImportPlan:
    """Validate and classify every item (pure: no I/O)."""
    user_map = user_map or {}
    now = now or datetime.now(UTC)
    entries = _items_of(data)
    plan = ImportPlan(total=len(entries))
    seen: set[str] = set()
    for index, (raw, implied_user) in enumerate(entries):
        if not isinstance(raw, dict):
            plan.rejected.append(Rejected(index, "not a JSON object"))
            continue
        mem0_id = raw.get("id") or raw.get("hash")
        mem0_id = str(mem0_id) if mem0_id not in (None, "") else None
        source_user = raw.get("user_id") or implied_user
        user_id = user_map.get(str(source_user), str(source_user)) if source_user else None
        reject = Rejected(index, "", mem0_id, user_id)
        text = raw.get("memory", raw.get("content", raw.get("text")))
        if mem0_id is None:
            reject.reason = "no id"
        elif not user_id:
            reject.reason = "no user_id"
        elif not isinstance(text, str) or not text.strip():
            reject.reason = "empty text"
        else:
            try:
                check_user_id(user_id)
            except CortexError:
                reject.reason = f"invalid user id {user_id!r}"
        if not reject.reason:
            try:
                created = _parse_time(raw.get("created_at")) or _parse_time(raw.get("updated_at"))
                updated = _parse_time(raw.get("updated_at"))
            except (ValueError, OverflowError, OSError) as exc:
                reject.reason = f"bad date: {exc}"
        if reject.reason:
            plan.rejected.append(reject)
            continue
        assert mem0_id is not None and user_id is not None and isinstance(text, str)
        memory_id = memory_id_for(mem0_id, user_id)
        if memory_id in seen:
            plan.duplicates_in_file += 1
            continue
        seen.add(memory_id)
        if created is None:
            plan.undated += 1
        plan.items.append(
            ImportItem(
                index=index,
                mem0_id=mem0_id,
                user_id=user_id,
                content=" ".join(text.split()),
                created_at=created or now,
                metadata=_metadata(raw, mem0_id, updated),
                tags=[str(c) for c in raw.get("categories") or [] if isinstance(c, str)],
                classification=classify(text),
                memory_id=memory_id,
            )
        )
    return plan


def _metadata(raw: dict[str, Any], mem0_id: str, updated: datetime | None) -> dict[str, Any]:
    meta = raw.get("metadata")
    out: dict[str, Any] = dict(meta) if isinstance(meta, dict) else {}
    if meta is not None and not isinstance(meta, dict):
        out["mem0_metadata"] = meta
    out["mem0_id"] = mem0_id
    out["imported_from"] = "mem0"
    if raw.get("hash"):
        out["mem0_hash"] = raw["hash"]
    if updated is not None:
        out["mem0_updated_at"] = updated.isoformat()
    return out


def _read_json(path: Path) -> Any:
    try:
        with path.open("rb") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ImportFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImportFileError(f"{path}: is a directory, not an export file") from None
    except PermissionError:
        raise ImportFileError(f"{path}: permission denied") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ImportFileError(f"{path}: not valid JSON ({exc})") from None


async def load_export(
    path: Path, *, user_map: dict[str, str] | None = None, now: datetime | None = None
) -> ImportPlan:
    # A large export takes a while to read and parse: not on the event loop.
    data = await asyncio.to_thread(_read_json, path)
    return await asyncio.to_thread(parse_export, data, user_map=user_map, now=now)


# -- applying ---------------------------------------------------------------------------


@dataclass
class SpotCheck:
    user_id: str
    memory_id: str
    content: str
    #: 1-based rank of the memory in a search for its own text; None: not in the top 3.
    rank: int | None


@dataclass
class ImportReport:
    plan: ImportPlan
    imported: Counter[tuple[str, MemoryType]] = field(default_factory=Counter)
    already_present: Counter[tuple[str, MemoryType]] = field(default_factory=Counter)
    #: Valid items of the file that are in the database after the run.
    present: Counter[tuple[str, MemoryType]] = field(default_factory=Counter)
    without_embedding: int = 0
    identity_seeded: dict[str, dict[str, Any]] = field(default_factory=dict)
    spot_checks: list[SpotCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return len(self.plan.items) - sum(self.present.values())

    @property
    def ok(self) -> bool:
        return self.missing == 0


_NAME_SPLIT = re.compile(r"\s*,\s*|\s+and\s+|\s*&\s*")


def _merge_names(values: Iterable[Any]) -> str:
    names: dict[str, None] = {}
    for value in values:
        for name in _NAME_SPLIT.split(str(value)):
            if name.strip():
                names.setdefault(name.strip(), None)
    return ", ".join(names)


def _memory(item: ImportItem, *, emotion: float, status: MemoryStatus) -> Memory:
    return Memory(
        id=item.memory_id,
        content=item.content,
        user_id=item.user_id,
        memory_type=item.memory_type,
        emotional_score=emotion,
        created_at=item.created_at,
        metadata=dict(item.metadata),
        status=status,
        source=SOURCE,
        tags=list(item.tags),
    )


class _Importer:
    def __init__(self, manager: MemoryManager, batch: int, progress: Progress | None) -> None:
        self.manager = manager
        self.warm = manager.warm
        self.embedder = manager.embedder
        self.batch = max(1, batch)
        self.progress = progress
        self.scorer = HeuristicEmotionScorer()  # cheap and local: no LLM bill for old data
        self.done = 0
        self.total = 0

    def _tick(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.done, self.total)

    async def existing_ids(self, ids: Sequence[str]) -> dict[str, tuple[str, bool]]:
        """id → (status, has embedding) for those of ``ids`` already stored."""
        found: dict[str, tuple[str, bool]] = {}
        for start in range(0, len(ids), 1000):
            chunk = [uuid.UUID(i) for i in ids[start : start + 1000]]
            stmt = select(
                MemoryRecord.id, MemoryRecord.status, MemoryRecord.embedding.is_not(None)
            ).where(MemoryRecord.id.in_(chunk))
            async with self.warm.engine.connect() as conn:
                for row in (await conn.execute(stmt)).all():
                    found[str(row[0])] = (row[1], bool(row[2]))
        return found

    async def _vectors(self, texts: list[str], report: ImportReport) -> list[list[float] | None]:
        try:
            return list(await self.embedder.embed_batch(texts))
        except CortexError as exc:
            # Keep the memories; `cortex reembed --missing` fills the vectors in later.
            log.warning(
                "embedding failed (%s); storing %d memories without vectors", exc, len(texts)
            )
            report.without_embedding += len(texts)
            return [None] * len(texts)

    async def write(
        self,
        memories: list[Memory],
        report: ImportReport,
        supersede: Sequence[tuple[str, str]] = (),
        *,
        batch: int | None = None,
    ) -> None:
        size = max(1, batch or self.batch)
        for start in range(0, len(memories), size):
            chunk = memories[start : start + size]
            vectors = await self._vectors([m.content for m in chunk], report)
            pairs = supersede if start == 0 else ()
            inserted = await self.warm.add_many(
                list(zip(chunk, vectors, strict=True)),
                model=self.embedder.model_id,
                supersede=pairs,
            )
            for m in chunk:
                report.imported[(m.user_id, m.memory_type)] += 1
            if inserted < len(chunk):
                # Another import raced this one: the rows exist, so they are duplicates.
                lost = len(chunk) - inserted
                report.notes.append(f"{lost} memories were inserted concurrently by another run")
            self._tick(len(chunk))

    async def identity_rows(
        self, user_id: str, items: list[ImportItem]
    ) -> tuple[list[Memory], list[tuple[str, str]], dict[str, Any]]:
        """Rows for keyed identity facts, the existing facts they supersede, the new hash."""
        current = await self.warm.get_memories(
            user_id, memory_types=[MemoryType.IDENTITY], status=MemoryStatus.ACTIVE, limit=10_000
        )
        by_key: dict[str, list[ImportItem]] = {}
        for item in items:
            by_key.setdefault(item.classification.identity_key or "", []).append(item)
        rows: list[Memory] = []
        supersede: list[tuple[str, str]] = []
        seeded: dict[str, Any] = {}
        for key, group in sorted(by_key.items()):
            group.sort(key=lambda i: (i.created_at, i.index))
            existing = [m for m in current if m.metadata.get("identity_key") == key]
            newest_existing = max(existing, key=lambda m: m.created_at, default=None)
            winner = group[-1]
            value: Any = winner.classification.identity_value
            if key in MULTI_VALUED:
                # Two daughters are two daughters: merge the names, newest fact holds them.
                value = _merge_names(
                    [m.metadata.get("value") for m in existing]
                    + [i.classification.identity_value for i in group]
                )
            elif newest_existing is not None and newest_existing.created_at > winner.created_at:
                winner = None  # Clara learnt something newer since mem0: it stays
            for item in group:
                is_winner = item is winner
                meta = {
                    **item.metadata,
                    "identity_key": key,
                    "value": value if is_winner else item.classification.identity_value,
                }
                memory = _memory(
                    item,
                    emotion=IDENTITY_EMOTION,
                    status=MemoryStatus.ACTIVE if is_winner else MemoryStatus.SUPERSEDED,
                )
                memory.metadata = meta
                if is_winner and newest_existing is not None:
                    memory.supersedes = newest_existing.id
                rows.append(memory)
            if winner is not None:
                supersede += [(user_id, m.id) for m in existing]
                seeded[key] = value
        return rows, supersede, seeded

    async def seed_hot(self, user_id: str, facts: dict[str, Any], report: ImportReport) -> None:
        if not facts:
            return
        try:
            await self.manager.hot.update_identity(user_id, facts)
        except REDIS_DOWN as exc:
            report.notes.append(
                f"Redis unavailable ({exc}); {user_id}'s identity is in PostgreSQL and "
                "reaches Redis when Clara rehydrates it"
            )

    async def run_user(
        self,
        user_id: str,
        items: list[ImportItem],
        present: dict[str, tuple[str, bool]],
        report: ImportReport,
    ) -> None:
        new = [i for i in items if i.memory_id not in present]
        for item in items:
            if item.memory_id in present:
                report.already_present[(user_id, item.memory_type)] += 1
        self._tick(len(items) - len(new))
        keyed = [i for i in new if i.classification.identity_key]
        rest = [i for i in new if not i.classification.identity_key]
        if keyed:
            rows, supersede, seeded = await self.identity_rows(user_id, keyed)
            # One transaction: the new facts and the old ones they supersede, so a
            # crash never leaves two active values (or none) for a key.
            await self.write(rows, report, supersede, batch=len(rows))
            await self.seed_hot(user_id, seeded, report)
            if seeded:
                report.identity_seeded[user_id] = seeded
        memories = []
        scores = await self.scorer.score_batch([i.content for i in rest])
        for item, score in zip(rest, scores, strict=True):
            memories.append(_memory(item, emotion=score, status=MemoryStatus.ACTIVE))
        await self.write(memories, report)


async def apply_import(
    manager: MemoryManager,
    plan: ImportPlan,
    *,
    batch: int = DEFAULT_BATCH,
    progress: Progress | None = None,
    spot_checks: int = SPOT_CHECKS,
    rng: random.Random | None = None,
) -> ImportReport:
    """Write the plan (skipping what is already there), then validate it."""
    report = ImportReport(plan=plan)
    importer = _Importer(manager, batch, progress)
    importer.total = len(plan.items)
    present = await importer.existing_ids([i.memory_id for i in plan.items])
    by_user: dict[str, list[ImportItem]] = {}
    for item in plan.items:
        by_user.setdefault(item.user_id, []).append(item)
    for user_id in sorted(by_user):
        await importer.run_user(user_id, by_user[user_id], present, report)
    await validate(manager, report, importer, spot_checks=spot_checks, rng=rng)
    return report


async def validate(
    manager: MemoryManager,
    report: ImportReport,
    importer: _Importer | None = None,
    *,
    spot_checks: int = SPOT_CHECKS,
    rng: random.Random | None = None,
) -> None:
    """Count what of the file is stored now; search a few memories by their own text."""
    importer = importer or _Importer(manager, DEFAULT_BATCH, None)
    items = report.plan.items
    stored = await importer.existing_ids([i.memory_id for i in items])
    report.present = Counter((i.user_id, i.memory_type) for i in items if i.memory_id in stored)
    searchable = [
        i
        for i in items
        if i.memory_id in stored
        and stored[i.memory_id][0] == MemoryStatus.ACTIVE.value
        and stored[i.memory_id][1]
    ]
    rng = rng or random.Random()
    for item in rng.sample(searchable, min(spot_checks, len(searchable))):
        found = await manager.search(item.user_id, item.content, limit=3)
        ids = [m.id for m in found.memories]
        rank = ids.index(item.memory_id) + 1 if item.memory_id in ids else None
        report.spot_checks.append(SpotCheck(item.user_id, item.memory_id, item.content, rank))
