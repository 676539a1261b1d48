#!/usr/bin/env bash
# Set up and run Clara's whole test suite: the README's test command.
#   bash tests/run.sh            # everything
#   bash tests/run.sh -k daemon  # extra arguments go to pytest
# Creates .venv if needed, installs Clara with its dev extras, checks lint and
# formatting, then runs pytest. Postgres and Redis are started by the tests
# themselves (embedded), unless TEST_DATABASE_URL / TEST_REDIS_URL are set.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"

echo "== ruff (lint + format check)"
.venv/bin/ruff check .
.venv/bin/ruff format --check .

echo "== pytest"
exec .venv/bin/python -m pytest "$@"
