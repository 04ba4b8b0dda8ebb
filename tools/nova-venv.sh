#!/usr/bin/env bash
# Make .nova-venv: Nova and Placement (with their test harness) plus kvmplace, in their own
# virtual environment, because Nova's pins conflict with kvmplace's .venv (OPENSTACK.md).
# Idempotent and quiet when everything is already there; run from a fresh clone.
#   - SQLAlchemy<2.1: Nova's warnings fixture turns 2.1's deprecation warnings into errors;
#   - the test tools Nova's functional harness imports (not in the nova wheel's requires).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${NOVA_VENV:-.nova-venv}
NOVA_PACKAGES=(nova openstack-placement "SQLAlchemy<2.1" oslotest testtools stestr
  testscenarios fixtures wsgi-intercept requests-mock os-traits os-resource-classes
  PyYAML pytest)
git rev-parse HEAD >/dev/null 2>&1 || export PBR_VERSION=${PBR_VERSION:-0.1.0}
if [ ! -x "$VENV/bin/python" ]; then
  echo "nova-venv: creating $VENV"
  "$PY" -m venv "$VENV"
fi
stamp=$VENV/.kvmplace-nova-installed
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ "$0" -nt "$stamp" ]; then
  echo "nova-venv: installing Nova, Placement and kvmplace into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip wheel 2>&1 \
    | grep -v '^WARNING: Location' || true
  "$VENV/bin/pip" install -q --disable-pip-version-check "${NOVA_PACKAGES[@]}" 2>&1 \
    | grep -v '^WARNING: Location' || true
  # kvmplace's own requirements not already satisfied by Nova's set, then kvmplace itself
  # without touching Nova's pins.
  "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements.txt \
    "SQLAlchemy<2.1" 2>&1 | grep -v '^WARNING: Location' || true
  # (setuptools' build warnings about kvmplace's packaging are not ours to show)
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e . >/dev/null 2>&1
  "$VENV/bin/python" -W ignore -c \
    "import nova.tests.functional.integrated_helpers, placement, kvmplace.nova"
  touch "$stamp"
fi
