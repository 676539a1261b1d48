"""What a turn reports while it runs; adapters (Discord, console) render these."""

from __future__ import annotations

from dataclasses import dataclass

from clara_core.llm.tiers import Tier
from clara_core.llm.types import Usage
from tools.registry import ToolAttachment


@dataclass(frozen=True)
class TierChosen:
    tier: Tier | None  # None: the provider's base model
    model: str  # the model that answers
    auto: bool  # picked by AUTO_TIER_SELECTION
    explicit: bool  # the user asked with a !prefix
    tool_model: str | None = None  # the model for tool-calling steps, when another one


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolStarted:
    call_id: str
    name: str
    step: int
    activity: str | None = None  # what the user is told it does ("running Python")


@dataclass(frozen=True)
class ToolFinished:
    call_id: str
    name: str
    step: int
    ok: bool
    duration_s: float
    preview: str
    #: Files it made for the user (a plot); ``Done.attachments`` gathers the turn's.
    attachments: tuple[ToolAttachment, ...] = ()


@dataclass(frozen=True)
class Done:
    text: str  # the whole answer: the text of every model call, in order
    model: str  # the model that produced it
    tier: Tier | None
    usage: Usage
    tool_steps: int
    #: The model that ran the tool steps, when not the one that answered (the
    #: low tier hands its tool-calling steps to the base model).
    tool_model: str | None = None
    #: Files the turn's tools made for the user, for the adapter to attach to the
    #: answer; one per file name (a plot re-drawn in a later step replaces the first).
    attachments: tuple[ToolAttachment, ...] = ()


@dataclass(frozen=True)
class Failed:
    message: str  # plain language, for the user
    detail: str  # for logs


PipelineEvent = TierChosen | TextDelta | ToolStarted | ToolFinished | Done | Failed
