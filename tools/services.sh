#!/usr/bin/env bash
# Start (or check) the daemons the tests use: RabbitMQ and the root
# namespace's libvirtd. No systemd here, so they are started by hand and
# left running; starting twice is harmless.
set -euo pipefail
cmd=${1:-start}

port_open() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

TLS_DIR=/etc/rabbitmq/kvmplace-tls

# A self-signed CA and server certificate for the TLS listener on loopback
# (port 5671), so the tests can run kvmplace over RabbitMQ with TLS.
make_tls() {
  [ -f "$TLS_DIR/server.pem" ] && [ -f /etc/rabbitmq/rabbitmq.conf ] && return 0
  mkdir -p "$TLS_DIR"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=kvmplace-test-ca" \
    -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.pem" >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$TLS_DIR/server.key" -out "$TLS_DIR/server.csr" >/dev/null 2>&1
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$TLS_DIR/ext.cnf"
  openssl x509 -req -in "$TLS_DIR/server.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" \
    -CAcreateserial -days 3650 -extfile "$TLS_DIR/ext.cnf" -out "$TLS_DIR/server.pem" >/dev/null 2>&1
  chown -R rabbitmq:rabbitmq "$TLS_DIR" 2>/dev/null || true
  chmod 0644 "$TLS_DIR"/*.pem; chmod 0640 "$TLS_DIR"/*.key
  cat > /etc/rabbitmq/rabbitmq.conf <<CONF
listeners.tcp.default = 5672
listeners.ssl.default = 5671
ssl_options.cacertfile = $TLS_DIR/ca.pem
ssl_options.certfile = $TLS_DIR/server.pem
ssl_options.keyfile = $TLS_DIR/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
CONF
}

start_rabbitmq() {
  make_tls
  if port_open 5672 && ! port_open 5671; then
    echo "services: restarting RabbitMQ to add its TLS listener"
    rabbitmqctl stop >/dev/null 2>&1 || true
    for _ in $(seq 1 60); do port_open 5672 || break; sleep 0.5; done
  fi
  port_open 5672 && return 0
  echo "services: starting RabbitMQ"
  mkdir -p /var/log/rabbitmq /var/lib/rabbitmq
  (setsid rabbitmq-server >/var/log/rabbitmq/kvmplace-start.log 2>&1 &)
  for _ in $(seq 1 120); do port_open 5672 && port_open 5671 && return 0; sleep 0.5; done
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
