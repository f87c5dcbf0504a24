"""Byte streams over raw non-blocking sockets, the cheapest way Trio can move bytes.

Why not ``trio.SocketStream``: each of its calls pays two checkpoints and a conflict detector; on
this machine kind a server reading the raw socket answered ~45% more requests per second
(docs/decisions.md). :class:`RawSocketStream` tries the system call first and only waits for
readiness when it would block; every wait is a Trio checkpoint, so cancellation and deadlines work
as usual. TLS connections use ``trio.SSLStream`` over ``trio.SocketStream`` instead; both fit
:class:`ByteStream`.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
from collections.abc import Callable
from typing import Protocol

import attrs
import trio

RECEIVE_SIZE = 65536
#: A :class:`RawSocketStream` whose system calls keep succeeding at once never waits, so never
#: yields to Trio: a relay loop over it (a large body already in the socket buffers, a fast
#: upstream) would hold the event loop and ignore cancellation until the body ends. After this
#: many calls in a row that did not wait, the next one passes through a checkpoint first (before
#: its system call, so a cancellation loses no data). Measured cost: docs/reliability.md.
FAIR_STREAK = 16
#: Bound on the TLS close_notify exchange when a TLS stream is closed (it is a send, and a peer
#: that reads nothing would hold it forever; callers often run it shielded).
TLS_CLOSE_TIMEOUT = 1.0


class ByteStream(Protocol):
    async def receive_some(self, max_bytes: int | None = None) -> bytes: ...

    async def send_all(self, data: bytes | bytearray | memoryview) -> None: ...

    async def aclose(self) -> None: ...


#: Hang-ups handled per wake-up of the watcher: hundreds of clients leaving at once are spread
#: over several scheduler batches instead of stalling the loop in one.
HANGUP_BATCH = 64


class HangupWatcher:
    """Notices clients hanging up, whatever their connections are doing, for a whole server.

    One epoll set, shared by every connection of a listener, watches the client sockets for
    EPOLLRDHUP/EPOLLHUP/EPOLLERR only, so data a client sends (the next pipelined request, a body
    being read) never wakes it, and waiting on it never competes with reading the socket. Trio's
    own I/O manager waits for the set to become readable (one registration, one descriptor for
    the server: a set per connection cost a second descriptor per connection, halving how many
    connections fit under a file limit). One task (:meth:`run`) turns hang-ups into the callbacks
    given to :meth:`watch`, which cancel the request in progress; see docs/decisions.md for why
    this beats a task per request.
    """

    __slots__ = ("_epoll", "_watched")

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._watched: dict[int, Callable[[], None]] = {}

    def watch(self, sock: socket.socket, on_gone: Callable[[], None]) -> None:
        """Call ``on_gone`` (once, from :meth:`run`) when the peer of ``sock`` hangs up."""
        fd = sock.fileno()
        try:
            self._epoll.register(fd, select.EPOLLRDHUP)
        except FileExistsError:
            # A descriptor number reused before its old registration went away.
            self._epoll.modify(fd, select.EPOLLRDHUP)
        self._watched[fd] = on_gone

    def unwatch(self, sock: socket.socket) -> None:
        """Stop watching ``sock`` (before closing it, so its number can be reused safely)."""
        fd = sock.fileno()
        if self._watched.pop(fd, None) is not None and not self._epoll.closed:
            with contextlib.suppress(OSError):
                self._epoll.unregister(fd)

    async def run(self) -> None:
        """Deliver hang-ups until cancelled; closes the epoll set on the way out."""
        epoll = self._epoll
        try:
            while True:
                await trio.lowlevel.wait_readable(epoll)
                for fd, _ in epoll.poll(0, HANGUP_BATCH):
                    on_gone = self._watched.pop(fd, None)
                    with contextlib.suppress(OSError):
                        epoll.unregister(fd)
                    if on_gone is not None:
                        on_gone()
        finally:
            self._watched.clear()
            trio.lowlevel.notify_closing(epoll)
            epoll.close()


class RawSocketStream:
    """A Trio-friendly byte stream over a non-blocking stdlib socket we own."""

    __slots__ = ("_closed", "_streak", "sock")

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self._closed = False
        #: Calls in a row that completed without waiting (see FAIR_STREAK).
        self._streak = 0

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Bytes from the peer; ``b""`` at end of stream. A reset raises BrokenResourceError."""
        if self._streak >= FAIR_STREAK:
            self._streak = 0
            await trio.lowlevel.checkpoint()
        sock = self.sock
        while True:
            try:
                data = sock.recv(max_bytes or RECEIVE_SIZE)
                if not data:
                    # End of stream is sticky: a caller looping on it must still be cancellable.
                    await trio.lowlevel.checkpoint_if_cancelled()
                self._streak += 1
                return data
            except BlockingIOError:
                self._streak = 0
                await trio.lowlevel.wait_readable(sock)
            except OSError as exc:
                if self._closed:
                    raise trio.ClosedResourceError from None
                raise trio.BrokenResourceError(str(exc)) from exc

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._streak >= FAIR_STREAK:
            self._streak = 0
            await trio.lowlevel.checkpoint()
        self._streak += 1
        sock = self.sock
        view = memoryview(data)
        while view:
            try:
                sent = sock.send(view)
            except BlockingIOError:
                self._streak = 0
                await trio.lowlevel.wait_writable(sock)
                continue
            except OSError as exc:
                if self._closed:
                    raise trio.ClosedResourceError from None
                raise trio.BrokenResourceError(str(exc)) from exc
            view = view[sent:]

    async def count_step(self) -> None:
        """Count a step of a loop over this stream that needed no system call (a pipelined
        request already buffered) toward the same streak, checkpointing as a call would."""
        self._streak += 1
        if self._streak >= FAIR_STREAK:
            self._streak = 0
            await trio.lowlevel.checkpoint()

    def send_nowait(self, data: bytes | bytearray | memoryview) -> int:
        """Send what the socket takes right now, without waiting; returns the bytes sent
        (0 when its buffer is full). Errors as in :meth:`send_all`."""
        try:
            return self.sock.send(data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            if self._closed:
                raise trio.ClosedResourceError from None
            raise trio.BrokenResourceError(str(exc)) from exc

    async def wait_readable(self) -> None:
        await trio.lowlevel.wait_readable(self.sock)

    def peer_closed(self) -> bool:
        """Non-blocking check, after readability: has the peer closed (or reset) the connection?"""
        try:
            data = self.sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return False
        except OSError:
            return True
        return not data

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            trio.lowlevel.notify_closing(self.sock)
            self.sock.close()

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()


@attrs.define(eq=False, slots=True)
class TlsByteStream:
    """``trio.SSLStream`` seen as a :class:`ByteStream` (it may hand back bytearrays)."""

    tls: trio.SSLStream[trio.SocketStream]

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return bytes(await self.tls.receive_some(max_bytes or RECEIVE_SIZE))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.tls.send_all(data)

    def close(self) -> None:
        """Drop the connection without the TLS close_notify exchange (it is being discarded)."""
        self.tls.transport_stream.socket.close()

    async def aclose(self) -> None:
        # close_notify is a send: bounded, then the socket is closed without it (callers run
        # this shielded, where an unbounded wait would outlive every deadline).
        with trio.move_on_after(TLS_CLOSE_TIMEOUT) as scope:
            await self.tls.aclose()
        if scope.cancelled_caught:
            self.close()


async def open_raw_tcp_stream(host: str, port: int) -> RawSocketStream:
    """Connect to ``host:port`` (names resolved by Trio's resolver). Bound by the caller's scope."""
    infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(errno.EHOSTUNREACH, f"no address for {host}")
    last_exc: OSError | None = None
    for family, type_, proto, _, addr in infos:
        sock = socket.socket(family, type_, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = sock.connect_ex(addr)
            if err not in (0, errno.EINPROGRESS):
                raise OSError(err, errno.errorcode.get(err, "connect failed"))
            if err:
                await trio.lowlevel.wait_writable(sock)
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise OSError(err, errno.errorcode.get(err, "connect failed"))
        except OSError as exc:
            sock.close()
            last_exc = exc
            continue
        except BaseException:
            sock.close()
            raise
        return RawSocketStream(sock)
    assert last_exc is not None
    raise last_exc
