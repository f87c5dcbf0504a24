"""A gateway at its file-descriptor limit: what it logs, and whether it answers (issue 10, item 8).

Runs `trio-gateway run` under ``RLIMIT_NOFILE`` = ``--limit`` (via ``prlimit``), opens
``--clients`` connections that each send one request, counts the answers after 2 s, closes
them, checks that a new client is served, and counts the gateway's ERROR, WARNING and traceback
lines.

    .venv/bin/python bench/reliability_fd_limit.py [--limit 64] [--clients 80] [--src /tmp/old]
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _under_load import LOOPBACK, REPO_ROOT, argument_parser


def answered(sock: socket.socket) -> bool:
    """Whether an answer has arrived by now (no waiting)."""
    sock.setblocking(False)  # a socket with a timeout would wait for it first
    try:
        return sock.recv(65536).startswith(b"HTTP/1.1 ")
    except OSError:
        return False


def main() -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--limit", type=int, default=64)
    parser.add_argument("--clients", type=int, default=80)
    args = parser.parse_args()
    tree = args.src or REPO_ROOT
    apps = Path(tempfile.mkdtemp(prefix="bench-fd-limit-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIO_GATEWAY_")}
    env["PYTHONPATH"] = str(tree)
    argv = ["prlimit", f"--nofile={args.limit}:{args.limit}", sys.executable, "-m"]
    argv += ["trio_gateway", "run", "--apps", str(apps), "--listen", f"{LOOPBACK}:0"]
    gateway = subprocess.Popen(
        argv, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        assert gateway.stderr is not None
        line = ""
        while "listening on" not in line:
            line = gateway.stderr.readline()
            if not line:
                raise RuntimeError("the gateway did not start")
        port = int(line.rsplit(":", 1)[1])
        clients = []
        for _ in range(args.clients):
            sock = socket.create_connection((LOOPBACK, port), timeout=2)
            sock.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            clients.append(sock)
        time.sleep(2)  # the time we give the gateway to answer (a measurement, not a sync)
        got_answer = sum(answered(sock) for sock in clients)
        for sock in clients:
            sock.close()
        with socket.create_connection((LOOPBACK, port), timeout=10) as sock:
            sock.sendall(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
            served_after = sock.recv(65536).startswith(b"HTTP/1.1 ")
    finally:
        gateway.terminate()
        err = gateway.communicate(timeout=60)[1]

    print(
        json.dumps(
            {
                "clients": args.clients,
                "answered": got_answer,
                "new_client_served_after": served_after,
                "error_lines": err.count(" ERROR "),
                "tracebacks": err.count("Traceback"),
                "warning_lines": err.count(" WARNING "),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
