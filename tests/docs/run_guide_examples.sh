#!/usr/bin/env bash
# run_guide_examples.sh -- run the guide's programs and check what the guide
# says about them (the figures are checked with generous bounds, so that a
# loaded machine or a sanitizer build does not fail them).
#
# usage: tests/docs/run_guide_examples.sh <build-dir>
#
# Each program is started on 127.0.0.1 port 0; the port is read back from its
# "serving on http://127.0.0.1:PORT" line. Needs curl(1). Exits 1 with one
# line per failed check, 77 (skipped) when the programs were not built.
set -uo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 <build-dir>" >&2
    exit 2
fi
only_pg=0
[[ ${2:-} == --only-pg ]] && only_pg=1
bin=$1/examples/guide
if [[ ! -x $bin/04_tasks ]]; then
    echo "run_guide_examples: $bin/04_tasks not built; skipping" >&2
    exit 77
fi
command -v curl >/dev/null || {
    echo "run_guide_examples: curl(1) not found" >&2
    exit 1
}

tmp=$(mktemp -d)
srv=
failed=0
cleanup() {
    [[ -n $srv ]] && kill "$srv" 2>/dev/null && wait "$srv" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "run_guide_examples: $name: $*" >&2
    failed=1
}

# start NAME: run the program on port 0 and set $port.
start() {
    name=$1
    log=$tmp/$name.log
    : >"$log"
    "$bin/$name" 0 >>"$log" 2>&1 &
    srv=$!
    port=
    for _ in $(seq 100); do
        port=$(sed -n 's|^serving on http://127\.0\.0\.1:\([0-9]*\)$|\1|p' "$log")
        [[ -n $port ]] && return 0
        kill -0 "$srv" 2>/dev/null || break
        sleep 0.05
    done
    fail "did not start: $(cat "$log")"
    return 1
}

# stop: SIGTERM, which the programs handle with a graceful shutdown (exit 0).
stop() {
    local rc=0
    kill "$srv" 2>/dev/null
    wait "$srv" || rc=$?
    srv=
    [[ $rc -eq 0 ]] || fail "exited with status $rc after SIGTERM; log: $(cat "$log")"
}

get() { curl -s --max-time 10 "http://127.0.0.1:$port$1"; }
# seconds (float) a request took
took() { curl -s --max-time 10 -o /dev/null -w '%{time_total}' "http://127.0.0.1:$port$1"; }
# lt A B: A < B for decimal numbers
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
expect_body() {
    local got
    got=$(get "$1")
    [[ $got == "$2" ]] || fail "GET $1: expected '$2', got '$got'"
}
expect_log() {
    grep -qF -- "$1" "$log" || fail "log has no line with '$1'; log: $(cat "$log")"
}
# wait_log TEXT: a line with TEXT appears in the log within 2 s
wait_log() {
    for _ in $(seq 40); do
        grep -qF -- "$1" "$log" && return 0
        sleep 0.05
    done
    fail "log has no line with '$1' after 2 s; log: $(cat "$log")"
}

# 11: PostgreSQL through libcanteen-pg, against a throwaway server
# (tests/pg/run_pg_test.sh starts one for this check and stops it after)
pg_check() {
    local u="http://127.0.0.1:$port" body code t
    # the startup hook made the table before the app served anyone
    body=$(curl -s "$u/accounts/2")
    [[ $body == '{"id":2,"owner":"bob","balance":50}' ]] || fail "GET /accounts/2: got '$body'"
    code=$(curl -s -o /dev/null -w '%{http_code}' "$u/accounts/9")
    [[ $code == 404 ]] || fail "GET /accounts/9: expected 404, got $code"
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$u/transfer?from=1&to=2&amount=30")
    [[ $code == 200 ]] || fail "POST /transfer 30: expected 200, got $code"
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$u/transfer?from=1&to=2&amount=300")
    [[ $code == 409 ]] || fail "POST /transfer 300: expected 409, got $code"
    body=$(curl -s "$u/accounts")
    [[ $body == '[{"id":1,"owner":"alice","balance":70},{"id":2,"owner":"bob","balance":80}]' ]] ||
        fail "GET /accounts after the transfers: got '$body'"
    body=$(curl -s "$u/balances?ids=1,2,9,x")
    [[ $body == '[{"id":"1","balance":70},{"id":"2","balance":80},{"id":"9","balance":null},{"id":"x","error":'*'invalid input syntax'*'}]' ]] ||
        fail "GET /balances?ids=1,2,9,x: one batch, each id its own outcome: got '$body'"
    code=$(curl -s -o /dev/null -w '%{http_code}' "$u/slow/3000")
    [[ $code == 504 ]] || fail "GET /slow/3000 under a 500 ms command timeout: expected 504, got $code"
    body=$(curl -s "$u/together?n=5&ms=300")
    t=$(sed -n 's/.*"total_ms":\([0-9]*\)}$/\1/p' <<<"$body")
    { [[ -n $t ]] && lt "$t" 900 && lt 295 "$t"; } ||
        fail "GET /together?n=5&ms=300: the five sleeps should overlap (about 300 ms): '$body'"
    body=$(curl -s "$u/pool")
    [[ $body == *'"cancels":1}' ]] || fail "GET /pool: the timed-out query should have been cancelled: '$body'"
}
# Inside run_pg_test.sh (see the end of this file): only chapter 11.
if [[ $only_pg -eq 1 ]]; then
    if start 11_postgres; then
        pg_check
        stop
        expect_log "SIGTERM received"
    fi
    exit $failed
fi

# 1: twenty async orders wait together
if start 01_canteen; then
    t0=$(date +%s.%N)
    pids=()
    for _ in $(seq 20); do
        get /order/async >/dev/null &
        pids+=($!)
    done
    wait "${pids[@]}"
    t=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
    lt "$t" 3.0 || fail "20 concurrent 1 s async orders took ${t}s (expected about 1 s)"
    expect_body /order/sync "served (sync)"
    stop
fi

# 2: handlers interleave on one thread
if start 02_event_loop; then
    get '/order/alice?cook_ms=300' >/dev/null &
    a=$!
    get '/order/bob?cook_ms=100' >/dev/null
    wait $a
    first=$(grep -m1 -o 'bob   served\|alice served' "$log")
    [[ $first == "bob   served" ]] || fail "bob (100 ms) was not served before alice (300 ms): $(cat "$log")"
    body=$(get /count/3000000)
    [[ $body == "sum=4499998500000 yields=3" ]] || fail "GET /count/3000000: got '$body'"
    stop
fi

# 3: the blocking sleep is reported, the nap is not
if start 03_sleep_vs_block; then
    expect_body /nap/150 "napped"
    expect_body /block/150 "blocked"
    expect_log "GET /block/{ms} blocked the event loop for"
    grep -qF "GET /nap/{ms}" "$log" && fail "the nap was reported as blocking: $(cat "$log")"
    body=$(get /loop)
    n=$(sed -n 's/.*"slow_steps":\([0-9]*\),.*/\1/p' <<<"$body")
    [[ -n $n && $n -ge 1 ]] || fail "GET /loop: expected slow_steps >= 1, got '$body'"
    # a streamed response: each line arrives when it is made, 100 ms apart
    t0=$(date +%s.%N)
    curl -sN --max-time 10 "http://127.0.0.1:$port/ticks/5" |
        while IFS= read -r l; do echo "$(date +%s.%N) $l"; done >"$tmp/ticks"
    awk -v t0="$t0" '
        { if ($2 != "{\"tick\":" NR - 1 ",\"of\":5}") bad = 1; at[NR] = $1 }
        END {
            if (bad || NR != 5 || at[1] - t0 > 0.25) exit 1
            for (i = 2; i <= 5; i++) if (at[i] - at[i - 1] < 0.08) exit 1
            exit !(at[5] - at[1] < 0.8)
        }' "$tmp/ticks" ||
        fail "GET /ticks/5: expected 5 lines about 100 ms apart, the first at once; got: $(cat "$tmp/ticks") (start $t0)"
    # backpressure: 32 MiB to a slow client, about 256 KiB in memory
    got=$(curl -s -o /dev/null -w '%{size_download}' --max-time 30 --limit-rate 32M \
        "http://127.0.0.1:$port/bulk/32")
    [[ $got == 33554432 ]] || fail "GET /bulk/32: got $got bytes, expected 33554432"
    wait_log "GET /bulk: ended after 32768 KiB"
    kib=$(sed -n 's/^GET \/bulk: ended after 32768 KiB; at most \([0-9]*\) KiB waited in memory$/\1/p' "$log")
    { [[ -n $kib ]] && lt "$kib" 512; } ||
        fail "GET /bulk/32: expected at most about 256 KiB held in memory; log: $(cat "$log")"
    # a client that leaves: the sleep or the parked write returns CN_ECANCELED
    curl -sN --max-time 0.35 "http://127.0.0.1:$port/ticks/10" >"$tmp/ticks"
    wait_log "GET /ticks: client gone after "
    grep -qE '^GET /ticks: client gone after [1-9] of 10 lines$' "$log" ||
        fail "GET /ticks/10 left after 0.35 s: expected 'client gone after N of 10 lines'; log: $(cat "$log")"
    curl -s -o /dev/null --max-time 0.5 --limit-rate 1M "http://127.0.0.1:$port/bulk/64"
    wait_log "GET /bulk: CN_ECANCELED after "
    # streaming from a sync route: CN_ENOTCORO, a 500
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ticks-sync/5")
    [[ $code == 500 ]] || fail "GET /ticks-sync/5: expected 500, got $code"
    expect_log "GET /ticks-sync/{n:int}: handler returned CN_ENOTCORO"
    stop
fi

# 4: gather takes the slowest, wait_for times out
if start 04_tasks; then
    body=$(get /scenario)
    total=$(sed -n 's/.*"total_ms":\([0-9]*\)}$/\1/p' <<<"$body")
    if [[ -z $total ]] || ! lt "$total" 1150 || lt "$total" 995; then
        fail "GET /scenario: total_ms should be about 1000, got '$body'"
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/timeout")
    [[ $code == 504 ]] || fail "GET /timeout: expected 504, got $code"
    stop
fi

# 5: the golden rules' errors and warnings
if start 05_golden_rules; then
    body=$(get /rule1)
    [[ $body == *'"name":"CN_ENOTCORO"'* ]] || fail "GET /rule1: expected CN_ENOTCORO, got '$body'"
    get /rule2 >/dev/null
    expect_log "task spawned by GET /rule2 was never awaited; cancelling it"
    expect_log "the forgotten task's cn_sleep returned CN_ECANCELED"
    get /rule4/alice >"$tmp/alice" &
    a=$!
    b=$(get /rule4/bob)
    wait $a
    [[ $(cat "$tmp/alice") == "Hello, alice!" && $b == "Hello, bob!" ]] ||
        fail "GET /rule4: got '$(cat "$tmp/alice")' and '$b'"
    stop
fi

# 6: SQLite through cn_to_thread, the loop stays free
if start 06_to_thread; then
    body=$(get /count/1000)
    [[ $body == "count=1000 in "*" ms on a pool thread" ]] || fail "GET /count/1000: got '$body'"
    expect_body /ping "pong"
    stop
fi

# 7: the same handler, sync and async
if start 07_route_modes; then
    expect_body /cpu/1000 "sum=499500"
    expect_body /cpu-in-async/1000 "sum=499500"
    expect_body /io "io done"
    body=$(get /pool)
    [[ $body == *'"threads":40,'* ]] || fail "GET /pool: got '$body'"
    stop
fi

# 8: fetch_all waits for the slowest; upstream errors are mapped
if start 08_fetch; then
    t=$(took '/both?a=300&b=500')
    lt "$t" 0.75 || fail "GET /both?a=300&b=500 took ${t}s (expected about 0.5 s)"
    t=$(took '/one-by-one?a=300&b=500')
    lt 0.79 "$t" || fail "GET /one-by-one?a=300&b=500 took ${t}s (expected about 0.8 s)"
    # ..%2Fslow%2F0 is decoded to "../slow/0": escaped, it stays one
    # segment, and the upstream's /status/{code:int} refuses it (422 -> 502)
    for pair in ok:200 404:404 500:502 timeout:504 refused:502 ..%2Fslow%2F0:502; do
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/mapped/${pair%%:*}")
        [[ $code == "${pair##*:}" ]] || fail "GET /mapped/${pair%%:*}: expected ${pair##*:}, got $code"
    done
    for _ in $(seq 10); do get '/both?a=0&b=0' >/dev/null; done
    body=$(get /connects)
    n=$(sed -n 's/.*"fetch_connects":\([0-9]*\)}$/\1/p' <<<"$body")
    if [[ -z $n ]] || ! lt "$n" 5; then
        fail "expected a few reused outbound connections, got '$body'"
    fi
    stop
fi

# 9: the traps and their signs
if start 09_traps; then
    get /forget >/dev/null
    expect_log "task spawned by GET /forget was never awaited; cancelling it"
    s=$(get /serial/5)
    g=$(get /gather/5)
    st=$(sed -n 's/.*"total_ms":\([0-9]*\)}$/\1/p' <<<"$s")
    gt=$(sed -n 's/.*"total_ms":\([0-9]*\)}$/\1/p' <<<"$g")
    { [[ -n $st && -n $gt ]] && lt 495 "$st" && lt "$gt" 300; } ||
        fail "serial/5 should take about 500 ms and gather/5 about 100 ms: '$s' '$g'"
    get /greet-global/alice >"$tmp/alice" &
    a=$!
    sleep 0.02
    b=$(get /greet-global/bob)
    wait $a
    # the two overlap (each waits 100 ms): both answers name whoever wrote the
    # global last -- bob, unless alice's curl started late enough to come second
    a_body=$(cat "$tmp/alice")
    [[ $a_body == "$b" && ($b == "Hello, bob!" || $b == "Hello, alice!") ]] ||
        fail "the global-state trap did not show: '$a_body' '$b'"
    get /greet/alice >"$tmp/alice" &
    a=$!
    sleep 0.02
    b=$(get /greet/bob)
    wait $a
    [[ $(cat "$tmp/alice") == "Hello, alice!" && $b == "Hello, bob!" ]] ||
        fail "GET /greet: got '$(cat "$tmp/alice")' and '$b'"
    stop
fi

# 10: metrics, a bigger stack, the JSON depth limit
if start 10_observe; then
    body=$(get /metrics)
    [[ $body == *"canteen_pool_threads 64"* ]] || fail "GET /metrics: got '$body'"
    expect_body /deeper/1000 "reached depth 1000"
    deep=$(printf '[%.0s' $(seq 200))$(printf ']%.0s' $(seq 200))
    body=$(curl -s -X POST --data "$deep" "http://127.0.0.1:$port/echo")
    [[ $body == '{"detail":"JSON nesting too deep"}' ]] || fail "POST /echo (depth 200): got '$body'"
    body=$(curl -s -X POST --data '{"total":1e999}' "http://127.0.0.1:$port/echo")
    [[ $body == '{"detail":"JSON decode error"}' ]] || fail "POST /echo (1e999): got '$body'"
    stop
fi

# 12: a client of our own over raw sockets, awaited with cn_wait_fd
if start 12_wait_fd; then
    body=$(get '/shout/hello?ms=50')
    [[ $body == '{"answer":"HELLO","ms":'* ]] || fail "GET /shout/hello: got '$body'"
    body=$(get '/shout-many?n=5&ms=300')
    total=$(sed -n 's/.*"total_ms":\([0-9]*\)}$/\1/p' <<<"$body")
    [[ $body == '{"answers":["CALL0","CALL1","CALL2","CALL3","CALL4"],'* ]] &&
        [[ -n $total ]] && lt "$total" 900 && lt 295 "$total" ||
        fail "GET /shout-many?n=5&ms=300: five calls should overlap (about 300 ms): '$body'"
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/shout/late?ms=3000&timeout=100")
    [[ $code == 504 ]] || fail "GET /shout/late with a 100 ms timeout: expected 504, got $code"
    stop
fi

# 13: the layer around the handler
# the request's log lines, without timestamp and ID: lines ID
lines() { sed -n "s|^.* canteen INFO: \[$1\] ||p" "$log"; }
# seconds of the day of the first line of request ID whose text starts with TEXT
at() {
    sed -n "s|^[0-9-]*T\([0-9]*\):\([0-9]*\):\([0-9.]*\)Z canteen INFO: \[$1\] $2.*|\1 \2 \3|p" "$log" |
        awk 'NR == 1 { printf "%.3f\n", $1 * 3600 + $2 * 60 + $3 }'
}
# line number of the first line matching the extended regex RE
lineno() { grep -n -m1 -E -- "$1" "$log" | cut -d: -f1; }
# the ID of the request whose first line is "-> METHOD TARGET", the last one so far
req_id() { sed -n "s|^.* canteen INFO: \[\(req-[0-9]*\)\] -> $1\$|\1|p" "$log" | tail -n 1; }
if start 13_around; then
    auth='Authorization: Bearer alice-token'
    # startup before serving: the first request waits for the store (300 ms)
    t=$(took /health)
    lt 0.1 "$t" || fail "the first GET /health took ${t}s: it should have waited for the startup hook"
    s=$(lineno '^startup: store open after [0-9]+ ms$')
    r=$(lineno '\] -> GET /health$')
    { [[ -n $s && -n $r ]] && ((s < r)); } ||
        fail "expected 'startup: store open' before the first request; log: $(cat "$log")"
    # the middleware: access outermost, timing inside it, then the dependencies and the handler
    hdr=$(curl -s -D - -o "$tmp/item" --max-time 10 -H "$auth" "http://127.0.0.1:$port/items/1")
    [[ $(cat "$tmp/item") == '{"id":1,"name":"tea","stock":10}' ]] ||
        fail "GET /items/1: got '$(cat "$tmp/item")'"
    grep -qiE '^X-Process-Time-Ms: [0-9]+\.[0-9]{3}' <<<"$hdr" ||
        fail "GET /items/1: no X-Process-Time-Ms header in '$hdr'"
    id=$(req_id 'GET /items/1')
    lines "$id" | head -n 3 | tr '\n' '|' |
        grep -qE '^-> GET /items/1\|get_item: alice reads item 1 on connection [0-9]+\|<- 200 in [0-9]+\.[0-9]{3} ms\|$' ||
        fail "GET /items/1: expected access in, the handler, access out (with timing's figure); got: $(lines "$id" | tr '\n' '|')"
    # a dependency answers 401; the handler does not run
    code=$(curl -s -D "$tmp/h401" -o "$tmp/b401" -w '%{http_code}' --max-time 10 "http://127.0.0.1:$port/items/1")
    [[ $code == 401 && $(cat "$tmp/b401") == '{"detail":"Not authenticated"}' ]] ||
        fail "GET /items/1 without a token: got $code '$(cat "$tmp/b401")'"
    grep -qi '^WWW-Authenticate: Bearer' "$tmp/h401" || fail "the 401 has no WWW-Authenticate: $(cat "$tmp/h401")"
    id=$(req_id 'GET /items/1')
    [[ $(lines "$id" | tr '\n' '|') =~ ^'-> GET /items/1|<- 401 in '[0-9.]+' ms|'$ ]] ||
        fail "the 401: expected no handler line; got: $(lines "$id" | tr '\n' '|')"
    # cn_res_raise in the handler: a 404 with its detail
    expect_body_auth() {
        local got
        got=$(curl -s --max-time 10 -H "$auth" "http://127.0.0.1:$port$1")
        [[ $got == "$2" ]] || fail "GET $1: expected '$2', got '$got'"
    }
    expect_body_auth /items/99 '{"detail":"Item not found"}'
    # the cleanup runs after the response: on one connection, the next
    # request is answered while the first's "db" is still being given back
    out=$(curl -s --max-time 10 -H "$auth" "http://127.0.0.1:$port/items/2" "http://127.0.0.1:$port/health")
    [[ $out == '{"id":2,"name":"coffee","stock":10}ok' ]] || fail "GET /items/2 then /health: got '$out'"
    id=$(req_id 'GET /items/2')
    wait_log "[$id] db: connection"
    back=$(lineno "\[$id\] db: connection [0-9]+ back in the store$")
    next=$(awk -v id="[$id]" 'index($0, id " -> GET /items/2") { on = 1 } on && /\] -> GET \/health$/ { print NR; exit }' "$log")
    { [[ -n $back && -n $next ]] && ((next < back)); } ||
        fail "the next request should be served before $id's cleanup ends; log: $(cat "$log")"
    gap=$(awk -v a="$(at "$id" '<- 200')" -v b="$(at "$id" 'db: connection')" 'BEGIN { print b - a }')
    lt 0.15 "$gap" || fail "$id's connection went back ${gap}s after its response (expected about 0.2 s)"
    # a background task after the response, after the cleanups
    body=$(curl -s --max-time 10 -X POST -H "$auth" "http://127.0.0.1:$port/items/1/orders")
    [[ $body == '{"order":1,"item":"tea","user":"alice"}' ]] || fail "POST /items/1/orders: got '$body'"
    id=$(req_id 'POST /items/1/orders')
    wait_log "[$id] background: confirmation of order 1 sent to alice"
    gap=$(awk -v a="$(at "$id" '<- 201')" -v b="$(at "$id" 'background: ')" 'BEGIN { print b - a }')
    lt 0.45 "$gap" || fail "the confirmation went ${gap}s after the response (expected about 0.5 s: cleanup 0.2 + task 0.3)"
    c=$(lineno "\[$id\] db: connection")
    b=$(lineno "\[$id\] background: ")
    { [[ -n $c && -n $b ]] && ((c < b)); } || fail "the cleanup should come before the background task; log: $(cat "$log")"
    # the stop waits for a background task, then the shutdown hook closes the store
    body=$(curl -s --max-time 10 -X POST -H "$auth" "http://127.0.0.1:$port/items/2/orders")
    [[ $body == '{"order":2,"item":"coffee","user":"alice"}' ]] || fail "POST /items/2/orders: got '$body'"
    stop
    b=$(lineno 'background: confirmation of order 2 sent to alice$')
    c=$(lineno '^shutdown: store closed; orders taken: 2$')
    { [[ -n $b && -n $c ]] && ((b < c)); } ||
        fail "the stop should wait for the confirmation, then close the store; log: $(cat "$log")"
    grep -q ' canteen ERROR: ' "$log" && fail "errors were logged: $(cat "$log")"
fi

# 15: declared parameters and bodies, FastAPI's 422, the OpenAPI document
if start 15_items; then
    expect_body '/items?q=pen' '[{"id":1,"name":"pen"},{"id":2,"name":"pencil"}]'
    expect_body '/items?limit=1' '[{"id":1,"name":"pen"}]'
    expect_body '/items?limit=0' '{"detail":[{"type":"greater_than_equal","loc":["query","limit"],"msg":"Input should be greater than or equal to 1","input":"0","ctx":{"ge":1}}]}'
    expect_body '/items/abc' '{"detail":[{"type":"int_parsing","loc":["path","id"],"msg":"Input should be a valid integer, unable to parse string as an integer","input":"abc"}]}'
    body=$(curl -s -H 'Content-Type: application/json' -d '{"name":"pen"}' "http://127.0.0.1:$port/items")
    [[ $body == '{"detail":[{"type":"missing","loc":["body","price"],"msg":"Field required","input":{"name":"pen"}}]}' ]] ||
        fail "POST /items without a price: got '$body'"
    body=$(curl -s -H 'Content-Type: application/json' -d '{"name":"pen","price":"1.5"}' "http://127.0.0.1:$port/items")
    [[ $body == '{"name":"pen","price":1.5,"tags":[]}' ]] || fail "POST /items: got '$body'"
    body=$(get /openapi.json)
    [[ $body == '{"openapi":"3.1.0","info":{"title":"Items","version":"1.0.0"},'* &&
        $body == *'"/items/{id}":{"get":{"summary":"Read an item","operationId":"items__id__get"'* ]] ||
        fail "GET /openapi.json: got '${body:0:200}'"
    stop
fi
programs=13

pg_runner=$(cd "$(dirname "${BASH_SOURCE[0]}")/../pg" && pwd)/run_pg_test.sh
if [[ -x $bin/11_postgres ]]; then
    rc=0
    bash "$pg_runner" bash -c 'DATABASE_URL=$CANTEEN_PG_CONNINFO exec bash "$0" "$1" --only-pg' \
        "${BASH_SOURCE[0]}" "$1" || rc=$?
    if [[ $rc -eq 77 ]]; then
        echo "run_guide_examples: 11_postgres skipped (no PostgreSQL server here)" >&2
    elif [[ $rc -ne 0 ]]; then
        echo "run_guide_examples: 11_postgres: FAILED" >&2
        failed=1
    else
        programs=14
    fi
elif [[ ${CI:-} == true ]]; then
    fail "11_postgres was not built (libcanteen-pg needs libpq)"
fi

# 14: the batteries: request IDs, CORS, gzip, slash redirects, cookies, static files
if start 14_batteries; then
    u=http://127.0.0.1:$port
    # request IDs: echoed, and at the head of the failure's log line
    hdrs=$(curl -s -D - -o /dev/null -H 'X-Request-ID: guide-42' "$u/api/fail")
    grep -qi '^X-Request-ID: guide-42' <<<"$hdrs" || fail "GET /api/fail: no X-Request-ID echoed: $hdrs"
    wait_log "[guide-42] GET /api/fail: handler returned CN_ENOMEM"
    # CORS: the preflight of the front end's origin is answered; another's is refused
    hdrs=$(curl -s -D - -X OPTIONS -H 'Origin: http://localhost:3000' \
        -H 'Access-Control-Request-Method: POST' -H 'Access-Control-Request-Headers: content-type' \
        "$u/api/login")
    { grep -q '^HTTP/1.1 200' <<<"$hdrs" &&
        grep -qi '^Access-Control-Allow-Origin: http://localhost:3000' <<<"$hdrs" &&
        grep -qi '^Access-Control-Allow-Credentials: true' <<<"$hdrs"; } ||
        fail "OPTIONS /api/login (preflight): $hdrs"
    body=$(curl -s -X OPTIONS -H 'Origin: https://evil.example' \
        -H 'Access-Control-Request-Method: POST' "$u/api/login")
    [[ $body == "Disallowed CORS origin" ]] || fail "preflight from another origin: got '$body'"
    # gzip: 2592 bytes of JSON become 317, and decode to the same bytes
    plain=$(curl -s "$u/api/items")
    n=$(curl -s -H 'Accept-Encoding: gzip' -o /dev/null -w '%{size_download}' "$u/api/items")
    { [[ ${#plain} -eq 2592 ]] && lt "$n" 400; } ||
        fail "GET /api/items: expected 2592 bytes plain and about 317 gzipped, got ${#plain} and $n"
    [[ $(curl -s --compressed "$u/api/items") == "$plain" ]] || fail "GET /api/items: gzip does not decode to the plain body"
    hdrs=$(curl -s -D - -o /dev/null -H 'Accept-Encoding: gzip' "$u/api/feed")
    { grep -qi '^Content-Encoding: gzip' <<<"$hdrs" && grep -qi '^Transfer-Encoding: chunked' <<<"$hdrs"; } ||
        fail "GET /api/feed: expected a gzipped stream: $hdrs"
    n=$(curl -s --compressed "$u/api/feed" | grep -c '"name":"a canteen item"')
    [[ $n == 50 ]] || fail "GET /api/feed: expected 50 lines through gzip, got $n"
    # the slash redirect keeps the query
    hdrs=$(curl -s -D - -o /dev/null "$u/api/items/?page=2")
    { grep -q '^HTTP/1.1 307' <<<"$hdrs" && grep -qi '^Location: /api/items?page=2' <<<"$hdrs"; } ||
        fail "GET /api/items/?page=2: expected 307 to /api/items?page=2: $hdrs"
    # cookies: log in, who am I, without the cookie, log out
    jar=$tmp/jar
    body=$(curl -s -c "$jar" -X POST "$u/api/login")
    [[ $body == '{"logged_in":"ada"}' ]] || fail "POST /api/login: got '$body'"
    grep -q 'session' "$jar" || fail "POST /api/login set no session cookie"
    body=$(curl -s -b "$jar" "$u/api/me")
    [[ $body == '{"user":"ada"}' ]] || fail "GET /api/me with the cookie: got '$body'"
    code=$(curl -s -o /dev/null -w '%{http_code}' "$u/api/me")
    [[ $code == 401 ]] || fail "GET /api/me without the cookie: expected 401, got $code"
    hdrs=$(curl -s -D - -o /dev/null -b "$jar" -X POST "$u/api/logout")
    grep -qi '^Set-Cookie: session=; Path=/; Max-Age=0' <<<"$hdrs" || fail "POST /api/logout: $hdrs"
    # static files: the index, a range, and no way out of the directory
    curl -s "$u/static/" | grep -q 'Served by cn_app_static' || fail "GET /static/: not the index page"
    body=$(curl -s -r 0-4 "$u/static/hello.txt")
    [[ $body == Hello ]] || fail "GET /static/hello.txt bytes 0-4: got '$body'"
    for p in ../14_batteries.c %2e%2e/14_batteries.c ..%2f14_batteries.c; do
        code=$(curl -s --path-as-is -o /dev/null -w '%{http_code}' "$u/static/$p")
        [[ $code == 404 ]] || fail "GET /static/$p: expected 404, got $code"
    done
    stop
    programs=$((programs + 1))
fi

if [[ $failed -ne 0 ]]; then
    echo "run_guide_examples: FAILED" >&2
    exit 1
fi
echo "run_guide_examples: ok: $programs programs run and checked"
