#!/usr/bin/env bash
# run_pg_test.sh -- run one test program against a throwaway PostgreSQL.
#
# usage: tests/pg/run_pg_test.sh PROGRAM [ARGS...]
#
# initdb in a short temporary directory (as the postgres user when run as
# root: initdb refuses root), a server listening on a unix socket in that
# directory only (listen_addresses='', so parallel tests cannot clash on a
# port), fsync off. The program gets CANTEEN_PG_CONNINFO and
# CANTEEN_PG_SOCKET_DIR. The server is stopped and the directory removed on
# every way out (the EXIT trap: the program failing or crashing included).
#
# Without PostgreSQL's server binaries the test is skipped (exit 77, which
# ctest reports as skipped) -- but under CI=true a missing server is a
# failure, never a skip.
set -uo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 PROGRAM [ARGS...]" >&2
    exit 2
fi

skip() {
    if [[ ${CI:-} == true ]]; then
        echo "run_pg_test: FAIL (CI=true, so no skipping): $*" >&2
        exit 1
    fi
    echo "run_pg_test: SKIPPED: $*" >&2
    exit 77
}

bindir=$(pg_config --bindir 2>/dev/null || true)
if [[ ! -x $bindir/initdb ]]; then
    # Debian keeps the server's programs off PATH, under its version
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x $d/initdb ]] && bindir=$d
    done
fi
[[ -x $bindir/initdb && -x $bindir/pg_ctl ]] ||
    skip "PostgreSQL's initdb/pg_ctl not found (script/bootstrap installs postgresql)"

as=()
if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || skip "running as root and there is no postgres user to run the server"
    as=(runuser -u postgres --)
fi

# short: a unix socket path must stay under 107 bytes
dir=$(mktemp -d /tmp/cnpg.XXXXXX) || exit 1
[[ ${#as[@]} -gt 0 ]] && chown postgres: "$dir"
started=0
cleanup() {
    local pid
    if [[ $started -eq 1 ]] &&
        ! "${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate -w -t 20 stop >/dev/null 2>&1; then
        pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)
        [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null
    fi
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# A watchdog in its own session: should this script be killed outright
# (SIGKILL from a test timeout, where no trap runs), the server -- which
# pg_ctl also starts in a session of its own -- is stopped all the same.
me=$$
setsid bash -c '
    while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
    if [[ -f $3/data/postmaster.pid ]]; then
        "${@:4}" "$2/pg_ctl" -D "$3/data" -m immediate -w -t 20 stop >/dev/null 2>&1
    fi
    rm -rf "$3"' watchdog "$me" "$bindir" "$dir" "${as[@]}" </dev/null >/dev/null 2>&1 &

if ! "${as[@]}" "$bindir/initdb" -D "$dir/data" -A trust -U postgres --no-sync -E UTF8 \
    >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    echo "run_pg_test: initdb failed" >&2
    exit 1
fi
opts="-k $dir -c listen_addresses='' -c fsync=off -c synchronous_commit=off"
opts+=" -c full_page_writes=off -c max_connections=100"
started=1
if ! "${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "$opts" \
    start >/dev/null 2>&1; then
    cat "$dir/server.log" >&2
    echo "run_pg_test: the server did not start" >&2
    exit 1
fi

export CANTEEN_PG_SOCKET_DIR=$dir
export CANTEEN_PG_CONNINFO="host=$dir user=postgres dbname=postgres"
"$@"
rc=$?
if [[ $rc -ne 0 && -f $dir/server.log ]]; then
    echo "run_pg_test: the server's log:" >&2
    tail -n 40 "$dir/server.log" >&2
fi
exit $rc
