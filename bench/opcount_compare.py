"""Compare two bench/opcount_keyless.sh results, per function (opcodes per request).

    python3 bench/opcount_compare.py OLD.txt NEW.txt REQUESTS [--top 40]

Functions are matched by name and file (line numbers and checkout paths dropped), so an old
tree and a new one compare even when code moved within a file.
"""

from __future__ import annotations

import argparse
import re


def load(path: str, requests: int) -> dict[str, tuple[float, float]]:
    totals: dict[str, tuple[float, float]] = {}
    for line in open(path):
        opcodes, calls, name = line.rstrip("\n").split("\t")
        key = re.sub(r":\d+\)$", ")", name)
        key = re.sub(r"\(.*?/(trio_gateway|plugin_drivers)/", r"(\1/", key)
        seen = totals.get(key, (0.0, 0.0))
        totals[key] = (seen[0] + int(opcodes) / requests, seen[1] + int(calls) / requests)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("requests", type=int)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    old, new = load(args.old, args.requests), load(args.new, args.requests)
    print(f"opcodes per request: old {sum(v[0] for v in old.values()):.0f}, "
          f"new {sum(v[0] for v in new.values()):.0f}")
    print(f"{'old':>7} {'new':>7} {'diff':>7}  calls old/new  function")
    def change(key: str) -> float:
        return abs(new.get(key, (0.0, 0.0))[0] - old.get(key, (0.0, 0.0))[0])

    keys = sorted(set(old) | set(new), key=change, reverse=True)
    for key in keys[: args.top]:
        (o, oc), (n, nc) = old.get(key, (0.0, 0.0)), new.get(key, (0.0, 0.0))
        print(f"{o:7.1f} {n:7.1f} {n - o:+7.1f}  {oc:5.2f} {nc:5.2f}  {key[:100]}")


if __name__ == "__main__":
    main()
