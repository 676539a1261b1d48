"""A live page that stops reading: a real TCP client opens /events with a tiny
receive buffer and never reads again, next to a normal page on the same monitor.
The stuck page must hold a bounded amount of Clara's memory, must not hold up
the normal page's updates, and must be cut off once its backlog is full."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time

import aiohttp
import pytest

from clara_core.monitor import Activity, Monitor

pytestmark = pytest.mark.skipif(
    not hasattr(socket, "TCP_INFO"), reason="reads the client's TCP state (Linux TCP_INFO)"
)

BACKLOG = 4
REFRESH_S = 0.1
#: A long channel name: an update (a delta: the turns of one refresh period, two
#: here) is then ~100 KB, so the stuck client's socket buffers fill in a second or
#: two instead of minutes.
CHANNEL = "#" + "x" * 50_000
#: TCP states (include/net/tcp_states.h) a socket can be in once the peer reset it.
_CLOSED = {7: "CLOSE", 8: "CLOSE_WAIT"}


def _tcp_state(sock: socket.socket) -> int:
    # struct tcp_info starts with the u8 tcpi_state.
    return struct.unpack("B", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1))[0]


async def _stuck_page(port: int) -> socket.socket:
    """Opens /events and then never reads: its receive window fills and stays full."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)  # before connect: sets the window
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return sock


async def test_a_page_that_stops_reading_is_cut_off_without_holding_up_the_others():
    monitor = Monitor(
        host="127.0.0.1",
        port=0,
        state=lambda: {"discord_connected": True},
        show_content=True,  # the markers below are user names, shown as given
        interval_s=0.2,
        refresh_s=REFRESH_S,
        page_backlog=BACKLOG,
    )
    await monitor.start()
    stuck: socket.socket | None = None
    sent: dict[str, float] = {}  # marker -> when it was recorded
    latencies: dict[str, float] = {}  # marker -> record to the normal page
    biggest = 0  # the largest update the normal page got, in bytes
    try:
        async with (
            aiohttp.ClientSession(read_bufsize=1 << 22) as http,
            http.get(f"http://127.0.0.1:{monitor.port}/events") as resp,
        ):

            async def read_normal_page() -> None:
                nonlocal biggest
                size = 0  # of the event being read, its framing included
                async for raw in resp.content:
                    size += len(raw)
                    if raw == b"\n":
                        biggest, size = max(biggest, size), 0
                    if not raw.startswith(b"data:"):
                        continue
                    now = time.monotonic()
                    update = json.loads(raw[5:])
                    # Rows: objects in the first event, arrays of "fields" in a delta.
                    user = update["fields"].index("user") if "fields" in update else "user"
                    for row in update["recent"]:
                        if row[user] in sent and row[user] not in latencies:
                            latencies[row[user]] = now - sent[row[user]]

            reader = asyncio.create_task(read_normal_page())
            await asyncio.sleep(0.3)  # the normal page's first event
            stuck = await _stuck_page(monitor.port)
            deadline = time.monotonic() + 30
            dropped_at = None
            most_waiting = 0
            i = 0
            # Turns keep coming until the stuck page is cut off, and a second more.
            while dropped_at is None or time.monotonic() < dropped_at + 1.0:
                assert time.monotonic() < deadline, (
                    f"the stuck page was not cut off within 30 s "
                    f"(waiting: {monitor.page_backlogs()}, TCP state {_tcp_state(stuck)})"
                )
                marker = f"m{i}"
                i += 1
                sent[marker] = time.monotonic()
                monitor.record(Activity(time.time(), CHANNEL, marker, "gpt-test", 1.0, True))
                await asyncio.sleep(REFRESH_S / 2)
                most_waiting = max([most_waiting, *monitor.page_backlogs()])
                if dropped_at is None and _tcp_state(stuck) in _CLOSED:
                    dropped_at = time.monotonic()
            await asyncio.sleep(1.0)  # the last markers' update
            reader.cancel()
        # Cut off: the server reset the connection (the client never read a byte
        # more), and the monitor feeds only the normal page now.
        assert len(monitor.page_backlogs()) == 1
        # Bounded: what it had queued never passed its backlog of updates.
        assert 0 < most_waiting <= BACKLOG * biggest, (most_waiting, biggest)
        # The normal page got every turn, each within a few refresh periods, while
        # the stuck page filled up and after it was cut off.
        missing = sorted(set(sent) - set(latencies), key=lambda m: int(m[1:]))
        assert not missing, f"the normal page never got {missing}"
        slowest = max(latencies.values())
        assert slowest < 1.0, f"a turn took {slowest:.2f}s to reach the normal page"
    finally:
        if stuck is not None:
            stuck.close()
        await monitor.stop()
