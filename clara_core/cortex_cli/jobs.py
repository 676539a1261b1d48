"""``cortex consolidate``, ``import-mem0``, ``reembed``, ``reindex-text``: commands that write."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

from ..config import Settings
from ..cortex.mem0_import import (
    ImportPlan,
    ImportReport,
    apply_import,
    load_export,
    parse_user_map,
)
from ..cortex.reembed import ReembedError, plan_reembed, reembed
from ..cortex.types import MemoryType
from ..errors import ClaraError, ConfigError
from .progress import ProgressBar
from .session import CortexSession

TYPES = (MemoryType.IDENTITY, MemoryType.SEMANTIC, MemoryType.EPISODIC)


def _short(text: str, width: int = 70) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


# -- consolidate --------------------------------------------------------------------------


async def consolidate(settings: Settings, args: argparse.Namespace) -> int:
    problems = settings.missing_llm_keys()
    if problems:
        raise ConfigError(problems, headline="cortex consolidate needs an LLM:")
    from ..cortex.consolidation import ConsolidationRunner
    from ..llm.service import LLMService
    from ..pipeline.memory import ServiceTextModel

    session = await CortexSession.open(settings)
    llm = LLMService(settings)
    try:
        memory = session.memory
        runner = ConsolidationRunner(
            memory.warm,
            memory.hot,
            memory.ledger,
            ServiceTextModel(llm),
            memory.embedder,
            settings,
        )
        compact = True if args.compact else None
        if args.user:
            reports = [await runner.run_for_user(args.user, compact=compact)]
        else:
            reports = (await runner.run_all(compact=compact)).reports
            if not reports:
                print(
                    "no user has memories from the last "
                    f"{settings.cortex_pattern_lookback_days} days: nothing to consolidate"
                )
                return 0
    finally:
        await llm.aclose()
        await session.close()
    print(
        f"{'user':<20} {'read':>5} {'patterns':>8} {'identity':>8} {'conflicts':>9} "
        f"{'compacted':>9} {'ms':>7}  result"
    )
    for r in reports:
        result = "ok" if r.ok else "FAILED: " + (r.error or "").replace("\n", "; ")
        print(
            f"{r.user_id or '-':<20} {r.memories_processed:>5} {r.patterns_found:>8} "
            f"{r.identities_updated:>8} {r.contradictions_found:>9} "
            f"{r.memories_compacted:>9} {r.duration_ms or 0:>7}  {result}"
        )
    failed = sum(1 for r in reports if not r.ok)
    print(f"{len(reports)} user(s) consolidated, {failed} failed")
    return 0 if failed == 0 else 1


# -- import-mem0 --------------------------------------------------------------------------


def _type_table(rows: dict[str, Counter[MemoryType]], title: str) -> None:
    print(f"{title:<20} " + " ".join(f"{t.value:>9}" for t in TYPES) + f" {'total':>7}")
    for user in sorted(rows):
        counts = rows[user]
        cells = " ".join(f"{counts.get(t, 0):>9}" for t in TYPES)
        print(f"{user:<20} {cells} {sum(counts.values()):>7}")


def print_plan(plan: ImportPlan, source: str, *, sample: bool = True) -> None:
    print(
        f"{source}: {plan.total} entries, {len(plan.items)} valid, {len(plan.rejected)} rejected, "
        f"{plan.duplicates_in_file} duplicated in the file"
        + (f", {plan.undated} without a date (dated now)" if plan.undated else "")
    )
    per_user: dict[str, Counter[MemoryType]] = {}
    for (user, kind), n in plan.counts().items():
        per_user.setdefault(user, Counter())[kind] += n
    if per_user:
        print()
        _type_table(per_user, "classified as")
    if per_user and sample:
        print("\nsample:")
        for item in plan.sample():
            c = item.classification
            label = f"{c.identity_key}={c.identity_value}" if c.identity_key else f"({c.rule})"
            print(f"  {c.memory_type.value:<9} {_short(label, 28):<28} {_short(item.content)}")
    if plan.rejected:
        print("\nrejected:")
        for r in plan.rejected:
            who = f"id {r.mem0_id or '?'}, user {r.user_id or '?'}"
            print(f"  entry #{r.index} ({who}): {r.reason}")


def print_report(report: ImportReport) -> None:
    plan = report.plan
    new = sum(report.imported.values())
    present = sum(report.already_present.values())
    print(
        f"\nimported {new} new memories; skipped {present} already imported and "
        f"{plan.duplicates_in_file} duplicated in the file; rejected {len(plan.rejected)}"
    )
    print("\nvalidation (file → database):")
    print(f"{'user':<20} {'type':<9} {'in file':>8} {'new':>6} {'before':>7} {'stored':>7}")
    for (user, kind), n in sorted(plan.counts().items(), key=lambda kv: (kv[0][0], kv[0][1])):
        key = (user, kind)
        print(
            f"{user:<20} {kind.value:<9} {n:>8} {report.imported.get(key, 0):>6} "
            f"{report.already_present.get(key, 0):>7} {report.present.get(key, 0):>7}"
        )
    if report.identity_seeded:
        print("\nidentity seeded:")
        for user, facts in sorted(report.identity_seeded.items()):
            print(f"  {user}: " + ", ".join(f"{k}={v}" for k, v in sorted(facts.items())))
    if report.without_embedding:
        print(
            f"\n{report.without_embedding} memories were stored without a vector (the embedder "
            "failed); run 'cortex reembed --missing' when it works again"
        )
    if report.spot_checks:
        found = sum(1 for s in report.spot_checks if s.rank is not None)
        print(f"\nspot check, search by own text (top 3): {found}/{len(report.spot_checks)} found")
        for s in report.spot_checks:
            mark = f"ok #{s.rank}" if s.rank else "MISSED"
            print(f"  {mark:<6} {s.user_id:<16} {_short(s.content, 60)}")
    for note in report.notes:
        print(f"note: {note}")
    if report.ok:
        print(f"\nresult: all {len(plan.items)} valid memories are stored")
    else:
        print(f"\nresult: {report.missing} valid memories are NOT stored", file=sys.stderr)


async def import_mem0(settings: Settings, args: argparse.Namespace) -> int:
    user_map = parse_user_map(args.user_map)
    plan = await load_export(args.file, user_map=user_map)
    print_plan(plan, str(args.file), sample=not args.apply)
    if not args.apply:
        print("\ndry run: nothing was written; run again with --apply to import")
        return 0
    if not plan.items:
        print("\nnothing to import")
        return 0
    session = await CortexSession.open(settings)
    try:
        bar = ProgressBar("importing")
        try:
            report = await apply_import(session.memory, plan, batch=args.batch, progress=bar)
        finally:
            bar.finish()
    finally:
        await session.close()
    print_report(report)
    return 0 if report.ok else 1


# -- reembed ------------------------------------------------------------------------------


async def reembed_cmd(settings: Settings, args: argparse.Namespace) -> int:
    session = await CortexSession.open(settings, check_embedder=False)
    try:
        embedder = session.memory.embedder
        plan = await plan_reembed(session.engine, embedder, missing_only=args.missing)
        recorded = plan.recorded
        print(
            f"embedder: {plan.model} ({plan.dims} dims); stored: "
            + (f"{recorded['model']} ({recorded['dims']} dims)" if recorded else "not recorded")
            + f", column vector({plan.column_dims}); {plan.total} memories"
        )
        if plan.converts_column and args.missing:
            raise ReembedError(
                f"the memories table stores {plan.column_dims}-dimensional vectors but "
                f"{plan.model!r} makes {plan.dims}: run 'cortex reembed' without --missing"
            )
        if session.attached_to is not None and not args.missing and plan.candidates:
            raise ClaraError(
                f"Clara is running (pid {session.attached_to}) on this data directory: stop her "
                "first, or she keeps writing vectors of her embedder while they are converted"
            )
        if plan.converts_column:
            print(
                f"the embedding dimension changes ({plan.column_dims} → {plan.dims}): the column "
                f"is converted and ALL {plan.total} stored vectors are rewritten",
                file=sys.stderr,
            )
        what = "without a vector" if args.missing else "to embed"
        print(f"{plan.candidates} memories {what}")
        bar = ProgressBar("embedding")
        try:
            report = await reembed(
                session.engine,
                embedder,
                plan,
                batch=args.batch,
                progress=bar,
                retrieval=session.memory.retrieval,
            )
        finally:
            bar.finish()
    finally:
        await session.close()
    if plan.candidates:
        print(f"embedded {report.embedded} memories in {report.seconds:.1f}s")
    if report.failed:
        print(f"{report.failed} memories could not be embedded; run the command again")
    if report.index_rebuilt:
        print("rebuilt the vector index")
    if report.index_skipped:
        print(
            f"no vector index: pgvector indexes at most 2000 dimensions ({plan.dims} asked); "
            "searches scan the table"
        )
    if report.recorded and plan.recorded != {"model": plan.model, "dims": plan.dims}:
        print(f"recorded embedder {plan.model} ({plan.dims} dims)")
    elif report.other_model_left:
        print(f"{report.other_model_left} vectors of another model remain: run 'cortex reembed'")
    return 0 if report.ok else 1


# -- reindex-text --------------------------------------------------------------------------


async def reindex_text_cmd(settings: Settings, args: argparse.Namespace) -> int:
    """Rebuild memories.content_tsv with CORTEX_TEXT_SEARCH_CONFIG (clara_core/cortex/text_search.py)."""
    from ..cortex import text_search

    wanted = settings.cortex_text_search_config
    session = await CortexSession.open(settings)
    try:
        was = await text_search.stored_config(session.engine)
        if was != wanted and session.attached_to is not None:
            raise ClaraError(
                f"Clara is running (pid {session.attached_to}) on this data directory: stop "
                "her first; the rebuild locks the memories table"
            )
        started = time.monotonic()
        changed = await text_search.reindex(session.engine, wanted)
    finally:
        await session.close()
    if changed:
        print(f"keyword index rebuilt: {was} → {wanted} ({time.monotonic() - started:.1f}s)")
    else:
        print(f"keyword index already uses {wanted}: nothing to do")
    return 0
