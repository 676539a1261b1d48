"""Run Clara's benchmarks: ``python bench/run.py [NAME ...]``.

Every ``bench/<name>.py`` with a ``main()`` is a benchmark; each prints its
own figures.  With no names, all run in alphabetical order.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def available() -> dict[str, Path]:
    return {
        p.stem: p
        for p in sorted(HERE.glob("*.py"))
        if p.stem not in {"run", "common"} and not p.stem.startswith("_")
    }


def main(argv: list[str]) -> int:
    benches = available()
    names = argv or list(benches)
    unknown = [n for n in names if n not in benches]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; have: {', '.join(benches)}")
        return 2
    # The repository root, not bench/, goes on the path: a bench named after a
    # library (bench/discord_*.py) must never shadow it.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    sys.path.insert(0, str(HERE.parent))
    for name in names:
        spec = importlib.util.spec_from_file_location(f"bench.{name}", benches[name])
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses & co. look their module up
        spec.loader.exec_module(module)
        print(f"== {name}")
        t0 = time.monotonic()
        module.main()
        print(f"   ({time.monotonic() - t0:.1f}s)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
