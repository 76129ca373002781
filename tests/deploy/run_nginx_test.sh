#!/usr/bin/env bash
# Two canteen-demo instances behind a real nginx, as docs/guide/10-performance.md
# (9. Behind a load balancer) says to deploy them. Checks, through nginx:
#   1. /health answers 200, and both instances take turns serving it;
#   2. 10 concurrent GET /sleep/200 finish together (in under 1 s, not 2 s);
#   3. GET /stream/5 arrives complete with proxy_buffering off;
#   4. graceful drain: SIGTERM to the instance serving an in-flight
#      GET /sleep/1000; that request still gets its 200, the instance exits 0,
#      and nginx sends every later request to the other instance.
#
# usage: run_nginx_test.sh DEMO_BINARY
# Environment: NGINX (default: nginx on PATH, else /usr/sbin/nginx);
#              CANTEEN_KEEP_TMP=1 keeps the temporary directory for a look.
# Everything listens on 127.0.0.1 only; every wait is bounded.
set -uo pipefail

me="deploy_nginx"
say() { printf '%s: %s\n' "$me" "$*"; }
die() {
    printf '%s: FAIL: %s\n' "$me" "$*" >&2
    for f in "$tmp"/*.log; do
        [[ -f $f ]] && printf '%s: --- %s\n%s\n' "$me" "${f##*/}" "$(tail -n 30 "$f")" >&2
    done
    exit 1
}

tmp=
[[ $# -eq 1 ]] || die "usage: $0 DEMO_BINARY"
demo=$1
[[ -x $demo ]] || die "no demo binary at $demo"
nginx=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
[[ -x $nginx ]] || die "nginx not found (script/bootstrap installs it)"
command -v curl >/dev/null || die "curl(1) not found"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/canteen-nginx.XXXXXX")
chmod 755 "$tmp"
pids=()
# nginx's workers outlive a SIGKILLed master: SIGTERM first (the master then
# stops its workers), and SIGKILL the workers too if it comes to that.
stop_all() {
    local p i kids=()
    for p in "${pids[@]}"; do
        kill -0 "$p" 2>/dev/null || continue
        mapfile -t -O "${#kids[@]}" kids < <(pgrep -P "$p" 2>/dev/null)
        kill -TERM "$p" 2>/dev/null
    done
    for ((i = 0; i < 100; i++)); do
        for p in "${pids[@]}" "${kids[@]}"; do
            kill -0 "$p" 2>/dev/null && break
            p=""
        done
        [[ -z $p ]] && break
        sleep 0.05
    done
    for p in "${pids[@]}" "${kids[@]}"; do
        kill -KILL "$p" 2>/dev/null
    done
    wait 2>/dev/null
}
cleanup() {
    stop_all
    if [[ ${CANTEEN_KEEP_TMP:-0} == 1 ]]; then
        say "kept $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap "exit 1" INT TERM

# wait_exit PID SECONDS: wait up to SECONDS for PID to exit; sets $status.
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

# start_demo NAME: start an instance on port 0; sets ${NAME}_pid, ${NAME}_port.
start_demo() {
    local log=$tmp/$1.log p port="" i
    : >"$log" # made here: the background shell may not have opened it yet
    "$demo" --host 127.0.0.1 --port 0 >"$log" 2>&1 &
    p=$!
    pids+=("$p")
    for ((i = 0; i < 200; i++)); do
        port=$(sed -n 's|^canteen-demo: serving on http://127\.0\.0\.1:\([0-9]*\) .*|\1|p' "$log")
        [[ -n $port ]] && break
        kill -0 "$p" 2>/dev/null || break
        sleep 0.05
    done
    [[ -n $port ]] || die "$1 did not start"
    printf -v "${1}_pid" '%s' "$p"
    printf -v "${1}_port" '%s' "$port"
    say "$1: pid $p, port $port"
}

# a port the kernel just gave out and took back (without python3: a random
# one); taken again by the time nginx binds it, the loop below tries another
free_port() {
    if command -v python3 >/dev/null; then
        python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
    else
        echo $((20000 + RANDOM % 30000))
    fi
}

write_conf() {
    local user=""
    # as root the workers would run as nobody, who cannot enter $tmp
    [[ $(id -u) -eq 0 ]] && user="user root;"
    cat >"$tmp/nginx.conf" <<CONF
$user
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log info;
events { worker_connections 256; }
http {
    access_log $tmp/nginx-access.log;
    client_body_temp_path $tmp/client_body;
    proxy_temp_path $tmp/proxy;
    fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi;
    scgi_temp_path $tmp/scgi;

    upstream canteen {
        server 127.0.0.1:$a_port max_fails=1 fail_timeout=30s;
        server 127.0.0.1:$b_port max_fails=1 fail_timeout=30s;
        keepalive 16;
    }
    server {
        listen 127.0.0.1:$1;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host \$host;
        proxy_connect_timeout 2s;
        proxy_read_timeout 10s;
        add_header X-Upstream \$upstream_addr always;

        location / {
            proxy_pass http://canteen;
        }
        location /stream/ {
            proxy_pass http://canteen;
            proxy_buffering off;
        }
    }
}
CONF
}

start_demo a
start_demo b

# nginx on a free port; if another process took it meanwhile, a new port
nginx_pid=""
for attempt in 1 2 3 4 5; do
    port=$(free_port) || die "could not pick a port"
    write_conf "$port"
    : >"$tmp/nginx-error.log"
    "$nginx" -p "$tmp" -e "$tmp/nginx-error.log" -c "$tmp/nginx.conf" -g 'daemon off;' \
        >"$tmp/nginx-stdout.log" 2>&1 &
    nginx_pid=$!
    pids+=("$nginx_pid")
    up=0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$nginx_pid" 2>/dev/null || break
        if curl -s --max-time 1 -o /dev/null "http://127.0.0.1:$port/health"; then
            up=1
            break
        fi
        sleep 0.05
    done
    [[ $up -eq 1 ]] && break
    kill -TERM "$nginx_pid" 2>/dev/null
    wait_exit "$nginx_pid" 5 || kill -KILL "$nginx_pid" 2>/dev/null
    grep -q "Address already in use" "$tmp/nginx-error.log" "$tmp/nginx-stdout.log" ||
        die "nginx did not start"
    say "port $port taken, retrying ($attempt)"
done
[[ $up -eq 1 ]] || die "nginx could not bind a port in 5 attempts"
say "nginx: pid $nginx_pid, port $port"
base="http://127.0.0.1:$port"

# 1. health, and round robin over both instances
seen=""
for i in 1 2 3 4; do
    out=$(curl -s --max-time 5 -D - -o "$tmp/body" "$base/health") || die "GET /health failed"
    code=$(sed -n '1s|^HTTP/[0-9.]* \([0-9]*\).*|\1|p' <<<"$out")
    [[ $code == 200 ]] || die "GET /health through nginx: status '$code'"
    seen+=" $(sed -n 's|^X-Upstream: \(.*\)\r$|\1|Ip' <<<"$out")"
done
[[ $seen == *":$a_port"* && $seen == *":$b_port"* ]] ||
    die "nginx did not use both instances for /health: upstreams$seen"
say "ok: /health 200 through nginx, served by both instances"

# 2. the async lesson: 10 concurrent sleeps of 200 ms overlap
t0=$(date +%s%N)
cpids=()
for i in $(seq 10); do
    curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$base/sleep/200" >"$tmp/sleep.$i" &
    cpids+=($!)
done
for p in "${cpids[@]}"; do wait "$p"; done
ms=$((($(date +%s%N) - t0) / 1000000))
for i in $(seq 10); do
    [[ $(cat "$tmp/sleep.$i") == 200 ]] || die "GET /sleep/200 #$i: status '$(cat "$tmp/sleep.$i")'"
done
[[ $ms -lt 1000 ]] || die "10 concurrent GET /sleep/200 took $ms ms (expected < 1000)"
say "ok: 10 concurrent /sleep/200 through nginx in $ms ms"

# 3. a streamed response arrives whole
code=$(curl -s --max-time 10 -o "$tmp/stream.nginx" -w '%{http_code}' "$base/stream/5")
[[ $code == 200 ]] || die "GET /stream/5 through nginx: status '$code'"
lines=$(grep -c . "$tmp/stream.nginx")
last=$(tail -n 1 "$tmp/stream.nginx")
[[ $lines -eq 5 && $last == '{"i":4,"of":5}' ]] ||
    die "GET /stream/5 through nginx: $lines lines, last '$last': $(cat "$tmp/stream.nginx")"
curl -s --max-time 10 -o "$tmp/stream.direct" "http://127.0.0.1:$a_port/stream/5" ||
    die "GET /stream/5 direct failed"
cmp -s "$tmp/stream.nginx" "$tmp/stream.direct" ||
    die "GET /stream/5 through nginx differs from direct: $(cat "$tmp/stream.direct")"
say "ok: /stream/5 complete through nginx (last line $last)"

# 4. graceful drain: SIGTERM the instance serving an in-flight request
curl -s --max-time 10 -o "$tmp/drain.body" -w '%{http_code}' "$base/sleep/1000" >"$tmp/drain.code" &
drain_curl=$!
# which instance has it: its in-flight gauge counts it besides the /metrics request
inflight() {
    curl -s --max-time 2 "http://127.0.0.1:$1/metrics" |
        sed -n 's|^canteen_requests_in_flight \([0-9]*\).*|\1|p'
}
victim=""
for ((i = 0; i < 40; i++)); do
    fa=$(inflight "$a_port")
    fb=$(inflight "$b_port")
    if [[ ${fa:-0} -gt ${fb:-0} ]]; then
        victim=a
        break
    elif [[ ${fb:-0} -gt ${fa:-0} ]]; then
        victim=b
        break
    fi
    sleep 0.02
done
[[ -n $victim ]] || die "could not tell which instance serves /sleep/1000 (in flight: a=$fa b=$fb)"
if [[ $victim == a ]]; then
    vpid=$a_pid survivor_port=$b_port
else
    vpid=$b_pid survivor_port=$a_port
fi
say "in-flight /sleep/1000 is on instance $victim; SIGTERM to pid $vpid"
kill -TERM "$vpid"
# while it drains and after it exits, nginx keeps answering from the survivor
for i in 1 2 3; do
    out=$(curl -s --max-time 5 -D - -o /dev/null "$base/health") || die "GET /health during drain failed"
    code=$(sed -n '1s|^HTTP/[0-9.]* \([0-9]*\).*|\1|p' <<<"$out")
    [[ $code == 200 ]] || die "GET /health during drain: status '$code'"
done
wait "$drain_curl"
[[ $(cat "$tmp/drain.code") == 200 ]] ||
    die "in-flight GET /sleep/1000 after SIGTERM: status '$(cat "$tmp/drain.code")'"
wait_exit "$vpid" 15 || die "instance $victim still running 15 s after SIGTERM"
[[ $status -eq 0 ]] || die "instance $victim exited with status $status after SIGTERM"
say "ok: in-flight request got 200, instance $victim exited 0"
for i in 1 2 3 4; do
    out=$(curl -s --max-time 5 -D - -o /dev/null "$base/health") || die "GET /health after drain failed"
    code=$(sed -n '1s|^HTTP/[0-9.]* \([0-9]*\).*|\1|p' <<<"$out")
    [[ $code == 200 ]] || die "GET /health after drain: status '$code'"
    addr=$(sed -n 's|^X-Upstream: \(.*\)\r$|\1|Ip' <<<"$out")
    # "A, B" when nginx tried the gone one first: the answer is B's
    [[ ${addr##*, } == "127.0.0.1:$survivor_port" ]] ||
        die "GET /health after drain served by '$addr', expected 127.0.0.1:$survivor_port"
done
say "ok: after the drain nginx routes to the other instance"

# nginx and the survivor stop cleanly too
kill -TERM "$nginx_pid"
wait_exit "$nginx_pid" 10 || die "nginx still running 10 s after SIGTERM"
if [[ $victim == a ]]; then spid=$b_pid; else spid=$a_pid; fi
kill -TERM "$spid"
wait_exit "$spid" 15 || die "surviving instance still running 15 s after SIGTERM"
[[ $status -eq 0 ]] || die "surviving instance exited with status $status after SIGTERM"
say "all passed"
