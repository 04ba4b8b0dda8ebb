#!/usr/bin/env bash
# The main job of README.md: install what is missing, then show kvmplace
# choosing a target and planning on the sample inventory.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh
INV=etc/kvmplace/inventory.sample.json
K=.venv/bin/kvmplace
echo "== Where should vm1 go? (its QEMU main thread sits on a slowed NUMA node)"
$K select vm1 --inventory "$INV"
echo "== The seed note's table: 1 GbE, 10 GbE, 10 GbE into a slowed host"
for dest in cn-d cn-c cn-e; do $K estimate vm2 --to "$dest" --inventory "$INV"; done
