# Sourced by the keyless trace scripts (trace_keyless.sh, callgrind_keyless.sh,
# syscalls_keyless.sh): with $out (a fresh temp dir) and $bench (this folder) set, picks free
# ports ($up for the nginx upstream, $gw for the gateway), starts nginx on $up, writes a keyless
# API to $out/apps proxying to it, and kills what it started (the pids array) on exit.
# With BENCH_TOKEN=1 the API is the token-memory variant's instead (token auth, a rate limit and a
# quota): $gateway_args holds the gateway's extra arguments, $load_args fixed_load.py's, and
# add_bench_key (call it once the gateway answers) creates the key. With BENCH_HOOKS=1 the API
# has the hooks-pre-post variant's two no-op native hooks (Pre and Post).
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
load_args=()
add_bench_key() { :; }
if [ "${BENCH_TOKEN:-}" = 1 ]; then
    echo '{"secret": "bench-admin-secret"}' >"$out/tyk.conf"
    gateway_args=(--config "$out/tyk.conf")
    load_args=(--header "Authorization: bench-key")
    sed -i 's/"use_keyless": true/"use_keyless": false/' "$out/apps/keyless.json"
    add_bench_key() {
        curl -sf -o /dev/null -X POST -H "X-Tyk-Authorization: bench-admin-secret" \
            -d '{"rate": 1e9, "per": 1, "quota_max": 1000000000000, "quota_renewal_rate": 3600,
                 "access_rights": {"keyless": {"api_id": "keyless", "versions": ["Default"]}}}' \
            "http://127.0.0.1:$gw/tyk/keys/bench-key"
    }
fi
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
