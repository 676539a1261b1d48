"""Cortex memory settings: embedder, emotion scorer, retrieval weights, consolidation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import NoDecode

from clara_core.ids import LOCAL_EMBEDDER_DIMS as NATIVE_DIMS

from .base import ClaraSettingsBase


class CortexSettings(ClaraSettingsBase):
    cortex_enabled: bool = Field(
        True, description="Long-term memory (Cortex). false = Clara remembers nothing across turns."
    )
    cortex_embedding_provider: Literal["local", "openai"] = Field(
        "local",
        description="Embedder: local (offline MiniLM int8 ONNX, no download) or openai.",
    )
    cortex_embedding_model: str | None = Field(
        None,
        description="Embedding model; default all-MiniLM-L6-v2-int8 (local) or text-embedding-3-small (openai).",
    )
    cortex_embedding_dims: int = Field(
        384,
        ge=8,
        le=2000,
        description="Embedding dimension stored in pgvector; changing it needs 'cortex reembed'.",
    )
    cortex_embedding_api_key: SecretStr | None = Field(
        None, description="API key for CORTEX_EMBEDDING_PROVIDER=openai."
    )
    cortex_embedding_base_url: str = Field(
        "https://api.openai.com/v1", description="Base URL of the OpenAI embeddings endpoint."
    )
    cortex_emotion_scorer: Literal["auto", "llm", "heuristic"] = Field(
        "auto",
        description="Emotion scoring: llm (low-tier model), heuristic (local), auto (llm when a provider key is set).",
    )
    # The spec's 0.40/0.25/0.20/0.15 measured MRR 0.673 on bench/retrieval_quality.py;
    # similarity-heavy 0.85/0.10/0.05/0 measured 0.843 (docs/benchmarks.md).
    cortex_retrieval_weights: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [0.85, 0.10, 0.05, 0.0],
        description="Re-ranking weights similarity,recency,emotion,reinforcement (sum 1).",
    )
    cortex_max_retrieved: int = Field(
        15, ge=1, le=100, description="Memories retrieved into the prompt per turn."
    )
    # Hybrid retrieval (clara_core/cortex/retrieval.py, issue 14); the defaults are the
    # ones measured on bench/datasets/long_conversations.json (docs/benchmarks.md).
    cortex_lexical_search: bool = Field(
        True,
        description="Fuse a full-text (keyword) leg with the vector search, so names and places in a question count.",
    )
    cortex_lexical_weight: float = Field(
        1.0,
        ge=0,
        le=5,
        description="Weight of the keyword ranking against the vector ranking (1.0) in the fusion.",
    )
    cortex_lexical_min_coverage: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of a question's keyword weight a keyword match must cover to count; 0 = any shared word.",
    )
    cortex_generic_penalty: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Score multiplier for memories with almost no content words ('That's awesome!'); 1 = off.",
    )
    cortex_time_boost: float = Field(
        1.5,
        ge=1,
        le=10,
        description="Score multiplier for memories inside a time the question names ('last May'); 1 = off.",
    )
    cortex_diversity: float = Field(
        0.0,
        ge=0,
        le=1,
        description="How strongly near-duplicate memories are kept out of one result list (MMR); 0 = off.",
    )
    cortex_contextual_embedding: bool = Field(
        False,
        description="Embed a memory with its metadata speaker and context (the turns before it) when given.",
    )
    cortex_context_weight: float = Field(
        0.5,
        ge=0,
        le=2,
        description="Weight of a contextual memory's context vector blended into its own.",
    )
    cortex_episodes: bool = Field(
        True,
        description=(
            "Also keep the user's own words of each exchange as searchable episodes beside "
            "the extracted facts (the prompt shows one of a fact and its turn)."
        ),
    )
    cortex_text_search_config: str = Field(
        "english",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$",
        description=(
            "PostgreSQL text search configuration (language) of the keyword search, e.g. "
            "english, german, simple; changing it needs 'cortex reindex-text'."
        ),
    )
    cortex_outbox_dir: Path | None = Field(
        None,
        description="Durable outbox for memory writes while PostgreSQL is down (default CLARA_DATA_DIR/cortex-outbox).",
    )
    cortex_extraction_enabled: bool = Field(
        True, description="Extract notable facts from each conversation turn into memory."
    )
    cortex_consolidation_enabled: bool = Field(
        True, description="Run background consolidation (patterns, contradictions, compaction)."
    )
    cortex_consolidation_interval_hours: float = Field(
        6, gt=0, description="Hours between consolidation runs."
    )
    cortex_cleanup_interval_hours: float = Field(
        1, gt=0, description="Hours between expired working-memory cleanups."
    )
    cortex_compaction_interval_hours: float = Field(
        168, gt=0, description="Hours between compactions of old episodes (weekly)."
    )
    cortex_pattern_min_memories: int = Field(
        5, ge=1, description="Least recent episodic memories before patterns are extracted."
    )
    cortex_pattern_confidence: float = Field(
        0.8, ge=0, le=1, description="Confidence at which a pattern updates identity."
    )
    cortex_pattern_lookback_days: int = Field(
        7, ge=1, description="Days of episodic memories pattern extraction reads."
    )
    cortex_compact_after_days: int = Field(
        30, ge=1, description="Episodes older than this are compacted into weekly summaries."
    )
    cortex_compact_min_memories: int = Field(
        10, ge=1, description="Least old episodes before compaction runs for a user."
    )
    # The spec's 0.8 suits larger embedders; with MiniLM two conflicting facts about
    # the same thing ("sister is Ana" / "sister's name is Rita") measure ~0.64, and
    # unrelated facts 0.04-0.4.
    cortex_contradiction_similarity: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Cosine similarity that puts two facts in one cluster for the contradiction check.",
    )
    cortex_max_memories_per_run: int = Field(
        500, ge=10, description="Most memories one consolidation step reads per user."
    )
    cortex_max_concurrent_users: int = Field(5, ge=1, description="Users consolidated at once.")
    cortex_worker_queue: bool = Field(
        False,
        description="Queue consolidation and compaction on Redis for `python discord_bot.py "
        "worker` processes instead of running them in this process (they need the same "
        "PostgreSQL and Redis).",
    )
    cortex_worker_redeliver_seconds: float = Field(
        900,
        ge=1,
        description="Seconds a queued job may stay unacknowledged by a worker that stopped "
        "(killed, or hung) before another worker takes it over and runs it. A live worker "
        "keeps its jobs fresh, so a long job is never taken from it; lower it for a faster "
        "recovery, keep it above a worker's longest event-loop stall.",
    )

    @field_validator("cortex_embedding_dims")
    @classmethod
    def _dims_the_embedder_makes(cls, v: int, info: ValidationInfo) -> int:
        # The local model has one fixed width; finding that out only when the embedder
        # loads (after storage started) made it a late exit 1 instead of a config error.
        # The provider field is declared (and so validated) before this one.
        if info.data.get("cortex_embedding_provider") == "local" and v != NATIVE_DIMS:
            raise ValueError(
                f"the local embedder makes {NATIVE_DIMS}-dimensional vectors; set "
                f"CORTEX_EMBEDDING_DIMS={NATIVE_DIMS}, or CORTEX_EMBEDDING_PROVIDER=openai "
                "for other sizes"
            )
        return v

    @field_validator("cortex_retrieval_weights", mode="before")
    @classmethod
    def _split_weights(cls, v: object) -> object:
        if isinstance(v, str):
            return [p.strip() for p in v.split(",") if p.strip()]
        return v

    @field_validator("cortex_retrieval_weights")
    @classmethod
    def _weights(cls, v: list[float]) -> list[float]:
        if len(v) != 4:
            raise ValueError("give four weights: similarity,recency,emotion,reinforcement")
        if any(w < 0 for w in v) or abs(sum(v) - 1.0) > 0.01:
            raise ValueError(f"weights must be non-negative and sum to 1 (got {sum(v):.2f})")
        return v

    @model_validator(mode="after")
    def _default_model(self) -> CortexSettings:
        if self.cortex_embedding_model is None:
            self.cortex_embedding_model = (
                "all-MiniLM-L6-v2-int8"
                if self.cortex_embedding_provider == "local"
                else "text-embedding-3-small"
            )
        return self
