"""A small Redis client on Trio: RESP over Trio sockets, replies parsed by ``hiredis``.

Chosen over coredis by measurement (see docs/decisions-store.md and bench/bench_store.py).
"""
