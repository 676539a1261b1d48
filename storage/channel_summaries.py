"""Rolling summaries of channels' older messages (channel_summaries table)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from .db import session_factory
from .models import ChannelSummary


@dataclass(frozen=True)
class Summary:
    text: str
    cutoff: datetime | None  # newest message folded into the summary


class ChannelSummaryStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._db = session_factory(engine)

    async def get(self, channel_id: str) -> Summary | None:
        async with self._db() as db:
            row = await db.scalar(
                select(ChannelSummary).where(ChannelSummary.channel_id == channel_id)
            )
            return None if row is None else Summary(row.summary, row.summary_cutoff_at)

    async def put(self, channel_id: str, text: str, cutoff: datetime) -> None:
        stmt = insert(ChannelSummary).values(
            channel_id=channel_id, summary=text, summary_cutoff_at=cutoff
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[ChannelSummary.channel_id],
            set_={"summary": text, "summary_cutoff_at": cutoff},
        )
        async with self._db() as db:
            await db.execute(stmt)
            await db.commit()
