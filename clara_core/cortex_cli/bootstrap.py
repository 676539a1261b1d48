"""``cortex bootstrap --user ID FILE [--apply]``: seed a user's memory from a text file.

The file (a profile the user or the operator wrote: who they are, people in
their life, preferences, plans) is cut into chunks at paragraph and line
boundaries and each chunk goes through conversation's own fact extraction:
the same answer schema (``extraction.FACTS_ANSWER``, the provider's structured
output through Cortex's ``TextModel`` port), the same tolerant parser, and on
``--apply`` the same write path (``MemoryExtractor.apply``: identity facts
supersede their key's old value, a fact within ``DUPLICATE_MATCH`` of an active
memory is skipped, everything goes through ``MemoryManager`` and its durable
outbox).  That skip makes the command idempotent: running it again stores
nothing new; identity facts whose key already holds the same value are skipped
before ``update_identity`` (which would otherwise supersede a value by itself).

A model is required: there is no rule-based fallback, because a profile is
prose in the first person and what makes the stored facts useful (third person,
typed, identity keys) is the model's reading.  Without an LLM key the command
says which setting to set (exit 2), like ``cortex consolidate``.

The dry run (default) needs no database: it prints the facts the model read,
or with ``--json`` a document of them, and writes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings
from ..cortex.extraction import FACTS_ANSWER, SYSTEM, ExtractedFact, MemoryExtractor, parse_facts
from ..cortex.ports import TextModel
from ..cortex.types import MemoryType
from ..errors import ClaraError, ConfigError
from .session import CortexSession

#: Longest file read (a profile is pages, not a book): ~150 model calls at most.
MAX_BYTES = 512 * 1024
#: Characters per extraction call: well inside the model's answer budget per chunk.
CHUNK_CHARS = 3000
MAX_TOKENS = 1500

PROMPT = """Known facts about the user:
{known}

A profile of the user ({speaker}), part {part} of {parts}:
---
{text}
---

List the facts from this profile worth remembering for weeks: who they are, people
and pets in their life, preferences, plans, important events. Write each fact in the
third person about the user ("Their sister is called Ana"), self-contained.

Return {{"facts": [...]}} where each fact is
{{"content": str, "type": "identity" | "semantic" | "episodic",
  "key": short identity key like "name", "sister", "occupation", "location" (identity only, else null),
  "value": the identity value (identity only, else null),
  "corrects": null,
  "emotion": emotional intensity 0.0-1.0}}
Return {{"facts": []}} when there is nothing worth remembering."""


class BootstrapFileError(ClaraError):
    """The profile file can't be used (missing, empty, too large, not text): exit 2."""


def read_profile(path: Path) -> str:
    """The file's text; ``BootstrapFileError`` saying what is wrong (blocking: call in a thread)."""
    if not path.exists():
        raise BootstrapFileError(f"{path}: no such file")
    if not path.is_file():
        raise BootstrapFileError(f"{path}: not a file")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise BootstrapFileError(
            f"{path}: {size} bytes is more than {MAX_BYTES} a profile may have; split it and "
            "bootstrap the parts one after the other"
        )
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BootstrapFileError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    if not text.strip():
        raise BootstrapFileError(f"{path}: the file is empty: there is nothing to extract")
    return text


def chunk_text(text: str, limit: int = CHUNK_CHARS) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut between paragraphs,
    else between lines, else between words (a fact rarely spans a paragraph)."""

    def pieces(block: str, seps: tuple[str, ...]) -> list[str]:
        if len(block) <= limit:
            return [block]
        if not seps:
            return [block[i : i + limit] for i in range(0, len(block), limit)]
        sep, rest = seps[0], seps[1:]
        out: list[str] = []
        current = ""
        for part in block.split(sep):
            for small in pieces(part, rest):
                joined = f"{current}{sep}{small}" if current else small
                if len(joined) <= limit:
                    current = joined
                else:
                    if current.strip():
                        out.append(current)
                    current = small
        if current.strip():
            out.append(current)
        return out

    normalized = "\n".join(line.rstrip() for line in text.strip().splitlines())
    return [c.strip() for c in pieces(normalized, ("\n\n", "\n", " ")) if c.strip()]


def _identity_value(fact: ExtractedFact) -> str:
    return str(fact.value if fact.value is not None else fact.content).strip()


def _same(a: Any, b: Any) -> bool:
    return str(a).strip().casefold() == str(b).strip().casefold()


def _dedupe(facts: list[ExtractedFact]) -> list[ExtractedFact]:
    """One fact per content (and per identity key: the last value read wins)."""
    seen: set[str] = set()
    by_key: dict[str, int] = {}
    out: list[ExtractedFact] = []
    for fact in facts:
        if fact.memory_type is MemoryType.IDENTITY and fact.key:
            if fact.key in by_key:
                out[by_key[fact.key]] = fact
                continue
            by_key[fact.key] = len(out)
        else:
            norm = " ".join(fact.content.casefold().split())
            if norm in seen:
                continue
            seen.add(norm)
        out.append(fact)
    return out


@dataclass
class Extraction:
    chunks: int
    facts: list[ExtractedFact]


async def extract_profile(
    model: TextModel, text: str, *, user: str, known: dict[str, Any], chunk_chars: int
) -> Extraction:
    chunks = chunk_text(text, chunk_chars)
    known = dict(known)
    facts: list[ExtractedFact] = []
    for n, chunk in enumerate(chunks, 1):
        prompt = PROMPT.format(
            known="\n".join(f"- {k}: {v}" for k, v in known.items()) or "(none yet)",
            speaker=user,
            part=n,
            parts=len(chunks),
            text=chunk,
        )
        try:
            answer = await model.complete_text(
                prompt, max_tokens=MAX_TOKENS, system=SYSTEM, json_answer=FACTS_ANSWER
            )
        except ClaraError as exc:
            raise ClaraError(f"reading part {n} of {len(chunks)} failed: {exc}") from exc
        found = parse_facts(answer)
        if len(chunks) > 1:
            print(f"part {n}/{len(chunks)}: {len(found)} fact(s)", file=sys.stderr)
        for fact in found:
            fact.corrects = None  # a profile states facts; corrections come from conversation
            if fact.memory_type is MemoryType.IDENTITY and fact.key:
                known[fact.key] = _identity_value(fact)  # later parts see what earlier ones read
        facts.extend(found)
    return Extraction(len(chunks), _dedupe(facts))


def _label(fact: ExtractedFact) -> str:
    if fact.memory_type is MemoryType.IDENTITY:
        return f"{fact.key}={_identity_value(fact)}"
    return fact.content


def _fact_json(fact: ExtractedFact) -> dict[str, Any]:
    return {
        "content": fact.content,
        "type": fact.memory_type.value,
        "key": fact.key,
        "value": fact.value,
        "emotion": fact.emotion,
    }


async def bootstrap_cmd(settings: Settings, args: argparse.Namespace) -> int:
    text = await asyncio.to_thread(read_profile, args.file)
    problems = settings.missing_llm_keys()
    if problems:
        raise ConfigError(problems, headline="cortex bootstrap reads the profile with an LLM:")
    from ..llm.service import LLMService
    from ..pipeline.memory import ServiceTextModel

    llm = LLMService(settings)
    try:
        model = ServiceTextModel(llm)
        if not args.apply:
            extraction = await extract_profile(
                model, text, user=args.user, known={}, chunk_chars=args.chunk_chars
            )
            _print_dry_run(args, extraction)
            return 0
        session = await CortexSession.open(settings)
        try:
            return await _apply(session, model, text, args)
        finally:
            await session.close()
    finally:
        await llm.aclose()


def _print_dry_run(args: argparse.Namespace, extraction: Extraction) -> None:
    if args.json:
        doc = {
            "user": args.user,
            "file": str(args.file),
            "chunks": extraction.chunks,
            "facts": [_fact_json(f) for f in extraction.facts],
        }
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    print(
        f"{args.file}: {extraction.chunks} part(s) read, {len(extraction.facts)} fact(s) "
        f"for user {args.user}:"
    )
    for fact in extraction.facts:
        print(f"  {fact.memory_type.value:<9} {_label(fact)}")
    print(
        "\ndry run: nothing was written; run again with --apply to store them "
        "(facts Clara already knows are skipped)"
    )


async def _apply(
    session: CortexSession, model: TextModel, text: str, args: argparse.Namespace
) -> int:
    memory = session.memory
    user = args.user
    known = await memory.get_identity(user)
    extraction = await extract_profile(
        model, text, user=user, known=known, chunk_chars=args.chunk_chars
    )
    extractor = MemoryExtractor(memory, model)
    new = known_count = 0
    print(f"{args.file}: {extraction.chunks} part(s) read, {len(extraction.facts)} fact(s):")
    for fact in extraction.facts:
        if (
            fact.memory_type is MemoryType.IDENTITY
            and fact.key in known
            and _same(known[fact.key], _identity_value(fact))
        ):
            known_count += 1
            print(f"  known     {_label(fact)}")
            continue
        stored = await extractor.apply(user, [fact])
        if stored:
            new += 1
            print(f"  stored    {_label(fact)}")
        else:
            known_count += 1
            print(f"  known     {_label(fact)}")
    queued = memory.outbox.pending
    print(f"\nstored {new} new fact(s) for user {user}; {known_count} already known")
    if queued:
        print(
            f"{queued} write(s) wait in the outbox (PostgreSQL was unreachable): Clara "
            "applies them when she starts"
        )
    return 0
