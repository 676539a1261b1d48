# Clara's bot image. Runs as an unprivileged user, so the embedded Postgres
# and Redis (the default when DATABASE_URL/REDIS_URL are unset) need no tricks.
#
#   docker build -t clara .
#   # no registry here? start from the local debootstrap image instead
#   # (bash .ci/sandbox-setup.sh builds it); the build needs apt and PyPI:
#   docker build --network host --build-arg BASE_IMAGE=clara-sandbox:bookworm -t clara .
#
# BASE_IMAGE: any Debian bookworm image with python3 >= 3.11 (python3-venv is
# added when it has no ensurepip, as the debootstrap image has not).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

# The debootstrap image is imported with USER 1000; installing needs root (the
# bot itself runs as the clara user, below).
USER root
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CLARA_DATA_DIR=/data \
    CLARA_FILES_DIR=/data/files \
    MCP_SERVERS_DIR=/data/mcp_servers \
    # The status page answers the HEALTHCHECK below; inside the container it
    # listens on loopback only (nothing publishes it unless you do).
    DISCORD_MONITOR_ENABLED=true \
    DISCORD_MONITOR_HOST=127.0.0.1 \
    DISCORD_MONITOR_PORT=8001

# One virtual environment for Clara, whatever Python the base image brings.
RUN set -eu; \
    if ! python3 -c "import ensurepip, venv" 2>/dev/null; then \
        apt-get update -q; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv; \
        rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb; \
    fi; \
    python3 -m venv /opt/venv; \
    getent passwd 1000 >/dev/null && userdel --remove "$(getent passwd 1000 | cut -d: -f1)" 2>/dev/null || true; \
    useradd --create-home --uid 1000 --shell /usr/sbin/nologin clara; \
    mkdir -p /data /app; \
    chown clara:clara /data /app

WORKDIR /app
# Dependencies first, from the hashed lock only (a layer that survives code edits).
# Behind a TLS-inspecting proxy pip needs its CA: pass the PEM text in
# EXTRA_CA_CERTS (used for this step only, not left in the image; a build arg
# shows in `docker history`, fine for a public CA certificate, never a secret).
# PIP_INDEX_URL: a mirror of PyPI (the hashes still decide what is installed).
ARG EXTRA_CA_CERTS=""
ARG PIP_INDEX_URL=https://pypi.org/simple/
COPY requirements.lock ./
RUN set -eu; \
    if [ -n "$EXTRA_CA_CERTS" ]; then \
        python -c "import pip._vendor.certifi as c; print(open(c.where()).read())" > /tmp/ca.pem; \
        printf '%s\n' "$EXTRA_CA_CERTS" >> /tmp/ca.pem; \
        export PIP_CERT=/tmp/ca.pem; \
    fi; \
    pip install --require-hashes --only-binary :all: -r requirements.lock; \
    rm -f /tmp/ca.pem
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
