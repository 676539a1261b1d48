"""Inline image checks shared by both wires: base64 decoding and format sniffing."""

from __future__ import annotations

import base64
import binascii

IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def sniff_media_type(data: bytes) -> str | None:
    """The image type the bytes' magic number says, or ``None`` if not an accepted format."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def decode_base64(data: str) -> bytes | None:
    """Strict base64 decode; ``None`` when ``data`` is not valid base64."""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
