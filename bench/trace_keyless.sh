#!/usr/bin/env bash
# One keyless gateway under wrk (its own nginx upstream, free ports, files under a temp dir),
# traced for a few seconds while it serves: system calls counted (strace -c), a py-spy profile, or
# its minor page faults and CPU ticks (faults).
#
#   bash bench/trace_keyless.sh GATEWAY_BIN strace|py-spy|faults [OUT_DIR]
#   e.g. bash bench/trace_keyless.sh .venv/bin/trio-gateway strace
#        bash bench/trace_keyless.sh bench/.work/rev-7f8dcf614d96/venv/bin/trio-gateway py-spy
#
# strace needs ptrace rights over the gateway (root, or ptrace_scope 0); py-spy is looked up on
# PATH, then in /work/main/.venv/bin. Prints wrk's req/s (slowed down by the tracer: compare the
# counts per request, not the rate) and the trace's summary; the files stay in OUT_DIR.
set -euo pipefail
gateway=$(realpath "$1")
mode=$2
out=${3:-$(mktemp -d /tmp/trace-keyless.XXXXXX)}
bench=$(cd "$(dirname "$0")" && pwd)
. "$bench/_keyless_setup.sh"
"$gateway" run --apps "$out/apps" --listen "127.0.0.1:$gw" --log-level warning "${gateway_args[@]}" \
    >"$out/gateway.log" 2>&1 &
gateway_pid=$!
pids+=($gateway_pid)
gateway_ready "$gw"
wrk -t1 -c32 -d8s "${wrk_args[@]}" "http://127.0.0.1:$gw/" >"$out/wrk.txt" 2>&1 &
wrk_pid=$!
sleep 1.5
case $mode in
    strace)
        timeout -s INT 4 strace -c -f -p "$gateway_pid" -o "$out/strace.txt" || true
        summary="$out/strace.txt" ;;
    py-spy)
        spy=$(command -v py-spy || echo /work/main/.venv/bin/py-spy)
        "$spy" record -r 250 -d 5 -p "$gateway_pid" --format raw -o "$out/py-spy.txt" >"$out/py-spy.log" 2>&1
        summary="$out/py-spy.log" ;;
    faults)
        # Minor page faults (field 10 of /proc/PID/stat) and CPU ticks over 4 s of load.
        stat() { cut -d' ' -f10,14,15 "/proc/$gateway_pid/stat"; }
        before=$(stat); sleep 4; after=$(stat)
        python3 -c "b, a = '$before'.split(), '$after'.split(); print('minor faults', int(a[0]) - int(b[0]), 'cpu ticks', int(a[1]) + int(a[2]) - int(b[1]) - int(b[2]))" | tee "$out/faults.txt"
        summary="$out/faults.txt" ;;
    *) echo "mode: strace, py-spy or faults" >&2; exit 2 ;;
esac
wait "$wrk_pid"
grep -E "Requests/sec" "$out/wrk.txt"
head -20 "$summary"
echo "files: $out"
