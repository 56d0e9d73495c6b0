#!/usr/bin/env bash
# Runs CMD... against a throwaway PostgreSQL cluster on 127.0.0.1:
#   scripts/with-postgres.sh cargo test --features postgres --test tests suite::sessions
# Installs PostgreSQL from the distribution's packages when it is missing (apt-get, as root),
# initializes a cluster in a temporary directory owned by the `postgres` user, starts it on a
# free loopback port, exports CTXWIN_TEST_POSTGRES=postgres://postgres@127.0.0.1:PORT/postgres,
# runs CMD and stops the cluster (and removes its directory) on any exit.
set -euo pipefail

if [ $# -eq 0 ]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

pg_bin() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

if ! BIN=$(pg_bin); then
    echo "with-postgres: installing postgresql (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
    BIN=$(pg_bin)
fi

# The cluster runs as `postgres` when we are root (initdb refuses root), else as ourselves.
if [ "$(id -u)" -eq 0 ]; then
    AS=(runuser -u postgres --)
else
    AS=()
fi

PGDIR=$(mktemp -d /tmp/ctxwin-pg.XXXXXX)
chmod 700 "$PGDIR"
if [ "$(id -u)" -eq 0 ]; then chown postgres: "$PGDIR"; fi

# A free port: ask the kernel for one.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')

cleanup() {
    "${AS[@]}" "$BIN/pg_ctl" -D "$PGDIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PGDIR"
}
trap cleanup EXIT INT TERM

"${AS[@]}" "$BIN/initdb" -D "$PGDIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
"${AS[@]}" "$BIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $PGDIR -c fsync=on" start >/dev/null

export CTXWIN_TEST_POSTGRES="postgres://postgres@127.0.0.1:$PORT/postgres"
# For tests that restart the server mid-stream.
export CTXWIN_TEST_POSTGRES_CTL="${AS[*]} $BIN/pg_ctl -D $PGDIR/data -l $PGDIR/log -w -t 60"
echo "with-postgres: $CTXWIN_TEST_POSTGRES (data in $PGDIR)" >&2
"$@"
