#!/usr/bin/env bash
# run_openapi_test.sh -- the demo's OpenAPI document and /docs, checked by
# real tools: npm's @seriousme/openapi-schema-validator validates
# /openapi.json, headless Chromium renders /docs and must show every
# operation of the document, and /docs without Swagger UI's files says how
# to install them.
#
# usage: tests/openapi/run_openapi_test.sh <canteen-demo>
# Exit 77 (skipped) when a tool is missing, except under CI=true, where a
# missing tool is a failure. Every process it starts is stopped on exit.
set -euo pipefail

demo=$1
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "run_openapi_test: FAIL: $*" >&2
    exit 1
}
missing() {
    if [[ ${CI:-} == true ]]; then
        fail "$1 is not installed (script/bootstrap installs it)"
    fi
    echo "run_openapi_test: SKIPPED: $1 is not installed (script/bootstrap installs it)" >&2
    exit 77
}
command -v validate-api >/dev/null || missing "validate-api (npm @seriousme/openapi-schema-validator)"
command -v chromium >/dev/null || missing "chromium"
command -v python3 >/dev/null || missing "python3"

# start_demo LOG [ENV=VALUE...]: a demo on port 0; sets $port. Not run in
# $(...): the pid must reach this shell's cleanup.
start_demo() {
    local log=$1
    shift
    port=
    : >"$log" # made here: the background shell may not have opened it yet
    env "$@" "$demo" --host 127.0.0.1 --port 0 >"$log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        port=$(sed -n 's|^canteen-demo: serving on http://127\.0\.0\.1:\([0-9]*\) .*|\1|p' "$log")
        [[ -n $port ]] && break
        sleep 0.05
    done
    [[ -n $port ]] || fail "the demo did not start: $(cat "$log")"
}

start_demo "$tmp/demo.log"
base="http://127.0.0.1:$port"

# 1. the document validates
curl -sf --max-time 10 "$base/openapi.json" >"$tmp/openapi.json" || fail "GET /openapi.json"
out=$(timeout 60 validate-api "$tmp/openapi.json" 2>&1) || fail "validate-api: $out"
grep -q '"valid": true' <<<"$out" || fail "validate-api: $out"

# 2. its operations are the demo's routes (the ones it declares or has)
python3 - "$tmp/openapi.json" <<'PY' || fail "the document's operations"
import json, sys
doc = json.load(open(sys.argv[1]))
ops = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
want = {("GET", "/health"), ("GET", "/users/{id}"), ("POST", "/items"), ("GET", "/fetch-multiple"),
        ("GET", "/sleep/{ms}"), ("GET", "/cpu/{n}"), ("POST", "/echo"), ("GET", "/metrics")}
missing = want - ops
assert not missing, f"missing operations: {missing}"
assert ("GET", "/openapi.json") not in ops and ("GET", "/docs") not in ops, "hidden routes shown"
items = doc["paths"]["/items"]["post"]
assert items["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Item"}
assert set(items["responses"]) == {"201", "422"}, items["responses"]
assert doc["components"]["schemas"]["Item"]["required"] == ["name", "price"]
fm = {p["name"]: p for p in doc["paths"]["/fetch-multiple"]["get"]["parameters"]}
assert fm["delay_a"]["schema"]["maximum"] == 10000 and fm["delay_a"]["schema"]["default"] == 0
user = doc["paths"]["/users/{id}"]["get"]["parameters"][0]
assert user == {"name": "id", "in": "path", "required": True,
                "schema": {"type": "integer", "title": "Id"}}, user
assert doc["components"]["schemas"]["HTTPValidationError"]["properties"]["detail"]["items"] == \
    {"$ref": "#/components/schemas/ValidationError"}
PY

# 3. Chromium renders /docs: every operation of the document is on the page
profile="$tmp/chromium"
timeout 90 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --virtual-time-budget=15000 --dump-dom "$base/docs" \
    >"$tmp/dom.html" 2>"$tmp/chromium.log" || fail "chromium: $(tail -5 "$tmp/chromium.log")"
python3 - "$tmp/openapi.json" "$tmp/dom.html" <<'PY' || fail "/docs did not render every operation"
import json, re, sys
doc = json.load(open(sys.argv[1]))
dom = open(sys.argv[2]).read()
shown = set(re.findall(r'data-path="([^"]*)"', dom))
paths = set(doc["paths"])
assert paths and paths <= shown, f"not on the page: {paths - shown}"
assert "Canteen demo" in dom
PY

# 4. without Swagger UI's files, /docs says how to install them
start_demo "$tmp/demo2.log" CANTEEN_SWAGGER_UI_DIR="$tmp/nothing-here"
port2=$port
code=$(curl -s -o "$tmp/docs.html" -w '%{http_code}' --max-time 10 "http://127.0.0.1:$port2/docs")
[[ $code == 503 ]] || fail "/docs without Swagger UI: status $code"
grep -q "npm install -g" "$tmp/docs.html" || fail "/docs without Swagger UI does not say how to install it"
curl -sf --max-time 10 "http://127.0.0.1:$port2/openapi.json" >/dev/null ||
    fail "/openapi.json without Swagger UI"

echo "run_openapi_test: ok (validated, $(grep -o 'data-path=' "$tmp/dom.html" | wc -l) operations rendered)"
