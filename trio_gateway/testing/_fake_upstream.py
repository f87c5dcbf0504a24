""":class:`FakeUpstream`: the scriptable upstream behind the ``gateway`` fixture."""

from __future__ import annotations

import inspect
from collections import deque
from typing import TYPE_CHECKING, final

from ._model import SeenRequest, UpstreamReply, echo_upstream

if TYPE_CHECKING:
    from ._recording import UpstreamScript


@final
class FakeUpstream:
    """An upstream a test scripts and reads back (pass it as ``open_harness(upstream=...)``).

    Replies queued with :meth:`reply` answer the next requests in order; after them
    :attr:`script` answers (default: :func:`echo_upstream`, a JSON echo). :attr:`seen` lists
    every request it received, first to last.

    .. versionadded:: 0.1
    """

    def __init__(self, script: UpstreamScript = echo_upstream) -> None:
        self.script: UpstreamScript = script
        self.seen: list[SeenRequest] = []
        self._queued: deque[UpstreamReply] = deque()

    def reply(self, *replies: UpstreamReply) -> None:
        """Answer the next ``len(replies)`` requests with these, in order."""
        self._queued.extend(replies)

    async def __call__(self, request: SeenRequest) -> UpstreamReply:
        self.seen.append(request)
        if self._queued:
            return self._queued.popleft()
        answer = self.script(request)
        if inspect.isawaitable(answer):
            return await answer
        return answer
