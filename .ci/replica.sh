#!/usr/bin/env bash
# A streaming replica of the local PostgreSQL, for the read-replica suite (tests/tests/replicas.rs).
#
#   .ci/replica.sh start    # pg_basebackup -R into a temporary directory, start it on $REPLICA_PORT
#   .ci/replica.sh stop     # stop it and remove the directory
#   .ci/replica.sh status   # exit 0 when the replica answers and is in recovery
#   .ci/replica.sh down     # stop the replica's server, keeping its data (a crash to test against)
#   .ci/replica.sh up       # start it again after `down`
#
# The primary is the cluster on 127.0.0.1:5432 (user postgres, trust). Debian keeps a cluster's
# postgresql.conf and pg_hba.conf in /etc/postgresql, not in the data directory, so the copy gets
# small ones of its own. Replication connections need a `host replication` line in the primary's
# pg_hba.conf: it is added once (idempotently) and the primary reloaded, never restarted.
# Everything runs as the postgres user; only 127.0.0.1 is touched.
set -euo pipefail

PRIMARY_PORT="${PRIMARY_PORT:-5432}"
REPLICA_PORT="${REPLICA_PORT:-5433}"
REPLICA_DIR="${REPLICA_DIR:-/tmp/ops-replica-$REPLICA_PORT}"
PG_BIN="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}"
PRIMARY_URL="postgres://postgres@127.0.0.1:$PRIMARY_PORT/postgres"
REPLICA_URL="postgres://postgres@127.0.0.1:$REPLICA_PORT/postgres"

as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

in_recovery() {
  [ "$(psql "$REPLICA_URL" -Atc 'select pg_is_in_recovery()' 2>/dev/null)" = t ]
}

primary_setting() {
  psql "$PRIMARY_URL" -Atc "select setting from pg_settings where name = '$1'"
}

allow_replication() {
  local hba
  hba="$(psql "$PRIMARY_URL" -Atc 'show hba_file')"
  if ! grep -Eq '^[[:space:]]*host[[:space:]]+replication[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
    echo "adding a replication line for 127.0.0.1 to $hba"
    printf '\n# Added by ops .ci/replica.sh: streaming replicas on 127.0.0.1 for the test suites.\nhost replication all 127.0.0.1/32 trust\n' >>"$hba"
    psql "$PRIMARY_URL" -Atc 'select pg_reload_conf()' >/dev/null
    sleep 1
  fi
}

start() {
  if in_recovery; then
    echo "replica already running on 127.0.0.1:$REPLICA_PORT ($REPLICA_DIR)"
    return 0
  fi
  if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/pg_ctl" ]; then
    echo "error: no PostgreSQL server binaries under /usr/lib/postgresql/*/bin" >&2
    return 1
  fi
  allow_replication
  # A directory left by a run that was killed: stop whatever still runs there, then start afresh.
  if [ -f "$REPLICA_DIR/postmaster.pid" ]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$REPLICA_DIR" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$REPLICA_DIR"
  mkdir -p "$REPLICA_DIR"
  chown postgres:postgres "$REPLICA_DIR"
  chmod 700 "$REPLICA_DIR"
  echo "base backup of 127.0.0.1:$PRIMARY_PORT into $REPLICA_DIR"
  as_postgres pg_basebackup -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -D "$REPLICA_DIR" \
    -R -X stream -c fast
  # A hot standby needs these at least as high as the primary's.
  local max_connections max_workers max_senders max_prepared max_locks
  max_connections="$(primary_setting max_connections)"
  max_workers="$(primary_setting max_worker_processes)"
  max_senders="$(primary_setting max_wal_senders)"
  max_prepared="$(primary_setting max_prepared_transactions)"
  max_locks="$(primary_setting max_locks_per_transaction)"
  cat >"$REPLICA_DIR/postgresql.conf" <<EOF
# Written by ops .ci/replica.sh: a throwaway hot standby for tests.
listen_addresses = '127.0.0.1'
port = $REPLICA_PORT
unix_socket_directories = '$REPLICA_DIR'
hot_standby = on
max_connections = $max_connections
max_worker_processes = $max_workers
max_wal_senders = $max_senders
max_prepared_transactions = $max_prepared
max_locks_per_transaction = $max_locks
shared_buffers = 16MB
fsync = off
synchronous_commit = off
full_page_writes = off
wal_receiver_status_interval = 1s
# Long reads on the replica must not be cancelled by conflicting replay during the suites.
max_standby_streaming_delay = 30s
logging_collector = off
EOF
  cat >"$REPLICA_DIR/pg_hba.conf" <<EOF
local all all trust
host all all 127.0.0.1/32 trust
EOF
  chown postgres:postgres "$REPLICA_DIR/postgresql.conf" "$REPLICA_DIR/pg_hba.conf"
  serve
}

# Starts the server in $REPLICA_DIR and waits until it answers in recovery.
serve() {
  as_postgres "$PG_BIN/pg_ctl" -D "$REPLICA_DIR" -l "$REPLICA_DIR/server.log" -w -t 60 start >/dev/null
  for _ in $(seq 1 60); do
    if in_recovery; then
      echo "replica streaming on 127.0.0.1:$REPLICA_PORT"
      return 0
    fi
    sleep 1
  done
  echo "error: the replica did not come up; its log follows" >&2
  tail -n 30 "$REPLICA_DIR/server.log" >&2 || true
  return 1
}

stop() {
  if [ -f "$REPLICA_DIR/postmaster.pid" ]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$REPLICA_DIR" -m fast -w -t 60 stop >/dev/null 2>&1 ||
      as_postgres "$PG_BIN/pg_ctl" -D "$REPLICA_DIR" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$REPLICA_DIR"
  echo "replica on 127.0.0.1:$REPLICA_PORT stopped and removed"
}

down() {
  as_postgres "$PG_BIN/pg_ctl" -D "$REPLICA_DIR" -m fast -w -t 60 stop >/dev/null
  echo "replica on 127.0.0.1:$REPLICA_PORT is down (data kept in $REPLICA_DIR)"
}

up() {
  serve
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) in_recovery ;;
  down) down ;;
  up) up ;;
  *)
    echo "usage: $0 start|stop|status|down|up" >&2
    exit 2
    ;;
esac
