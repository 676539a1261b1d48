"""Organic Response System settings (proactive messages)."""

from __future__ import annotations

from pydantic import AliasChoices, Field

from .base import ClaraSettingsBase


class CompanionSettings(ClaraSettingsBase):
    ors_enabled: bool = Field(
        False,
        validation_alias=AliasChoices("ORS_ENABLED", "PROACTIVE_ENABLED"),
        description="Let Clara reach out on her own when there is a real reason (alias PROACTIVE_ENABLED).",
    )
    ors_base_interval_minutes: int = Field(
        15, ge=1, description="Base minutes between ORS checks; adapts to context."
    )
    ors_min_speak_gap_hours: float = Field(
        2, ge=0, description="Least hours between two proactive messages to one user."
    )
    ors_active_days: int = Field(
        7, ge=1, description="Only users active within this many days are considered."
    )
    ors_note_decay_days: int = Field(
        7, ge=1, description="Days until an ORS note's relevance decays to zero."
    )
    ors_idle_timeout_minutes: int = Field(
        30,
        ge=1,
        description="Minutes of silence before a conversation summary is extracted for ORS.",
    )
