#!/bin/sh
# First start of an empty data directory, as the official postgres image does it: a cluster whose
# superuser is $POSTGRES_USER with $POSTGRES_PASSWORD (scram over TCP, trust on the local socket
# inside the container only), the database $POSTGRES_DB, then the server in the foreground.
set -eu
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" -E UTF8 \
        --auth-local=trust --auth-host=scram-sha-256
    rm -f "$pwfile"
    echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    if [ "$db" != postgres ]; then
        # Socket only while the database is created, so health checks over TCP wait for it.
        pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
        createdb -h /var/run/postgresql -U "$user" "$db"
        pg_ctl -D "$PGDATA" -m fast -w stop
    fi
fi
exec "$@"
