"""Tyk's coprocess ``Object`` ↔ the gateway's request, response and session: the one translation.

Every driver that speaks Tyk's coprocess message uses this package: the ``grpc`` driver sends it
over HTTP/2, the Tyk-style Python driver hands it to ``@Hook`` functions in-process. It depends
only on the driver SDK (:mod:`trio_gateway.drivers`) and protobuf, and does no I/O:

* :mod:`.wire`: building the ``Object`` for a hook call and applying a reply (Tyk's
  ``BuildObject`` / ``ObjectPostProcess``, custom auth, the response-hook merge, events);
* :mod:`.session`: ``SessionState`` ↔ ``Session``;
* :mod:`.object_encoder`: the same ``Object`` written straight to bytes (the gRPC hot path);
* :mod:`.proto`: the generated message classes (``scripts/gen-proto``).
"""

from __future__ import annotations
