"""docker-compose.yml's ``scale`` profile: one Clara process per shard on the
stack's PostgreSQL and Redis.

Neither ``docker compose`` nor a registry is available here, so the file is
parsed (with YAML merge keys, as Compose resolves them) and each shard's
environment is loaded by Clara's own settings, which validate the shard split.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

from clara_core.config import env_names, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with nothing set."""
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: m.group(2), value)


def _scale(compose: dict) -> dict[str, dict]:
    return {n: s for n, s in compose["services"].items() if "scale" in s.get("profiles", [])}


def _shards(compose: dict) -> dict[str, dict]:
    return {
        n: s for n, s in _scale(compose).items() if n not in {"postgres", "redis", "clara-worker"}
    }


def test_scale_profile_is_shards_plus_a_worker_postgres_and_redis(compose):
    scale = _scale(compose)
    shards = _shards(compose)
    assert set(scale) == set(shards) | {"clara-worker", "postgres", "redis"}
    assert len(shards) >= 2
    for name in ("postgres", "redis"):
        assert scale[name]["healthcheck"]["test"], name
    for name, shard in shards.items():
        assert shard["profiles"] == ["scale"], name
        assert shard["image"] == "${CLARA_IMAGE:-clara:latest}"
        assert shard["build"] == compose["services"]["clara"]["build"], name
        assert shard["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }, name
    # The single-process bot is not part of it (it would run every shard again).
    assert "scale" not in compose["services"]["clara"]["profiles"]


def test_every_shard_runs_once_with_its_own_data_dir(compose):
    shards = _shards(compose)
    counts = {int(s["environment"]["DISCORD_SHARD_COUNT"]) for s in shards.values()}
    assert counts == {len(shards)}  # one count for all, one service per shard
    ids = sorted(int(s["environment"]["DISCORD_SHARD_IDS"]) for s in shards.values())
    assert ids == list(range(len(shards)))
    volumes = [v for s in shards.values() for v in s["volumes"]]
    assert all(v.endswith(":/data") for v in volumes)
    assert len(set(volumes)) == len(volumes)  # a data dir (pidfile, outbox) per process
    for volume in volumes:
        assert volume.split(":")[0] in compose["volumes"]


def test_shards_use_the_stack_servers(compose, monkeypatch):
    services = compose["services"]
    pg_env = {k: _interpolate(str(v)) for k, v in services["postgres"]["environment"].items()}
    known = set(env_names().values())
    for name, shard in _shards(compose).items():
        env = {k: _interpolate(str(v)) for k, v in shard["environment"].items()}
        assert set(env) <= known, name
        db = make_url(env["DATABASE_URL"])
        assert (db.host, db.port, db.username, db.password, db.database) == (
            "postgres",
            5432,
            pg_env["POSTGRES_USER"],
            pg_env["POSTGRES_PASSWORD"],
            pg_env["POSTGRES_DB"],
        )
        assert env["REDIS_URL"].startswith("redis://redis:6379/")
        # Clara itself accepts the shard split (ids below the count, etc.).
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = load_settings(env_file=None)
        assert settings.discord_shard_count == int(env["DISCORD_SHARD_COUNT"])
        assert settings.discord_shard_ids == [int(env["DISCORD_SHARD_IDS"])]


def test_the_worker_runs_the_shards_queued_jobs_on_the_same_servers(compose, monkeypatch):
    services = compose["services"]
    worker = services["clara-worker"]
    assert worker["command"] == ["python", "discord_bot.py", "worker"]
    assert worker["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    # The image's HEALTHCHECK asks the monitor, which a worker does not run: its own
    # beacon instead.  Never `disable` (`up --wait` refuses a service without one).
    assert worker["healthcheck"]["test"] == ["CMD", "python", "-m", "clara_core.worker_health"]
    assert "disable" not in worker["healthcheck"]
    env = {k: _interpolate(str(v)) for k, v in worker["environment"].items()}
    for name, shard in _shards(compose).items():
        shard_env = {k: _interpolate(str(v)) for k, v in shard["environment"].items()}
        assert shard_env["CORTEX_WORKER_QUEUE"] == "true", name  # they queue, it runs
        assert (env["DATABASE_URL"], env["REDIS_URL"]) == (
            shard_env["DATABASE_URL"],
            shard_env["REDIS_URL"],
        ), name
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert load_settings(env_file=None).redis_url is not None
    vol = worker["volumes"][0].split(":")[0]
    assert vol in compose["volumes"]
