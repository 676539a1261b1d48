"""A non-editable ``pip install .``, with the source tree gone, still migrates.

The installed ``storage/migrations.py`` sits next to the *alembic library* in
site-packages; it must find Clara's migration scripts where the install put
them (``<prefix>/share/clara/alembic``), never mistake the library for them,
and refuse loudly when they are missing.

The venv reuses the test venv's third-party packages through a ``.pth`` line
(a fresh download of every dependency would take a minute), but not Clara:
the test venv's editable hook is a ``.pth`` *file* in its site-packages, and
``.pth`` files are only read in site directories, never in a directory that a
``.pth`` line adds.  Only the wheel built from the copied tree provides Clara.
"""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.clara_process import REPO, clara_env

pytestmark = pytest.mark.slow


def _tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    return [p for p in out.decode().split("\0") if p and (REPO / p).is_file()]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("install")
    src = root / "src"
    for rel in _tracked_files():
        dest = src / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site_dir = next((venv / "lib").glob("python3*/site-packages"))
    (site_dir / "_test_deps.pth").write_text(
        "\n".join(p for p in site.getsitepackages() if "site-packages" in p) + "\n"
    )
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "."],
        cwd=src,
        check=True,
        capture_output=True,
    )
    shutil.rmtree(src)  # the source tree is gone: only the installed copy remains
    return python


def _clara(python: Path, *args: str, cwd: Path, env: dict[str, str]):
    return subprocess.run(
        [str(python.parent / "clara"), *args],  # the console script pip installed
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_installed_clara_imports_from_site_packages(installed, tmp_path):
    out = subprocess.run(
        [str(installed), "-c", "import storage.migrations as m; print(m.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(REPO) not in out and "site-packages" in out


def test_first_start_migrates_to_head(installed, tmp_path):
    env = clara_env(tmp_path)
    first = _clara(installed, cwd=tmp_path, env=env)
    assert first.returncode == 2, first.stderr  # migrated, then names the missing token
    assert "Traceback" not in first.stderr
    status = _clara(installed, "migrate", "status", cwd=tmp_path, env=env)
    assert status.returncode == 0, status.stderr
    head = sorted(p.name for p in (REPO / "alembic" / "versions").glob("0*.py"))[-1][:4]
    assert f"current: {head}" in status.stdout, status.stdout
    assert "pending: none" in status.stdout or "pending" not in status.stdout.split(head)[-1]


def test_missing_migration_scripts_fail_loudly(installed, tmp_path):
    versions = installed.parent.parent / "share" / "clara" / "alembic" / "versions"
    saved = tmp_path / "saved"
    shutil.copytree(versions, saved)
    try:
        for f in versions.glob("*.py"):
            f.unlink()
        result = _clara(installed, "migrate", "status", cwd=tmp_path, env=clara_env(tmp_path))
        assert result.returncode != 0
        assert "migration scripts were not found" in result.stderr + result.stdout
        assert "Traceback" not in result.stderr
    finally:
        for f in saved.glob("*.py"):
            shutil.copy2(f, versions / f.name)
