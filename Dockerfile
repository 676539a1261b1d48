# Clara's bot image. Runs as an unprivileged user, so the embedded Postgres
# and Redis (the default when DATABASE_URL/REDIS_URL are unset) need no tricks.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CLARA_DATA_DIR=/data \
    CLARA_FILES_DIR=/data/files \
    MCP_SERVERS_DIR=/data/mcp_servers

RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin clara \
    && mkdir -p /data /app \
    && chown clara:clara /data /app

WORKDIR /app
COPY --chown=clara:clara pyproject.toml README.md ./
COPY --chown=clara:clara clara_core ./clara_core
COPY --chown=clara:clara storage ./storage
COPY --chown=clara:clara sandbox ./sandbox
COPY --chown=clara:clara tools ./tools
COPY --chown=clara:clara alembic ./alembic
COPY --chown=clara:clara discord_bot.py ./
# Editable install: alembic/ is read from the source tree at run time.
RUN pip install -e .

USER clara
VOLUME ["/data"]
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s \
    CMD ["python", "discord_bot.py", "--status"]
CMD ["python", "discord_bot.py"]
