"""Composition root: build Clara from settings, run her, shut her down cleanly.

Start-up order matters and is deliberate:
1. storage (embedded servers or external ones),
2. migrations to head (alembic is the only schema path),
3. the checks that need a complete configuration (token, LLM key): they come
   *after* migrating so that a first run prepares the data directory,
4. adapters (Discord), which retry their connection on their own.
Shutdown runs the same list backwards; embedded servers stop last.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from storage import migrations
from storage.services import Storage, wait_until_reachable

from .config import Settings
from .errors import ConfigError
from .heap import settle_heap

log = logging.getLogger(__name__)


@dataclass
class StartupTimings:
    storage_s: float = 0.0
    migrate_s: float = 0.0
    details: dict[str, float] = field(default_factory=dict)


class Clara:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.storage: Storage | None = None
        self.started_at = time.time()
        self.timings = StartupTimings()
        self._stop = asyncio.Event()
        self._discord = None
        self.llm = None  # LLMService, once build_pipeline() ran
        self.memory = None  # cortex.MemoryManager, once attach_memory() ran
        self.consolidation = None
        self._runner = None  # the TurnRunner, once attach_memory() ran
        self._background: list[asyncio.Task[None]] = []
        self.monitor = None

    async def open_storage(self) -> Storage:
        s = self.settings
        t0 = time.monotonic()
        self.storage = await Storage.open(
            s.clara_data_dir,
            database_url=s.database_url.get_secret_value() if s.database_url else None,
            redis_url=s.redis_url.get_secret_value() if s.redis_url else None,
        )
        try:
            await wait_until_reachable(self.storage, timeout=s.clara_startup_timeout)
        except BaseException:
            await self.storage.close()
            self.storage = None
            raise
        self.timings.storage_s = time.monotonic() - t0
        self.timings.details.update(self.storage.timings)
        t0 = time.monotonic()
        await migrations.upgrade(self.storage.engine)
        self.timings.migrate_s = time.monotonic() - t0
        log.info(
            "storage ready (%s) in %.2fs, migrations %.2fs",
            "embedded" if self.storage.embedded else "external",
            self.timings.storage_s,
            self.timings.migrate_s,
        )
        return self.storage

    async def run(self, *, on_started: Callable[[], None] | None = None) -> None:
        """Run until ``request_stop()``; raises ``ConfigError`` for missing settings."""
        try:
            await self.open_storage()
            problems = self.settings.missing_for_discord()
            if problems:
                raise ConfigError(problems, headline="Clara needs a little more configuration:")
            from storage.channel_summaries import ChannelSummaryStore
            from storage.preferences import Preferences
            from storage.sessions import SessionStore

            from .discord_adapter.runner import DiscordRunner  # imports discord only when needed
            from .pipeline.summaries import SessionSummarizer

            assert self.storage is not None
            engine = self.storage.engine
            runner = self.build_pipeline()
            await self.attach_memory(runner)
            sessions = SessionStore(engine)
            self._discord = DiscordRunner(
                self.settings,
                runner=runner,
                preferences=Preferences(engine),
                sessions=sessions,
                channel_summaries=ChannelSummaryStore(engine),
                memory=self.memory,
                engine=engine,
            )
            await self._start_monitor()
            assert self.llm is not None
            summarizer = SessionSummarizer(
                sessions, self.llm, idle_minutes=self.settings.session_idle_minutes
            )
            self._background.append(
                asyncio.create_task(summarizer.run_forever(), name="session-summaries")
            )
            discord_task = asyncio.create_task(self._discord.run(), name="discord")
            settle_heap()
            if on_started is not None:
                on_started()
            log.info("Clara is running")
            stop_task = asyncio.create_task(self._stop.wait(), name="stop-wait")
            done, _ = await asyncio.wait(
                {discord_task, stop_task}, return_when=asyncio.FIRST_COMPLETED
            )
            if discord_task in done:
                stop_task.cancel()
                discord_task.result()  # re-raise a fatal adapter error (e.g. bad token)
            else:
                log.info("shutting down")
                await self._discord.close()
                await discord_task
        finally:
            await self.close()

    def build_pipeline(self):
        """The conversation pipeline: LLM service, tools, prompt, turn runner."""
        from tools.builtin import register_builtin_tools
        from tools.registry import ToolRegistry

        from .llm.service import LLMService
        from .pipeline.prompt import PromptBuilder, clock_section
        from .pipeline.turn import TurnRunner

        s = self.settings
        self.llm = LLMService(s)
        self.tools = ToolRegistry()
        register_builtin_tools(self.tools, timezone=s.clara_timezone)
        self.prompt = PromptBuilder()
        self.prompt.add_contributor(clock_section(s.clara_timezone))
        return TurnRunner(
            self.llm,
            self.tools,
            self.prompt,
            max_tool_iterations=s.llm_max_tool_iterations,
            default_tier=s.model_tier,
            auto_tier=s.auto_tier_selection,
        )

    async def open_memory(self, *, text_model=None, watch: bool = True):
        """Cortex on the running storage: embedder, emotion scorer, manager (no pipeline)."""
        from .cortex.embedding import build_embedder
        from .cortex.emotion import build_emotion_scorer
        from .cortex.manager import MemoryManager
        from .cortex.scoring import RetrievalWeights

        s = self.settings
        assert self.storage is not None
        # Loading the local model reads ~23 MB and builds an ONNX session: off the loop.
        embedder = await asyncio.to_thread(build_embedder, s)
        self.memory = MemoryManager(
            redis=self.storage.redis,
            engine=self.storage.engine,
            embedder=embedder,
            scorer=build_emotion_scorer(s, text_model),
            outbox_dir=s.cortex_outbox_dir or (s.clara_data_dir / "cortex-outbox"),
            weights=RetrievalWeights.from_list(s.cortex_retrieval_weights),
            max_retrieved=s.cortex_max_retrieved,
        )
        await self.memory.initialize(watch=watch)
        return self.memory

    async def attach_memory(self, runner) -> None:
        """Give the pipeline Cortex: a prompt section every turn, extraction after it."""
        s = self.settings
        if not s.cortex_enabled:
            log.info("Cortex memory is off (CORTEX_ENABLED=false)")
            return
        from .cortex.extraction import MemoryExtractor
        from .pipeline.memory import ServiceTextModel, memory_section, remember_after_turn

        assert self.llm is not None
        text_model = ServiceTextModel(self.llm)
        memory = await self.open_memory(text_model=text_model)
        self.prompt.add_contributor(memory_section(memory))
        if s.cortex_extraction_enabled:
            runner.add_after_turn(remember_after_turn(memory, MemoryExtractor(memory, text_model)))
        self._runner = runner
        if s.cortex_consolidation_enabled:
            self.consolidation = self.build_consolidation(text_model)
            self.consolidation.start()
        log.info("Cortex memory ready (embedder %s)", memory.embedder.model_id)

    def build_consolidation(self, text_model):
        """The consolidation jobs over the open memory (scheduled by ``start()``)."""
        from .cortex.consolidation import ConsolidationRunner

        memory = self.memory
        assert memory is not None
        return ConsolidationRunner(
            memory.warm,
            memory.hot,
            memory.ledger,
            text_model,
            memory.embedder,
            self.settings,
        )

    async def run_console(self) -> int:
        """Chat in the terminal with the same pipeline (no Discord token needed)."""
        from .console import ConsoleChat

        try:
            await self.open_storage()
            problems = self.settings.missing_llm_keys()
            if problems:
                raise ConfigError(problems, headline="The console needs an LLM key:")
            runner = self.build_pipeline()
            await self.attach_memory(runner)
            settle_heap()
            return await ConsoleChat(runner, user_id=self.settings.user_id).run()
        finally:
            await self.close()

    async def _start_monitor(self) -> None:
        s = self.settings
        if not s.discord_monitor_enabled:
            return
        from .monitor import Monitor

        discord_runner = self._discord

        def state() -> dict:
            client = discord_runner.client if discord_runner is not None else None
            connected = client is not None and client.is_ready() and not client.is_closed()
            out = {"discord_connected": connected, "provider": s.llm_provider}
            if connected:
                out["servers"] = len(client.guilds)
                out["latency_ms"] = round(client.latency * 1000)
            if client is not None and client.conversation is not None:
                out["busy_channels"] = client.conversation.queue.snapshot()
            return out

        self.monitor = Monitor(
            host=s.discord_monitor_host, port=s.discord_monitor_port, state=state
        )
        try:
            await self.monitor.start()
            if discord_runner is not None:
                discord_runner.activity_sink = self.monitor.record
        except OSError as exc:
            log.warning(
                "monitor not started: cannot listen on %s:%s (%s); set DISCORD_MONITOR_PORT or "
                "DISCORD_MONITOR_ENABLED=false",
                s.discord_monitor_host,
                s.discord_monitor_port,
                exc,
            )
            self.monitor = None

    def request_stop(self) -> None:
        self._stop.set()

    async def close(self) -> None:
        if self.monitor is not None:
            await self.monitor.stop()
            self.monitor = None
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background.clear()
        if self._discord is not None:
            await self._discord.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.drain()  # memory extraction of the last turns
        if self.consolidation is not None:
            consolidation, self.consolidation = self.consolidation, None
            await consolidation.stop()
        if self.memory is not None:
            memory, self.memory = self.memory, None
            await memory.close()
            await memory.embedder.aclose()
        if self.llm is not None:
            await self.llm.aclose()
        if self.storage is not None:
            storage, self.storage = self.storage, None
            await storage.close()
        log.info("Clara stopped")
