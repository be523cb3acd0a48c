#!/bin/sh
# Initialises a cluster in an empty PGDATA (superuser POSTGRES_USER with POSTGRES_PASSWORD, scram-sha-256,
# database POSTGRES_DB), then runs PostgreSQL in the foreground on POSTGRES_LISTEN:POSTGRES_PORT.
set -eu
POSTGRES_USER="${POSTGRES_USER:-deepcanvas}"
POSTGRES_DB="${POSTGRES_DB:-deepcanvas}"
POSTGRES_PORT="${POSTGRES_PORT:-5432}"
POSTGRES_LISTEN="${POSTGRES_LISTEN:-*}"
SOCKETS=/var/run/postgresql

# Names go into SQL unquoted-safe: letters, digits and underscores only.
case "$POSTGRES_USER$POSTGRES_DB" in
    *[!A-Za-z0-9_]*) echo "POSTGRES_USER and POSTGRES_DB may hold letters, digits and _ only" >&2; exit 2 ;;
esac

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        echo "POSTGRES_PASSWORD is required to initialise the database" >&2
        exit 2
    fi
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" --auth=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pwfile"
    # initdb admits loopback only; a published port (docker run -p) comes from the bridge.
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    if [ "$POSTGRES_DB" != postgres ]; then
        pg_ctl --pgdata="$PGDATA" --wait --silent \
            --options="-c listen_addresses='' -c unix_socket_directories=$SOCKETS" start
        PGPASSWORD="$POSTGRES_PASSWORD" psql --quiet --no-psqlrc --host="$SOCKETS" --username="$POSTGRES_USER" \
            --dbname=postgres --set=ON_ERROR_STOP=1 --command="CREATE DATABASE \"$POSTGRES_DB\""
        pg_ctl --pgdata="$PGDATA" --wait --silent stop
    fi
    echo "initialised $PGDATA: database $POSTGRES_DB, owner $POSTGRES_USER"
fi

exec postgres -D "$PGDATA" -c listen_addresses="$POSTGRES_LISTEN" -c port="$POSTGRES_PORT" \
    -c unix_socket_directories="$SOCKETS"
