#!/usr/bin/env bash
# Starts or stops a PgBouncer in transaction pooling mode in front of the local PostgreSQL, for the
# suites that prove ops works behind it (issue: "Past one database", PgBouncer part).
#
#   .ci/pgbouncer.sh start    # install if missing, write the config, start on 127.0.0.1:6432
#   .ci/pgbouncer.sh stop     # stop it and remove its directory
#   .ci/pgbouncer.sh status   # exit 0 when it answers
#
# The configuration is deliberately strict, the way operators run PgBouncer 1.18 (the Debian 12
# package): transaction pooling, a server pool of 4 per database and user, no
# `ignore_startup_parameters` (so a client that sends `extra_float_digits` or `options` is
# refused), and no prepared-statement tracking (1.18 has none). A wildcard `[databases]` entry
# routes every database name to the local server, so the per-test databases the suites create
# (`CREATE DATABASE ops_t_...`) are reachable through it without a reload.
#
# Environment: PGBOUNCER_PORT (6432), PGBOUNCER_POOL_SIZE (4), PGBOUNCER_DIR (a directory of its
# own under /tmp), PG_HOST/PG_PORT of the server behind it (127.0.0.1:5432).
set -euo pipefail

PORT="${PGBOUNCER_PORT:-6432}"
POOL_SIZE="${PGBOUNCER_POOL_SIZE:-4}"
DIR="${PGBOUNCER_DIR:-/tmp/ops-pgbouncer-$PORT}"
PG_HOST="${PG_HOST:-127.0.0.1}"
PG_PORT="${PG_PORT:-5432}"
RUN_AS="${PGBOUNCER_USER:-postgres}"

answers() {
  psql "postgres://postgres@127.0.0.1:$PORT/pgbouncer" -Atc 'SHOW VERSION' >/dev/null 2>&1
}

install_if_missing() {
  if command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]; then
    return 0
  fi
  echo "pgbouncer is not installed; installing the Debian package"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y pgbouncer; then
    apt-get update
    apt-get install -y pgbouncer
  fi
}

pgbouncer_bin() {
  command -v pgbouncer 2>/dev/null || echo /usr/sbin/pgbouncer
}

start() {
  if answers; then
    echo "pgbouncer already answers on 127.0.0.1:$PORT"
    return 0
  fi
  install_if_missing
  rm -rf "$DIR"
  mkdir -p "$DIR"
  # PgBouncer 1.18 checks that a user exists in auth_file even with auth_type = trust.
  printf '"postgres" ""\n' >"$DIR/userlist.txt"
  cat >"$DIR/pgbouncer.ini" <<INI
[databases]
; Every database name goes to the local server: the suites create one database per test.
* = host=$PG_HOST port=$PG_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PORT
unix_socket_dir =
auth_type = trust
auth_file = $DIR/userlist.txt
admin_users = postgres
stats_users = postgres
pool_mode = transaction
default_pool_size = $POOL_SIZE
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 2000
max_db_connections = 0
; Per-test databases come and go: drop their idle pools quickly.
autodb_idle_timeout = 60
server_lifetime = 3600
server_idle_timeout = 60
server_login_retry = 1
query_wait_timeout = 60
logfile = $DIR/pgbouncer.log
pidfile = $DIR/pgbouncer.pid
INI
  chown -R "$RUN_AS" "$DIR"
  # -d daemonizes; -u drops root privileges (PgBouncer refuses to run as root).
  "$(pgbouncer_bin)" -d -u "$RUN_AS" "$DIR/pgbouncer.ini"
  for _ in $(seq 1 50); do
    if answers; then
      echo "pgbouncer $(psql "postgres://postgres@127.0.0.1:$PORT/pgbouncer" -Atc 'SHOW VERSION' | head -n1) \
on 127.0.0.1:$PORT, transaction pooling, default_pool_size=$POOL_SIZE, in front of $PG_HOST:$PG_PORT"
      return 0
    fi
    sleep 0.2
  done
  echo "error: pgbouncer did not answer on 127.0.0.1:$PORT; its log:" >&2
  tail -n 20 "$DIR/pgbouncer.log" >&2 || true
  return 1
}

stop() {
  if [ -f "$DIR/pgbouncer.pid" ]; then
    local pid
    pid="$(cat "$DIR/pgbouncer.pid")"
    # Only the process this script started: the pid file is ours.
    if kill -0 "$pid" 2>/dev/null; then
      kill -INT "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -rf "$DIR"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) answers ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
