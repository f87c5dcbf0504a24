"""Send an exact number of keep-alive GET requests over N connections (one thread each).

    python bench/fixed_load.py URL --connections 32 --per-connection 100 [--header "K: v"]...

For measurements that count work per request (bench/callgrind_keyless.sh): unlike wrk, the
number of requests is known exactly. Prints the count of 2xx answers; exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import http.client
import sys
import threading
from urllib.parse import urlsplit


def _worker(
    host: str, port: int, path: str, count: int, ok: list[int], headers: dict[str, str]
) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=600)
    good = 0
    for _ in range(count):
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        good += 200 <= response.status < 300
    conn.close()
    ok.append(good)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--per-connection", type=int, default=100)
    parser.add_argument(
        "--header", action="append", default=[], help='"Name: value", sent with every request'
    )
    args = parser.parse_args()
    headers = dict(h.split(": ", 1) for h in args.header)
    url = urlsplit(args.url)
    ok: list[int] = []
    threads = [
        threading.Thread(
            target=_worker,
            args=(url.hostname, url.port, url.path or "/", args.per_connection, ok, headers),
        )
        for _ in range(args.connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = sum(ok)
    print(total)
    return 0 if total == args.connections * args.per_connection else 1


if __name__ == "__main__":
    sys.exit(main())
