"""docker-compose.yml: services, profiles, healthchecks and the bot's env wiring.

No Docker registry is reachable here, so the stack cannot be pulled and run;
instead the file is parsed and checked, and the bot's start-up script (the
part that picks stack servers or embedded ones) is executed for real with
real ``getent`` name resolution in a private mount namespace.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

from clara_core.config import env_names

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR:-default} and $$ escaping, enough for this file."""
    value = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m.group(1)) or m.group(2), value)
    return value.replace("$$", "$")


def test_profiles_and_services(compose):
    services = compose["services"]
    assert set(services) - {
        "clara-shard-0",
        "clara-shard-1",
        "clara-worker",
    } == {  # scale: test_compose_scale
        "clara",
        "postgres",
        "redis",
        "sandbox",
    }
    assert services["clara"]["profiles"] == ["discord"]
    assert services["sandbox"]["profiles"] == ["sandbox"]
    assert services["postgres"]["profiles"] == ["postgres", "scale"]
    assert services["redis"]["profiles"] == ["postgres", "scale"]
    # Registry defaults, each replaceable by name (a mirror, or the tests' stand-ins).
    assert services["postgres"]["image"] == "${CLARA_POSTGRES_IMAGE:-pgvector/pgvector:pg17}"
    assert services["redis"]["image"] == "${CLARA_REDIS_IMAGE:-redis:7-alpine}"
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"], name
        assert services[name]["volumes"], f"{name} data must live in a volume"
    assert "--appendonly" in services["redis"]["command"]  # hot tier persists
    assert set(compose["volumes"]) >= {"clara-data", "postgres-data", "redis-data"}


def test_bot_service(compose):
    clara = compose["services"]["clara"]
    assert clara["build"]["context"] == "." and (ROOT / "Dockerfile").exists()
    assert clara["build"]["args"]["BASE_IMAGE"] == "${CLARA_BASE_IMAGE:-python:3.11-slim-bookworm}"
    assert clara["image"] == "${CLARA_IMAGE:-clara:latest}"
    assert clara["init"] is True
    assert "clara-data:/data" in clara["volumes"]
    assert clara["environment"]["CLARA_DATA_DIR"] == "/data"
    for dep in ("postgres", "redis", "sandbox"):
        assert clara["depends_on"][dep] == {"condition": "service_healthy", "required": False}
    assert {"path": ".env", "required": False} in clara["env_file"]
    known = set(env_names().values())
    for key in clara["environment"]:
        assert key in known or key.startswith("STACK_"), key


def test_stack_urls_point_at_the_stack_services(compose):
    services = compose["services"]
    env = services["clara"]["environment"]
    pg_env = {k: _interpolate(str(v), {}) for k, v in services["postgres"]["environment"].items()}
    db = make_url(_interpolate(env["STACK_DATABASE_URL"], {}))
    assert db.host == "postgres" and db.port == 5432
    assert (db.username, db.password, db.database) == (
        pg_env["POSTGRES_USER"],
        pg_env["POSTGRES_PASSWORD"],
        pg_env["POSTGRES_DB"],
    )
    assert _interpolate(env["STACK_REDIS_URL"], {}).startswith("redis://redis:6379/")


def _run_bot_command(compose, tmp_path, *, hosts: list[str], env: dict[str, str]) -> dict[str, str]:
    """Run the service's command script with real getent and a stand-in interpreter."""
    if shutil.which("unshare") is None:
        pytest.skip("needs util-linux unshare")
    clara = compose["services"]["clara"]
    script = _interpolate(clara["command"][2], {})
    bindir = tmp_path / "bin"
    bindir.mkdir()
    # Stands in for the container's Python: reports what it would have run with.
    shim = bindir / "python"
    shim.write_text(
        '#!/bin/sh\necho "ARGS=$*"\necho "DATABASE_URL=$DATABASE_URL"\necho "REDIS_URL=$REDIS_URL"\n'
        'echo "SANDBOX_API_URL=$SANDBOX_API_URL"\n'
    )
    shim.chmod(0o755)
    hosts_file = tmp_path / "hosts"
    hosts_file.write_text(
        "127.0.0.1 localhost\n" + "".join(f"10.9.0.{i + 2} {h}\n" for i, h in enumerate(hosts))
    )
    stack = {k: _interpolate(str(v), {}) for k, v in clara["environment"].items()}
    full_env = {"PATH": f"{bindir}:{os.environ['PATH']}", **stack, **env}
    wrapper = f'mount --bind {hosts_file} /etc/hosts && exec sh -c "$0"'
    out = subprocess.run(
        ["unshare", "-rm", "sh", "-c", wrapper, script],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_full_stack_uses_stack_servers(compose, tmp_path):
    seen = _run_bot_command(compose, tmp_path, hosts=["postgres", "redis"], env={})
    assert seen["ARGS"] == "discord_bot.py"
    assert seen["DATABASE_URL"] == "postgresql://clara:clara@postgres:5432/clara"
    assert seen["REDIS_URL"] == "redis://redis:6379/0"


def test_discord_profile_alone_uses_embedded_servers(compose, tmp_path):
    seen = _run_bot_command(compose, tmp_path, hosts=[], env={})
    assert seen["DATABASE_URL"] == "" and seen["REDIS_URL"] == ""
    assert seen["SANDBOX_API_URL"] == ""  # auto mode: Docker or bubblewrap in the bot


def test_sandbox_profile_points_the_bot_at_the_service(compose, tmp_path):
    seen = _run_bot_command(compose, tmp_path, hosts=["sandbox"], env={})
    assert seen["SANDBOX_API_URL"] == "http://sandbox:8765"
    assert seen["DATABASE_URL"] == ""  # the other profiles stay independent
    (tmp_path / "x").mkdir()
    mine = _run_bot_command(
        compose, tmp_path / "x", hosts=["sandbox"], env={"SANDBOX_API_URL": "http://box:1"}
    )
    assert mine["SANDBOX_API_URL"] == "http://box:1"


def test_sandbox_service(compose):
    box = compose["services"]["sandbox"]
    dockerfile = ROOT / box["build"]["dockerfile"]
    assert box["build"]["context"] == "." and dockerfile.exists()
    text = dockerfile.read_text()
    assert 'CMD ["python", "-m", "sandbox.service", "--host", "0.0.0.0", "--port", "8765"]' in text
    assert box["expose"] == ["8765"]  # the compose network only: never published
    assert "ports" not in box
    # The Docker backend through the host's socket: no privileges of its own.
    assert box["init"] is True and "privileged" not in box
    # The service runs a local backend whatever the bot's .env says.
    assert box["environment"]["SANDBOX_MODE"] == "local"
    assert "/var/run/docker.sock:/var/run/docker.sock" in box["volumes"]
    # dockerd resolves the workspace binds on the host: the same path on both sides.
    workdir = _interpolate(box["environment"]["SANDBOX_DIR"], {})
    assert f"{workdir}:{workdir}" in [_interpolate(v, {}) for v in box["volumes"]]
    assert {"path": ".env", "required": False} in box["env_file"]
    known = set(env_names().values())
    assert set(box["environment"]) <= known
    assert "8765" in " ".join(box["healthcheck"]["test"])


def test_explicit_urls_win(compose, tmp_path):
    seen = _run_bot_command(
        compose, tmp_path, hosts=["postgres", "redis"], env={"DATABASE_URL": "postgresql://x@db/y"}
    )
    assert seen["DATABASE_URL"] == "postgresql://x@db/y"
    assert seen["REDIS_URL"] == "redis://redis:6379/0"


def test_image_runs_unprivileged_and_keeps_secrets_out():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER clara$", dockerfile, re.M)
    assert 'CMD ["python", "discord_bot.py"]' in dockerfile
    # The code is installed (non-editable, as root: the clara user cannot rewrite it),
    # the migrations with it as data files.
    assert "COPY alembic ./alembic" in dockerfile
    assert re.search(r"pip install --no-deps --no-build-isolation \.\s", dockerfile)
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".env", "data", ".venv", ".git"):
        assert path in ignored
