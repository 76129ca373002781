#!/usr/bin/env bash
# run_small_service_test.sh -- examples/small-service/service.c, asked what
# FastAPI's version answers: every route, its checks and its status codes.
#
# usage: tests/small_service/run_small_service_test.sh <service binary>
set -euo pipefail

svc=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
    echo "run_small_service_test: FAIL: $*" >&2
    exit 1
}
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

up=$(free_port)
python3 "$here/upstream.py" "$up" &
pids+=($!)
: >"$tmp/log" # made here: the background shell may not have opened it yet
UPSTREAM="http://127.0.0.1:$up" "$svc" 0 >"$tmp/log" 2>&1 &
pids+=($!)
port=
for _ in $(seq 100); do
    port=$(sed -n 's|^serving on http://127\.0\.0\.1:\([0-9]*\)$|\1|p' "$tmp/log")
    [[ -n $port && $port != 0 ]] && curl -s -o /dev/null "http://127.0.0.1:$up/items/1" && break
    sleep 0.05
done
[[ -n $port ]] || fail "the service did not start: $(cat "$tmp/log")"
base="http://127.0.0.1:$port"

# expect METHOD PATH STATUS BODY [curl args...]
expect() {
    local method=$1 path=$2 status=$3 want=$4 got code
    shift 4
    got=$(curl -s -X "$method" -w '\n%{http_code}' --max-time 10 "$@" "$base$path")
    code=${got##*$'\n'}
    got=${got%$'\n'*}
    [[ $code == "$status" && $got == "$want" ]] ||
        fail "$method $path: got $code '$got', want $status '$want'"
}

expect GET /sleep 200 '{"slept_ms":100}'
expect GET '/sleep?ms=20' 200 '{"slept_ms":20}'
expect GET '/sleep?ms=x' 422 '{"detail":[{"type":"int_parsing","loc":["query","ms"],"msg":"Input should be a valid integer, unable to parse string as an integer","input":"x"}]}'
expect GET /cpu/10 200 '{"n":10,"sum":45}'
expect GET '/gather?delay_a=100&delay_b=200' 200 '[{"id":1,"name":"item1"},{"id":2,"name":"item2"}]'
t=$(curl -s -o /dev/null -w '%{time_total}' "$base/gather?delay_a=300&delay_b=300")
python3 -c "import sys; sys.exit(0 if float('$t') < 0.55 else 1)" ||
    fail "/gather with two 300 ms calls took ${t}s: they were not gathered"
expect POST /items 201 '{"name":"pen","price":1.5,"tags":[]}' \
    -H 'Content-Type: application/json' -d '{"name":"pen","price":1.5}'
expect POST /items 422 '{"detail":[{"type":"missing","loc":["body","price"],"msg":"Field required","input":{"name":"pen"}}]}' \
    -H 'Content-Type: application/json' -d '{"name":"pen"}'
expect GET /items/1 200 '{"id":1,"name":"item1"}'
expect GET /items/2 404 '{"detail":"Item not found"}'
expect GET /hello 200 '{"message":"Hello, World!","visits":1,"token":null}'
expect GET '/hello?name=Ana' 200 '{"message":"Hello, Ana!","visits":4,"token":"t\"k"}' \
    -H 'X-Token: t"k' -b 'visits=3'
headers=$(curl -s -D - -o /dev/null -b 'visits=3' "$base/hello")
grep -qi '^x-app: myapp' <<<"$headers" || fail "/hello: no X-App header"
grep -qi '^set-cookie: visits=4; .*HttpOnly' <<<"$headers" || fail "/hello: no visits cookie: $headers"
expect GET '/stream?n=3' 200 $'{"i":0}\n{"i":1}\n{"i":2}\n'
echo "run_small_service_test: ok"
