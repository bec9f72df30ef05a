#!/usr/bin/env bash
# A throwaway PostgreSQL for the tests (ctest's "postgres" fixture starts and stops it):
# Debian's server, initdb'd in a new folder under /tmp, on 127.0.0.1 and a free port,
# trusting local connections as the superuser "callback". Run as root (CI), the server
# runs as the "postgres" user, as PostgreSQL insists.
#
#   tests/support/postgres.sh start STATE   # writes STATE/conninfo ("host=127.0.0.1 port=N user=callback")
#   tests/support/postgres.sh start STATE --durable   # the same, with PostgreSQL's durable defaults (benchmarks)
#   tests/support/postgres.sh stop STATE    # stops it and removes its folder
#
# Tests make a database of their own in it (tests/support/postgres.hpp). Durability is
# off (fsync, synchronous_commit) unless --durable: these are tests of behaviour; the
# benchmarks measure with PostgreSQL's defaults (every commit flushed).
set -euo pipefail
command=${1:?start or stop}
state=${2:?the state folder}
durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
if [ "${3:-}" = "--durable" ]; then durability=""; fi
bindir=$(pg_config --bindir 2>/dev/null || true)
if [ ! -x "$bindir/initdb" ]; then
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
if [ ! -x "$bindir/initdb" ]; then
  echo "postgres.sh: no PostgreSQL server here (apt-get install postgresql; scripts/setup.sh does)" >&2
  exit 1
fi
as_owner=()
if [ "$(id -u)" -eq 0 ]; then as_owner=(runuser -u postgres --); fi

case "$command" in
  start)
    mkdir -p "$state"
    if [ -f "$state/datadir" ] && [ -d "$(cat "$state/datadir")" ]; then
      "$0" stop "$state" || true  # a run before did not clean up
      mkdir -p "$state"
    fi
    data=$(mktemp -d /tmp/callback-pg.XXXXXX)
    chmod 755 "$data"
    if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$data"; fi
    echo "$data" > "$state/datadir"
    "${as_owner[@]}" "$bindir/initdb" -D "$data/db" -U callback --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
      --no-sync > "$data/initdb.log" 2>&1 || { cat "$data/initdb.log" >&2; exit 1; }
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "${as_owner[@]}" "$bindir/pg_ctl" -D "$data/db" -l "$data/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $data $durability -c max_connections=300" \
      start > /dev/null || { cat "$data/server.log" >&2; exit 1; }
    echo "host=127.0.0.1 port=$port user=callback" > "$state/conninfo"
    echo "postgres.sh: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, data in $data"
    ;;
  stop)
    [ -f "$state/datadir" ] || exit 0
    data=$(cat "$state/datadir")
    if [ -d "$data/db" ]; then
      "${as_owner[@]}" "$bindir/pg_ctl" -D "$data/db" -m immediate -w stop > /dev/null 2>&1 || true
    fi
    rm -rf "$data" "$state/datadir" "$state/conninfo"
    ;;
  *)
    echo "postgres.sh: start or stop, not $command" >&2
    exit 2
    ;;
esac
