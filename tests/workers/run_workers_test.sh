#!/usr/bin/env bash
# The supervisor and its workers, from the outside (issue 14's tests):
#
#   split      2 workers under wrk (64 connections): each holds its share of
#              the connections within +-20% (the accept balance, workers.c)
#   sighup     2 workers under wrk (64 connections, 20 s), SIGHUP every 2 s:
#              no socket error, no non-2xx answer, every roll completes
#   kill9      the same load, kill -9 of a worker every 3 s: a replacement is
#              ready and answers within 1 s; wrk's errors are no more than
#              the connections the killed workers held
#   crashloop  every worker fails at startup: retried after 100, 200,
#              400 ms..., then the supervisor stops with one clear line and
#              a non-zero status
#   sigterm    requests in flight on both workers, then SIGTERM: every one
#              is answered 200, everything exits 0 within the deadline
#   heartbeat  a worker whose loop is blocked past its healthcheck timeout
#              is killed and replaced
#   resize     SIGTTIN adds a worker, SIGTTOU takes one away
#   sockact    systemd-socket-activate -l 127.0.0.1:PORT canteen-demo
#              serves, in one process and with --workers 2
#   porttaken  a second canteen-demo (and examples/hello) on a port that is
#              taken: one line saying so and what to do, status 1
#
# usage: run_workers_test.sh MODE DEMO WORKER_APP [HELLO]
# Loopback only; every wait is bounded; everything started is stopped on
# exit (each server runs in a process group of its own). Under CI=true a
# missing tool (wrk, systemd-socket-activate, curl) fails the test; elsewhere
# it is skipped (exit 77).
set -uo pipefail

mode=${1:-}
demo=${2:-}
app=${3:-}
hello=${4:-}
me="workers_$mode"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/canteen-workers.XXXXXX")
groups=()

say() { printf '%s: %s\n' "$me" "$*"; }
show_logs() {
    local f
    for f in "$tmp"/*.log; do
        [[ -f $f ]] && printf '%s: --- %s (last 40 lines)\n%s\n' "$me" "${f##*/}" "$(tail -n 40 "$f")" >&2
    done
}
die() {
    printf '%s: FAIL: %s\n' "$me" "$*" >&2
    show_logs
    exit 1
}
cleanup() {
    local g i alive
    for g in "${groups[@]}"; do kill -TERM -- "-$g" 2>/dev/null; done
    for ((i = 0; i < 100; i++)); do
        alive=0
        for g in "${groups[@]}"; do kill -0 -- "-$g" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.05
    done
    for g in "${groups[@]}"; do kill -KILL -- "-$g" 2>/dev/null; done
    wait 2>/dev/null
    [[ ${CANTEEN_KEEP_TMP:-0} == 1 ]] && say "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

need() {
    command -v "$1" >/dev/null && return 0
    if [[ ${CI:-} == true ]]; then
        die "$1 not found (script/bootstrap installs it; under CI=true this is a failure)"
    fi
    say "SKIP: $1 not found (script/bootstrap installs it)"
    exit 77
}
need curl
[[ -x $demo ]] || die "no demo binary at '$demo'"
[[ -x $app ]] || die "no worker_app binary at '$app'"

now_ms() { date +%s%3N; }

# start NAME CMD...: run CMD in a process group of its own, output to NAME.log;
# sets $pid
start() {
    local name=$1
    shift
    : >"$tmp/$name.log" # made here: the background shell may not have opened it yet
    setsid "$@" >"$tmp/$name.log" 2>&1 &
    pid=$!
    groups+=("$pid")
}

# wait_port NAME: the port from NAME.log's "serving on" line; sets $port
wait_port() {
    local i
    port=""
    for ((i = 0; i < 400; i++)); do
        port=$(sed -n -e 's|.*serving on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' \
            -e 's|.*serving on port \([0-9]*\).*|\1|p' "$tmp/$1.log" | head -n 1)
        [[ -n $port ]] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    die "$1 did not start"
}

metrics() { curl -s --max-time 5 "http://127.0.0.1:$port/metrics"; }

# ready_pids: the pids of the workers in state ready, one a line
ready_pids() {
    metrics | sed -n 's/^canteen_worker_info{worker="[0-9]*",pid="\([0-9]*\)",state="ready"} 1$/\1/p'
}

# wait_ready N SECONDS: until N workers are ready
wait_ready() {
    local deadline=$(($(now_ms) + $2 * 1000)) n
    while (($(now_ms) < deadline)); do
        n=$(ready_pids | wc -l)
        ((n == $1)) && return 0
        sleep 0.05
    done
    die "not $1 ready workers within $2 s (last: $n)"
}

# metric_of WORKER NAME: a per-worker figure from the last scrape in $scrape
metric_of() {
    sed -n "s/^$2{worker=\"$1\"} \([0-9.]*\)\$/\1/p" <<<"$scrape"
}

# run_wrk SECONDS PATH: wrk with 64 connections in the background; sets $wrk_pid
run_wrk() {
    need wrk
    wrk -t2 -c64 -d"$1"s --timeout 5s "http://127.0.0.1:$port$2" >"$tmp/wrk.out" 2>&1 &
    wrk_pid=$!
}

# wrk_result: sets $errors (all socket errors), $non2xx, $requests
wrk_result() {
    local line
    wait "$wrk_pid" || die "wrk failed: $(cat "$tmp/wrk.out")"
    line=$(grep 'Socket errors' "$tmp/wrk.out" || true)
    errors=0
    if [[ $line =~ connect\ ([0-9]+),\ read\ ([0-9]+),\ write\ ([0-9]+),\ timeout\ ([0-9]+) ]]; then
        errors=$((BASH_REMATCH[1] + BASH_REMATCH[2] + BASH_REMATCH[3] + BASH_REMATCH[4]))
    fi
    non2xx=$(sed -n 's/.*Non-2xx or 3xx responses: \([0-9]*\).*/\1/p' "$tmp/wrk.out")
    non2xx=${non2xx:-0}
    requests=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$tmp/wrk.out")
    say "wrk: ${requests:-?} requests, $errors socket errors, $non2xx non-2xx"
}

# wait_exit PID SECONDS: sets $status
wait_exit() {
    local i
    for ((i = 0; i < $2 * 20; i++)); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.05
    done
    kill -0 "$1" 2>/dev/null && return 1
    status=0
    wait "$1" || status=$?
    return 0
}

case $mode in
split)
    start demo "$demo" --port 0 --workers 2
    wait_port demo
    wait_ready 2 10
    run_wrk 4 /json
    # every connection wrk makes is open while it runs: count them then
    sleep 2
    scrape=$(metrics)
    wrk_result
    a=$(metric_of 0 canteen_worker_connections_open)
    b=$(metric_of 1 canteen_worker_connections_open)
    [[ -n $a && -n $b ]] || die "no per-worker figures: $scrape"
    say "connections open per worker: $a and $b (the scrape's own is one of them)"
    total=$((a + b))
    ((total >= 64)) || die "only $total connections open during the run"
    for n in $a $b; do
        # within 20% of an even share: 40%..60% of them each
        ((n * 100 >= total * 40 && n * 100 <= total * 60)) ||
            die "a worker holds $n of $total connections: outside 40%..60%"
    done
    ((errors == 0 && non2xx == 0)) || die "errors under plain load: $errors, $non2xx"
    ;;

sighup)
    start demo "$demo" --port 0 --workers 2
    wait_port demo
    wait_ready 2 10
    sup=$pid
    run_wrk 20 /json
    for i in 1 2 3 4 5 6 7 8 9; do
        sleep 2
        kill -HUP "$sup"
    done
    wrk_result
    sleep 0.5
    rolls=$(grep -c 'rolling restart done' "$tmp/demo.log")
    say "$rolls rolling restarts done out of 9 SIGHUPs"
    ((errors == 0)) || die "$errors socket errors during rolling restarts"
    ((non2xx == 0)) || die "$non2xx non-2xx answers during rolling restarts"
    ((requests > 0)) || die "wrk got no answer at all"
    ((rolls >= 8)) || die "only $rolls rolling restarts completed"
    grep -q 'abandoned' "$tmp/demo.log" && die "a rolling restart was abandoned"
    wait_ready 2 5
    ;;

kill9)
    start demo "$demo" --port 0 --workers 2
    wait_port demo
    wait_ready 2 10
    run_wrk 13 /json
    held=0
    for i in 1 2 3; do
        sleep 3
        scrape=$(metrics)
        # the victim: the worker holding the most connections
        vid="" vconns=-1
        for w in $(sed -n 's/^canteen_worker_connections_open{worker="\([0-9]*\)"} .*/\1/p' <<<"$scrape"); do
            c=$(metric_of "$w" canteen_worker_connections_open)
            ((c > vconns)) && vid=$w vconns=$c
        done
        vpid=$(sed -n "s/^canteen_worker_info{worker=\"$vid\",pid=\"\([0-9]*\)\".*/\1/p" <<<"$scrape")
        [[ -n $vpid ]] || die "no worker in $scrape"
        old=$(ready_pids | tr '\n' ' ')
        kill -KILL "$vpid"
        t0=$(now_ms)
        held=$((held + vconns))
        # a new worker, ready and answering (the scrape itself is a request)
        ok=0
        while (($(now_ms) - t0 < 1000)); do
            scrape=$(metrics)
            for p in $(sed -n 's/^canteen_worker_info{worker="\([0-9]*\)",pid="\([0-9]*\)",state="ready"} 1$/\1:\2/p' <<<"$scrape"); do
                w=${p%%:*}
                p=${p#*:}
                [[ " $old " == *" $p "* ]] && continue
                r=$(metric_of "$w" canteen_worker_requests_total)
                ((${r:-0} >= 1)) && ok=1
            done
            ((ok)) && break
            sleep 0.02
        done
        ((ok)) || die "no replacement answered within 1 s of kill -9 of pid $vpid"
        say "kill -9 $vpid (worker $vid, $vconns connections): replaced and answering in $(($(now_ms) - t0)) ms"
    done
    sleep 1
    scrape=$(metrics)
    say "connections open per worker 1 s after the last kill:" \
        $(sed -n 's/^canteen_worker_connections_open{worker="\([0-9]*\)"} \(.*\)/\1:\2/p' <<<"$scrape")
    wrk_result
    ((non2xx == 0)) || die "$non2xx non-2xx answers"
    ((errors <= held)) || die "$errors socket errors, more than the $held connections the killed workers held"
    ;;

crashloop)
    t0=$(now_ms)
    start app "$app" --port 0 --workers 2 --fail-startup
    wait_exit "$pid" 30 || die "the supervisor still runs 30 s after its workers began to fail"
    took=$(($(now_ms) - t0))
    log=$tmp/app.log
    ((status != 0)) || die "the supervisor exited 0 after a crash loop"
    grep -q 'failed at startup; stopping' "$log" || die "no clear line saying why it stopped"
    delays=$(sed -n 's/.*starting a new worker in \([0-9]*\) ms.*/\1/p' "$log" | tr '\n' ' ')
    say "status $status after $took ms; delays between attempts: $delays"
    prev=0
    grew=0
    for d in $delays; do
        ((d >= prev)) || die "the delays did not grow: $delays"
        ((d > prev && prev > 0)) && grew=1
        prev=$d
    done
    ((grew)) || die "no growing delay between attempts: $delays"
    grep -q 'workers keep failing at startup' "$log" || die "cn_app_run's error not printed"
    ;;

sigterm)
    start demo "$demo" --port 0 --workers 2
    wait_port demo
    wait_ready 2 10
    sup=$pid
    cpids=()
    # One connection at a time until both workers have one in flight: the
    # kernel wakes every worker on the one listener, and a worker that is
    # not scheduled during a burst (ASan, a loaded machine) may get none of
    # it, so the test does not rely on how a burst splits. Bounded: at most
    # 16 requests, 5 s.
    deadline=$(($(now_ms) + 5000))
    n=0
    while :; do
        if ((n < 16)); then
            n=$((n + 1))
            curl -s --max-time 20 -o "$tmp/sleep$n.out" -w '%{http_code}' \
                "http://127.0.0.1:$port/sleep/3000" >"$tmp/sleep$n.code" 2>&1 &
            cpids+=($!)
        fi
        sleep 0.05
        scrape=$(metrics)
        a=$(metric_of 0 canteen_worker_requests_in_flight)
        b=$(metric_of 1 canteen_worker_requests_in_flight)
        # a scrape counts itself on the worker that answers it
        ((${a:-0} >= 2 && ${b:-0} >= 2)) && break
        (($(now_ms) < deadline)) || die "requests in flight per worker after $n requests: ${a:-?} and ${b:-?}"
    done
    say "in flight when SIGTERM is sent: $a and $b (one is the scrape)"
    kill -TERM "$sup"
    wait_exit "$sup" 15 || die "the supervisor did not exit within 15 s of SIGTERM"
    ((status == 0)) || die "the supervisor exited with $status"
    for i in "${!cpids[@]}"; do
        wait "${cpids[$i]}"
        code=$(cat "$tmp/sleep$((i + 1)).code")
        [[ $code == 200 ]] || die "request $((i + 1)) got '$code' instead of 200"
    done
    left=$(pgrep -g "$sup" 2>/dev/null | tr '\n' ' ')
    [[ -z $left ]] || die "processes left after the supervisor exited: $left"
    say "$n requests in flight answered, supervisor exited 0"
    ;;

heartbeat)
    start app "$app" --port 0 --workers 1 --timeout-worker-healthcheck 1
    wait_port app
    wait_ready 1 10
    old=$(ready_pids)
    # blocks its loop 4 s: the supervisor kills it after about 1 s
    curl -s --max-time 10 -o /dev/null "http://127.0.0.1:$port/block/4000" &
    t0=$(now_ms)
    deadline=$((t0 + 3500))
    while :; do
        new=$(ready_pids 2>/dev/null)
        [[ -n $new && $new != "$old" ]] && break
        (($(now_ms) < deadline)) || die "the blocked worker $old was not replaced within 3.5 s"
        sleep 0.05
    done
    say "blocked worker $old replaced by $new after $(($(now_ms) - t0)) ms"
    grep -q 'no heartbeat' "$tmp/app.log" || die "no line saying the heartbeat was missed"
    ;;

resize)
    start app "$app" --port 0 --workers 2
    wait_port app
    wait_ready 2 10
    kill -TTIN "$pid"
    wait_ready 3 5
    kill -TTOU "$pid"
    wait_ready 2 5
    target=$(metrics | sed -n 's/^canteen_workers_target \([0-9]*\)$/\1/p')
    [[ $target == 2 ]] || die "canteen_workers_target is '$target' after TTIN and TTOU"
    say "SIGTTIN: 3 workers; SIGTTOU: 2"
    ;;

sockact)
    need systemd-socket-activate
    for workers in 0 2; do
        ok=0
        for attempt in 1 2 3 4 5; do
            p=$((20000 + RANDOM % 30000))
            start "sa$workers" systemd-socket-activate -l "127.0.0.1:$p" \
                "$demo" --port 1 --workers "$workers"
            port=$p
            deadline=$(($(now_ms) + 10000))
            while (($(now_ms) < deadline)); do
                code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p/health")
                [[ $code == 200 ]] && break
                # the port was taken: systemd-socket-activate exits at once
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.05
            done
            if [[ $code == 200 ]]; then
                ok=1
                break
            fi
            grep -q 'Address already in use' "$tmp/sa$workers.log" || break
        done
        ((ok)) || die "no answer through systemd-socket-activate (workers $workers)"
        # it served on the passed socket, not on its own --port 1
        grep -q 'serving on' "$tmp/sa$workers.log" || die "the demo did not start"
        if ((workers > 0)); then
            wait_ready 2 10
        fi
        kill -TERM "$pid"
        wait_exit "$pid" 15 || die "did not exit on SIGTERM"
        ((status == 0)) || die "exited with $status"
        say "systemd-socket-activate -l 127.0.0.1:$p canteen-demo --workers $workers: served"
    done
    ;;

porttaken)
    start first "$demo" --port 0
    wait_port first
    out=$("$demo" --port "$port" 2>&1 >/dev/null)
    rc=$?
    ((rc == 1)) || die "the second demo exited with $rc"
    line=$(grep -v '^[0-9T:.-]*Z canteen' <<<"$out")
    [[ $(wc -l <<<"$line") == 1 && $line == *"is already in use"*"--port"* ]] ||
        die "not one line saying the port is taken and what to do: $out"
    say "demo: $line"
    if [[ -n $hello ]]; then
        # examples/hello listens on 8000: hold it with a demo, if it is free
        # (if it is not, it is taken already: as good)
        start holder "$demo" --port 8000
        for ((i = 0; i < 200; i++)); do
            grep -q 'serving on\|already in use' "$tmp/holder.log" && break
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        out=$(timeout 10 "$hello" 2>&1)
        rc=$?
        ((rc == 1)) || die "hello exited with $rc on a taken port 8000: $out"
        [[ $(wc -l <<<"$out") == 1 && $out == *"already in use"* ]] ||
            die "hello did not say in one line that the port is taken: $out"
        say "hello: $out"
    fi
    ;;

*)
    die "unknown mode '$mode'"
    ;;
esac
say PASS
