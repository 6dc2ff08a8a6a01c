#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on loopback for tickstep's PostgreSQL tests.
#
# Installs PostgreSQL from Debian's packages when it is missing, creates (once) a
# cluster named "tickstep" listening on 127.0.0.1 only, with a "tickstep" role and
# database, starts it, and prints the connection URL on stdout -- nothing else goes to
# stdout, so callers can do:  export TICKSTEP_PG_URL="$(bash .ci/start-postgres.sh)"
# Safe to run again: it reuses the cluster and just makes sure it is running.
# The cluster trades durability for speed (fsync off): it is for tests only.
set -euo pipefail

PORT="${TICKSTEP_PG_PORT:-54329}"
NAME=tickstep
PASSWORD=tickstep
log() { echo "start-postgres: $*" >&2; }

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    log "installing postgresql from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends postgresql >&2
fi
VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"

if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$VERSION $NAME"; then
    log "creating cluster $VERSION/$NAME on 127.0.0.1:$PORT"
    pg_createcluster "$VERSION" "$NAME" --port "$PORT" >&2
    cat > "/etc/postgresql/$VERSION/$NAME/conf.d/tickstep.conf" <<CONF
listen_addresses = '127.0.0.1'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = '256MB'
work_mem = '64MB'
max_wal_size = '2GB'
CONF
fi
if ! pg_lsclusters -h | awk -v v="$VERSION" -v n="$NAME" '$1==v && $2==n {print $4}' | grep -q online; then
    pg_ctlcluster "$VERSION" "$NAME" start >&2
fi

psql_admin() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PORT" -d postgres "$@"; }
for _ in $(seq 1 50); do
    psql_admin -c "SELECT 1" >/dev/null 2>&1 && break
    sleep 0.2
done
if [ "$(psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$NAME'")" != "1" ]; then
    psql_admin -c "CREATE ROLE $NAME LOGIN PASSWORD '$PASSWORD'" >&2
fi
if [ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$NAME'")" != "1" ]; then
    psql_admin -c "CREATE DATABASE $NAME OWNER $NAME" >&2
fi
echo "postgresql://$NAME:$PASSWORD@127.0.0.1:$PORT/$NAME"
