#!/usr/bin/env bash
# Start (or check) the daemons the tests use: RabbitMQ, the root
# namespace's libvirtd and a private PostgreSQL cluster. No systemd here, so
# they are started by hand and left running; starting twice is harmless.
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

# A PostgreSQL cluster of the tests' own (not Debian's 15/main, whose
# configuration belongs to the machine): initdb'd once under $PG_DIR,
# listening on 127.0.0.1:$PG_PORT and a socket in $PG_DIR/run, password
# logins over TCP only. A role that may create databases (each test makes
# and drops its own) and its URL in $PG_DIR/url, which the tests read.
PG_DIR=${KVMPLACE_TEST_PG_DIR:-/var/lib/kvmplace-test-pg}
PG_PORT=${KVMPLACE_TEST_PG_PORT:-55432}
PG_ROLE=kvmplace_test

# One line: what failed and the log's last line (the server's reason).
pg_fail() {
  local why
  why=$(grep -E 'FATAL|ERROR|could not' "$PG_DIR/log" 2>/dev/null | tail -n 1 | cut -c1-200)
  echo "services: error: PostgreSQL: $*${why:+: $why} (log: $PG_DIR/log)" >&2
  return 1
}

start_postgresql() {
  local bin pg
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -x "$bin/initdb" ] || { pg_fail "no initdb under /usr/lib/postgresql (tools/bootstrap.sh installs it)"; return 1; }
  pg() { runuser -u postgres -- "$@"; }
  if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
    echo "services: creating the test PostgreSQL cluster in $PG_DIR"
    rm -rf "$PG_DIR/data" "$PG_DIR/url"
    mkdir -p "$PG_DIR/data" "$PG_DIR/run"; : >"$PG_DIR/log"
    chown -R postgres:postgres "$PG_DIR"; chmod 0700 "$PG_DIR"
    pg "$bin/initdb" -D "$PG_DIR/data" -U postgres --auth-local=peer \
      --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$PG_DIR/log" 2>&1 \
      || { rm -rf "$PG_DIR/data"; pg_fail "initdb failed"; return 1; }
    cat >>"$PG_DIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DIR/run'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
  fi
  if ! pg "$bin/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; then
    echo "services: starting PostgreSQL on 127.0.0.1:$PG_PORT"
    pg "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 60 start >/dev/null 2>&1 \
      || { pg_fail "pg_ctl start failed"; return 1; }
  fi
  if [ ! -s "$PG_DIR/url" ]; then
    local password
    password=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
    PGOPTIONS='-c client_min_messages=warning' pg "$bin/psql" -h "$PG_DIR/run" -p "$PG_PORT" -X -q -v ON_ERROR_STOP=1 -d postgres \
      -c "DROP ROLE IF EXISTS $PG_ROLE" \
      -c "CREATE ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$password'" >/dev/null \
      || { pg_fail "cannot create role $PG_ROLE"; return 1; }
    (umask 077; echo "postgresql+psycopg2://$PG_ROLE:$password@127.0.0.1:$PG_PORT/postgres" \
      >"$PG_DIR/url.tmp" && mv "$PG_DIR/url.tmp" "$PG_DIR/url")
  fi
}

case "$cmd" in
  start) start_rabbitmq; start_libvirtd; start_postgresql ;;
  *) echo "usage: $0 start" >&2; exit 2 ;;
esac
