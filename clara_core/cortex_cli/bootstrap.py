"""``cortex bootstrap --user ID FILE``: seed a user's memory from a text file, review first.

Two steps, so what is stored is exactly what the operator reviewed (a second
reading by the model could differ):

1. ``cortex bootstrap --user ID profile.txt`` reads the profile with the model,
   prints the facts and writes them to ``profile.facts.json`` (or ``--out PATH``);
2. after reading (and, if need be, editing) that file,
   ``cortex bootstrap --user ID --apply profile.facts.json`` stores exactly its
   facts: no model call, no LLM key needed.  The file is validated first (exit 2
   naming what is wrong).

``--apply profile.txt`` still reads and stores in one step, without a review; it
says so.

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

The dry run (default) needs no database: it prints the facts the model read
(with ``--json``: the document instead), writes the facts file, and stores nothing.
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
    """The profile or facts file can't be used (missing, empty, too large, not text,
    not a valid facts file): exit 2."""


#: The facts file's "format" field: a file from something else is refused by name.
FACTS_FORMAT = "clara-bootstrap-facts/1"
_FACT_TYPES = {t.value: t for t in (MemoryType.IDENTITY, MemoryType.SEMANTIC, MemoryType.EPISODIC)}
_FACT_FIELDS = ("content", "type", "key", "value", "emotion")


def facts_path(profile: Path) -> Path:
    """Where the dry run writes the facts of ``profile`` by default: beside it."""
    return profile.with_name(f"{profile.stem}.facts.json")


def is_facts_file(path: Path) -> bool:
    return path.suffix.lower() == ".json"


def _facts_error(path: Path, where: str, problem: str) -> BootstrapFileError:
    return BootstrapFileError(
        f"{path}: {where}: {problem}; fix the file (or run the dry run again to rewrite it)"
    )


def parse_facts_file(path: Path, raw: bytes, user: str) -> list[ExtractedFact]:
    """The facts of a reviewed facts file, exactly as written there; a
    ``BootstrapFileError`` naming the first thing wrong."""
    try:
        doc = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise BootstrapFileError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    except json.JSONDecodeError as exc:
        raise BootstrapFileError(
            f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("facts"), list):
        raise BootstrapFileError(
            f'{path}: not a bootstrap facts file: expected an object with a "facts" list '
            "(what the dry run writes)"
        )
    if doc.get("format", FACTS_FORMAT) != FACTS_FORMAT:
        raise _facts_error(path, "format", f"{doc['format']!r} is not {FACTS_FORMAT!r}")
    if doc.get("user") is not None and str(doc["user"]) != user:
        raise BootstrapFileError(
            f"{path}: the facts are about user {doc['user']}, not {user}: "
            f'apply them with --user {doc["user"]}, or fix the file\'s "user"'
        )
    facts = []
    for n, item in enumerate(doc["facts"]):
        where = f"facts[{n}]"
        if not isinstance(item, dict):
            raise _facts_error(path, where, "each fact must be an object")
        unknown = sorted(set(item) - set(_FACT_FIELDS))
        if unknown:
            raise _facts_error(
                path,
                where,
                f"unknown field(s) {', '.join(unknown)} (known: {', '.join(_FACT_FIELDS)})",
            )
        content = item.get("content")
        if not isinstance(content, str) or not content.strip():
            raise _facts_error(path, f"{where}.content", "must be a non-empty string")
        kind = _FACT_TYPES.get(item.get("type"))  # type: ignore[arg-type]
        if kind is None:
            raise _facts_error(
                path,
                f"{where}.type",
                f"{item.get('type')!r} is not one of {', '.join(_FACT_TYPES)}",
            )
        key, value = item.get("key"), item.get("value")
        for name, v in (("key", key), ("value", value)):
            if v is not None and not isinstance(v, str):
                raise _facts_error(path, f"{where}.{name}", "must be a string or null")
        if kind is MemoryType.IDENTITY and not (key and key.strip()):
            raise _facts_error(
                path,
                f"{where}.key",
                'an identity fact needs a key (e.g. "name"), or make it "semantic"',
            )
        emotion = item.get("emotion")
        if emotion is not None and (
            isinstance(emotion, bool)
            or not isinstance(emotion, int | float)
            or not 0 <= emotion <= 1
        ):
            raise _facts_error(path, f"{where}.emotion", "must be a number from 0 to 1, or null")
        facts.append(
            ExtractedFact(
                content=content.strip(),
                memory_type=kind,
                key=key.strip() if kind is MemoryType.IDENTITY and key else None,
                value=value if kind is MemoryType.IDENTITY else None,
                emotion=float(emotion) if emotion is not None else None,
            )
        )
    return facts


def read_facts_file(path: Path, user: str) -> list[ExtractedFact]:
    """``parse_facts_file`` of the file at ``path`` (blocking: call in a thread)."""
    if not path.is_file():
        raise BootstrapFileError(
            f"{path}: no such file" if not path.exists() else f"{path}: not a file"
        )
    return parse_facts_file(path, path.read_bytes(), user)


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
    if args.apply and is_facts_file(args.file):
        # The reviewed facts: stored as written, without the model.
        facts = await asyncio.to_thread(read_facts_file, args.file, args.user)
        session = await CortexSession.open(settings)
        try:
            return await _store(session, facts, args, source=f"{args.file}: {len(facts)} fact(s)")
        finally:
            await session.close()
    if is_facts_file(args.file):
        raise BootstrapFileError(
            f"{args.file} is a facts file: add --apply to store its facts "
            "(the dry run reads a profile written as text)"
        )
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
            out = args.out or facts_path(args.file)
            doc = _facts_doc(args, extraction)
            await asyncio.to_thread(_write_facts, out, doc)
            _print_dry_run(args, extraction, doc, out)
            return 0
        session = await CortexSession.open(settings)
        try:
            return await _apply(session, model, text, args)
        finally:
            await session.close()
    finally:
        await llm.aclose()


def _facts_doc(args: argparse.Namespace, extraction: Extraction) -> dict[str, Any]:
    return {
        "format": FACTS_FORMAT,
        "user": args.user,
        "file": str(args.file),
        "chunks": extraction.chunks,
        "facts": [_fact_json(f) for f in extraction.facts],
    }


def _write_facts(path: Path, doc: dict[str, Any]) -> None:
    """Written whole or not at all (a half-written file would be applied as reviewed)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BootstrapFileError(
            f"cannot write the facts to {path}: {exc.strerror or exc}; choose another place with --out"
        ) from None


def _print_dry_run(
    args: argparse.Namespace, extraction: Extraction, doc: dict[str, Any], out: Path
) -> None:
    apply = f"python discord_bot.py cortex bootstrap --user {args.user} --apply {out}"
    if args.json:
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        print(f"facts written to {out}; to store them: {apply}", file=sys.stderr)
        return
    print(
        f"{args.file}: {extraction.chunks} part(s) read, {len(extraction.facts)} fact(s) "
        f"for user {args.user}:"
    )
    for fact in extraction.facts:
        print(f"  {fact.memory_type.value:<9} {_label(fact)}")
    print(
        f"\ndry run: nothing was stored. The facts are in {out}: review them (edit or delete "
        f"any), then store exactly those with:\n  {apply}\n"
        "(facts Clara already knows are skipped, so applying twice stores nothing new)"
    )


async def _apply(
    session: CortexSession, model: TextModel, text: str, args: argparse.Namespace
) -> int:
    """The one-step path: read the profile with the model and store what it read."""
    known = await session.memory.get_identity(args.user)
    extraction = await extract_profile(
        model, text, user=args.user, known=known, chunk_chars=args.chunk_chars
    )
    print(
        "read and stored in one step, without a review (the dry run writes the facts to a "
        "file to review and apply instead)"
    )
    source = f"{args.file}: {extraction.chunks} part(s) read, {len(extraction.facts)} fact(s)"
    return await _store(session, extraction.facts, args, source=source)


class _NoModel:
    """The model port for storing given facts: MemoryExtractor.apply embeds and
    stores, it never asks the model; a call here would be a bug, said plainly."""

    async def complete_text(self, prompt: str, **kwargs: Any) -> str:
        raise ClaraError("storing reviewed facts asked the model; this is a bug: please report it")


async def _store(
    session: CortexSession, facts: list[ExtractedFact], args: argparse.Namespace, *, source: str
) -> int:
    memory = session.memory
    user = args.user
    known = await memory.get_identity(user)
    extractor = MemoryExtractor(memory, _NoModel())
    new = known_count = 0
    print(f"{source}:")
    for fact in facts:
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
            if fact.memory_type is MemoryType.IDENTITY and fact.key:
                known[fact.key] = _identity_value(fact)
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
