"""What the fairness checkpoint of ``RawSocketStream`` costs (``_net.FAIR_STREAK``).

A raw stream checkpoints only when a call would block; after ``FAIR_STREAK`` calls in a row that
did not, the next one passes through ``trio.lowlevel.checkpoint()`` first. This measures the
worst case -- every call finds data already there (or room to send), so the streak never
resets -- as CPU time per call, with the checkpoint every 16 calls, every call, and never:

    .venv/bin/python bench/fair_streak.py [--calls 200000] [--rounds 7]

Each round runs the three settings interleaved; the medians are printed.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trio_gateway import _net
from trio_gateway._net import RawSocketStream

SIZE = 64


async def receive_loop(calls: int) -> float:
    ours, theirs = socket.socketpair()
    stream = RawSocketStream(ours)
    block = b"x" * (SIZE * 1000)
    try:
        started = time.process_time()
        done = 0
        while done < calls:
            theirs.sendall(block)  # outside the measured stream's calls, but inside the time
            for _ in range(1000):
                await stream.receive_some(SIZE)
            done += 1000
        return (time.process_time() - started) / calls
    finally:
        stream.close()
        theirs.close()


async def send_loop(calls: int) -> float:
    ours, theirs = socket.socketpair()
    stream = RawSocketStream(ours)
    data = b"x" * SIZE
    try:
        started = time.process_time()
        done = 0
        while done < calls:
            # Batches small enough for the socket buffer (the reader is this same task).
            for _ in range(100):
                await stream.send_all(data)
            theirs.recv(1 << 20)
            done += 100
        return (time.process_time() - started) / calls
    finally:
        stream.close()
        theirs.close()


async def main(calls: int, rounds: int) -> None:
    settings = {"every 16 calls (FAIR_STREAK=16)": 16, "every call": 0, "never": 1 << 62}
    results: dict[str, dict[str, list[float]]] = {
        name: {"receive": [], "send": []} for name in settings
    }
    for _ in range(rounds):
        for name, streak in settings.items():
            _net.FAIR_STREAK = streak
            results[name]["receive"].append(await receive_loop(calls))
            results[name]["send"].append(await send_loop(calls))
    print(f"{calls} calls of {SIZE} bytes, median of {rounds} rounds, CPU time per call:")
    print("| checkpoint | receive_some | send_all |")
    print("| --- | --- | --- |")
    for name, by_op in results.items():
        receive = statistics.median(by_op["receive"]) * 1e6
        send = statistics.median(by_op["send"]) * 1e6
        print(f"| {name} | {receive:.2f} µs | {send:.2f} µs |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    trio.run(main, args.calls, args.rounds)
