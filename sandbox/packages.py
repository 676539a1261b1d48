"""Installing Python packages into a sandbox that has no network.

Design (issue 10 asks for one that keeps the sandbox offline):

1. Ask the sandbox which Python it runs (version, ABI, glibc, machine); once
   per backend, since every sandbox uses the same image/system.
2. On the host, ``pip download --only-binary=:all:`` for that target from the
   configured index only (``SANDBOX_PIP_INDEX_URL``; host pip.conf ignored).
   Wheels only: no sdist is ever built, so no package code runs on the host.
   The download runs with a clean environment (no bot secrets) and a timeout.
3. Copy the wheels into the user's workspace (``.clara/wheels``: the
   per-sandbox cache, counted against the workspace quota) and unpack them
   *inside* the sandbox into the user site-packages (``~/.local``, HOME is
   /workspace), which Python puts on ``sys.path`` by itself.  Unpacking a wheel
   is what pip's installer does, minus entry-point scripts; the sandbox images
   need no pip.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from .base import OutputCap, SandboxError, drain
from .manager import SandboxManager
from .proc import spawn

log = logging.getLogger(__name__)

WHEEL_DIR = ".clara/wheels"

_PROBE = (
    "import json, os, platform, sys\n"
    "libc = (os.confstr('CS_GNU_LIBC_VERSION') or 'glibc 2.17').split()[-1]\n"
    "print(json.dumps({'py': f'{sys.version_info[0]}{sys.version_info[1]}',"
    " 'dotted': f'{sys.version_info[0]}.{sys.version_info[1]}',"
    " 'machine': platform.machine(), 'glibc': libc}))\n"
)

# Runs inside the sandbox: unpack wheels into the user site-packages.
_UNPACK = r"""
import os, site, sys, zipfile
site_dir = site.getusersitepackages()
bin_dir = os.path.join(site.getuserbase(), "bin")
done = []
for wheel in sys.argv[1:]:
    with zipfile.ZipFile(wheel) as z:
        data_prefix = None
        for name in z.namelist():
            top = name.split("/", 1)[0]
            if top.endswith(".data"):
                data_prefix = top
        for info in z.infolist():
            name = info.filename
            if name.endswith("/"):
                continue
            target_root, rel = site_dir, name
            if data_prefix and name.startswith(data_prefix + "/"):
                kind, _, rel = name[len(data_prefix) + 1:].partition("/")
                if kind in ("purelib", "platlib"):
                    target_root = site_dir
                elif kind == "scripts":
                    target_root = bin_dir
                else:
                    continue
            dest = os.path.normpath(os.path.join(target_root, rel))
            if not dest.startswith(target_root + os.sep):
                print(f"skipped unsafe member {name}", file=sys.stderr)
                continue
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with z.open(info) as src, open(dest, "wb") as out:
                out.write(src.read())
            if target_root == bin_dir:
                os.chmod(dest, 0o755)
    done.append(os.path.basename(wheel))
print("\n".join(done))
"""


class PackageError(SandboxError):
    """A package could not be installed; the message says what to change."""


@dataclass(frozen=True)
class Target:
    py: str  # "311"
    dotted: str  # "3.11"
    machine: str  # "x86_64"
    glibc: str  # "2.36"

    def pip_args(self) -> list[str]:
        major, minor = (int(x) for x in self.glibc.split(".")[:2])
        plats = [f"manylinux_{major}_{m}_{self.machine}" for m in range(minor, 16, -1)]
        plats += [f"manylinux2014_{self.machine}", "linux_" + self.machine]
        args = ["--python-version", self.dotted, "--implementation", "cp"]
        for abi in (f"cp{self.py}", "abi3", "none"):
            args += ["--abi", abi]
        for p in plats:
            args += ["--platform", p]
        return args


def parse_requirement(spec: str) -> str:
    """A plain requirement ("numpy", "requests[socks]>=2.31"); no URLs, paths or options."""
    text = spec.strip()
    if not text or text.startswith("-"):
        raise PackageError(
            f"{spec!r} is not a package name; give a name like 'numpy' or 'numpy==2.1'"
        )
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise PackageError(f"{spec!r} is not a valid package requirement ({exc})") from None
    if req.url:
        raise PackageError("install from the package index by name; URLs are not allowed")
    return str(req)


class PackageInstaller:
    def __init__(
        self,
        manager: SandboxManager,
        *,
        index_url: str,
        cache_root: Path,
        timeout: float = 180.0,
        python: str = sys.executable,
    ) -> None:
        self.manager = manager
        self.index_url = index_url
        self.cache_root = Path(cache_root)
        self.timeout = timeout
        self.python = python
        self._target: Target | None = None

    async def target(self, user: str) -> Target:
        if self._target is None:
            r = await self.manager.exec(user, ["python3", "-c", _PROBE])
            if not r.ok:
                raise PackageError(f"could not inspect the sandbox's Python: {r.stderr.strip()}")
            info = json.loads(r.stdout)
            self._target = Target(info["py"], info["dotted"], info["machine"], info["glibc"])
        return self._target

    async def install(self, user: str, spec: str) -> list[str]:
        """Install ``spec`` (and its dependencies) for ``user``; return the wheel names."""
        req = parse_requirement(spec)
        target = await self.target(user)
        dest = self.cache_root / f"dl-{secrets.token_hex(6)}"
        dest.mkdir(parents=True)
        try:
            wheels = await self._download(req, target, dest)
            inside = []
            for wheel in wheels:
                data = await asyncio.to_thread(wheel.read_bytes)
                await self.manager.put_file(user, f"{WHEEL_DIR}/{wheel.name}", data)
                inside.append(f"/workspace/{WHEEL_DIR}/{wheel.name}")
        finally:
            await asyncio.to_thread(shutil.rmtree, dest, True)
        r = await self.manager.exec(user, ["python3", "-c", _UNPACK, *inside])
        if not r.ok:
            raise PackageError(f"unpacking the wheels failed: {(r.stderr or r.stdout).strip()}")
        return [Path(w).name for w in inside]

    async def _download(self, req: str, target: Target, dest: Path) -> list[Path]:
        argv = [
            self.python, "-m", "pip", "download",
            "--only-binary=:all:",  # never build: no package code on the host
            "--index-url", self.index_url,
            "--dest", str(dest),
            "--no-cache-dir", "--disable-pip-version-check", "--no-input",
            "--progress-bar", "off",
            *target.pip_args(),
            "--", req,
        ]  # fmt: skip
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(dest),
            "PIP_CONFIG_FILE": os.devnull,  # only the index we were told to use
            "PYTHONNOUSERSITE": "1",
        }
        proc = await spawn(argv, env=env, cwd=str(dest))
        out, err = OutputCap(16384), OutputCap(16384)
        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.gather(drain(proc.stdout, out), drain(proc.stderr, err), proc.wait())
        except TimeoutError:
            proc.kill_group()
            raise PackageError(
                f"downloading {req} took longer than {self.timeout:.0f}s; try again later"
            ) from None
        except asyncio.CancelledError:
            proc.kill_group()
            raise
        if proc.returncode != 0:
            text = err.text()
            log.info("pip download %s failed: %s", req, text.strip()[-500:])
            if "No matching distribution" in text or "Could not find a version" in text:
                raise PackageError(
                    f"{req} was not found on the package index as a wheel for Python "
                    f"{target.dotted} on {target.machine}; check the name or pick another version"
                )
            raise PackageError(f"downloading {req} failed: {text.strip()[-300:]}")
        wheels = sorted(p for p in dest.iterdir() if p.suffix == ".whl")
        if not wheels:
            raise PackageError(f"the package index returned no wheel for {req}")
        return wheels
