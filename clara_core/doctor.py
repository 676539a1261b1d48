"""``python discord_bot.py doctor``: check configuration and every connection.

Each check prints one line, ``ok`` or ``FAIL`` with what to do.  Exit code 0
only when everything needed to run is in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from .config import PROVIDERS, Settings, secret_values
from .errors import ClaraError, ConfigError
from .logging_setup import Redactor, redact_url, url_secrets


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


async def _check_storage(settings: Settings) -> list[Check]:
    from sqlalchemy import text

    from storage import migrations
    from storage.services import Storage

    checks: list[Check] = []
    try:
        storage = await Storage.open(
            settings.clara_data_dir,
            database_url=settings.database_url.get_secret_value()
            if settings.database_url
            else None,
            redis_url=settings.redis_url.get_secret_value() if settings.redis_url else None,
            attach=True,
        )
    except ConfigError as exc:
        return [Check("storage", False, "; ".join(exc.problems))]
    except ClaraError as exc:
        return [Check("storage", False, str(exc))]
    except Exception as exc:
        return [Check("storage", False, f"{type(exc).__name__}: {exc}")]
    kind = "embedded" if storage.embedded else "external"
    try:
        try:
            async with storage.engine.connect() as conn:
                version = (await conn.execute(text("SHOW server_version"))).scalar_one()
                vector = (
                    await conn.execute(
                        text(
                            "SELECT coalesce(installed_version, default_version) "
                            "FROM pg_available_extensions WHERE name = 'vector'"
                        )
                    )
                ).scalar_one_or_none()
            checks.append(Check("postgres", True, f"{kind} PostgreSQL {version}"))
            checks.append(
                Check(
                    "pgvector",
                    vector is not None,
                    f"pgvector {vector}"
                    if vector
                    else "the vector extension is not installed on "
                    "the server; install pgvector (https://github.com/pgvector/pgvector)",
                )
            )
            st = await migrations.status(storage.engine)
            checks.append(
                Check(
                    "migrations",
                    st.up_to_date,
                    f"at {st.current}"
                    if st.up_to_date
                    else f"at {st.current or 'empty'}, "
                    f"pending {', '.join(st.pending)} (Clara applies them on start, or run "
                    "`python discord_bot.py migrate upgrade`)",
                    required=False,
                )
            )
            if st.up_to_date:
                checks += await _check_cortex(settings, storage.engine)
                checks.append(await _check_proactive(storage.engine))
        except Exception as exc:
            checks.append(Check("postgres", False, f"cannot query PostgreSQL: {exc}"))
        try:
            info = await storage.redis.info("server")
            persistence = await storage.redis.info("persistence")
            durable = persistence.get("aof_enabled") == 1 or bool(
                (await storage.redis.config_get("save")).get("save")
            )
            checks.append(Check("redis", True, f"{kind} Redis {info.get('redis_version')}"))
            checks.append(
                Check(
                    "redis persistence",
                    durable,
                    "AOF/RDB enabled"
                    if durable
                    else "neither AOF nor RDB snapshots are enabled: "
                    "hot memory is lost when Redis restarts (enable appendonly yes)",
                    required=False,
                )
            )
            if settings.cortex_worker_queue:
                checks.append(await _check_work_queue(storage))
        except Exception as exc:
            checks.append(Check("redis", False, f"cannot talk to Redis: {exc}"))
    finally:
        await storage.close()
    return checks


async def _check_work_queue(storage) -> Check:
    """CORTEX_WORKER_QUEUE: consolidation waits for `worker` processes on Redis."""
    from storage.work_queue import backlog

    jobs = await backlog(storage.redis_url)
    return Check(
        "worker queue",
        True,
        f"{jobs['waiting']} job(s) waiting for `python discord_bot.py worker`, "
        f"{jobs['running']} running",
        required=False,
    )


async def _check_cortex(settings: Settings, engine) -> list[Check]:
    """The embedder matches the stored vectors; writes waiting in the outbox."""
    from .cortex.embedding.local_onnx import MODEL_ID
    from .cortex.manager import EMBEDDER_META_KEY
    from .cortex.warm import WarmStore

    if not settings.cortex_enabled:
        return [Check("cortex", True, "memory is off (CORTEX_ENABLED=false)", required=False)]
    warm = WarmStore(engine)
    model = (
        MODEL_ID
        if settings.cortex_embedding_provider == "local"
        else settings.cortex_embedding_model
    )
    dims = settings.cortex_embedding_dims
    recorded = await warm.get_meta(EMBEDDER_META_KEY)
    column = await warm.embedding_column_dims()
    if column != dims or (recorded is not None and recorded != {"model": model, "dims": dims}):
        was = recorded or {"model": "?", "dims": column}
        embedder = Check(
            "cortex embedder",
            False,
            f"configured {model} ({dims} dims) but memories were embedded with "
            f"{was['model']} ({was['dims']} dims): run `python discord_bot.py cortex reembed`",
        )
    else:
        embedder = Check("cortex embedder", True, f"{model}, {dims} dims")
    outbox = settings.cortex_outbox_dir or (settings.clara_data_dir / "cortex-outbox")
    pending = await asyncio.to_thread(
        lambda: len(list(outbox.glob("*.json"))) if outbox.is_dir() else 0
    )
    queued = Check(
        "cortex outbox",
        pending == 0,
        "no memory writes waiting"
        if pending == 0
        else f"{pending} memory write(s) wait for PostgreSQL in {outbox}; Clara flushes them "
        "when she runs and PostgreSQL is reachable",
        required=False,
    )
    return [embedder, queued]


def _endpoint(base: str, path: str) -> str:
    """``base`` + ``path``, keeping the base's query, without userinfo.

    aiohttp refuses credentials in the URL next to an Authorization header (the
    check crashed on https://user:pass@host/v1); the key goes in the header.
    """
    parts = urlsplit(base)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + path, parts.query, ""))


def _data_dir_check(settings: Settings) -> Check:
    from storage.datadir import ensure_writable_dir

    try:
        ensure_writable_dir(settings.clara_data_dir)
    except ConfigError as exc:
        return Check("data dir", False, "; ".join(exc.problems))
    return Check("data dir", True, f"{settings.clara_data_dir} is writable")


async def _storage_skipped() -> list[Check]:
    return [
        Check(
            "storage",
            False,
            "not checked: the embedded servers live in CLARA_DATA_DIR (see above)",
        )
    ]


async def _check_http(name: str, url: str, headers: dict[str, str], ok_hint: str) -> Check:
    shown = redact_url(url)
    try:
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.get(url, headers=headers) as resp,
        ):
            if resp.status == 200:
                return Check(name, True, ok_hint)
            if resp.status in (401, 403):
                return Check(name, False, f"credentials rejected ({resp.status}) by {shown}")
            return Check(name, False, f"{shown} answered HTTP {resp.status}")
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return Check(name, False, f"cannot reach {shown}: {type(exc).__name__} {exc}")
    except ValueError as exc:  # aiohttp/yarl on a URL they cannot use
        return Check(name, False, f"cannot use the URL {shown}: {exc}")


async def _check_discord(settings: Settings) -> Check:
    if settings.discord_bot_token is None:
        return Check("discord", False, "DISCORD_BOT_TOKEN is not set")
    token = settings.discord_bot_token.get_secret_value()
    return await _check_http(
        "discord",
        _endpoint(settings.discord_api_base, "/users/@me"),
        {"Authorization": f"Bot {token}"},
        f"token accepted by {redact_url(settings.discord_api_base)}",
    )


async def _check_llm(settings: Settings) -> list[Check]:
    checks = []
    for name in [settings.llm_provider, *settings.llm_fallback_providers]:
        fields = PROVIDERS[name]
        key = settings.provider_api_key(name)
        if key is None:
            checks.append(Check(f"llm:{name}", False, f"{fields.api_key.upper()} is not set"))
            continue
        base = getattr(settings, fields.base_url) or "https://api.anthropic.com"
        if fields.wire_api == "anthropic":
            v1 = urlsplit(base).path.rstrip("/").endswith("/v1")
            url = _endpoint(base, "/models" if v1 else "/v1/models")
            headers = {"x-api-key": key.get_secret_value(), "anthropic-version": "2023-06-01"}
        else:
            url = _endpoint(base, "/models")
            headers = {"Authorization": f"Bearer {key.get_secret_value()}"}
        checks.append(
            await _check_http(
                f"llm:{name}", url, headers, f"{name} reachable at {redact_url(base)}"
            )
        )
    return checks


async def _check_sandbox(settings: Settings) -> Check:
    """Which code sandbox SANDBOX_MODE gets here, and why (the manager's sentence).

    Optional: without one Clara runs, just without the code tools."""
    from sandbox.base import SandboxUnavailable
    from sandbox.manager import select_backend

    try:
        # probe: decide without touching the sandboxes a running Clara owns.
        backend, why = await select_backend(settings, probe=True)
    except SandboxUnavailable as exc:
        return Check(
            "sandbox",
            False,
            f"off, the code tools are not offered: {exc} (see docs/sandbox.md)",
            required=False,
        )
    except Exception as exc:  # e.g. DOCKER_SANDBOX_MEMORY unparsable
        return Check("sandbox", False, f"{type(exc).__name__}: {exc}", required=False)
    with contextlib.suppress(Exception):  # only letting go of a client; the answer stands
        await backend.close()
    return Check("sandbox", True, why, required=False)


def _redactor(settings: Settings | None) -> Redactor:
    """Every secret doctor could print: the configured ones and those inside URLs."""
    if settings is None:
        return Redactor()
    secrets = secret_values(settings)
    for name, value in settings:
        if isinstance(value, str) and "://" in value and name.endswith(("url", "api_base")):
            secrets += url_secrets(value)
    return Redactor(secrets)


async def run_doctor(settings: Settings | None, config_error: ConfigError | None) -> int:
    checks: list[Check] = []
    if config_error is not None or settings is None:
        problems = config_error.problems if config_error else ["could not load settings"]
        checks += [Check("config", False, p) for p in problems]
    else:
        checks.append(Check("config", True, "all settings valid"))
        data_dir = await asyncio.to_thread(_data_dir_check, settings)
        checks.append(data_dir)
        embedded = settings.database_url is None or settings.redis_url is None
        storage_checks, discord_check, llm_checks, sandbox_check = await asyncio.gather(
            _check_storage(settings) if data_dir.ok or not embedded else _storage_skipped(),
            _check_discord(settings),
            _check_llm(settings),
            _check_sandbox(settings),
        )
        checks += [*storage_checks, discord_check, *llm_checks, sandbox_check]
        from .voice.doctor import voice_checks

        checks += [Check(n, ok, d, required=False) for n, ok, d in voice_checks(settings)]
    # Last line of defence: whatever a check or a library put in a detail, no secret
    # (URL credentials, ?api_key=..., a configured key) reaches the terminal.
    redact = _redactor(settings)
    width = max(len(c.name) for c in checks)
    for c in checks:
        mark = "ok  " if c.ok else ("FAIL" if c.required else "warn")
        print(redact(f"[{mark}] {c.name.ljust(width)}  {c.detail}"))
    failed = [c for c in checks if c.required and not c.ok]
    print(
        f"\n{len(checks) - len(failed)} of {len(checks)} checks passed"
        + ("" if not failed else f"; {len(failed)} need attention")
    )
    return 0 if not failed else 1


async def _check_proactive(engine) -> Check:
    """Proactive sends a crash left pending (marked lost, never re-sent)."""
    from storage.proactive import ProactiveStore

    from .pipeline.proactive import doctor_check

    name, ok, detail = await doctor_check(ProactiveStore(engine))
    return Check(name, ok, detail, required=False)
