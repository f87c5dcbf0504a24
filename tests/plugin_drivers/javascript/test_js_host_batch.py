"""``TykBatchRequest``'s host side against a real socket that never answers: bounded by the time
the call has left, a request that times out gives Tyk's empty unit, and bad batches are errors."""

from __future__ import annotations

import json
import socket
import time

import pytest
import trio

from plugin_drivers.javascript.host import MAX_BATCH_REQUESTS, GatewayJsHost, JsHostError


def host() -> GatewayJsHost:
    return GatewayJsHost(api_id="a", store=None, trio_token=trio.lowlevel.current_trio_token())


async def test_a_batch_is_bounded_by_the_time_the_call_has_left() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (backlog), never answers
        port = silent.getsockname()[1]
        batch = json.dumps(
            {"requests": [{"relative_url": f"http://127.0.0.1:{port}/slow/{i}"} for i in range(3)]}
        )
        gateway = host()
        started = time.monotonic()
        answer = await trio.to_thread.run_sync(
            lambda: gateway.batch_request(batch, timeout=0.5)
        )
        elapsed = time.monotonic() - started
    assert answer is not None
    assert json.loads(answer) == [{"relative_url": "", "code": 0, "headers": None, "body": ""}] * 3
    assert elapsed < 3.0  # httpx's own default would wait 5 s


@pytest.mark.parametrize(
    "batch",
    [
        "not json",
        "[]",
        '{"requests": {}}',
        '{"requests": [{"relative_url": 5}]}',
        '{"suppress_parallel_execution": "yes"}',
        json.dumps({"requests": [{"relative_url": "http://x/"}] * (MAX_BATCH_REQUESTS + 1)}),
    ],
)
async def test_a_batch_that_is_not_tyks_shape_is_an_error(batch: str) -> None:
    with pytest.raises(JsHostError):
        host().batch_request(batch, timeout=1.0)
