#!/usr/bin/env bash
# Install (if needed) and start production-like Redis + PostgreSQL 15/pgvector
# servers on loopback for Clara's storage tests, on a Debian bookworm machine.
#
# Usage:   eval "$(bash .ci/services.sh [WORKDIR])"
#          WORKDIR defaults to /tmp/clara-ci-services
# Env:     PG_PORT (default 55432), REDIS_PORT (default 56379)
# Stdout:  exactly two lines,
#            export TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:PG_PORT/clara_test
#            export TEST_REDIS_URL=redis://127.0.0.1:REDIS_PORT/0
#          everything else goes to stderr.
# Stop:    bash .ci/stop-services.sh [WORKDIR]
#
# The system's default services (Debian's postgresql 15/main cluster, the
# redis-server init service) are neither started nor touched: our servers run
# from their own directories under WORKDIR, on their own ports.
# Idempotent: a second run reuses running instances and skips all apt work
# once the packages and the pgvector extension are installed.
set -euo pipefail

# Become root if we are not (apt, runuser); stdout is preserved by sudo.
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        exec sudo -E bash "$0" "$@"
    fi
    echo "services.sh: must run as root (or with sudo available)" >&2
    exit 1
fi

# Keep the real stdout on fd 3 for the two export lines; send everything
# else (including all child processes' output) to stderr.
exec 3>&1 1>&2

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8
unset LANG LANGUAGE

WORKDIR=$(realpath -m -- "${1:-/tmp/clara-ci-services}")
PG_PORT=${PG_PORT:-55432}
REDIS_PORT=${REDIS_PORT:-56379}
PG_DB=clara_test

PG_BIN=/usr/lib/postgresql/15/bin
PG_CONFIG=$PG_BIN/pg_config
VECTOR_CONTROL=/usr/share/postgresql/15/extension/vector.control
TRIXIE_SRC_LIST=/etc/apt/sources.list.d/clara-ci-trixie-src.sources

PG_DIR=$WORKDIR/postgres          # owned by the postgres OS user
PGDATA=$PG_DIR/data
PG_LOG=$PG_DIR/postgres.log
REDIS_DIR=$WORKDIR/redis
REDIS_PID=$REDIS_DIR/redis.pid
REDIS_LOG=$REDIS_DIR/redis.log

log() { printf '[services.sh] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Run from / so that commands run as "postgres" never start in a directory
# they can't read (e.g. /root).
cd /

# --------------------------------------------------------------------------
# Cleanup (temporary policy-rc.d, build directory)
# --------------------------------------------------------------------------
CLEANUP_POLICY_RC=0
BUILD_DIR=
cleanup() {
    if [ "$CLEANUP_POLICY_RC" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
    if [ -n "$BUILD_DIR" ]; then rm -rf -- "$BUILD_DIR"; fi
}
trap cleanup EXIT

# --------------------------------------------------------------------------
# 1. Packages
# --------------------------------------------------------------------------
pkg_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

need_pkgs=()
for p in redis-server redis-tools postgresql-15 postgresql-client-15; do
    pkg_installed "$p" || need_pkgs+=("$p")
done

build_vector=0
if [ ! -f "$VECTOR_CONTROL" ]; then
    build_vector=1
    # make/gcc/libc6-dev are listed explicitly: with --no-install-recommends
    # gcc does not pull libc6-dev. dpkg-dev is needed by `apt-get source`.
    for p in postgresql-server-dev-15 gcc make libc6-dev dpkg-dev; do
        pkg_installed "$p" || need_pkgs+=("$p")
    done
fi

need_update=0
if [ "$build_vector" = 1 ] && [ ! -f "$TRIXIE_SRC_LIST" ]; then
    # Source-only trixie entry: bookworm has no pgvector package. deb-src
    # never makes apt install or upgrade binaries from trixie.
    log "adding trixie deb-src entry ($TRIXIE_SRC_LIST)"
    cat >"$TRIXIE_SRC_LIST" <<'EOF'
# Added by Clara's .ci/services.sh: source packages only (used to build
# pgvector for PostgreSQL 15). Never add binary (Types: deb) trixie lines here.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    need_update=1
fi
if [ "$build_vector" = 1 ] && ! ls /var/lib/apt/lists/*trixie*Sources* >/dev/null 2>&1; then
    need_update=1
fi
[ "${#need_pkgs[@]}" -gt 0 ] && need_update=1

if [ "$need_update" = 1 ]; then
    log "apt-get update"
    apt-get update -q
fi

if [ "${#need_pkgs[@]}" -gt 0 ]; then
    # Keep package maintainer scripts from starting the *system* services
    # (postgresql 15/main on 5432, redis on 6379): they would collide with
    # nothing of ours, but we don't want them, and without systemd/init
    # invoke-rc.d may fail. Only if no policy is in place already.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        CLEANUP_POLICY_RC=1
    fi
    log "apt-get install ${need_pkgs[*]}"
    apt-get install -y -q --no-install-recommends "${need_pkgs[@]}"
    if [ "$CLEANUP_POLICY_RC" = 1 ]; then
        rm -f /usr/sbin/policy-rc.d
        CLEANUP_POLICY_RC=0
    fi
fi

for f in "$PG_BIN/initdb" "$PG_BIN/pg_ctl" "$PG_BIN/psql" "$PG_BIN/pg_isready" \
         /usr/bin/redis-server /usr/bin/redis-cli; do
    [ -x "$f" ] || die "missing $f after installation"
done
id postgres >/dev/null 2>&1 || die "OS user 'postgres' does not exist"

# --------------------------------------------------------------------------
# 2. pgvector, built from Debian trixie's source package
# --------------------------------------------------------------------------
if [ "$build_vector" = 1 ]; then
    BUILD_DIR=$(mktemp -d /tmp/clara-pgvector-build.XXXXXX)
    log "fetching pgvector source from trixie into $BUILD_DIR"
    # APT::Sandbox::User=root: the download dir belongs to root (avoids the
    # "unsandboxed as root" warning / _apt permission problem).
    (cd "$BUILD_DIR" && apt-get source -q -o APT::Sandbox::User=root pgvector/trixie)
    src=$(find "$BUILD_DIR" -mindepth 1 -maxdepth 1 -type d -name 'pgvector-*' | head -n1)
    [ -n "$src" ] || die "apt-get source pgvector/trixie produced no source tree"
    log "building $(basename "$src") against $PG_CONFIG"
    # with_llvm=no: no JIT bitcode (no clang needed at build time).
    # OPTFLAGS="": no -march=native (as Debian builds it; pgvector does its
    # own runtime CPU dispatch).
    make -C "$src" -j"$(nproc)" PG_CONFIG="$PG_CONFIG" with_llvm=no OPTFLAGS=""
    make -C "$src" install PG_CONFIG="$PG_CONFIG" with_llvm=no OPTFLAGS=""
    [ -f "$VECTOR_CONTROL" ] || die "pgvector installed but $VECTOR_CONTROL is missing"
    rm -rf -- "$BUILD_DIR"
    BUILD_DIR=
else
    log "pgvector already installed ($VECTOR_CONTROL), skipping build"
fi

# --------------------------------------------------------------------------
# 3a. PostgreSQL instance under $WORKDIR
# --------------------------------------------------------------------------
as_pg() { runuser -u postgres -- "$@"; }

mkdir -p "$WORKDIR" "$REDIS_DIR"
mkdir -p "$PG_DIR"
chown postgres:postgres "$PG_DIR"
chmod 700 "$PG_DIR"
as_pg test -w "$PG_DIR" \
    || die "user postgres cannot access $PG_DIR (is a parent of $WORKDIR not world-searchable?)"

# The server's Unix socket goes into $PG_DIR (sun_path is limited to 107 bytes).
sock="$PG_DIR/.s.PGSQL.$PG_PORT"
[ "${#sock}" -lt 100 ] || die "WORKDIR path too long for a Unix socket: $sock"

pg_running() { as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }
pg_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres; }

if [ ! -f "$PGDATA/PG_VERSION" ]; then
    log "initdb $PGDATA"
    rm -rf -- "$PGDATA"
    as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 >&2
fi
[ "$(cat "$PGDATA/PG_VERSION")" = 15 ] || die "$PGDATA is not a PostgreSQL 15 data directory"

# Our settings live in clara-ci.conf, included from postgresql.conf; rewritten
# on every run so a changed PG_PORT takes effect on (re)start.
as_pg tee "$PGDATA/clara-ci.conf" >/dev/null <<EOF
# Written by Clara's .ci/services.sh -- regenerated on every run.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DIR'
max_connections = 200
# Throwaway CI data: durability is not needed, speed is.
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
if ! grep -q "^include_if_exists = 'clara-ci.conf'" "$PGDATA/postgresql.conf"; then
    echo "include_if_exists = 'clara-ci.conf'" | as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null
fi
# Trust for local socket and loopback TCP only (what initdb --auth=trust
# writes, but made explicit in case the data dir came from elsewhere).
as_pg tee "$PGDATA/pg_hba.conf" >/dev/null <<'EOF'
# Written by Clara's .ci/services.sh
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  trust
host    all       all   127.0.0.1/32   trust
host    all       all   ::1/128        trust
local   replication all                trust
host    replication all 127.0.0.1/32   trust
EOF

if pg_running; then
    if pg_ready; then
        log "postgres already running on 127.0.0.1:$PG_PORT, reusing it (reloading config)"
        as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" reload >&2
    else
        log "postgres running but not answering on 127.0.0.1:$PG_PORT, restarting it"
        as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" stop -m fast -w -t 60 >&2
    fi
fi
if ! pg_running; then
    if pg_ready; then
        die "something else is already listening on 127.0.0.1:$PG_PORT (set PG_PORT)"
    fi
    log "starting postgres on 127.0.0.1:$PG_PORT (log: $PG_LOG)"
    # 3>&-: the server must not inherit our saved stdout, or a caller doing
    # "$(bash services.sh)" would wait for EOF forever. (pg_ctl -l points the
    # server's own stdout/stderr at the log file.)
    if ! as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PG_LOG" -w -t 60 start </dev/null >&2 3>&-; then
        tail -n 50 "$PG_LOG" >&2 || true
        die "postgres failed to start"
    fi
fi
for _ in $(seq 1 60); do pg_ready && break; sleep 0.5; done
pg_ready || { tail -n 50 "$PG_LOG" >&2 || true; die "postgres is not answering on 127.0.0.1:$PG_PORT"; }

psql_pg() {
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"
}
if [ "$(psql_pg -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]; then
    log "creating database $PG_DB"
    psql_pg -d postgres -c "CREATE DATABASE $PG_DB" >&2
fi

# Verify pgvector inside a rolled-back transaction (leaves $PG_DB untouched:
# tests still get to run CREATE EXTENSION themselves).
log "verifying pgvector in $PG_DB"
verify_out=$(psql_pg -d "$PG_DB" -tA <<'EOF'
SET client_min_messages = warning;
BEGIN;
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TEMP TABLE clara_ci_vec (id int PRIMARY KEY, v vector(3)) ON COMMIT DROP;
INSERT INTO clara_ci_vec VALUES (1, '[1,2,3]'), (2, '[1,2,4]'), (3, '[9,9,9]');
CREATE INDEX ON clara_ci_vec USING hnsw (v vector_l2_ops);
CREATE INDEX ON clara_ci_vec USING hnsw (v vector_cosine_ops);
SELECT 'dist=' || ('[1,2,3]'::vector <-> '[1,2,4]'::vector);
SELECT 'nearest=' || id FROM clara_ci_vec ORDER BY v <-> '[1,2,3.9]' LIMIT 1;
SELECT 'version=' || extversion FROM pg_extension WHERE extname = 'vector';
ROLLBACK;
EOF
)
# shellcheck disable=SC2001
echo "$verify_out" | sed 's/^/[services.sh]   /' >&2
grep -qx 'dist=1' <<<"$verify_out" || die "pgvector distance check failed"
grep -qx 'nearest=2' <<<"$verify_out" || die "pgvector HNSW query check failed"

# --------------------------------------------------------------------------
# 3b. Redis instance under $WORKDIR
# --------------------------------------------------------------------------
redis_ping() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null || true)" = PONG ]; }
# A pid from our pidfile that is alive *and* is a redis-server (not a recycled pid).
redis_pid_alive() {
    [ -s "$REDIS_PID" ] || return 1
    local pid; pid=$(cat "$REDIS_PID")
    kill -0 "$pid" 2>/dev/null && grep -q '^redis-server' "/proc/$pid/comm" 2>/dev/null
}

if redis_ping && redis_pid_alive; then
    log "redis already running on 127.0.0.1:$REDIS_PORT, reusing it"
else
    if redis_ping; then
        die "something else is already answering on 127.0.0.1:$REDIS_PORT (set REDIS_PORT)"
    fi
    if redis_pid_alive; then
        # Ours, but not answering on the requested port (e.g. REDIS_PORT changed).
        old=$(cat "$REDIS_PID")
        log "stopping stale redis (pid $old)"
        kill "$old" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$REDIS_PID"
    log "starting redis on 127.0.0.1:$REDIS_PORT (log: $REDIS_LOG)"
    # shellcheck disable=SC2094  # --logfile is an argument, not a read
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" \
        --save "" --appendonly no --daemonize yes \
        --pidfile "$REDIS_PID" --dir "$REDIS_DIR" --logfile "$REDIS_LOG" \
        </dev/null >>"$REDIS_LOG" 2>&1 3>&-   # hold no pipe of our caller open
    for _ in $(seq 1 100); do redis_ping && break; sleep 0.1; done
    redis_ping || { tail -n 50 "$REDIS_LOG" >&2 || true; die "redis failed to start"; }
fi

# Remember the ports for stop-services.sh.
cat >"$WORKDIR/services.env" <<EOF
PG_PORT=$PG_PORT
REDIS_PORT=$REDIS_PORT
EOF

log "redis: $(redis-server --version)"
log "postgres: $(psql_pg -d postgres -tAc 'SHOW server_version')"
log "ready"

echo "export TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:$PG_PORT/$PG_DB" >&3
echo "export TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0" >&3
