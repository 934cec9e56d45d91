#!/usr/bin/env bash
# Throwaway PostgreSQL and Redis servers on loopback, for the scale-out tests.
#
#   source .ci/services.sh          # start both, export the variables below
#   bash .ci/services.sh CMD ARG... # run CMD with them, then stop both
#
# Exports WESOG_TEST_POSTGRES_DSN and WESOG_TEST_REDIS_URL. Installs Debian's
# postgresql and redis-server when their binaries are missing (apt-get update
# once, then install). The cluster lives in a temp dir; as root it is owned by
# and run as the postgres user (postgres refuses to run as root). Both servers
# listen on 127.0.0.1 on free ports and are stopped when the shell exits.

_wesog_pg_bin() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/postgres" ]; then echo "$d"; return 0; fi
  done
  if command -v initdb >/dev/null && command -v postgres >/dev/null; then
    dirname "$(command -v initdb)"; return 0
  fi
  return 1
}

_wesog_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

_wesog_install() {
  local need=()
  _wesog_pg_bin >/dev/null || need+=(postgresql)
  command -v redis-server >/dev/null || need+=(redis-server)
  if [ "${#need[@]}" -gt 0 ]; then
    echo "services: installing ${need[*]} from the distribution's packages" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >&2
  fi
}

_wesog_as_owner() {
  # Run "$@" as the cluster's owner: postgres refuses to run as root.
  if [ "$(id -u)" -eq 0 ]; then runuser -u "$_WESOG_PG_USER" -- "$@"; else "$@"; fi
}

_wesog_start_postgres() {
  local bin port i
  bin="$(_wesog_pg_bin)" || { echo "services: no PostgreSQL binaries" >&2; return 1; }
  _WESOG_PG_DIR="$(mktemp -d -t wesog-pg-XXXXXX)"
  _WESOG_PG_USER="$(id -un)"
  if [ "$(id -u)" -eq 0 ]; then
    _WESOG_PG_USER=postgres
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$_WESOG_PG_DIR"
  fi
  _wesog_as_owner "$bin/initdb" -D "$_WESOG_PG_DIR/data" -U wesog -A trust -E UTF8 \
    --no-sync >"$_WESOG_PG_DIR/initdb.log" 2>&1 \
    || { cat "$_WESOG_PG_DIR/initdb.log" >&2; return 1; }
  port="$(_wesog_free_port)"
  # Durability settings off: a test cluster lives for one run.
  _wesog_as_owner "$bin/pg_ctl" -D "$_WESOG_PG_DIR/data" -l "$_WESOG_PG_DIR/server.log" -w \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $_WESOG_PG_DIR -c fsync=off \
        -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null || { cat "$_WESOG_PG_DIR/server.log" >&2; return 1; }
  _WESOG_PG_BIN="$bin"
  export WESOG_TEST_POSTGRES_DSN="postgresql://wesog@127.0.0.1:$port/postgres"
  for i in $(seq 50); do
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" && return 0
    sleep 0.1
  done
  echo "services: PostgreSQL did not get ready on port $port" >&2
  return 1
}

_wesog_start_redis() {
  local port i
  port="$(_wesog_free_port)"
  _WESOG_REDIS_DIR="$(mktemp -d -t wesog-redis-XXXXXX)"
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --dir "$_WESOG_REDIS_DIR" --daemonize no >"$_WESOG_REDIS_DIR/server.log" 2>&1 &
  _WESOG_REDIS_PID=$!
  export WESOG_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
  for i in $(seq 50); do
    redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "services: Redis did not get ready on port $port" >&2
  cat "$_WESOG_REDIS_DIR/server.log" >&2
  return 1
}

wesog_services_stop() {
  if [ -n "${_WESOG_PG_DIR:-}" ]; then
    _wesog_as_owner "$_WESOG_PG_BIN/pg_ctl" -D "$_WESOG_PG_DIR/data" -m fast -w stop \
      >/dev/null 2>&1 || true
    rm -rf "$_WESOG_PG_DIR"
    _WESOG_PG_DIR=""
  fi
  if [ -n "${_WESOG_REDIS_PID:-}" ]; then
    kill "$_WESOG_REDIS_PID" 2>/dev/null || true
    wait "$_WESOG_REDIS_PID" 2>/dev/null || true
    rm -rf "$_WESOG_REDIS_DIR"
    _WESOG_REDIS_PID=""
  fi
  unset WESOG_TEST_POSTGRES_DSN WESOG_TEST_REDIS_URL
}

wesog_services_start() {
  _wesog_install && _wesog_start_postgres && _wesog_start_redis || {
    wesog_services_stop
    return 1
  }
  trap wesog_services_stop EXIT
  echo "services: PostgreSQL at $WESOG_TEST_POSTGRES_DSN, Redis at $WESOG_TEST_REDIS_URL" >&2
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  wesog_services_start
  if [ "$#" -gt 0 ]; then
    "$@"
  else
    echo "services: started; press Ctrl-C to stop" >&2
    sleep infinity
  fi
else
  wesog_services_start
fi
