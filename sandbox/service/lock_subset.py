"""Print the part of a hashed lock file that some packages need (stdlib only).

The sandbox service's image needs a handful of Clara's dependencies (aiohttp,
the docker SDK, pydantic-settings, packaging), not the bot's whole lock
(onnxruntime, matplotlib, embedded Postgres: hundreds of MB and minutes of
download).  Keeping a second lock by hand would drift, so the image build cuts
the subset out of ``requirements.lock`` itself: a package is kept when it is
one of the roots or when a kept package needs it, read from the ``# via``
comments uv writes.  Pins, environment markers and hashes are copied as they
are, so ``pip install --require-hashes`` checks exactly what the lock checks
(and refuses if a needed package were missing).

    python3 sandbox/service/lock_subset.py requirements.lock aiohttp docker > req.txt

Runs with the base image's bare ``python3`` before anything is installed.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable

_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse(lines: Iterable[str]) -> list[tuple[str, list[str], set[str]]]:
    """``(name, lines of its requirement block, packages it is needed by)`` in file order;
    a package pinned twice under different markers (numpy) gives two blocks."""
    blocks: list[tuple[str, list[str], set[str]]] = []
    in_via = False
    for raw in lines:
        line = raw.rstrip("\n")
        match = _NAME.match(line)
        if match:
            blocks.append((_norm(match.group(1)), [line], set()))
            in_via = False
            continue
        if not blocks:
            continue  # the header comments
        _, text, via = blocks[-1]
        stripped = line.strip()
        if stripped.startswith("--hash"):
            text.append(line)
        elif stripped.startswith("# via"):
            rest = stripped[len("# via") :].strip()
            in_via = not rest  # "# via" alone: the parents follow, one per line
            if rest:
                via.add(_norm(rest.split()[0]))
        elif in_via and stripped.startswith("#"):
            via.add(_norm(stripped.lstrip("#").split()[0]))
    return blocks


def subset(lines: Iterable[str], roots: Iterable[str]) -> str:
    blocks = parse(lines)
    keep = {_norm(r) for r in roots}
    known = {name for name, _, _ in blocks}
    unknown = sorted(keep - known)
    if unknown:
        raise SystemExit(f"lock_subset: not in the lock: {', '.join(unknown)}")
    changed = True
    while changed:  # a fixed point: a kept package's dependencies are kept
        changed = False
        for name, _, via in blocks:
            if name not in keep and via & keep:
                keep.add(name)
                changed = True
    # A line continued with "\" must not end the file's last block dangling.
    out = ["# cut from requirements.lock by sandbox/service/lock_subset.py"]
    for name, text, _ in blocks:
        if name in keep:
            body = list(text)
            body[-1] = body[-1].rstrip(" \\")
            out.extend(body)
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: lock_subset.py LOCKFILE PACKAGE...", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        sys.stdout.write(subset(f, argv[2:]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
