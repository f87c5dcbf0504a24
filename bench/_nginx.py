"""nginx configurations for the static upstream and the reference reverse proxy.

Both run from their own prefix directory with their own pid file, logs and temp paths, so the
system's nginx (if any) is never touched, and both listen only on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path

from _procs import LOOPBACK

# The upstream answers every request with exactly this 100-byte body.
BODY = (b"trio-gateway benchmark body " * 4)[:99] + b"\n"
assert len(BODY) == 100
STATUS_PATH = "/__bench_nginx_status"

_COMMON_HEAD = """\
worker_processes 1;
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections 4096;
    multi_accept on;
}}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    # wrk keeps its connections for the whole run; nginx's default (1000 requests) would close
    # them mid-run and measure reconnects instead of proxying.
    keepalive_requests 10000000;
    keepalive_timeout 75s;
    server_tokens off;
"""


def upstream_conf(prefix: Path, port: int) -> str:
    body = BODY.decode().rstrip("\n")
    return (
        _COMMON_HEAD.format(prefix=prefix)
        + f"""\
    server {{
        listen {LOOPBACK}:{port} reuseport backlog=4096;
        default_type text/plain;
        location / {{
            return 200 "{body}\\n";
        }}
        # Counts the connections the upstream accepted: a proxy that pools upstream
        # connections opens a handful per run, one that does not opens one per request.
        location = {STATUS_PATH} {{
            stub_status;
        }}
    }}
}}
"""
    )


def proxy_conf(prefix: Path, port: int, upstream_port: int) -> str:
    return (
        _COMMON_HEAD.format(prefix=prefix)
        + f"""\
    upstream bench_upstream {{
        server {LOOPBACK}:{upstream_port};
        keepalive 64;
        keepalive_requests 10000000;
    }}
    server {{
        listen {LOOPBACK}:{port} reuseport backlog=4096;
        location / {{
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""
    )


def write_conf(nginx: str, prefix: Path, text: str) -> list[str]:
    """Write ``nginx.conf`` under ``prefix``; return the argv that runs nginx in the foreground."""
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(text)
    # -e sends start-up errors to our prefix instead of /var/log/nginx (nginx >= 1.19.5).
    return [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]


def parse_accepts(status_page: bytes) -> int:
    """The "accepts" counter of an nginx stub_status page."""
    lines = status_page.decode().splitlines()
    return int(lines[2].split()[0])  # "server accepts handled requests" / " A H R"
