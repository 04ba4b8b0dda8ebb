#!/usr/bin/env bash
# The "nova" stage of tools/run-tests.sh: kvmplace's filter and weigher in the real
# nova-scheduler (Nova's functional harness, tests/nova), in .nova-venv because Nova's
# pins conflict with kvmplace's. Bootstraps everything itself from a fresh clone.
# Arguments: unittest names (default: every test under tests/nova).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh
tools/nova-venv.sh
tools/services.sh start >/dev/null
# Nova's TestCase clears its attributes in a cleanup that pytest's unittest
# plugin trips over: these run under unittest (OPENSTACK.md).
export OS_LOG_CAPTURE=1 OS_STDOUT_CAPTURE=1 OS_STDERR_CAPTURE=1
if [ $# -gt 0 ]; then
  exec .nova-venv/bin/python -m unittest -v "$@"
fi
exec .nova-venv/bin/python -m unittest discover -v -s tests/nova -t . -p 'test_*.py'
