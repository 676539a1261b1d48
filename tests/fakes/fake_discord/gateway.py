"""The gateway: Discord's websocket protocol, v10, JSON encoding.

A *connection* is one websocket; a *session* is what IDENTIFY creates and RESUME
re-attaches to.  Sessions outlive their connection: dispatches made while no
connection is attached are numbered and buffered, and a RESUME replays everything
after the client's last sequence number, then sends RESUMED.

Outgoing frames go through a per-connection queue drained by one writer task, so
:meth:`Gateway.dispatch` is synchronous, frames keep their order, and the zlib
stream is compressed in send order.

Close codes follow Discord: 4001 unknown opcode, 4002 decode error, 4003 not
authenticated, 4004 authentication failed, 4005 already authenticated, 4007
invalid resume sequence, 4008 rate limited, 4009 session timed out, 4010 invalid
shard, 4012 invalid API version, 4013 invalid intents, 4014 disallowed intents.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMessage, WSMsgType, web

from . import payloads
from .config import ALL_INTENTS, PRIVILEGED_INTENTS, FakeDiscordConfig, Intents
from .state import FakeState
from .voice_gateway import voice_state_payloads

log = logging.getLogger(__name__)

# Opcodes
DISPATCH = 0
HEARTBEAT = 1
IDENTIFY = 2
PRESENCE_UPDATE = 3
VOICE_STATE_UPDATE = 4
RESUME = 6
RECONNECT = 7
REQUEST_GUILD_MEMBERS = 8
INVALID_SESSION = 9
HELLO = 10
HEARTBEAT_ACK = 11
REQUEST_SOUNDBOARD_SOUNDS = 31

CLIENT_OPCODES = {
    HEARTBEAT,
    IDENTIFY,
    PRESENCE_UPDATE,
    VOICE_STATE_UPDATE,
    RESUME,
    REQUEST_GUILD_MEMBERS,
    REQUEST_SOUNDBOARD_SOUNDS,
}

# Close codes
CLOSE_UNKNOWN_OPCODE = 4001
CLOSE_DECODE_ERROR = 4002
CLOSE_NOT_AUTHENTICATED = 4003
CLOSE_AUTHENTICATION_FAILED = 4004
CLOSE_ALREADY_AUTHENTICATED = 4005
CLOSE_INVALID_SEQ = 4007
CLOSE_RATE_LIMITED = 4008
CLOSE_SESSION_TIMED_OUT = 4009
CLOSE_INVALID_SHARD = 4010
CLOSE_SHARDING_REQUIRED = 4011
CLOSE_INVALID_API_VERSION = 4012
CLOSE_INVALID_INTENTS = 4013
CLOSE_DISALLOWED_INTENTS = 4014

#: How long a server-initiated close waits for the client's close frame before
#: dropping the TCP stream (aiohttp's default wait is 10 s).
CLOSE_HANDSHAKE_TIMEOUT_S = 2.0

#: Closing with these ends the session: it cannot be resumed afterwards.
SESSION_ENDING_CLOSE_CODES = {
    1000,
    1001,
    CLOSE_AUTHENTICATION_FAILED,
    CLOSE_INVALID_SEQ,
    CLOSE_SESSION_TIMED_OUT,
    CLOSE_INVALID_SHARD,
    CLOSE_SHARDING_REQUIRED,
    CLOSE_INVALID_API_VERSION,
    CLOSE_INVALID_INTENTS,
    CLOSE_DISALLOWED_INTENTS,
}


@dataclass
class GatewayFrame:
    """A payload a client sent (``fake.gateway.received``)."""

    connection_id: int
    op: int
    data: Any
    at: float


def shard_for_guild(guild_id: int, shard_count: int) -> int:
    """The shard Discord routes a guild's events to: ``(guild_id >> 22) % shard_count``."""
    return (guild_id >> 22) % shard_count


class GatewaySession:
    """What IDENTIFY creates: intents, sequence numbers and the resume buffer."""

    def __init__(
        self,
        session_id: str,
        *,
        intents: int,
        shard: tuple[int, int] | None,
        buffer_size: int,
    ) -> None:
        self.id = session_id
        self.intents = intents
        self.shard = shard
        self.seq = 0
        self.buffer: deque[dict[str, Any]] = deque(maxlen=buffer_size)
        self.connection: GatewayConnection | None = None
        self.invalidated = False
        self.presence: dict[str, Any] | None = None

    def has_intent(self, intent: int) -> bool:
        return bool(self.intents & intent)

    def handles_guild(self, guild_id: int | None) -> bool:
        """Sharding: guild events go to shard ``(guild_id >> 22) % num_shards``, DMs to 0."""
        if self.shard is None:
            return True
        shard_id, num_shards = self.shard
        if guild_id is None:
            return shard_id == 0
        return shard_for_guild(guild_id, num_shards) == shard_id

    def push(self, event: str, data: dict[str, Any]) -> int:
        """Number, buffer and (if connected) send one dispatch; returns its sequence."""
        self.seq += 1
        frame = {"op": DISPATCH, "t": event, "s": self.seq, "d": data}
        self.buffer.append(frame)
        if self.connection is not None:
            self.connection.send(frame)
        return self.seq


@dataclass(frozen=True)
class _CloseRequest:
    """Queued after frames that must still go out before the close frame."""

    code: int
    reason: str


class GatewayConnection:
    """One websocket.  ``send`` is synchronous; the writer task does the I/O.

    Every close the server starts is carried out by the task that reads the
    socket (:meth:`receive`), never by another task: aiohttp's server, closed
    from a second task while the reader waits, drops the TCP stream right after
    its close frame.  The client's answer to that frame then fails, and aiohttp's
    client reports 1006 instead of the code, so discord.py reconnects where real
    Discord's 4014 or 4004 stops it.  Closing from the reader waits for the
    client's close frame first (RFC 6455 5.5.1).
    """

    def __init__(
        self,
        connection_id: int,
        ws: web.WebSocketResponse,
        request: web.Request,
        compression: str | None,
    ) -> None:
        self.id = connection_id
        self.ws = ws
        self.path = request.path
        self.query = dict(request.query)
        self.compression = compression
        self.session: GatewaySession | None = None
        self.opened_at = time.monotonic()
        self.closed_at: float | None = None
        #: The close code this connection ended with (ours or the client's).
        self.close_code: int | None = None
        self.closed_by_server = False
        self.heartbeats = 0
        self.last_heartbeat = time.monotonic()
        self._transport = request.transport
        self._compressor = zlib.compressobj() if compression == "zlib-stream" else None
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._recent_sends: deque[float] = deque()
        loop = asyncio.get_running_loop()
        #: (code, reason) of the close the server wants; :meth:`receive` does it.
        self._close_request: asyncio.Future[tuple[int, str]] = loop.create_future()
        self._finished = asyncio.Event()
        self._writer = asyncio.get_running_loop().create_task(
            self._write_loop(), name=f"fake-discord-gateway-writer-{connection_id}"
        )

    @property
    def open(self) -> bool:
        """Connected and not being closed by the server."""
        return self.closed_at is None and not self.closed_by_server

    def send(self, payload: dict[str, Any]) -> None:
        if self.open:
            self._queue.put_nowait(payload)

    def note_client_send(self, limit: int, window: float) -> bool:
        """Count a client payload; False once it exceeded ``limit`` per ``window``."""
        now = time.monotonic()
        self._recent_sends.append(now)
        while self._recent_sends and self._recent_sends[0] <= now - window:
            self._recent_sends.popleft()
        return len(self._recent_sends) <= limit

    async def _write_loop(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                if isinstance(item, _CloseRequest):
                    self._request_close(item.code, item.reason)
                    return
                text = json.dumps(item, separators=(",", ":"))
                if self._compressor is not None:
                    data = self._compressor.compress(text.encode())
                    data += self._compressor.flush(zlib.Z_SYNC_FLUSH)
                    await self.ws.send_bytes(data)
                else:
                    await self.ws.send_str(text)
            except (ConnectionError, RuntimeError) as exc:
                log.debug("gateway connection %s: send failed: %s", self.id, exc)
                return
            finally:
                self._queue.task_done()

    async def drain(self) -> None:
        """Wait until every queued frame was written (or the writer stopped)."""
        if self._writer.done():
            return
        join = asyncio.ensure_future(self._queue.join())
        try:
            await asyncio.wait({join, self._writer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            join.cancel()

    def close_after_queued(self, code: int, reason: str = "") -> None:
        """Close once the frames already queued are sent (e.g. after an error frame)."""
        self.closed_by_server = True
        if self._writer.done():
            self._request_close(code, reason)
        else:
            self._queue.put_nowait(_CloseRequest(code, reason))

    def close_soon(self, code: int, reason: str = "") -> None:
        """Close now, dropping frames not yet written (the session buffer keeps
        them); the reading task carries it out, see the class docstring."""
        self.closed_by_server = True
        self._writer.cancel()
        self._request_close(code, reason)

    async def close(self, code: int, reason: str = "") -> None:
        """:meth:`close_soon`, then wait until the connection is over."""
        self.close_soon(code, reason)
        await self._finished.wait()

    def _request_close(self, code: int, reason: str) -> None:
        if not self._close_request.done():
            self._close_request.set_result((code, reason))

    async def receive(self) -> WSMessage | None:
        """The client's next frame, or None once the server closed the socket
        (after the closing handshake, or :data:`CLOSE_HANDSHAKE_TIMEOUT_S`)."""
        if not self._close_request.done():
            frame = asyncio.ensure_future(self.ws.receive())
            try:
                await asyncio.wait(
                    {frame, self._close_request}, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                if not frame.done():
                    frame.cancel()
            try:
                return await frame  # a frame that arrived first is still handled
            except asyncio.CancelledError:
                if not self._close_request.done():
                    raise  # the handler itself was cancelled
        code, reason = self._close_request.result()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.close(code=code, message=reason.encode())
        return None

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (a network failure)."""
        self.closed_by_server = True
        self._writer.cancel()
        if self._transport is not None:
            self._transport.abort()

    async def finish(self) -> None:
        """Called by the reading task when the socket is gone: stop the writer."""
        if self.closed_at is None:
            self.closed_at = time.monotonic()
        if not self._writer.done():
            self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        self._finished.set()


class Gateway:
    def __init__(self, state: FakeState, config: FakeDiscordConfig) -> None:
        self.state = state
        self.config = config
        #: Set by the server once it knows its port.
        self.resume_gateway_url = ""
        self.sessions: dict[str, GatewaySession] = {}
        self.connections: list[GatewayConnection] = []
        self.received: list[GatewayFrame] = []
        self.identify_count = 0
        self.resume_count = 0
        self.heartbeat_count = 0
        self.invalid_session_count = 0
        #: While set, websocket upgrades are answered with this HTTP status instead
        #: (the gateway is down while REST still works); see :meth:`refuse`.
        self.refusing_status: int | None = None
        #: Upgrade requests answered with ``refusing_status``.
        self.refused_count = 0
        self._next_connection_id = 1
        self._watchdog: asyncio.Task[None] | None = None
        #: Op 4 VOICE_STATE_UPDATE from an identified session (the server answers it
        #: with VOICE_STATE_UPDATE and VOICE_SERVER_UPDATE, see ``server.py``).
        self.on_voice_state_update: Callable[[GatewaySession, dict[str, Any]], None] | None = None

    # ----------------------------------------------------------- connections

    @property
    def open_connections(self) -> list[GatewayConnection]:
        return [c for c in self.connections if c.open]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.refusing_status is not None:
            # Before the upgrade: the client's handshake fails, as when a load
            # balancer in front of a down gateway answers.
            self.refused_count += 1
            return web.Response(status=self.refusing_status, text="gateway unavailable")
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0, timeout=CLOSE_HANDSHAKE_TIMEOUT_S)
        await ws.prepare(request)
        compression = self._negotiate_compression(request.query.get("compress"))
        conn = GatewayConnection(self._next_connection_id, ws, request, compression)
        self._next_connection_id += 1
        self.connections.append(conn)
        self._ensure_watchdog()

        try:
            version = request.query.get("v")
            if version is not None and version != "10":
                conn.close_after_queued(CLOSE_INVALID_API_VERSION, "Invalid API version.")
            elif request.query.get("encoding", "json") != "json":
                conn.close_after_queued(CLOSE_DECODE_ERROR, "Only encoding=json is supported.")
            else:
                conn.send(
                    {
                        "op": HELLO,
                        "d": {
                            "heartbeat_interval": self.config.heartbeat_interval_ms,
                            "_trace": ['["fake-discord-gateway",{"micros":0}]'],
                        },
                        "s": None,
                        "t": None,
                    }
                )
            while (msg := await conn.receive()) is not None:
                if msg.type is WSMsgType.TEXT:
                    await self._on_text(conn, msg.data)
                elif msg.type is WSMsgType.BINARY:
                    await self._fail(conn, CLOSE_DECODE_ERROR, "Error while decoding payload.")
                else:
                    break
        except ConnectionError:
            pass
        finally:
            code = conn.close_code or ws.close_code
            conn.close_code = code
            self._detach(conn, end_session=code in SESSION_ENDING_CLOSE_CODES)
            await conn.finish()
        return ws

    def _negotiate_compression(self, requested: str | None) -> str | None:
        if self.config.gateway_compression == "none":
            return None
        # zstd-stream would need the third-party ``zstandard`` module; discord.py
        # accepts uncompressed text frames whatever it asked for, so fall back.
        return "zlib-stream" if requested == "zlib-stream" else None

    def _detach(self, conn: GatewayConnection, *, end_session: bool) -> None:
        session = conn.session
        if session is None:
            return
        if session.connection is conn:
            session.connection = None
        if end_session:
            session.invalidated = True

    async def _fail(self, conn: GatewayConnection, code: int, reason: str) -> None:
        conn.close_code = code
        self._detach(conn, end_session=code in SESSION_ENDING_CLOSE_CODES)
        conn.close_after_queued(code, reason)

    # --------------------------------------------------------------- receive

    async def _on_text(self, conn: GatewayConnection, text: str) -> None:
        if conn.closed_by_server:
            return
        try:
            frame = json.loads(text)
            op = frame["op"]
            data = frame.get("d")
        except (ValueError, TypeError, KeyError):
            await self._fail(conn, CLOSE_DECODE_ERROR, "Error while decoding payload.")
            return
        self.received.append(GatewayFrame(conn.id, op, data, time.monotonic()))
        if not conn.note_client_send(
            self.config.gateway_send_limit, self.config.gateway_send_window
        ):
            await self._fail(conn, CLOSE_RATE_LIMITED, "You are being rate limited.")
            return
        if op not in CLIENT_OPCODES:
            await self._fail(conn, CLOSE_UNKNOWN_OPCODE, "Unknown opcode.")
            return

        if op == HEARTBEAT:
            self.heartbeat_count += 1
            conn.heartbeats += 1
            conn.last_heartbeat = time.monotonic()
            conn.send({"op": HEARTBEAT_ACK, "d": None, "s": None, "t": None})
        elif op == IDENTIFY:
            await self._identify(conn, data or {})
        elif op == RESUME:
            await self._resume(conn, data or {})
        elif conn.session is None:
            await self._fail(conn, CLOSE_NOT_AUTHENTICATED, "Not authenticated.")
        elif op == PRESENCE_UPDATE:
            conn.session.presence = data
        elif op == REQUEST_GUILD_MEMBERS:
            self._request_members(conn.session, data or {})
        elif op == VOICE_STATE_UPDATE and self.on_voice_state_update is not None:
            self.on_voice_state_update(conn.session, data or {})
        # Soundboard requests are accepted and ignored.

    def _token_ok(self, token: Any) -> bool:
        if not isinstance(token, str):
            return False
        token = token.removeprefix("Bot ")
        return secrets.compare_digest(token, self.state.token)

    async def _identify(self, conn: GatewayConnection, data: dict[str, Any]) -> None:
        self.identify_count += 1
        if conn.session is not None:
            await self._fail(conn, CLOSE_ALREADY_AUTHENTICATED, "Already authenticated.")
            return
        if not self._token_ok(data.get("token")):
            await self._fail(conn, CLOSE_AUTHENTICATION_FAILED, "Authentication failed.")
            return
        intents = data.get("intents")
        if not isinstance(intents, int) or intents < 0 or intents & ~ALL_INTENTS:
            await self._fail(conn, CLOSE_INVALID_INTENTS, "Invalid intent(s).")
            return
        if intents & int(PRIVILEGED_INTENTS) & ~self.config.privileged_intents:
            await self._fail(conn, CLOSE_DISALLOWED_INTENTS, "Disallowed intent(s).")
            return
        shard = self._shard_of(data.get("shard"))
        if shard == "invalid":
            await self._fail(conn, CLOSE_INVALID_SHARD, "Invalid shard.")
            return
        required = self.config.shard_count
        if required is not None and shard is None:
            await self._fail(conn, CLOSE_SHARDING_REQUIRED, "Sharding required.")
            return
        if required is not None and shard is not None and shard[1] != required:
            await self._fail(conn, CLOSE_INVALID_SHARD, "Invalid shard.")
            return

        session = GatewaySession(
            secrets.token_hex(16),
            intents=intents,
            shard=shard,
            buffer_size=self.config.resume_buffer_size,
        )
        session.presence = data.get("presence")
        self.sessions[session.id] = session
        conn.session = session
        session.connection = conn

        guilds = [g for g in self.state.guilds.values() if session.handles_guild(g.id)]
        ready: dict[str, Any] = {
            "v": 10,
            "user_settings": {},
            "user": payloads.self_user_payload(self.state.bot),
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_gateway_url,
            "relationships": [],
            "private_channels": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["fake"],
            "application": {
                "id": str(self.state.application_id),
                "flags": self.config.application_flags,
            },
            "auth": {},
            "_trace": ['["fake-discord-gateway",{"micros":0}]'],
        }
        if shard is not None:
            ready["shard"] = list(shard)
        session.push("READY", ready)
        if session.has_intent(Intents.GUILDS):
            for guild in guilds:
                session.push("GUILD_CREATE", self.guild_create_payload(session, guild.id))

    @staticmethod
    def _shard_of(value: Any) -> tuple[int, int] | str | None:
        """IDENTIFY's ``shard``: None when absent, ``(id, count)``, or ``"invalid"``."""
        if value is None:
            return None
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            or not 0 <= value[0] < value[1]
        ):
            return "invalid"
        return (value[0], value[1])

    def guild_create_payload(self, session: GatewaySession, guild_id: int) -> dict[str, Any]:
        payload = payloads.guild_payload(
            self.state,
            self.state.guilds[guild_id],
            include_members=session.has_intent(Intents.GUILD_MEMBERS),
        )
        if session.has_intent(Intents.GUILD_VOICE_STATES):
            # Who is in which voice channel (GUILD_CREATE's voice states carry no guild_id).
            payload["voice_states"] = [
                {k: v for k, v in vs.items() if k != "guild_id"}
                for vs in voice_state_payloads(self.state, guild_id)
            ]
        return payload

    async def _resume(self, conn: GatewayConnection, data: dict[str, Any]) -> None:
        self.resume_count += 1
        if conn.session is not None:
            await self._fail(conn, CLOSE_ALREADY_AUTHENTICATED, "Already authenticated.")
            return
        if not self._token_ok(data.get("token")):
            await self._fail(conn, CLOSE_AUTHENTICATION_FAILED, "Authentication failed.")
            return
        session = self.sessions.get(str(data.get("session_id")))
        seq = data.get("seq") or 0
        if session is None or session.invalidated:
            self.invalid_session_count += 1
            conn.send({"op": INVALID_SESSION, "d": False, "s": None, "t": None})
            return
        if not isinstance(seq, int) or seq > session.seq:
            await self._fail(conn, CLOSE_INVALID_SEQ, "Invalid seq.")
            return
        missed = [f for f in session.buffer if f["s"] > seq]
        if seq < session.seq and (not missed or missed[0]["s"] != seq + 1):
            # Events the client never saw fell out of the buffer: cannot resume.
            session.invalidated = True
            self.invalid_session_count += 1
            conn.send({"op": INVALID_SESSION, "d": False, "s": None, "t": None})
            return
        old = session.connection
        if old is not None and old is not conn:
            old.session = None
            old.close_soon(4000, "Session resumed elsewhere.")
        conn.session = session
        session.connection = conn
        for frame in missed:
            conn.send(frame)
        session.push("RESUMED", {"_trace": ['["fake-discord-gateway",{"micros":0}]']})

    def _request_members(self, session: GatewaySession, data: dict[str, Any]) -> None:
        guild = self.state.guilds.get(int(data.get("guild_id", 0) or 0))
        if guild is None or not session.handles_guild(guild.id):
            return  # another shard's guild: Discord answers only on the guild's own shard
        query = str(data.get("query") or "").lower()
        limit = int(data.get("limit") or 0)
        wanted = {int(u) for u in data.get("user_ids") or []}
        members = []
        for member in guild.members.values():
            user = self.state.users[member.user_id]
            if wanted and member.user_id not in wanted:
                continue
            if query and not user.username.lower().startswith(query):
                continue
            members.append(payloads.member_payload(self.state, member))
        if limit:
            members = members[:limit]
        chunk: dict[str, Any] = {
            "guild_id": str(guild.id),
            "members": members,
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [str(u) for u in wanted if u not in guild.members],
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        if data.get("presences"):
            chunk["presences"] = []
        session.push("GUILD_MEMBERS_CHUNK", chunk)

    # -------------------------------------------------------------- dispatch

    def live_sessions(self) -> list[GatewaySession]:
        return [s for s in self.sessions.values() if not s.invalidated]

    def dispatch(
        self,
        event: str,
        data: dict[str, Any] | Callable[[GatewaySession], dict[str, Any] | None],
        *,
        intent: int | None = None,
        guild_id: int | None = None,
    ) -> int:
        """Send ``event`` to every live session that has ``intent`` (any bit) and
        whose shard owns ``guild_id``.  ``data`` may be a function of the session
        (None skips it).  Returns how many sessions got it."""
        sent = 0
        for session in self.live_sessions():
            if intent is not None and not session.has_intent(intent):
                continue
            if not session.handles_guild(guild_id):
                continue
            payload = data(session) if callable(data) else data
            if payload is None:
                continue
            session.push(event, payload)
            sent += 1
        return sent

    def dispatch_raw(self, event: str, data: Any) -> int:
        """Send ``data`` as dispatch ``event`` to every live session exactly as given:
        no intent or shard filtering, no validation (for malformed payloads)."""
        sessions = self.live_sessions()
        for session in sessions:
            session.push(event, data)
        return len(sessions)

    # --------------------------------------------------------------- control

    def refuse(self, status: int | None = 503) -> None:
        """Answer new websocket upgrades with HTTP ``status`` (None: accept again).
        Open connections are not touched; pair with :meth:`drop_all` for an outage."""
        self.refusing_status = status

    async def disconnect_all(self, code: int = 4000, reason: str = "") -> int:
        """Close every open connection with ``code``; sessions stay resumable
        unless ``code`` ends them (1000, 4004, 4007, 4009, 4010-4014)."""
        conns = self.open_connections
        for conn in conns:
            conn.close_code = code
            self._detach(conn, end_session=code in SESSION_ENDING_CLOSE_CODES)
        await asyncio.gather(*(c.close(code, reason) for c in conns))
        return len(conns)

    def drop_all(self) -> int:
        """Abort every open connection's TCP stream (no close frame)."""
        conns = self.open_connections
        for conn in conns:
            conn.close_code = 1006
            self._detach(conn, end_session=False)
            conn.abort()
        return len(conns)

    def send_reconnect(self) -> int:
        """Send op 7 RECONNECT; discord.py then reconnects and resumes."""
        conns = [c for c in self.open_connections if c.session is not None]
        for conn in conns:
            conn.send({"op": RECONNECT, "d": None, "s": None, "t": None})
        return len(conns)

    def invalidate_sessions(self, *, resumable: bool = False) -> int:
        """Send op 9 INVALID_SESSION.  ``resumable=False`` also forgets the sessions."""
        conns = [c for c in self.open_connections if c.session is not None]
        for conn in conns:
            if not resumable and conn.session is not None:
                conn.session.invalidated = True
            self.invalid_session_count += 1
            conn.send({"op": INVALID_SESSION, "d": resumable, "s": None, "t": None})
        return len(conns)

    async def flush(self) -> None:
        """Wait until every queued frame has been written to its socket."""
        await asyncio.gather(*(c.drain() for c in self.open_connections))

    def _ensure_watchdog(self) -> None:
        if self.config.heartbeat_timeout_factor is None:
            return
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.get_running_loop().create_task(
                self._heartbeat_watchdog(), name="fake-discord-heartbeat-watchdog"
            )

    async def _heartbeat_watchdog(self) -> None:
        while self.open_connections:
            factor = self.config.heartbeat_timeout_factor
            interval = self.config.heartbeat_interval_ms / 1000
            await asyncio.sleep(interval / 4)
            if factor is None:
                continue
            now = time.monotonic()
            for conn in self.open_connections:
                if not conn.closed_by_server and now - conn.last_heartbeat > interval * factor:
                    await self._fail(conn, CLOSE_SESSION_TIMED_OUT, "Session timed out.")

    async def close(self) -> None:
        """Shut down: close all connections (1001 going away)."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        await self.disconnect_all(1001, "Server shutting down.")
