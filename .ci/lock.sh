#!/usr/bin/env bash
# The hashed lock files every install uses (README, tests/run.sh, .ci/run, Dockerfile):
#   requirements.lock       Clara's runtime dependencies, direct and transitive
#   requirements-voice.lock the same plus the voice extra (faster-whisper, piper, PyAV, models)
#   requirements-dev.lock   the same plus the voice extra and the test and lint tools (and uv,
#                           which writes these files): the tests cover voice too
#
#   bash .ci/lock.sh              re-resolve after editing pyproject.toml; unchanged pins stay
#   bash .ci/lock.sh --upgrade    the newest versions pyproject.toml allows, then the whole test
#                                 suite in a fresh venv; the new locks are kept only if it passes
#
# Why pip-format requirements files written by uv: a fresh machine installs them with nothing but
# `python3 -m venv` and pip's --require-hashes (no extra tool to bootstrap unhashed); uv resolves
# in about a second and writes one universal file (markers for other Pythons and platforms).
set -euo pipefail
cd "$(dirname "$0")/.."

upgrade=()
if [ "${1:-}" = "--upgrade" ]; then upgrade=(--upgrade); fi

UV=.venv/bin/uv
if [ ! -x "$UV" ]; then
    echo "lock.sh: $UV missing: run 'bash tests/run.sh' once first (it installs the dev lock)" >&2
    exit 2
fi

compile() {  # compile OUT [EXTRA...]
    local out=$1; shift
    # The build backend (setuptools) is locked too: installs build Clara with
    # --no-build-isolation, so nothing unhashed is fetched at build time.
    printf 'setuptools>=69\n' | "$UV" pip compile pyproject.toml - "$@" "${upgrade[@]}" \
        --universal --python-version 3.11 --generate-hashes --quiet \
        --custom-compile-command "bash .ci/lock.sh" -o "$out"
}

backup=$(mktemp -d)
cp requirements*.lock "$backup/" 2>/dev/null || true
compile requirements.lock
compile requirements-voice.lock --extra voice
compile requirements-dev.lock --extra dev --extra voice

if [ ${#upgrade[@]} -eq 0 ]; then
    echo "lock.sh: requirements.lock, requirements-voice.lock and requirements-dev.lock written"
    exit 0
fi

# An upgrade is only kept when the whole suite passes on exactly what it installs.
echo "lock.sh: new locks written; running the whole suite in a fresh .venv"
restore() {
    cp "$backup"/requirements*.lock . 2>/dev/null || true
    rm -rf .venv && bash tests/run.sh --collect-only -q >/dev/null 2>&1 || true
}
rm -rf .venv
if bash tests/run.sh; then
    echo "lock.sh: suite passed on the upgraded locks; review 'git diff *.lock' and commit them"
else
    echo "lock.sh: suite FAILED on the upgraded locks; the previous locks are restored" >&2
    restore
    exit 1
fi
