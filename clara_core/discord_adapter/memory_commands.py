"""``/clara memory`` (what Clara remembers about you) and ``/clara forget``.

Everything is ephemeral and always about the caller: the user id comes from
the interaction, never from an option, so nobody can page through or delete
another user's memories.  The id is ``str(user.id)``, the same key the
conversation layer gives Cortex, the core tables and the file store.

Buttons are routed here by ``custom_id`` from the client's ``on_interaction``
instead of discord.py's view store:

* paging is stateless (``clara:memory:<user>:<page>:<prev|next>``), so the
  buttons keep working after a restart;
* a forget confirmation carries a random nonce
  (``clara:forget:<yes|no>:<nonce>``) that is bound, here, to the caller, the
  memory and an expiry time.  Only that user can answer it, once, in time.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from clara_core.privacy import (
    STORE_NAMES,
    AmbiguousMemoryId,
    ForgetReport,
    MemoryPage,
    StorageUnavailable,
    forget_everything,
    full_memory_id,
    memory_page,
    resolve_memory_id,
    short_id,
)
from clara_core.user_data import PEERS

if TYPE_CHECKING:
    from clara_core.cortex.types import Memory

    from .runner import ClaraDiscordClient

log = logging.getLogger(__name__)

PER_PAGE = 10
CONTENT_LIMIT = 2000  # Discord's message content limit
MAX_MEMORY_CHARS = 180  # one memory line, before the page budget shrinks it further
MAX_IDENTITY_CHARS = 500
ELLIPSIS = "…"
NO_PINGS = discord.AllowedMentions.none()  # memories are user text: never ping from them

MEMORY_OFF = (
    "Memory is off on this Clara (CORTEX_ENABLED=false), so I don't keep memories "
    "about you between conversations."
)
TRY_AGAIN = "Sorry, that didn't work because of an internal error. Please try again in a moment."


# -- rendering (pure) ---------------------------------------------------------


def clip(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters (ellipsis when cut)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)].rstrip() + ELLIPSIS


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _memory_line(m: Memory, limit: int) -> str:
    prefix = f"`{short_id(m.id)}` · {m.created_at:%Y-%m-%d} · "
    return prefix + clip(discord.utils.escape_markdown(m.content), max(20, limit - len(prefix)))


def render_page(p: MemoryPage) -> str:
    head = ["**What I remember about you**"]
    if p.identity:
        facts = "\n".join(
            f"• {discord.utils.escape_markdown(clip(str(k), 40))}: "
            f"{discord.utils.escape_markdown(clip(str(v), 120))}"
            for k, v in sorted(p.identity.items())
        )
        head += ["**Identity**", clip_block(facts, MAX_IDENTITY_CHARS)]
    if p.unavailable:
        head.append("Long-term memory is unavailable right now; try again in a little while.")
        return "\n".join(head)
    if p.total == 0:
        head.append(
            "No memories yet." if p.identity else "I don't remember anything about you yet."
        )
        return "\n".join(head)
    head.append(f"**Memories** ({p.total}, newest first) — page {p.page} of {p.pages}")
    foot = "`/clara forget <id>` forgets one memory; `/clara forget` forgets everything."
    # Share what is left of the 2000 characters between this page's memories, so
    # ten long memories shorten each other instead of pushing the page over.
    budget = CONTENT_LIMIT - len("\n".join(head)) - len(foot) - 2 - len(p.memories)
    per_line = min(MAX_MEMORY_CHARS, budget // max(1, len(p.memories)))
    lines = [_memory_line(m, per_line) for m in p.memories]
    return clip_block("\n".join([*head, *lines, foot]), CONTENT_LIMIT)


def clip_block(text: str, limit: int) -> str:
    """Multi-line ``text`` cut to ``limit`` characters (the last resort guard)."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def render_report(report: ForgetReport) -> str:
    lines = ["**Done — I've forgotten you.**" if report.complete else "**Partly done.**"]
    if "memory" in report.skipped:
        lines.append("• Memories: memory is off, so there were none.")
    elif "memory" in report.failed:
        lines.append("• Memories and identity: I couldn't clear them. Please run it again.")
    elif report.memories_queued:
        lines.append(
            "• Memories and identity: long-term memory is unavailable right now, so their "
            "deletion is queued and will complete as soon as storage is back. Short-term "
            "memory is already cleared."
        )
    else:
        lines.append(f"• Memories and identity: {report.memories} deleted")
    if "history" in report.failed:
        lines.append(
            "• Conversation history and preferences: the database is unreachable right now, "
            "so nothing there was deleted. Please run `/clara forget` again later."
        )
    elif "history" not in report.skipped:
        lines.append(
            f"• Conversation history: {_plural(report.sessions, 'conversation')}, "
            f"{_plural(report.messages, 'message')}"
        )
        if report.projects:
            lines.append(f"• Projects you owned: {report.projects}")
        lines.append(
            "• Preferences: deleted" if report.preferences else "• Preferences: none stored"
        )
    if "files" in report.failed:
        lines.append("• Files: I couldn't delete them. Please run it again.")
    elif "files" not in report.skipped:
        lines.append(f"• Files: {report.files} deleted")
    for label, count in report.others.items():
        if label == PEERS:
            # One process alone has no other copies to mention.
            if count:
                processes = "1 process" if count == 1 else f"{count} processes"
                lines.append(f"• {label}: {processes} told to clear them")
            continue
        lines.append(f"• {label}: " + ("cleared" if count is None else f"{count} deleted"))
    lines.extend(
        f"• {label}: I couldn't clear it. Please run it again."
        for label in report.failed
        if label not in STORE_NAMES
    )
    return "\n".join(lines)


# -- confirmations ------------------------------------------------------------


@dataclass
class PendingForget:
    user_id: str
    memory_id: str | None  # None: everything
    expires_at: float


class Confirmations:
    """Forget requests waiting for their Confirm/Cancel press, by nonce."""

    def __init__(self, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.clock = clock
        self._pending: dict[str, PendingForget] = {}

    def add(self, user_id: str, memory_id: str | None) -> str:
        now = self.clock()
        # Forget the long-expired ones as new ones arrive; nothing else keeps them.
        # (Recently expired ones stay a while, so a late press says "expired".)
        stale = [n for n, p in self._pending.items() if p.expires_at + 15 * 60 < now]
        for n in stale:
            del self._pending[n]
        nonce = secrets.token_urlsafe(12)
        self._pending[nonce] = PendingForget(user_id, memory_id, now + self.timeout)
        return nonce

    def get(self, nonce: str) -> PendingForget | None:
        return self._pending.get(nonce)

    def take(self, nonce: str) -> PendingForget | None:
        return self._pending.pop(nonce, None)

    def expired(self, pending: PendingForget) -> bool:
        return self.clock() >= pending.expires_at


def _components(*buttons: discord.ui.Button) -> discord.ui.View:
    """Buttons that this module answers itself (see the module docstring).

    discord.py keeps every unfinished view it sends in its view store and
    dispatches presses to it too; a stopped view is sent but never stored."""
    view = discord.ui.View(timeout=None)
    for button in buttons:
        view.add_item(button)
    view.stop()
    return view


# -- commands -----------------------------------------------------------------


class MemoryCommands:
    def __init__(
        self,
        client: ClaraDiscordClient,
        *,
        confirm_timeout: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        per_page: int = PER_PAGE,
    ) -> None:
        self.client = client
        self.confirmations = Confirmations(confirm_timeout, clock)
        self.per_page = per_page

    def register(self, group: app_commands.Group) -> None:
        @group.command(name="memory", description="What I remember about you (only you see it)")
        @app_commands.describe(page="Which page of your memories (10 per page)")
        async def memory(
            interaction: discord.Interaction,
            page: app_commands.Range[int, 1, 100_000] | None = None,
        ) -> None:
            await self._memory(interaction, page or 1)

        @group.command(name="forget", description="Forget one memory, or everything about you")
        @app_commands.describe(
            memory_id="A memory's id from /clara memory; leave empty to forget everything"
        )
        async def forget(interaction: discord.Interaction, memory_id: str | None = None) -> None:
            await self._forget(interaction, memory_id)

    # -- /clara memory ------------------------------------------------------------

    async def _memory(self, interaction: discord.Interaction, page: int) -> None:
        manager = self.client.memory
        if manager is None:
            await interaction.response.send_message(MEMORY_OFF, ephemeral=True)
            return
        # Reads can outlast the 3 s Discord gives an answer when PostgreSQL is slow.
        await interaction.response.defer(ephemeral=True, thinking=True)
        user = str(interaction.user.id)
        try:
            p = await memory_page(manager, user, page, per_page=self.per_page)
        except Exception:
            log.exception("/clara memory failed")
            await interaction.edit_original_response(content=TRY_AGAIN)
            return
        await interaction.edit_original_response(
            content=render_page(p), view=self._page_buttons(user, p), allowed_mentions=NO_PINGS
        )

    def _page_buttons(self, user: str, p: MemoryPage) -> discord.ui.View | None:
        if p.pages <= 1:
            return None
        return _components(
            discord.ui.Button(
                label="Previous",
                style=discord.ButtonStyle.secondary,
                custom_id=f"clara:memory:{user}:{max(1, p.page - 1)}:prev",
                disabled=p.page <= 1,
            ),
            discord.ui.Button(
                label="Next",
                style=discord.ButtonStyle.secondary,
                custom_id=f"clara:memory:{user}:{min(p.pages, p.page + 1)}:next",
                disabled=p.page >= p.pages,
            ),
        )

    async def _on_page(self, interaction: discord.Interaction, owner: str, page: int) -> None:
        user = str(interaction.user.id)
        if user != owner:
            await self._refuse(interaction, "These buttons belong to someone else's /clara memory.")
            return
        manager = self.client.memory
        if manager is None:
            await interaction.response.edit_message(content=MEMORY_OFF, view=None)
            return
        try:
            p = await memory_page(manager, user, page, per_page=self.per_page)
        except Exception:
            log.exception("/clara memory paging failed")
            await interaction.response.send_message(TRY_AGAIN, ephemeral=True)
            return
        # UPDATE_MESSAGE (type 7): the page replaces itself instead of piling up.
        await interaction.response.edit_message(
            content=render_page(p), view=self._page_buttons(user, p), allowed_mentions=NO_PINGS
        )

    # -- /clara forget ------------------------------------------------------------

    async def _forget(self, interaction: discord.Interaction, ref: str | None) -> None:
        user = str(interaction.user.id)
        if ref is None or not ref.strip():
            nonce = self.confirmations.add(user, None)
            await interaction.response.send_message(
                "⚠️ This deletes **everything** I hold about you: your memories, your identity "
                "facts, our conversation history, your preferences and your files. It can't be "
                f"undone.\nConfirm within {self._timeout_text()}.",
                view=self._confirm_buttons(nonce),
                ephemeral=True,
            )
            return
        manager = self.client.memory
        if manager is None:
            await interaction.response.send_message(MEMORY_OFF, ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            found = await resolve_memory_id(manager, user, ref)
        except AmbiguousMemoryId:
            await interaction.edit_original_response(
                content="That short id matches more than one of your memories; "
                "type a few more characters of it."
            )
            return
        except StorageUnavailable:
            memory_id = full_memory_id(ref)
            if memory_id is None:  # a short id cannot be resolved without PostgreSQL
                await interaction.edit_original_response(
                    content="Long-term memory is unavailable right now, so I can't look that "
                    "memory up. Please try again in a little while."
                )
                return
            # A full id can still be forgotten: the queued delete is scoped to the
            # caller, so it removes their memory and nobody else's, and the answer is
            # the same either way.
            nonce = self.confirmations.add(user, memory_id)
            await interaction.edit_original_response(
                content=f"Long-term memory is unavailable right now, so I can't show memory "
                f"`{short_id(memory_id)}`. Forget it anyway? It can't be undone.\n"
                f"Confirm within {self._timeout_text()}.",
                view=self._confirm_buttons(nonce),
            )
            return
        except Exception:
            log.exception("/clara forget lookup failed")
            await interaction.edit_original_response(content=TRY_AGAIN)
            return
        if found is None:
            # The same answer whether nobody or somebody else has such a memory.
            await interaction.edit_original_response(
                content="I couldn't find that memory among yours. `/clara memory` lists your "
                "memories with their ids."
            )
            return
        nonce = self.confirmations.add(user, found.id)
        await interaction.edit_original_response(
            content="Forget this memory? It can't be undone.\n"
            + _memory_line(found, MAX_MEMORY_CHARS * 2)
            + f"\nConfirm within {self._timeout_text()}.",
            view=self._confirm_buttons(nonce),
            allowed_mentions=NO_PINGS,
        )

    def _timeout_text(self) -> str:
        return f"{self.confirmations.timeout:g} seconds"

    @staticmethod
    def _confirm_buttons(nonce: str) -> discord.ui.View:
        return _components(
            discord.ui.Button(
                label="Confirm",
                style=discord.ButtonStyle.danger,
                custom_id=f"clara:forget:yes:{nonce}",
            ),
            discord.ui.Button(
                label="Cancel",
                style=discord.ButtonStyle.secondary,
                custom_id=f"clara:forget:no:{nonce}",
            ),
        )

    async def _on_confirm(self, interaction: discord.Interaction, nonce: str, yes: bool) -> None:
        user = str(interaction.user.id)
        pending = self.confirmations.get(nonce)
        if pending is None:
            await self._refuse(
                interaction,
                "This confirmation is no longer valid (already answered, or expired). "
                "Run `/clara forget` again if you still want to.",
            )
            return
        if pending.user_id != user:
            # Not taken: the owner can still answer it.
            await self._refuse(interaction, "Only the person who ran /clara forget can answer it.")
            return
        # Taken before any await: a double press cannot delete twice.
        self.confirmations.take(nonce)
        if self.confirmations.expired(pending):
            await interaction.response.edit_message(
                content="This confirmation expired, so nothing was deleted. Run `/clara forget` "
                "again if you still want to.",
                view=None,
            )
            return
        if not yes:
            await interaction.response.edit_message(
                content="Cancelled — nothing was deleted.", view=None
            )
            return
        # Deleting everything touches every store: acknowledge first (type 6), so a
        # slow store cannot run past Discord's 3 s, then edit the message.
        await interaction.response.defer()
        try:
            if pending.memory_id is None:
                text = await self._forget_everything(user)
            else:
                text = await self._forget_one(user, pending.memory_id)
        except Exception:
            log.exception("/clara forget failed")
            text = TRY_AGAIN
        await interaction.edit_original_response(content=text, view=None)

    async def _forget_one(self, user: str, memory_id: str) -> str:
        manager = self.client.memory
        if manager is None:
            return MEMORY_OFF
        result = await manager.forget(user, memory_id)
        label = f"`{short_id(memory_id)}`"
        if result.queued:
            return (
                f"Long-term memory is unavailable right now, so forgetting {label} is queued: "
                "it will complete as soon as storage is back."
            )
        if result.warm or result.hot:
            return f"Forgotten: memory {label}."
        return f"Memory {label} was already gone."

    async def _forget_everything(self, user: str) -> str:
        conversation = self.client.conversation
        report = await forget_everything(
            user,
            memory=self.client.memory,
            engine=self.client.engine,
            files=self.client.files,
            queued_history=conversation.history if conversation is not None else None,
            others=self.client.user_data_stores,
        )
        return render_report(report)

    # -- routing ------------------------------------------------------------------

    async def on_component(self, interaction: discord.Interaction) -> bool:
        """Answer a press on one of our buttons; ``False`` when it is not ours."""
        data = interaction.data or {}
        custom_id = str(data.get("custom_id", ""))
        parts = custom_id.split(":")
        try:
            if len(parts) == 5 and parts[:2] == ["clara", "memory"] and parts[3].isdigit():
                await self._on_page(interaction, parts[2], int(parts[3]))
            elif len(parts) == 4 and parts[:2] == ["clara", "forget"] and parts[2] in ("yes", "no"):
                await self._on_confirm(interaction, parts[3], parts[2] == "yes")
            else:
                return False
        except discord.HTTPException as exc:
            # e.g. answered after Discord's deadline: nothing more can be said to the user.
            log.warning("could not answer a button press (%s)", exc)
        return True

    @staticmethod
    async def _refuse(interaction: discord.Interaction, text: str) -> None:
        # A new ephemeral message for the presser: the message with the buttons is
        # not theirs to change.
        await interaction.response.send_message(text, ephemeral=True)
