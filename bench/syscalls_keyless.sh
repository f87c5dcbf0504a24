#!/usr/bin/env bash
# System calls per request of a keyless gateway, counted by the kernel's tracepoints (perf stat:
# no ptrace, so the gateway runs at nearly full speed and the count is what a real run makes):
#
#   bash bench/syscalls_keyless.sh GATEWAY_BIN [REQUESTS_PER_CONNECTION [fixed|wrk]]
#
# Its own nginx upstream, free ports; after a warm-up, 32 keep-alive connections x N requests
# (bench/fixed_load.py, a client slower than the gateway), or with "wrk" N seconds of wrk -c32
# (the gateway saturated, as in bench/proxy.py). recvfrom calls beyond two per request are reads that found nothing (EAGAIN)
# and each costs a wait: an epoll_ctl to arm the socket, a trip through epoll_wait. With
# BENCH_TOKEN=1 the API is the token-memory variant's (see _keyless_setup.sh).
set -euo pipefail
gateway=$(realpath "$1")
per=${2:-300}
load=${3:-fixed}
out=$(mktemp -d /tmp/syscalls-keyless.XXXXXX)
bench=$(cd "$(dirname "$0")" && pwd)
. "$bench/_keyless_setup.sh"
"$gateway" run --apps "$out/apps" --listen "127.0.0.1:$gw" --log-level warning "${gateway_args[@]}" >"$out/gateway.log" 2>&1 &
gateway_pid=$!
pids+=($gateway_pid)
gateway_ready "$gw"
fixed_load "$gw" 20
events=syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto,syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_epoll_wait
perf stat -x, -e "$events" -p "$gateway_pid" -o "$out/perf.csv" &
perf_pid=$!
sleep 0.5
if [ "$load" = wrk ]; then
    # wrk saturates the gateway, as bench/proxy.py does (more reads then find their bytes
    # already there); its count is of completed requests, so the figure is within ~0.1 %.
    wrk -t1 -c32 -d"${per}s" "${wrk_args[@]}" "http://127.0.0.1:$gw/" >"$out/wrk.txt"
    count=$(awk '/requests in/ {print $1}' "$out/wrk.txt")
else
    fixed_load "$gw" "$per"
    count=$((32 * per))
fi
kill -INT "$perf_pid"; wait "$perf_pid" || true
python3 - "$out/perf.csv" "$count" <<'PY'
import sys
n = int(sys.argv[2])
print(f"{n} requests")
for line in open(sys.argv[1]):
    parts = line.strip().split(",")
    if len(parts) > 2 and parts[0].isdigit():
        print(f"{parts[2].split(':')[-1]:>24} {int(parts[0]) / n:6.2f} per request")
PY
