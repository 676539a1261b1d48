"""The fake voice server's UDP side: IP discovery, then encrypted RTP in.

What a bot sends after SELECT_PROTOCOL is Discord's voice transport: RTP
packets (12-byte header, payload type 0x78, the bot's SSRC) whose payload is
one 20 ms Opus frame encrypted with the mode and key from SESSION_DESCRIPTION.
Only ``aead_xchacha20_poly1305_rtpsize`` is offered (the one transport mode
every current client has): the unencrypted header (plus the 4-byte extension
preamble when the X bit is set) is the AEAD's associated data, the last four
bytes are the nonce counter (big-endian, zero-padded to 24 bytes), and an
extension's body, when present, is encrypted at the start of the payload.

Packets are decrypted on arrival (a packet that fails is recorded in
``errors``, so a test sees a wrong key or mode at once) and kept as Opus;
``ReceivedAudio.pcm()`` decodes them with PyAV's libopus on demand, so the
fake spends no CPU on audio nobody reads.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

#: The one transport encryption mode the fake offers (see the module docstring).
AEAD_XCHACHA20 = "aead_xchacha20_poly1305_rtpsize"
#: discord.py's (and Discord's) three-byte Opus silence frame.
OPUS_SILENCE = b"\xf8\xff\xfe"
RTP_PAYLOAD_TYPE = 0x78
SAMPLE_RATE = 48_000


@dataclass
class RtpPacket:
    """One received voice packet, decrypted."""

    at: float
    sequence: int
    timestamp: int
    ssrc: int
    opus: bytes

    @property
    def is_silence(self) -> bool:
        return self.opus == OPUS_SILENCE


@dataclass
class ReceivedAudio:
    """Everything one SSRC sent, in arrival order."""

    ssrc: int
    packets: list[RtpPacket] = field(default_factory=list)

    @property
    def speech_packets(self) -> list[RtpPacket]:
        return [p for p in self.packets if not p.is_silence]

    @property
    def first_speech_at(self) -> float | None:
        """``time.monotonic()`` when the first non-silent frame arrived."""
        speech = self.speech_packets
        return speech[0].at if speech else None

    @property
    def last_speech_at(self) -> float | None:
        speech = self.speech_packets
        return speech[-1].at if speech else None

    def pcm(self, *, since: float | None = None) -> Any:
        """The audio as 48 kHz mono float32 (numpy), decoded with libopus (PyAV).

        ``since``: only packets that arrived at or after that monotonic time."""
        import av
        import numpy as np

        codec = av.CodecContext.create("libopus", "r")
        codec.sample_rate = SAMPLE_RATE
        codec.layout = "stereo"
        chunks: list[np.ndarray] = []
        for packet in self.packets:
            if since is not None and packet.at < since:
                continue
            for frame in codec.decode(av.Packet(packet.opus)):
                data = frame.to_ndarray()
                # Planar (channels, samples) or packed (1, samples * channels).
                if frame.format.is_planar:
                    mono = data.mean(axis=0)
                else:
                    mono = data.reshape(-1, len(frame.layout.channels)).mean(axis=1)
                if data.dtype.kind == "i":
                    mono = mono / 32768.0
                chunks.append(mono.astype(np.float32))
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)


def discovery_response(request: bytes, host: str, port: int) -> bytes | None:
    """The 74-byte IP discovery answer to a 74-byte request (type 1), else None.

    Request and answer: type (2 bytes: 1 request, 2 response), length (2 bytes,
    always 70), SSRC (4 bytes), address (64 bytes, NUL-terminated ASCII), port
    (2 bytes, big-endian)."""
    if len(request) != 74:
        return None
    kind, length, ssrc = struct.unpack_from(">HHI", request, 0)
    if kind != 1 or length != 70:
        return None
    answer = bytearray(74)
    struct.pack_into(">HHI", answer, 0, 2, 70, ssrc)
    address = host.encode("ascii")[:63]
    answer[8 : 8 + len(address)] = address
    struct.pack_into(">H", answer, 72, port)
    return bytes(answer)


def decrypt_rtp(packet: bytes, mode: str, secret_key: bytes) -> tuple[int, int, int, bytes]:
    """``(sequence, timestamp, ssrc, opus)`` of one RTP packet; ValueError when it
    is not a valid voice packet for ``mode`` and ``secret_key``."""
    import nacl.exceptions
    import nacl.secret

    if len(packet) < 12 + 4 + 16:
        raise ValueError(f"packet too short ({len(packet)} bytes)")
    first, second = packet[0], packet[1]
    if first >> 6 != 2:
        raise ValueError(f"not RTP version 2 (first byte {first:#x})")
    if second & 0x7F != RTP_PAYLOAD_TYPE:
        raise ValueError(f"payload type {second & 0x7F:#x}, expected {RTP_PAYLOAD_TYPE:#x}")
    sequence, timestamp, ssrc = struct.unpack_from(">HII", packet, 2)
    if mode != AEAD_XCHACHA20:
        raise ValueError(f"mode {mode!r} was not offered")
    header_len = 12 + 4 * (first & 0x0F)  # CSRCs
    extension_words = 0
    if first & 0x10:  # extension: its 4-byte preamble is sent in the clear ("rtpsize")
        extension_words = struct.unpack_from(">H", packet, header_len + 2)[0]
        header_len += 4
    nonce = packet[-4:] + bytes(20)
    try:
        plain = nacl.secret.Aead(secret_key).decrypt(
            packet[header_len:-4], packet[:header_len], nonce
        )
    except nacl.exceptions.CryptoError as exc:
        raise ValueError(f"decryption failed: {exc}") from exc
    return sequence, timestamp, ssrc, plain[4 * extension_words :]


class VoiceUdpEndpoint(asyncio.DatagramProtocol):
    """Answers IP discovery and keeps the decrypted audio of every SSRC.

    ``key_for(ssrc)`` returns ``(mode, secret_key)`` once the voice websocket
    sent SESSION_DESCRIPTION for that SSRC, else None (the packet is an error)."""

    def __init__(self, key_for: Callable[[int], tuple[str, bytes] | None]) -> None:
        self.key_for = key_for
        self.transport: asyncio.DatagramTransport | None = None
        self.audio: dict[int, ReceivedAudio] = {}
        #: Packets that could not be used, as sentences.
        self.errors: list[str] = []
        self.discoveries = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        now = time.monotonic()
        answer = discovery_response(data, addr[0], addr[1])
        if answer is not None:
            self.discoveries += 1
            assert self.transport is not None
            self.transport.sendto(answer, addr)
            return
        if len(data) < 12:
            self.errors.append(f"{len(data)}-byte datagram from {addr}")
            return
        ssrc = struct.unpack_from(">I", data, 8)[0]
        key = self.key_for(ssrc)
        if key is None:
            self.errors.append(f"RTP for unknown SSRC {ssrc} (no SESSION_DESCRIPTION yet)")
            return
        try:
            sequence, timestamp, ssrc, opus = decrypt_rtp(data, *key)
        except ValueError as exc:
            self.errors.append(f"SSRC {ssrc}: {exc}")
            return
        stream = self.audio.setdefault(ssrc, ReceivedAudio(ssrc))
        stream.packets.append(RtpPacket(now, sequence, timestamp, ssrc, opus))

    def error_received(self, exc: Exception) -> None:
        log.debug("voice UDP error: %s", exc)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
