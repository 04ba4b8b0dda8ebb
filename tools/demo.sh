#!/usr/bin/env bash
# The main job of README.md: install what is missing, bring up the lab
# (three real libvirt/QEMU hosts in namespaces with shaped links, RabbitMQ,
# kvmplace-conductor and one kvmplace-agent per host), then drain a host
# with live progress and show where every guest went.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh
tools/services.sh start
K=.venv/bin/kvmplace
LAB=.venv/bin/kvmplace-lab

echo "== Bringing up the lab (3 hosts: 10 Gbit, 10 Gbit, 1 Gbit; 6 guests)"
$LAB up --hosts 3 --links 10000,10000,1000 --guests 6 --services --recreate
CFG=$($LAB status -f json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["config_file"])')
C="--config-file $CFG"

echo "== Waiting for every agent to report"
for _ in $(seq 1 60); do
  up=$($K $C hosts list -f json 2>/dev/null | .venv/bin/python -c \
    'import json,sys; print(sum(h["up"] for h in json.load(sys.stdin)))' 2>/dev/null || echo 0)
  [ "$up" -ge 3 ] && break
  sleep 1
done
$K $C hosts list

HOST=lab-h1
echo "== The plan for draining $HOST (also drawn in /var/lib/kvmplace-lab/drain-plan.svg)"
$K $C drain "$HOST" --dry-run --output /var/lib/kvmplace-lab/drain-plan.svg

echo "== Draining $HOST for real"
$K $C drain "$HOST" --wait

echo "== Where the guests are now (libvirt's view)"
$LAB status
$K $C hosts list
echo
echo "The lab stays up: try '$K $C migrate lab-vm1 --wait' or '$K $C rebalance --dry-run'."
echo "'$LAB down' removes everything it made."
