"""Images built from the repository's Dockerfiles for tests, on the local dockerd.

No registry is reachable here, so a Dockerfile is built FROM the local
debootstrap image (``BASE_IMAGE``, built by ``.ci/sandbox-setup.sh``) with the
host's network for apt and PyPI.  Each image is tagged by a hash of everything
its build reads, so a machine that keeps its images builds it once per change.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import ssl
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


# What Clara's Dockerfile COPYs: a change to any of them is a new image.
CLARA_BUILD_INPUTS = [
    "requirements.lock",
    "pyproject.toml",
    "README.md",
    "discord_bot.py",
    "clara_core",
    "storage",
    "sandbox",
    "tools",
    "alembic",
]


def clara_test_image(client: Any, base_image: str) -> str:
    """Clara's own image for the current sources, built FROM ``base_image``."""
    return build_test_image(
        client,
        dockerfile="Dockerfile",
        repository="clara",
        inputs=CLARA_BUILD_INPUTS,
        base_image=base_image,
    )


# What the sandbox service's Dockerfile COPYs.
SANDBOX_SERVICE_BUILD_INPUTS = ["requirements.lock", "sandbox", "clara_core"]


def sandbox_service_test_image(client: Any, base_image: str) -> str:
    """The sandbox service's image (sandbox/service/Dockerfile) for the current sources."""
    return build_test_image(
        client,
        dockerfile="sandbox/service/Dockerfile",
        repository="clara-sandbox-service",
        inputs=SANDBOX_SERVICE_BUILD_INPUTS,
        base_image=base_image,
    )


def docker_client_or_skip(base_image: str) -> Any:
    """The SDK's client, or the test skipped with the reason when there is no dockerd
    or no base image here (``bash .ci/sandbox-setup.sh`` makes both)."""
    from sandbox.docker import docker_client

    try:
        client = docker_client()
        client.images.get(base_image)
    except Exception as exc:
        pytest.skip(f"no dockerd or base image {base_image} here: {exc} (.ci/sandbox-setup.sh)")
    return client


def extra_ca_certs() -> str:
    """Certificates this host trusts that pip's own bundle lacks (a TLS-inspecting
    proxy's CA): the build must reach PyPI the way the host does.  Empty when none."""
    import certifi  # pip's bundle is a copy of certifi's

    bundle = (
        os.environ.get("PIP_CERT")
        or os.environ.get("SSL_CERT_FILE")
        or ssl.get_default_verify_paths().cafile
        or "/etc/ssl/certs/ca-certificates.crt"
    )
    pem = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)
    try:
        host = pem.findall(Path(bundle).read_text())
    except OSError:
        return ""
    known = set(pem.findall(Path(certifi.where()).read_text()))
    return "\n".join(c for c in host if c not in known)


def inputs_hash(base_id: str, buildargs: dict[str, str], inputs: Iterable[str]) -> str:
    h = hashlib.sha256(base_id.encode())
    h.update(json.dumps(buildargs, sort_keys=True).encode())
    for top in inputs:
        path = REPO / top
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            if "__pycache__" in f.parts:
                continue  # .dockerignore leaves them out
            h.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def build_test_image(
    client: Any,
    *,
    dockerfile: str,
    repository: str,
    inputs: Iterable[str],
    base_image: str,
    context: Path = REPO,
) -> str:
    """``repository:test-<hash>`` for the current sources, built unless already there;
    older test builds of that repository are untagged (shared layers stay cached).
    ``dockerfile`` and ``inputs`` are relative to the repository, ``context`` is the
    build's directory (the repository unless given)."""
    base = client.images.get(base_image)
    buildargs = {"BASE_IMAGE": base_image}
    if extra := extra_ca_certs():
        buildargs["EXTRA_CA_CERTS"] = extra
    tag = f"{repository}:test-{inputs_hash(base.id, buildargs, [dockerfile, *inputs])}"
    with contextlib.suppress(Exception):
        client.images.get(tag)
        return tag
    from docker.errors import BuildError

    t0 = time.monotonic()
    try:
        client.images.build(
            path=str(context),
            dockerfile=str(REPO / dockerfile),
            tag=tag,
            buildargs=buildargs,
            network_mode="host",  # dockerd here has no bridge; apt and PyPI via the host
            rm=True,
            forcerm=True,
        )
    except BuildError as exc:
        log = "".join(str(c.get("stream", c.get("error", ""))) for c in exc.build_log)
        pytest.fail(f"{dockerfile} did not build: {exc}\n{log[-3000:]}")
    print(f"built {tag} in {time.monotonic() - t0:.1f} s")
    for img in client.images.list(name=repository):
        for old in img.tags:
            if old.startswith(f"{repository}:test-") and old != tag:
                with contextlib.suppress(Exception):
                    client.images.remove(old)
    return tag
