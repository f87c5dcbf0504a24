"""How soon keyed traffic is back after Redis is (issue 10, item 5).

One gateway with the Redis store (a private redis-server on a free port), a keyed API to an
nginx upstream, one key, and ``--connections`` keep-alive clients sending keyed requests back to
back. Each round kills redis-server, leaves it down ``--outage`` seconds (the clients get 503s),
starts it again on the same port, waits until it accepts connections, and measures the time from
then to the first 200. Also reported: how many stderr lines the gateway wrote during the round.

    .venv/bin/python bench/reliability_redis.py --rounds 5
    .venv/bin/python bench/reliability_redis.py --rounds 5 --src /tmp/old   # another checkout
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import attrs
import trio
from _procs import Processes, terminate_on_sigterm
from _under_load import (
    LOOPBACK,
    KeepAliveLoad,
    argument_parser,
    start_gateway,
    start_upstream,
    write_api,
)

from tests.redis_server import READY_LINE, RedisServer

SECRET = "bench-secret"


def parse_args() -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--outage", type=float, default=2.0, help="seconds Redis stays down")
    parser.add_argument("--connections", type=int, default=16)
    return parser.parse_args()


def create_key(port: int) -> str:
    body = json.dumps(
        {"access_rights": {"api": {"api_id": "api", "api_name": "api", "versions": ["Default"]}}}
    ).encode()
    request = urllib.request.Request(
        f"http://{LOOPBACK}:{port}/tyk/keys/create",
        data=body,
        method="POST",
        headers={"X-Tyk-Authorization": SECRET, "Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        key: str = json.loads(response.read())["key"]
    return key


@attrs.define(eq=False)
class DurableRedis(RedisServer):
    """redis-server that keeps its data in ``directory`` across a kill (SAVE before each stop),
    like a production Redis with persistence: after a restart it loads the data, then accepts."""

    directory: Path = Path()

    def start(self, timeout: float = 10.0) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                LOOPBACK,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if READY_LINE in line:
                return
        self.process.wait(timeout)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.command("SAVE")
        super().stop()


def accepts(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1):
            return True
    except OSError:
        return False


def main() -> int:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-redis-recovery-"))
    procs = Processes(log_dir=workdir)
    redis = DurableRedis(directory=workdir)
    recoveries: list[float] = []
    with terminate_on_sigterm():
        try:
            redis.start()
            upstream = start_upstream(procs, workdir)
            write_api(workdir / "apps", upstream, keyed=True)
            config = workdir / "gateway.toml"
            config.write_text(
                f'secret = "{SECRET}"\n[storage]\ntype = "redis"\nhost = "{LOOPBACK}"\n'
                f"port = {redis.port}\nsession_cache_ttl = 0.0\n"
            )
            gateway, port = start_gateway(
                procs,
                "gateway",
                workdir / "apps",
                source=args.src,
                config=config,
                probe="/hello",
            )
            key = create_key(port)
            first_ok = trio.Event()
            want_ok = False

            def on_answer(status: int) -> None:
                if want_ok and status == 200:
                    first_ok.set()

            load = KeepAliveLoad(
                (LOOPBACK, port),
                "/api/",
                connections=args.connections,
                headers=f"Authorization: {key}\r\n",
            )
            load.on_answer = on_answer

            async def drive() -> None:
                nonlocal want_ok, first_ok
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(load.run)
                    await load.wait_for_answers(500)
                    for n in range(1, args.rounds + 1):
                        lines_before = len(
                            gateway.log_path.read_text(errors="replace").splitlines()
                        )
                        answers_before = dict(load.statuses)
                        redis.stop()
                        await trio.sleep(args.outage)  # the outage itself, not a synchronisation
                        restarted = DurableRedis(port=redis.port, directory=workdir)
                        await trio.to_thread.run_sync(restarted.start)
                        while not await trio.to_thread.run_sync(accepts, redis.port):
                            pass
                        up_at = time.perf_counter()
                        first_ok = trio.Event()
                        want_ok = True
                        with trio.fail_after(30):
                            await first_ok.wait()
                        back = time.perf_counter() - up_at
                        want_ok = False
                        redis.process = restarted.process
                        recoveries.append(back)
                        lines = len(gateway.log_path.read_text(errors="replace").splitlines())
                        print(
                            json.dumps(
                                {
                                    "round": n,
                                    "back_after_ms": round(back * 1000, 1),
                                    "answers_503": load.statuses[503] - answers_before.get(503, 0),
                                    "stderr_lines": lines - lines_before,
                                }
                            ),
                            flush=True,
                        )
                    nursery.cancel_scope.cancel()

            trio.run(drive)
        finally:
            procs.stop_all()
            redis.stop()
    print(
        f"keyed traffic back after Redis: median {statistics.median(recoveries) * 1000:.0f} ms, "
        f"max {max(recoveries) * 1000:.0f} ms over {len(recoveries)} rounds (logs in {workdir})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
