#!/usr/bin/env bash
# Provide what the sandbox tests need: bubblewrap, a running dockerd and the
# local sandbox image (no registry is reachable, so the image is built with
# debootstrap and `docker import`ed).
#
# Idempotent: every step checks first.  The image rootfs tarball is cached
# under $SANDBOX_CACHE_DIR (default ~/.cache/clara-sandbox) so a machine that
# keeps its home directory builds it once (~45 s) and imports it in ~1.5 s.
#
# When dockerd cannot be provided (no root, no packages, no kernel support)
# this prints why and exits 0: the Docker tests then SKIP with that reason.
# On CI it must work; CLARA_SANDBOX_REQUIRED=1 turns that case into a failure.
#
# dockerd is started WITHOUT a bridge, NAT or ip_forward: plain dockerd adds
# all three to the host, and sandboxes run with --network none anyway.
set -uo pipefail

IMAGE="${DOCKER_SANDBOX_IMAGE:-clara-sandbox:bookworm}"
CACHE_DIR="${SANDBOX_CACHE_DIR:-${HOME:-/root}/.cache/clara-sandbox}"
DOCKERD_LOG="${DOCKERD_LOG:-/tmp/clara-dockerd.log}"
REQUIRED="${CLARA_SANDBOX_REQUIRED:-0}"

say() { echo "sandbox-setup: $*"; }
give_up() {
    say "$*"
    if [ "$REQUIRED" = "1" ]; then exit 1; fi
    say "sandbox tests for the missing backend will be skipped"
    exit 0
}

SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
fi

# 1. packages
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != "0" ] && [ -z "$SUDO" ]; then
        give_up "need root to install ${missing[*]}"
    fi
    say "installing ${missing[*]}"
    $SUDO apt-get update -q >/dev/null || give_up "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}" >/dev/null \
        || give_up "apt-get install ${missing[*]} failed"
fi
say "bubblewrap: $(bwrap --version 2>/dev/null || echo missing)"

# 2. dockerd
docker_ok() { docker info >/dev/null 2>&1; }
if ! docker_ok; then
    command -v dockerd >/dev/null 2>&1 || give_up "dockerd is not installed"
    say "starting dockerd (log: $DOCKERD_LOG)"
    # setsid: dockerd gets its own session, so stopping the shell or job that started
    # it (a killed process group) does not take the daemon down with it.
    $SUDO sh -c "setsid nohup dockerd --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
        >'$DOCKERD_LOG' 2>&1 </dev/null &"
    for _ in $(seq 1 60); do docker_ok && break; sleep 0.5; done
    docker_ok || give_up "dockerd did not answer within 30 s; see $DOCKERD_LOG: $(tail -3 "$DOCKERD_LOG" 2>/dev/null)"
fi
say "dockerd answers (server $(docker version --format '{{.Server.Version}}' 2>/dev/null))"

# 3. image
# Clara's default DOCKER_SANDBOX_IMAGE (python:3.12-slim) needs a registry: say
# which setting points Clara at the image built here.
use_it() { say "Clara uses it with DOCKER_SANDBOX_IMAGE=$IMAGE (in .env)"; }
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    say "image $IMAGE present"
    use_it
    exit 0
fi
mkdir -p "$CACHE_DIR"
TARBALL="$CACHE_DIR/bookworm-minbase-python3.tar"
if [ ! -s "$TARBALL" ]; then
    ROOTFS="$(mktemp -d /tmp/clara-sandbox-rootfs.XXXXXX)"
    MIRROR="$(grep -rhoE '^(deb|URIs:) +https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
        | awk '{print $2}' | grep -E '/debian/?$' | head -1)"
    MIRROR="${MIRROR:-http://deb.debian.org/debian}"
    say "building rootfs with debootstrap from $MIRROR (~45 s)"
    $SUDO debootstrap --variant=minbase --include=python3 bookworm "$ROOTFS" "$MIRROR" \
        >"$CACHE_DIR/debootstrap.log" 2>&1 \
        || give_up "debootstrap failed; see $CACHE_DIR/debootstrap.log"
    # An unprivileged user for the sandbox (uid 1000) and a workspace mount point.
    $SUDO chroot "$ROOTFS" sh -c 'groupadd -g 1000 sandbox && useradd -u 1000 -g 1000 -M -d /workspace -s /bin/sh sandbox && mkdir -p /workspace && chown 1000:1000 /workspace' \
        || give_up "could not add the sandbox user to the rootfs"
    $SUDO rm -rf "$ROOTFS/var/cache/apt/archives"/*.deb "$ROOTFS/var/lib/apt/lists"/*
    $SUDO tar -C "$ROOTFS" -cf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
    $SUDO rm -rf "$ROOTFS"
fi
say "importing $TARBALL as $IMAGE"
docker import -c 'USER 1000:1000' -c 'WORKDIR /workspace' -c 'CMD ["sleep","infinity"]' \
    "$TARBALL" "$IMAGE" >/dev/null || give_up "docker import failed"
say "image $IMAGE ready"
use_it
