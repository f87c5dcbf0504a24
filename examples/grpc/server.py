"""A Tyk gRPC plugin server (``coprocess.Dispatcher``) for the example plugins, on grpcio.

    python examples/grpc/server.py --port 5555

serves ``dispatcher.dispatch`` on 127.0.0.1 and prints ``ready <port>`` once it listens (``--port
0`` picks a free port: tests read it from that line). Point the gateway at it with
``coprocess_options.coprocess_grpc_server = "tcp://127.0.0.1:5555"`` (tyk.conf) or
``[coprocess] grpc_server`` (gateway.toml), and load the definitions in ``apps/``. grpcio is not
a dependency of trio-gateway: ``pip install grpcio``.
"""

from __future__ import annotations

import argparse
from concurrent import futures
from typing import Any

import grpc
from dispatcher import dispatch

from plugin_drivers.coprocess.proto import coprocess_object_pb2 as pb


def handle_dispatch(obj: pb.Object, context: Any) -> pb.Object:
    return dispatch(obj)


def handle_event(event: pb.Event, context: Any) -> pb.EventReply:
    return pb.EventReply()  # these plugins handle no events


def start_server(address: str, workers: int = 8) -> tuple[grpc.Server, int]:
    """Serve the Dispatcher on ``address`` (``host:port``); returns the server and its port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    methods = {
        "Dispatch": grpc.unary_unary_rpc_method_handler(
            handle_dispatch,
            request_deserializer=pb.Object.FromString,
            response_serializer=pb.Object.SerializeToString,
        ),
        "DispatchEvent": grpc.unary_unary_rpc_method_handler(
            handle_event,
            request_deserializer=pb.Event.FromString,
            response_serializer=pb.EventReply.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("coprocess.Dispatcher", methods),)
    )
    port = server.add_insecure_port(address)
    server.start()
    return server, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5555, help="0: a free port")
    args = parser.parse_args()
    server, port = start_server(f"{args.host}:{args.port}")
    print("ready", port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
