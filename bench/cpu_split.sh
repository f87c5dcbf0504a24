#!/usr/bin/env bash
# CPU per request of two gateways, side by side, split into user and system time:
#
#   bash bench/cpu_split.sh ROUNDS SECONDS OLD_BIN NEW_BIN
#   e.g. BENCH_TOKEN=1 bash bench/cpu_split.sh 8 4 \
#            bench/.work/rev-7f8dcf614d96/venv/bin/trio-gateway .venv/bin/trio-gateway
#
# Both gateways serve the same API (keyless; with BENCH_TOKEN=1 the token-memory variant's, see
# _keyless_setup.sh) from one nginx upstream, pinned to core 1; wrk -c32 runs on core 0 against
# one gateway at a time, in ABBA order, SECONDS per measurement. Per measurement the gateway's
# user and system CPU (/proc/PID/stat, all its threads) divided by wrk's completed requests;
# prints each round and the medians. Quicker than bench/compare-commits (no nginx baseline, no
# variant set-up per round) and it says where the time went; bench/compare-commits is the
# figure of record.
set -euo pipefail
rounds=$1
secs=$2
a=$(realpath "$3")
b=$(realpath "$4")
out=$(mktemp -d /tmp/cpusplit.XXXXXX)
bench=$(cd "$(dirname "$0")" && pwd)
. "$bench/_keyless_setup.sh"
gw_a=$gw
gw_b=$(free_port)
taskset -c 1 "$a" run --apps "$out/apps" --listen "127.0.0.1:$gw_a" --log-level warning \
    "${gateway_args[@]}" >"$out/a.log" 2>&1 &
pids+=($!)
pid_a=$!
taskset -c 1 "$b" run --apps "$out/apps" --listen "127.0.0.1:$gw_b" --log-level warning \
    "${gateway_args[@]}" >"$out/b.log" 2>&1 &
pids+=($!)
pid_b=$!
gateway_ready "$gw_a"
gateway_ready "$gw_b"
ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
measure() { # PID PORT LABEL
    local u0 s0 u1 s1 n
    read -r u0 s0 < <(ticks "$1")
    taskset -c 0 wrk -t1 -c32 -d"${secs}s" "${wrk_args[@]}" "http://127.0.0.1:$2/" >"$out/wrk.txt"
    read -r u1 s1 < <(ticks "$1")
    n=$(awk '/requests in/ {print $1}' "$out/wrk.txt")
    hz=$(getconf CLK_TCK)
    python3 -c "n, hz = $n, $hz; u, s = ($u1 - $u0) / hz * 1e6 / n, ($s1 - $s0) / hz * 1e6 / n
print(f'$3 requests={n} user={u:.2f}us sys={s:.2f}us total={u + s:.2f}us')"
}
measure "$pid_a" "$gw_a" warm >/dev/null
measure "$pid_b" "$gw_b" warm >/dev/null
for r in $(seq "$rounds"); do
    if [ $((r % 2)) = 1 ]; then
        measure "$pid_a" "$gw_a" old; measure "$pid_b" "$gw_b" new
    else
        measure "$pid_b" "$gw_b" new; measure "$pid_a" "$gw_a" old
    fi
done | tee "$out/rounds.txt"
python3 - "$out/rounds.txt" <<'PY'
import statistics
import sys

per: dict[str, dict[str, list[float]]] = {"old": {}, "new": {}}
for line in open(sys.argv[1]):
    label, *fields = line.split()
    for field in fields[1:]:
        name, value = field.split("=")
        per[label].setdefault(name, []).append(float(value.rstrip("us")))
old, new = ({k: statistics.median(v) for k, v in per[x].items()} for x in ("old", "new"))
for name in ("user", "sys", "total"):
    print(f"median {name:>5}: old {old[name]:6.2f} us  new {new[name]:6.2f} us  new/old {new[name] / old[name]:.3f}")
print(f"throughput per CPU-second, new vs old: {old['total'] / new['total']:.3f}x")
PY
