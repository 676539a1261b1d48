"""``cortex clear --user ID | --all``: delete what Clara stores about users.

One user goes through exactly what ``/clara forget`` runs
(``privacy.forget_everything`` over the store list of ``clara_core.user_data``):
Cortex (both tiers, the outbox's pending writes, project memberships, the
consolidation ledger), sessions and messages, projects, preferences, queued
conversation turns, files, the mood of their DMs, the sandbox workspace,
proactive messages and notes, their name on MCP servers they installed.

``--all`` does that for every user any table, Redis, the file store or an outbox
names (users Redis forgot included), then empties what names no user but holds
conversation content (channel summaries) and every sandbox workspace.  The
schema, the configuration tables (guild settings, MCP servers, Cortex metadata)
and the migrations stay.

Clara must be stopped: a running Clara keeps copies (the mood of a DM, pending
memory writes in her outbox) that would bring deleted data back.  For one user
while she runs, the user has ``/clara forget``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter

from storage.local_files import LocalFileStore
from storage.sessions import SessionStore
from storage.user_data import clear_shared_content, redis_user_ids, user_ids

from ..config import Settings
from ..errors import ClaraError
from ..pipeline.session_log import OUTBOX_DIR as SESSION_OUTBOX_DIR
from ..pipeline.session_log import SessionLog
from ..privacy import ForgetReport, forget_everything
from ..user_data import OfflineSandbox, user_data_stores
from .session import CortexSession

EXIT_USAGE = 2


class NotConfirmed(Exception):
    """No confirmation could be asked (stdin is no terminal) and --yes was not given."""


def _rows(report: ForgetReport) -> list[tuple[str, int | None]]:
    """What was deleted, per store, in the order /clara forget's answer lists it."""
    return [
        ("memories (long-term, identity included)", report.memories),
        ("memory cache keys (Redis)", report.memory_cache_keys),
        ("conversations", report.sessions),
        ("messages", report.messages),
        ("projects owned", report.projects),
        ("preferences", report.preferences),
        ("queued conversation turns", report.queued_turns),
        ("files", report.files),
        *report.others.items(),
    ]


def _cell(count: int | None) -> str:
    return "cleared" if count is None else str(count)


async def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise NotConfirmed
    # input() blocks: in a thread, so the loop (and Ctrl-C handling) stays free.
    answer = await asyncio.to_thread(input, f"{question} Type 'yes' to confirm: ")
    return answer.strip().lower() in ("y", "yes")


async def clear_cmd(settings: Settings, args: argparse.Namespace) -> int:
    target = f"user {args.user}" if args.user else "EVERY user"
    if not args.yes:
        try:
            confirmed = await _confirm(
                f"This deletes everything Clara stores about {target} (memories, conversation "
                "history, preferences, files, mood, sandbox workspace, proactive notes); it "
                "cannot be undone."
            )
        except NotConfirmed:
            print(
                f"cortex clear: not deleting {target} without a confirmation, and stdin is not "
                "a terminal to ask one: add --yes",
                file=sys.stderr,
            )
            return EXIT_USAGE
        except EOFError:
            confirmed = False
        if not confirmed:
            print("cancelled: nothing was deleted")
            return 1

    s = settings
    session = await CortexSession.open(s)
    try:
        if session.attached_to is not None:
            raise ClaraError(
                f"Clara is running (pid {session.attached_to}) on this data directory: stop her "
                "first (her mood copies and pending memory writes would bring data back), or "
                "let the user run /clara forget"
            )
        memory = session.memory
        # Pending writes of an earlier run are applied first, so the deletion below
        # runs at once instead of being queued behind them (Clara is stopped: the
        # outbox is ours to flush).
        await memory.flush_outbox()
        files = LocalFileStore(s.clara_files_dir, max_size=s.clara_max_file_size)
        history = SessionLog(
            SessionStore(session.engine),
            s.clara_data_dir / SESSION_OUTBOX_DIR,
            project=s.default_project,
            idle_minutes=s.session_idle_minutes,
        )
        sandbox = OfflineSandbox(s)
        others = user_data_stores(
            engine=lambda: session.engine,
            redis=lambda: session.storage.redis,
            sandbox=lambda: sandbox,
        )
        if args.user:
            users = [args.user]
        else:
            users = sorted(
                await _every_user(session, files, history),
                key=lambda u: (not u.isdigit(), len(u), u),
            )
        failed: dict[str, list[str]] = {}
        totals: Counter[str] = Counter()
        cleared_labels: set[str] = set()
        for user in users:
            report = await forget_everything(
                user,
                memory=memory,
                engine=session.engine,
                files=files,
                queued_history=history,
                others=others,
            )
            if report.failed or report.memories_queued:
                failed[user] = report.failed + (
                    ["memory (queued)"] if report.memories_queued else []
                )
            for label, count in _rows(report):
                if count is None:
                    cleared_labels.add(label)
                else:
                    totals[label] += count
            if args.user:
                print(f"cleared {target}:")
                for label, count in _rows(report):
                    print(f"  {label:<42} {_cell(count):>8}")
        if not args.user:
            shared = await clear_shared_content(session.engine)
            workspaces = await sandbox.delete_all()
            print(f"cleared {len(users)} user(s):")
            for label, _ in _rows(ForgetReport(others=dict.fromkeys(others))):
                value = totals[label] if label in totals or label not in cleared_labels else None
                print(f"  {label:<42} {_cell(value):>8}")
            for table, n in shared.items():
                print(f"  {table + ' (no user named)':<42} {n:>8}")
            print(f"  {'sandbox workspaces (all)':<42} {workspaces:>8}")
        await history.close()
    finally:
        await session.close()
    for user, stores in failed.items():
        print(
            f"user {user}: NOT cleared: {', '.join(stores)} (see the log); run the command again",
            file=sys.stderr,
        )
    return 0 if not failed else 1


async def _every_user(
    session: CortexSession, files: LocalFileStore, history: SessionLog
) -> set[str]:
    """Every user id Clara holds anything of: the tables, Redis, the file store and
    both outboxes (a user only Redis or a queued write still knows is a user too)."""
    from ..ids import is_valid_user_id

    found = await user_ids(session.engine)
    found |= await redis_user_ids(session.storage.redis)
    for op in await session.memory.outbox.ops():
        if op.get("user_id"):
            found.add(str(op["user_id"]))
    if await asyncio.to_thread(history.outbox.directory.is_dir):
        for op in await history.outbox.ops():
            if op.get("user_id"):
                found.add(str(op["user_id"]))

    def folders() -> list[str]:
        root = files.root
        return [p.name for p in root.iterdir() if p.is_dir()] if root.is_dir() else []

    found.update(await asyncio.to_thread(folders))
    # A name no store accepts as a user id was not written by Clara: left alone.
    return {u for u in found if is_valid_user_id(u)}
