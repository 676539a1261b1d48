"""Companion settings: the mood (hormones) and the Organic Response System (proactive messages)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, field_validator

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
    ors_pass_interval_seconds: int = Field(
        60,
        ge=1,
        le=3600,
        description="Seconds between two ORS passes over the users that are due "
        "(each user's own next check is set by ORS_BASE_INTERVAL_MINUTES and context).",
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
    ors_quiet_hours: str = Field(
        "22:00-08:00",
        description=(
            "Local hours (CLARA_TIMEZONE) without proactive messages, HH:MM-HH:MM, may cross "
            "midnight; off for none."
        ),
    )
    ors_default_on: bool = Field(
        False,
        description=(
            "Proactive messages on for users who never chose with /clara proactive; off by "
            "default except for people who talk to Clara in DMs."
        ),
    )

    @field_validator("ors_quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str) -> str:
        # The parser lives with the rules that use it (pure, no imports of its own).
        from clara_core.companion.ors import QuietHours

        QuietHours.parse(value)  # ValueError says what is wrong
        return value.strip()

    # -- hormones (the mood) --------------------------------------------------
    mood_enabled: bool = Field(
        True,
        validation_alias=AliasChoices("MOOD_ENABLED", "HORMONES_ENABLED"),
        description=(
            "Give Clara a mood per channel (hormone levels that colour her tone); "
            "/clara mood shows it (alias HORMONES_ENABLED)."
        ),
    )
    mood_tone_model: bool = Field(
        False,
        description=(
            "Read each message's tone with the low tier (structured output) instead of the "
            "local heuristic alone; one small model call per message."
        ),
    )
    mood_tone_timeout_seconds: float = Field(
        1.5,
        gt=0,
        le=10,
        description="Longest wait for the tone model before the local heuristic decides.",
    )
