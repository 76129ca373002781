#!/usr/bin/env bash
# bench_pg.sh -- libcanteen-pg's benchmark in one run, against a throwaway
# PostgreSQL (tests/pg/run_pg_test.sh starts it and stops it on the way out).
#
# usage: bench/bench_pg.sh [BUILD_DIR] [tasks=64] [per_task=300]
#        BUILD_DIR defaults to build/release, configured and built here
#        (Release) if it has no bench_pg yet.
#
# Prints: gathered pg_sleep waits against the serial sum; queries/s through
# the pool against the same queries through cn_to_thread with blocking
# libpq; and the writes of 100 small queries on one connection, pipelined
# and not -- counted in-process, then by strace -f -c (sendto is libpq's
# write) when strace is installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

build=${1:-build/release}
shift || true
if [[ ! -x $build/bench/bench_pg ]]; then
    # script/server's build/release has the benchmarks off: turn them on
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCANTEEN_BUILD_BENCH=ON \
        --log-level=WARNING >/dev/null
    cmake --build "$build" --target bench_pg --parallel "$(nproc)" >/dev/null
fi
bin=$(cd "$build/bench" && pwd)/bench_pg

inner() {
    "$bin" all "$@"
    if command -v strace >/dev/null; then
        for how in on off; do
            n=$(strace -f -c -e trace=sendto -o /dev/stdout "$bin" "writes-$how" 2>/dev/null |
                awk '$NF == "sendto" { print $4 }')
            echo "strace -f -c: writes-$how: ${n:-?} sendto calls in the whole process" \
                "(the HTTP request and response and the pool's startup included)"
        done
    fi
}
export -f inner
export bin
exec bash tests/pg/run_pg_test.sh bash -c 'inner "$@"' inner "$@"
