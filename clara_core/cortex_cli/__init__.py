"""``python discord_bot.py cortex ACTION``: the operator's tools for Cortex memory.

Exit codes as for the rest of the CLI: 0 ok, 1 the work failed (or, for an
import, not every valid memory got stored), 2 bad usage or configuration —
including ``EmbedderMismatch``, which the operator fixes with ``cortex reembed``.

Errors are printed as one plain line (secrets redacted), never as a traceback;
``LOG_LEVEL=DEBUG`` logs the traceback too.  This module stays light: the parser
is built for every ``discord_bot.py`` invocation.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..cortex.types import MemoryType

if TYPE_CHECKING:
    from ..config import Settings

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

IMPORT_HELP = """\
Import a mem0 export (the JSON of mem0's get_all: {"results": [...]}, a list, or
{user_id: [...]}).  Each memory is classified (identity / semantic / episodic) by
fixed rules; identity facts with a clear key (name, location, occupation, family
names...) are seeded as identity facts, the rest stored with their original dates
and metadata (plus mem0_id and imported_from).  Without --apply nothing is
written (and no database is needed): the classification is shown for review.
Re-running an import never duplicates: memory ids derive from the mem0 ids."""

REEMBED_HELP = """\
Re-embed stored memories with the configured embedder (CORTEX_EMBEDDING_*), after
changing it (Clara refuses to start while stored vectors come from another
embedder), or with --missing to fill vectors that an embedding outage left empty.
If the embedding dimension changes, the memories.embedding column is converted to
the new size and EVERY stored vector is rewritten; stop Clara first.  The ORM
model declares vector(384): after a dimension change the alembic model-vs-database
comparison reports that column, which is expected for an operator-chosen size."""

BOOTSTRAP_HELP = """\
Seed a user's memory from a profile written as text (who they are, people in their
life, preferences, plans), in two steps:
  1. cortex bootstrap --user ID profile.txt
     The LLM reads the file in parts (the fact extraction conversation uses); the
     facts are printed and written to profile.facts.json (or --out PATH).  Nothing
     is stored and no database is needed.
  2. cortex bootstrap --user ID --apply profile.facts.json
     Stores exactly the facts in that file, after you reviewed (and maybe edited)
     it: no LLM call.  The file is checked first.
Facts Clara already knows are skipped, so applying twice stores nothing new.
--apply profile.txt reads and stores in one step, without a review."""

CLEAR_HELP = """\
Delete everything Clara stores about one user (--user ID: what /clara forget
deletes) or about every user (--all: also users only a table still names, channel
summaries and every sandbox workspace; the schema and configuration tables stay).
Asks for confirmation unless --yes; refuses without a terminal to ask on.  Stop
Clara first."""


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cortex", help="inspect and maintain Cortex memory")
    actions = p.add_subparsers(dest="cortex_action", metavar="ACTION")

    ident = actions.add_parser("identity", help="a user's identity facts")
    ident.add_argument("user")
    ident.add_argument("--json", action="store_true", help="print JSON")

    search = actions.add_parser("search", help="search a user's memories, ranked")
    search.add_argument("user")
    search.add_argument("query")
    search.add_argument("--limit", type=_positive, default=10, help="results (default 10)")
    search.add_argument(
        "--type",
        action="append",
        choices=[t.value for t in MemoryType],
        help="only this memory type (repeatable)",
    )
    search.add_argument("--json", action="store_true", help="print JSON")

    stats = actions.add_parser("stats", help="totals, embedders, outbox, consolidation")
    stats.add_argument("--json", action="store_true", help="print JSON")

    cons = actions.add_parser("consolidate", help="run consolidation now (needs an LLM key)")
    cons.add_argument("user", nargs="?", help="one user (default: all with recent memories)")
    cons.add_argument("--compact", action="store_true", help="compact old episodes now")

    imp = actions.add_parser(
        "import-mem0",
        help="import a mem0 export (dry run unless --apply)",
        description=IMPORT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument("file", type=Path, help="the mem0 export (JSON)")
    imp.add_argument("--apply", action="store_true", help="write (default: dry run)")
    imp.add_argument(
        "--user-map",
        action="extend",
        nargs="+",
        default=[],
        metavar="OLD=NEW",
        help="store mem0 user OLD as Clara user NEW",
    )
    imp.add_argument("--batch", type=_positive, default=64, help="memories per batch (64)")

    reemb = actions.add_parser(
        "reembed",
        help="re-embed memories with the configured embedder",
        description=REEMBED_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    reemb.add_argument("--missing", action="store_true", help="only memories without a vector")
    reemb.add_argument("--batch", type=_positive, default=64, help="memories per batch (64)")

    actions.add_parser(
        "reindex-text",
        help="rebuild the keyword index with CORTEX_TEXT_SEARCH_CONFIG (after changing it)",
    )

    boot = actions.add_parser(
        "bootstrap",
        help="seed a user's memory from a profile text file (dry run unless --apply)",
        description=BOOTSTRAP_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    boot.add_argument("--user", required=True, help="the Clara user id (on Discord: the user's id)")
    boot.add_argument(
        "file", type=Path, help="the profile (UTF-8 text), or with --apply the reviewed .json"
    )
    boot.add_argument(
        "--apply", action="store_true", help="store the facts of FILE (default: dry run)"
    )
    boot.add_argument("--json", action="store_true", help="dry run: print the facts as JSON")
    boot.add_argument(
        "--out",
        type=Path,
        help="dry run: where to write the facts (default: beside FILE, NAME.facts.json)",
    )
    boot.add_argument(
        "--chunk-chars", type=_positive, default=3000, help="characters per model call (3000)"
    )

    clear = actions.add_parser(
        "clear",
        help="delete what Clara stores about one user or every user (asks first)",
        description=CLEAR_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    who = clear.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="the Clara user id")
    who.add_argument("--all", action="store_true", help="every user")
    clear.add_argument("--yes", action="store_true", help="do not ask for confirmation")


Command = Callable[["Settings", argparse.Namespace], Awaitable[int]]


def _command(action: str) -> Command:
    from . import bootstrap, clear, jobs, views
    from .session import CortexSession

    def with_session(view: Callable) -> Command:
        async def open_and_run(settings: Settings, args: argparse.Namespace) -> int:
            session = await CortexSession.open(settings)
            try:
                return await view(session, args)
            finally:
                await session.close()

        return open_and_run

    return {
        "identity": with_session(views.identity),
        "search": with_session(views.search),
        "stats": with_session(views.stats),
        "consolidate": jobs.consolidate,
        "import-mem0": jobs.import_mem0,
        "reembed": jobs.reembed_cmd,
        "reindex-text": jobs.reindex_text_cmd,
        "bootstrap": bootstrap.bootstrap_cmd,
        "clear": clear.clear_cmd,
    }[action]


async def run(
    settings: Settings, args: argparse.Namespace, redact: Callable[[str], str] = str
) -> int:
    from ..cortex.types import CortexError, check_user_id

    action = args.cortex_action
    if action is None:
        print("usage: discord_bot.py cortex ACTION (see 'cortex --help')", file=sys.stderr)
        return EXIT_USAGE
    try:
        if getattr(args, "user", None) is not None:
            check_user_id(args.user)  # before anything starts: a typo costs nothing
    except CortexError as exc:
        print(f"cortex {action}: {exc}", file=sys.stderr)
        return EXIT_USAGE

    from ..cortex.mem0_import import ImportFileError
    from ..cortex.reembed import ReembedError
    from ..cortex.types import EmbedderMismatch
    from ..errors import ClaraError, ConfigError
    from .bootstrap import BootstrapFileError

    try:
        return await _command(action)(settings, args)
    except ConfigError as exc:
        print(redact(exc.render()), file=sys.stderr)
        return EXIT_USAGE
    except (BootstrapFileError, EmbedderMismatch, ImportFileError, ReembedError) as exc:
        print(redact(f"cortex {action}: {exc}"), file=sys.stderr)
        return EXIT_USAGE
    except ClaraError as exc:
        log.debug("cortex %s failed", action, exc_info=True)
        print(redact(f"cortex {action} failed: {exc}"), file=sys.stderr)
        return EXIT_FAILURE
    except Exception as exc:  # an operator tool prints a sentence, not a traceback
        log.debug("cortex %s failed", action, exc_info=True)
        print(redact(f"cortex {action} failed: {type(exc).__name__}: {exc}"), file=sys.stderr)
        return EXIT_FAILURE
