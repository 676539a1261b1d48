"""The lock files match pyproject.toml, and every install path uses them.

A dependency added to pyproject.toml without re-running ``bash .ci/lock.sh``
would install fine on the developer's machine and fail on a fresh one (the
hash-checked install refuses anything the lock does not pin): catch it here.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def _pins(lock: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) for the pins that apply to this Python."""
    pins: dict[str, tuple[str, int]] = {}
    current: str | None = None
    for line in lock.read_text().splitlines():
        m = PIN.match(line)
        if m:
            name, version, marker = m.groups()
            current = None
            if marker is None or Marker(marker).evaluate():
                current = canonicalize_name(name)
                pins[current] = (version, 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, n = pins[current]
            pins[current] = (version, n + 1)
    return pins


def _requirements(extras: tuple[str, ...]) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    return reqs + [Requirement(r) for r in build]


@pytest.mark.parametrize(
    ("lock", "extras"),
    [
        ("requirements.lock", ()),
        ("requirements-voice.lock", ("voice",)),
        ("requirements-dev.lock", ("dev", "voice")),
    ],
)
def test_lock_pins_every_requirement_within_its_range(lock, extras):
    pins = _pins(ROOT / lock)
    assert pins, f"{lock} has no pins"
    problems = []
    for req in _requirements(extras):
        if req.marker and not req.marker.evaluate():
            continue
        pinned = pins.get(canonicalize_name(req.name))
        if pinned is None:
            problems.append(f"{req.name} is not in {lock}")
        elif not req.specifier.contains(pinned[0], prereleases=True):
            problems.append(f"{req.name}=={pinned[0]} is outside {req.specifier}")
    assert not problems, "run 'bash .ci/lock.sh': " + "; ".join(problems)


@pytest.mark.parametrize(
    "lock", ["requirements.lock", "requirements-voice.lock", "requirements-dev.lock"]
)
def test_every_pin_carries_hashes(lock):
    unhashed = [name for name, (_, n) in _pins(ROOT / lock).items() if n == 0]
    assert not unhashed


def test_install_paths_use_the_lock_with_hashes():
    readme = (ROOT / "README.md").read_text()
    run_line = next(
        line for line in readme.splitlines() if "discord_bot.py" in line and "venv" in line
    )
    assert "--require-hashes" in run_line and "-r requirements.lock" in run_line
    assert "--no-deps" in run_line  # Clara itself must not pull in unlocked versions
    for path, lock in (
        ("tests/run.sh", "requirements-dev.lock"),
        ("Dockerfile", "requirements.lock"),
    ):
        text = (ROOT / path).read_text()
        assert "--require-hashes" in text and lock in text, path
        assert re.search(r"pip install[^\n]*--no-deps", text), path
    assert "bash tests/run.sh" in (ROOT / ".ci" / "run").read_text()
