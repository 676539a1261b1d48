"""The stores of user data beyond Cortex, the core tables and the file store.

``/clara forget`` (the running app) and ``cortex clear`` (an operator command, a
process with no Discord client, no sandbox and no mood service of its own) must
delete the same things: the list is built here, once, by the label the report
shows each store under, and both callers pass what they have.  A store that is
absent when the deletion runs (the sandbox not started yet, the mood off) is
looked up at that moment, and where its rows can still exist from an earlier run
(the mood with MOOD_ENABLED now off, ORS off, MCP not started) they are deleted
straight from the tables, so what an earlier run stored stays forgettable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .privacy import UserDataStore

log = logging.getLogger(__name__)

MOOD = "Mood of your DMs"
SANDBOX = "Sandbox workspace"
PROACTIVE = "Proactive messages and notes"
MCP = "Your name on MCP servers you installed"
PEERS = "Copies held by Clara's other processes"

#: A zero-argument callable returning the object now (or None when there is none).
Getter = Callable[[], Any]


class Late:
    """A user-data store that may not exist yet (or any more): ``get()`` finds it
    when the deletion runs; no store means nothing of the user is there."""

    def __init__(self, get: Getter) -> None:
        self._get = get

    async def delete_user_data(self, user_id: str) -> int | None:
        store = self._get()
        return None if store is None else await store.delete_user_data(user_id)


def user_data_stores(
    *,
    engine: Getter,
    redis: Getter,
    sandbox: Getter,
    mood: Getter = lambda: None,
    peers: Getter | None = None,
) -> dict[str, UserDataStore]:
    """The further stores ``privacy.forget_everything`` clears, by label.

    ``engine``/``redis``: the storage's (``None`` before it is open); ``sandbox``:
    the running ``SandboxManager`` or an ``OfflineSandbox``; ``mood``: the running
    ``MoodService`` (it also drops its in-process copy), else the stored mood is
    deleted without one; ``peers``: the running ``ForgetSignal``, which tells the
    other Clara processes on the same Redis (``cortex clear`` runs only while Clara is
    stopped: none)."""

    def mood_store() -> Any:
        running = mood()
        if running is not None:
            return running
        db = engine()
        if db is None:
            return None
        from storage.companion import CompanionStore
        from storage.companion_cache import MoodCache

        from .companion.hormones import HormoneModel
        from .pipeline.mood import MoodService

        r = redis()
        return MoodService(
            HormoneModel(), CompanionStore(db), cache=MoodCache(r) if r is not None else None
        )

    def proactive_store() -> Any:
        from storage.proactive import ProactiveStore

        db = engine()
        return ProactiveStore(db) if db is not None else None

    def mcp_store() -> Any:
        # The table, not the running supervisor: rows exist whether or not MCP started.
        from storage.mcp_servers import McpServerStore

        db = engine()
        return McpServerStore(db) if db is not None else None

    stores: dict[str, UserDataStore] = {
        MOOD: Late(mood_store),
        # Looked up at forget time: the sandbox may start after the Discord client.
        SANDBOX: Late(sandbox),
        # Cleared even with ORS off: what an earlier run with it on stored stays forgettable.
        PROACTIVE: Late(proactive_store),
        MCP: Late(mcp_store),
    }
    if peers is not None:
        # After the shared stores: the other processes then clear their own copies.
        stores[PEERS] = Late(peers)
    return stores


class OfflineSandbox:
    """The sandbox workspaces of a process that runs no sandbox (``cortex clear``).

    Remote (SANDBOX_MODE=remote, or auto with SANDBOX_API_URL): the service
    deletes the workspace, as for ``/clara forget``.  Local (Docker or bwrap):
    both keep a user's workspace under SANDBOX_DIR (sandbox/workspace.py), which
    is what their ``delete_user_data`` removes after stopping the user's sandbox;
    with Clara stopped no sandbox runs, so no Docker daemon is needed to remove it.
    """

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.root = Path(settings.sandbox_dir).absolute()

    @property
    def remote(self) -> bool:
        s = self.settings
        return s.sandbox_mode == "remote" or (s.sandbox_mode == "auto" and bool(s.sandbox_api_url))

    async def delete_user_data(self, user_id: str) -> int | None:
        if self.remote:
            from sandbox.manager import select_backend

            backend, _ = await select_backend(self.settings, probe=True)
            try:
                await backend.delete_user_data(user_id)
            finally:
                await backend.close()
            return None  # the service does not say what it held
        from sandbox.workspace import Workspace, user_key

        ws = Workspace(self.root, user_key(user_id), uid=0, gid=0, quota=0)

        def destroy() -> int:
            existed = ws.dir.exists() or ws.image.exists()
            ws.destroy()
            return int(existed)

        return await asyncio.to_thread(destroy)

    async def delete_all(self) -> int:
        """Every local workspace (``--all``: their names are hashes of user ids, so
        users known nowhere else are found only this way); 0 for a remote sandbox,
        whose workspaces the per-user deletions removed."""
        if self.remote:
            return 0
        from sandbox.workspace import Workspace

        def destroy_all() -> int:
            keys = set()
            for folder, suffix in ((self.root / "ws", ""), (self.root / "img", ".ext4")):
                if folder.is_dir():
                    keys.update(p.name.removesuffix(suffix) for p in folder.iterdir())
            for key in keys:
                Workspace(self.root, key, uid=0, gid=0, quota=0).destroy()
            return len(keys)

        return await asyncio.to_thread(destroy_all)
