#!/usr/bin/env bash
# Python bytecode executed per keyless request, per function (a figure the machine's load does
# not move, unlike req/s or CPU time):
#
#   bash bench/opcount_keyless.sh PYTHON OUT [REQUESTS_PER_CONNECTION]
#   e.g. bash bench/opcount_keyless.sh .venv/bin/python /tmp/new.txt
#        cd /tmp && PYTHONPATH=/path/to/old/checkout bash /path/to/bench/opcount_keyless.sh \
#            /path/to/.venv/bin/python /tmp/old.txt        # an old tree, with this venv
#
# The gateway (its own nginx upstream, free ports) runs under bench/_opcount_gateway.py; after a
# warm-up of 32 x 10 requests, counting is switched on for exactly 32 x N requests
# (bench/fixed_load.py), then off. Writes OUT (opcodes, calls, function; totals for all the
# requests) and prints the opcodes per request. Compare two files with bench/opcount_compare.py.
# With BENCH_HOOKS=1 the API has the hooks-pre-post variant's two no-op native hooks; with
# BENCH_TOKEN=1 it is the token-memory variant's (token auth, a rate limit and a quota).
set -euo pipefail
python=$1
result=$(realpath -m "$2")
per=${3:-20}
out=$(mktemp -d /tmp/opcount-keyless.XXXXXX)
bench=$(cd "$(dirname "$0")" && pwd)
. "$bench/_keyless_setup.sh"
OPCOUNT_OUT="$result" "$python" "$bench/_opcount_gateway.py" run --apps "$out/apps" "${gateway_args[@]}" \
    --listen "127.0.0.1:$gw" --log-level warning >"$out/gateway.log" 2>&1 &
gateway_pid=$!
pids+=($gateway_pid)
gateway_ready "$gw"
fixed_load "$gw" 10
kill -USR1 "$gateway_pid"
sleep 0.2
fixed_load "$gw" "$per"
kill -USR2 "$gateway_pid"
for _ in $(seq 50); do [ -s "$result" ] && break; sleep 0.1; done
awk -F'\t' -v n=$((32 * per)) '{s += $1} END {printf "opcodes per request: %.0f (%d requests)\n", s / n, n}' "$result"
