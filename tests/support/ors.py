"""Shared pieces of the ORS tests: the rules they run under, a start time, the
model's structured answer as the scripted fake LLM returns it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from clara_core.companion.ors import OrsRules, QuietHours
from tests.fakes.fake_llm import Reply

#: A Sunday noon in Berlin (11:00 UTC).
T0 = datetime(2026, 11, 22, 11, 0, tzinfo=UTC)
RULES = OrsRules(
    timezone="Europe/Berlin",
    min_speak_gap=timedelta(hours=2),
    quiet_hours=QuietHours.parse("22:00-08:00"),
    active_days=7,
    note_decay_days=7,
    base_interval=timedelta(minutes=15),
)


def answer(action: str, reason: str = "because", message: str = "", **note: object) -> Reply:
    """An ``ors_decision`` answer (every field present, as the strict schema asks)."""
    body = {
        "action": action,
        "reason": reason,
        "message": message,
        "note_kind": note.get("kind", ""),
        "note_text": note.get("text", ""),
        "note_relevance": note.get("relevance", 0),
        "note_not_before": note.get("not_before", ""),
        "note_expires_at": note.get("expires_at", ""),
    }
    return Reply(json.dumps(body))
