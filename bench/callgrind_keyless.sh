#!/usr/bin/env bash
# Instructions per request of a keyless gateway (user space, counted by valgrind's callgrind),
# a figure the machine's load does not move, unlike req/s or CPU time:
#
#   bash bench/callgrind_keyless.sh GATEWAY_BIN [REQUESTS_PER_CONNECTION] [EXTRA RUN ARGS...]
#   e.g. bash bench/callgrind_keyless.sh .venv/bin/trio-gateway 40
#        bash bench/callgrind_keyless.sh bench/.work/rev-7f8dcf614d96/venv/bin/trio-gateway 40
#
# The gateway (its own nginx upstream, free ports) starts under callgrind with collection off;
# after a warm-up of 32 x 10 requests, collection is switched on for exactly 32 x N requests
# (bench/fixed_load.py), then off. Prints instructions per request. Kernel work (system calls)
# is not counted: compare system calls with trace_keyless.sh strace. With BENCH_TOKEN=1 the API is
# the token-memory variant's (token auth, a rate limit and a quota; see _keyless_setup.sh).
set -euo pipefail
gateway=$(realpath "$1")
per=${2:-40}
shift $(( $# >= 2 ? 2 : 1 ))
out=$(mktemp -d /tmp/callgrind-keyless.XXXXXX)
bench=$(cd "$(dirname "$0")" && pwd)
python=$(dirname "$gateway")/python
. "$bench/_keyless_setup.sh"
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/callgrind.out" \
    "$python" "$gateway" run --apps "$out/apps" --listen "127.0.0.1:$gw" --log-level warning "${gateway_args[@]}" "$@" \
    >"$out/gateway.log" 2>&1 &
gateway_pid=$!
pids+=($gateway_pid)
gateway_ready "$gw" 600 0.5
fixed_load "$gw" 10
callgrind_control -i on "$gateway_pid" >/dev/null
fixed_load "$gw" "$per"
callgrind_control -i off "$gateway_pid" >/dev/null
callgrind_control -d "$gateway_pid" >/dev/null
sleep 1
total=$(cat "$out"/callgrind.out* | awk '/^summary:|^totals:/ {s += $2} END {print s}')
python3 -c "print(f'instructions per request: {$total / (32 * $per):,.0f}  ({$total:,} for {32 * $per} requests)')"
echo "files: $out"
