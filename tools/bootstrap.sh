#!/usr/bin/env bash
# Install what kvmplace needs on a fresh Debian 12 machine (as root):
# Debian packages for libvirt/QEMU/RabbitMQ/PostgreSQL, then a virtual environment in
# .venv with kvmplace, its optional extras (plot, lab, postgresql) and its test
# dependencies. Idempotent and quiet when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(libvirt-daemon-system libvirt-daemon-driver-qemu qemu-system-x86
  qemu-utils libvirt-dev pkg-config rabbitmq-server numactl busybox-static cpio
  iproute2 openssl bridge-utils gcc libc6-dev python3-venv python3-dev postgresql)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "bootstrap: error: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$PY" -m venv .venv
fi
# pbr takes the version from git; a tarball without .git needs it given.
git rev-parse HEAD >/dev/null 2>&1 || export PBR_VERSION=${PBR_VERSION:-0.1.0}
stamp=.venv/.kvmplace-installed
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ requirements.txt -nt "$stamp" ] \
    || [ test-requirements.txt -nt "$stamp" ]; then
  echo "bootstrap: installing Python packages into .venv"
  .venv/bin/pip install -q --disable-pip-version-check --upgrade pip wheel 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt \
    -r test-requirements.txt libvirt-python 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e . 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -W ignore -c "import kvmplace, libvirt, oslo_messaging, psycopg2, matplotlib, jsonschema"
  touch "$stamp"
fi
