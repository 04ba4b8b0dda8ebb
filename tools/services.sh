#!/usr/bin/env bash
# Start (or check) the daemons the tests use: RabbitMQ and the root
# namespace's libvirtd. No systemd here, so they are started by hand and
# left running; starting twice is harmless.
set -euo pipefail
cmd=${1:-start}

port_open() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

start_rabbitmq() {
  port_open 5672 && return 0
  echo "services: starting RabbitMQ"
  mkdir -p /var/log/rabbitmq /var/lib/rabbitmq
  (setsid rabbitmq-server >/var/log/rabbitmq/kvmplace-start.log 2>&1 &)
  for _ in $(seq 1 120); do port_open 5672 && return 0; sleep 0.5; done
  echo "services: error: RabbitMQ did not open port 5672 (see /var/log/rabbitmq/)" >&2
  return 1
}

start_libvirtd() {
  [ -S /run/libvirt/libvirt-sock ] && virsh -c qemu:///system version >/dev/null 2>&1 && return 0
  echo "services: starting virtlogd and libvirtd"
  pgrep -x virtlogd >/dev/null || virtlogd -d
  pgrep -x libvirtd >/dev/null || libvirtd -d
  for _ in $(seq 1 60); do
    virsh -c qemu:///system version >/dev/null 2>&1 && return 0; sleep 0.5
  done
  echo "services: error: libvirtd does not answer on qemu:///system" >&2
  return 1
}

case "$cmd" in
  start) start_rabbitmq; start_libvirtd ;;
  *) echo "usage: $0 start" >&2; exit 2 ;;
esac
