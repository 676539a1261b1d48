#!/usr/bin/env bash
# Stop the PostgreSQL and Redis servers started by .ci/services.sh.
# Usage: bash .ci/stop-services.sh [WORKDIR]   (default /tmp/clara-ci-services)
# Ports come from WORKDIR/services.env (written by services.sh), else from
# PG_PORT / REDIS_PORT, else the defaults. Safe to run when nothing is running.
set -euo pipefail

if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
    exec sudo -E bash "$0" "$@"
fi

WORKDIR=$(realpath -m -- "${1:-/tmp/clara-ci-services}")
PG_PORT=${PG_PORT:-55432}
REDIS_PORT=${REDIS_PORT:-56379}
if [ -f "$WORKDIR/services.env" ]; then
    # shellcheck disable=SC1091
    . "$WORKDIR/services.env"
fi

PG_BIN=/usr/lib/postgresql/15/bin
PGDATA=$WORKDIR/postgres/data
REDIS_PID=$WORKDIR/redis/redis.pid

log() { printf '[stop-services.sh] %s\n' "$*" >&2; }
cd /
rc=0

# PostgreSQL
if [ -f "$PGDATA/PG_VERSION" ] && [ -x "$PG_BIN/pg_ctl" ]; then
    if runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
        log "stopping postgres ($PGDATA)"
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" stop -m fast -w -t 60 >&2 || rc=1
    else
        log "postgres not running"
    fi
else
    log "no postgres data directory at $PGDATA"
fi

# Redis
pid=
if [ -s "$REDIS_PID" ]; then
    pid=$(cat "$REDIS_PID")
    # ignore a stale pidfile whose pid now belongs to some other process
    grep -q '^redis-server' "/proc/$pid/comm" 2>/dev/null || pid=
fi
if command -v redis-cli >/dev/null 2>&1 \
   && [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null || true)" = PONG ]; then
    log "stopping redis on 127.0.0.1:$REDIS_PORT"
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >&2 2>/dev/null || true
elif [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    log "redis not answering on port $REDIS_PORT; sending SIGTERM to pid $pid"
    kill "$pid" 2>/dev/null || true
else
    log "redis not running"
fi
if [ -n "$pid" ]; then
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        log "redis (pid $pid) did not exit"
        rc=1
    else
        rm -f "$REDIS_PID"
    fi
fi

exit "$rc"
