#!/usr/bin/env bash
# The test command of README.md (and of .ci/run): install what is missing,
# start the daemons the tests talk to, then run the stages in order, fastest
# first, stopping at the first that fails:
#   lint (ruff + mypy), unit, functional (RabbitMQ, PostgreSQL, libvirtd),
#   nova (Nova's own functional harness in .nova-venv), lab (real hosts).
# With arguments, they are handed to one pytest run instead (e.g. a file).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh
tools/services.sh start
# services.sh started PostgreSQL: its tests must run here, not skip.
export KVMPLACE_TEST_POSTGRESQL_REQUIRED=1
PYTEST=(.venv/bin/python -m pytest -q -p no:cacheprovider)
if [ $# -gt 0 ]; then
  exec "${PYTEST[@]}" "$@"
fi

stage() { echo; echo "=== stage: $1 ($(date -u +%H:%M:%S))"; }

stage lint
tools/lint.sh
stage unit
"${PYTEST[@]}" tests/unit
stage functional
"${PYTEST[@]}" tests/functional
if [ -x tools/nova-tests.sh ]; then
  stage nova
  tools/nova-tests.sh
fi
stage lab
"${PYTEST[@]}" tests/integration
