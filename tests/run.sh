#!/usr/bin/env bash
# Set up and run Clara's whole test suite: the README's test command.
#   bash tests/run.sh            # everything
#   bash tests/run.sh -k daemon  # extra arguments go to pytest
# Creates .venv if needed, installs exactly what requirements-dev.lock pins
# (hash-checked, wheels only), then Clara itself, checks lint and formatting,
# then runs pytest. Postgres and Redis are started by the tests
# themselves (embedded), unless TEST_DATABASE_URL / TEST_REDIS_URL are set.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# No "pip install --upgrade pip": the venv's own pip installs the lock, so the
# result does not depend on what PyPI serves today.
.venv/bin/python -m pip install --quiet --require-hashes --only-binary :all: \
    -r requirements-dev.lock
.venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .

echo "== ruff (lint + format check)"
.venv/bin/ruff check .
.venv/bin/ruff format --check .

echo "== sandbox backends (bubblewrap, dockerd, the local sandbox image)"
# Installs and starts what it can (root needed); whatever it cannot provide is
# skipped by the sandbox tests with the reason. CI sets CLARA_SANDBOX_REQUIRED=1.
bash .ci/sandbox-setup.sh

echo "== Docker Compose v2 for the compose tests (skipped with a reason if unavailable)"
bash .ci/compose-setup.sh

echo "== browser for the dashboard test (Debian's chromium; skipped with a reason if unavailable)"
bash .ci/browser-setup.sh

echo "== pytest"
exec .venv/bin/python -m pytest "$@"
