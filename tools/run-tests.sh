#!/usr/bin/env bash
# The test command of README.md (and of .ci/run): install what is missing,
# start the daemons the tests talk to, run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh
tools/services.sh start
# services.sh started PostgreSQL: its tests must run here, not skip.
export KVMPLACE_TEST_POSTGRESQL_REQUIRED=1
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
