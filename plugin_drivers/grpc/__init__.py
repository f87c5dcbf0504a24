"""The ``grpc`` plugin driver: Tyk's coprocess protocol over HTTP/2 from Trio."""

from __future__ import annotations
