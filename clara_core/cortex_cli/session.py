"""Storage and Cortex for one operator command, opened like ``migrate`` opens them.

Embedded servers by default; when Clara is running on the same data directory
the command attaches to *her* servers instead of refusing (the data directory
lock is hers).  The schema is brought to head, as Clara does when she starts.

The manager is built without ``initialize()``: that would flush the durable
outbox, which belongs to the running Clara (two processes draining one outbox
could apply an entry twice and trip over each other's deletes).  The embedder
check is run on its own, and skipped for ``reembed`` — the command that fixes
what it complains about.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from storage import migrations
from storage.datadir import read_endpoints
from storage.services import Storage, wait_until_reachable

from ..config import Settings
from ..cortex.embedding import build_embedder
from ..cortex.emotion import HeuristicEmotionScorer
from ..cortex.manager import MemoryManager
from ..cortex.retrieval import RetrievalConfig
from ..cortex.scoring import RetrievalWeights

log = logging.getLogger(__name__)


@dataclass
class CortexSession:
    settings: Settings
    storage: Storage
    memory: MemoryManager
    #: pid of the running Clara whose servers this session uses (None: our own/external).
    attached_to: int | None = None

    @property
    def engine(self):
        return self.storage.engine

    @classmethod
    async def open(cls, settings: Settings, *, check_embedder: bool = True) -> CortexSession:
        s = settings
        storage = await Storage.open(
            s.clara_data_dir,
            database_url=s.database_url.get_secret_value() if s.database_url else None,
            redis_url=s.redis_url.get_secret_value() if s.redis_url else None,
            attach=True,
        )
        embedder = None
        try:
            await wait_until_reachable(storage, timeout=s.clara_startup_timeout)
            await migrations.upgrade(storage.engine)
            attached_to = None
            if storage.lock is None and (s.database_url is None or s.redis_url is None):
                running = read_endpoints(storage.data_dir)
                attached_to = running.pid if running else None
            # Loading the local model reads ~23 MB and builds an ONNX session: off the loop.
            embedder = await asyncio.to_thread(build_embedder, s)
            memory = MemoryManager(
                redis=storage.redis,
                engine=storage.engine,
                embedder=embedder,
                # Commands never score with the LLM: imports of old data use the heuristic.
                scorer=HeuristicEmotionScorer(),
                outbox_dir=s.cortex_outbox_dir or (s.clara_data_dir / "cortex-outbox"),
                weights=RetrievalWeights.from_list(s.cortex_retrieval_weights),
                max_retrieved=s.cortex_max_retrieved,
                retrieval=RetrievalConfig.from_settings(s),
            )
            await memory.outbox.open()  # counts what is pending; flushing is Clara's job
            if check_embedder:
                await memory.check_embedder()
        except BaseException:
            if embedder is not None:
                await embedder.aclose()
            await storage.close()
            raise
        return cls(settings, storage, memory, attached_to)

    async def close(self) -> None:
        try:
            await self.memory.close()
            await self.memory.embedder.aclose()
        finally:
            await self.storage.close()
