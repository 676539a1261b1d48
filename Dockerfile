# Clara's bot image. Runs as an unprivileged user, so the embedded Postgres
# and Redis (the default when DATABASE_URL/REDIS_URL are unset) need no tricks.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CLARA_DATA_DIR=/data \
    CLARA_FILES_DIR=/data/files \
    MCP_SERVERS_DIR=/data/mcp_servers \
    # The status page answers the HEALTHCHECK below; inside the container it
    # listens on loopback only (nothing publishes it unless you do).
    DISCORD_MONITOR_ENABLED=true \
    DISCORD_MONITOR_HOST=127.0.0.1 \
    DISCORD_MONITOR_PORT=8001

RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin clara \
    && mkdir -p /data /app \
    && chown clara:clara /data /app

WORKDIR /app
# Dependencies first, from the hashed lock only (a layer that survives code edits).
COPY requirements.lock ./
RUN pip install --require-hashes --only-binary :all: -r requirements.lock
COPY pyproject.toml README.md discord_bot.py ./
COPY clara_core ./clara_core
COPY storage ./storage
COPY sandbox ./sandbox
COPY tools ./tools
COPY alembic ./alembic
# A regular (non-editable) install: the migrations go to /usr/local/share/clara/alembic.
RUN pip install --no-deps --no-build-isolation . && rm -rf /app/build

USER clara
VOLUME ["/data"]
# /health is 200 only while Clara is connected to Discord (503 while she
# reconnects), which a pidfile check cannot tell.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s \
    CMD ["python", "-c", "import os, sys, urllib.request as u; u.urlopen('http://127.0.0.1:%s/health' % os.environ.get('DISCORD_MONITOR_PORT', '8001'), timeout=5); sys.exit(0)"]
CMD ["python", "discord_bot.py"]
