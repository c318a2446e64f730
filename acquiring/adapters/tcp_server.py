"""The host's ISO 8583 endpoint: an asyncio TCP server for many terminal connections
(host_protocol.md §1), in front of ``acquiring.service.HostService``.

Per connection: a ``FrameReader``; frames are answered one at a time, in order (a pipelining
terminal's later frames wait in the reader's buffer and the socket); the response TPDU swaps
destination and source; the header keeps the request's status nibble and carries processing
requirement 3 ("sign on again") when the service asks for it. A frame that cannot be framed
(length over 2,048, bad TPDU or header), a frame whose MTI is not one of our requests, or a
half-received frame still incomplete after ``read_timeout_s`` closes that connection only.

The message codec runs on the event loop (it is cheap and never blocks); the database work
runs on ``workers`` writer threads with group commit (``CommitLoop``, ADR 0004): the requests
of many connections share one unit of work, a savepoint each, and one commit; no response
leaves before its group's commit returned.

Shutdown (SIGTERM, or ``close()``): stop accepting, close idle connections, let every
connection finish the request it is answering (its response is committed and sent), then stop
the writers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from acquiring.counters import LiveCounters
from acquiring.service import HostService, Reply, Request, system_error
from paycore.errors import DecodeError, EncodeError
from paycore.iso8583.frame import (
    HEADER_BYTES,
    LENGTH_PREFIX_BYTES,
    PROCESSING_NONE,
    PROCESSING_SIGN_ON_AGAIN,
    TPDU_BYTES,
    Frame,
    FrameReader,
    Header,
    encode_frame,
)

log = logging.getLogger(__name__)

READ_CHUNK_BYTES: Final = 4_096
SHUTDOWN_GRACE_S: Final = 15.0
ACCEPT_SETTLE_S: Final = 0.05
FRAME_OVERHEAD_BYTES: Final = LENGTH_PREFIX_BYTES + TPDU_BYTES + HEADER_BYTES


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Limits of the endpoint (style.md: a limit on everything)."""

    #: A frame begun but not complete after this long closes the connection (§1).
    read_timeout_s: float = 10.0
    #: A connection with nothing pending for this long is closed (terminals send echo tests);
    #: None keeps idle connections open.
    idle_timeout_s: float | None = 900.0
    #: Connections beyond this are accepted and closed at once.
    connections_max: int = 2_048
    #: Writer threads, each committing one group (one database transaction) at a time.
    workers: int = 8
    #: Let several host processes listen on the same port (SO_REUSEPORT).
    reuse_port: bool = False
    #: Group commit (ADR 0004): at most this many requests in one unit of work (1: a unit of
    #: work per request, as without group commit).
    group_max: int = 64
    #: A writer that found fewer than ``group_max`` requests waiting waits this long for more
    #: before it starts the group (0: it takes what is there; the requests that arrive while a
    #: group commits form the next one).
    group_wait_ms: float = 0.0
    #: Requests decoded and waiting for a writer, over all connections; beyond this a
    #: connection's next request waits on the event loop (back-pressure) before it is queued.
    queue_max: int = 1_024

    def __post_init__(self) -> None:
        if not 0 < self.read_timeout_s <= 600:
            raise ValueError("read_timeout_s must be in (0, 600]")
        if self.idle_timeout_s is not None and not 0 < self.idle_timeout_s <= 86_400:
            raise ValueError("idle_timeout_s must be in (0, 86400] or None")
        if not 1 <= self.connections_max <= 100_000:
            raise ValueError("connections_max must be 1..100000")
        if not 1 <= self.workers <= 256:
            raise ValueError("workers must be 1..256")
        if not 1 <= self.group_max <= 1_024:
            raise ValueError("group_max must be 1..1024")
        if not 0 <= self.group_wait_ms <= 1_000:
            raise ValueError("group_wait_ms must be 0..1000")
        if not 1 <= self.queue_max <= 100_000:
            raise ValueError("queue_max must be 1..100000")


class _Pending:
    __slots__ = ("future", "request")

    def __init__(self, request: Request, future: asyncio.Future[Reply]) -> None:
        self.request = request
        self.future = future


def _resolve(done: list[tuple[_Pending, Reply]]) -> None:
    for pending, reply in done:
        if not pending.future.done():  # cancelled at shutdown: the reply is stored anyway
            pending.future.set_result(reply)


class CommitLoop:
    """Group commit (ADR 0004). The event loop queues decoded requests (``answer``); each of
    ``limits.workers`` writer threads takes up to ``group_max`` of them (waiting up to
    ``group_wait_ms`` for more), answers them in one unit of work
    (``HostService.answer_group``: a savepoint each, one commit) and only then hands the
    replies back to the event loop. At most ``queue_max`` requests wait at once."""

    def __init__(self, service: HostService, limits: ServerLimits) -> None:
        self._service = service
        self._group_max = limits.group_max
        self._wait_s = limits.group_wait_ms / 1000.0
        self._slots = asyncio.Semaphore(limits.queue_max)
        self._queue: deque[_Pending] = deque()
        self._ready = threading.Condition()
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads = [
            threading.Thread(target=self._run, name=f"host-writer-{n}", daemon=True)
            for n in range(limits.workers)
        ]
        self.groups = 0  # groups committed, and the requests in them (the bench reads these)
        self.grouped = 0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        for thread in self._threads:
            thread.start()

    async def answer(self, request: Request) -> Reply:
        async with self._slots:
            future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
            with self._ready:
                self._queue.append(_Pending(request, future))
                self._ready.notify()
            return await future

    def stop(self) -> None:
        """Answer what is queued, then end the writers (blocks: call it off the loop)."""
        with self._ready:
            self._stopping = True
            self._ready.notify_all()
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        for thread in self._threads:
            if thread.is_alive():
                thread.join(max(deadline - time.monotonic(), 0.1))

    def _take(self) -> list[_Pending] | None:
        with self._ready:
            while not self._queue:
                if self._stopping:
                    return None
                self._ready.wait()
            if self._wait_s > 0 and len(self._queue) < self._group_max:
                deadline = time.monotonic() + self._wait_s
                while len(self._queue) < self._group_max and not self._stopping:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._ready.wait(left)
            count = min(len(self._queue), self._group_max)
            group = [self._queue.popleft() for _ in range(count)]
            if self._queue:
                self._ready.notify()  # another writer may take the rest
            return group

    def _run(self) -> None:
        while (group := self._take()) is not None:
            requests = [p.request for p in group]
            try:
                replies = self._service.answer_group(requests)
            except Exception:  # a bug: never leave a terminal without its answer
                log.exception("group of %d: internal error: 96", len(requests))
                replies = [system_error(r) for r in requests]
            self.groups += 1
            self.grouped += len(group)
            assert self._loop is not None
            try:
                self._loop.call_soon_threadsafe(_resolve, list(zip(group, replies, strict=True)))
            except RuntimeError:  # the loop is closed: nobody waits for these any more
                log.warning("event loop closed: %d replies dropped (stored)", len(group))


class _Framer:
    """``FrameReader`` for one connection, keeping the frames that completed before a broken
    one in the same read: those are answered (in order) before the connection closes."""

    __slots__ = ("_consumed", "_reader", "_tail")

    def __init__(self) -> None:
        self._reader = FrameReader()
        self._tail = b""  # the bytes the reader holds (less than one frame), then this read's
        self._consumed = 0  # stream offset of _tail[0]

    @property
    def pending(self) -> bool:
        return self._reader.pending

    def feed(self, data: bytes) -> tuple[list[Frame], DecodeError | None]:
        tail = self._tail + data
        try:
            frames = self._reader.feed(data)
        except DecodeError as error:
            good = tail[: max(error.offset - self._consumed, 0)]
            try:
                return FrameReader().feed(good), error
            except DecodeError:  # pragma: no cover - the bytes before the error are good
                return [], error
        framed = sum(FRAME_OVERHEAD_BYTES + len(frame.message) for frame in frames)
        self._consumed += framed
        self._tail = tail[framed:]
        assert len(self._tail) == self._reader.buffered
        return frames, None


class _Connection:
    __slots__ = ("busy", "peer", "task")

    def __init__(self, task: asyncio.Task[None] | None, peer: str) -> None:
        self.task = task
        self.peer = peer
        self.busy = False  # answering a request: let it finish at shutdown


class IsoServer:
    """The asyncio server. ``start`` binds; ``close`` shuts down gracefully."""

    def __init__(
        self,
        service: HostService,
        limits: ServerLimits | None = None,
        counters: LiveCounters | None = None,
    ) -> None:
        self.service = service
        self.limits = limits or ServerLimits()
        self.live = counters or LiveCounters()  # what the admin API's /v1/counters shows
        self.commits = CommitLoop(service, self.limits)
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._closing = False
        self.counts: Counter[str] = Counter()  # "connections", "frames", "code:00", ...

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.sockets, "not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(
            self._accept, host, port, reuse_port=self.limits.reuse_port or None, backlog=1024
        )
        self.commits.start(asyncio.get_running_loop())

    async def close(self, grace_s: float = SHUTDOWN_GRACE_S) -> None:
        """Stop accepting; close idle connections; wait for busy ones to send their response."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        # Connections the kernel accepted just before: let them reach _accept (which closes
        # them, seeing _closing) rather than be dropped with the loop.
        await asyncio.sleep(ACCEPT_SETTLE_S)
        for conn in list(self._connections):
            if not conn.busy and conn.task is not None:
                conn.task.cancel()
        tasks = [c.task for c in self._connections if c.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=grace_s)
        await asyncio.get_running_loop().run_in_executor(None, self.commits.stop)
        log.info(
            "group commit: %d requests in %d groups", self.commits.grouped, self.commits.groups
        )

    # --- one connection ---------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = str(writer.get_extra_info("peername"))
        if self._closing or len(self._connections) >= self.limits.connections_max:
            self.counts["refused_connections"] += 1
            writer.close()
            return
        conn = _Connection(asyncio.current_task(), peer)
        self._connections.add(conn)
        self.counts["connections"] += 1
        try:
            await self._serve(conn, reader, writer)
        except asyncio.CancelledError:
            pass  # shutdown of an idle connection
        except OSError as exc:
            log.debug("connection %s: %s", peer, exc)
        except Exception:  # a bug: this connection ends, the server goes on
            log.exception("connection %s: internal error: closing it", peer)
            self.counts["internal_errors"] += 1
        finally:
            self._connections.discard(conn)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), timeout=1.0)

    async def _serve(
        self, conn: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        framer = _Framer()
        queue: deque[Frame] = deque()
        broken: DecodeError | None = None
        while not self._closing:
            if not queue:
                if broken is not None:
                    log.info("connection %s: %s: closing it", conn.peer, broken)
                    self.counts["bad_frames"] += 1
                    return
                timeout = self.limits.read_timeout_s if framer.pending else None
                if timeout is None:
                    timeout = self.limits.idle_timeout_s
                try:
                    data = await asyncio.wait_for(reader.read(READ_CHUNK_BYTES), timeout)
                except TimeoutError:
                    what = "half-received frame" if framer.pending else "idle connection"
                    log.info("connection %s: %s timed out: closing it", conn.peer, what)
                    self.counts["timeouts"] += 1
                    return
                if not data:
                    return
                frames, broken = framer.feed(data)
                queue.extend(frames)
                continue
            frame = queue.popleft()
            self.counts["frames"] += 1
            conn.busy = True
            try:
                started_s = time.perf_counter()
                with self.live.in_flight():
                    reply = await self._reply(frame.message)
                self.live.record(
                    frame.message[:2].hex(),
                    reply.code or "--",
                    (time.perf_counter() - started_s) * 1000.0,
                )
                if reply.message is None:
                    log.info("connection %s: not a request of this profile: closing", conn.peer)
                    self.counts["closed_unanswerable"] += 1
                    return
                self.counts[f"code:{reply.code}"] += 1
                processing = PROCESSING_SIGN_ON_AGAIN if reply.sign_on_again else PROCESSING_NONE
                header = Header(status=frame.header.status, processing=processing)
                try:
                    out = encode_frame(frame.tpdu.swapped(), header, reply.message)
                except EncodeError:  # pragma: no cover - responses are far below the limit
                    log.exception("connection %s: response does not fit a frame", conn.peer)
                    return
                writer.write(out)
                try:  # a terminal that does not read its responses loses its connection
                    await asyncio.wait_for(writer.drain(), self.limits.read_timeout_s)
                except TimeoutError:
                    log.info("connection %s: not reading its responses: closing it", conn.peer)
                    self.counts["timeouts"] += 1
                    return
            finally:
                conn.busy = False

    async def _reply(self, raw: bytes) -> Reply:
        decoded = self.service.decode(raw)
        if isinstance(decoded, Reply):
            return decoded
        return await self.commits.answer(decoded)


# --- running it ------------------------------------------------------------------------------


def serve_forever(
    service: HostService,
    host: str,
    port: int,
    limits: ServerLimits | None = None,
    on_listening: Callable[[str, int], None] | None = None,
    counters: LiveCounters | None = None,
) -> None:
    """Run in the main thread until SIGTERM or SIGINT, then shut down gracefully."""

    async def main() -> None:
        server = IsoServer(service, limits, counters)
        await server.start(host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        if on_listening is not None:
            on_listening(host, server.port)
        await stop.wait()
        log.info("shutting down: finishing the requests in flight")
        await server.close()

    asyncio.run(main())


class ServerThread:
    """An ``IsoServer`` on its own event loop in a background thread: for tests, the demo and
    benches. ``with ServerThread(service) as running: running.port``."""

    def __init__(
        self,
        service: HostService,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: ServerLimits | None = None,
    ) -> None:
        self.server = IsoServer(service, limits)
        self._host, self._port = host, port
        self._thread = threading.Thread(target=self._run, name="iso-server", daemon=True)
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    @property
    def port(self) -> int:
        return self.server.port

    def _run(self) -> None:
        asyncio.run(self._main())  # cancels and finishes whatever is left at the end

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.server.start(self._host, self._port)
        except BaseException as exc:
            self._error = exc
            self._started.set()
            return
        self._started.set()
        await self._stop.wait()
        await self.server.close()

    def start(self) -> ServerThread:
        self._thread.start()
        self._started.wait(timeout=30)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=60)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
