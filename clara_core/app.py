"""Composition root: build Clara from settings, run her, shut her down cleanly.

Start-up runs side by side what does not depend on each other, because users
wait through it on every restart:
- the Discord login and gateway connect start first (only discord.py and
  aiohttp are imported before IDENTIFY goes out);
- meanwhile storage starts (embedded servers or external ones) and migrates to
  head, the local embedder loads in a thread, and the pipeline's modules are
  imported in a thread, off the event loop the gateway connect runs on;
- when storage, memory and pipeline are ready they are attached to the Discord
  client; messages that arrived before wait for that instead of being dropped.
With configuration incomplete (no token, no LLM key) only storage starts, so
that a first run prepares the data directory, then the checks report.
The daemon's launcher is told "started" once Discord accepted the token and the
gateway session is up (or Discord is unreachable and Clara keeps retrying), so
a rejected token is reported in the user's terminal.
Shutdown runs the same list backwards; embedded servers stop last.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .config import Settings
from .errors import ConfigError
from .heap import settle_heap

if TYPE_CHECKING:
    from storage.services import Storage

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
        self.work_queue = None
        self._runner = None  # the TurnRunner, once attach_memory() ran
        self.mood = None  # pipeline.mood.MoodService, once attach_mood() ran
        self.sandbox = None  # sandbox.manager.SandboxManager, when a backend runs
        self.file_store = None  # storage.local_files.LocalFileStore (the file tools')
        self.web_search = None  # tools.web_search.WebSearch, when TAVILY_API_KEY is set
        self.github = None  # tools.github.GitHubClient, when GITHUB_TOKEN is set
        self.mcp = None  # clara_core.mcp.Supervisor: the MCP plug-in servers
        self.ors = None  # pipeline.proactive.OrsRunner: proactive messages, when ORS is on
        self.backup_schedule = None  # backup.schedule.BackupSchedule, BACKUP_INTERVAL_HOURS > 0
        self.forget_signal = None  # storage.forget_signal.ForgetSignal: forgets between processes
        self._background: list[asyncio.Task[None]] = []
        self.monitor = None
        self._discord_task: asyncio.Task[None] | None = None

    async def open_storage(self) -> Storage:
        s = self.settings
        t0 = time.monotonic()
        # SQLAlchemy, alembic and redis take a few hundred ms to import: off the loop,
        # so a gateway connect running beside start-up is not held up by it.
        await _import_off_loop("storage.services", "storage.migrations")
        from storage import migrations
        from storage.services import Storage, wait_until_reachable

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

    async def run(self, *, on_started: Callable[..., None] | None = None) -> None:
        """Run until ``request_stop()``; raises ``ConfigError`` for missing settings or
        a token Discord rejects.  ``on_started`` is called once Discord accepted the
        login (with a note when Discord could not be reached yet)."""
        try:
            problems = self.settings.missing_for_discord()
            if problems:
                await self.open_storage()  # a first run still prepares the data directory
                raise ConfigError(problems, headline="Clara needs a little more configuration:")
            from .daemon import SHARD_STATUS_FILE
            from .discord_adapter.runner import DiscordRunner  # imports discord only when needed

            self._discord = DiscordRunner(
                self.settings, status_file=self.settings.clara_data_dir / SHARD_STATUS_FILE
            )
            self._discord_task = discord_task = asyncio.create_task(
                self._discord.run(), name="discord"
            )
            await self._start_core(discord_task)
            note = await self._wait_first_outcome(discord_task)
            if discord_task.done():
                discord_task.result()  # a fatal adapter error (e.g. a rejected token)
                return
            if on_started is not None:
                if note:
                    on_started(note)
                else:
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

    async def _start_core(self, discord_task: asyncio.Task[None]) -> None:
        """Storage, embedder and pipeline side by side with the Discord connect, then
        hand them to the Discord client."""
        t0 = time.monotonic()
        preload = asyncio.create_task(self._preload_pipeline(), name="preload-imports")
        try:
            embedder = await self._open_storage_and_embedder()
            await preload
        finally:
            if not preload.done():
                preload.cancel()
        log.debug("storage, embedder and imports ready after %.2fs", time.monotonic() - t0)
        if discord_task.done():
            return  # a fatal Discord error: run() reports it
        from storage.channel_summaries import ChannelSummaryStore
        from storage.preferences import Preferences
        from storage.sessions import SessionStore

        from .pipeline.summaries import SessionSummarizer

        assert self.storage is not None and self._discord is not None
        engine = self.storage.engine
        runner = self.build_pipeline()
        log.debug("pipeline built after %.2fs", time.monotonic() - t0)
        await self.attach_memory(runner, embedder=embedder)
        self.attach_mood(runner)
        self.start_ors(runner)
        self.start_backup_schedule()
        log.debug("memory attached after %.2fs", time.monotonic() - t0)
        # Finding a sandbox backend may ask dockerd or a remote service: in the
        # background, so the first answer does not wait; its tools are offered from
        # the first message after it is ready.
        self._background.append(asyncio.create_task(self.attach_sandbox(), name="sandbox"))
        # MCP servers start concurrently, each behind its own connect timeout; their
        # tools join the registry as each comes up (never blocking the first answer).
        self._background.append(asyncio.create_task(self.attach_mcp(), name="mcp"))
        sessions = SessionStore(engine)
        self.start_forget_signal()
        await self._start_monitor()
        # The start-up heap is complete: freeze it now, before the first message is
        # handled, so no later full GC pass stalls a conversation (see heap.py).
        settle_heap()
        self._discord.attach(
            runner,
            preferences=Preferences(engine),
            sessions=sessions,
            channel_summaries=ChannelSummaryStore(engine),
            memory=self.memory,
            engine=engine,
            user_data_stores=self.user_data_stores(),
        )
        assert self.llm is not None
        from storage.job_claims import JobClaims

        summarizer = SessionSummarizer(
            sessions,
            self.llm,
            idle_minutes=self.settings.session_idle_minutes,
            claims=JobClaims(engine),  # one pass per interval across Clara processes
        )
        self._background.append(
            asyncio.create_task(summarizer.run_forever(), name="session-summaries")
        )
        self.timings.details["pipeline_ready_s"] = time.monotonic() - t0
        log.info("ready to answer (start-up took %.2fs)", time.monotonic() - t0)

    async def _preload_pipeline(self) -> None:
        """Import what the pipeline needs, in a thread (beside storage and embedder)."""
        await _import_off_loop(
            "clara_core.llm.service",
            "clara_core.pipeline.turn",
            "clara_core.pipeline.memory",
            "clara_core.pipeline.summaries",
            "clara_core.discord_adapter.conversation",
            "clara_core.discord_adapter.commands",
            "clara_core.discord_adapter.memory_commands",
            "clara_core.discord_adapter.project_commands",
            "tools.builtin",
            "tools.files",
            "tools.web_search",
            "tools.github",
            "tools.sandbox_tools",
            "sandbox.manager",
            "clara_core.pipeline.mood",
            "storage.companion",
            "storage.companion_cache",
            "clara_core.cortex.manager",
            "clara_core.cortex.extraction",
            "clara_core.cortex.emotion",
            "clara_core.cortex.consolidation",
        )
        from .llm.registry import load_wires_for

        # The SDKs of the wires in use (~1 s of CPU each); LLMService then builds
        # their clients on the loop.
        await asyncio.to_thread(load_wires_for, self.settings)

    async def _open_storage_and_embedder(self) -> Any:
        """Storage and the local embedder load side by side; returns the embedder
        (None with Cortex off).  Loading the model reads ~23 MB and builds an ONNX
        session: a thread, so the event loop keeps serving the gateway."""
        embedder_task: asyncio.Task[Any] | None = None
        if self.settings.cortex_enabled:
            embedder_task = asyncio.create_task(self._load_embedder(), name="embedder-load")
        try:
            await self.open_storage()
        except BaseException:
            if embedder_task is not None:
                embedder_task.cancel()
                with contextlib.suppress(BaseException):
                    await embedder_task
            raise
        return await embedder_task if embedder_task is not None else None

    async def _load_embedder(self) -> Any:
        from .cortex.embedding import build_embedder

        t0 = time.monotonic()
        embedder = await asyncio.to_thread(build_embedder, self.settings)
        self.timings.details["embedder_load_s"] = time.monotonic() - t0
        log.debug("embedder loaded in %.2fs", self.timings.details["embedder_load_s"])
        return embedder

    async def _wait_first_outcome(self, discord_task: asyncio.Task[None]) -> str | None:
        """Until Discord accepted the login and the gateway session is up, or it could
        not be reached (the note says so), or it failed fatally, or stop was asked."""
        assert self._discord is not None
        outcome = self._discord.first_outcome
        if not outcome.done():
            stop_task = asyncio.create_task(self._stop.wait(), name="stop-wait-start")
            try:
                await asyncio.wait(
                    {outcome, discord_task, stop_task}, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                stop_task.cancel()
        if outcome.done() and not outcome.cancelled() and outcome.exception() is None:
            return outcome.result()
        return None

    def build_pipeline(self):
        """The conversation pipeline: LLM service, tools, prompt, turn runner."""
        from storage.local_files import LocalFileStore
        from tools.builtin import register_builtin_tools
        from tools.files import register_file_tools
        from tools.github import register_github_tools
        from tools.registry import ToolRegistry
        from tools.web_search import register_web_search

        from .llm.service import LLMService
        from .pipeline.prompt import PromptBuilder, clock_section
        from .pipeline.turn import TurnRunner

        s = self.settings
        self.llm = LLMService(s)
        self.tools = ToolRegistry()
        register_builtin_tools(self.tools, timezone=s.clara_timezone)
        self.file_store = LocalFileStore(
            s.clara_files_dir, max_size=s.clara_max_file_size, quota=s.clara_files_quota
        )
        register_file_tools(self.tools, self.file_store)  # sandbox transfers: attach_sandbox
        self.web_search = register_web_search(self.tools, s)
        self.github = register_github_tools(self.tools, s)
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

    async def open_memory(self, *, text_model=None, watch: bool = True, embedder=None):
        """Cortex on the running storage: embedder (``embedder`` when already loaded),
        emotion scorer, manager (no pipeline)."""
        from .cortex.emotion import build_emotion_scorer
        from .cortex.manager import MemoryManager
        from .cortex.retrieval import RetrievalConfig
        from .cortex.scoring import RetrievalWeights

        s = self.settings
        assert self.storage is not None
        if embedder is None:
            embedder = await self._load_embedder()
        self.memory = MemoryManager(
            redis=self.storage.redis,
            engine=self.storage.engine,
            embedder=embedder,
            scorer=build_emotion_scorer(s, text_model),
            outbox_dir=s.cortex_outbox_dir or (s.clara_data_dir / "cortex-outbox"),
            weights=RetrievalWeights.from_list(s.cortex_retrieval_weights),
            max_retrieved=s.cortex_max_retrieved,
            retrieval=RetrievalConfig.from_settings(s),
        )
        await self.memory.initialize(watch=watch)
        return self.memory

    async def attach_memory(self, runner, *, embedder=None) -> None:
        """Give the pipeline Cortex: a prompt section every turn, extraction after it."""
        s = self.settings
        if not s.cortex_enabled:
            log.info("Cortex memory is off (CORTEX_ENABLED=false)")
            return
        from .cortex.extraction import MemoryExtractor
        from .pipeline.memory import ServiceTextModel, memory_section, remember_after_turn

        assert self.llm is not None
        text_model = ServiceTextModel(self.llm)
        memory = await self.open_memory(text_model=text_model, embedder=embedder)
        self.prompt.add_contributor(memory_section(memory))
        if s.cortex_extraction_enabled:
            runner.add_after_turn(remember_after_turn(memory, MemoryExtractor(memory, text_model)))
        self._runner = runner
        if s.cortex_consolidation_enabled:
            self.consolidation = self.build_consolidation(text_model)
            if s.cortex_worker_queue:
                from .worker import WorkQueue

                assert self.storage is not None
                self.work_queue = await WorkQueue.open(self.storage.redis_url)
                self.consolidation.queue = self.work_queue
                log.info("consolidation goes to the worker processes (CORTEX_WORKER_QUEUE)")
            self.consolidation.start()
        log.info("Cortex memory ready (embedder %s)", memory.embedder.model_id)

    def attach_mood(self, runner) -> None:
        """Clara's mood per channel: a prompt section before each turn, an update after."""
        from storage.companion import CompanionStore
        from storage.companion_cache import MoodCache

        from .pipeline.memory import ServiceTextModel
        from .pipeline.mood import install_mood

        assert self.storage is not None and self.llm is not None
        self.mood = install_mood(
            runner,
            self.prompt,
            CompanionStore(self.storage.engine),
            self.settings,
            tone_model=ServiceTextModel(self.llm),
            # Redis is the shared cache (a second process sees a change at once); the
            # in-process LRU is only the fallback while Redis is down.
            cache=MoodCache(self.storage.redis),
        )
        self._runner = runner  # close() drains the after-turn hooks, Cortex on or off

    def start_ors(self, runner) -> None:
        """Proactive messages (ORS_ENABLED): every turn feeds ORS; a pass every minute."""
        from storage.proactive import ProactiveStore

        from .discord_adapter.proactive_sender import DiscordProactiveSender
        from .pipeline.memory import ServiceTextModel
        from .pipeline.proactive import cortex_memories, install_ors

        assert self.storage is not None and self.llm is not None and self._discord is not None
        discord_runner = self._discord
        self.ors = install_ors(
            runner,
            ProactiveStore(self.storage.engine),
            self.settings,
            ServiceTextModel(self.llm),
            # The runner replaces its client on reconnects: looked up at send time.
            DiscordProactiveSender(lambda: discord_runner.client),
            memories=cortex_memories(self.memory) if self.memory is not None else None,
        )
        if self.ors is not None:
            self.ors.start(timedelta(seconds=self.settings.ors_pass_interval_seconds))

    def start_backup_schedule(self) -> None:
        """With BACKUP_INTERVAL_HOURS > 0, the bot backs itself up (backup/schedule.py)."""
        if self.settings.backup_interval_hours <= 0:
            return
        from .backup.cli import make_backups
        from .backup.schedule import BackupSchedule

        assert self.storage is not None
        self.backup_schedule = BackupSchedule(
            make_backups(self.settings),
            self.storage.database_url,
            self.storage.engine,
            interval_hours=self.settings.backup_interval_hours,
        )
        self.backup_schedule.start()

    async def attach_sandbox(self) -> None:
        """The code sandbox and its tools, when a backend can run here (else none are
        offered: the model is never given a tool that cannot work)."""
        from sandbox.manager import build_sandbox_manager
        from tools.files import register_sandbox_transfer_tools
        from tools.sandbox_tools import register_sandbox_tools

        s = self.settings
        try:
            self.sandbox = await build_sandbox_manager(s)
        except Exception:
            log.exception("code sandbox not started")
            return
        if self.sandbox is None:
            return
        register_sandbox_tools(
            self.tools,
            self.sandbox,
            exec_timeout=s.sandbox_exec_timeout,
            pip_index_url=s.sandbox_pip_index_url,
            pip_cache_dir=s.sandbox_dir / "pip",
        )
        if self.file_store is not None:
            register_sandbox_transfer_tools(self.tools, self.file_store, self.sandbox)

    async def attach_mcp(self) -> None:
        """MCP plug-in servers: the mcp_* management tools, then the enabled servers."""
        await _import_off_loop("clara_core.mcp", "tools.mcp_tools")  # the SDK: ~0.6 s of CPU
        from .mcp import build_mcp

        assert self.storage is not None
        self.mcp = build_mcp(self.tools, self.storage.engine, self.settings)
        try:
            await self.mcp.start()
        except Exception:
            log.exception("MCP servers not started")

    def start_forget_signal(self) -> None:
        """``/clara forget`` in any Clara process on this Redis reaches this one."""
        from storage.forget_signal import ForgetSignal

        assert self.storage is not None
        self.forget_signal = ForgetSignal(self.storage.redis, self.forgotten_elsewhere)
        self.forget_signal.start()

    async def forgotten_elsewhere(self, user_id: str) -> None:
        """A user forgotten in another process: what this process holds of them on its
        own (queued writes, caches, its data folder's files) goes too.  The shared
        tables were cleared by that process; clearing them again is harmless."""
        from .privacy import forget_everything
        from .user_data import PEERS

        client = self._discord.client if self._discord is not None else None
        conversation = getattr(client, "conversation", None)
        stores = dict(getattr(client, "user_data_stores", None) or self.user_data_stores())
        stores.pop(PEERS, None)  # never echoed back
        await forget_everything(
            user_id,
            memory=self.memory,
            engine=None,
            files=getattr(client, "files", None),
            queued_history=getattr(conversation, "history", None),
            others=stores,
        )

    def user_data_stores(self) -> dict[str, Any]:
        """Further stores ``/clara forget`` clears, by the label its report shows
        (built in clara_core/user_data.py, shared with ``cortex clear``)."""
        from .user_data import user_data_stores

        return user_data_stores(
            engine=lambda: self.storage.engine if self.storage is not None else None,
            redis=lambda: self.storage.redis if self.storage is not None else None,
            sandbox=lambda: self.sandbox,
            mood=lambda: self.mood,
            peers=lambda: self.forget_signal,
        )

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
            problems = self.settings.missing_llm_keys()
            if problems:
                await self.open_storage()  # a first run still prepares the data directory
                raise ConfigError(problems, headline="The console needs an LLM key:")
            embedder = await self._open_storage_and_embedder()
            runner = self.build_pipeline()
            await self.attach_memory(runner, embedder=embedder)
            self.attach_mood(runner)
            await self.attach_sandbox()
            settle_heap()
            return await ConsoleChat(runner, user_id=self.settings.user_id).run()
        finally:
            await self.close()

    async def _start_monitor(self) -> None:
        s = self.settings
        if not s.discord_monitor_enabled:
            return
        # jinja2 and the page's module: imported in a thread, not on the loop.
        await _import_off_loop("clara_core.dashboard.web")
        from .monitor import ActionRefused, Monitor

        discord_runner = self._discord

        def state() -> dict:
            client = discord_runner.client if discord_runner is not None else None
            connected = client is not None and client.is_ready() and not client.is_closed()
            out = {"discord_connected": connected, "provider": s.llm_provider}
            if connected:
                out["servers"] = len(client.guilds)
                # Per shard; a shard's latency is unknown (None) until its first heartbeat
                # is acknowledged (client.latency is inf until then: round() would raise).
                shards = client.shard_status()
                out["shards"] = shards
                known = [sh["latency_ms"] for sh in shards if sh["latency_ms"] is not None]
                if known:
                    out["latency_ms"] = round(sum(known) / len(known))
            if client is not None and client.conversation is not None:
                out["busy_channels"] = client.conversation.queue.snapshot()
                out["in_flight"] = client.conversation.in_flight  # replies streaming now
            if self.ors is not None:
                out["ors"] = self.ors.stats()
            # The dashboard's cards (all in-memory reads, no I/O: this runs every tick).
            if self.llm is not None:
                out["model"] = default_model
            if self.sandbox is not None:
                out["sandbox"] = self.sandbox.status()
            if self.mcp is not None:
                out["mcp"] = self.mcp.status()
            if self.memory is not None:
                out["cortex"] = {
                    "outbox_pending": self.memory.outbox.pending,
                    "postgresql": "up" if self.memory.pg_health.up else "down",
                    "redis": "up" if self.memory.redis_health.up else "down",
                }
            return out

        async def probe(channel_ids: list[int]) -> dict:
            # The mood of the channels that spoke lately (a Redis read each, at most 20).
            if self.mood is None:
                return {}
            moods = {}
            for cid in channel_ids:
                state = await self.mood.current(f"channel:{cid}")
                moods[str(cid)] = {k: round(v, 3) for k, v in state.as_dict().items()}
            return {"mood": moods}

        # Operator actions (POST /actions/<name>, guarded by the monitor).
        consolidating: set[asyncio.Task[None]] = set()

        async def restart_mcp(params: dict[str, str]) -> str:
            name = params.get("server", "")
            if self.mcp is None:
                raise ActionRefused("MCP servers are not running in this Clara.")
            runner = await self.mcp.restart(name)
            if runner is None:
                known = ", ".join(r["name"] for r in self.mcp.status()) or "none installed"
                raise ActionRefused(f"No MCP server named '{name}' (servers: {known}).", 404)
            st = runner.status()
            err = f"; last error: {st['last_error']}" if st["last_error"] else ""
            return f"{name} restarted, now {st['state']}{err}"

        async def drain_outbox(params: dict[str, str]) -> str:
            if self.memory is None:
                raise ActionRefused("Cortex memory is not running in this Clara.")
            applied = await self.memory.flush_outbox()
            left = self.memory.outbox.pending
            if left and not self.memory.pg_health.up:
                return f"{applied} write(s) stored; {left} still wait: PostgreSQL is down"
            return f"{applied} write(s) stored, {left} pending"

        async def consolidate(params: dict[str, str]) -> str:
            if self.consolidation is None:
                raise ActionRefused(
                    "Consolidation is off: set CORTEX_CONSOLIDATION_ENABLED=true to use it."
                )
            if any(not t.done() for t in consolidating):
                raise ActionRefused("A consolidation started here is still running.")

            async def sweep() -> None:
                try:
                    await self.consolidation.run_all()
                except Exception:  # logged here: nobody awaits this task
                    log.exception("consolidation started from the monitor failed")

            # In the background: a sweep can take minutes; its result is in the log
            # and in `cortex stats`.
            task = asyncio.create_task(sweep(), name="monitor-consolidation")
            consolidating.add(task)
            task.add_done_callback(consolidating.discard)
            return "consolidation started (its summary goes to the log)"

        default_model = ""
        if self.llm is not None:
            try:
                default_model = self.llm.routes(None, with_tools=False)[0].model
            except Exception as exc:  # a card less, not a monitor less
                log.debug("monitor: no default model to show (%s)", exc)

        async def storage_check() -> None:
            from storage.services import wait_until_reachable

            if self.storage is None:
                raise RuntimeError("storage is not open")
            # One attempt (timeout 0): raises StorageError naming the server that is down.
            await wait_until_reachable(self.storage, timeout=0)

        self.monitor = Monitor(
            host=s.discord_monitor_host,
            port=s.discord_monitor_port,
            state=state,
            storage_check=storage_check,
            probe=probe,
            token=s.discord_monitor_token.get_secret_value() if s.discord_monitor_token else None,
            show_content=s.clara_monitor_show_content,
            refresh_s=s.discord_monitor_refresh_seconds,
            actions={
                "mcp-restart": restart_mcp,
                "drain-outbox": drain_outbox,
                "consolidate": consolidate,
            },
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
        if self.mcp is not None:
            mcp, self.mcp = self.mcp, None
            await mcp.aclose()  # before storage: it records each server's last state
        if self.ors is not None:
            ors, self.ors = self.ors, None
            await ors.stop()
        if self.forget_signal is not None:
            signal, self.forget_signal = self.forget_signal, None
            await signal.close()
        if self._discord is not None:
            await self._discord.close()
        if self._discord_task is not None:
            task, self._discord_task = self._discord_task, None
            if not task.done():
                task.cancel()
            with contextlib.suppress(BaseException):
                await task
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.drain()  # memory extraction of the last turns
        if self.mood is not None:
            mood, self.mood = self.mood, None
            await mood.close()  # the last changes reach PostgreSQL; the cache's probe stops
        if self.sandbox is not None:
            sandbox, self.sandbox = self.sandbox, None
            await sandbox.close()
        if self.web_search is not None:
            search, self.web_search = self.web_search, None
            await search.aclose()
        if self.github is not None:
            github, self.github = self.github, None
            await github.aclose()
        if self.consolidation is not None:
            consolidation, self.consolidation = self.consolidation, None
            await consolidation.stop()
        if self.work_queue is not None:
            queue, self.work_queue = self.work_queue, None
            await queue.close()
        if self.backup_schedule is not None:
            schedule, self.backup_schedule = self.backup_schedule, None
            await schedule.stop()  # before storage closes: pg_dump reads through it
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


async def _import_off_loop(*modules: str) -> None:
    """Import ``modules`` in a worker thread (imports are CPU work that would stall
    the event loop); a no-op for modules already imported."""
    missing = [m for m in modules if m not in sys.modules]
    if missing:
        await asyncio.to_thread(lambda: [importlib.import_module(m) for m in missing])
