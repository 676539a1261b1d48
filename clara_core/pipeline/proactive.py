"""The Organic Response System at work: gather each due user's context, let the
low tier decide WAIT / THINK / SPEAK as structured output, hold the decision to
the rules (``companion/ors.py``), and act on it.

- ``ModelDecider`` asks through Cortex's ``TextModel`` port (like the mood's
  tone reader), so this module never imports the LLM layer.
- ``OrsRunner.run_pass`` assesses every due user, at most ``concurrency`` at a
  time.  A user is *claimed* in the database before the assessment and a SPEAK
  is *recorded* before it is sent (storage/proactive.py), so a restart or a
  second Clara process on the same database never sends a message twice.
- ``OrsRunner.start`` runs the pass from APScheduler in this process; the clock
  is injected, so tests drive simulated weeks by calling ``run_pass``.
- A send recorded but never confirmed (the process died between the record
  and the post) is marked ``lost`` at start-up and by every pass once
  ``PENDING_TIMEOUT`` has passed: logged and counted, never sent again.  A send
  in flight holds its row lock, so another live process's sweep skips it.
- Several processes: each runs its own pass; the per-user claim splits the due
  users between them, and idle conversations are claimed the same way before
  they are summarised.  The Discord sender posts through REST (``fetch_user``,
  ``fetch_channel`` when the gateway cache lacks it), so a process need not hold
  the shard of the user's guild to reach them.
- The send goes through ``ProactiveSender`` (the Discord adapter implements it;
  ``OutboxSender`` keeps messages for adapters that cannot push).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from clara_core.companion.boundaries import Boundary
from clara_core.companion.ors import (
    Action,
    Decision,
    Note,
    OrsRules,
    QuietHours,
    UserOrs,
    next_check,
    settle,
    speak_gap,
    wait_blocker,
)
from clara_core.companion.ors_context import (
    ANSWER,
    SUMMARY_ANSWER,
    SUMMARY_SYSTEM,
    SYSTEM,
    OrsContext,
    parse_decision,
    parse_digest,
    render,
    render_conversation,
)

from .events import Done
from .prompt import TurnContext
from .turn import AfterTurn, TurnRunner

if TYPE_CHECKING:
    from clara_core.config import Settings
    from clara_core.cortex.manager import MemoryManager
    from clara_core.cortex.ports import TextModel
    from storage.proactive import ProactiveStore, StoredNote, StoredPattern

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
#: ``(user_id, query) -> the texts of relevant memories`` (``cortex_memories``).
MemorySource = Callable[[str, str], Awaitable[list[str]]]

#: How long a claimed user stays with a runner that may have died mid-assessment.
CLAIM_LEASE = timedelta(minutes=10)
#: The model's answer is short JSON; a slow model is not worth waiting for.
DECIDE_TIMEOUT_S = 30.0
#: Users claimed per pass; the rest come in the next pass (a minute later).
PASS_BATCH = 20_000
#: Idle conversations summarised per pass (each is one model call).
SUMMARIES_PER_PASS = 50
#: A follow-up ("how did the interview go?") matters for a few days at most.
FOLLOW_UP_RELEVANCE = 0.8
#: A send is recorded, then posted at once; Discord's retries and rate limits take
#: seconds, a minute at worst.  Still pending after this long means the process that
#: recorded it died: the row is marked lost (never re-sent: the send-once promise).
PENDING_TIMEOUT = timedelta(minutes=15)


def rules_from(settings: Settings) -> OrsRules:
    return OrsRules(
        timezone=settings.clara_timezone,
        min_speak_gap=timedelta(hours=settings.ors_min_speak_gap_hours),
        quiet_hours=QuietHours.parse(settings.ors_quiet_hours),
        active_days=settings.ors_active_days,
        note_decay_days=settings.ors_note_decay_days,
        base_interval=timedelta(minutes=settings.ors_base_interval_minutes),
        default_on=settings.ors_default_on,
    )


class Decider(Protocol):
    async def decide(self, ctx: OrsContext) -> Decision: ...


class ProactiveSender(Protocol):
    async def send(self, user_id: str, channel_id: str | None, text: str) -> bool:
        """Post ``text`` to the user's DM (``channel_id`` None) or that channel;
        False when it could not be delivered (the user closed their DMs)."""
        ...


class ModelDecider:
    """The low tier decides, as structured output; no usable answer means WAIT."""

    def __init__(self, model: TextModel, *, timeout: float = DECIDE_TIMEOUT_S) -> None:
        self.model = model
        self.timeout = timeout

    async def decide(self, ctx: OrsContext) -> Decision:
        try:
            async with asyncio.timeout(self.timeout):
                answer = await self.model.complete_text(
                    render(ctx), max_tokens=300, system=SYSTEM, json_answer=ANSWER
                )
        except Exception as exc:  # an unavailable model is a reason to wait, not to fail
            log.info("ors: decision model unavailable for %s (%r); waiting", ctx.user.user_id, exc)
            return Decision(Action.WAIT, "decision model unavailable")
        decision = parse_decision(answer, ctx.now)
        if decision is None:
            log.info("ors: unreadable decision for %s; waiting", ctx.user.user_id)
            return Decision(Action.WAIT, "unreadable decision")
        return decision


@dataclass
class OutboxSender:
    """Keeps proactive messages for an adapter that cannot push (the console shows
    them before its next prompt); bounded, oldest dropped."""

    limit: int = 100
    sent: deque[tuple[str, str | None, str]] = field(default_factory=deque)

    async def send(self, user_id: str, channel_id: str | None, text: str) -> bool:
        self.sent.append((user_id, channel_id, text))
        while len(self.sent) > self.limit:
            self.sent.popleft()
        return True


@dataclass
class PassReport:
    due: int = 0
    assessed: int = 0
    spoke: int = 0
    thought: int = 0
    waited: int = 0
    model_calls: int = 0


def user_ors(p: StoredPattern) -> UserOrs:
    return UserOrs(
        p.user_id,
        opted_in=p.opted_in,
        talked_in_dm=p.talked_in_dm,
        last_user_message_at=p.last_user_message_at,
        last_proactive_at=p.last_proactive_at,
        unanswered=p.unanswered,
        boundaries=tuple(Boundary.from_json(b) for b in p.boundaries),
    )


class OrsRunner:
    def __init__(
        self,
        store: ProactiveStore,
        decider: Decider,
        sender: ProactiveSender,
        rules: OrsRules,
        clock: Clock | None = None,
        *,
        concurrency: int = 8,
        memories: MemorySource | None = None,
        lease: timedelta = CLAIM_LEASE,
        idle_timeout: timedelta | None = None,
        summarizer: TextModel | None = None,
    ) -> None:
        self.store = store
        self.decider = decider
        self.sender = sender
        self.rules = rules
        self.clock = clock or (lambda: datetime.now(UTC))
        self.concurrency = concurrency
        #: ``(user_id, query) -> awaitable list[str]``: Cortex memories for the context.
        self.memories = memories
        self.lease = lease
        #: After this much silence the conversation is summarised for ORS (with ``summarizer``).
        self.idle_timeout = idle_timeout
        self.summarizer = summarizer
        self.scheduler: AsyncIOScheduler | None = None
        self._running: asyncio.Lock = asyncio.Lock()
        #: Sends found lost since this process started (the monitor shows it).
        self.lost = 0
        self.last_pass: PassReport | None = None
        self._sweep: asyncio.Task[None] | None = None  # the start-up sweep (a reference keeps it)

    # -- the conversation's side ---------------------------------------------
    async def saw_message(self, user_id: str, channel_id: str | None, *, is_dm: bool) -> None:
        """A user wrote: learn the pattern, reset the back-off, schedule a first look."""
        now = self.clock()
        await self.store.saw_message(
            user_id,
            now,
            channel_id=None if is_dm else channel_id,
            is_dm=is_dm,
            local_hour=now.astimezone(self.rules.tz).hour,
            first_check_at=now + self.rules.base_interval,
        )

    # -- one pass --------------------------------------------------------------
    async def run_pass(self) -> PassReport:
        """Assess every due user once (serialised: a slow pass is never overlapped)."""
        async with self._running:
            now = self.clock()
            report = PassReport()
            await self.sweep_lost(now)
            # One statement claims the whole batch (a second runner gets the rest).
            claimed = await self.store.claim_due(now, self.lease, PASS_BATCH)
            report.due = len(claimed)
            gate = asyncio.Semaphore(self.concurrency)

            async def one(p: StoredPattern) -> None:
                async with gate:
                    try:
                        await self.assess(p, now, report)
                    except Exception:  # one user's failure must not end the pass
                        log.exception("ors: assessing %s failed", p.user_id)

            await asyncio.gather(*(one(p) for p in claimed))
            await self.summarise_idle(now, gate)
            self.last_pass = report
            return report

    async def sweep_lost(self, now: datetime | None = None) -> int:
        """Mark sends left pending past ``PENDING_TIMEOUT`` lost; returns how many.
        One indexed statement (usually touching nothing): run at start-up and by
        every pass."""
        lost = await self.store.mark_lost(now or self.clock(), PENDING_TIMEOUT)
        for m in lost:
            log.warning(
                "ors: proactive message %d to %s (recorded %s) was never confirmed sent: "
                "the process stopped in between; marked lost, not re-sent",
                m.id,
                m.user_id,
                m.at.isoformat(),
            )
        self.lost += len(lost)
        return len(lost)

    def stats(self) -> dict[str, int | bool]:
        """For the monitor's status page (no I/O)."""
        last = self.last_pass or PassReport()
        return {
            "scheduled": self.scheduler is not None,
            "last_pass_assessed": last.assessed,
            "last_pass_spoke": last.spoke,
            "lost_since_start": self.lost,
        }

    async def summarise_idle(self, now: datetime, gate: asyncio.Semaphore | None = None) -> int:
        """ORS_IDLE_TIMEOUT_MINUTES after a user's last message: the conversation's
        summary and open threads for the context, its follow-ups filed as notes
        (with their source messages).  Returns how many were summarised."""
        if self.idle_timeout is None or self.summarizer is None:
            return 0
        # Claimed (summary_at stamped) in one statement: a second Clara process on the
        # database never summarises the same conversation.  A process that dies
        # mid-summary leaves the stamp: that conversation is summarised after the
        # user's next message, not twice.
        claimed = await self.store.claim_idle_summaries(now, self.idle_timeout, SUMMARIES_PER_PASS)
        gate = gate or asyncio.Semaphore(self.concurrency)
        done = 0

        async def one(user_id: str, previous: datetime | None) -> None:
            nonlocal done
            async with gate:
                made: bool | None = None
                try:
                    made = await self._summarise(user_id, now)
                except Exception:  # one user's failure must not end the pass
                    log.exception("ors: summarising %s failed", user_id)
                if made:
                    done += 1
                elif made is None:  # not done: unclaimed, so the next pass tries again
                    try:
                        await self.store.release_summary(user_id, now, previous)
                    except Exception as exc:  # summarised after the user's next message
                        log.warning("ors: could not release %s's summary (%s)", user_id, exc)

        await asyncio.gather(*(one(u, prev) for u, prev in claimed))
        return done

    async def _summarise(self, user_id: str, now: datetime) -> bool | None:
        """True: summarised; False: looked at, nothing new; None: try again later."""
        assert self.summarizer is not None
        turns = await self.store.recent_messages(user_id)
        if not turns:  # nothing stored (no sessions here): mark it looked at all the same
            await self.store.set_summary(user_id, None, [], now)
            return False
        try:
            async with asyncio.timeout(DECIDE_TIMEOUT_S):
                answer = await self.summarizer.complete_text(
                    render_conversation(now, self.rules, [(r, c) for _, r, c in turns]),
                    max_tokens=500,
                    system=SUMMARY_SYSTEM,
                    json_answer=SUMMARY_ANSWER,
                )
        except Exception as exc:  # the next pass tries again
            log.info("ors: summary model unavailable for %s (%r)", user_id, exc)
            return None
        digest = parse_digest(answer)
        if digest is None:
            log.info("ors: unreadable summary for %s; keeping the last one", user_id)
            await self.store.set_summary(user_id, None, [], now)
            return False
        sources = tuple(str(i) for i, role, _ in turns if role == "user")[-5:]
        for text, not_before in digest.follow_ups:
            await self.store.add_note(
                user_id,
                kind="event",
                text=text,
                relevance=FOLLOW_UP_RELEVANCE,
                created_at=now,
                not_before=not_before,
                source_message_ids=sources,
            )
        for words in digest.boundaries:
            # Said in conversation ("don't text me before 10"): kept like one set with
            # /clara boundary, where the user sees it and can remove it.  Only ever
            # makes Clara quieter, so a misreading costs a message, never an intrusion.
            log.info("ors: %s stated a boundary in conversation; stored", user_id)
            await self.store.add_boundary(user_id, Boundary.parse(words).to_json(), now)
        await self.store.set_summary(user_id, digest.summary, list(digest.open_threads), now)
        return True

    async def _context(
        self, p: StoredPattern, user: UserOrs, now: datetime
    ) -> tuple[OrsContext, list[StoredNote]]:
        """What the decider sees, and the stored notes it came from."""
        stored = await self.store.notes(p.user_id, now)
        notes = [
            Note(
                n.kind,
                n.text,
                n.relevance,
                n.created_at,
                n.expires_at,
                n.not_before,
                n.source_message_ids,
            )
            for n in stored
        ]
        summary, threads = p.last_summary, list(p.open_threads)
        if summary is None:
            found = await self.store.latest_session_summary(p.user_id)
            summary = found[1] if found is not None else None
        memories: list[str] = []
        if self.memories is not None:
            query = " ".join([summary or "", *threads]).strip() or "what is going on"
            try:
                memories = list(await self.memories(p.user_id, query))
            except Exception as exc:  # memories enrich the context; they are not required
                log.info("ors: memories unavailable for %s (%r)", p.user_id, exc)
        context = OrsContext(
            user,
            now,
            self.rules,
            notes=notes,
            summary=summary,
            open_threads=threads,
            active_hours=p.active_hours,
            proactive_sent=p.proactive_sent,
            proactive_answered=p.proactive_answered,
            # Every boundary in the user's words; the hours and days are enforced by
            # the rules already, the model honours the rest ("only about work").
            boundaries=[b.text for b in user.boundaries if b.text],
            memories=memories,
        )
        return context, stored

    async def assess(self, p: StoredPattern, now: datetime, report: PassReport) -> None:
        """One claimed user: decide, act, record, schedule the next look."""
        user_id = p.user_id
        report.assessed += 1
        user = user_ors(p)
        notes: list[Note] = []
        stored: list[StoredNote] = []
        if (why := wait_blocker(user, now, self.rules)) is not None:
            decision = Decision(Action.WAIT, why)  # no model call at night, or for nobody
        else:
            ctx, stored = await self._context(p, user, now)
            notes = list(ctx.notes)
            report.model_calls += 1
            decision = settle(await self.decider.decide(ctx), user, now, self.rules)
        if decision.action is Action.SPEAK and decision.message:
            message_id = await self.store.record_speak(
                user_id,
                now,
                content=decision.message,
                reason=decision.reason,
                channel_id=p.last_channel_id if not p.talked_in_dm else None,
                min_gap=speak_gap(user, self.rules),
                # The notes the decision was made from (read once, for its context).
                used_note_ids=tuple(
                    n.id for n in stored if n.not_before is None or n.not_before <= now
                ),
            )
            if message_id is None:
                decision = Decision(Action.WAIT, "already spoken (recorded by another runner)")
            else:
                target = None if p.talked_in_dm else p.last_channel_id
                text = decision.message

                async def deliver() -> bool:
                    try:
                        return await self.sender.send(user_id, target, text)
                    except Exception as exc:  # recorded: never retried, so never sent twice
                        log.warning("ors: sending to %s failed (%r)", user_id, exc)
                        return False

                # Under the message's row lock: no process's sweep calls it lost meanwhile.
                await self.store.send_locked(message_id, deliver)
                user = replace(user, last_proactive_at=now, unanswered=user.unanswered + 1)
                report.spoke += 1
        if decision.action is Action.THINK and decision.note is not None:
            n = decision.note
            await self.store.add_note(
                user_id,
                kind=n.kind,
                text=n.text,
                relevance=n.relevance,
                created_at=n.created_at,
                expires_at=n.expires_at,
                not_before=n.not_before,
                source_message_ids=n.source_message_ids,
            )
            notes.append(n)
            report.thought += 1
        if decision.action is Action.WAIT:
            report.waited += 1
        at = next_check(decision, user, now, self.rules, notes)
        await self.store.finish(
            user_id, now, action=decision.action.value, reason=decision.reason, next_check_at=at
        )

    # -- scheduling ------------------------------------------------------------
    def start(self, every: timedelta = timedelta(minutes=1)) -> None:
        """Run a pass every ``every`` in this process (users are due 5 min–8 h apart;
        a minute's tick keeps their times within a minute)."""
        if self.scheduler is not None:
            return
        # Sends a crash left pending are settled at start-up, before the first pass.
        self._sweep = asyncio.get_running_loop().create_task(
            self._sweep_at_start(), name="ors-sweep"
        )
        scheduler = AsyncIOScheduler(timezone=UTC)
        scheduler.add_job(
            self._tick,
            IntervalTrigger(seconds=max(every, timedelta(seconds=1)).total_seconds()),
            id="ors-pass",
            max_instances=1,
            coalesce=True,
        )
        scheduler.start()
        self.scheduler = scheduler

    async def _sweep_at_start(self) -> None:
        try:
            await self.sweep_lost()
        except Exception as exc:  # the database is away: the first pass sweeps again
            log.warning("ors: could not check for unconfirmed sends (%s)", exc)

    async def _tick(self) -> None:
        try:
            report = await self.run_pass()
        except Exception:  # e.g. the database is away: the next tick tries again
            log.exception("ors: pass failed")
            return
        if report.assessed:
            log.info(
                "ors: %d assessed, %d spoke, %d noted",
                report.assessed,
                report.spoke,
                report.thought,
            )

    async def stop(self) -> None:
        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
            await asyncio.sleep(0)
        if self._sweep is not None:
            await asyncio.gather(self._sweep, return_exceptions=True)
        async with self._running:  # let a pass in flight finish
            pass


async def doctor_check(store: ProactiveStore) -> tuple[str, bool, str]:
    """``(name, ok, detail)`` for ``doctor``: proactive sends a crash left unconfirmed.
    Advisory: a lost send is never re-sent, so nothing is wrong now, but the
    operator may want to look at the log of the time it happened."""
    counts = await store.status_counts()
    lost = counts.get("lost", 0)
    sent = counts.get("sent", 0)
    if not lost:
        return ("proactive messages", True, f"{sent} sent, none lost")
    return (
        "proactive messages",
        False,
        f"{lost} proactive message(s) were recorded but never confirmed sent (Clara stopped "
        "between recording and posting them); they are marked lost and will not be re-sent. "
        "The log around those times says why Clara stopped.",
    )


def cortex_memories(manager: MemoryManager, limit: int = 5) -> MemorySource:
    """Cortex memories for ORS's context, through ``MemoryManager.search``."""

    async def search(user_id: str, query: str) -> list[str]:
        result = await manager.search(user_id, query, limit=limit)
        return [m.content for m in result.memories]

    return search


def ors_after_turn(runner: OrsRunner) -> AfterTurn:
    """Each completed turn teaches ORS: activity, active hours, answered proactive messages.
    A one-to-one conversation (no speaker name: a DM) is what makes ORS default on."""

    async def after(ctx: TurnContext, done: Done) -> None:
        tc = ctx.tool_context
        try:
            await runner.saw_message(tc.user_id, tc.channel_id, is_dm=ctx.speaker is None)
        except Exception as exc:  # ORS learns next time; the conversation goes on
            log.warning("ors: could not record %s's message (%s)", tc.user_id, exc)

    return after


def install_ors(
    turn_runner: TurnRunner,
    store: ProactiveStore,
    settings: Settings,
    model: TextModel,
    sender: ProactiveSender,
    clock: Clock | None = None,
    *,
    concurrency: int = 8,
    memories: MemorySource | None = None,
) -> OrsRunner | None:
    """Wire ORS in: the after-turn hook that feeds it, and the runner (call its
    ``start()`` to schedule passes, ``stop()`` on shutdown).  ``None`` when
    ORS_ENABLED is off: nothing is installed and no one is ever messaged."""
    if not settings.ors_enabled:
        log.info("proactive messages are off (ORS_ENABLED=false)")
        return None
    runner = OrsRunner(
        store,
        ModelDecider(model),
        sender,
        rules_from(settings),
        clock,
        concurrency=concurrency,
        memories=memories,
        idle_timeout=timedelta(minutes=settings.ors_idle_timeout_minutes),
        summarizer=model,
    )
    turn_runner.add_after_turn(ors_after_turn(runner))
    return runner
