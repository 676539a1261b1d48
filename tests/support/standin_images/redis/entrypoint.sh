#!/bin/sh
# The official redis image's entrypoint contract, for the stand-in.
set -eu
if [ "$1" = "redis-server" ]; then
    shift
    chown -R redis:redis /data
    # Without a config file Redis only answers loopback (protected mode); the
    # official image turns that off, since the container's network is the fence.
    case "${1:-}" in
        *.conf) ;;
        *) set -- --protected-mode no "$@" ;;
    esac
    exec setpriv --reuid=redis --regid=redis --init-groups redis-server "$@"
fi
exec "$@"
