"""The fake's voice server: the voice gateway (websocket, v8) and its UDP endpoint.

How a bot gets here (Discord's flow, which discord.py follows): it sends op 4
VOICE_STATE_UPDATE on the main gateway; the fake answers VOICE_STATE_UPDATE
(with the voice ``session_id``) and VOICE_SERVER_UPDATE (``token``,
``guild_id`` and an ``endpoint`` on this server).  discord.py then opens
``wss://{endpoint}/?v=8`` (the scheme is fixed in discord.py, so this
websocket speaks TLS with a certificate made for 127.0.0.1 at start-up;
:attr:`FakeVoice.client_ssl_context` trusts it) and the voice gateway runs:

    server  HELLO (8) {heartbeat_interval}
    client  IDENTIFY (0) {server_id, user_id, session_id, token, max_dave_protocol_version}
    server  READY (2) {ssrc, ip, port, modes}
    client  UDP IP discovery (74 bytes) -> the fake answers with the client's address
    client  SELECT_PROTOCOL (1) {protocol: udp, data: {address, port, mode}}
    server  SESSION_DESCRIPTION (4) {mode, secret_key, dave_protocol_version: 0}
    client  SPEAKING (5), HEARTBEAT (3) {t, seq_ack} -> HEARTBEAT_ACK (6) {t}
    client  RTP over UDP (see :mod:`.voice_udp`)

The fake advertises no DAVE (end-to-end encryption): SESSION_DESCRIPTION says
``dave_protocol_version: 0`` whatever the client offers, so the transport
encryption is the only layer and a test can decode what the bot said.  Server
messages after HELLO carry ``seq`` (v8's resumable numbering); RESUME (7) of a
known session is answered with RESUMED (9).

Close codes follow Discord: 4001 unknown opcode, 4002 decode error, 4003 not
authenticated, 4004 authentication failed, 4005 already authenticated, 4006
session no longer valid, 4012 unknown protocol, 4016 unknown encryption mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import logging
import secrets
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from . import payloads
from .state import FakeState, FakeVoiceState
from .voice_udp import AEAD_XCHACHA20, ReceivedAudio, VoiceUdpEndpoint

log = logging.getLogger(__name__)

# Voice gateway opcodes
IDENTIFY = 0
SELECT_PROTOCOL = 1
READY = 2
HEARTBEAT = 3
SESSION_DESCRIPTION = 4
SPEAKING = 5
HEARTBEAT_ACK = 6
RESUME = 7
HELLO = 8
RESUMED = 9
CLIENT_CONNECT = 12
CLIENT_DISCONNECT = 13
DAVE_TRANSITION_READY = 23
MLS_INVALID_COMMIT_WELCOME = 31

#: What a client may send as JSON (DAVE ops are accepted and ignored: no DAVE here).
CLIENT_OPCODES = {
    IDENTIFY,
    SELECT_PROTOCOL,
    HEARTBEAT,
    SPEAKING,
    RESUME,
    CLIENT_CONNECT,
    DAVE_TRANSITION_READY,
    MLS_INVALID_COMMIT_WELCOME,
}

CLOSE_UNKNOWN_OPCODE = 4001
CLOSE_DECODE_ERROR = 4002
CLOSE_NOT_AUTHENTICATED = 4003
CLOSE_AUTHENTICATION_FAILED = 4004
CLOSE_ALREADY_AUTHENTICATED = 4005
CLOSE_SESSION_INVALID = 4006
CLOSE_UNKNOWN_PROTOCOL = 4012
CLOSE_UNKNOWN_ENCRYPTION_MODE = 4016


def voice_state_payload(
    state: FakeState,
    guild_id: int,
    user_id: int,
    voice: FakeVoiceState | None,
    *,
    session_id: str | None = None,
) -> dict[str, Any]:
    """A VOICE_STATE_UPDATE body: ``voice`` None is "left voice" (channel_id null)."""
    member = state.guilds[guild_id].members.get(user_id)
    payload: dict[str, Any] = {
        "guild_id": str(guild_id),
        "channel_id": str(voice.channel_id) if voice is not None else None,
        "user_id": str(user_id),
        "session_id": voice.session_id if voice is not None else (session_id or ""),
        "deaf": False,
        "mute": False,
        "self_deaf": voice.self_deaf if voice is not None else False,
        "self_mute": voice.self_mute if voice is not None else False,
        "self_video": False,
        "suppress": False,
        "request_to_speak_timestamp": None,
    }
    if member is not None:
        payload["member"] = payloads.member_payload(state, member)
    return payload


def voice_state_payloads(state: FakeState, guild_id: int) -> list[dict[str, Any]]:
    """Everyone in the guild's voice channels, as GUILD_CREATE lists them."""
    return [
        voice_state_payload(state, guild_id, v.user_id, v)
        for v in state.voice_states.get(guild_id, {}).values()
    ]


def _self_signed(host: str) -> tuple[bytes, bytes]:
    """A certificate (PEM) and key (PEM) for ``host`` (an IP address)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-discord-voice")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


@dataclass
class VoiceGrant:
    """What VOICE_SERVER_UPDATE promised one user in one guild."""

    guild_id: int
    user_id: int
    session_id: str
    token: str
    channel_id: int


@dataclass
class VoiceConnection:
    """One voice websocket (``fake.voice.connections``)."""

    id: int
    opened_at: float
    grant: VoiceGrant | None = None
    ssrc: int | None = None
    mode: str | None = None
    secret_key: bytes | None = None
    #: The address the client's UDP discovery came from, as SELECT_PROTOCOL names it.
    client_address: tuple[str, int] | None = None
    max_dave_protocol_version: int | None = None
    #: ``(time.monotonic(), speaking flags)`` for every SPEAKING the client sent.
    speaking: list[tuple[float, int]] = field(default_factory=list)
    heartbeats: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    closed_at: float | None = None
    seq: int = 0

    @property
    def open(self) -> bool:
        return self.closed_at is None


class FakeVoice:
    """Voice websocket on its own TLS port plus a UDP endpoint, on 127.0.0.1."""

    def __init__(self, host: str = "127.0.0.1", *, heartbeat_interval_ms: int = 13_750) -> None:
        self.host = host
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.grants: dict[tuple[int, int], VoiceGrant] = {}
        self.connections: list[VoiceConnection] = []
        self.protocol_errors: list[str] = []
        self._by_ssrc: dict[int, VoiceConnection] = {}
        self._next_ssrc = 1000
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._udp: VoiceUdpEndpoint | None = None
        self._cert_dir: tempfile.TemporaryDirectory[str] | None = None
        self._cert_pem = b""
        self._sockets: set[web.WebSocketResponse] = set()

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        cert, key = _self_signed(self.host)
        self._cert_pem = cert
        self._cert_dir = tempfile.TemporaryDirectory(prefix="fake-voice-")
        cert_file = Path(self._cert_dir.name) / "cert.pem"
        key_file = Path(self._cert_dir.name) / "key.pem"
        cert_file.write_bytes(cert)
        key_file.write_bytes(key)
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(cert_file, key_file)

        app = web.Application()
        app.router.add_get("/", self._handle)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, 0, ssl_context=server_ctx)
        await site.start()
        self._runner = runner
        self._port = runner.addresses[0][1]
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_datagram_endpoint(
            lambda: VoiceUdpEndpoint(self._key_for), local_addr=(self.host, 0)
        )
        self._udp = protocol

    async def stop(self) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._udp is not None:
            self._udp.close()
        if self._cert_dir is not None:
            self._cert_dir.cleanup()

    @property
    def endpoint(self) -> str:
        """What VOICE_SERVER_UPDATE sends: ``host:port`` (discord.py adds ``wss://``)."""
        return f"{self.host}:{self._port}"

    @property
    def udp_port(self) -> int:
        assert self._udp is not None
        return self._udp.port

    @property
    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts the system's CAs and this server's certificate."""
        ctx = ssl.create_default_context()
        ctx.load_verify_locations(cadata=self._cert_pem.decode())
        return ctx

    # ------------------------------------------------------------ grants

    def grant(self, guild_id: int, user_id: int, channel_id: int, session_id: str) -> VoiceGrant:
        """A new voice token for ``user_id`` in ``guild_id`` (replaces the old one)."""
        grant = VoiceGrant(guild_id, user_id, session_id, secrets.token_hex(8), channel_id)
        self.grants[(guild_id, user_id)] = grant
        return grant

    def revoke(self, guild_id: int, user_id: int) -> None:
        self.grants.pop((guild_id, user_id), None)

    # ------------------------------------------------------------ audio

    @property
    def udp_errors(self) -> list[str]:
        return [] if self._udp is None else self._udp.errors

    def audio_from(self, user_id: int) -> ReceivedAudio:
        """All audio ``user_id`` sent, over every connection they made (one SSRC each)."""
        merged = ReceivedAudio(ssrc=0)
        for conn in self.connections:
            if conn.grant is None or conn.grant.user_id != user_id or conn.ssrc is None:
                continue
            assert self._udp is not None
            stream = self._udp.audio.get(conn.ssrc)
            if stream is not None:
                merged.ssrc = conn.ssrc
                merged.packets.extend(stream.packets)
        merged.packets.sort(key=lambda p: p.at)
        return merged

    def connections_of(self, user_id: int) -> list[VoiceConnection]:
        return [c for c in self.connections if c.grant is not None and c.grant.user_id == user_id]

    def _key_for(self, ssrc: int) -> tuple[str, bytes] | None:
        conn = self._by_ssrc.get(ssrc)
        if conn is None or conn.mode is None or conn.secret_key is None:
            return None
        return conn.mode, conn.secret_key

    # ------------------------------------------------------------ websocket

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.add(ws)
        conn = VoiceConnection(id=len(self.connections) + 1, opened_at=time.monotonic())
        self.connections.append(conn)
        try:
            if request.query.get("v") != "8":
                await self._close(ws, conn, CLOSE_UNKNOWN_PROTOCOL, "Voice gateway v8 only.")
                return ws
            await self._send(
                ws, conn, HELLO, {"heartbeat_interval": self.heartbeat_interval_ms}, seq=False
            )
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_text(ws, conn, msg.data)
                elif msg.type is WSMsgType.BINARY:
                    # DAVE's binary (MLS) frames: never expected, since DAVE is off here.
                    self.protocol_errors.append(f"connection {conn.id}: unexpected binary frame")
                else:
                    break
        except ConnectionError:
            pass
        finally:
            self._sockets.discard(ws)
            conn.closed_at = time.monotonic()
            if conn.close_code is None:
                conn.close_code = ws.close_code
        return ws

    async def _send(
        self,
        ws: web.WebSocketResponse,
        conn: VoiceConnection,
        op: int,
        data: Any,
        *,
        seq: bool = True,
    ) -> None:
        payload: dict[str, Any] = {"op": op, "d": data}
        if seq:
            conn.seq += 1
            payload["seq"] = conn.seq
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(json.dumps(payload))

    async def _close(
        self, ws: web.WebSocketResponse, conn: VoiceConnection, code: int, reason: str
    ) -> None:
        conn.close_code = code
        self.protocol_errors.append(f"connection {conn.id}: closed {code} ({reason})")
        await ws.close(code=code, message=reason.encode())

    async def _on_text(self, ws: web.WebSocketResponse, conn: VoiceConnection, text: str) -> None:
        try:
            frame = json.loads(text)
            op, data = frame["op"], frame.get("d")
        except (ValueError, TypeError, KeyError):
            await self._close(ws, conn, CLOSE_DECODE_ERROR, "Failed to decode payload.")
            return
        conn.received.append(frame)
        if op not in CLIENT_OPCODES:
            await self._close(ws, conn, CLOSE_UNKNOWN_OPCODE, "Unknown opcode.")
            return
        if op == HEARTBEAT:
            conn.heartbeats += 1
            nonce = data.get("t") if isinstance(data, dict) else data
            await self._send(ws, conn, HEARTBEAT_ACK, {"t": nonce}, seq=False)
        elif op == IDENTIFY:
            await self._identify(ws, conn, data or {})
        elif op == RESUME:
            await self._resume(ws, conn, data or {})
        elif conn.grant is None:
            await self._close(ws, conn, CLOSE_NOT_AUTHENTICATED, "Not authenticated.")
        elif op == SELECT_PROTOCOL:
            await self._select_protocol(ws, conn, data or {})
        elif op == SPEAKING:
            flags = int((data or {}).get("speaking", 0))
            conn.speaking.append((time.monotonic(), flags))
        # CLIENT_CONNECT and the DAVE acknowledgements need no answer here.

    def _grant_for(self, data: dict[str, Any]) -> VoiceGrant | None:
        try:
            key = (int(data["server_id"]), int(data["user_id"]))
        except (KeyError, TypeError, ValueError):
            return None
        grant = self.grants.get(key)
        if grant is None:
            return None
        if not secrets.compare_digest(str(data.get("token")), grant.token):
            return None
        if data.get("session_id") != grant.session_id:
            return None
        return grant

    async def _identify(
        self, ws: web.WebSocketResponse, conn: VoiceConnection, data: dict[str, Any]
    ) -> None:
        if conn.grant is not None:
            await self._close(ws, conn, CLOSE_ALREADY_AUTHENTICATED, "Already authenticated.")
            return
        grant = self._grant_for(data)
        if grant is None:
            await self._close(ws, conn, CLOSE_AUTHENTICATION_FAILED, "Authentication failed.")
            return
        conn.grant = grant
        conn.max_dave_protocol_version = data.get("max_dave_protocol_version")
        conn.ssrc = self._next_ssrc
        self._next_ssrc += 1
        self._by_ssrc[conn.ssrc] = conn
        await self._send(
            ws,
            conn,
            READY,
            {
                "ssrc": conn.ssrc,
                "ip": self.host,
                "port": self.udp_port,
                "modes": [AEAD_XCHACHA20],
                "experiments": [],
                "streams": [],
            },
        )

    async def _resume(
        self, ws: web.WebSocketResponse, conn: VoiceConnection, data: dict[str, Any]
    ) -> None:
        grant = self._grant_for(data)
        previous = next(
            (c for c in reversed(self.connections) if c.grant is grant and c is not conn), None
        )
        if grant is None or previous is None:
            await self._close(ws, conn, CLOSE_SESSION_INVALID, "Session is no longer valid.")
            return
        conn.grant, conn.ssrc = grant, previous.ssrc
        conn.mode, conn.secret_key = previous.mode, previous.secret_key
        if conn.ssrc is not None:
            self._by_ssrc[conn.ssrc] = conn
        await self._send(ws, conn, RESUMED, None)

    async def _select_protocol(
        self, ws: web.WebSocketResponse, conn: VoiceConnection, data: dict[str, Any]
    ) -> None:
        if data.get("protocol") != "udp":
            await self._close(ws, conn, CLOSE_UNKNOWN_PROTOCOL, "Unknown protocol.")
            return
        inner = data.get("data") or {}
        mode = inner.get("mode")
        if mode != AEAD_XCHACHA20:
            await self._close(ws, conn, CLOSE_UNKNOWN_ENCRYPTION_MODE, "Unknown encryption mode.")
            return
        with contextlib.suppress(KeyError, TypeError, ValueError):
            conn.client_address = (str(inner["address"]), int(inner["port"]))
        conn.mode = mode
        conn.secret_key = secrets.token_bytes(32)
        await self._send(
            ws,
            conn,
            SESSION_DESCRIPTION,
            {
                "audio_codec": "opus",
                "video_codec": None,
                "media_session_id": secrets.token_hex(16),
                "mode": mode,
                "secret_key": list(conn.secret_key),
                # No DAVE here: the transport encryption is the only layer.
                "dave_protocol_version": 0,
            },
        )
