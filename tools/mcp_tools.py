"""MCP management tools: mcp_install, mcp_uninstall, mcp_list, mcp_enable, mcp_disable,
mcp_restart, mcp_status.

All are ``admin_only``: the registry hides them from non-admins and refuses a
non-admin's direct call (Discord facts decide who is admin, never the prompt).
``mcp_install`` gets its own, longer timeout: a small npm or PyPI server takes
tens of seconds to install.  A newly installed server's tools are registered
before the tool returns, so they are offered from the next message.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from clara_core.mcp.config import SOURCES, McpConfigError, validate_server_name
from clara_core.mcp.installer import Installer

from .registry import PROGRESS_KEY, Tool, ToolContext, ToolError, ToolRegistry

if TYPE_CHECKING:
    from clara_core.mcp.supervisor import ServerRunner, Supervisor

log = logging.getLogger(__name__)

_NAME_PARAM = {
    "type": "object",
    "properties": {"name": {"type": "string", "description": "The MCP server's name."}},
    "required": ["name"],
    "additionalProperties": False,
}


def _runner_line(status: dict[str, Any]) -> str:
    tools = status["tools"]
    line = f"- {status['name']} ({status['source']}: {status['package']}): {status['state']}"
    if not status["enabled"]:
        line += ", disabled"
    if tools:
        shown = ", ".join(f"{status['name']}__{t}" for t in tools[:30])
        more = f" and {len(tools) - 30} more" if len(tools) > 30 else ""
        line += f"; tools: {shown}{more}"
    if status["last_error"] and status["state"] != "running":
        line += f"; last error: {status['last_error']}"
    return line


def _started_message(runner: ServerRunner, verb: str) -> str:
    st = runner.status()
    if st["state"] == "running":
        names = ", ".join(f"{runner.name}__{t}" for t in st["tools"]) or "no tools"
        msg = f"MCP server '{runner.name}' {verb} and running. Its tools: {names}."
        if st["refused_tools"]:
            msg += " Not offered (name taken or invalid): " + "; ".join(st["refused_tools"]) + "."
        return msg
    if runner.config.config_error:
        return f"MCP server '{runner.name}' {verb}, but it cannot start: {st['last_error']}"
    return (
        f"MCP server '{runner.name}' {verb}, but it did not start: {st['last_error']}. "
        f"It will be retried; mcp_status shows how it is doing."
    )


class McpTools:
    @staticmethod
    def of(registry: ToolRegistry) -> McpTools | None:
        """The management tools behind ``registry`` (None until MCP is attached).

        For ``/clara mcp list|status``, which everyone may run: those read through
        here, while every change goes through ``registry.call`` and its admin check.
        """
        tool = registry.get("mcp_list")
        impl = getattr(tool.handler, "__self__", None) if tool is not None else None
        return impl if isinstance(impl, McpTools) else None

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.installer = Installer(
            supervisor.servers_dir,
            timeout=supervisor.install_timeout,
            docker=supervisor.docker,
            smithery_api_url=supervisor.smithery_api_url,
            smithery_api_key=supervisor.smithery_api_key,
        )

    async def _save(self, name: str, **values: Any) -> None:
        if self.supervisor.store is not None:
            await self.supervisor.store.update(name, **values)

    def _known(self, name: str) -> ServerRunner:
        try:
            validate_server_name(name)
        except McpConfigError as exc:
            raise ToolError(str(exc)) from None
        runner = self.supervisor.runners.get(name)
        if runner is None:
            known = ", ".join(sorted(self.supervisor.runners)) or "none"
            raise ToolError(f"there is no MCP server named {name!r}. Installed: {known}.")
        return runner

    async def install(self, args: dict[str, Any], ctx: ToolContext) -> str:
        source = str(args["source"]).strip().lower()
        package = str(args["package"]).strip()
        name = args.get("name") or None
        env = args.get("env") or {}
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise ToolError("env must map variable names to string values")
        if name and name in self.supervisor.runners:
            raise ToolError(f"an MCP server named {name!r} is already installed; pick another name")
        watcher = ctx.extras.get(PROGRESS_KEY)

        def progress(msg: str) -> None:
            log.info("mcp_install %s: %s", package, msg)
            if watcher is not None:
                try:
                    watcher(msg)
                except Exception:  # a display problem must not fail the install
                    log.exception("mcp_install progress display failed")

        try:
            config = await self.installer.install(
                source,
                package,
                name,
                env=env,
                args=[str(a) for a in args.get("args") or []],
                progress=progress,
            )
        except McpConfigError as exc:
            raise ToolError(f"could not install {package}: {exc}") from None
        config.installed_by = ctx.user_id
        if config.name in self.supervisor.runners:
            await self.installer.uninstall(config.name)
            raise ToolError(
                f"an MCP server named {config.name!r} is already installed; "
                "give this one another name"
            )
        try:
            await self.supervisor.save_config(config)
        except McpConfigError as exc:  # the secrets key cannot be read or made
            await self.installer.uninstall(config.name)
            raise ToolError(f"could not store {config.name}: {exc}") from None
        progress(f"starting {config.name}")
        runner = await self.supervisor.add(config)
        await self._save(config.name, last_error=runner.last_error)
        return _started_message(runner, "installed")

    async def uninstall(self, args: dict[str, Any], ctx: ToolContext) -> str:
        runner = self._known(args["name"])
        await self.supervisor.remove(runner.name)
        if self.supervisor.store is not None:
            await self.supervisor.store.delete(runner.name)
        if runner.config.source != "local" or (self.supervisor.servers_dir / runner.name).exists():
            await self.installer.uninstall(runner.name)
        return f"MCP server '{runner.name}' uninstalled; its tools are gone."

    async def list(self, args: dict[str, Any], ctx: ToolContext) -> str:
        statuses = self.supervisor.status()
        if not statuses:
            return "No MCP servers are installed. An admin can add one with mcp_install."
        return "Installed MCP servers:\n" + "\n".join(_runner_line(s) for s in statuses)

    async def enable(self, args: dict[str, Any], ctx: ToolContext) -> str:
        runner = self._known(args["name"])
        await self._save(runner.name, enabled=True)
        await self.supervisor.set_enabled(runner.name, True)
        await self._save(runner.name, last_error=runner.last_error)
        return _started_message(runner, "enabled")

    async def disable(self, args: dict[str, Any], ctx: ToolContext) -> str:
        runner = self._known(args["name"])
        await self._save(runner.name, enabled=False)
        await self.supervisor.set_enabled(runner.name, False)
        return f"MCP server '{runner.name}' disabled and stopped; mcp_enable starts it again."

    async def restart(self, args: dict[str, Any], ctx: ToolContext) -> str:
        runner = self._known(args["name"])
        await self._save(runner.name, enabled=True)
        await self.supervisor.restart(runner.name)
        await self._save(runner.name, last_error=runner.last_error)
        return _started_message(runner, "restarted")

    async def status(self, args: dict[str, Any], ctx: ToolContext) -> str:
        name = args.get("name")
        if name:
            st = self._known(name).status()
            lines = [
                _runner_line(st),
                f"  failures in a row: {st['failures']}, "
                f"restarts: {st['restarts']}, transport: {st['transport']}",
            ]
            if st["refused_tools"]:
                lines.append("  not offered: " + "; ".join(st["refused_tools"]))
            if st["last_error"]:
                lines.append(f"  last error: {st['last_error']}")
            return "\n".join(lines)
        return await self.list(args, ctx)


def register_mcp_tools(registry: ToolRegistry, supervisor: Supervisor) -> McpTools:
    impl = McpTools(supervisor)
    name_only = _NAME_PARAM
    specs: list[tuple[str, str, dict[str, Any], Any, float]] = [
        (
            "mcp_install",
            "Install an MCP server (admins only) and offer its tools as <name>__<tool>. "
            "source: npm, pypi, github (repo URL or owner/repo), docker (image), local "
            "(a path on Clara's host) or smithery (a server hosted on Smithery, by its "
            "qualified name, e.g. owner/server).",
            {
                "type": "object",
                "properties": {
                    "source": {"type": "string", "enum": list(SOURCES)},
                    "package": {
                        "type": "string",
                        "description": "npm or PyPI package, repository URL, image, or path.",
                    },
                    "name": {
                        "type": "string",
                        "description": "Server name, the prefix of its tools; derived from "
                        "the package when absent.",
                    },
                    "env": {
                        "type": "object",
                        "description": "Environment variables the server needs (API keys): "
                        "the only ones it gets besides PATH and HOME. For smithery: the "
                        "server's configuration secrets, sent as headers.",
                        "additionalProperties": {"type": "string"},
                    },
                    "args": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "Extra command-line arguments for the server.",
                    },
                },
                "required": ["source", "package"],
                "additionalProperties": False,
            },
            impl.install,
            supervisor.install_timeout + supervisor.connect_timeout + 30,
        ),
        (
            "mcp_uninstall",
            "Remove an installed MCP server and its tools.",
            name_only,
            impl.uninstall,
            60.0,
        ),
        (
            "mcp_list",
            "List installed MCP servers, their state and tools.",
            {"type": "object", "properties": {}},
            impl.list,
            10.0,
        ),
        (
            "mcp_enable",
            "Enable (start) an installed MCP server.",
            name_only,
            impl.enable,
            supervisor.connect_timeout + 30,
        ),
        (
            "mcp_disable",
            "Disable (stop) an MCP server without uninstalling it.",
            name_only,
            impl.disable,
            30.0,
        ),
        (
            "mcp_restart",
            "Restart an MCP server (also after it was given up on).",
            name_only,
            impl.restart,
            supervisor.connect_timeout + 30,
        ),
        (
            "mcp_status",
            "Detailed status of one MCP server (or all): state, errors, restarts.",
            {"type": "object", "properties": {"name": {"type": "string"}}},
            impl.status,
            10.0,
        ),
    ]
    # What the status line says while the slow ones run (their steps follow it).
    activities = {
        "mcp_install": "installing an MCP server",
        "mcp_enable": "starting an MCP server",
        "mcp_restart": "restarting an MCP server",
    }
    for name, description, params, handler, timeout in specs:
        registry.register(
            Tool(
                name=name,
                description=description,
                parameters=params,
                handler=handler,
                admin_only=True,
                timeout=timeout,
                source="mcp",
                activity=activities.get(name),
            )
        )
    return impl
