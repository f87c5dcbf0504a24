"""A real grpcio ``coprocess.Dispatcher`` for the gRPC driver's tests (grpcio is test-only).

Used in-process (``start_server``, a thread-pool server whose handler is a plain function) and as
a subprocess (``python grpc_dispatcher_server.py PORT``: an echo server that prints ``ready`` and
serves until killed), for the kill-and-restart tests.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from plugin_drivers.coprocess.proto import coprocess_object_pb2 as pb

Handler = Callable[[pb.Object, Any], pb.Object]
BIG = 64 * 1024 * 1024


def echo(obj: pb.Object, context: Any) -> pb.Object:
    return obj


def start_server(
    address: str,
    dispatch: Handler = echo,
    workers: int = 16,
    *,
    credentials: Any = None,
    on_event: Callable[[pb.Event], None] | None = None,
) -> tuple[Any, int]:
    """Start a Dispatcher on ``address`` (``127.0.0.1:0`` or ``unix:...``): (server, port).

    ``credentials`` (``grpc.ssl_server_credentials``) serves TLS; ``on_event`` sees every
    ``DispatchEvent``.
    """

    def dispatch_event(event: pb.Event, context: Any) -> pb.EventReply:
        if on_event is not None:
            on_event(event)
        return pb.EventReply()

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        options=[
            ("grpc.max_receive_message_length", BIG),
            ("grpc.max_send_message_length", BIG),
            ("grpc.so_reuseport", 1),
        ],
    )
    handlers = {
        "Dispatch": grpc.unary_unary_rpc_method_handler(
            dispatch,
            request_deserializer=pb.Object.FromString,
            response_serializer=pb.Object.SerializeToString,
        ),
        "DispatchEvent": grpc.unary_unary_rpc_method_handler(
            dispatch_event,
            request_deserializer=pb.Event.FromString,
            response_serializer=pb.EventReply.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("coprocess.Dispatcher", handlers),)
    )
    if credentials is not None:
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    server.start()
    return server, port


if __name__ == "__main__":
    srv, bound = start_server(f"127.0.0.1:{sys.argv[1]}")
    print("ready", bound, flush=True)
    srv.wait_for_termination()
