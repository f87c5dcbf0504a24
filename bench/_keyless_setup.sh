# Sourced by the keyless trace scripts (trace_keyless.sh, callgrind_keyless.sh,
# syscalls_keyless.sh, opcount_keyless.sh, cpu_split.sh): with $out (a fresh temp dir) and $bench
# (this folder) set, picks free ports ($up for the nginx upstream, $gw for the gateway), starts
# nginx on $up, writes a keyless API to $out/apps proxying to it, and kills what it started (the
# pids array) on exit. $gateway_args holds the gateway's extra arguments; once a gateway is
# started, `gateway_ready PORT [TRIES PAUSE]` waits for it to answer (any status) and creates the
# bench key if the API needs one, `fixed_load PORT PER` sends 32 x PER requests, and $wrk_args
# holds wrk's extra arguments.
# With BENCH_TOKEN=1 the API is the token-memory variant's instead (token auth, a rate limit and a
# quota); with BENCH_HOOKS=1 it has the hooks-pre-post variant's two no-op native hooks (Pre and
# Post).
mkdir -p "$out/nginx" "$out/apps"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
up=$(free_port)
gw=$(free_port)
python3 - "$bench" "$out/nginx" "$up" <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import _nginx
prefix = Path(sys.argv[2])
(prefix / "nginx.conf").write_text(_nginx.upstream_conf(prefix, int(sys.argv[3])))
PY
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
nginx -p "$out/nginx" -c "$out/nginx/nginx.conf" -e "$out/nginx/error.log" &
pids+=($!)
cat > "$out/apps/keyless.json" <<JSON
{"api_id": "keyless", "name": "keyless", "org_id": "bench", "active": true, "use_keyless": true,
 "version_data": {"not_versioned": true, "versions": {"Default": {"name": "Default"}}},
 "proxy": {"listen_path": "/", "target_url": "http://127.0.0.1:$up/", "strip_listen_path": false}}
JSON
gateway_args=()
request_headers=()
add_bench_key() { :; }
if [ "${BENCH_TOKEN:-}" = 1 ]; then
    echo '{"secret": "bench-admin-secret"}' >"$out/tyk.conf"
    gateway_args=(--config "$out/tyk.conf")
    request_headers=("Authorization: bench-key")
    sed -i 's/"use_keyless": true/"use_keyless": false/' "$out/apps/keyless.json"
    add_bench_key() { # PORT
        curl -sf -o /dev/null -X POST -H "X-Tyk-Authorization: bench-admin-secret" \
            -d '{"rate": 1e9, "per": 1, "quota_max": 1000000000000, "quota_renewal_rate": 3600,
                 "access_rights": {"keyless": {"api_id": "keyless", "versions": ["Default"]}}}' \
            "http://127.0.0.1:$1/tyk/keys/bench-key"
    }
fi
load_args=()
wrk_args=()
for header in "${request_headers[@]}"; do
    load_args+=(--header "$header")
    wrk_args+=(-H "$header")
done
gateway_ready() { # PORT [TRIES PAUSE]: any HTTP answer will do (a keyed API answers 401)
    for _ in $(seq "${2:-100}"); do
        curl -s -o /dev/null "http://127.0.0.1:$1/" && break
        sleep "${3:-0.1}"
    done
    add_bench_key "$1"
}
fixed_load() { # PORT PER
    python3 "$bench/fixed_load.py" "http://127.0.0.1:$1/" --connections 32 --per-connection "$2" \
        "${load_args[@]}" >/dev/null
}
if [ "${BENCH_HOOKS:-}" = 1 ]; then
    printf 'async def noop_pre(ctx):\n    return None\n\n\nasync def noop_post(ctx):\n    return None\n' \
        >"$out/noop_hooks.py"
    python3 - "$out/apps/keyless.json" "$out/noop_hooks.py" <<'PY'
import json, sys
path, plugin = sys.argv[1], sys.argv[2]
api = json.load(open(path))
api["custom_middleware"] = {
    "driver": "python",
    "pre": [{"name": "noop_pre", "path": plugin}],
    "post": [{"name": "noop_post", "path": plugin}],
}
json.dump(api, open(path, "w"))
PY
fi
