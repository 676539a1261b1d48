"""MCP server supervision: one long-lived owner task per server.

Why one task per server: the SDK's client enters anyio cancel scopes and task
groups when it connects, and closing it from any other task fails with
"Attempted to exit cancel scope in a different task".  So each server's
``ServerRunner._own`` task connects, waits, and disconnects; everyone else only
*calls* through the connected client (allowed from any task) and asks the owner
to stop or reconnect through events.

Failure handling, each measured against mcp 2.3:
- a server that never answers initialize hangs far past the SDK's read timeout,
  so the connect (spawn + handshake + tools/list) is bounded with
  ``asyncio.timeout``; the cancellation can surface wrapped in an
  ``ExceptionGroup``, which is unwrapped here;
- a crashed server only shows as "Connection closed" on the next call, with no
  respawn: a failed call or a failed health ping marks the connection dead and
  the owner reconnects with exponential backoff; after ``max_failures``
  consecutive failures the circuit opens (state ``broken``) until an admin runs
  ``mcp_restart``.  A server that crashes again soon after starting counts as a
  failure too, so a crash loop cannot become a restart storm.
Meanwhile the server's tools stay registered and answer with a plain sentence
saying the server is restarting (or broken) and what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import httpx2
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CONNECTION_CLOSED, CallToolResult
from mcp_types import Tool as McpTool

from tools.registry import ToolError

from .config import ServerConfig
from .docker import DockerPolicy, remove_containers
from .secrets import KEY_FILE_NAME, SecretBox, SecretsError, parse_keys
from .smithery import DEFAULT_API_URL, auth_headers

if TYPE_CHECKING:
    from clara_core.config import Settings
    from tools.registry import ToolRegistry

log = logging.getLogger(__name__)

#: Pages of tools/list we follow: a server whose cursor never ends must not hang the start.
_MAX_TOOL_PAGES = 50


class ServerState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"  # waiting out the backoff, or reconnecting
    BROKEN = "broken"  # circuit open: no more tries until mcp_restart
    STOPPED = "stopped"


class McpUnavailable(ToolError):
    """The server cannot take calls right now; the message says why and what to do."""


def describe_error(exc: BaseException) -> str:
    """One line for an operator, unwrapping the ExceptionGroups anyio likes to raise."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, MCPError):
        return exc.message
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _only_cancelled(exc: BaseException) -> bool:
    if isinstance(exc, asyncio.CancelledError):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_cancelled(e) for e in exc.exceptions)
    return False


def _is_connection_lost(exc: BaseException) -> bool:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, MCPError):
        return exc.code == CONNECTION_CLOSED
    return isinstance(exc, (OSError, EOFError, httpx2.TransportError))


class ServerRunner:
    """One server: its owner task, its state, and calls into it."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        connect_timeout: float,
        call_timeout: float,
        log_dir: Path,
        on_tools: Callable[[ServerRunner], None],
        on_error: Callable[[ServerRunner], Awaitable[None]] | None = None,
        extra_headers: dict[str, str] | None = None,
        health_interval: float = 15.0,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        max_failures: int = 5,
        stable_after: float = 60.0,
    ) -> None:
        self.config = config
        self.connect_timeout = connect_timeout
        self.call_timeout = call_timeout
        self.health_interval = health_interval
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_failures = max_failures
        self.stable_after = stable_after
        self.log_path = log_dir / f"{config.name}.log"
        self._on_tools = on_tools
        self._on_error = on_error
        # Headers Clara adds itself at connect time (the Smithery key): never stored.
        self._extra_headers = dict(extra_headers or {})

        self.state = ServerState.STOPPED
        self.tools: list[McpTool] = []
        self.last_error: str | None = None
        self.failures = 0  # consecutive failed starts or early crashes
        self.restarts = 0
        self.retry_at: float | None = None  # monotonic time of the next try
        self.refused_tools: list[str] = []  # name collisions, kept for mcp_status

        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._dead = False
        self._wake = asyncio.Event()
        self.settled = asyncio.Event()  # first start attempt over (running or failed)

    @property
    def name(self) -> str:
        return self.config.name

    # -- lifecycle (called from any task) -------------------------------------------------

    def start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        if self.config.config_error:
            # Starting it without its secrets would only fail in a less clear way.
            self.state = ServerState.BROKEN
            self.last_error = self.config.config_error
            self.settled.set()
            return
        self._stopping = False
        self._dead = False
        self.failures = 0
        self.settled.clear()
        self._wake.clear()
        self.state = ServerState.STARTING
        self._task = asyncio.create_task(self._own(), name=f"mcp-server:{self.name}")

    async def stop(self, timeout: float = 15.0) -> None:
        """Ask the owner task to disconnect, and wait for it (it kills the process)."""
        task = self._task
        self._stopping = True
        self._wake.set()
        if task is None:
            self.state = ServerState.STOPPED
            return
        if self.state is not ServerState.RUNNING and not task.done():
            # Mid-connect (a server may hang there for the whole connect timeout): the
            # owner is cancelled, which is clean, since it unwinds its own scopes.
            task.cancel()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(task)
        except TimeoutError:
            # Cancelling the owner is still clean: it unwinds its own scopes.
            log.warning("MCP server %s did not stop within %.0fs; cancelling", self.name, timeout)
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self._task = None
        self.state = ServerState.STOPPED
        await self._remove_containers()

    def mark_dead(self, reason: str) -> None:
        if self.state is ServerState.RUNNING and not self._dead:
            log.warning("MCP server %s lost: %s", self.name, reason)
            self.last_error = reason
            self._dead = True
            # At once, not when the owner task gets round to it: calls must not use it.
            self.state = ServerState.RESTARTING
            self._wake.set()

    # -- calls ----------------------------------------------------------------------------

    def unavailable_reason(self) -> str | None:
        name = self.name
        if self.state is ServerState.RUNNING and self._client is not None and not self._dead:
            return None
        if self.config.config_error:
            return f"The MCP server '{name}' cannot start: {self.config.config_error}"
        if self.state is ServerState.BROKEN:
            return (
                f"The MCP server '{name}' is not working (it failed {self.failures} times in a "
                f"row; last error: {self.last_error}). An admin can run mcp_restart for "
                f"'{name}' after fixing it; until then its tools cannot be used."
            )
        if self.state is ServerState.STOPPED:
            return f"The MCP server '{name}' is stopped (disabled or uninstalled)."
        wait = ""
        if self.retry_at is not None:
            wait = f" in about {max(0.0, self.retry_at - time.monotonic()):.0f}s"
        return (
            f"The MCP server '{name}' is restarting after a failure ({self.last_error}); "
            f"it will be tried again{wait}. Try this tool again shortly."
        )

    async def call(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        reason = self.unavailable_reason()
        client = self._client
        if reason is not None or client is None:
            raise McpUnavailable(reason or f"The MCP server '{self.name}' is not connected.")
        try:
            async with asyncio.timeout(self.call_timeout):
                return await client.call_tool(tool, arguments)
        except TimeoutError:
            raise ToolError(
                f"{self.name}__{tool} took longer than {self.call_timeout:.0f}s and was stopped."
            ) from None
        except Exception as exc:
            if _is_connection_lost(exc):
                self.mark_dead(f"connection lost during {tool}: {describe_error(exc)}")
                raise McpUnavailable(
                    f"The MCP server '{self.name}' stopped (crashed or exited) during this call; "
                    "it is being restarted. Try again in a little while."
                ) from None
            raise ToolError(
                f"the MCP server '{self.name}' refused the call: {describe_error(exc)}"
            ) from None

    # -- the owner task ---------------------------------------------------------------------

    async def _own(self) -> None:
        try:
            while not self._stopping:
                t0 = time.monotonic()
                try:
                    await self._session_once()
                except Exception as exc:
                    self.last_error = self.last_error if self._dead else describe_error(exc)
                    log.warning("MCP server %s failed: %s", self.name, self.last_error)
                except BaseException as exc:
                    # A cancel that is ours (stop() gave up waiting) ends the task; an
                    # ExceptionGroup of stray cancellations from the transport does not.
                    if isinstance(exc, asyncio.CancelledError) or not _only_cancelled(exc):
                        raise
                    self.last_error = "the connection was cancelled"
                self._client = None
                if self._stopping:
                    break
                up = time.monotonic() - t0
                # An early crash counts like a failed start: no restart storms.
                self.failures = self.failures + 1 if up < self.stable_after else 1
                # Recorded before ``settled``: whoever waited for the first try (start-up,
                # mcp_install) then finds the error in the table too, not a moment later.
                await self._report_error()
                self.settled.set()
                if self.failures >= self.max_failures:
                    self.state = ServerState.BROKEN
                    self.retry_at = None
                    log.error(
                        "MCP server %s: %d failures in a row, giving up until mcp_restart (%s)",
                        self.name,
                        self.failures,
                        self.last_error,
                    )
                    break
                delay = min(self.backoff_max, self.backoff_base * 2 ** (self.failures - 1))
                self.state = ServerState.RESTARTING
                self.retry_at = time.monotonic() + delay
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()  # stop() cuts the wait short
                self.retry_at = None
                self.restarts += 1
        finally:
            self._client = None
            self.settled.set()
            if self._stopping:
                self.state = ServerState.STOPPED

    async def _report_error(self) -> None:
        if self._on_error is not None:
            try:
                await self._on_error(self)
            except Exception:
                log.exception("recording the error of MCP server %s failed", self.name)

    async def _remove_containers(self) -> None:
        # A docker client killed mid-session leaves its container running (and its
        # stdio with nobody): what a previous session left goes before a new one starts.
        if self.config.source == "docker":
            n = await remove_containers(self.name)
            if n:
                log.info("MCP server %s: removed %d leftover container(s)", self.name, n)

    async def _session_once(self) -> None:
        self._dead = False
        await self._remove_containers()
        async with AsyncExitStack() as stack:
            errlog = await self._open_errlog(stack)
            try:
                async with asyncio.timeout(self.connect_timeout) as deadline:
                    client = await stack.enter_async_context(self._make_client(errlog, stack))
                    tools = await self._list_tools(client)
            except BaseException as exc:
                # The timeout's cancellation may come back wrapped in an ExceptionGroup
                # (anyio task groups), which asyncio.timeout does not turn into TimeoutError.
                if deadline.expired() and (isinstance(exc, TimeoutError) or _only_cancelled(exc)):
                    raise TimeoutError(
                        f"did not start and answer within {self.connect_timeout:.0f}s"
                        + await self._stderr_tail()
                    ) from None
                if isinstance(exc, Exception) or (
                    isinstance(exc, BaseExceptionGroup) and not _only_cancelled(exc)
                ):
                    raise RuntimeError(describe_error(exc) + await self._stderr_tail()) from None
                raise
            self._client = client
            self.tools = tools
            self.state = ServerState.RUNNING
            self.last_error = None
            log.info("MCP server %s running with %d tools", self.name, len(tools))
            self._on_tools(self)
            self.settled.set()
            await self._watch(client)
            self._client = None
        # Leaving the stack here, in the owner task, closes the session and kills the process.

    async def _watch(self, client: Client) -> None:
        """Wait for stop or death; ping now and then so an idle crash is noticed too."""
        while not self._stopping and not self._dead:
            self._wake.clear()
            waiter = asyncio.ensure_future(self._wake.wait())
            # asyncio.wait, not a timeout: cancelling this task inside the client's
            # cancel scopes is exactly what must not happen here.
            done, _ = await asyncio.wait({waiter}, timeout=self.health_interval)
            if not done:
                waiter.cancel()
                if self._stopping or self._dead:
                    break
                try:
                    # The session's ping: Client.send_ping warns that 2026-07-28 dropped
                    # ping, but in the legacy (initialize) mode we connect with it is the
                    # protocol's own liveness check.
                    ping = asyncio.ensure_future(client.session.send_ping())
                    done, _ = await asyncio.wait({ping}, timeout=self.connect_timeout)
                    if not done:
                        ping.cancel()
                        raise TimeoutError("no answer to ping")
                    ping.result()
                except Exception as exc:
                    self.mark_dead(f"stopped answering: {describe_error(exc)}")
        if self._dead:
            raise RuntimeError(self.last_error or "connection lost")

    def _make_client(self, errlog: IO[str] | None, stack: AsyncExitStack) -> Client:
        cfg = self.config
        if cfg.transport == "http":
            assert cfg.url is not None
            http = httpx2.AsyncClient(
                headers={**cfg.headers, **self._extra_headers},
                timeout=httpx2.Timeout(30.0, read=max(300.0, self.call_timeout)),
            )
            stack.push_async_callback(http.aclose)
            return Client(streamable_http_client(cfg.url, http_client=http), mode="legacy")
        assert cfg.command is not None
        # stdio_client merges this over PATH/HOME/USER/SHELL/TERM/LOGNAME only: the
        # server never sees Clara's tokens unless its configuration names them.
        params = StdioServerParameters(
            command=cfg.command, args=list(cfg.args), env=dict(cfg.env), cwd=cfg.cwd
        )
        return Client(_StdioWithLog(params, errlog), mode="legacy")

    async def _list_tools(self, client: Client) -> list[McpTool]:
        tools: list[McpTool] = []
        cursor: str | None = None
        for _ in range(_MAX_TOOL_PAGES):
            page = await client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        return tools

    async def _open_errlog(self, stack: AsyncExitStack) -> IO[str] | None:
        if self.config.transport != "stdio":
            return None

        def _open() -> IO[str]:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            return self.log_path.open("a", encoding="utf-8")

        fh = await asyncio.to_thread(_open)
        stack.callback(fh.close)
        return fh

    async def _stderr_tail(self, limit: int = 400) -> str:
        if self.config.transport != "stdio":
            return ""

        def _tail() -> str:
            try:
                with self.log_path.open("rb") as fh:
                    fh.seek(0, os.SEEK_END)
                    fh.seek(max(0, fh.tell() - limit))
                    return fh.read().decode("utf-8", "replace").strip()
            except OSError:
                return ""

        tail = await asyncio.to_thread(_tail)
        return f" (its stderr ends: {tail[-limit:]})" if tail else ""

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state.value,
            "transport": self.config.transport,
            "source": self.config.source,
            "package": self.config.package,
            "enabled": self.config.enabled,
            "tools": [t.name for t in self.tools if self.config.wants_tool(t.name)],
            "refused_tools": list(self.refused_tools),
            "failures": self.failures,
            "restarts": self.restarts,
            "last_error": self.last_error,
        }


class _StdioWithLog:
    """stdio_client with the server's stderr going to its own log file, not Clara's."""

    def __init__(self, params: StdioServerParameters, errlog: IO[str] | None) -> None:
        from mcp.client.stdio import stdio_client

        self._cm = stdio_client(params, errlog=errlog) if errlog else stdio_client(params)

    async def __aenter__(self) -> Any:
        return await self._cm.__aenter__()

    async def __aexit__(self, *exc: Any) -> bool | None:
        return await self._cm.__aexit__(*exc)


class Supervisor:
    """All configured servers; the bridge keeps the registry in step with their tools."""

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        servers_dir: Path,
        connect_timeout: float = 30.0,
        call_timeout: float = 60.0,
        install_timeout: float = 300.0,
        store: Any | None = None,
        secrets: SecretBox | None = None,
        docker: DockerPolicy | None = None,
        smithery_api_url: str = DEFAULT_API_URL,
        smithery_api_key: str | None = None,
        **runner_options: Any,
    ) -> None:
        from .bridge import ToolBridge

        self.registry = registry
        self.servers_dir = servers_dir
        self.connect_timeout = connect_timeout
        self.call_timeout = call_timeout
        self.install_timeout = install_timeout
        self.store = store  # storage.mcp_servers.McpServerStore, or None (tests, console)
        # Encrypts env/header values on their way into the store; None: stored as given
        # (only for a store-less supervisor or tests that say so).
        self.secrets = secrets
        self.docker = docker or DockerPolicy()  # how mcp_install runs a Docker image
        self.smithery_api_url = smithery_api_url
        self.smithery_api_key = smithery_api_key
        self.runner_options = runner_options
        self.bridge = ToolBridge(registry, self)
        self.runners: dict[str, ServerRunner] = {}

    def _runner(self, config: ServerConfig) -> ServerRunner:
        if config.source == "smithery" and not self.smithery_api_key and not config.config_error:
            # Without the key Smithery's gateway only answers 401: say what is missing.
            config.config_error = (
                "SMITHERY_API_KEY is not set: Smithery-hosted servers are reached with it; "
                "set it and restart Clara"
            )
        return ServerRunner(
            config,
            connect_timeout=self.connect_timeout,
            call_timeout=self.call_timeout,
            log_dir=self.servers_dir / "logs",
            on_tools=self.bridge.sync,
            on_error=self._record_error,
            extra_headers=(
                auth_headers(self.smithery_api_key)
                if config.source == "smithery" and self.smithery_api_key
                else None
            ),
            **self.runner_options,
        )

    async def _record_error(self, runner: ServerRunner) -> None:
        if self.store is not None:
            await self.store.update(runner.name, last_error=runner.last_error)

    async def load(self) -> list[ServerConfig]:
        if self.store is None:
            return []
        return [await self._from_row(r) for r in await self.store.list()]

    async def _from_row(self, row: dict[str, Any]) -> ServerConfig:
        """A stored row with its secrets decrypted; plain or old-key ones rewritten.

        A row whose secrets cannot be decrypted still becomes a config (so mcp_list
        shows it and mcp_uninstall can remove it) that refuses to start and says why.
        """
        if self.secrets is None:
            return ServerConfig.from_row(row)
        name = row["name"]
        try:
            env, env_stale = await self.secrets.decrypt(name, "env", row.get("env") or {})
            headers, hdr_stale = await self.secrets.decrypt(
                name, "headers", row.get("headers") or {}
            )
        except SecretsError as exc:
            log.error("%s", exc)  # names the server and the variable, never a value
            return ServerConfig.from_row(
                {**row, "env": {}, "headers": {}, "config_error": str(exc)}
            )
        config = ServerConfig.from_row({**row, "env": env, "headers": headers})
        if env_stale or hdr_stale:
            try:
                await self.store.update(  # type: ignore[union-attr]
                    name,
                    env=await self.secrets.encrypt(env),
                    headers=await self.secrets.encrypt(headers),
                )
            except Exception as exc:  # the server can still run; the next start retries
                log.warning(
                    "MCP server %s: could not rewrite its env/header values encrypted (%s)",
                    name,
                    type(exc).__name__,
                )
            else:
                log.info("MCP server %s: its env/header values are now stored encrypted", name)
        return config

    async def save_config(self, config: ServerConfig) -> None:
        """Store (insert or replace) a configuration, its secrets encrypted."""
        if self.store is None:
            return
        row = config.to_row()
        if self.secrets is not None:
            row["env"] = await self.secrets.encrypt(config.env)
            row["headers"] = await self.secrets.encrypt(config.headers)
        await self.store.save(config.name, **row)

    async def start(self, configs: list[ServerConfig] | None = None) -> None:
        """Start every enabled server concurrently; return once each is up or has failed once."""
        configs = await self.load() if configs is None else configs
        for cfg in configs:
            runner = self._runner(cfg)
            self.runners[cfg.name] = runner
            if cfg.enabled:
                runner.start()
        await self._settle([r for r in self.runners.values() if r.config.enabled])

    async def _settle(self, runners: list[ServerRunner]) -> None:
        if not runners:
            return
        # A hung server is cut by its own connect timeout; the margin covers process teardown.
        waits = [asyncio.ensure_future(r.settled.wait()) for r in runners]
        _, pending = await asyncio.wait(waits, timeout=self.connect_timeout + 10)
        for w in pending:
            w.cancel()

    async def add(self, config: ServerConfig) -> ServerRunner:
        """Start (or restart with a new configuration) one server and wait for its first try."""
        old = self.runners.pop(config.name, None)
        if old is not None:
            await old.stop()
            self.bridge.drop(config.name)
        runner = self._runner(config)
        self.runners[config.name] = runner
        if config.enabled:
            runner.start()
            await self._settle([runner])
        return runner

    async def remove(self, name: str) -> bool:
        runner = self.runners.pop(name, None)
        if runner is None:
            return False
        await runner.stop()
        self.bridge.drop(name)
        return True

    async def set_enabled(self, name: str, enabled: bool) -> ServerRunner | None:
        runner = self.runners.get(name)
        if runner is None:
            return None
        runner.config.enabled = enabled
        if enabled:
            runner.start()
            await self._settle([runner])
        else:
            await runner.stop()
        return runner

    async def restart(self, name: str) -> ServerRunner | None:
        runner = self.runners.get(name)
        if runner is None:
            return None
        await runner.stop()
        runner.config.enabled = True
        runner.start()
        await self._settle([runner])
        return runner

    async def call(self, server: str, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        runner = self.runners.get(server)
        if runner is None:
            raise McpUnavailable(f"The MCP server '{server}' is not installed any more.")
        return await runner.call(tool, arguments)

    def status(self) -> list[dict[str, Any]]:
        return [r.status() for r in sorted(self.runners.values(), key=lambda r: r.name)]

    async def aclose(self) -> None:
        """Stop every server concurrently (each owner task closes its own client)."""
        runners = list(self.runners.values())
        await asyncio.gather(*(r.stop() for r in runners), return_exceptions=True)
        for r in runners:
            self.bridge.drop(r.name)


def build_mcp(registry: ToolRegistry, storage_engine: Any, settings: Settings) -> Supervisor:
    """The supervisor with its store, and the mcp_* tools registered; nothing started yet.

    ``storage_engine`` is storage's AsyncEngine (None: no database, nothing persisted).
    Split from ``start_mcp`` so the composition root can hold the supervisor (to close it)
    before starting the servers in the background.
    """
    from storage.mcp_servers import McpServerStore
    from tools.mcp_tools import register_mcp_tools

    store = McpServerStore(storage_engine) if storage_engine is not None else None
    supervisor = Supervisor(
        registry,
        servers_dir=Path(settings.mcp_servers_dir).absolute(),
        connect_timeout=settings.mcp_connect_timeout,
        call_timeout=settings.mcp_call_timeout,
        install_timeout=settings.mcp_install_timeout,
        store=store,
        secrets=secret_box(settings),
        docker=DockerPolicy(
            network=settings.mcp_docker_network,
            memory=settings.mcp_docker_memory,
            cpus=settings.mcp_docker_cpus,
        ),
        smithery_api_url=settings.smithery_api_url,
        smithery_api_key=(
            settings.smithery_api_key.get_secret_value().strip() or None
            if settings.smithery_api_key is not None
            else None
        ),
    )
    register_mcp_tools(registry, supervisor)
    return supervisor


def secret_box(settings: Settings) -> SecretBox:
    """CLARA_SECRET_KEY's keys, or (read lazily, off the loop) CLARA_DATA_DIR/secret.key."""
    key = settings.clara_secret_key
    if key is not None:
        return SecretBox(parse_keys(key.get_secret_value()))
    return SecretBox(key_file=Path(settings.clara_data_dir).absolute() / KEY_FILE_NAME)


async def start_mcp(registry: ToolRegistry, storage_engine: Any, settings: Settings) -> Supervisor:
    """Composition-root entry: offer the mcp_* tools and start the enabled servers
    (concurrently; returns once each is running or has failed once)."""
    supervisor = build_mcp(registry, storage_engine, settings)
    t0 = time.monotonic()
    await supervisor.start()
    log.info(
        "MCP: %d servers configured, started in %.2fs",
        len(supervisor.runners),
        time.monotonic() - t0,
    )
    return supervisor
