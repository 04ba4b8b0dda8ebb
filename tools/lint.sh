#!/usr/bin/env bash
# The fast first stage of the tests: lint (ruff, configured in ruff.toml)
# and types (mypy, configured in mypy.ini). Seconds, not minutes, so a
# style or type slip fails before the long stages start.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "lint: ruff"
.venv/bin/ruff check --quiet .
echo "lint: mypy"
.venv/bin/mypy --no-error-summary --hide-error-context
echo "lint: passed"
