"""Discord's message rules: length limits, embed limits, empty messages, upload size.

Errors use Discord's shapes: 400 / 50035 ``Invalid Form Body`` with a nested
``errors`` tree, 400 / 50006 ``Cannot send an empty message`` and 413 / 40005
``Request entity too large``.
"""

from __future__ import annotations

from typing import Any

from . import errors
from .config import FakeDiscordConfig

EMBED_LIMITS = {
    "title": 256,
    "description": 4096,
}
EMBED_MAX_FIELDS = 25
EMBED_FIELD_NAME = 256
EMBED_FIELD_VALUE = 1024
EMBED_FOOTER_TEXT = 2048
EMBED_AUTHOR_NAME = 256
EMBED_TOTAL = 6000


def _too_long(limit: int) -> dict[str, Any]:
    return errors.field_error("BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def _embed_errors(embed: Any) -> tuple[dict[str, Any], int]:
    """Errors for one embed and its character count (for the 6000 total)."""
    if not isinstance(embed, dict):
        return errors.field_error(
            "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType"
        ), 0
    found: dict[str, Any] = {}
    total = 0
    for key, limit in EMBED_LIMITS.items():
        value = embed.get(key)
        if isinstance(value, str):
            total += len(value)
            if len(value) > limit:
                found[key] = _too_long(limit)
    fields = embed.get("fields") or []
    if len(fields) > EMBED_MAX_FIELDS:
        found["fields"] = _too_long(EMBED_MAX_FIELDS)
    for index, item in enumerate(fields):
        item_errors: dict[str, Any] = {}
        name = str(item.get("name", ""))
        value = str(item.get("value", ""))
        total += len(name) + len(value)
        if not name:
            item_errors["name"] = errors.field_error("BASE_TYPE_REQUIRED", "This field is required")
        elif len(name) > EMBED_FIELD_NAME:
            item_errors["name"] = _too_long(EMBED_FIELD_NAME)
        if not value:
            item_errors["value"] = errors.field_error(
                "BASE_TYPE_REQUIRED", "This field is required"
            )
        elif len(value) > EMBED_FIELD_VALUE:
            item_errors["value"] = _too_long(EMBED_FIELD_VALUE)
        if item_errors:
            found.setdefault("fields", {})[str(index)] = item_errors
    footer = (embed.get("footer") or {}).get("text") or ""
    total += len(footer)
    if len(footer) > EMBED_FOOTER_TEXT:
        found["footer"] = {"text": _too_long(EMBED_FOOTER_TEXT)}
    author = (embed.get("author") or {}).get("name") or ""
    total += len(author)
    if len(author) > EMBED_AUTHOR_NAME:
        found["author"] = {"name": _too_long(EMBED_AUTHOR_NAME)}
    return found, total


def check_upload_size(total_bytes: int, config: FakeDiscordConfig) -> None:
    if total_bytes > config.attachment_size_limit:
        raise errors.DiscordAPIError(
            413, errors.REQUEST_ENTITY_TOO_LARGE, "Request entity too large"
        )


def check_message_fields(
    payload: dict[str, Any],
    config: FakeDiscordConfig,
    *,
    attachment_count: int = 0,
) -> None:
    """Raise 50035 for malformed content / embeds / too many attachments."""
    found: dict[str, Any] = {}
    content = payload.get("content")
    if content is not None:
        if not isinstance(content, str):
            found["content"] = errors.field_error("BASE_TYPE_STRING", "Must be a string.")
        elif len(content) > config.max_content_length:
            found["content"] = _too_long(config.max_content_length)

    embeds = payload.get("embeds")
    if embeds is not None:
        if not isinstance(embeds, list):
            found["embeds"] = errors.field_error("BASE_TYPE_ARRAY", "Must be an array.")
        elif len(embeds) > config.max_embeds:
            found["embeds"] = _too_long(config.max_embeds)
        else:
            embed_errors: dict[str, Any] = {}
            total = 0
            for index, embed in enumerate(embeds):
                one, size = _embed_errors(embed)
                total += size
                if one:
                    embed_errors[str(index)] = one
            if total > EMBED_TOTAL:
                embed_errors = errors.field_error(
                    "MAX_EMBED_SIZE_EXCEEDED", f"Embed size exceeds maximum size of {EMBED_TOTAL}"
                )
            if embed_errors:
                found["embeds"] = embed_errors

    if attachment_count > config.max_attachments:
        found["attachments"] = _too_long(config.max_attachments)
    if found:
        raise errors.invalid_form_body(found)


def is_empty_message(
    content: str | None,
    *,
    embeds: list[Any],
    attachment_count: int,
    payload: dict[str, Any],
) -> bool:
    """Discord trims content; a message needs text, an embed, a file, a sticker,
    components or a poll."""
    return (
        not (content or "").strip()
        and not embeds
        and attachment_count == 0
        and not payload.get("sticker_ids")
        and not payload.get("components")
        and not payload.get("poll")
    )


def check_voice_message(payload: dict[str, Any], files: list[Any]) -> None:
    """Discord's rules for a message sent with IS_VOICE_MESSAGE: no text or embeds,
    exactly one audio file, and its ``duration_secs`` and ``waveform``."""
    if payload.get("content") or payload.get("embeds"):
        raise errors.DiscordAPIError(
            400, errors.VOICE_MESSAGE_CONTENT, "Voice messages do not support additional content."
        )
    entries = payload.get("attachments") or []
    if len(files) != 1 or len(entries) > 1:
        raise errors.DiscordAPIError(
            400,
            errors.VOICE_MESSAGE_SINGLE_AUDIO,
            "Voice messages must have a single audio attachment.",
        )
    meta = entries[0] if entries else {}
    if not isinstance(meta.get("duration_secs"), int | float) or not meta.get("waveform"):
        raise errors.DiscordAPIError(
            400, errors.VOICE_MESSAGE_METADATA, "Voice messages must have supporting metadata."
        )


def empty_message() -> errors.DiscordAPIError:
    return errors.DiscordAPIError(
        400, errors.CANNOT_SEND_EMPTY_MESSAGE, "Cannot send an empty message"
    )


def parse_limit(raw: str | None, *, default: int = 50, maximum: int = 100) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise errors.invalid_form_body(
            {"limit": errors.field_error("NUMBER_TYPE_COERCE", f'Value "{raw}" is not int.')}
        ) from None
    if value > maximum:
        raise errors.invalid_form_body(
            {
                "limit": errors.field_error(
                    "NUMBER_TYPE_MAX", f"int value should be less than or equal to {maximum}."
                )
            }
        )
    if value < 1:
        raise errors.invalid_form_body(
            {
                "limit": errors.field_error(
                    "NUMBER_TYPE_MIN", "int value should be greater than or equal to 1."
                )
            }
        )
    return value


def parse_snowflake(raw: Any, field: str) -> int:
    try:
        value = int(raw)
        if value < 0:
            raise ValueError
        return value
    except (TypeError, ValueError):
        raise errors.invalid_form_body(
            {field: errors.field_error("NUMBER_TYPE_COERCE", f'Value "{raw}" is not snowflake.')}
        ) from None
