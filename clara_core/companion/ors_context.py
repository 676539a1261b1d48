"""What ORS shows the model about one user, and how it reads the model's answer.

Pure: the context is a plain dataclass gathered elsewhere (pipeline/proactive.py),
the prompt is text, the answer is parsed tolerantly into an ``ors.Decision``.
The rules in ``ors.py`` then settle whatever the model said.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from clara_core.cortex.llm_json import as_number, json_items, strict_object
from clara_core.cortex.ports import JsonAnswer

from .ors import Action, Decision, Note, OrsRules, UserOrs, note_relevance

SYSTEM = (
    "You are Clara's Organic Response System. Decide whether Clara should reach out to this "
    "user on her own right now. WAIT when there is nothing worth saying. THINK to file a note "
    "for later (e.g. an event whose outcome to ask about once it has happened: set "
    "note_not_before to when it will be over). SPEAK only with a clear, caring reason; the "
    "message is short, natural, and never pushy. Respect every stated boundary. Answer only "
    "with the JSON object asked for."
)

ANSWER = JsonAnswer(
    "ors_decision",
    strict_object(
        {
            "action": {"type": "string", "enum": ["wait", "think", "speak"]},
            "reason": {"type": "string", "description": "why, in one sentence"},
            "message": {"type": "string", "description": "SPEAK: what Clara sends; else empty"},
            "note_kind": {"type": "string", "description": "THINK: event, follow_up, observation"},
            "note_text": {"type": "string", "description": "THINK: what to remember; else empty"},
            "note_relevance": {"type": "number", "description": "THINK: 0..1"},
            "note_not_before": {
                "type": "string",
                "description": "THINK: ISO 8601 time before which it is no reason to speak, or empty",
            },
            "note_expires_at": {
                "type": "string",
                "description": "THINK: ISO 8601 time after which it no longer matters, or empty",
            },
        }
    ),
    "Clara's decision about reaching out to one user.",
)


@dataclass(frozen=True)
class OrsContext:
    user: UserOrs
    now: datetime
    rules: OrsRules
    notes: Sequence[Note] = ()
    summary: str | None = None
    open_threads: Sequence[str] = ()
    active_hours: dict[str, int] = field(default_factory=dict)
    proactive_sent: int = 0
    proactive_answered: int = 0
    boundaries: Sequence[str] = ()
    memories: Sequence[str] = ()


def busiest_hours(active_hours: dict[str, int], top: int = 3) -> list[int]:
    ranked = sorted(active_hours.items(), key=lambda kv: (-int(kv[1]), int(kv[0])))
    return [int(h) for h, _ in ranked[:top]]


def response_rate(sent: int, answered: int) -> float | None:
    return None if sent <= 0 else max(0.0, min(1.0, answered / sent))


def _ago(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 90:
        return f"{minutes} minutes"
    if minutes < 48 * 60:
        return f"{minutes // 60} hours"
    return f"{minutes // 1440} days"


def render(ctx: OrsContext) -> str:
    """The user prompt: facts first, then the notes (due ones with their decayed relevance)."""
    local = ctx.now.astimezone(ctx.rules.tz)
    u = ctx.user
    lines = [
        f"Now: {local:%A %Y-%m-%d %H:%M} ({ctx.rules.timezone}); ISO {ctx.now.isoformat()}",
    ]
    if u.last_user_message_at is not None:
        lines.append(f"Last message from the user: {_ago(ctx.now - u.last_user_message_at)} ago")
    if u.last_proactive_at is not None:
        lines.append(
            f"Clara's last proactive message: {_ago(ctx.now - u.last_proactive_at)} ago; "
            f"unanswered since: {u.unanswered}"
        )
    rate = response_rate(ctx.proactive_sent, ctx.proactive_answered)
    if rate is not None:
        lines.append(f"The user answered {rate:.0%} of {ctx.proactive_sent} proactive messages")
    if ctx.active_hours:
        hours = ", ".join(f"{h:02d}:00" for h in busiest_hours(ctx.active_hours))
        lines.append(f"Usually active around: {hours}")
    if ctx.boundaries:
        lines.append("Boundaries the user stated: " + "; ".join(ctx.boundaries))
    if ctx.summary:
        lines.append(f"Last conversation summary: {ctx.summary}")
    if ctx.open_threads:
        lines.append("Open threads: " + "; ".join(ctx.open_threads))
    if ctx.memories:
        lines.append("What Clara remembers: " + "; ".join(ctx.memories))
    due, later = [], []
    for n in ctx.notes:
        r = note_relevance(n, ctx.now, ctx.rules)
        if r <= 0:
            continue  # decayed or expired: no longer a reason
        if n.not_before is not None and ctx.now < n.not_before:
            later.append(f"- [{n.kind}] {n.text} (not before {n.not_before.isoformat()})")
        else:
            due.append(f"- [{n.kind}] {n.text} (relevance {r:.2f})")
    lines.append("Notes due now:" + ("\n" + "\n".join(due) if due else " none"))
    if later:
        lines.append("Notes for later (not a reason yet):\n" + "\n".join(later))
    return "\n".join(lines)


def _when(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        at = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def parse_decision(text: str, now: datetime) -> Decision | None:
    """The model's decision, or ``None`` when the answer holds no usable one."""
    for value in json_items(text, item_fields=frozenset({"action", "reason"})) or ():
        if not isinstance(value, dict):
            continue
        try:
            action = Action(str(value.get("action", "")).strip().lower())
        except ValueError:
            continue
        reason = str(value.get("reason") or "").strip() or "no reason given"
        if action is Action.SPEAK:
            message = str(value.get("message") or "").strip()
            return Decision(action, reason, message=message or None)
        if action is Action.THINK:
            text_ = str(value.get("note_text") or "").strip() or reason
            relevance = as_number(value.get("note_relevance"))
            note = Note(
                str(value.get("note_kind") or "follow_up").strip()[:32] or "follow_up",
                text_,
                relevance=max(0.0, min(1.0, relevance if relevance is not None else 0.5)),
                created_at=now,
                expires_at=_when(value.get("note_expires_at")),
                not_before=_when(value.get("note_not_before")),
            )
            return Decision(action, reason, note=note)
        return Decision(action, reason)
    return None


# -- after an idle timeout: the conversation's summary and open threads -----------

SUMMARY_SYSTEM = (
    "You summarise a finished chat between a user and Clara for Clara's own later "
    "reference: two or three sentences, the open threads (things left unresolved or to "
    "come back to), and follow-ups: events the user mentioned whose outcome Clara could "
    "ask about, with the time after which asking makes sense (ISO 8601, or empty); and "
    "contact boundaries: limits the user explicitly set on Clara writing to them on her own "
    "(e.g. 'not before 10:00', 'no weekends', 'don't bring up work'), in short words, only "
    "if the user said so; usually none. Answer only with the JSON object asked for."
)

SUMMARY_ANSWER = JsonAnswer(
    "ors_conversation_summary",
    strict_object(
        {
            "summary": {"type": "string"},
            "open_threads": {"type": "array", "items": {"type": "string"}},
            "follow_ups": {
                "type": "array",
                "items": strict_object(
                    {
                        "text": {"type": "string"},
                        "not_before": {"type": "string", "description": "ISO 8601 or empty"},
                    }
                ),
            },
            "contact_boundaries": {"type": "array", "items": {"type": "string"}},
        }
    ),
    "A finished conversation, for the Organic Response System.",
)


@dataclass(frozen=True)
class ConversationDigest:
    summary: str
    open_threads: tuple[str, ...]
    follow_ups: tuple[tuple[str, datetime | None], ...]
    #: Limits the user stated on being contacted, in short words (usually none).
    boundaries: tuple[str, ...] = ()


def render_conversation(now: datetime, rules: OrsRules, turns: Sequence[tuple[str, str]]) -> str:
    local = now.astimezone(rules.tz)
    lines = [f"Now: {local:%A %Y-%m-%d %H:%M} ({rules.timezone}); ISO {now.isoformat()}", ""]
    lines += [f"{role}: {content[:2000]}" for role, content in turns]
    return "\n".join(lines)


def parse_digest(text: str) -> ConversationDigest | None:
    for value in json_items(text, item_fields=frozenset({"summary"})) or ():
        if not isinstance(value, dict) or not isinstance(value.get("summary"), str):
            continue
        threads = tuple(str(t).strip() for t in value.get("open_threads") or () if str(t).strip())[
            :10
        ]
        follow: list[tuple[str, datetime | None]] = []
        for item in value.get("follow_ups") or ():
            if isinstance(item, dict) and str(item.get("text") or "").strip():
                follow.append((str(item["text"]).strip(), _when(item.get("not_before"))))
        stated = tuple(
            str(b).strip()[:200] for b in value.get("contact_boundaries") or () if str(b).strip()
        )[:3]
        return ConversationDigest(value["summary"].strip(), threads, tuple(follow[:10]), stated)
    return None
