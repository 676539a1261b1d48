"""``cortex identity``, ``cortex search``, ``cortex stats``: read-only views."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from ..cortex.manager import EMBEDDER_META_KEY
from ..cortex.types import MemoryType
from .session import CortexSession

log = logging.getLogger(__name__)


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def _one_line(text: str, width: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


async def identity(session: CortexSession, args: argparse.Namespace) -> int:
    memory = session.memory
    # PostgreSQL holds every fact durably; Redis is the live copy Clara reads each
    # turn (and may hold a fact whose warm write still waits in the outbox).
    facts = await memory.warm.identity_facts(args.user)
    try:
        facts.update(await memory.hot.get_identity(args.user))
    except Exception as exc:  # Redis down: the durable facts are the answer
        log.warning("Redis unavailable, showing PostgreSQL's facts only: %s", exc)
    facts.pop("updated_at", None)
    if args.json:
        print(_json(facts))
    elif not facts:
        print(f"no identity facts for {args.user}")
    else:
        for key in sorted(facts):
            value = facts[key]
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            print(f"{key}: {shown}")
    return 0


async def search(session: CortexSession, args: argparse.Namespace) -> int:
    types = [MemoryType(t) for t in args.type] if args.type else None
    result = await session.memory.search(
        args.user, args.query, memory_types=types, limit=args.limit
    )
    if args.json:
        print(
            _json(
                [
                    {
                        "score": round(m.score or 0.0, 4),
                        "similarity": round(m.similarity or 0.0, 4),
                        **m.to_json_dict(),
                    }
                    for m in result.memories
                ]
            )
        )
        return 0
    if not result.memories:
        print(f"no memories of {args.user} match")
        return 0
    print(f"{'score':>6}  {'sim':>5}  {'type':<9} {'date':<10}  content")
    for m in result.memories:
        print(
            f"{m.score or 0.0:6.3f}  {m.similarity or 0.0:5.3f}  {m.memory_type.value:<9} "
            f"{m.created_at:%Y-%m-%d}  {_one_line(m.content)}"
        )
    print(f"({len(result.memories)} results in {result.search_time_ms} ms)")
    return 0


async def _consolidation_metrics(session: CortexSession) -> dict[str, Any] | None:
    """The last 24 h of consolidation runs (None when the ledger can't be read)."""
    try:
        metrics = await session.memory.ledger.metrics(24)
    except Exception as exc:
        log.warning("consolidation metrics unavailable: %s", exc)
        return None
    return dict(vars(metrics))


async def stats(session: CortexSession, args: argparse.Namespace) -> int:
    memory = session.memory
    raw = await memory.warm.stats()
    by_type: dict[str, dict[str, int]] = {}
    for key, count in raw["by_type_status"].items():
        kind, status = key.split("/", 1)
        by_type.setdefault(kind, {})[status] = count
    data = {
        "memories": sum(raw["by_type_status"].values()),
        "users": raw["users"],
        "by_type": by_type,
        "embedding_models": raw["by_embedding_model"],
        "embedder": {
            "configured": {"model": memory.embedder.model_id, "dims": memory.embedder.dims},
            "recorded": await memory.warm.get_meta(EMBEDDER_META_KEY),
            "column_dims": await memory.warm.embedding_column_dims(),
        },
        "outbox_pending": memory.outbox.pending,
        "consolidation_24h": await _consolidation_metrics(session),
    }
    if args.json:
        print(_json(data))
        return 0
    print(f"memories: {data['memories']}  users: {data['users']}")
    statuses = sorted({s for counts in by_type.values() for s in counts})
    if by_type:
        print("by type:    " + "  ".join(f"{s:>10}" for s in statuses))
        for kind in sorted(by_type):
            cells = "  ".join(f"{by_type[kind].get(s, 0):>10}" for s in statuses)
            print(f"  {kind:<9} {cells}")
    print("embedding models:")
    for model, count in sorted(data["embedding_models"].items()):
        label = "(no vector)" if model == "None" else model
        print(f"  {label}: {count}")
    emb = data["embedder"]
    recorded = emb["recorded"]
    recorded_text = f"{recorded['model']} ({recorded['dims']} dims)" if recorded else "none"
    configured = emb["configured"]
    print(
        f"embedder: {configured['model']} ({configured['dims']} dims); "
        f"recorded: {recorded_text}; column: vector({emb['column_dims']})"
    )
    print(f"outbox pending: {data['outbox_pending']}")
    metrics = data["consolidation_24h"]
    if metrics is not None:
        parts = [
            f"{key.replace('_', ' ')} {value:g}"
            if isinstance(value, float)
            else f"{key.replace('_', ' ')} {value}"
            for key, value in metrics.items()
        ]
        print("consolidation, last 24 h: " + ", ".join(parts))
    return 0
